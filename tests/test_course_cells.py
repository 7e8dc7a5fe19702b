"""Bare ``%gradcheck`` right after one of cs231n's own gradient-test cells checks the pair that cell
tested, on the cell's arrays and ``dout``, whatever else the notebook holds (a leftover model, other
layer functions, ``X``/``y`` of an earlier cell): the cells call a numerical-gradient helper on a
lambda (``eval_numerical_gradient_array(lambda x: batchnorm_forward(x, gamma, beta, bn_param)[0], x,
dout)``), then the forward and the backward.  Config dicts (``bn_param``, ``dropout_param``,
``gn_param``) pass through and are restored; an integer ``x`` is data, paired by position."""

import pytest
from conftest import cell, check, source
from IPython.core.error import UsageError

#: The layers of cs231n assignment 2 that tests/homework/cs231n_layers.py does not have, and the
#: course's numerical-gradient helper (written here from the formulas).
MORE_LAYERS = """
def eval_numerical_gradient_array(f, x, df, h=1e-5):
    grad = np.zeros_like(x)
    for ix in np.ndindex(x.shape):
        old = x[ix]
        x[ix] = old + h
        pos = f(x).copy()
        x[ix] = old - h
        neg = f(x).copy()
        x[ix] = old
        grad[ix] = np.sum((pos - neg) * df) / (2 * h)
    return grad


def rel_error(x, y):
    return np.max(np.abs(x - y) / np.maximum(1e-8, np.abs(x) + np.abs(y)))


def _normalize_backward(dout, x_hat, gamma, inv_std, axis):
    n = x_hat.shape[axis]
    dx_hat = dout * gamma
    return inv_std / n * (
        n * dx_hat
        - dx_hat.sum(axis=axis, keepdims=True)
        - x_hat * (dx_hat * x_hat).sum(axis=axis, keepdims=True)
    )


def batchnorm_backward_alt(dout, cache):
    x_hat, gamma, inv_std = cache
    dx = _normalize_backward(dout, x_hat, gamma, inv_std, 0)
    return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)


def layernorm_forward(x, gamma, beta, ln_param):
    eps = ln_param.get("eps", 1e-5)
    mean = x.mean(axis=1, keepdims=True)
    inv_std = 1.0 / np.sqrt(x.var(axis=1, keepdims=True) + eps)
    x_hat = (x - mean) * inv_std
    return gamma * x_hat + beta, (x_hat, gamma, inv_std)


def layernorm_backward(dout, cache):
    x_hat, gamma, inv_std = cache
    dbeta = dout.sum(axis=0)
    dx = _normalize_backward(dout, x_hat, gamma, inv_std, 1)
    return dx, (dout * x_hat).sum(axis=0), dbeta


def spatial_batchnorm_forward(x, gamma, beta, bn_param):
    n, c, h, w = x.shape
    out, cache = batchnorm_forward(x.transpose(0, 2, 3, 1).reshape(-1, c), gamma, beta, bn_param)
    return out.reshape(n, h, w, c).transpose(0, 3, 1, 2), (cache, x.shape)


def spatial_batchnorm_backward(dout, cache):
    cache, (n, c, h, w) = cache
    dx, dgamma, dbeta = batchnorm_backward(dout.transpose(0, 2, 3, 1).reshape(-1, c), cache)
    return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma, dbeta


def spatial_groupnorm_forward(x, gamma, beta, G, gn_param):
    eps = gn_param.get("eps", 1e-5)
    n = x.shape[0]
    groups = x.reshape(n, G, -1)
    inv_std = 1.0 / np.sqrt(groups.var(axis=2, keepdims=True) + eps)
    x_hat = ((groups - groups.mean(axis=2, keepdims=True)) * inv_std).reshape(x.shape)
    return gamma * x_hat + beta, (x_hat, gamma, inv_std, G)


def spatial_groupnorm_backward(dout, cache):
    x_hat, gamma, inv_std, G = cache
    n = dout.shape[0]
    dbeta = dout.sum(axis=(0, 2, 3), keepdims=True)
    dgamma = (dout * x_hat).sum(axis=(0, 2, 3), keepdims=True)
    dx_hat = (dout * gamma).reshape(n, G, -1)
    groups = x_hat.reshape(n, G, -1)
    dx = _normalize_backward(dx_hat, groups, 1.0, inv_std, 2)
    return dx.reshape(dout.shape), dgamma, dbeta
"""

#: Each of cs231n's gradient-test cells, in the course's own pattern (sizes and seeds vary below).
CELLS = {
    "affine": """
np.random.seed({seed})
x = np.random.randn({n}, 2, 3)
w = np.random.randn(6, 5)
b = np.random.randn(5)
dout = np.random.randn({n}, 5)
dx_num = eval_numerical_gradient_array(lambda x: affine_forward(x, w, b)[0], x, dout)
dw_num = eval_numerical_gradient_array(lambda w: affine_forward(x, w, b)[0], w, dout)
db_num = eval_numerical_gradient_array(lambda b: affine_forward(x, w, b)[0], b, dout)
_, cache = affine_forward(x, w, b)
dx, dw, db = affine_backward(dout, cache)
print('dx error: ', rel_error(dx_num, dx))
""",
    "relu": """
np.random.seed({seed})
x = np.random.randn({n}, 10)
dout = np.random.randn(*x.shape)
dx_num = eval_numerical_gradient_array(lambda x: relu_forward(x)[0], x, dout)
_, cache = relu_forward(x)
dx = relu_backward(dout, cache)
""",
    "batchnorm": """
np.random.seed({seed})
N, D = {n}, 5
x = 5 * np.random.randn(N, D) + 12
gamma = np.random.randn(D)
beta = np.random.randn(D)
dout = np.random.randn(N, D)
bn_param = {{'mode': 'train'}}
fx = lambda x: batchnorm_forward(x, gamma, beta, bn_param)[0]
fg = lambda a: batchnorm_forward(x, a, beta, bn_param)[0]
fb = lambda b: batchnorm_forward(x, gamma, b, bn_param)[0]
dx_num = eval_numerical_gradient_array(fx, x, dout)
da_num = eval_numerical_gradient_array(fg, gamma.copy(), dout)
db_num = eval_numerical_gradient_array(fb, beta.copy(), dout)
_, cache = batchnorm_forward(x, gamma, beta, bn_param)
dx, dgamma, dbeta = batchnorm_backward(dout, cache)
""",
    "batchnorm_alt": """
np.random.seed({seed})
N, D = {n}, 6
x = 5 * np.random.randn(N, D) + 12
gamma = np.random.randn(D)
beta = np.random.randn(D)
dout = np.random.randn(N, D)
bn_param = {{'mode': 'train'}}
out, cache = batchnorm_forward(x, gamma, beta, bn_param)
dx1, dgamma1, dbeta1 = batchnorm_backward(dout, cache)
dx2, dgamma2, dbeta2 = batchnorm_backward_alt(dout, cache)
""",
    "layernorm": """
np.random.seed({seed})
N, D = {n}, 5
x = 5 * np.random.randn(N, D) + 12
gamma = np.random.randn(D)
beta = np.random.randn(D)
dout = np.random.randn(N, D)
ln_param = {{}}
fx = lambda x: layernorm_forward(x, gamma, beta, ln_param)[0]
dx_num = eval_numerical_gradient_array(fx, x, dout)
_, cache = layernorm_forward(x, gamma, beta, ln_param)
dx, dgamma, dbeta = layernorm_backward(dout, cache)
""",
    "dropout": """
np.random.seed({seed})
x = np.random.randn({n}, 10) + 10
dout = np.random.randn(*x.shape)
dropout_param = {{'mode': 'train', 'p': 0.2, 'seed': 123}}
out, cache = dropout_forward(x, dropout_param)
dx = dropout_backward(dout, cache)
dx_num = eval_numerical_gradient_array(lambda xx: dropout_forward(xx, dropout_param)[0], x, dout)
""",
    "conv": """
np.random.seed({seed})
x = np.random.randn({n}, 3, 5, 5)
w = np.random.randn(2, 3, 3, 3)
b = np.random.randn(2,)
dout = np.random.randn({n}, 2, 5, 5)
conv_param = {{'stride': 1, 'pad': 1}}
dx_num = eval_numerical_gradient_array(lambda x: conv_forward_naive(x, w, b, conv_param)[0], x, dout)
out, cache = conv_forward_naive(x, w, b, conv_param)
dx, dw, db = conv_backward_naive(dout, cache)
""",
    "max_pool": """
np.random.seed({seed})
x = np.random.randn({n}, 2, 8, 8)
dout = np.random.randn({n}, 2, 4, 4)
pool_param = {{'pool_height': 2, 'pool_width': 2, 'stride': 2}}
dx_num = eval_numerical_gradient_array(lambda x: max_pool_forward_naive(x, pool_param)[0], x, dout)
out, cache = max_pool_forward_naive(x, pool_param)
dx = max_pool_backward_naive(dout, cache)
""",
    "spatial_batchnorm": """
np.random.seed({seed})
N, C, H, W = {n}, 3, 4, 5
x = 5 * np.random.randn(N, C, H, W) + 12
gamma = np.random.randn(C)
beta = np.random.randn(C)
dout = np.random.randn(N, C, H, W)
bn_param = {{'mode': 'train'}}
fx = lambda x: spatial_batchnorm_forward(x, gamma, beta, bn_param)[0]
dx_num = eval_numerical_gradient_array(fx, x, dout)
_, cache = spatial_batchnorm_forward(x, gamma, beta, bn_param)
dx, dgamma, dbeta = spatial_batchnorm_backward(dout, cache)
""",
    "groupnorm": """
np.random.seed({seed})
N, C, H, W = {n}, 6, 4, 5
G = 2
x = 5 * np.random.randn(N, C, H, W) + 12
gamma = np.random.randn(1, C, 1, 1)
beta = np.random.randn(1, C, 1, 1)
dout = np.random.randn(N, C, H, W)
gn_param = {{}}
fx = lambda x: spatial_groupnorm_forward(x, gamma, beta, G, gn_param)[0]
dx_num = eval_numerical_gradient_array(fx, x, dout)
_, cache = spatial_groupnorm_forward(x, gamma, beta, G, gn_param)
dx, dgamma, dbeta = spatial_groupnorm_backward(dout, cache)
""",
}
#: (the functions the caption names, the rows, a planted bug, the rows it fails)
EXPECTED = {
    "affine": (
        "affine_forward(x, w, b)",
        ["x", "w", "b"],
        ("dw = flat.T @ dout", "dw = 1.01 * flat.T @ dout"),
        ["w"],
    ),
    "relu": ("relu_forward(x)", ["x"], ("return dout * (cache > 0)", "return dout * (cache > 0.2)"), ["x"]),
    "batchnorm": (
        "batchnorm_forward(x, gamma, beta, bn_param)",
        ["x", "gamma", "beta"],
        (
            "dgamma = (dout * x_hat).sum(axis=0)\n    dx_hat",
            "dgamma = (dout * x_hat).sum(axis=0) * 2\n    dx_hat",
        ),
        ["gamma"],
    ),
    "batchnorm_alt": (
        "batchnorm_forward(x, gamma, beta, bn_param)",
        ["x", "gamma", "beta"],
        (
            "return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=0)",
            "return dx, (dout * x_hat).sum(axis=0), dout.sum(axis=1)[:1]",
        ),
        ["beta"],
    ),
    "layernorm": (
        "layernorm_forward(x, gamma, beta, ln_param)",
        ["x", "gamma", "beta"],
        (
            "    dbeta = dout.sum(axis=0)\n    dx = _normalize",
            "    dbeta = 2 * dout.sum(axis=0)\n    dx = _normalize",
        ),
        ["beta"],
    ),
    "dropout": (
        "dropout_forward(x, dropout_param)",
        ["x"],
        ("return dout * cache", "return dout * cache * 0.9"),
        ["x"],
    ),
    "conv": (
        "conv_forward_naive(x, w, b, conv_param)",
        ["x", "w", "b"],
        (
            "db = dout.sum(axis=(0, 2, 3))\n    return dx, dw",
            "db = dout.sum(axis=(0, 2))[:, 0]\n    return dx, dw",
        ),
        ["b"],
    ),
    "max_pool": (
        "max_pool_forward_naive(x, pool_param)",
        ["x"],
        (
            "hit = window == window.max(axis=(2, 3), keepdims=True)",
            "hit = window >= window.min(axis=(2, 3), keepdims=True)",
        ),
        ["x"],
    ),
    "spatial_batchnorm": (
        "spatial_batchnorm_forward(x, gamma, beta, bn_param)",
        ["x", "gamma", "beta"],
        (
            "return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma, dbeta",
            "return dx.reshape(n, h, w, c).transpose(0, 3, 1, 2), dgamma, dbeta * 3",
        ),
        ["beta"],
    ),
    "groupnorm": (
        "spatial_groupnorm_forward(x, gamma, beta, G, gn_param)",
        ["x", "gamma", "beta"],
        (
            "dbeta = dout.sum(axis=(0, 2, 3), keepdims=True)",
            "dbeta = 0.5 * dout.sum(axis=(0, 2, 3), keepdims=True)",
        ),
        ["beta"],
    ),
}
#: What an earlier cell of the notebook left: a model, its data, and other layers' arrays.
LEFTOVERS = """
model = TwoLayerNet(input_dim=5, hidden_dim=7, num_classes=3)
X = np.random.default_rng(0).standard_normal((4, 5))
y = np.array([0, 1, 2, 1])
loss, grads = model.loss(X, y)
"""


def notebook(ip, bug=None):
    code = source("cs231n_layers") + "\n" + MORE_LAYERS
    if bug:
        assert code.count(bug[0]) == 1, bug
        code = code.replace(*bug)
    cell(ip, code)
    cell(ip, LEFTOVERS)


@pytest.mark.parametrize("name", list(CELLS))
@pytest.mark.parametrize("n,seed", [(4, 231), (7, 0), (10, 1)])
def test_bare_check_after_the_courses_test_cell_passes_the_pair_it_tested(ip, name, n, seed):
    notebook(ip)
    cell(ip, CELLS[name].format(n=n, seed=seed))
    params = {k: v for k, v in ip.user_ns.items() if k.endswith("_param")}
    saved = {k: dict(v) for k, v in params.items()}
    result = check(ip)
    functions, rows, _, _ = EXPECTED[name]
    assert result.functions.startswith(functions), result.functions
    assert list(result.table.index) == rows
    assert result.passed and not result.warned, result
    assert {k: dict(v) for k, v in params.items()} == saved  # config dicts restored
    assert result.plan.source.endswith("in cell [3]"), result.plan


@pytest.mark.parametrize("name", list(CELLS))
def test_bare_check_after_the_courses_test_cell_fails_exactly_the_planted_block(ip, name):
    functions, _, bug, failed = EXPECTED[name]
    notebook(ip, bug)
    cell(ip, CELLS[name].format(n=5, seed=231))
    result = check(ip)
    assert result.functions.startswith(functions), result.functions
    assert sorted(result.failed) == sorted(failed), result


def test_the_alt_backward_the_cell_calls_last_is_the_one_checked(ip):
    notebook(ip, EXPECTED["batchnorm_alt"][2])
    cell(ip, CELLS["batchnorm_alt"].format(n=5, seed=0))
    result = check(ip)
    assert "batchnorm_backward_alt(dout, cache)" in result.functions and result.failed == ["beta"]


INTEGER_X = """
x = np.arange(24).reshape(4, 6)
w = np.random.default_rng(0).standard_normal((6, 3))
b = np.random.default_rng(1).standard_normal(3)
dout = np.random.default_rng(2).standard_normal((4, 3))
"""


@pytest.mark.parametrize(
    "bug,failed", [(None, []), (("db = dout.sum(axis=0)", "db = 2 * dout.sum(axis=0)"), ["b"])]
)
def test_an_integer_x_is_data_and_the_gradients_pair_by_argument_position(ip, bug, failed):
    notebook(ip, bug)
    cell(ip, INTEGER_X)
    result = check(ip, "-f affine_forward -b affine_backward")
    assert list(result.table.index) == ["w", "b"]
    assert result.failed == failed and not result.warned, result
    assert ip.user_ns["x"].dtype.kind == "i"


@pytest.mark.parametrize("line,rows", [("-p w", ["w"]), ("-p w,b", ["w", "b"]), ("-p x", ["x"])])
def test_p_chooses_which_blocks_of_a_layer_pair_are_checked(ip, line, rows):
    notebook(ip, EXPECTED["affine"][2])
    cell(ip, CELLS["affine"].format(n=4, seed=0))
    result = check(ip, f"-f affine_forward -b affine_backward {line}")
    assert list(result.table.index) == rows
    assert result.failed == (["w"] if "w" in rows else [])


def test_p_naming_no_float_argument_of_the_layer_is_refused_with_the_choices(ip):
    notebook(ip)
    cell(ip, CELLS["affine"].format(n=4, seed=0))
    with pytest.raises(UsageError, match="float array arguments are x, w, b"):
        check(ip, "-f affine_forward -b affine_backward -p W1")


def test_without_history_a_config_dict_is_never_named_as_the_parameters(ip):
    for code in (source("cs231n_layers") + MORE_LAYERS, CELLS["batchnorm"].format(n=4, seed=0)):
        ip.run_cell(code).raise_error()  # not stored in In (a script): no call to follow
    with pytest.raises(UsageError) as info:
        check(ip)
    assert "bn_param" not in str(info.value) and "-f NAME -b NAME" in str(info.value), info.value


# ---- the layers imported from the assignment's own package, as cs231n's notebooks do --------------

LOSS_CELL = """
np.random.seed({seed})
num_classes, num_inputs = 10, {n}
x = 0.001 * np.random.randn(num_inputs, num_classes)
y = np.random.randint(num_classes, size=num_inputs)
dx_num = eval_numerical_gradient(lambda x: {loss}(x, y)[0], x, verbose=False)
loss, dx = {loss}(x, y)
print('dx error: ', rel_error(dx_num, dx))
"""
NUMERICAL = """
def eval_numerical_gradient(f, x, verbose=True, h=0.00001):
    grad = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"], op_flags=["readwrite"])
    while not it.finished:
        ix = it.multi_index
        old = x[ix]
        x[ix] = old + h
        fxph = f(x)
        x[ix] = old - h
        fxmh = f(x)
        x[ix] = old
        grad[ix] = (fxph - fxmh) / (2 * h)
        it.iternext()
    return grad
"""
#: a planted bug in each loss layer: its one row, x, fails
LOSS_BUGS = {
    "softmax_loss": ("return loss, dx / n\n\n\ndef svm", "return loss, dx / n * 1.1\n\n\ndef svm"),
    "svm_loss": ("dx[np.arange(n), y] -= dx.sum(axis=1)", "dx[np.arange(n), y] -= 0.5 * dx.sum(axis=1)"),
}


def assignment(ip, package, bug=None):
    """cs231n's layers in the assignment's own package, imported with ``*`` as its notebooks do."""
    code = "import numpy as np\n" + source("cs231n_layers") + "\n" + MORE_LAYERS + NUMERICAL
    if bug:
        assert code.count(bug[0]) == 1, bug
        code = code.replace(*bug)
    package("cs231n", {"layers": code})
    cell(ip, "from cs231n.layers import *")
    cell(ip, LEFTOVERS)


@pytest.mark.parametrize("name", list(CELLS))
def test_bare_check_after_each_test_cell_with_the_layers_imported_from_the_assignments_package(
    ip, package, name
):
    assignment(ip, package)
    cell(ip, CELLS[name].format(n=4, seed=231))
    result = check(ip)
    functions, rows, _, _ = EXPECTED[name]
    assert result.functions.startswith(functions), result.functions
    assert list(result.table.index) == rows and result.passed and not result.warned, result


@pytest.mark.parametrize("loss", sorted(LOSS_BUGS))
@pytest.mark.parametrize("imported", [False, True])
@pytest.mark.parametrize("n,seed", [(5, 231), (50, 0), (50, 1)])
def test_bare_check_after_the_loss_layers_test_cell_checks_x_with_y_as_data(
    ip, package, loss, imported, n, seed
):
    if imported:
        assignment(ip, package)
    else:
        notebook(ip)
        cell(ip, NUMERICAL)
    cell(ip, LOSS_CELL.format(loss=loss, n=n, seed=seed))
    result = check(ip)
    assert result.functions.startswith(f"{loss}(x, y)"), result.functions
    assert list(result.table.index) == ["x"] and result.passed and not result.warned, result
    assert result.plan.source == f"{loss}(x, y) in cell [{3 + (not imported)}]", result.plan


@pytest.mark.parametrize("loss", sorted(LOSS_BUGS))
@pytest.mark.parametrize("imported", [False, True])
def test_a_planted_bug_in_an_imported_loss_layer_fails_x(ip, package, loss, imported):
    if imported:
        assignment(ip, package, LOSS_BUGS[loss])
    else:
        notebook(ip, LOSS_BUGS[loss])
        cell(ip, NUMERICAL)
    cell(ip, LOSS_CELL.format(loss=loss, n=20, seed=0))
    assert check(ip).failed == ["x"]
