"""Objects whose methods read their own arrays, holding float32 (or integer, read-only, strided) arrays:
checked through one float64 copy per array swapped into every place the object holds it, and put
back on every path; the user's arrays never change, not even their dtype."""

import re

import numpy as np
import pytest
from conftest import check, load, run, source
from IPython.core.error import UsageError
from test_objects import TRIP, TRIPPED

#: The four ways an object's methods read its own arrays, each with float32 parameters: the homework
#: file, the cell (``{cls}`` is the class the object is built from, ``{seed}`` its seed), the line,
#: the blocks, the names whose arrays the check must leave alone, and a bug in one gradient (applied
#: to the homework and cell text together) with the one block it must fail; ``span`` bounds the call a
#: fault is planted at (about the number of calls a fast-mode check makes).
KINDS = {
    "model": dict(
        homework="cs231n_layers",
        cell="""
rng = np.random.default_rng({seed})
model = {cls}(input_dim=3, hidden_dim=5, num_classes=3, seed={seed})
model.params = {{name: value.astype(np.float32) for name, value in model.params.items()}}
X = rng.standard_normal((6, 3))
y = rng.integers(3, size=6)
""",
        base="TwoLayerNet",
        line="model",
        blocks=["W1", "b1", "W2", "b2"],
        roots=["model", "X", "y"],
        bug=('grads["W2"] += self.reg * self.params["W2"]', "pass"),
        fails="W2",
        span=36,
    ),
    "network": dict(
        homework="scratch_net",
        cell="""
rng = np.random.default_rng({seed})
network = {cls}(3, 5, 3, seed={seed})
for name in list(network.params):
    network.params[name] = network.params[name].astype(np.float32)
for i in (1, 2):
    affine = network.layers[f"Affine{{i}}"]
    affine.W, affine.b = network.params[f"W{{i}}"], network.params[f"b{{i}}"]
x = rng.standard_normal((6, 3))
t = np.eye(3)[rng.integers(3, size=6)]
""",
        base="TwoLayerNetwork",
        line="network",
        blocks=["W1", "b1", "W2", "b2"],
        roots=["network", "x", "t"],
        bug=('"b2": self.layers["Affine2"].db,', '"b2": 0.9 * self.layers["Affine2"].db,'),
        fails="b2",
        span=38,
    ),
    "layer": dict(
        homework="nnfs_layers",
        cell="""
rng = np.random.default_rng({seed})
X = rng.standard_normal((5, 2))
dense1 = {cls}(2, 4, seed={seed})
dense1.weights, dense1.biases = dense1.weights.astype(np.float32), dense1.biases.astype(np.float32)
dense1.forward(X)
dense1.backward(np.ones((5, 4)))
""",
        base="Layer_Dense",
        line="dense1",
        blocks=["dense1.weights", "dense1.biases", "inputs"],
        roots=["dense1", "X"],
        bug=("self.dweights = self.inputs.T @ dvalues", "self.dweights = 1.05 * self.inputs.T @ dvalues"),
        fails="dense1.weights",
        span=24,
    ),
    "functions": dict(
        homework="nnfs_layers",
        cell="""
rng = np.random.default_rng({seed})
X = rng.standard_normal((6, 2))
target = rng.standard_normal((6, 3))
dense1, dense2 = {cls}(2, 4, seed={seed}), {cls}(4, 3, seed={seed} + 7)
squash, mse = Activation_Tanh(), Loss_MeanSquared()
for layer in (dense1, dense2):
    layer.weights, layer.biases = layer.weights.astype(np.float32), layer.biases.astype(np.float32)

def forward(X, target):
    dense1.forward(X)
    squash.forward(dense1.output)
    dense2.forward(squash.output)
    return mse.forward(dense2.output, target)

def backward():
    mse.backward()
    dense2.backward(mse.dinputs)
    squash.backward(dense2.dinputs)
    dense1.backward(squash.dinputs)

forward(X, target)
backward()
""",
        base="Layer_Dense",
        line="-f forward -b backward",
        blocks=["dense1.weights", "dense1.biases", "dense2.weights", "dense2.biases"],
        roots=["dense1", "dense2", "X", "target"],
        bug=(
            "    dense1.backward(squash.dinputs)\n",
            "    dense1.backward(squash.dinputs)\n    dense1.dbiases = dense1.dbiases * 1.1\n",
        ),
        fails="dense1.biases",
        span=75,
    ),
}


def setup(ip, kind, seed=0, bug=False, tripped=False):
    spec = KINDS[kind]
    text = source(spec["homework"]) + (TRIP + TRIPPED[spec["base"]] if tripped else "")
    text += spec["cell"].format(seed=seed, cls="Tripped" if tripped else spec["base"])
    if bug:
        old, new = spec["bug"]
        assert text.count(old) == 1, f"planted bug not applied: {old!r}"
        text = text.replace(old, new)
    run(ip, text)
    if tripped:
        run(ip, "tally.calls = 0")
    return spec


def holdings(ip, names) -> dict:
    """Every array, dict, list, tuple and object reachable from these names, by where it sits, with
    the bits and dtype of each array: what the check must give back, object for object."""
    found = {}

    def walk(label, value, depth):
        found[label] = value
        if isinstance(value, np.ndarray):
            found[label + " bits"] = (value.dtype.str, value.shape, value.strides, value.tobytes())
        elif depth < 5 and isinstance(value, dict):
            for k, v in value.items():
                walk(f"{label}[{k!r}]", v, depth + 1)
        elif depth < 5 and isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(f"{label}[{i}]", v, depth + 1)
        elif depth < 5 and type(value).__module__ == "__main__":
            for k, v in vars(value).items():
                walk(f"{label}.{k}", v, depth + 1)

    for name in names:
        walk(name, ip.user_ns[name], 0)
    return found


def assert_given_back(ip, names, before: dict):
    after = holdings(ip, names)
    assert after.keys() == before.keys()
    for label, value in before.items():
        if label.endswith(" bits"):
            assert after[label] == value, f"{label} changed"
        else:
            assert after[label] is value, f"{label} is not the object it was"


def rng_state():
    state = np.random.get_state()
    return state[0], state[1].tobytes(), state[2:]


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_float32_object_passes_through_float64_copies_and_is_given_back(ip, kind, seed):
    spec = setup(ip, kind, seed)
    before = holdings(ip, spec["roots"])
    np.random.seed(seed)
    rng_before = rng_state()
    result = check(ip, spec["line"])
    assert result.passed and not result.warned, result
    assert list(result.table.index) == spec["blocks"]
    for block in spec["blocks"]:
        if block != "inputs":
            note = result.table.loc[block, "note"]
            assert "float32 array checked through a float64 copy swapped into" in note, note
            assert "(your array untouched)" in note
    assert_given_back(ip, spec["roots"], before)
    assert rng_state() == rng_before


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_float32_object_with_one_wrong_gradient_fails_exactly_that_block(ip, kind):
    spec = setup(ip, kind, seed=3, bug=True)
    before = holdings(ip, spec["roots"])
    result = check(ip, spec["line"])
    assert result.failed == [spec["fails"]], result
    assert_given_back(ip, spec["roots"], before)


#: what a NaN planted at a random evaluation may be reported as (a clear error, never a verdict)
NAN_MESSAGES = ("nothing can be verified", "not deterministic", "did not change", "not a single number")


@pytest.mark.parametrize("trial", range(15))
@pytest.mark.parametrize("kind", sorted(KINDS))
def test_float32_object_is_given_back_after_a_raise_a_ctrl_c_or_a_nan(ip, kind, trial):
    rng = np.random.default_rng([trial, len(kind)])
    fault = ("raise", "interrupt", "nan")[trial % 3]
    spec = KINDS[kind]
    ip.user_ns.update(fault=fault, draw=bool(rng.integers(2)), at=0)  # no trip while the cell runs
    setup(ip, kind, seed=trial, tripped=True)
    ip.user_ns["at"] = int(rng.integers(1, spec["span"]))
    before = holdings(ip, spec["roots"])
    np.random.seed(trial)
    rng_before = rng_state()
    try:
        result = check(ip, f"{spec['line']} --mode {('full', 'fast')[trial % 2]}")
    except ValueError as exc:
        assert fault == "raise" and "planted failure" in str(exc)
    except KeyboardInterrupt:
        assert fault == "interrupt"
    except UsageError as exc:
        assert fault == "nan" and any(message in str(exc) for message in NAN_MESSAGES), exc
    else:
        tripped = ip.user_ns["tally"].calls >= ip.user_ns["at"]
        assert not tripped or fault == "nan" or not result.complete, (fault, result)
    assert_given_back(ip, spec["roots"], before)
    assert rng_state() == rng_before


def test_network_params_and_its_layers_share_one_float64_copy_during_the_check(ip):
    setup(ip, "network")
    run(
        ip,
        """
import types
log = types.ModuleType("log")  # a module: the check restores what the loss touches, not modules
log.seen = []
class Watched(TwoLayerNetwork):
    def loss(self, x, t):
        for i in (1, 2):
            for name in ("W", "b"):
                shared = self.params[f"{name}{i}"]
                log.seen.append((shared.dtype, getattr(self.layers[f"Affine{i}"], name) is shared))
        return super().loss(x, t)
network.__class__ = Watched
""",
    )
    result = check(ip, "network")
    assert result.passed, result
    note = result.table.loc["W1", "note"]
    assert "network.params['W1']" in note and "network.layers['Affine1'].W" in note, note
    seen = ip.user_ns["log"].seen
    assert seen and all(dtype == np.float64 and shared for dtype, shared in seen), seen
    network = ip.user_ns["network"]
    assert network.layers["Affine1"].W is network.params["W1"] and network.params["W1"].dtype == np.float32


def test_integer_and_float16_arrays_are_checked_in_float64_too(ip):
    load(ip, "cs231n_layers")
    run(
        ip,
        KINDS["model"]["cell"].format(seed=4, cls="TwoLayerNet")
        + "model.params['b1'] = np.zeros(5, dtype=np.int64)\n"
        + "model.params['W2'] = model.params['W2'].astype(np.float16)",
    )
    before = holdings(ip, ["model"])
    result = check(ip, "model")
    assert result.passed and not result.warned, result
    assert result.table.loc["b1", "note"].startswith("int64 array checked through a float64 copy")
    assert result.table.loc["W2", "note"].startswith("float16 array checked through a float64 copy")
    assert_given_back(ip, ["model"], before)


@pytest.mark.parametrize(
    "change,note",
    [
        ("dense1.weights.setflags(write=False)", "read-only array checked through a writeable copy"),
        (
            "dense1.weights = np.asfortranarray(dense1.weights)",
            "non-contiguous array checked through a contiguous copy",
        ),
    ],
)
def test_read_only_or_strided_float64_layer_arrays_go_through_a_copy(ip, change, note):
    load(ip, "nnfs_layers")
    run(
        ip,
        "X = np.random.default_rng(6).standard_normal((5, 3))\ndense1 = Layer_Dense(3, 4, seed=6)\n" + change,
    )
    before = holdings(ip, ["dense1", "X"])
    flags = dict(dense1_writeable=ip.user_ns["dense1"].weights.flags.writeable)
    result = check(ip, "dense1")
    assert result.passed and not result.warned, result
    assert result.table.loc["dense1.weights", "note"].startswith(note)
    assert "copy" not in result.table.loc["dense1.biases", "note"]
    assert_given_back(ip, ["dense1", "X"], before)
    assert ip.user_ns["dense1"].weights.flags.writeable == flags["dense1_writeable"]


def test_complex_parameters_are_still_refused_by_name(ip):
    load(ip, "cs231n_layers")
    run(
        ip,
        KINDS["model"]["cell"].format(seed=0, cls="TwoLayerNet")
        + "model.params['W1'] = model.params['W1'] + 0j",
    )
    before = holdings(ip, ["model"])
    with pytest.raises(UsageError, match=r"model.params\['W1'\] is complex64"):
        check(ip, "model")
    assert_given_back(ip, ["model"], before)


#: A least-squares model that reads its weights somewhere the check cannot swap a copy into.
HIDDEN_READ = {
    "tuple": """
class Pinned:
    def __init__(self, W):
        self.params = {"W": W}
        self.frozen = (W,)

    def loss(self, X, y):
        (W,) = self.frozen
        residual = X @ W - y
        return 0.5 * float(np.sum(residual**2)), {"W": X.T @ residual}

model = Pinned(W)
""",
    "closure": """
import types

def closed_over(W):
    def loss(X, y):
        residual = X @ W - y
        return 0.5 * float(np.sum(residual**2)), {"W": X.T @ residual}
    return types.SimpleNamespace(params={"W": W}, loss=loss)

model = closed_over(W)
""",
}


@pytest.mark.parametrize(
    "where,named",
    [
        ("tuple", r"it also sits in model\.frozen\[0\]"),
        ("closure", r"it also sits in the closure of model\.loss \(W\)"),
    ],
)
def test_float32_array_read_where_no_copy_can_be_swapped_is_named_with_the_remedy(ip, where, named):
    run(
        ip,
        "rng = np.random.default_rng(7)\nX, y = rng.standard_normal((6, 3)), rng.standard_normal((6, 2))\n"
        "W = rng.standard_normal((3, 2)).astype(np.float32)\n" + HIDDEN_READ[where],
    )
    before = holdings(ip, ["model", "W", "X", "y"])
    with pytest.raises(UsageError) as info:
        check(ip, "model")
    message = str(info.value)
    assert "model.loss did not change when model.params['W'] was perturbed" in message
    assert "model.params['W'] is float32, and the check could not swap every reference to it" in message
    assert re.search(named, message), message
    assert "build the object with float64 arrays" in message
    assert_given_back(ip, ["model", "W", "X", "y"], before)
    run(ip, "W = W.astype(np.float64)\n" + HIDDEN_READ[where])  # the remedy works
    assert check(ip, "model").passed


def test_float32_params_entry_the_layers_never_saw_is_told_it_was_replaced_after_building(ip):
    load(ip, "scratch_net")
    run(
        ip,
        "network = TwoLayerNetwork(3, 4, 3, seed=9)\n"
        "network.params['W1'] = network.params['W1'].astype(np.float32)\n"
        "x, t = np.ones((2, 3)), np.eye(3)[:2]",
    )
    before = holdings(ip, ["network"])
    with pytest.raises(UsageError) as info:
        check(ip, "network")
    message = str(info.value)
    assert "network.params['W1'] is float32, and the check could not swap every reference" in message
    assert "was it replaced in network.params after the layers were built?" in message
    assert_given_back(ip, ["network"], before)


#: A model whose weight sits in a slot (no dict entry or attribute a copy can be swapped into) and whose
#: bias sits in its __dict__ (where a copy can go, and is swapped in before the weight is refused).
SLOTTED = """
class Slotted:
    __slots__ = ("weight", "__dict__")

    def __init__(self, weight, bias):
        self.weight, self.bias = weight, bias

    @property
    def params(self):
        return {"b": self.bias, "W": self.weight}

    def loss(self, X, y):
        residual = X @ self.weight + self.bias - y
        return 0.5 * float(np.sum(residual**2)), {"W": X.T @ residual, "b": residual.sum(axis=0)}

rng = np.random.default_rng(8)
X, y = rng.standard_normal((5, 3)), rng.standard_normal((5, 2))
model = Slotted(rng.standard_normal((3, 2)).astype(np.float32), np.zeros(2, dtype=np.float32))
"""


def test_float32_array_with_no_place_to_swap_a_copy_into_is_refused_and_nothing_is_left_swapped(ip):
    run(ip, SLOTTED)
    model = ip.user_ns["model"]
    weight, bias = model.weight, model.bias
    np.random.seed(8)
    rng_before = rng_state()
    with pytest.raises(
        UsageError, match=r"model.params\['W'\] is float32: .*found no dict entry, list item or attribute"
    ):
        check(ip, "model")
    assert model.weight is weight and model.bias is bias and vars(model) == {"bias": bias}
    assert weight.dtype == bias.dtype == np.float32
    assert rng_state() == rng_before
    run(ip, "model.weight = model.weight.astype(np.float64)")  # the remedy: float64 is perturbed in its slot
    assert check(ip, "model").passed


#: A cs231n-style model whose loss returns its cost in a dtype of the cell's choosing.
CAST_COST_MODEL = """
def widened(value):
    return float(np.float32(value))

class CastCost(TwoLayerNet):
    def loss(self, X, y=None):
        value, grads = super().loss(X, y)
        return {cast}(value), grads

model = CastCost(input_dim=3, hidden_dim=4, num_classes=3, seed=5)
X = np.random.default_rng(5).standard_normal((6, 3))
y = np.arange(6) % 3
"""


@pytest.mark.parametrize(
    "cast,message",
    [
        ("np.float32", r"model.loss returned a float32 cost: its precision"),
        ("widened", r"model.loss returned a cost with float32 precision"),
        ("np.int64", r"model.loss returned an integer cost"),
    ],
)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_model_whose_loss_returns_a_coarse_cost_is_refused_by_name(ip, cast, message, dtype):
    load(ip, "cs231n_layers")
    run(ip, CAST_COST_MODEL.format(cast=cast))
    run(ip, f"model.params = {{k: v.astype(np.{dtype}) for k, v in model.params.items()}}")
    with pytest.raises(UsageError, match=message):
        check(ip, "model")


def test_a_model_whose_loss_computes_in_float32_but_returns_float64_is_refused_by_name(ip):
    """The cost is a float64 value, but the parameters are rounded to float32 inside the loss: the
    precision probe names the blocks instead of failing a correct gradient."""
    load(ip, "cs231n_layers")
    run(
        ip,
        """
class RoundsInside(TwoLayerNet):
    def loss(self, X, y=None):
        kept = self.params
        self.params = {k: v.astype(np.float32) for k, v in kept.items()}
        try:
            value, grads = super().loss(X, y)
        finally:
            self.params = kept
        return float(np.float64(value) + 1e-12 * np.pi), grads

model = RoundsInside(input_dim=3, hidden_dim=4, num_classes=3, seed=5)
X = np.random.default_rng(5).standard_normal((6, 3))
y = np.arange(6) % 3
""",
    )
    with pytest.raises(UsageError, match=r"model.loss reads W1.* at float32 precision or coarser"):
        check(ip, "model")


def test_snapshot_rebinds_every_reachable_reference_and_restore_puts_each_back():
    from collections import OrderedDict
    from types import SimpleNamespace

    from gradcheck_magic.safety import Snapshot

    weight, other = np.ones((2, 2), dtype=np.float32), np.zeros(3)
    layer = SimpleNamespace(W=weight, cache=(weight, other))
    net = SimpleNamespace(params={"W": weight}, layers=OrderedDict(first=layer), stack=[other, weight])
    snapshot = Snapshot({"net": net})
    stand_in = np.ones((2, 2))
    rebound, held = snapshot.rebind(weight, stand_in)
    assert sorted(rebound) == ["net.layers['first'].W", "net.params['W']", "net.stack[1]"]
    assert held == ["net.layers['first'].cache[0]"]
    assert net.params["W"] is stand_in and layer.W is stand_in and net.stack[1] is stand_in
    snapshot.restore()
    assert net.params["W"] is weight and layer.W is weight and layer.cache[0] is weight
    assert net.stack[0] is other and net.stack[1] is weight and list(net.layers) == ["first"]
    assert weight.dtype == np.float32 and stand_in.dtype == np.float64
