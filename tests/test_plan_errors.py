"""Errors while planning a check: a function the user names that raises is never dropped, its own
exception reaches the user, shown from the user's code (no frame of this package is visible);
discovery looks at every object without running into the user's properties; what cannot be
checked is refused by name (issue 18, finding 6)."""

import os

import pytest
from conftest import cell, check, load, load_convention, run
from IPython.core.error import UsageError

import gradcheck_magic
from gradcheck_magic.magics import GradCheckFailed

PACKAGE = os.path.dirname(gradcheck_magic.__file__)


def visible_package_frames(exc) -> list:
    """Frames of this package IPython would show (it hides those that set ``__tracebackhide__``)."""
    frames, tb = [], exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code.co_filename.startswith(PACKAGE) and not frame.f_locals.get("__tracebackhide__"):
            frames.append(f"{frame.f_code.co_filename}:{tb.tb_lineno}")
        tb = tb.tb_next
    return frames


def raised(ip, line, kind):
    """Run ``%gradcheck line`` as a cell does; the exception it raised, which must be ``kind``."""
    result = ip.run_cell(f"%gradcheck {line}")
    assert isinstance(result.error_in_exec, kind), result.error_in_exec
    return result.error_in_exec


BROKEN = "raise ValueError('my code is broken')"


@pytest.mark.parametrize(
    "setup,line",
    [
        (f"def bad_forward(X, Y, parameters):\n    {BROKEN}", "-f bad_forward -b backward_propagation_n"),
        (
            f"def forward_x(X, Y, parameters):\n    {BROKEN}\ndef backward_x(X, Y, cache):\n    return {{}}",
            "-f forward_x",
        ),
        (f"def cost_fn(theta):\n    {BROKEN}\ntheta0 = np.ones(3)", "-f cost_fn -p theta0"),
        (
            f"def my_forward(x, w):\n    {BROKEN}\ndef my_backward(dout, cache):\n    return 0, 0\nx, w = np.ones((2, 3)), np.ones(3)",
            "-f my_forward -b my_backward",
        ),
    ],
)
def test_a_function_named_with_f_that_raises_shows_its_own_exception_from_its_own_frame(ip, setup, line):
    load_convention(ip, "seed_net")
    run(ip, setup)
    exc = raised(ip, line, ValueError)
    assert str(exc) == "my code is broken"
    assert visible_package_frames(exc) == []


def test_a_model_method_named_with_f_that_raises_is_never_dropped(ip):
    load(ip, "cs231n_layers")
    load_convention(ip, "seed_net")  # a course net that would check fine instead
    run(ip, f"class Broken(TwoLayerNet):\n    def loss(self, X, y=None):\n        {BROKEN}\n")
    run(ip, "model = Broken(input_dim=3)\nX2 = np.ones((2, 3)); y = np.array([0, 1])")
    exc = raised(ip, "-f model.loss -p model.params", ValueError)
    assert visible_package_frames(exc) == []


def test_a_property_that_raises_when_named_is_the_users_exception_without_package_frames(ip, capsys):
    load(ip, "cs231n_layers")
    run(
        ip,
        "class M(TwoLayerNet):\n    @property\n    def broken(self):\n        raise RuntimeError('property boom')",
    )
    run(ip, "model = M(input_dim=3)\nX = np.ones((2, 3)); y = np.array([0, 1])")
    exc = raised(ip, "-f model.broken", RuntimeError)
    assert visible_package_frames(exc) == []
    assert "reading model.broken raised RuntimeError" in capsys.readouterr().err


@pytest.mark.parametrize(
    "odd",
    [
        "class Weird:\n    @property\n    def params(self):\n        raise RuntimeError('boom')\n    def loss(self, X):\n        return 0.0\nweird = Weird()",
        "class AttrDict(dict):\n    __getattr__ = dict.__getitem__\nconfig = AttrDict(lr=0.1)",
        "class Lazy:\n    def __getattr__(self, name):\n        raise ValueError(name)\nlazy = Lazy()",
    ],
)
def test_objects_whose_attributes_raise_do_not_stop_discovery(ip, odd):
    load_convention(ip, "seed_net")
    run(ip, odd)
    result = check(ip)
    assert result.functions.startswith("forward_propagation_n") and result.passed


def test_a_tuple_of_arrays_as_p_is_refused_by_name(ip):
    load_convention(ip, "seed_net")
    run(ip, "weights = (np.ones((2, 3)), np.ones(3))")
    with pytest.raises(UsageError, match="'weights' is a tuple: parameters must be a dict of numpy arrays"):
        check(ip, "-f forward_propagation_n -b backward_propagation_n -p weights")


STAR = """
def f(x, *args):
    a, = args
    return float(np.sum(a * x ** 2))
def g(x, *args):
    a, = args
    return 2 * a * x
x0 = np.linspace(-1, 1, 5)
a = 3.0
"""


def test_star_args_no_call_shows_are_refused_by_name_and_the_users_call_gives_them(ip):
    run(ip, STAR)
    with pytest.raises(UsageError, match=r"f\(x, \*args\): no call of yours shows what \*args are"):
        check(ip, "-f f -b g -p x0")
    cell(ip, "from scipy.optimize import check_grad\nprint(check_grad(f, g, x0, a))")
    result = check(ip, "-f f -b g -p x0")
    assert result.passed and not result.warned, result
    run(ip, "def g(x, *args):\n    a, = args\n    return 3 * a * x")
    assert check(ip, "-f f -b g -p x0").failed == ["x0"]


def test_raise_on_fail_shows_the_verdict_not_a_package_frame(ip, capsys):
    from test_planted_bugs import SEED_FIX

    load_convention(ip, "seed_net", replace=SEED_FIX)
    exc = raised(ip, "--raise-on-fail -q", GradCheckFailed)
    shown = capsys.readouterr().out
    assert "GradCheckFailed: gradient check failed: b1, W2" in shown
    assert "magics.py" not in shown and "File " not in shown
    assert exc._render_traceback_() == ["GradCheckFailed: gradient check failed: b1, W2"]


@pytest.mark.parametrize(
    "setup,line,label",
    [
        ("model = TwoLayerNet(input_dim=3)\nX = np.ones((0, 3)); y = np.zeros(0, dtype=int)", "model", "X"),
        (
            "x, w, b = np.ones((0, 3)), np.ones((3, 2)), np.ones(2)",
            "-f affine_forward -b affine_backward",
            "x",
        ),
    ],
)
def test_an_empty_batch_is_refused_by_name(ip, setup, line, label):
    load(ip, "cs231n_layers")
    run(ip, setup)
    with pytest.raises(UsageError, match=rf"{label} is empty \(shape \(0, 3\)\): there is no example"):
        check(ip, line)


FRAGILE = """
class Fragile(TwoLayerNet):
    def loss(self, X, y=None):
        if self.params["W2"][1, 2] != self.w:
            raise FloatingPointError("perturbed!")
        return super().loss(X, y)
model = Fragile(input_dim=3)
model.w = model.params["W2"][1, 2]
X = np.random.default_rng(0).standard_normal((4, 3)); y = np.array([0, 1, 2, 1])
"""


def test_a_loss_that_raises_only_when_perturbed_says_which_entry_and_loses_nothing(ip, capsys):
    load(ip, "cs231n_layers")
    run(ip, FRAGILE)
    before = {k: v.copy() for k, v in ip.user_ns["model"].params.items()}
    exc = raised(ip, "model", FloatingPointError)
    assert visible_package_frames(exc) == []
    assert "W2[1, 2] was perturbed" in exc._gradcheck_where
    assert (
        "model.loss(X, y) raised FloatingPointError while W2[1, 2] was perturbed" in capsys.readouterr().err
    )
    after = ip.user_ns["model"].params
    assert all(after[k].tobytes() == v.tobytes() for k, v in before.items())


ONCE = """
import functools
calls = []
def fails_once(f):
    @functools.wraps(f)
    def wrapped(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise ValueError("first call fails")
        return f(*args, **kwargs)
    return wrapped
L_model_forward = fails_once(L_model_forward)
"""


@pytest.mark.parametrize(
    "line", ["-f L_model_forward -b L_model_backward -c compute_cost", "-f L_model_forward"]
)
def test_a_forward_named_with_f_that_raises_on_its_first_call_is_the_error_not_a_check_that_goes_on(ip, line):
    load_convention(ip, "l_layer")
    run(ip, ONCE)
    exc = raised(ip, line, ValueError)
    assert str(exc) == "first call fails" and visible_package_frames(exc) == []
