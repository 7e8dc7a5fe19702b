"""The demo notebooks, executed headless, fail exactly the blocks their story plants; and the
headless checker reports on a folder of notebooks for graders."""
import json
import shutil
import sys
from pathlib import Path

import nbformat
import pytest

from gradcheck_magic.notebook_cli import check_notebook, collect, main

ROOT = Path(__file__).resolve().parent.parent
DEMOS = ROOT / "demo_notebooks"
sys.path.insert(0, str(DEMOS))
from build_demos import EXPECTED, build  # noqa: E402


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_demo_notebook_executes_and_fails_exactly_the_planted_blocks(name, tmp_path):
    copy = tmp_path / name
    shutil.copy(DEMOS / name, copy)
    report = check_notebook(copy, timeout=300)
    assert report.error is None, report.error
    assert [r["failed"] for _, r, _ in report.checks] == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_stored_outputs_are_current(name):
    stored = nbformat.read(str(DEMOS / name), as_version=4)
    assert [c.source for c in stored.cells] == [c.source for c in build(name).cells], "rebuild the demos"
    assert [r["failed"] for _, r, _ in collect(stored)] == EXPECTED[name]
    html = [o["data"]["text/html"] for c in stored.cells for o in c.get("outputs", [])
            if "text/html" in o.get("data", {})]
    assert any("#f4c7c3" in h for h in html)  # red rows stored for a code-hosting site to show


def write(path, cells):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))
    return path


ONE_D = ["%load_ext gradcheck_magic",
         "def forward_propagation(x, theta):\n    return theta * x",
         "def backward_propagation(x, theta):\n    return {factor} * x",
         "%%gradcheck -p theta\nx, theta = 2.0, 4.0"]


@pytest.fixture
def submissions(tmp_path):
    folder = tmp_path / "submissions"
    folder.mkdir()
    write(folder / "alice.ipynb", [c.format(factor=1) for c in ONE_D])
    write(folder / "bob.ipynb", [c.format(factor=3) for c in ONE_D])
    write(folder / "carol.ipynb", ["raise RuntimeError('does not run')"])
    (folder / ".ipynb_checkpoints").mkdir()
    write(folder / ".ipynb_checkpoints" / "alice-checkpoint.ipynb", ["1/0"])
    return folder


def test_cli_on_a_folder_prints_tables_and_a_summary_per_notebook(submissions, capsys):
    code = main([str(submissions), "--timeout", "120"])
    out = capsys.readouterr().out
    assert code == 1
    assert "alice.ipynb: PASS — 1 check(s), 0 failing" in out
    assert "bob.ipynb: FAIL — 1 check(s), 1 failing (theta)" in out
    assert "carol.ipynb: ERROR" in out and "RuntimeError: does not run" in out
    assert "checkpoint" not in out
    assert "analytic ≈ 3.00 × numeric" in out  # the table as text
    assert "3 notebook(s): 1 passed, 2 failed or errored" in out


def test_cli_json_output(submissions, capsys):
    code = main([str(submissions / "bob.ipynb"), str(submissions / "alice.ipynb"), "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 1
    assert [d["status"] for d in data] == ["FAIL", "PASS"]
    assert data[0]["checks"][0]["failed"] == ["theta"]
    assert data[0]["checks"][0]["blocks"][0]["status"] == "fail"


def test_cli_exit_zero_and_passing_notebook(submissions, capsys):
    assert main([str(submissions / "alice.ipynb")]) == 0
    assert main([str(submissions / "bob.ipynb"), "--exit-zero"]) == 0


def test_cli_per_notebook_timeout(tmp_path, capsys):
    slow = write(tmp_path / "slow.ipynb", ["import time; time.sleep(60)"])
    assert main([str(slow), "--timeout", "3"]) == 1
    assert "slow.ipynb: ERROR" in capsys.readouterr().out


def test_cli_missing_file(tmp_path, capsys):
    assert main([str(tmp_path / "nope.ipynb")]) == 1
    assert "no such file" in capsys.readouterr().out


def test_python_dash_m_entry_point(submissions):
    import subprocess
    proc = subprocess.run([sys.executable, "-m", "gradcheck_magic", str(submissions / "alice.ipynb")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "alice.ipynb: PASS" in proc.stdout


def _stored_text(name):
    stored = nbformat.read(str(DEMOS / name), as_version=4)
    return "\n".join(o.get("data", {}).get("text/plain", "") + o.get("text", "")
                     for c in stored.cells for o in c.get("outputs", []))


def test_cs231n_demo_checks_layers_by_their_arguments_and_the_model_by_its_params():
    text = _stored_text("07_cs231n_layers.ipynb")
    assert "affine_forward(x, w, b) → Σ out·dout, affine_backward(dout, cache); dout from the namespace" in text
    assert "model.loss(X, y) → (loss, grads); model.params perturbed in place" in text
    assert "analytic ≈ 0.25 × numeric" in text  # dw averaged over a batch of 4


def test_layer_objects_demo_names_blocks_after_the_objects():
    text = _stored_text("08_layer_objects.ipynb")
    assert "dense1.weights" in text and "dense2.biases" in text
    assert "upstream gradient: seeded random (5, 4)" in text
