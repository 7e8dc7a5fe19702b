"""Nothing lost on every path: inputs recorded before the first user call (discovery's probe
included), each array restored on its own, np.random always put back, mutation reported."""

import numpy as np
import pytest
from conftest import check, load, load_convention, run
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


def everything(ip, names) -> dict:
    """Every object reachable from these names through attributes, dicts, lists and tuples, at any
    depth, by where it sits, with each array's bits and dtype: what a check must give back as it was."""
    found, stack, seen = {}, [(n, ip.user_ns[n]) for n in names], set()
    while stack:
        label, value = stack.pop()
        found[label] = value
        if isinstance(value, np.ndarray):
            found[label + " bits"] = (value.dtype.str, value.shape, value.tobytes())
            continue
        if id(value) in seen:
            continue
        seen.add(id(value))
        if isinstance(value, dict):
            stack += [(f"{label}[{k!r}]", v) for k, v in value.items()]
        elif isinstance(value, (list, tuple)):
            stack += [(f"{label}[{i}]", v) for i, v in enumerate(value)]
        elif type(value).__module__ == "__main__":
            stack += [(f"{label}.{k}", v) for k, v in vars(value).items()]
    return found


def assert_as_before(ip, names, before: dict):
    after = everything(ip, names)
    assert sorted(after.keys() - before.keys()) == [], "added"
    assert sorted(before.keys() - after.keys()) == [], "removed"
    for label, value in before.items():
        if label.endswith(" bits"):
            assert after[label] == value, f"{label} changed"
        else:
            assert after[label] is value, f"{label} is not the object it was"


#: nnfs's own ReLU keeps its inputs; functions chain layer objects through it (finding 5).
NNFS_CHAIN = """
class Activation_ReLU:
    def forward(self, inputs):
        self.inputs = inputs
        self.output = np.maximum(0, inputs)

    def backward(self, dvalues):
        self.dinputs = dvalues.copy()
        self.dinputs[self.inputs <= 0] = 0

rng = np.random.default_rng(4)
X = rng.standard_normal((6, 2))
y_true = rng.standard_normal((6, 3))
dense1, act1, dense2 = Layer_Dense(2, 5, seed=4), Activation_ReLU(), Layer_Dense(5, 3, seed=5)
loss_function = Loss_MeanSquared()

def forward(X, y_true):
    dense1.forward(X)
    act1.forward(dense1.output)
    dense2.forward(act1.output)
    return loss_function.forward(dense2.output, y_true)

def backward():
    loss_function.backward()
    dense2.backward(loss_function.dinputs)
    act1.backward(dense2.dinputs)
    dense1.backward(act1.dinputs)
"""


@pytest.mark.parametrize("line", ["", "-f forward -b backward"])
@pytest.mark.parametrize("ran", [False, True], ids=["fresh", "after-a-training-step"])
def test_functions_over_layer_objects_leave_every_activation_and_loss_object_as_it_was(ip, line, ran):
    load(ip, "nnfs_layers")
    run(ip, NNFS_CHAIN + ("forward(X, y_true)\nbackward()\n" if ran else ""))
    names = ["dense1", "act1", "dense2", "loss_function", "X", "y_true"]
    before = everything(ip, names)
    result = check(ip, line)
    assert result.passed and not result.warned, result
    assert_as_before(ip, names, before)


DEEP_MODEL = """
class Box:
    pass

class DeepCache:
    \"\"\"Least squares that caches its output {depth} attribute levels deep.\"\"\"

    def __init__(self, seed):
        rng = np.random.default_rng(seed)
        self.params = {{"W": rng.standard_normal((3, 2))}}
        self.cache = node = Box()
        for level in range({depth} - 2):
            node.inner = Box()
            node = node.inner
        node.out = np.zeros((5, 2))

    def loss(self, X, y):
        out = X @ self.params["W"]
        node = self.cache
        while hasattr(node, "inner"):
            node = node.inner
        node.out = out
        residual = out - y
        return 0.5 * float(np.sum(residual**2)), {{"W": X.T @ residual}}

model = DeepCache(1)
X, y = np.random.default_rng(2).standard_normal((5, 3)), np.random.default_rng(3).standard_normal((5, 2))
"""


@pytest.mark.parametrize("depth", [7, 12])
def test_a_model_caching_an_array_deep_in_its_attributes_gets_the_cached_array_back(ip, depth):
    run(ip, DEEP_MODEL.format(depth=depth))
    before = everything(ip, ["model", "X", "y"])
    result = check(ip, "model")
    assert result.passed and not result.warned, result
    assert_as_before(ip, ["model", "X", "y"], before)


GLOBAL_HELPER = """
class Normalizer:
    def __init__(self):
        self.count = 0
        self.mean = np.zeros(3)
        self.seen = []

    def update(self, X):
        self.count += len(X)
        self.mean = self.mean + X.sum(axis=0)
        self.seen.append(len(X))

norm = Normalizer()

class Regression:
    def __init__(self):
        self.params = {"W": np.random.default_rng(5).standard_normal((3, 2))}

    def loss(self, X, y):
        norm.update(X)
        residual = X @ self.params["W"] - y
        return 0.5 * float(np.sum(residual**2)), {"W": X.T @ residual}

model = Regression()
X, y = np.random.default_rng(6).standard_normal((5, 3)), np.random.default_rng(7).standard_normal((5, 2))
"""


@pytest.mark.parametrize("line", ["model", ""])
def test_a_global_helper_object_the_loss_updates_is_given_back(ip, line):
    run(ip, GLOBAL_HELPER)
    before = everything(ip, ["model", "norm", "X", "y"])
    result = check(ip, line)
    assert result.passed, result
    assert ip.user_ns["norm"].count == 0 and ip.user_ns["norm"].seen == []
    assert_as_before(ip, ["model", "norm", "X", "y"], before)


def test_a_course_forward_that_logs_into_a_global_list_leaves_it_as_it_was(ip):
    load_convention(ip, "seed_net", replace=SEED_FIX)
    run(
        ip,
        """
history = []
_original_forward = forward_propagation_n
def forward_propagation_n(X, Y, parameters):
    cost, cache = _original_forward(X, Y, parameters)
    history.append(cost)
    return cost, cache
""",
    )
    result = check(ip)
    assert result.failed == ["b1", "W2"]
    assert ip.user_ns["history"] == []


def random_states():
    import random

    return rng_state(), random.getstate()


PYTHON_RANDOM_DROPOUT = [
    ("    np.random.seed(1)\n", "    import random\n"),
    (
        "D1 = np.random.rand(A1.shape[0], A1.shape[1])",
        "D1 = np.array([[random.random() for _ in range(A1.shape[1])] for _ in range(A1.shape[0])])",
    ),
    (
        "D2 = np.random.rand(A2.shape[0], A2.shape[1])",
        "D2 = np.array([[random.random() for _ in range(A2.shape[1])] for _ in range(A2.shape[0])])",
    ),
]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_dropout_masks_drawn_from_pythons_random_are_the_same_every_evaluation(ip, seed):
    import random

    load_convention(ip, "dropout", replace=PYTHON_RANDOM_DROPOUT)
    random.seed(seed)
    np.random.seed(seed)
    before = random_states()
    result = check(ip)
    assert result.passed and not result.warned, result
    assert random_states() == before


#: A word2vec-style loss: negative samples drawn from Python's random through a dataset object.
NEGATIVE_SAMPLING = """
import random

class Dataset:
    def __init__(self, n):
        self.n = n

    def sampleTokenIdx(self):
        return random.randint(0, self.n - 1)

class NegSampling:
    def __init__(self, n, d, seed):
        rng = np.random.default_rng(seed)
        self.params = {"U": rng.standard_normal((n, d)), "v": rng.standard_normal(d)}

    def loss(self, dataset, K):
        U, v = self.params["U"], self.params["v"]
        idx = [dataset.sampleTokenIdx() for _ in range(K)]
        scores = U[idx] @ v
        sig = 1 / (1 + np.exp(scores))
        dU = np.zeros_like(U)
        np.add.at(dU, idx, -(1 - sig)[:, None] * v * -1)
        dv = (1 - sig) @ U[idx]
        return -float(np.sum(np.log(sig))), {"U": dU, "v": dv}

dataset, K = Dataset(7), 5
model = NegSampling(7, 3, seed=%d)
"""


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_loss_sampling_from_pythons_random_is_checked_and_both_generators_put_back(ip, seed):
    import random

    run(ip, NEGATIVE_SAMPLING % seed)
    random.seed(seed + 10)
    np.random.seed(seed + 10)
    before = random_states()
    result = check(ip, "model")
    assert result.passed and not result.warned, result
    assert random_states() == before


def test_a_wrong_gradient_under_pythons_random_still_fails_its_block(ip):
    run(ip, (NEGATIVE_SAMPLING % 0).replace("dv = (1 - sig) @ U[idx]", "dv = 2 * (1 - sig) @ U[idx]"))
    assert check(ip, "model").failed == ["v"]


#: The chain's ReLU, tripping at the evaluation numbered ``at`` (a raise, a Ctrl-C or a NaN), counted
#: in a module (a check gives back what the calls touch, not modules).
TRIPPING_RELU = """
import types
tally = types.ModuleType("tally")
tally.calls = 0
_relu_forward = Activation_ReLU.forward

def tripping_forward(self, inputs):
    tally.calls += 1
    _relu_forward(self, inputs)
    if tally.calls == at:
        if fault == "raise":
            raise ValueError("planted failure")
        if fault == "interrupt":
            raise KeyboardInterrupt
        self.output = self.output * np.nan

Activation_ReLU.forward = tripping_forward
"""


@pytest.mark.parametrize("trial", range(12))
def test_functions_over_layer_objects_give_every_object_back_after_a_raise_a_ctrl_c_or_a_nan(ip, trial):
    import random

    rng = np.random.default_rng(trial)
    fault = ("raise", "interrupt", "nan")[trial % 3]
    load(ip, "nnfs_layers")
    run(ip, NNFS_CHAIN + ("forward(X, y_true)\nbackward()\n" if trial % 2 else ""))
    ip.user_ns.update(fault=fault, at=int(rng.integers(1, 60)))
    run(ip, TRIPPING_RELU)
    names = ["dense1", "act1", "dense2", "loss_function", "X", "y_true", "Activation_ReLU"]
    before = everything(ip, names)
    relu_attrs = dict(vars(ip.user_ns["Activation_ReLU"]))
    random.seed(trial)
    np.random.seed(trial)
    states = random_states()
    try:
        check(ip, f"-f forward -b backward --mode {('full', 'fast')[trial % 2]}")
    except ValueError as exc:
        assert fault == "raise" and "planted failure" in str(exc)
    except KeyboardInterrupt:
        assert fault == "interrupt"
    except UsageError:
        assert fault == "nan"
    assert_as_before(ip, names, before)
    assert dict(vars(ip.user_ns["Activation_ReLU"])) == relu_attrs
    assert random_states() == states
