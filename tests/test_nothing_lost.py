"""Nothing lost on every path: inputs recorded before the first user call (discovery's probe
included), each array restored on its own, np.random always put back, mutation reported."""

import numpy as np
import pytest
from conftest import check, load_convention, run
from IPython.core.error import UsageError
from test_planted_bugs import SEED_FIX


def rng_state():
    state = np.random.get_state()
    return state[0], state[1].tobytes(), state[2:]


@pytest.mark.parametrize("centering", ["X -= X.mean(axis=1, keepdims=True)", "X[0, 0] = 0"])
def test_forward_that_changes_X_in_place_is_reported_and_X_restored(ip, centering):
    load_convention(ip, "seed_net")
    run(
        ip,
        f"""
_original_forward = forward_propagation_n
def forward_propagation_n(X, Y, parameters):
    {centering}
    return _original_forward(X, Y, parameters)
""",
    )
    before = ip.user_ns["X"].copy()
    with pytest.raises(UsageError, match="modified X in place"):
        check(ip)
    assert np.array_equal(ip.user_ns["X"], before) and ip.user_ns["X"].dtype == before.dtype


def test_backward_that_reshapes_a_global_in_place_is_restored_with_a_note_and_rng_kept(ip):
    load_convention(ip, "seed_net")
    run(
        ip,
        """
_original_backward = backward_propagation_n
def backward_propagation_n(X, Y, cache):
    Y.shape = (-1,)
    return _original_backward(X, Y.reshape(1, -1), cache)
Y = Y.reshape(1, -1).copy()
""",
    )
    before_Y, before_W1 = ip.user_ns["Y"].copy(), ip.user_ns["parameters"]["W1"].copy()
    np.random.seed(3)
    before_rng = rng_state()
    result = check(ip)
    assert ip.user_ns["Y"].shape == before_Y.shape and np.array_equal(ip.user_ns["Y"], before_Y)
    assert np.array_equal(ip.user_ns["parameters"]["W1"], before_W1)
    assert rng_state() == before_rng
    assert any("Y" in w for w in result.warnings), result.warnings


def test_forward_probe_that_draws_random_numbers_leaves_the_rng_where_it_was(ip):
    load_convention(ip, "dropout", replace=[("    np.random.seed(1)\n", "")])
    np.random.seed(11)
    before = rng_state()
    assert check(ip).passed
    assert rng_state() == before


def test_user_dict_subclass_keeps_its_identity_keys_and_arrays(ip):
    load_convention(ip, "seed_net", replace=SEED_FIX)
    run(
        ip,
        """
from collections import OrderedDict
parameters = OrderedDict(parameters)
held = parameters
arrays = dict(parameters)
""",
    )
    result = check(ip)
    assert result.failed == ["b1", "W2"]
    params = ip.user_ns["parameters"]
    assert params is ip.user_ns["held"] and type(params).__name__ == "OrderedDict"
    assert all(params[k] is v for k, v in ip.user_ns["arrays"].items())
