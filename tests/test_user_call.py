"""The user's call is the plan: the most recent call in the %%gradcheck cell, then in the notebook's
history (``In``), of a model's method, a layer-function pair or a numerical-gradient helper on a
lambda decides what is checked, with exactly the arguments it was given, their values as they are
now.  Each test stores its cells in ``In`` as a notebook does."""

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
