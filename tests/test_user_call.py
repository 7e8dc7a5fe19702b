"""The user's call is the plan: the most recent call in the %%gradcheck cell, then in the notebook's
history (``In``), of a model's method, a layer-function pair or a numerical-gradient helper on a
lambda decides what is checked, with exactly the arguments it was given, their values as they are
now.  Each test stores its cells in ``In`` as a notebook does."""

import numpy as np
import pytest
from conftest import cell, check, load
from IPython.core.error import UsageError

#: cs231n 2017's assignment-1 net: the regularization strength is an argument of loss (default 0).
NET = """
class TwoLayerNet:
    def __init__(self, input_size, hidden_size, output_size, std=1e-1, seed=0):
        rng = np.random.default_rng(seed)
        self.params = {
            "W1": std * rng.standard_normal((input_size, hidden_size)),
            "b1": 0.1 * rng.standard_normal(hidden_size),
            "W2": std * rng.standard_normal((hidden_size, output_size)),
            "b2": 0.1 * rng.standard_normal(output_size),
        }

    def loss(self, X, y=None, reg=0.0):
        W1, b1, W2, b2 = self.params["W1"], self.params["b1"], self.params["W2"], self.params["b2"]
        z1 = X @ W1 + b1
        h = np.maximum(z1, 0)
        scores = h @ W2 + b2
        if y is None:
            return scores
        shifted = scores - scores.max(axis=1, keepdims=True)
        probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        n = X.shape[0]
        loss = -np.log(probs[np.arange(n), y]).mean() + reg * (np.sum(W1 * W1) + np.sum(W2 * W2))
        dscores = probs.copy()
        dscores[np.arange(n), y] -= 1
        dscores /= n
        grads = {"W2": h.T @ dscores + 2 * reg * W2, "b2": dscores.sum(axis=0)}
        dz1 = (dscores @ W2.T) * (z1 > 0)
        grads["W1"] = X.T @ dz1 + 2 * reg * W1
        grads["b1"] = dz1.sum(axis=0)
        return loss, grads
"""
REG_BUG = NET.replace('"W2": h.T @ dscores + 2 * reg * W2', '"W2": h.T @ dscores + reg * W2')


def net_cell(n, d, seed):
    return f"""
rng = np.random.default_rng({seed})
net = TwoLayerNet({d}, 10, 3, seed={seed})
X = rng.standard_normal(({n}, {d}))
y = rng.integers(3, size={n})
"""


def test_the_cells_keyword_argument_is_checked_so_a_wrong_regularization_gradient_fails(ip):
    cell(ip, REG_BUG)
    cell(ip, net_cell(5, 4, 0))
    result = ip.run_cell_magic("gradcheck", "-o", "loss, grads = net.loss(X, y, reg=0.05)")
    assert result.failed == ["W2"], result
    assert result.functions.startswith("net.loss(X, y, reg=0.05)"), result.functions
    assert "from: net.loss(X, y, reg=0.05) in the %%gradcheck cell" in result.text()


@pytest.mark.parametrize("line", ["", "net", "-f net.loss -p net.params"])
def test_a_bare_check_after_the_cell_calling_net_loss_uses_its_reg(ip, line):
    cell(ip, REG_BUG)
    cell(ip, net_cell(5, 4, 0))
    cell(ip, "loss, grads = net.loss(X, y, reg=0.05)\nprint(loss)")
    result = check(ip, line)
    assert result.failed == ["W2"], result
    assert result.plan.source == "net.loss(X, y, reg=0.05) in cell [3]", result.plan


@pytest.mark.parametrize("n,d,seed", [(5, 4, 0), (5, 4, 1), (5, 4, 2), (20, 9, 0), (20, 9, 1), (20, 9, 2)])
def test_correct_regularized_net_passes_cleanly_with_the_users_reg(ip, n, d, seed):
    cell(ip, NET)
    cell(ip, net_cell(n, d, seed))
    cell(ip, "loss, grads = net.loss(X, y, reg=0.05)")
    result = check(ip)
    assert result.passed and not result.warned, result
    assert result.functions.startswith("net.loss(X, y, reg=0.05)")


def test_the_values_are_those_of_now_not_of_the_call(ip):
    cell(ip, REG_BUG)
    cell(ip, net_cell(5, 4, 0))
    cell(ip, "r = 0.05\nloss, grads = net.loss(X, y, reg=r)")
    cell(ip, "r = 0.0")  # reg is zero now: the planted L2 bug cannot show
    assert check(ip).passed
    ip.user_ns["r"] = 0.05
    assert check(ip).failed == ["W2"]


#: deep-learning-from-scratch's gradient_check.py names its data x_batch, t_batch.
BOOK_CELL = """
network = TwoLayerNetwork(input_size=6, hidden_size=5, output_size=3, seed=1)
rng = np.random.default_rng(3)
x_batch = rng.standard_normal((4, 6))
t_batch = np.eye(3)[rng.integers(3, size=4)]
"""
BOOK_BUG = [('"W2": self.layers["Affine2"].dW,', '"W2": 2 * self.layers["Affine2"].dW,')]


@pytest.mark.parametrize(
    "line",
    [
        "network",
        "",
        "-f network.loss -b network.gradient -p network.params",
        "-f loss -b gradient -p params",
    ],
)
@pytest.mark.parametrize("bug,failed", [((), []), (BOOK_BUG, ["W2"])])
def test_the_books_gradient_check_cell_gives_the_data_and_aliases_are_the_network(ip, line, bug, failed):
    load(ip, "scratch_net", replace=bug)
    cell(ip, BOOK_CELL)
    cell(ip, "grad_backprop = network.gradient(x_batch, t_batch)")
    cell(ip, "loss, gradient, params = network.loss, network.gradient, network.params")
    result = check(ip, line)
    assert result.failed == failed and not result.warned, result
    assert "(x_batch, t_batch)" in result.functions, result.functions


def test_without_a_call_a_missing_argument_still_names_its_look_alike(ip):
    load(ip, "scratch_net")
    cell(ip, BOOK_CELL)
    with pytest.raises(UsageError, match="needs `x`.*x_batch"):
        check(ip, "network")


MODEL_CELL = """
rng = np.random.default_rng(0)
model = TwoLayerNet(input_dim=3, hidden_dim=5, num_classes=3, seed=0)
X = rng.standard_normal((4, 3))
y = rng.integers(3, size=4)
"""
WRAPPER = """
params = model.params
def forward(params):
    model.params = params
    loss, grads = model.loss(X, y)
    return loss, grads
def backward(cache):
    return cache
"""
MODEL_BUG = [("dw = flat.T @ dout", "dw = flat.T @ dout * 1.01")]  # affine_backward: W1 and W2 wrong


@pytest.mark.parametrize("bug,failed", [((), []), (MODEL_BUG, ["W1", "W2"])])
def test_a_wrapper_and_the_model_it_wraps_are_one_candidate_the_wrapper_defined_last_wins(ip, bug, failed):
    load(ip, "cs231n_layers", replace=bug)
    cell(ip, MODEL_CELL)
    cell(ip, WRAPPER)
    model, params = ip.user_ns["model"], ip.user_ns["model"].params
    result = check(ip)
    assert result.functions.startswith("forward(params) → backward(cache)"), result.functions
    assert sorted(result.failed) == failed and not result.warned, result
    assert model.params is params and ip.user_ns["params"] is params  # the wrapper's rebinding undone


def test_a_wrapper_and_a_model_built_after_it_are_one_candidate_the_model_wins(ip):
    load(ip, "cs231n_layers", replace=MODEL_BUG)
    cell(ip, "model = None\n" + WRAPPER.replace("params = model.params\n", ""))
    cell(ip, MODEL_CELL + "params = model.params")
    result = check(ip)
    assert result.functions.startswith("model.loss(X, y)"), result.functions
    assert sorted(result.failed) == ["W1", "W2"]


STALE = "x, w, b = np.ones((2, 3)), np.ones((3, 4)), np.ones(4)  # an earlier experiment"
LATEST = """
rng = np.random.default_rng(5)
x2, w2, b2 = rng.standard_normal((5, 6)), rng.standard_normal((6, 3)), rng.standard_normal(3)
dout2 = rng.standard_normal((5, 3))
out, cache = affine_forward(x2, w2, b2)
dx, dw, db = affine_backward(dout2, cache)
"""


def test_the_arrays_of_the_users_latest_call_are_checked_not_leftovers_named_like_the_arguments(ip):
    load(ip, "cs231n_layers", replace=MODEL_BUG)
    cell(ip, STALE)
    cell(ip, LATEST)
    result = check(ip)
    assert result.functions.startswith("affine_forward(x2, w2, b2) → Σ out·dout"), result.functions
    assert "dout2 from your call" in result.functions
    assert result.table.loc["w", "shape"] == (6, 3) and result.failed == ["w"]


def test_an_error_on_a_leftover_says_which_cell_assigned_each_argument(ip, capsys):
    load(ip, "cs231n_layers")
    cell(ip, "w = np.ones((7, 5))")
    cell(ip, "x, b = np.ones((4, 6)), np.ones(5)")
    result = ip.run_cell("%gradcheck -f affine_forward -b affine_backward")
    assert isinstance(result.error_in_exec, ValueError)
    assert (
        "affine_forward(x, w, b) (x from cell [2], w from cell [1], b from cell [2], w older than the rest) raised"
        in capsys.readouterr().err
    )


def test_a_re_run_from_another_copy_of_the_package_follows_the_same_call(ip):
    """The headless grader re-runs each check with its own copy of the package: the cell facts it was
    given (another copy's class) still carry the user's call."""
    from types import SimpleNamespace

    from gradcheck_magic import gradcheck
    from gradcheck_magic.plan.cell import CellFacts

    cell(ip, REG_BUG)
    cell(ip, net_cell(5, 4, 0))
    cell(ip, "loss, grads = net.loss(X, y, reg=0.05)")
    facts = CellFacts.read(None, "", ip.user_ns["In"])
    foreign = SimpleNamespace(**vars(facts))  # what a private copy sees: not its own CellFacts class
    result = gradcheck(ip.user_ns, prefer=foreign)
    assert result.failed == ["W2"] and result.functions.startswith("net.loss(X, y, reg=0.05)")


def test_a_label_left_to_its_default_is_named_with_its_look_alikes(ip):
    cell(ip, NET)
    cell(
        ip,
        "net = TwoLayerNet(4, 10, 3)\nX = np.ones((5, 4))\ny_train = np.zeros(5, dtype=int)\ny_dev = y_train[:2]",
    )
    with pytest.raises(UsageError, match=r"net.loss needs `y`.*there is y_train, y_dev"):
        check(ip, "net")


@pytest.mark.parametrize(
    "n,hidden,seed", [(4, 5, 1), (4, 5, 2), (4, 5, 3), (12, 9, 1), (12, 9, 2), (12, 9, 3)]
)
@pytest.mark.parametrize("bug,failed", [((), []), (BOOK_BUG, ["W2"])])
def test_the_books_network_is_checked_on_the_batch_its_gradient_call_got_at_several_sizes(
    ip, n, hidden, seed, bug, failed
):
    load(ip, "scratch_net", replace=bug)
    cell(
        ip,
        BOOK_CELL.replace(
            "hidden_size=5, output_size=3, seed=1", f"hidden_size={hidden}, output_size=3, seed={seed}"
        )
        .replace("(4, 6)", f"({n}, 6)")
        .replace("size=4", f"size={n}"),
    )
    cell(
        ip, "grad_numerical = network.numerical_gradient\ngrad_backprop = network.gradient(x_batch, t_batch)"
    )
    result = check(ip)
    assert result.failed == failed and not result.warned, result
    assert result.table.loc["W1", "shape"] == (6, hidden)


# ---- the course's families take the arguments of the user's call ---------------------------------


def three_layer_data(m, seed, names="X_dev, Y_dev, params"):
    """A cell assigning data and parameters of the regularization homework's net under other names."""
    return f"""
rng = np.random.default_rng({seed})
{names} = (
    rng.standard_normal((3, {m})),
    (rng.random((1, {m})) > 0.5).astype(int),
    {{"W1": rng.standard_normal((4, 3)), "b1": 0.1 * rng.standard_normal((4, 1)),
     "W2": rng.standard_normal((3, 4)), "b2": 0.1 * rng.standard_normal((3, 1)),
     "W3": rng.standard_normal((1, 3)), "b3": 0.1 * rng.standard_normal((1, 1))}},
)
"""


def seed_net_data(m, seed):
    return f"""
rng = np.random.default_rng({seed})
X_dev, Y_dev = rng.standard_normal((4, {m})), (rng.random((1, {m})) > 0.5).astype(int)
params = {{"W1": rng.standard_normal((5, 4)), "b1": rng.standard_normal((5, 1)),
          "W2": rng.standard_normal((3, 5)), "b2": rng.standard_normal((3, 1)),
          "W3": rng.standard_normal((1, 3)), "b3": rng.standard_normal((1, 1))}}
"""


L2_DOUBLED = [("+ (lambd / m) * W3", "+ (2 * lambd / m) * W3")]  # only dW3 wrong, and only when lambd != 0
L2_CALLS = """
a3, cache = forward_propagation(X_dev, params)
cost = compute_cost_with_regularization(a3, Y_dev, params, lambd=0.7)
grads = backward_propagation_with_regularization(X_dev, Y_dev, cache, lambd=0.7)
"""


def test_the_courses_keyword_lambd_is_checked_so_a_doubled_l2_term_fails_w3(ip):
    """Finding 1 for the course: a leftover ``lambd = 0`` must not stand in for the call's ``lambd=0.7``."""
    load(ip, "three_layer", "l2", replace=L2_DOUBLED)
    cell(ip, "lambd = 0.0  # first trained without regularization\n" + three_layer_data(6, 0))
    cell(ip, L2_CALLS)
    result = check(ip)
    assert result.failed == ["W3"] and not result.warned, result
    assert result.functions == (
        "forward_propagation(X_dev, params) → compute_cost_with_regularization(a3, Y_dev, params, lambd=0.7)"
        " → backward_propagation_with_regularization(X_dev, Y_dev, cache, lambd=0.7)"
    ), result.functions
    assert result.plan.source.endswith("in cell [2]"), result.plan


#: A student's dropout backward with keep_prob defaulting to 0.5 and the rescaling of dA2 hard-coded:
#: right only when keep_prob is 0.5.
DROPOUT_HARDCODED = [
    (
        "def backward_propagation_with_dropout(X, Y, cache, keep_prob):",
        "def backward_propagation_with_dropout(X, Y, cache, keep_prob=0.5):",
    ),
    ("    dA2 = dA2 / keep_prob\n", "    dA2 = dA2 / 0.5\n"),
    ("keep_prob = 0.86\n", ""),
]
DROPOUT_CALLS = """
a3, cache = forward_propagation_with_dropout(X_dev, params, 0.86)
grads = backward_propagation_with_dropout(X_dev, Y_dev, cache, keep_prob=0.86)
"""


def test_keep_prob_the_calls_pass_is_checked_so_a_hardcoded_rescaling_fails_the_blocks_below_it(ip):
    load(ip, "three_layer", "dropout", replace=DROPOUT_HARDCODED)
    cell(ip, three_layer_data(6, 0))
    cell(ip, DROPOUT_CALLS)
    result = check(ip)
    assert sorted(result.failed) == ["W1", "W2", "b1", "b2"] and not result.warned, result
    assert result.functions.startswith("forward_propagation_with_dropout(X_dev, params, keep_prob=0.86)")
    assert "backward_propagation_with_dropout(X_dev, Y_dev, cache, keep_prob=0.86)" in result.functions


@pytest.mark.parametrize("m,seed", [(6, 0), (6, 1), (6, 2), (40, 0), (40, 1), (40, 2)])
@pytest.mark.parametrize("family", ["l2", "dropout"])
def test_correct_course_families_pass_cleanly_on_the_calls_arguments(ip, family, m, seed):
    replace = [] if family == "l2" else DROPOUT_HARDCODED[:1] + DROPOUT_HARDCODED[2:]
    load(ip, "three_layer", family, replace=replace)
    cell(ip, "lambd = 0.0\n" + three_layer_data(m, seed))
    cell(ip, L2_CALLS if family == "l2" else DROPOUT_CALLS)
    result = check(ip)
    assert result.passed and not result.warned, result
    assert ("lambd=0.7" if family == "l2" else "keep_prob=0.86") in result.functions


SEED_NET_BUG = [("dW2 = 1. / m * np.dot(dZ2, A1.T)", "dW2 = 1. / m * np.dot(dZ2, A1.T) * 2")]


@pytest.mark.parametrize("leftovers", [False, True])
@pytest.mark.parametrize("bug,failed", [((), []), (SEED_NET_BUG, ["W2"])])
def test_data_and_parameters_named_unusually_are_taken_from_the_forwards_call(ip, leftovers, bug, failed):
    load(ip, "seed_net", replace=bug)
    if leftovers:  # the test case's X, Y, parameters, of another size, from an earlier cell
        cell(ip, "X, Y, parameters = gradient_check_n_test_case()")
    cell(ip, seed_net_data(7, 0))
    cell(ip, "cost, cache = forward_propagation_n(X_dev, Y_dev, params)")
    ns = ip.user_ns
    before = {k: v.copy() for k, v in [*ns["params"].items(), ("X_dev", ns["X_dev"]), ("Y_dev", ns["Y_dev"])]}
    state = np.random.get_state()[1].copy()
    result = check(ip)
    assert result.failed == failed and not result.warned, result
    now = {**ns["params"], "X_dev": ns["X_dev"], "Y_dev": ns["Y_dev"]}
    assert all(now[k].dtype == v.dtype and np.array_equal(now[k], v) for k, v in before.items())
    assert np.array_equal(np.random.get_state()[1], state)
    assert result.functions == (
        "forward_propagation_n(X_dev, Y_dev, params) → backward_propagation_n(X_dev, Y_dev, cache)"
    )
    assert result.plan.source == f"forward_propagation_n(X_dev, Y_dev, params) in cell [{2 + leftovers}]"


GRADIENT_CHECK_N = """
def gradient_check_n(parameters, gradients, X, Y, epsilon=1e-7, print_msg=False):
    theta = np.concatenate([parameters[k].reshape(-1) for k in sorted(parameters)])
    return forward_propagation_n(X, Y, parameters)[0] + 0 * theta.sum()  # a stub: the course's loop
"""


@pytest.mark.parametrize("m,seed", [(3, 0), (3, 1), (3, 2), (30, 0), (30, 1), (30, 2)])
@pytest.mark.parametrize("bug,failed", [((), []), (SEED_NET_BUG, ["W2"])])
def test_the_courses_gradient_check_n_call_gives_the_data_it_checks(ip, m, seed, bug, failed):
    load(ip, "seed_net", replace=bug)
    cell(ip, GRADIENT_CHECK_N)
    cell(ip, "X, Y, parameters = gradient_check_n_test_case()")  # leftovers of the course's cell
    cell(ip, seed_net_data(m, seed))
    cell(ip, "gradients = {}")
    cell(ip, "difference = gradient_check_n(params, gradients, X_dev, Y_dev, 1e-7)")
    result = check(ip)
    assert result.failed == failed and not result.warned, result
    assert result.functions.startswith("forward_propagation_n(X_dev, Y_dev, params)"), result.functions
    assert result.plan.source == "gradient_check_n(params, gradients, X_dev, Y_dev, 1e-7) in cell [5]"


def test_the_l_layer_net_on_x_train_from_its_call(ip):
    load(
        ip,
        "l_layer",
        replace=[("dW = 1 / m * np.dot(dZ, A_prev.T)", "dW = 1 / m * np.dot(dZ, A_prev.T) * 1.5")],
    )
    cell(ip, "X_train, Y_train, params = L_layer_test_case()")
    cell(ip, "AL, caches = L_model_forward(X_train, params)\ngrads = L_model_backward(AL, Y_train, caches)")
    result = check(ip)
    assert sorted(result.failed) == ["W1", "W2", "W3"], result
    assert result.functions.startswith("L_model_forward(X_train, params)"), result.functions


def test_two_calls_of_one_cell_giving_lambd_two_values_are_refused_by_name(ip):
    load(ip, "three_layer", "l2")
    cell(ip, three_layer_data(6, 0))
    cell(ip, L2_CALLS.replace("params, lambd=0.7", "params, lambd=0.1"))
    with pytest.raises(UsageError, match=r"pass `lambd` two different values \(0.7 and 0.1\)"):
        check(ip)


def test_an_argument_whose_expression_would_run_code_is_bound_by_name_and_said(ip):
    load(ip, "seed_net")
    cell(ip, seed_net_data(5, 0) + "X, Y = X_dev, Y_dev")
    cell(ip, "cost, cache = forward_propagation_n(X_dev, Y_dev, dict(params))")
    cell(ip, "parameters = params")
    result = check(ip)
    assert result.passed, result
    assert result.plan.source == (
        "forward_propagation_n(X_dev, Y_dev, dict(params)) in cell [2] "
        "(parameters bound by name: the call's expression would run code)"
    ), result.plan
