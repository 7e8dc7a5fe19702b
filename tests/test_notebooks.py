"""The demo notebooks, executed headless, fail exactly the blocks their story plants, and the
headless checker grades each demo by its last check (the checker's own findings: test_grader.py)."""

import shutil
import sys
from pathlib import Path

import nbformat
import pytest

from gradcheck_magic.notebook_cli import Options, collect, run

ROOT = Path(__file__).resolve().parent.parent
DEMOS = ROOT / "demo_notebooks"
sys.path.insert(0, str(DEMOS))
from build_demos import EXPECTED, build  # noqa: E402 - importable once its folder is on the path


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_demo_notebook_executes_and_fails_exactly_the_planted_blocks(name, tmp_path):
    copy = tmp_path / name
    shutil.copy(DEMOS / name, copy)
    nb, report = run(copy, Options(timeout=300))
    assert report.error is None, report.error
    shown = collect(nb)
    assert [r["failed"] for _, r, _ in shown] == EXPECTED[name]
    recorded = {check.cell: check.failed for check in report.checks}
    assert [recorded[cell] for cell, _, _ in shown] == EXPECTED[name]  # the registry saw what was shown
    assert report.status == "PASS", report.summary()  # the story ends green: its last check counts


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_stored_outputs_are_current(name):
    stored = nbformat.read(str(DEMOS / name), as_version=4)
    assert [c.source for c in stored.cells] == [c.source for c in build(name).cells], "rebuild the demos"
    assert [r["failed"] for _, r, _ in collect(stored)] == EXPECTED[name]
    html = [
        o["data"]["text/html"]
        for c in stored.cells
        for o in c.get("outputs", [])
        if "text/html" in o.get("data", {})
    ]
    assert any("#f4c7c3" in h for h in html)  # red rows stored for a code-hosting site to show


def _stored_text(name):
    """The stored plain-text outputs, with the terminal wrapping undone (runs of spaces folded)."""
    stored = nbformat.read(str(DEMOS / name), as_version=4)
    text = " ".join(
        o.get("data", {}).get("text/plain", "") + o.get("text", "")
        for c in stored.cells
        for o in c.get("outputs", [])
    )
    return " ".join(text.split())


def test_cs231n_demo_checks_layers_by_their_arguments_and_the_model_by_its_params():
    text = _stored_text("07_cs231n_layers.ipynb")
    assert (
        "affine_forward(x, w, b) → Σ out·dout, affine_backward(dout, cache); dout from the namespace" in text
    )
    assert "model.loss(X, y) → (loss, grads); model.params perturbed in place" in text
    assert "analytic ≈ 0.25 × numeric" in text  # dw averaged over a batch of 4


def test_layer_objects_demo_names_blocks_after_the_objects():
    text = _stored_text("08_layer_objects.ipynb")
    assert "dense1.weights" in text and "dense2.biases" in text
    assert "upstream gradient: seeded random (5, 4)" in text


def test_word2vec_demo_follows_the_cells_call_and_its_history():
    text = _stored_text("10_cs224n_word2vec.ipynb")
    assert "negSamplingLossAndGradient(centerWordVec, 1, dummy_vectors[5:], dataset)" in text
    assert "in the %%gradcheck cell" in text and "in cell [" in text  # the cell's call, then In's
    assert "centerWordVectors" in text  # skip-gram over both slices of the word vectors
