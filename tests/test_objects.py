"""Models, networks and layer objects whose methods read their own arrays: perturbed in place,
put back bit for bit; correct code passes, a planted bug fails exactly its blocks."""

import numpy as np
import pytest
from conftest import check, load, run
from IPython.core.error import UsageError

MODEL_CELL = """
rng = np.random.default_rng({seed})
model = TwoLayerNet(input_dim={d}, hidden_dim={h}, num_classes=3, seed={seed})
X = rng.standard_normal(({n}, {d}))
y = rng.integers(3, size={n})
"""

NETWORK_CELL = """
rng = np.random.default_rng({seed})
network = TwoLayerNetwork(input_size={d}, hidden_size={h}, output_size=3, seed={seed})
x = rng.standard_normal(({n}, {d}))
t = np.eye(3)[rng.integers(3, size={n})]
"""


def state(obj):
    """Every array reachable from an object, with its dtype and bits."""
    out = {}

    def walk(label, value, depth=0):
        if isinstance(value, np.ndarray):
            out[label] = (value.dtype, value.shape, value.tobytes())
        elif isinstance(value, dict) and depth < 4:
            for k, v in value.items():
                walk(f"{label}[{k!r}]", v, depth + 1)
        elif hasattr(value, "__dict__") and depth < 4:
            for k, v in vars(value).items():
                walk(f"{label}.{k}", v, depth + 1)

    walk("", obj)
    return out


#: what a NaN planted at a random evaluation may be reported as (a clear error, never a verdict)
NAN_MESSAGES = ("nothing can be verified", "not deterministic", "did not change", "not a single number")


def check_survives_the_fault(ip, name, fault, trial):
    """Check ``name`` with a fault planted at a random evaluation: the fault surfaces as itself (or
    a clear error for NaN), and every array of the object and np.random's state are as before."""
    np.random.seed(trial)
    before, rng_before = state(ip.user_ns[name]), np.random.get_state()[1].tobytes()
    try:
        result = check(ip, f"{name} --mode {('full', 'fast')[trial % 2]}")
    except ValueError as exc:
        assert fault == "raise" and "planted failure" in str(exc)
    except KeyboardInterrupt:
        assert fault == "interrupt"
    except UsageError as exc:
        assert fault == "nan" and any(message in str(exc) for message in NAN_MESSAGES), exc
    else:
        if fault == "interrupt" and ip.user_ns["tally"].calls >= ip.user_ns["at"]:
            assert not result.complete
    assert state(ip.user_ns[name]) == before
    assert np.random.get_state()[1].tobytes() == rng_before


OWNERS = {"model": ("cs231n_layers", MODEL_CELL), "network": ("scratch_net", NETWORK_CELL)}


@pytest.mark.parametrize("seed,n,d,h", [(0, 4, 5, 7), (1, 9, 3, 4), (2, 2, 6, 10), (3, 8, 2, 3)])
@pytest.mark.parametrize(
    "owner,line",
    [
        ("model", "model"),
        ("model", ""),
        ("model", "-f model.loss -p model.params"),
        ("model", "-f model.loss -b model.loss -p model.params"),
        ("network", "network"),
        ("network", ""),
        ("network", "-f network.loss -b network.gradient -p network.params"),
    ],
)
def test_correct_model_or_network_passes_every_params_entry_and_is_untouched(ip, seed, n, d, h, owner, line):
    """A cs231n model and a from-scratch network (whose numerical_gradient is never called)."""
    homework, cell = OWNERS[owner]
    load(ip, homework)
    run(ip, cell.format(seed=seed, n=n, d=d, h=h))
    before = state(ip.user_ns[owner])
    result = check(ip, line)
    assert result.passed and not result.warned, result
    assert list(result.table.index) == ["W1", "b1", "W2", "b2"]
    assert state(ip.user_ns[owner]) == before


@pytest.mark.parametrize("line", ["model", ""])
def test_wrong_dw_in_affine_backward_fails_W1_W2_of_the_model(ip, line):
    load(ip, "cs231n_layers", replace=[("dw = flat.T @ dout", "dw = flat.T @ dout * 1.01")])
    run(ip, MODEL_CELL.format(seed=0, n=5, d=4, h=6))
    assert sorted(check(ip, line).failed) == ["W1", "W2"]


def test_missing_regularization_gradient_fails_W2_only(ip):
    load(ip, "cs231n_layers", replace=[('grads["W2"] += self.reg * self.params["W2"]', "")])
    run(ip, MODEL_CELL.format(seed=1, n=5, d=4, h=6))
    assert check(ip, "model").failed == ["W2"]


def test_two_models_in_the_namespace_are_refused_with_the_way_to_name_one(ip):
    load(ip, "cs231n_layers")
    run(ip, MODEL_CELL.format(seed=0, n=4, d=3, h=5) + "other = TwoLayerNet(3, 5)")
    with pytest.raises(UsageError, match="several models in the namespace .model, other.*%gradcheck model"):
        check(ip)


def test_model_whose_layers_hold_a_copy_of_one_block_fails_that_block_with_a_note(ip):
    """Other blocks move the loss, so W1 is judged: its numeric gradient is zero, the backward's is not
    (the refusal is for when no block moves the loss: test_losses)."""
    load(
        ip,
        "cs231n_layers",
        replace=[
            (
                'hidden, cache1 = affine_relu_forward(X, self.params["W1"]',
                "hidden, cache1 = affine_relu_forward(X, self.frozen",
            )
        ],
    )
    run(
        ip,
        MODEL_CELL.format(seed=0, n=4, d=3, h=5)
        + "model.frozen = model.params['W1'].copy()\nmodel.reg = 0.0",
    )
    result = check(ip, "model")
    assert result.failed == ["W1"]
    assert "the cost did not change when W1 was nudged" in result.table.loc["W1", "note"]


def test_missing_attribute_is_named(ip):
    load(ip, "cs231n_layers")
    run(ip, MODEL_CELL.format(seed=0, n=4, d=3, h=5))
    with pytest.raises(UsageError, match=r"model \(TwoLayerNet\) has no attribute 'weights'"):
        check(ip, "-p model.weights")
    with pytest.raises(UsageError, match="no variable named 'modle'"):
        check(ip, "modle")


def test_float32_model_entry_is_checked_through_a_float64_copy_and_left_as_it_was(ip):
    """More in test_float32_objects.py: every convention, bugs, faults, references."""
    load(ip, "cs231n_layers")
    run(
        ip,
        MODEL_CELL.format(seed=0, n=4, d=3, h=5)
        + "model.params['W2'] = model.params['W2'].astype(np.float32)",
    )
    before = state(ip.user_ns["model"])
    result = check(ip, "model")
    assert result.passed and not result.warned, result
    assert result.table.loc["W2", "note"] == (
        "float32 array checked through a float64 copy swapped into model.params['W2'] (your array untouched)"
    )
    assert "copy" not in result.table.loc["W1", "note"]
    assert state(ip.user_ns["model"]) == before


@pytest.mark.parametrize("line", ["network", "-f network.loss -b network.gradient -p network.params"])
def test_scratch_affine_with_wrong_db_fails_b1_b2(ip, line):
    load(ip, "scratch_net", replace=[("self.db = dout.sum(axis=0)", "self.db = dout.mean(axis=0)")])
    run(ip, NETWORK_CELL.format(seed=0, n=5, d=4, h=6))
    assert sorted(check(ip, line).failed) == ["b1", "b2"]


LOG_SMOOTHING_HINT_LOST = pytest.mark.xfail(
    strict=True,
    reason="it warns and never fails, but since suspects are followed to smaller steps a curvature "
    "split is taken for a kink crossed, whose round-off then reads as 'too coarse': the hint is lost",
)


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=LOG_SMOOTHING_HINT_LOST)])
def test_the_books_log_smoothing_constant_warns_and_says_so_never_fails(ip, seed):
    """The book's loss is -Σ t·log(y + 1e-7): its gradient is off (y − t) by about 1e-7/y, a real but
    small difference.  It warns, never fails, and the note names the likely cause, not round-off."""
    load(ip, "scratch_net", replace=[("np.log(self.y + 1e-12)", "np.log(self.y + 1e-7)")])
    run(ip, NETWORK_CELL.format(seed=seed, n=5, d=7, h=6))
    result = check(ip, "network")
    assert not result.failed and result.warned, result
    for block in result.warned:
        note = result.table.loc[block, "note"]
        assert "small steady difference" in note and "log(y + 1e-7)" in note, note
        assert "round-off at the default step" not in note, note


def test_scratch_network_whose_params_were_replaced_after_building_the_layers(ip):
    """W1 alone is not read (the others are): it is judged, and fails with a note saying so."""
    load(ip, "scratch_net")
    run(ip, NETWORK_CELL.format(seed=0, n=5, d=4, h=6) + "network.params['W1'] = network.params['W1'].copy()")
    result = check(ip, "network")
    assert result.failed == ["W1"]
    assert "reads another array than W1" in result.table.loc["W1", "note"]


def test_scratch_network_none_of_whose_params_is_read_is_told_so(ip):
    load(ip, "scratch_net")
    run(
        ip,
        NETWORK_CELL.format(seed=0, n=5, d=4, h=6)
        + "network.params = {k: v.copy() for k, v in network.params.items()}",
    )
    with pytest.raises(UsageError, match=r"was perturbed in place.*replaced after the layers were built"):
        check(ip, "network")


DENSE_CELL = """
rng = np.random.default_rng({seed})
X = rng.standard_normal(({n}, 2))
y_true = rng.standard_normal(({n}, 3))
dense1 = Layer_Dense(2, {h}, seed={seed})
activation1 = Activation_Tanh()
dense2 = Layer_Dense({h}, 3, seed={seed} + 1)
loss_function = Loss_MeanSquared()

def forward(X, y_true):
    dense1.forward(X)
    activation1.forward(dense1.output)
    dense2.forward(activation1.output)
    return loss_function.forward(dense2.output, y_true)

def backward():
    loss_function.backward()
    dense2.backward(loss_function.dinputs)
    activation1.backward(dense2.dinputs)
    dense1.backward(activation1.dinputs)
"""


@pytest.mark.parametrize("seed,n,h", [(0, 5, 4), (1, 3, 8)])
def test_single_dense_layer_against_an_upstream_gradient(ip, seed, n, h):
    load(ip, "nnfs_layers")
    run(ip, DENSE_CELL.format(seed=seed, n=n, h=h) + "dense1.forward(X)")
    before = state(ip.user_ns["dense1"])
    result = check(ip, "dense1")
    assert result.passed and not result.warned, result
    assert list(result.table.index) == ["dense1.weights", "dense1.biases", "inputs"]
    assert "seeded random" in result.functions
    assert state(ip.user_ns["dense1"]) == before


def test_wrong_dweights_fails_dense1_weights_only(ip):
    load(
        ip,
        "nnfs_layers",
        replace=[
            (
                "self.dweights = self.inputs.T @ dvalues",
                "self.dweights = self.inputs.T @ dvalues / len(dvalues)",
            )
        ],
    )
    run(ip, DENSE_CELL.format(seed=0, n=5, h=4) + "dense1.forward(X)\ndvalues = np.ones((5, 4))")
    result = check(ip, "dense1")
    assert result.failed == ["dense1.weights"]
    assert "dvalues from the namespace" in result.functions


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_plain_functions_over_layer_objects_name_blocks_by_object(ip, seed):
    load(ip, "nnfs_layers")
    run(ip, DENSE_CELL.format(seed=seed, n=6, h=5))
    result = check(ip, "-f forward -b backward")
    assert result.passed and not result.warned, result
    assert list(result.table.index) == ["dense1.weights", "dense1.biases", "dense2.weights", "dense2.biases"]


def test_plain_functions_with_wrong_dbiases_fail_both_biases(ip):
    load(
        ip,
        "nnfs_layers",
        replace=[
            (
                "self.dbiases = np.sum(dvalues, axis=0, keepdims=True)",
                "self.dbiases = np.mean(dvalues, axis=0, keepdims=True)",
            )
        ],
    )
    run(ip, DENSE_CELL.format(seed=0, n=6, h=5))
    assert sorted(check(ip, "-f forward -b backward").failed) == ["dense1.biases", "dense2.biases"]


def test_missing_dbiases_is_a_missing_gradient(ip):
    load(ip, "nnfs_layers", replace=[("self.dbiases = np.sum(dvalues, axis=0, keepdims=True)", "pass")])
    run(ip, DENSE_CELL.format(seed=0, n=6, h=5))
    result = check(ip, "-f forward -b backward")
    assert sorted(result.failed) == ["dense1.biases", "dense2.biases"]
    assert "missing gradient dense1.dbiases" in result.table.loc["dense1.biases", "note"]


#: Subclasses that trip at the evaluation numbered ``at``: raise, Ctrl-C, or a NaN cost; each call may
#: also draw from np.random (the check must put its state back).
TRIPPED = {
    "TwoLayerNet": """
class Tripped(TwoLayerNet):
    def loss(self, X, y=None):
        value, grads = super().loss(X, y)
        return (float("nan") if trip() else value), grads
""",
    "TwoLayerNetwork": """
class Tripped(TwoLayerNetwork):
    def loss(self, x, t):
        value = super().loss(x, t)
        return float("nan") if trip() else value
""",
    "Layer_Dense": """
class Tripped(Layer_Dense):
    def forward(self, inputs):
        super().forward(inputs)
        if trip():
            self.output = self.output * np.nan
""",
}
TRIP = """
import types
tally = types.ModuleType("tally")  # a module: a check gives back what the calls touch, not modules
tally.calls = 0

def trip():
    tally.calls += 1
    if draw:
        np.random.standard_normal(2)
    if tally.calls == at:
        if fault == "raise":
            raise ValueError("planted failure")
        if fault == "interrupt":
            raise KeyboardInterrupt
        return True
    return False
"""

FAULTY_MODEL = (
    TRIP
    + TRIPPED["TwoLayerNet"]
    + "model = Tripped(input_dim={d}, hidden_dim={h}, num_classes=3, seed={seed})\n"
)


@pytest.mark.parametrize("trial", range(60))
def test_fault_injection_leaves_the_model_and_rng_identical(ip, trial):
    rng = np.random.default_rng(trial)
    fault = ("raise", "interrupt", "nan")[trial % 3]
    d, h, n = (int(v) for v in rng.integers(1, 4, size=3))
    load(ip, "cs231n_layers")
    ip.user_ns.update(
        fault=fault,
        draw=bool(rng.integers(2)),
        at=int(rng.integers(1, 2 + 2 * (d * h + h + 3 * h + 3))),
        X=rng.standard_normal((n, d)),
        y=rng.integers(3, size=n),
    )
    run(ip, FAULTY_MODEL.format(d=d, h=h, seed=trial))
    check_survives_the_fault(ip, "model", fault, trial)


def test_dotted_function_names_of_a_helper_object_reach_the_course_discovery(ip):
    load(ip, "seed_net")
    run(
        ip,
        "import types\nX, Y, parameters = gradient_check_n_test_case()\n"
        "net = types.SimpleNamespace(fwd=forward_propagation_n, bwd=backward_propagation_n)",
    )
    result = check(ip, "-f net.fwd -b net.bwd")
    assert result.passed, result
    assert "net.fwd(" in result.functions
    with pytest.raises(UsageError, match=r"net \(SimpleNamespace\) has no attribute 'bwdd'"):
        check(ip, "-f net.fwd -b net.bwdd")


FAULTY_OBJECTS = {
    "network": (
        "scratch_net",
        TRIP
        + TRIPPED["TwoLayerNetwork"]
        + """
obj = Tripped({d}, {h}, 3, seed={seed})
x = np.random.default_rng({seed}).standard_normal(({n}, {d}))
t = np.eye(3)[np.arange({n}) % 3]
""",
    ),
    "dense": (
        "nnfs_layers",
        TRIP
        + TRIPPED["Layer_Dense"]
        + """
obj = Tripped({d}, {h}, seed={seed})
X = np.random.default_rng({seed}).standard_normal(({n}, {d}))
obj.forward(X)
tally.calls = 0
""",
    ),
}


@pytest.mark.parametrize("kind", sorted(FAULTY_OBJECTS))
@pytest.mark.parametrize("trial", range(30))
def test_fault_injection_leaves_networks_and_layer_objects_identical(ip, kind, trial):
    rng = np.random.default_rng(trial)
    fault = ("raise", "interrupt", "nan")[trial % 3]
    d, h, n = (int(v) for v in rng.integers(1, 4, size=3))
    homework, code = FAULTY_OBJECTS[kind]
    load(ip, homework)
    ip.user_ns.update(
        fault=fault, draw=bool(rng.integers(2)), at=int(rng.integers(1, 3 + 2 * (d * h + 4 * h + 3)))
    )
    run(ip, code.format(d=d, h=h, n=n, seed=trial))
    check_survives_the_fault(ip, "obj", fault, trial)


def test_bare_line_finds_the_forward_that_calls_layer_objects(ip):
    load(
        ip,
        "nnfs_layers",
        replace=[
            ("self.dinputs = dvalues * (1 - self.output**2)", "self.dinputs = dvalues * (1 - self.output)")
        ],
    )
    run(ip, DENSE_CELL.format(seed=2, n=6, h=5))
    result = check(ip)
    assert list(result.table.index) == ["dense1.weights", "dense1.biases", "dense2.weights", "dense2.biases"]
    assert sorted(result.failed) == [
        "dense1.biases",
        "dense1.weights",
    ]  # the tanh derivative sits below dense2


def test_activation_objects_inputs_are_data_not_parameters_after_a_backward(ip):
    load(ip, "nnfs_layers")
    run(ip, DENSE_CELL.format(seed=3, n=6, h=5) + "\nforward(X, y_true)\nbackward()")
    assert hasattr(ip.user_ns["activation1"], "dinputs")  # inputs and dinputs side by side now
    result = check(ip)
    assert list(result.table.index) == ["dense1.weights", "dense1.biases", "dense2.weights", "dense2.biases"]
    assert result.passed and not result.warned, result
