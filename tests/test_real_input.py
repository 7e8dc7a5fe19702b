"""Accept what users write (their containers, callables, matrices, numbers beside arrays) and refuse
by name, with the fix, what cannot be checked.  Each case runs through the real magic; correct code
must pass and a planted bug must fail in exactly its block."""

import numpy as np
import pytest
from conftest import check, run
from IPython.core.error import UsageError

NET = """
rng = np.random.default_rng(0)
X = rng.normal(size=(3, 5))
Y = (rng.random((1, 5)) > 0.5).astype(float)
parameters = {"W": rng.normal(size=(1, 3)), "b": rng.normal(size=(1, 1))}

def forward_propagation(X, Y, parameters):
    A = 1 / (1 + np.exp(-(parameters["W"] @ X + parameters["b"])))
    cost = -np.mean(Y * np.log(A) + (1 - Y) * np.log(1 - A))
    return cost, (A,)

def backward_propagation(X, Y, cache):
    (A,) = cache
    dZ = (A - Y) / X.shape[1]
    return {"dW": dZ @ X.T, "db": BUG * np.sum(dZ, axis=1, keepdims=True)}
"""


def net(ip, bug=False, extra=""):
    run(ip, NET.replace("BUG", "2.0" if bug else "1.0") + extra)


@pytest.mark.parametrize("bug, failed", [(False, []), (True, ["b"])])
def test_a_float_beside_the_arrays_is_a_block_when_it_has_a_gradient(ip, bug, failed):
    net(
        ip,
        bug,
        extra="""
parameters["b"] = float(parameters["b"][0, 0])
parameters["scale"] = np.float32(1.0)   # a constant the forward reads; no gradient
""",
    )
    result = check(ip)
    assert list(result.table.index) == ["W", "b"]
    assert result.failed == failed
    assert any("scale" in w and "not checked" in w for w in result.warnings)
    assert type(ip.user_ns["parameters"]["b"]) is float


def renamed_blocks(w_name: str, b_name: str) -> str:
    """A cell that renames the blocks W and b (parameters and gradients alike)."""
    return f"""
parameters = {{{w_name!r}: parameters["W"], {b_name!r}: parameters["b"]}}
_fwd, _bwd = forward_propagation, backward_propagation
def forward_propagation(X, Y, parameters):
    return _fwd(X, Y, {{"W": parameters[{w_name!r}], "b": parameters[{b_name!r}]}})
def backward_propagation(X, Y, cache):
    grads = _bwd(X, Y, cache)
    return {{{"d" + w_name!r}: grads["dW"], {"d" + b_name!r}: grads["db"]}}
"""


@pytest.mark.parametrize("bug, failed", [(False, []), (True, ["decoder"])])
def test_keys_starting_with_d_are_parameters_not_gradients(ip, bug, failed):
    net(
        ip,
        bug,
        extra=renamed_blocks("dense", "decoder"),
    )
    assert check(ip).failed == failed


@pytest.mark.parametrize(
    "wrapper",
    [
        "def forward_propagation(X, Y, parameters, *args, **kwargs):\n    return _fwd(X, Y, parameters)",
        "import functools\nforward_propagation = functools.partial(_fwd, Y=Y)",
        "class Net:\n    def forward(self, X, Y, parameters):\n        return _fwd(X, Y, parameters)\n"
        "forward_propagation = Net().forward",
        "class Forward:\n    def __call__(self, X, Y, parameters):\n        return _fwd(X, Y, parameters)\n"
        "forward_propagation = Forward()",
    ],
)
@pytest.mark.parametrize("bug, failed", [(False, []), (True, ["b"])])
def test_star_args_partial_bound_method_and_callable_object_forwards(ip, wrapper, bug, failed):
    net(ip, bug, extra="_fwd = forward_propagation\n" + wrapper)
    result = check(ip)
    assert result.failed == failed


@pytest.mark.parametrize("container", ["OrderedDict", "Params"])
def test_the_users_own_dict_type_reaches_the_users_code(ip, container):
    net(
        ip,
        True,
        extra="""
from collections import OrderedDict
class Params(dict):
    def weights(self):
        return self["W"]
_fwd = forward_propagation
def forward_propagation(X, Y, parameters):
    assert type(parameters).__name__ == CONTAINER, type(parameters)
    parameters.move_to_end("W") if CONTAINER == "OrderedDict" else parameters.weights()
    return _fwd(X, Y, parameters)
parameters = CONTAINER_TYPE(parameters)
""".replace("CONTAINER_TYPE", container).replace("CONTAINER", repr(container)),
    )
    result = check(ip)
    assert result.failed == ["b"]
    assert type(ip.user_ns["parameters"]).__name__ == container


@pytest.mark.parametrize("bug, failed", [(False, []), (True, ["b"])])
def test_matrix_parameters_reach_the_forward_as_matrices(ip, bug, failed):
    net(
        ip,
        bug,
        extra="""
parameters = {k: np.matrix(v) for k, v in parameters.items()}
_fwd, _bwd = forward_propagation, backward_propagation
def forward_propagation(X, Y, parameters):
    assert isinstance(parameters["W"], np.matrix)
    return _fwd(X, Y, {k: np.asarray(v) for k, v in parameters.items()})
""",
    )
    result = check(ip)
    assert result.failed == failed
    assert isinstance(ip.user_ns["parameters"]["W"], np.matrix)


def test_complex_parameters_are_refused_by_name(ip):
    net(ip, extra='parameters["W"] = parameters["W"] + 0j')
    with pytest.raises(UsageError, match=r"parameters\['W'\] is complex"):
        check(ip)


def test_masked_parameters_are_refused_by_name(ip):
    net(ip, extra='parameters["W"] = np.ma.masked_less(parameters["W"], 0)')
    with pytest.raises(UsageError, match=r"parameters\['W'\] is a masked array"):
        check(ip)


def test_a_complex_gradient_fails_its_block_never_passes(ip):
    net(
        ip,
        extra="""
_bwd = backward_propagation
def backward_propagation(X, Y, cache):
    grads = _bwd(X, Y, cache)
    grads["dW"] = grads["dW"] + 1j * grads["dW"]
    return grads
""",
    )
    result = check(ip)
    assert result.failed == ["W"]
    assert "complex" in result.table.loc["W", "note"]


def test_a_float32_cost_is_refused_as_a_precision_matter_not_a_kink(ip):
    net(
        ip,
        extra="""
_fwd = forward_propagation
def forward_propagation(X, Y, parameters):
    cost, cache = _fwd(X, Y, parameters)
    return np.float32(cost), cache
""",
    )
    with pytest.raises(UsageError, match="float32 cost: its precision") as info:
        check(ip)
    assert "kink" not in str(info.value) and "non-differentiable" not in str(info.value)


def test_an_integer_cost_is_refused_as_an_integer(ip):
    net(
        ip,
        extra="""
_fwd = forward_propagation
def forward_propagation(X, Y, parameters):
    cost, cache = _fwd(X, Y, parameters)
    return int(cost * 1000), cache
""",
    )
    with pytest.raises(UsageError, match="integer cost"):
        check(ip)


def test_a_cost_nan_on_the_second_evaluation_is_not_finite_not_nondeterministic(ip):
    net(
        ip,
        extra="""
calls = 0
_fwd = forward_propagation
def forward_propagation(X, Y, parameters):
    global calls
    calls += 1
    cost, cache = _fwd(X, Y, parameters)
    return (float("nan") if calls == 3 else cost), cache
""",
    )
    with pytest.raises(UsageError, match="not finite") as info:
        check(ip)
    assert "not deterministic" not in str(info.value)


def test_block_names_are_html_escaped_in_the_table(ip):
    net(
        ip,
        True,
        extra=renamed_blocks("<b>W</b>", "b"),
    )
    html = check(ip)._repr_html_()
    assert "<b>W</b>" not in html and "&lt;b&gt;W&lt;/b&gt;" in html


def test_a_float32_forward_widened_by_float_is_refused_as_precision(ip):
    net(
        ip,
        extra="""
_fwd = forward_propagation
def forward_propagation(X, Y, parameters):
    small = {k: v.astype(np.float32) for k, v in parameters.items()}
    cost, cache = _fwd(X.astype(np.float32), Y.astype(np.float32), small)
    return float(cost), cache
""",
    )
    with pytest.raises(UsageError, match="float32 precision") as info:
        check(ip)
    assert "kink" not in str(info.value)


def test_a_forward_taking_only_star_args_is_refused_by_name_with_the_fix(ip):
    net(
        ip,
        extra="""
_fwd = forward_propagation
def forward_propagation(*args, **kwargs):
    return _fwd(*args, **kwargs)
""",
    )
    with pytest.raises(
        UsageError, match=r"forward_propagation\(\*args, \*\*kwargs\) does not name its arguments"
    ):
        check(ip)
    assert check(ip, "-f _fwd").passed  # named arguments: checked


@pytest.mark.parametrize(
    "extra, message",
    [
        ('parameters["c"] = None', r"parameters\['c'\] is a NoneType, not a numpy array"),
        ('parameters["W"] = parameters["W"].astype(object)', r"parameters\['W'\] has dtype object"),
        (
            "_f = forward_propagation\ndef forward_propagation(X, Y, parameters):\n    _f(X, Y, parameters)",
            "forward_propagation returned None; expected the cost",
        ),
        (
            "_f = forward_propagation\ndef forward_propagation(X, Y, parameters):\n"
            "    cost, cache = _f(X, Y, parameters)\n    return complex(cost), cache",
            "returned a complex cost",
        ),
    ],
)
def test_unusable_input_is_refused_naming_the_entry_or_the_output(ip, extra, message):
    net(ip, extra=extra)
    with pytest.raises(UsageError, match=message) as info:
        check(ip)
    assert "no backward function can be called" not in str(info.value)


@pytest.mark.parametrize("bug", [False, True])
def test_a_forward_that_reads_one_block_in_float32_is_refused_naming_that_block(ip, bug):
    """The cost stays float64, so only its slopes show the rounding: a change float64 resolves
    but float32 cannot moves it erratically or not at all.  Never mistaken for a wrong gradient,
    whatever the backward says."""
    net(
        ip,
        bug,
        extra="""
_fwd = forward_propagation
def forward_propagation(X, Y, parameters):
    return _fwd(X, Y, dict(parameters, W=parameters["W"].astype(np.float32)))
""",
    )
    before = {k: v.copy() for k, v in ip.user_ns["parameters"].items()}
    with pytest.raises(UsageError, match=r"reads W at float32 precision or coarser") as info:
        check(ip)
    assert "astype(np.float32)" in str(info.value)
    for k, v in ip.user_ns["parameters"].items():
        assert v.dtype == np.float64 and np.array_equal(v, before[k])


def test_float64_code_near_float32_values_is_not_taken_for_float32(ip):
    """Parameters that happen to be float32 values (rounded once, computed in float64) still pass."""
    net(ip, extra="parameters = {k: v.astype(np.float32).astype(np.float64) for k, v in parameters.items()}")
    assert check(ip).passed


def test_an_array_given_as_the_object_to_check_is_told_to_use_p(ip):
    run(ip, "def f(x):\n    return float(x @ x)\n\ndef fprime(x):\n    return 2 * x\n\nx0 = np.arange(3.0)")
    with pytest.raises(UsageError, match=r"x0 is an array, not a model or layer object.*-p x0"):
        check(ip, "-f f -b fprime x0")
    assert check(ip, "-f f -b fprime -p x0").passed
