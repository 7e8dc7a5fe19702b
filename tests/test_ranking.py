"""One ranking for every candidate: course families, models, functions over layer objects, layer
functions and flat-vector costs side by side in one messy notebook.  The %%gradcheck cell decides
(what it assigns, defines, mutates or calls), a candidate that cannot bind or raises is dropped,
what nothing separates is refused with the list and the flags, and flags decide outright."""

import numpy as np
import pytest
from conftest import check, load, run
from IPython.core.error import UsageError
from test_objects import DENSE_CELL as DENSE_TEMPLATE
from test_planted_bugs import SEED_FIX

#: A cs231n model on X of shape (4, 3): the course's X has that shape too, so either could run on it.
MODEL_CELL = """
rng = np.random.default_rng(0)
model = TwoLayerNet(input_dim=3, hidden_dim=5, num_classes=3, seed=0)
X = rng.standard_normal((4, 3))
y = rng.integers(3, size=4)
"""
COURSE_CELL = "X, Y, parameters = gradient_check_n_test_case()"
MODEL_BUG = [("dw = flat.T @ dout", "dw = flat.T @ dout * 1.01")]  # affine_backward: W1 and W2 wrong
COUNTING = """
import types
log = types.ModuleType("log")  # a module: a check gives back what the calls touch, not modules
log.course_calls = []
_forward = forward_propagation_n
def forward_propagation_n(X, Y, parameters):
    log.course_calls.append(1)
    return _forward(X, Y, parameters)
"""


def notebook(ip, model_bug=(), course_bug=()):
    """The course's seed net and a cs231n model's code, both loaded by earlier cells."""
    load(ip, "seed_net", replace=course_bug)
    load(ip, "cs231n_layers", replace=model_bug)


@pytest.mark.parametrize("bug,failed", [((), []), (MODEL_BUG, ["W1", "W2"])])
def test_cell_building_a_model_checks_the_model_not_the_leftover_course_functions(ip, bug, failed):
    notebook(ip, model_bug=bug, course_bug=SEED_FIX)
    run(ip, COURSE_CELL)  # an earlier cell: the course net's parameters, X, Y
    run(ip, COUNTING)
    result = ip.run_cell_magic("gradcheck", "-o", MODEL_CELL)
    assert result.functions.startswith("model.loss(X, y)"), result.functions
    assert sorted(result.failed) == failed and result.passed == (not failed)
    assert ip.user_ns["log"].course_calls == []  # the course forward that lost is never run


@pytest.mark.parametrize(
    "cell",
    [
        "model.params['W1'] = 0.1 * np.ones((3, 5))",  # changes the model through an item
        "print(model.loss(X, y)[0])",  # uses it
    ],
)
def test_cell_changing_or_calling_the_model_checks_the_model(ip, cell):
    notebook(ip, model_bug=MODEL_BUG, course_bug=SEED_FIX)
    run(ip, MODEL_CELL)
    run(ip, COURSE_CELL)  # the course's leftovers are the newer ones
    result = ip.run_cell_magic("gradcheck", "-o", cell)
    assert result.functions.startswith("model.loss(X, y)")
    assert sorted(result.failed) == ["W1", "W2"]


@pytest.mark.parametrize("course_bug,failed", [((), []), (SEED_FIX, ["b1", "W2"])])
def test_cell_assigning_parameters_checks_the_course_not_a_leftover_model(ip, course_bug, failed):
    notebook(ip, course_bug=course_bug)
    run(ip, MODEL_CELL)  # an earlier cell: a model that would run on the course's X as well
    result = ip.run_cell_magic("gradcheck", "-o", COURSE_CELL)
    assert result.functions.startswith("forward_propagation_n(X, Y, parameters)"), result.functions
    assert result.failed == failed and result.passed == (not failed)


def test_two_leftovers_nothing_separates_are_refused_with_both_and_the_flags(ip):
    notebook(ip, course_bug=SEED_FIX)
    run(ip, MODEL_CELL)
    run(ip, COURSE_CELL)
    with pytest.raises(UsageError) as info:
        check(ip)
    message = str(info.value)
    assert message.startswith("ambiguous"), message
    assert "model" in message and "forward_propagation_n / backward_propagation_n" in message
    assert "%gradcheck model" in message and "-f forward_propagation_n -b backward_propagation_n" in message
    # the flags and the positional name decide outright
    assert check(ip, "model").passed
    assert check(ip, "-f forward_propagation_n -b backward_propagation_n").failed == ["b1", "W2"]
    assert check(ip, "-f model.loss").functions.startswith("model.loss(X, y)")


def test_of_two_models_the_one_the_cell_builds_is_checked(ip):
    notebook(ip, model_bug=MODEL_BUG)
    run(ip, MODEL_CELL)
    result = ip.run_cell_magic("gradcheck", "-o", "other = TwoLayerNet(input_dim=3, hidden_dim=4, seed=1)")
    assert result.functions.startswith("other.loss(X, y)") and sorted(result.failed) == ["W1", "W2"]


def test_leftover_model_that_raises_on_the_current_data_is_dropped(ip):
    notebook(ip, course_bug=SEED_FIX)
    run(ip, MODEL_CELL.replace("input_dim=3", "input_dim=7"))  # (4, 3) @ (7, 5) raises
    run(ip, COURSE_CELL)
    result = check(ip)
    assert result.functions.startswith("forward_propagation_n") and result.failed == ["b1", "W2"]


def test_model_the_cell_builds_that_raises_is_the_error_not_a_silent_course_check(ip):
    notebook(ip, course_bug=SEED_FIX)
    run(ip, COURSE_CELL)
    with pytest.raises(ValueError):  # the user's own error: (4, 3) @ (7, 5)
        ip.run_cell_magic("gradcheck", "-o", MODEL_CELL.replace("input_dim=3", "input_dim=7"))


def test_course_cell_whose_forward_raises_is_the_error_not_a_silent_model_check(ip):
    notebook(ip, course_bug=[("    m = X.shape[1]\n    W1", "    m = X.shape[7]\n    W1")])
    run(ip, MODEL_CELL)
    with pytest.raises(IndexError):
        ip.run_cell_magic("gradcheck", "-o", COURSE_CELL)


def test_leftover_model_without_labels_is_dropped(ip):
    notebook(ip)
    run(ip, MODEL_CELL + "del y")  # model.loss(X) returns scores, not a cost
    run(ip, COURSE_CELL)
    assert check(ip).functions.startswith("forward_propagation_n")


def test_stray_layer_functions_and_their_arrays_do_not_compete_with_the_cells_model(ip):
    notebook(ip, model_bug=MODEL_BUG)
    run(ip, "x, w, b = np.ones((2, 3)), np.ones((3, 4)), np.ones(4)")  # an affine_forward test, earlier
    result = ip.run_cell_magic("gradcheck", "-o", MODEL_CELL)
    assert result.functions.startswith("model.loss(X, y)")
    assert sorted(result.failed) == ["W1", "W2"]


DENSE_CELL = DENSE_TEMPLATE.format(seed=2, n=6, h=5)  # nnfs layers and the functions that chain them
TANH_BUG = [("self.dinputs = dvalues * (1 - self.output**2)", "self.dinputs = dvalues * (1 - self.output)")]


@pytest.mark.parametrize("bug,failed", [((), []), (TANH_BUG, ["dense1.biases", "dense1.weights"])])
def test_functions_over_layer_objects_the_cell_defines_beat_a_leftover_model(ip, bug, failed):
    load(ip, "cs231n_layers")
    run(ip, MODEL_CELL)
    load(ip, "nnfs_layers", replace=bug)
    result = ip.run_cell_magic("gradcheck", "-o", DENSE_CELL)
    assert result.functions.startswith("forward(X, y_true) over dense1, dense2"), result.functions
    assert sorted(result.failed) == failed and result.passed == (not failed)
    # the model left from before is still checked when named
    run(ip, MODEL_CELL)
    assert check(ip, "model").passed


PAIR = """
def f(x):
    return np.sum(np.sin(x) * x**2) + x[0] * x[-1]

def fprime(x):
    g = np.cos(x) * x**2 + 2 * x * np.sin(x)
    g[0] += x[-1]
    g[-1] += x[0]
    return g
"""
PAIR_BUG = [("    g[-1] += x[0]\n", "")]  # the last entry misses its cross term


def pair(ip, bug=()):
    run(ip, PAIR if not bug else PAIR.replace(*bug[0]))


@pytest.mark.parametrize("bug,failed", [((), []), (PAIR_BUG, ["x0"])])
def test_f_fprime_line_finds_the_vector_the_cell_assigned(ip, bug, failed):
    pair(ip, bug)
    run(ip, "x0 = np.array([0.5, -1.2, 0.8, 1.1])")
    result = check(ip, "-f f -b fprime")
    assert list(result.table.index) == ["x0"] and result.failed == failed and result.passed == (not failed)
    assert result.functions == "f(x), fprime(x); one block x0"


@pytest.mark.parametrize("bug,failed", [((), []), (PAIR_BUG, ["x0"])])
def test_bare_cell_assigning_the_vector_finds_the_f_fprime_pair(ip, bug, failed):
    pair(ip, bug)
    load(ip, "seed_net")  # course functions and their parameters, left from earlier cells
    run(ip, COURSE_CELL)
    result = ip.run_cell_magic("gradcheck", "-o", "x0 = np.array([0.5, -1.2, 0.8, 1.1])")
    assert result.functions == "f(x), fprime(x); one block x0"
    assert result.failed == failed and result.passed == (not failed)


@pytest.mark.parametrize(
    "names", [("cost", "grad"), ("fun", "jac"), ("f", "grad_f"), ("quartic", "quartic_prime")]
)
def test_pairs_are_found_by_their_usual_names(ip, names):
    run(ip, PAIR.replace("def f(", f"def {names[0]}(").replace("def fprime(", f"def {names[1]}("))
    result = ip.run_cell_magic("gradcheck", "-o", "x = np.array([0.3, 0.7, -0.4])")
    assert result.functions == f"{names[0]}(x), {names[1]}(x); one block x" and result.passed


def test_two_vectors_in_the_cell_are_refused_with_each_pairing_and_its_flag(ip):
    pair(ip)
    with pytest.raises(UsageError) as info:
        ip.run_cell_magic("gradcheck", "-o", "x0 = np.ones(3)\nx1 = np.zeros(4)")
    message = str(info.value)
    assert "f / fprime on x0, f / fprime on x1" in message
    assert "-f f -b fprime -p x0, or -f f -b fprime -p x1" in message


def test_f_fprime_line_with_several_vectors_in_the_namespace_is_refused_with_the_flag(ip):
    pair(ip)
    run(ip, "x0 = np.ones(3)\nb = np.zeros(4)")
    with pytest.raises(UsageError, match=r"no `x` in the namespace.*\(b, x0\): choose with -p/--params"):
        check(ip, "-f f -b fprime")
    assert check(ip, "-f f -b fprime -p x0").passed
    # in a %%gradcheck cell, the one vector the cell assigns is the one
    result = ip.run_cell_magic("gradcheck", "-o -f f -b fprime", "x0 = np.array([0.1, 0.9, -0.3])")
    assert list(result.table.index) == ["x0"] and result.passed


def test_a_gradient_of_the_wrong_size_or_a_vector_function_is_not_a_pair(ip):
    run(
        ip,
        "def sigmoid(z):\n    return 1 / (1 + np.exp(-z))\n"
        "def sigmoid_prime(z):\n    return sigmoid(z) * (1 - sigmoid(z))\n"
        "def h(x):\n    return np.sum(x**2)\n"
        "def h_grad(x):\n    return 2 * x[:-1]\n",
    )
    pair(ip)
    result = ip.run_cell_magic("gradcheck", "-o", "x0 = np.array([0.2, 0.4, -0.9])")
    assert result.functions == "f(x), fprime(x); one block x0" and result.passed


@pytest.mark.parametrize("bug,failed", [((), []), (MODEL_BUG, ["W1", "W2"])])
def test_float32_model_found_without_flags_is_checked_through_its_swapped_copies(ip, bug, failed):
    notebook(ip, model_bug=bug)
    run(ip, COURSE_CELL)
    cell = MODEL_CELL + "model.params = {k: v.astype(np.float32) for k, v in model.params.items()}"
    result = ip.run_cell_magic("gradcheck", "-o", cell)
    assert result.functions.startswith("model.loss(X, y)")
    assert sorted(result.failed) == failed, result
    assert all(v.dtype == np.float32 for v in ip.user_ns["model"].params.values())


def test_a_float32_model_probed_but_not_chosen_is_left_exactly_as_it_was(ip):
    notebook(ip)
    run(ip, MODEL_CELL + "model.params = {k: v.astype(np.float32) for k, v in model.params.items()}")
    run(ip, COURSE_CELL)
    params = ip.user_ns["model"].params
    before = {k: (id(v), v.dtype, v.tobytes()) for k, v in params.items()}
    with pytest.raises(UsageError, match="ambiguous"):  # both probed, then refused
        check(ip)
    assert ip.user_ns["model"].params is params
    assert {k: (id(v), v.dtype, v.tobytes()) for k, v in params.items()} == before


OWN_DATA_CELL = """
rng = np.random.default_rng(3)
net2 = TwoLayerNet(input_dim=3, hidden_dim=4, num_classes=3, seed=3)
Xs, ys = rng.standard_normal((6, 3)), rng.integers(3, size=6)
net2.loss(Xs, ys)[0]
"""


@pytest.mark.parametrize("line", ["", "net2"])
@pytest.mark.parametrize("bug,failed", [((), []), (MODEL_BUG, ["W1", "W2"])])
def test_a_model_is_checked_on_the_data_the_cell_passes_it_not_on_leftovers(ip, line, bug, failed):
    """The course's X (5 features) and a y from earlier cells must not stand in for the Xs, ys the
    cell hands to net2.loss: the check binds what the cell's own call passes."""
    notebook(ip, model_bug=bug, course_bug=SEED_FIX)
    run(ip, COURSE_CELL + "\ny = np.arange(5) % 3")
    result = ip.run_cell_magic("gradcheck", f"-o {line}", OWN_DATA_CELL)
    assert result.functions.startswith("net2.loss(Xs, ys)"), result.functions
    assert sorted(result.failed) == failed and result.passed == (not failed), result


def test_a_network_needing_x_says_which_batch_to_pass(ip):
    load(ip, "scratch_net")
    run(
        ip,
        "network = TwoLayerNetwork(input_size=4, hidden_size=5, output_size=3, seed=0)\n"
        "x_batch = np.random.default_rng(0).standard_normal((3, 4)); t_batch = np.eye(3)",
    )
    with pytest.raises(UsageError, match=r"needs `x`.*there is x_batch.*assign x = x_batch"):
        check(ip, "network")
    result = ip.run_cell_magic("gradcheck", "-o", "network.loss(x_batch, t_batch)")  # the cell says which
    assert result.passed and result.functions.startswith("network.loss(x_batch, t_batch)"), result


def test_of_two_calls_in_the_cell_the_later_one_gives_the_data(ip):
    notebook(ip)
    run(ip, COURSE_CELL + "\ny = np.arange(5) % 3")
    cell = OWN_DATA_CELL.replace(
        "net2.loss(Xs, ys)[0]", "Xb, yb = Xs[:3], ys[:3]\nnet2.loss(Xs, ys)[0]\nnet2.loss(Xb, yb)[0]"
    )
    result = ip.run_cell_magic("gradcheck", "-o", cell)
    assert result.functions.startswith("net2.loss(Xb, yb)"), result.functions
    assert result.passed, result


def test_why_the_ranking_chose_is_shown_in_the_caption_and_in_result_plan(ip):
    notebook(ip, course_bug=SEED_FIX)
    run(ip, COURSE_CELL)
    result = ip.run_cell_magic("gradcheck", "-o", MODEL_CELL)
    reason = result.plan.reason
    assert reason.startswith("chose model over forward_propagation_n / backward_propagation_n"), reason
    assert "the cell assigns or defines" in reason
    assert f"why: {reason}"[:60] in result.text() and "why: chose model" in result._repr_html_()
