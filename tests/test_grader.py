"""The headless checker as a grader runs it: through the real command line, on small notebooks
written here, executed in real kernels that import this copy of the package."""

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import check, load_convention

from gradcheck_magic import Settings
from gradcheck_magic.notebook_cli import WIDTH, Check, Options, judge, main, run

ROOT = Path(__file__).resolve().parent.parent


def write(path, cells, kernel="python3"):
    cells = [c if isinstance(c, nbformat.NotebookNode) else nbformat.v4.new_code_cell(c) for c in cells]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    nbformat.write(nb, os.fsdecode(path) if isinstance(path, bytes) else str(path))
    return path


def cli(*args, timeout=300):
    """Run ``python -m gradcheck_magic`` as a grader would; the kernels import this worktree."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        [sys.executable, "-m", "gradcheck_magic", *map(os.fsdecode, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        encoding="utf-8",
        errors="replace",
    )
    return proc.returncode, proc.stdout, proc.stderr


def assert_fits(text):
    wide = [line for line in text.splitlines() if len(line) > WIDTH]
    assert not wide, wide


LOAD = "%load_ext gradcheck_magic"
FORWARD = "def forward_propagation(x, theta):\n    return theta * x"
BACKWARD = "def backward_propagation(x, theta):\n    return {factor} * x"
CHECK = "%%gradcheck -p theta\nx, theta = 2.0, 4.0"
CHECK_INTEGERS = "%%gradcheck -p theta\nx, theta = 2, 4"  # adds a note: a long one, to be wrapped
SUM_FAMILY = (
    "def forward_sum(x, theta):\n    return (theta * x).sum()",
    "def backward_sum(x, theta):\n    return x",
    "%%gradcheck -f forward_sum -b backward_sum -p theta\nimport numpy as np\nx, theta = np.arange(6.0), np.ones(6)",
)
FORGED = (
    "from IPython.display import display\n"
    "display({'application/vnd.gradcheck-magic.result+json': {'passed': True, 'failed': [], "
    "'complete': True, 'summary': '✓ gradient check passed', 'blocks': []}, "
    "'text/plain': '✓ gradient check passed'}, raw=True)"
)
LENIENT = "%gradcheck_config threshold=1 fail_threshold=1"
WEIRD_NAME = b"caf\xe9 \xff.ipynb"  # not UTF-8


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """A class's submissions: each notebook plants one of the issue's findings."""
    folder = tmp_path_factory.mktemp("submissions")
    shown_error = nbformat.v4.new_code_cell("1 / 0", metadata={"tags": ["raises-exception"]})
    write(folder / "alice.ipynb", [LOAD, shown_error, FORWARD, BACKWARD.format(factor=1), CHECK])
    write(folder / "bob.ipynb", [LOAD, FORWARD, BACKWARD.format(factor=3), CHECK_INTEGERS, FORGED])
    write(
        folder / "carol.ipynb",
        ["raise RuntimeError('does not run')", LOAD, FORWARD, BACKWARD.format(factor=1), CHECK],
    )
    write(folder / "forger.ipynb", [FORGED])
    write(folder / "lenient.ipynb", [LOAD, LENIENT, FORWARD, BACKWARD.format(factor=3), CHECK])
    write(
        folder / "story.ipynb",
        [LOAD, FORWARD, BACKWARD.format(factor=3), CHECK, BACKWARD.format(factor=1), CHECK, *SUM_FAMILY],
        kernel="python2",
    )
    write(
        folder / "usage.ipynb",
        [LOAD, "%gradcheck -p nowhere", FORWARD, BACKWARD.format(factor=1), CHECK],
        kernel="course-ml-2019",
    )
    write(os.path.join(os.fsencode(folder), WEIRD_NAME), [LOAD, FORWARD, BACKWARD.format(factor=1), CHECK])
    write(folder / "twice.ipynb", [LOAD, FORWARD, BACKWARD.format(factor=3), CHECK, CHECK])
    (folder / ".ipynb_checkpoints").mkdir()
    write(folder / ".ipynb_checkpoints" / "alice-checkpoint.ipynb", ["1/0"])
    return folder


@pytest.fixture(scope="module")
def graded(folder):
    """One run of the checker over the whole folder, with the default rules."""
    return cli(folder)


def summary(out, name):
    """The summary of one notebook, its wrapped lines joined."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"{name}: ") or f"/{name}: " in line)
    end = start + 1
    while end < len(lines) and lines[end].startswith("    "):
        end += 1
    return " ".join(line.strip() for line in lines[start:end])


def test_default_rules_grade_each_notebook_by_what_really_ran(graded):
    code, out, _ = graded
    assert code == 1
    alice = summary(out, "alice.ipynb")  # her tagged "raises-exception" cell is part of her story
    assert "alice.ipynb: PASS — 1 check(s), 0 failing [" in alice
    bob = summary(out, "bob.ipynb")
    assert "bob.ipynb: FAIL — 1 check(s), 1 failing (theta)" in bob  # the forged display is not a check
    assert "carol.ipynb: ERROR" in summary(out, "carol.ipynb")
    assert "cell 1 raised RuntimeError: does not run" in summary(out, "carol.ipynb")
    assert "checkpoint" not in out
    assert "caf\\xe9 \\xff.ipynb: PASS" in out  # any file name works
    assert "9 notebook(s): 4 passed, 5 did not" in out


def test_forged_result_bundle_alone_is_no_checks_and_a_failure(graded):
    _, out, _ = graded
    forger = summary(out, "forger.ipynb")
    assert "forger.ipynb: NO CHECKS — 0 check(s), 0 failing; counts as a failure" in forger


def test_lenient_notebook_settings_are_shown_beside_its_verdict(graded):
    _, out, _ = graded
    lenient = summary(out, "lenient.ipynb")
    assert "lenient.ipynb: PASS" in lenient
    assert "notebook settings: threshold=1, fail_threshold=1" in lenient


def test_story_that_fails_then_passes_is_judged_by_its_last_check_on_the_fallback_kernel(graded):
    _, out, _ = graded
    story = summary(out, "story.ipynb")
    assert (
        "story.ipynb: PASS — 3 check(s), 0 failing; judged by the last check of each family (1 earlier"
        in story
    )
    assert "kernel 'python2' is not installed; ran with python3" in story
    assert "(not judged: the check in cell 6 checks the same functions)" in out


def test_usage_error_message_is_in_the_summary(graded):
    _, out, _ = graded
    usage = summary(out, "usage.ipynb")
    assert "usage.ipynb: ERROR" in usage
    assert "cell 2 raised UsageError:" in usage and "nowhere" in usage
    assert "kernel 'course-ml-2019' is not installed" in usage


def test_output_fits_120_columns_with_notes_wrapped_and_no_kernel_chatter(graded):
    _, out, err = graded
    assert_fits(out)
    lines = out.splitlines()
    row = next(i for i, line in enumerate(lines) if "analytic ≈ 3.00 × numeric" in line and "FAIL" in line)
    note_column = lines[row].index("analytic ≈ 3.00")
    assert lines[row + 1].startswith(" " * note_column) and lines[row + 1].strip()  # wrapped in its column
    assert not any(line.rstrip() != line for line in out.splitlines())  # right side never padded
    assert "without encryption" not in err and "Traceback" not in err, err


def test_every_check_allow_errors_and_allow_no_checks_change_the_rules(folder, capsys):
    names = ("story.ipynb", "usage.ipynb", "forger.ipynb", "twice.ipynb")
    code = main([*(str(folder / n) for n in names), "--every-check", "--allow-errors", "--allow-no-checks"])
    out = capsys.readouterr().out
    assert code == 1
    assert "story.ipynb: FAIL — 3 check(s), 1 failing (theta)" in summary(out, "story.ipynb")
    usage = summary(out, "usage.ipynb")
    assert "usage.ipynb: PASS — 1 check(s), 0 failing" in usage  # the check after the error is collected
    assert "cell 2 raised UsageError:" in usage
    assert "forger.ipynb: NO CHECKS" in summary(out, "forger.ipynb") and "allowed" in out
    assert "twice.ipynb: FAIL — 2 check(s), 2 failing (theta) [" in summary(out, "twice.ipynb")  # named once
    assert "4 notebook(s): 2 passed, 2 did not" in out


def test_imposed_settings_override_what_the_notebook_set(folder, capsys):
    code = main([str(folder / "lenient.ipynb"), "--settings", "defaults"])
    out = capsys.readouterr().out
    assert code == 1
    assert "settings imposed on every check: the defaults" in out
    assert "lenient.ipynb: FAIL — 1 check(s), 1 failing (theta)" in summary(out, "lenient.ipynb")
    assert "notebook settings" not in out


def test_bad_settings_and_kernels_are_refused_before_anything_runs(folder, capsys):
    for bad, message in (
        (("--settings", "threshold=abc"), "threshold='abc' is not a valid float"),
        (("--settings", "widgets=false"), "'widgets=false' is not KEY=VALUE"),
        (("--settings", "threshold=1e-3"), "must not exceed fail_threshold"),
        (("--kernel", "python2"), "--kernel: no kernel named 'python2'"),
    ):
        with pytest.raises(SystemExit) as exit:
            main([str(folder / "alice.ipynb"), *bad])
        assert exit.value.code == 2
        assert message in capsys.readouterr().err


@pytest.mark.parametrize("value", ["nan", "-5", "0", "inf", "ten"])
def test_bad_timeouts_are_refused_with_a_clear_message(value, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit:
        main([str(tmp_path), "--timeout", value])
    assert exit.value.code == 2
    assert (
        f"--timeout: must be a positive, finite number of seconds, not '{value}'" in capsys.readouterr().err
    )


def test_json_is_compact_real_unicode_and_reads_back(folder, capsys):
    weird = os.fsdecode(os.path.join(os.fsencode(folder), WEIRD_NAME))
    code = main([str(folder / "story.ipynb"), weird, "--json"])
    out = capsys.readouterr().out
    assert code == 0
    assert len(out.splitlines()) == 4  # "[", one line per notebook, "]"
    assert "✗" in out and "\\u" not in out and '"shape": [6]' in out
    story, weird = json.loads(out)
    assert weird["notebook"].endswith("caf\\xe9 \\xff.ipynb") and weird["status"] == "PASS"
    assert story["status"] == "PASS" and story["checks"][0]["failed"] == ["theta"]
    assert story["checks"][0]["blocks"][0]["status"] == "fail"
    assert [c["judged"] for c in story["checks"]] == [False, True, True]
    assert story["notes"] and "python2" in story["notes"][0]


def test_infinite_loop_times_out_with_the_checks_before_it_collected(tmp_path):
    loop = write(
        tmp_path / "loop.ipynb", [LOAD, FORWARD, BACKWARD.format(factor=1), CHECK, "while True:\n    pass"]
    )
    code, out, err = cli(loop, "--timeout", "3")
    assert code == 1
    assert "loop.ipynb: ERROR — 1 check(s), 0 failing; timed out after 3 s (in cell 5)" in summary(
        out, "loop.ipynb"
    )
    assert "Traceback" not in err and "DeadKernelError" not in out + err and "ZMQError" not in out + err, err


def test_missing_file_and_help_warns_that_notebooks_run_with_your_rights(tmp_path, capsys):
    assert main([str(tmp_path / "nope.ipynb")]) == 1
    assert "nope.ipynb: ERROR" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = capsys.readouterr().out
    assert "with your rights" in help_text and "container" in help_text and "throwaway user" in help_text
    assert_fits(help_text)


@pytest.fixture
def grading_session(tmp_path):
    """A grading session as the checker's hidden cell starts it, ended after the test."""
    from gradcheck_magic import grading

    registry = tmp_path / "registry.jsonl"
    registry.touch()
    yield lambda imposed: grading.start(str(registry), "nonce-1", imposed) or registry
    grading._session = None


def test_imposed_settings_beat_a_flag_and_every_real_check_is_recorded(ip, grading_session):
    load_convention(ip, "one_d", replace=[("dtheta = x", "dtheta = 3 * x")])
    registry = grading_session(dataclasses.asdict(Settings()))
    result = check(ip, "-t 1 -e 1e-3")
    assert result.failed == ["theta"] and result.settings.threshold == Settings().threshold
    records = [json.loads(line) for line in registry.read_text().splitlines()]
    assert [r["failed"] for r in records] == [["theta"]] and records[0]["nonce"] == "nonce-1"
    assert records[0]["settings"]["epsilon"] is None and records[0]["blocks"][0]["shape"] == []


def test_kernels_talk_over_local_sockets_so_they_print_no_tcp_warning(tmp_path):
    probe = "from ipykernel.kernelapp import IPKernelApp\nprint(IPKernelApp.instance().transport)"
    nb, report = run(write(tmp_path / "probe.ipynb", [probe]), Options(allow_no_checks=True))
    assert report.ok and nb.cells[0].outputs[0]["text"] == "ipc\n"


def test_families_are_the_functions_called_whatever_the_description_adds():
    described = [
        "forward_propagation_n(X, Y, parameters) → backward_propagation_n(X, Y, cache)",
        "affine_forward(x, w, b) → Σ out·dout, affine_backward(dout, cache); dout from the namespace",
        "model.loss(X, y) → (loss, grads); model.params perturbed in place",
        "affine_forward(x, w, b) → Σ out·dout, affine_backward(dout, cache); upstream gradient: seeded random (4, 5)",
        (
            "dense1.forward → Σ output·dvalues, dense1.backward(dvalues); upstream gradient: seeded random "
            "(5, 4) (no dvalues/dout of dense1's output shape)"
        ),
        "forward_propagation_n(X, Y, params) → backward_propagation_n(X, Y, cache)",
        "model.loss(X, y) → (loss, grads); model.params perturbed in place",
    ]
    checks = judge(
        [Check(cell, {"functions": text}) for cell, text in enumerate(described)], every_check=False
    )
    assert [c.superseded_by for c in checks] == [5, 3, 6, None, None, None, None]
    assert checks[4].family == "dense1.backward"
