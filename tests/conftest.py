"""One real IPython shell for the whole suite, and helpers to load homework code into it."""

import sys
from pathlib import Path

import numpy as np
import pytest
from IPython.testing.globalipapp import start_ipython

HOMEWORK = Path(__file__).parent / "homework"
KEEP = {"In", "Out", "exit", "quit", "get_ipython"}


@pytest.fixture(scope="session")
def shell():
    ip = start_ipython()
    ip.run_line_magic("load_ext", "gradcheck_magic")
    return ip


@pytest.fixture
def ip(shell):
    """The shell with an empty user namespace and default settings."""
    for name in [k for k in shell.user_ns if not k.startswith("_") and k not in KEEP]:
        del shell.user_ns[name]
    for hist in (shell.history_manager.input_hist_parsed, shell.history_manager.input_hist_raw):
        del hist[1:]  # each test's notebook starts with no history (In)
    shell.run_line_magic("gradcheck_config", "--reset widgets=false progress=false")
    shell.run_cell("import numpy as np")
    yield shell
    np.random.seed(None)


@pytest.fixture
def package(tmp_path, monkeypatch):
    """``package(name, {module: text})`` writes the assignment's own package (cs231n's ``from
    cs231n.layers import *``): functions imported from modules that are the user's, not a library's."""
    names = []

    def make(name, modules):
        root = tmp_path / name
        root.mkdir()
        (root / "__init__.py").write_text("")
        for module, text in modules.items():
            (root / f"{module}.py").write_text(text)
        monkeypatch.syspath_prepend(str(tmp_path))
        names.append(name)
        return name

    yield make
    for module in [m for m in sys.modules if m.split(".")[0] in names]:
        del sys.modules[module]


def source(*files, replace=()):
    """The text of homework files with bugs planted; each replacement must apply exactly once."""
    text = "\n".join((HOMEWORK / f"{f}.py").read_text() for f in files)
    for old, new in replace:
        assert text.count(old) == 1, f"planted bug not applied: {old!r}"
        text = text.replace(old, new)
    return text


def run(ip, code):
    """Run a cell and fail the test if it raised."""
    result = ip.run_cell(code)
    result.raise_error()
    return result


def cell(ip, code):
    """Run a cell as a notebook does, stored in ``In`` (the plan reads the user's calls there)."""
    result = ip.run_cell(code, store_history=True)
    result.raise_error()
    return result


def load(ip, *files, replace=(), setup=None):
    run(ip, source(*files, replace=replace))
    if setup:
        run(ip, setup)


SETUPS = {
    "seed_net": "X, Y, parameters = gradient_check_n_test_case()",
    "one_d": "x, theta = 2, 4",
    "l_layer": "X, Y, parameters = L_layer_test_case()",
    "planar": "X, Y, parameters = planar_test_case()",
    "l2": "X, Y, parameters = three_layer_test_case()",
    "dropout": "X, Y, parameters = three_layer_test_case()",
}
FILES = {
    "seed_net": ("seed_net",),
    "one_d": ("one_d",),
    "l_layer": ("l_layer",),
    "planar": ("planar",),
    "l2": ("three_layer", "l2"),
    "dropout": ("three_layer", "dropout"),
}


def load_convention(ip, name, replace=()):
    load(ip, *FILES[name], replace=replace, setup=SETUPS[name])


def check(ip, line=""):
    """Run ``%gradcheck -o`` and return the result."""
    return ip.run_line_magic("gradcheck", f"-o {line}".strip())


def homework_difference(replace=(), epsilon=1e-7):
    """The course's own ``gradient_check_n`` figure for the seed net (with ``replace`` planted),
    computed here: the parameters flattened into one vector, each entry moved in a copy of it, and the
    forward called on views of that copy, as the course's loop does.  Its last digits are round-off of
    the cost, which the BLAS build rounds in its own way, so the magic is held to this, not to a number
    written down on one machine."""
    namespace = {}
    exec(source("seed_net", replace=replace), namespace)
    X, Y, parameters = namespace["gradient_check_n_test_case"]()
    forward = namespace["forward_propagation_n"]
    grads = namespace["backward_propagation_n"](X, Y, forward(X, Y, parameters)[1])
    keys = ["W1", "b1", "W2", "b2", "W3", "b3"]
    theta = np.concatenate([parameters[k].reshape(-1, 1) for k in keys])
    grad = np.concatenate([grads["d" + k].reshape(-1, 1) for k in keys])

    def cost(vector):
        views, start = {}, 0
        for k in keys:
            views[k] = vector[start : start + parameters[k].size].reshape(parameters[k].shape)
            start += parameters[k].size
        return forward(X, Y, views)[0]

    approx = np.zeros_like(grad)
    for i in range(theta.shape[0]):
        plus, minus = np.copy(theta), np.copy(theta)
        plus[i] += epsilon
        minus[i] -= epsilon
        approx[i] = (cost(plus) - cost(minus)) / (2 * epsilon)
    return float(np.linalg.norm(grad - approx) / (np.linalg.norm(grad) + np.linalg.norm(approx)))
