"""Nothing lost: parameters (bits and dtype) and np.random state survive passes, failures,
exceptions in the user's code and Ctrl-C; the user sees their own traceback plus one line."""

import numpy as np
import pytest
from conftest import check, load_convention, run
from IPython.core.error import UsageError

FAULTY = """
calls = 0
def forward_faulty(X, Y, parameters, fault=None, at=-1, draw=False):
    global calls
    calls += 1
    Z = parameters["W"] @ X + parameters["b"]
    mask = np.random.rand(*Z.shape) < 0.8 if draw else np.ones(Z.shape, dtype=bool)
    Z = Z * mask
    cost = float(np.mean((np.tanh(Z) - Y) ** 2))
    if calls == at:
        if fault == "raise":
            raise ValueError("planted failure")
        if fault == "interrupt":
            raise KeyboardInterrupt
        if fault == "nan":
            return float("nan"), (Z, mask)
    return cost, (Z, mask)

def backward_faulty(X, Y, parameters, cache):
    Z, mask = cache
    A = np.tanh(Z)
    dZ = 2 * (A - Y) * (1 - A ** 2) * mask / Z.size
    return {"dW": dZ @ X.T, "db": dZ.sum(axis=1, keepdims=True)}
"""


def snapshot(params):
    return {k: (v.dtype, v.tobytes()) for k, v in params.items()}


def rng_state():
    s = np.random.get_state()
    return s[0], s[1].tobytes(), s[2:]


@pytest.mark.parametrize("trial", range(300))
def test_fault_injection_leaves_parameters_and_rng_identical(ip, trial):
    rng = np.random.default_rng(trial)
    fault = ("raise", "interrupt", "nan")[trial % 3]
    dtype = (np.float64, np.float32, np.int64)[rng.integers(3)]
    mode = ("full", "fast", "full")[rng.integers(3)]
    n_in, n_out, m = rng.integers(1, 4, size=3)
    run(ip, FAULTY)
    ip.user_ns.update(
        X=rng.normal(size=(n_in, m)),
        Y=rng.normal(size=(n_out, m)),
        parameters={
            "W": (rng.normal(size=(n_out, n_in)) * 3).astype(dtype),
            "b": (rng.normal(size=(n_out, 1)) * 3).astype(dtype),
        },
        fault=fault,
        draw=bool(rng.integers(2)),
        at=int(rng.integers(1, 2 + 2 * n_out * (n_in + 1))),
    )
    np.random.seed(trial)
    before_params, before_rng = snapshot(ip.user_ns["parameters"]), rng_state()
    try:
        result = check(ip, f"--mode {mode}")
    except ValueError as exc:
        assert fault == "raise" and "planted failure" in str(exc)
    except KeyboardInterrupt:  # Ctrl-C before the sweep started (discovery, baseline): re-raised
        assert fault == "interrupt"
    except UsageError as exc:  # NaN at θ: at the baseline (call 2) or its repeat (call 3)
        assert fault == "nan" and ("nothing can be verified" in str(exc) or "not deterministic" in str(exc))
    else:
        if fault == "interrupt" and ip.user_ns["calls"] >= ip.user_ns["at"]:
            assert not result.complete
        # call 1 is the dry run, 4 the sensitivity probe (2 and 3, the baseline and its repeat, raise)
        if fault == "nan" and ip.user_ns["calls"] >= ip.user_ns["at"] > 4:
            assert "cannot be verified" in " ".join(result.table["note"]), result
            assert result.warned or result.failed
    assert snapshot(ip.user_ns["parameters"]) == before_params
    assert rng_state() == before_rng


def test_exception_in_forward_shows_the_users_traceback_and_which_call(ip, capsys):
    run(ip, FAULTY)
    run(
        ip,
        "X = np.ones((2, 3)); Y = np.zeros((1, 3)); parameters = {'W': np.ones((1, 2)), 'b': np.zeros((1, 1))}; "
        "fault = 'raise'; at = 6",
    )
    before = snapshot(ip.user_ns["parameters"])
    result = ip.run_cell("%gradcheck")
    assert isinstance(result.error_in_exec, ValueError)
    captured = capsys.readouterr()
    err = captured.err + captured.out
    assert (
        "gradcheck: forward_faulty(X, Y, parameters, fault, at) raised ValueError while W[0, 0] was perturbed"
        in err
    )
    assert "planted failure" in err and "raise ValueError" in err  # the user's own line
    assert snapshot(ip.user_ns["parameters"]) == before


def test_exception_in_backward_names_the_backward(ip, capsys):
    load_convention(ip, "seed_net", replace=[("dZ3 = A3 - Y", "dZ3 = A3 - Y; 1 / 0")])
    result = ip.run_cell("%gradcheck")
    assert isinstance(result.error_in_exec, ZeroDivisionError)
    out = capsys.readouterr()
    assert "gradcheck: backward_propagation_n(X, Y, cache) raised ZeroDivisionError" in out.err + out.out


def test_ctrl_c_shows_the_rows_finished_so_far_marked_incomplete(ip):
    load_convention(
        ip,
        "seed_net",
        replace=[
            (
                "    m = X.shape[1]\n    W1 = parameters",
                "    global n_calls\n    n_calls += 1\n    if n_calls == 60:\n"
                "        raise KeyboardInterrupt\n    m = X.shape[1]\n    W1 = parameters",
            )
        ],
    )
    run(ip, "n_calls = 0")
    before = snapshot(ip.user_ns["parameters"])
    result = check(ip)
    assert not result.complete and result.interrupted
    table = result.table
    assert table.loc["W1", "status"] == "pass" and table.loc["W1", "evaluations"] == 40
    assert table.loc["b1", "status"] == "pass"
    assert "incomplete" in table.loc["W2", "note"]
    assert all("not checked" in table.loc[b, "note"] for b in ("b2", "W3", "b3"))
    assert "interrupted" in repr(result)
    assert snapshot(ip.user_ns["parameters"]) == before


def test_error_in_the_cell_body_propagates_and_skips_the_check(ip):
    load_convention(ip, "seed_net")
    result = ip.run_cell("%%gradcheck\nraise RuntimeError('in the cell')")
    assert isinstance(result.error_in_exec, RuntimeError)
