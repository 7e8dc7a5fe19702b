"""Nothing lost: parameters (bits and dtype) and np.random state survive passes, failures,
exceptions in the user's code and Ctrl-C; the user sees their own traceback plus one line."""

import numpy as np
import pytest
from conftest import check, load_convention, run
from IPython.core.error import UsageError

FAULTY = """
import types
tally = types.ModuleType("tally")  # a module: a check gives back what the calls touch, not modules
tally.calls = 0
def forward_faulty(X, Y, parameters, fault=None, at=-1, draw=False):
    tally.calls += 1
    Z = parameters["W"] @ X + parameters["b"]
    mask = np.random.rand(*Z.shape) < 0.8 if draw else np.ones(Z.shape, dtype=bool)
    Z = Z * mask
    cost = float(np.mean((np.tanh(Z) - Y) ** 2))
    if tally.calls == at:
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
        if fault == "interrupt" and ip.user_ns["tally"].calls >= ip.user_ns["at"]:
            assert not result.complete
        # call 1 is the dry run, 4 the sensitivity probe (2 and 3, the baseline and its repeat, raise)
        if fault == "nan" and ip.user_ns["tally"].calls >= ip.user_ns["at"] > 4:
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
    assert (
        table.loc["W1", "status"] == "pass" and table.loc["W1", "evaluations"] >= 40
    )  # every entry differenced (some re-stepped)
    assert table.loc["b1", "status"] == "pass"
    assert "incomplete" in table.loc["W2", "note"]
    assert all("not checked" in table.loc[b, "note"] for b in ("b2", "W3", "b3"))
    assert "interrupted" in repr(result)
    assert snapshot(ip.user_ns["parameters"]) == before


def test_error_in_the_cell_body_propagates_and_skips_the_check(ip):
    load_convention(ip, "seed_net")
    result = ip.run_cell("%%gradcheck\nraise RuntimeError('in the cell')")
    assert isinstance(result.error_in_exec, RuntimeError)


# ---- the one snapshot on its own (safety.Snapshot) -------------------------------------------------

USER_CODE = """
import numpy as np

class Box:
    pass

class Normalizer:
    instances = 0

    def __init__(self):
        self.count = 0
        self.mean = np.zeros(3)

    def update(self, X):
        Normalizer.instances += 1
        self.count += len(X)
        self.mean = self.mean + X.sum(axis=0)

norm = Normalizer()
steps = 0

def make_counter():
    seen = []
    total = 0
    def count(X):
        nonlocal total
        total += 1
        seen.append(total)
        return total
    return count

counter = make_counter()

def loss(model, X):
    global steps, created
    steps += 1
    created = np.ones(3)
    norm.update(X)
    counter(X)
    model.deep.inner.inner.inner.inner.inner.out = X @ model.W
    model.extra = 1
    del model.note
    model.W[0, 0] = np.nan
    return float(np.sum(model.W))
"""


def user_namespace():
    namespace = {"__name__": "__main__"}
    exec(USER_CODE, namespace)  # noqa: S102 - the user's code, as a notebook runs it
    box = namespace["Box"]
    model = box()
    model.W = np.arange(6.0).reshape(3, 2)
    model.note = "kept"
    node = model.deep = box()
    for _ in range(5):
        node.inner = box()
        node = node.inner
    node.out = np.zeros((4, 2))
    namespace["model"] = model
    namespace["X"] = np.ones((4, 3))
    return namespace


def test_snapshot_gives_back_every_object_the_users_calls_touched_at_any_depth():
    from gradcheck_magic.safety import Snapshot

    ns = user_namespace()
    model, norm = ns["model"], ns["norm"]
    W, out, mean = model.W, model.deep.inner.inner.inner.inner.inner.out, norm.mean
    snapshot = Snapshot({"loss": ns["loss"], "model": model, "X": ns["X"]}, ns, watch=["model", "X"])
    snapshot.watch("model.W", W)
    ns["loss"](model, ns["X"])
    assert snapshot.changes() == ["model.W"]
    assert snapshot.restore() == []
    assert model.W is W and np.array_equal(W, np.arange(6.0).reshape(3, 2))
    assert model.deep.inner.inner.inner.inner.inner.out is out  # six attributes deep
    assert vars(model).keys() == {"W", "note", "deep"} and model.note == "kept"  # none added, none removed
    assert norm.count == 0 and norm.mean is mean  # a global helper the function reads
    assert ns["Normalizer"].instances == 0  # a class attribute of a user class
    assert ns["steps"] == 0 and "created" not in ns  # globals the function assigns
    assert ns["counter"](None) == 1  # the closure's cells (total and seen) as they were


def test_snapshot_restores_bits_of_nans_and_signed_zeros_and_the_dtype():
    from gradcheck_magic.safety import Snapshot

    a = np.array([np.nan, -0.0, 1.0], dtype=np.float32)
    payload = a.view(np.uint32).copy()
    holder = {"a": a}
    snapshot = Snapshot({"holder": holder})
    a[:] = [np.float32(np.nan) * -1, 0.0, 1.0]
    holder["a"] = a.astype(np.float64)
    snapshot.restore()
    assert holder["a"] is a and a.dtype == np.float32
    assert np.array_equal(a.view(np.uint32), payload)


def test_snapshot_keeps_one_copy_of_each_array_however_many_places_hold_it():
    from types import SimpleNamespace

    from gradcheck_magic.safety import Snapshot

    big, small = np.zeros((100, 100)), np.zeros(3)
    layer = SimpleNamespace(W=big, cache=(big, small))
    net = SimpleNamespace(params={"W": big, "b": small}, layers=[layer], again=layer)
    snapshot = Snapshot({"net": net, "W": big}, watch=["W"])
    assert len(snapshot.arrays) == 2
    assert sum(s.copy.nbytes for s in snapshot.arrays.values()) == big.nbytes + small.nbytes


def test_snapshot_does_not_walk_library_code_or_modules():
    import sys
    import types
    from pathlib import Path

    import gradcheck_magic
    from gradcheck_magic.safety import Snapshot, is_library

    ns = user_namespace()
    snapshot = Snapshot({"loss": ns["loss"]}, ns)
    walked = {type(v) for v in snapshot._seen.values()}
    assert types.ModuleType not in walked
    assert is_library("numpy") and is_library("json") and is_library("IPython.core")
    assert not is_library("__main__") and not is_library(None)
    private = types.ModuleType("_graders_copy_of_engine")  # a copy of the package under another name
    private.__file__ = str(Path(gradcheck_magic.__file__).parent / "engine" / "runner.py")
    sys.modules[private.__name__] = private
    try:
        assert is_library(private.__name__)
    finally:
        del sys.modules[private.__name__]


def test_both_random_generators_replay_and_are_put_back():
    import random

    from gradcheck_magic.safety import Draws, Snapshot

    random.seed(5)
    np.random.seed(5)
    snapshot = Snapshot({})
    first = (random.random(), np.random.rand())
    draws = snapshot.draws
    assert draws.moved()
    draws.replay()
    assert not draws.moved()
    assert (random.random(), np.random.rand()) == first
    random.random()
    snapshot.restore()
    assert not Draws().moved() and (random.random(), np.random.rand()) == first


def test_snapshots_alive_together_share_one_copy_of_an_unchanged_array_never_a_stale_one():
    from gradcheck_magic.safety import Snapshot

    a = np.arange(4.0)
    first = Snapshot({"a": a})
    candidate = Snapshot({"model": {"W": a}})
    assert candidate.arrays[id(a)].copy is first.arrays[id(a)].copy  # one copy for the check
    a[0] = 7.0  # changed after both (a later cell): a new snapshot copies the array as it is now
    later = Snapshot({"a": a})
    assert later.arrays[id(a)].copy is not first.arrays[id(a)].copy
    a[0] = -1.0
    later.restore()
    assert a[0] == 7.0


def test_an_array_retyped_in_place_is_rebound_to_its_own_copy_with_a_note():
    import warnings

    from gradcheck_magic.safety import Snapshot

    a = np.arange(3.0)
    holder = {"a": a}
    snapshot = Snapshot({"holder": holder})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a.dtype = np.int64  # in place: the same buffer read as integers
    notes = snapshot.restore()
    assert notes and "holder['a'] was reshaped or retyped in place" in notes[0]
    assert holder["a"].dtype == np.float64 and np.array_equal(holder["a"], np.arange(3.0))
    assert holder["a"] is not snapshot.arrays[id(a)].copy  # the snapshot's copy stays its own
