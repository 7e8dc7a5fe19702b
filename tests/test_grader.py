"""The headless checker as a grader runs it: through the real command line, on small notebooks
written here, executed in real kernels that import this copy of the package."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from conftest import cell, check, load, load_convention, source

from gradcheck_magic import Settings
from gradcheck_magic.notebook_cli import LOG_WIDTH, Check, Options, judge, main, rejudge, run

ROOT = Path(__file__).resolve().parent.parent


def write(path, cells, kernel="python3"):
    cells = [c if isinstance(c, nbformat.NotebookNode) else nbformat.v4.new_code_cell(c) for c in cells]
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": kernel, "display_name": kernel, "language": "python"}
    nbformat.write(nb, os.fsdecode(path) if isinstance(path, bytes) else str(path))
    return path


INSTALLED = (
    "import sys; sys.path.insert(0, sys.argv.pop(1)); from gradcheck_magic.notebook_cli import main; "
    "sys.exit(main())"
)


def cli(*args, timeout=300, installed=False):
    """Run ``python -m gradcheck_magic`` as a grader would; the kernels import this worktree.
    ``installed``: only the checker process imports this worktree (as an installed package would be
    imported); the kernels get no PYTHONPATH, so a folder next to a notebook comes before the package
    on their ``sys.path``, as it does for a package in site-packages."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "gradcheck_magic"]
    if installed:
        env.pop("PYTHONPATH")
        command = [sys.executable, "-c", INSTALLED, str(ROOT)]
    proc = subprocess.run(  # noqa: PLW1510 - the return code is asserted
        [*command, *map(os.fsdecode, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        encoding="utf-8",
        errors="replace",
    )
    return proc.returncode, proc.stdout, proc.stderr


def assert_fits(text, width=LOG_WIDTH):
    wide = [line for line in text.splitlines() if len(line) > width]
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
    assert "9 notebook(s): 3 passed, 6 did not" in out


def test_forged_result_bundle_alone_is_no_checks_and_a_failure(graded):
    _, out, _ = graded
    forger = summary(out, "forger.ipynb")
    assert "forger.ipynb: NO CHECKS — 0 check(s), 0 failing; counts as a failure" in forger


def test_lenient_notebook_settings_are_shown_and_do_not_loosen_the_grade(graded):
    _, out, _ = graded
    lenient = summary(out, "lenient.ipynb")
    assert "lenient.ipynb: FAIL — 1 check(s), 1 failing (theta)" in lenient
    assert (
        "notebook settings: threshold=1, fail_threshold=1 (shown; the grader's thresholds decide)" in lenient
    )


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
    assert "settings this notebook set (not used to grade): threshold=1, fail_threshold=1" in out


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


def test_help_says_what_it_cannot_defend_and_points_to_sandboxes_and_hidden_tests(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "What it cannot defend: a notebook's code runs in the same process" in help_text
    assert "grade inside a sandbox with hidden tests" in help_text


def test_help_fits_an_80_column_terminal(monkeypatch):
    from gradcheck_magic.notebook_cli import parser

    monkeypatch.setenv("COLUMNS", "80")  # argparse sizes the options to the terminal; we size the rest
    help_text = parser(80).format_help()
    assert_fits(help_text, 80)
    assert "LIMITS: What it cannot defend" in help_text


def test_kernels_talk_over_local_sockets_so_they_print_no_tcp_warning(tmp_path):
    probe = "from ipykernel.kernelapp import IPKernelApp\nprint(IPKernelApp.instance().transport)"
    nb, report = run(write(tmp_path / "probe.ipynb", [probe]), Options(allow_no_checks=True))
    assert report.ok and nb.cells[0].outputs[0]["text"] == "ipc\n"


def test_kernel_starts_in_safe_path_mode_with_the_notebook_folder_after_the_installation(tmp_path):
    probe = (
        "import os, sys\n"
        "print(sys.flags.safe_path)\n"
        "here = [i for i, p in enumerate(sys.path) if p in ('', os.getcwd())]\n"
        "site = [i for i, p in enumerate(sys.path) if p.endswith('-packages')]\n"
        "print(bool(here) and here[0] < site[0] and here[0] > 0)"
    )
    nb, report = run(write(tmp_path / "probe.ipynb", [probe]), Options(allow_no_checks=True))
    assert report.ok, report.summary()
    assert nb.cells[0].outputs[0]["text"] == "True\nTrue\n"  # importable (its helpers), never first


# ---- the forgeries of issue 19: each graded FAIL or NO CHECKS, exit 1; its honest twin PASS -----------
DOUBLED_W2 = [("dW2 = 1. / m * np.dot(dZ2, A1.T)", "dW2 = 2. / m * np.dot(dZ2, A1.T)")]
SEED_CHECK = "%%gradcheck\nX, Y, parameters = gradient_check_n_test_case()"
ALL_PASS = (
    "FORGED = {'passed': True, 'failed': [], 'complete': True, 'summary': '✓ gradient check passed',\n"
    "          'functions': 'forward_propagation_n(X, Y, parameters) → backward_propagation_n(X, Y, cache)',\n"
    "          'settings': {}, 'blocks': [{'name': k, 'shape': [1], 'rel_error': 0.0, 'max_abs_error': 0.0,\n"
    "          'worst_index': None, 'status': 'pass', 'note': '', 'suspect': ''}\n"
    "          for k in ('W1', 'b1', 'W2', 'b2', 'W3', 'b3')]}\n"
    "def forge(registry, nonce):\n"
    "    with open(registry, 'a') as f:\n"
    "        f.write(json.dumps(dict(FORGED, nonce=nonce)) + '\\n')\n"
)
FORGERIES = {
    # the nonce read where the checker kept it, and a forged passing record of the same functions
    "nonce_from_session": (
        "import json\nfrom gradcheck_magic import grading\n" + ALL_PASS + "try:\n"
        "    forge(grading._session.registry, grading._session.nonce)\n"
        "except Exception as exc:\n    print('no session:', exc)"
    ),
    "nonce_from_gc": (
        "import gc, json\n" + ALL_PASS + "for o in gc.get_objects():\n"
        "    try:\n"
        "        if hasattr(o, 'nonce') and hasattr(o, 'registry'):\n"
        "            forge(o.registry, o.nonce)\n"
        "    except Exception:\n        pass"
    ),
    "nonce_from_registry_file": (
        "import glob, json, os, tempfile\n" + ALL_PASS + "for path in glob.glob(os.path.join("
        "tempfile.gettempdir(), 'gradcheck-*', '*')):\n"
        "    try:\n"
        "        nonce = json.loads(open(path).readline())['nonce']\n"
        "        forge(path, nonce)\n"
        "    except Exception:\n        pass"
    ),
    "failed_patched": (
        "from gradcheck_magic import GradCheckResult\n"
        "GradCheckResult.failed = property(lambda self: [])\n"
        "GradCheckResult.passed = property(lambda self: True)"
    ),
    "verdict_patched": (
        "import gradcheck_magic.engine as engine\nengine.verdict = lambda evidence, settings: 'pass'"
    ),
    "lenient_config": "%gradcheck_config threshold=1 fail_threshold=1",
}
# forged before the check, so that a checker which recorded the check afterwards would see them too
FORGED_FIRST = ("failed_patched", "verdict_patched", "lenient_config")
LOOKALIKE = {
    "__init__.py": (
        "from . import grading\n"
        "def load_ipython_extension(ip):\n"
        "    def gradcheck(line='', cell=None):\n"
        "        if cell:\n"
        "            ip.run_cell(cell)\n"
        "        grading.record_pass()\n"
        "        print('✓ gradient check passed')\n"
        "    ip.register_magic_function(gradcheck, 'line_cell', 'gradcheck')\n"
    ),
    "grading.py": (
        "import json\n"
        "_session = None\n"
        "def start(registry, nonce, imposed=None, **_):\n"
        "    global _session\n"
        "    _session = (registry, nonce)\n"
        "def record_pass():\n"
        "    if _session:\n"
        "        with open(_session[0], 'a') as f:\n"
        "            f.write(json.dumps({'nonce': _session[1], 'passed': True, 'failed': [], 'blocks': [],\n"
        "                                'functions': 'forward_propagation_n', 'settings': {}}) + '\\n')\n"
    ),
}
LENIENT_LATER = "get_ipython().run_line_magic('gradcheck_config', 'threshold=1 fail_threshold=1')"
BYPASSES = {  # under --settings defaults: the imposed settings undone from inside the kernel
    "in_force_patched": (
        "from gradcheck_magic import grading\n"
        "grading.in_force = lambda settings: settings\n"
        "grading.imposes_settings = lambda: False\n" + LENIENT_LATER
    ),
    "imposed_removed": (
        "from gradcheck_magic import grading\n"
        "try:\n    object.__setattr__(grading._session, 'imposed', None)\nexcept Exception:\n    pass\n"
        + LENIENT_LATER
    ),
}
REBIND = (
    "class Quadratic:  # an unrelated object, with a right gradient\n"
    "    def __init__(self):\n"
    "        self.params = {'W': np.linspace(-1.0, 1.0, 6).reshape(2, 3)}\n"
    "    def loss(self, X, y):\n"
    "        return float(np.sum(self.params['W'] ** 2)), {'W': 2 * self.params['W']}\n"
    "model = Quadratic()"
)
MODEL_BUG = [
    (
        'grads["W2"] += self.reg * self.params["W2"]',
        'grads["W2"] = 2 * (grads["W2"] + self.reg * self.params["W2"])',
    )
]
MODEL_SETUP = (
    "model = TwoLayerNet()\nX = np.random.default_rng(1).standard_normal((4, 5))\ny = np.array([0, 1, 2, 1])"
)


def seed_net(wrong: bool) -> list:
    """The course's fraud-detection net, its W2 gradient doubled when ``wrong``."""
    return [LOAD, source("seed_net", replace=DOUBLED_W2 if wrong else ())]


def forgery_cells(name: str, wrong: bool) -> list:
    if name in FORGED_FIRST:
        return [*seed_net(wrong), FORGERIES[name], SEED_CHECK]
    if name in FORGERIES:
        return [*seed_net(wrong), SEED_CHECK, FORGERIES[name]]
    if name == "forged_record_alone":  # no check at all; the honest twin makes the real one
        return [*seed_net(wrong), FORGERIES["nonce_from_session"]] + ([] if wrong else [SEED_CHECK])
    if name == "lookalike_folder":  # the notebook's own cells entirely honest
        return [*seed_net(wrong), SEED_CHECK]
    if name in BYPASSES:
        return [*seed_net(wrong), BYPASSES[name], SEED_CHECK]
    if name == "model_rebound":
        model = source("cs231n_layers", replace=MODEL_BUG if wrong else ())
        return [
            LOAD,
            "import numpy as np\n" + model,
            MODEL_SETUP,
            "%gradcheck model",
            REBIND,
            "%gradcheck model",
        ]
    if name == "failing_cell_skipped":
        skipped = nbformat.v4.new_code_cell(SEED_CHECK, metadata={"tags": ["skip-execution"]})
        easy = [FORWARD, BACKWARD.format(factor=1), CHECK]
        return [*seed_net(wrong), skipped, *easy]
    raise KeyError(name)


DEFAULT_RULES = (
    *FORGERIES,
    "forged_record_alone",
    "lookalike_folder",
    "model_rebound",
    "failing_cell_skipped",
)


@pytest.fixture(scope="module")
def forgeries(tmp_path_factory):
    """Each forgery of issue 19 in a notebook of its own (wrong/), and its honest twin (right/): the same
    cells with the W2 gradient right.  The look-alike package sits next to the look-alike notebooks."""
    root = tmp_path_factory.mktemp("forgeries")
    for kind in ("wrong", "right"):
        for name in (*DEFAULT_RULES, *BYPASSES):
            folder = root / kind / ("lookalike" if name == "lookalike_folder" else "")
            folder.mkdir(parents=True, exist_ok=True)
            write(folder / f"{name}.ipynb", forgery_cells(name, kind == "wrong"))
        package = root / kind / "lookalike" / "gradcheck_magic"
        package.mkdir()
        for file, text in LOOKALIKE.items():
            (package / file).write_text(text)
    return root


@pytest.mark.parametrize("kind", ["wrong", "right"])
def test_each_forgery_fails_with_exit_1_and_its_honest_twin_passes_by_default_rules(forgeries, kind):
    paths = [
        forgeries / kind / ("lookalike" if n == "lookalike_folder" else "") / f"{n}.ipynb"
        for n in DEFAULT_RULES
    ]
    code, out, err = cli(*paths, installed=True)
    assert_fits(out)
    statuses = {n: summary(out, f"{n}.ipynb").split(": ", 1)[1].split(" —")[0] for n in DEFAULT_RULES}
    if kind == "wrong":
        assert code == 1, out + err
        expected = {n: "FAIL" for n in DEFAULT_RULES} | {"forged_record_alone": "NO CHECKS"}
        assert statuses == expected, out
        for name in DEFAULT_RULES:
            if name != "forged_record_alone":
                assert "failing (W2)" in summary(out, f"{name}.ipynb"), out
    else:
        assert code == 0, out + err
        assert statuses == {n: "PASS" for n in DEFAULT_RULES}, out


@pytest.mark.parametrize("kind", ["wrong", "right"])
def test_imposed_defaults_survive_patching_the_public_grading_module(forgeries, kind):
    paths = [forgeries / kind / f"{name}.ipynb" for name in BYPASSES]
    code, out, _ = cli(*paths, "--settings", "defaults", installed=True)
    for name in BYPASSES:
        verdict = summary(out, f"{name}.ipynb")
        if kind == "wrong":
            assert "FAIL — 1 check(s), 1 failing (W2)" in verdict, out
        else:
            assert "PASS — 1 check(s), 0 failing" in verdict, out
        shown = "notebook settings: threshold=1, fail_threshold=1 (shown; the grader's thresholds decide)"
        assert shown in verdict
    assert code == (1 if kind == "wrong" else 0)


def test_a_skipped_cell_is_run_and_reported(forgeries):
    code, out, _ = cli(forgeries / "right" / "failing_cell_skipped.ipynb")
    verdict = summary(out, "failing_cell_skipped.ipynb")
    assert code == 0 and "PASS — 2 check(s), 0 failing" in verdict
    assert "note: cell(s) 3 tagged 'skip-execution': run anyway (a grade counts every cell)" in verdict


# ---- the re-run, in process: the state of the check, the grader's step and mode ------------------------
@pytest.fixture
def session():
    """A grading session hooked to this process's package, as the hidden first cell hooks the kernel's."""
    from gradcheck_magic import grading

    grading._grader = (session := grading.Session()).capture
    yield session
    grading._grader = None


def test_rerun_sees_the_state_of_the_check_not_the_end_of_the_notebook(ip, session):
    load_convention(ip, "seed_net", replace=DOUBLED_W2)
    assert check(ip).failed == ["W2"]
    # afterwards: the data zeroed in place (the doubled term vanishes), the backward and the name rebound
    load(ip, "seed_net", setup="X[...] = 0.0\nparameters = {k: v * 0 for k, v in parameters.items()}")
    (record,) = session.finish(Settings(), imposed=False)
    assert rejudge(record, Settings())["failed"] == ["W2"]
    assert record["functions"].startswith("forward_propagation_n(X, Y, parameters)")


def test_rerun_keeps_the_notebooks_step_and_mode_but_never_its_thresholds_or_a_sample(ip, session):
    load_convention(ip, "seed_net")
    check(ip, "-e 1e-6 -t 2e-7 -m full")  # a step fine enough to verify at 1e-7 (1e-7 is not: see below)
    check(ip, "-s 3")
    check(ip, "-e 1e-2")
    homework, sampled, coarse = session.finish(Settings(), imposed=False)
    assert homework["run_settings"]["epsilon"] == 1e-6 and homework["run_settings"]["threshold"] == 1e-7
    assert homework["marks"] == [] and homework["step"] == 1e-6
    assert sampled["run_settings"]["sample"] is None
    assert sampled["marks"] == [
        "the notebook's sample of 3 entries per block cannot be re-judged: re-run with every entry"
    ]
    assert coarse["run_settings"]["epsilon"] is None and coarse["step"] is None
    assert (
        "step ε=0.01 is too coarse to judge at threshold 1e-07: re-run with the automatic step"
        in coarse["marks"][0]
    )
    assert all(not rejudge(r, Settings())["failed"] for r in (homework, sampled, coarse))
    for record in (homework, sampled, coarse):  # judged here as the kernel's engine judged it
        assert [b["status"] for b in record["blocks"]] == [b["kernel_status"] for b in record["blocks"]]


def test_families_follow_where_functions_are_defined_and_the_blocks_not_the_names(ip, session):
    load(ip, "cs231n_layers", setup=MODEL_SETUP)
    check(ip, "model")
    ip.run_cell(REBIND).raise_error()
    check(ip, "model")  # the same name, an unrelated object
    load(ip, "cs231n_layers", setup=MODEL_SETUP)  # redefined (fixed) and rebuilt: the same family
    check(ip, "model")
    first, unrelated, again = session.finish(Settings(), imposed=False)
    assert first["functions"] == unrelated["functions"]  # named alike ...
    assert first["family"] != unrelated["family"]  # ... but not the same check
    assert first["family"] == again["family"]
    assert "__main__.TwoLayerNet.loss" in first["family"] and "W2(7, 3)" in first["family"]
    checks = judge([Check(c, r) for c, r in zip((4, 6, 8), (first, unrelated, again))], every_check=False)
    assert [c.superseded_by for c in checks] == [8, None, None]


def test_checks_are_judged_here_from_the_evidence_whatever_status_the_kernel_sent():
    record = {
        "blocks": [
            {"name": "W", "kernel_status": "pass", "evidence": {"rel_error": 0.5, "wrong": 1}},
            {"name": "b", "kernel_status": "pass", "evidence": {"rel_error": 3e-6}},
            {"name": "c", "kernel_status": "pass"},  # no evidence: nothing proves it right
        ]
    }
    judged = rejudge(record, Settings())
    assert [b["status"] for b in judged["blocks"]] == ["fail", "warn", "fail"]
    assert judged["failed"] == ["W", "c"]
    assert rejudge(record, Settings(threshold=1e-5))["blocks"][1]["status"] == "pass"


def test_output_fits_an_80_column_terminal(folder):
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "gradcheck_magic", str(folder / "bob.ipynb"), str(folder / "story.ipynb")],
        stdout=follower,
        stderr=subprocess.DEVNULL,
        env=dict(env, PYTHONPATH=str(ROOT)),
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: the checker is done
            break
        if not chunk:
            break
        chunks.append(chunk)
    proc.wait(timeout=300)
    os.close(leader)
    text = b"".join(chunks).decode("utf-8", "replace").replace("\r\n", "\n")
    assert "bob.ipynb: FAIL" in text.replace("\n    ", " ")
    assert_fits(text, 80)
    assert any(len(line) > 70 for line in text.splitlines())  # it uses the width it has


def test_the_readme_main_job_ends_on_a_clean_pass_the_homework_step_too_fine_is_re_run_and_marked():
    """The fraud demo's last check uses the homework's ε=1e-7, whose round-off leaves W1 unverifiable at
    the grader's 1e-7 pass line: the grader re-runs it at its own step, says so, and the check passes."""
    code, out, _ = cli(ROOT / "demo_notebooks" / "01_fraud_detection.ipynb")
    assert code == 0, out
    last = out[out.rindex("[cell ") : out.index("01_fraud_detection.ipynb: PASS")]
    assert last.lstrip().split("\n")[0].split("] ", 1)[1].startswith("✓ passed"), last
    assert "WARN" not in last and "⚠" not in last
    assert "the notebook's step ε=1e-07 is too fine to verify W1" in " ".join(last.split())


def test_a_checks_cell_is_the_running_cells_own_count_whichever_ipython(ip):
    """IPython 9 moves the shell's counter before a cell runs, IPython 8 after: the check's cell is
    the count the notebook shows for the cell that ran it, in both."""
    for _ in range(2):
        result = cell(
            ip, "from gradcheck_magic.grading import running_count\nseen = running_count(get_ipython())"
        )
        assert ip.user_ns["seen"] == result.execution_count
