"""Layer functions (cs231n style) and flat cost-and-gradient vectors, through the real magic:
correct code passes; a planted bug fails exactly its blocks, with and without flags."""

import numpy as np
import pytest
from conftest import check, load, run
from IPython.core.error import UsageError


def layers(ip, replace=()):
    load(ip, "cs231n_layers", replace=replace)


AFFINE_CELL = """
rng = np.random.default_rng({seed})
x = rng.standard_normal(({n}, 2, 3))
w = rng.standard_normal((6, {m}))
b = rng.standard_normal({m})
dout = rng.standard_normal(({n}, {m}))
"""


def failing(result):
    return sorted(result.failed)


@pytest.mark.parametrize("seed,n,m", [(0, 2, 3), (1, 4, 5), (2, 1, 1), (3, 7, 2)])
def test_affine_layer_passes_with_flags_at_several_sizes(ip, seed, n, m):
    layers(ip)
    run(ip, AFFINE_CELL.format(seed=seed, n=n, m=m))
    result = check(ip, "-f affine_forward -b affine_backward")
    assert result.passed and not result.warned, result
    assert list(result.table.index) == ["x", "w", "b"]
    assert "dout from the namespace" in result.functions


def test_wrong_dw_in_affine_backward_fails_w_only(ip):
    layers(ip, replace=[("dw = flat.T @ dout", "dw = flat.T @ dout * 1.01")])
    run(ip, AFFINE_CELL.format(seed=0, n=3, m=4))
    assert failing(check(ip, "-f affine_forward -b affine_backward")) == ["w"]


def test_cell_assigning_x_w_b_dout_finds_the_affine_pair_without_flags(ip):
    layers(ip, replace=[("db = dout.sum(axis=0)", "db = dout.mean(axis=0)")])
    del ip.user_ns["affine_relu_forward"]  # it takes the same x, w, b: see the next test
    result = ip.run_cell_magic(
        "gradcheck",
        "-o",
        AFFINE_CELL.format(seed=5, n=3, m=4).replace(
            "x = rng.standard_normal((3, 2, 3))", "x = rng.standard_normal((3, 6))"
        ),
    )
    assert failing(result) == ["b"]


def test_affine_and_affine_relu_both_fitting_the_cell_is_refused_with_the_flag(ip):
    layers(ip)
    with pytest.raises(
        UsageError,
        match=r"affine_forward, affine_relu_forward\).*choose with -f affine_forward -b affine_backward, "
        "or -f affine_relu_forward -b affine_relu_backward",
    ):
        ip.run_cell_magic("gradcheck", "-o", AFFINE_CELL.format(seed=0, n=2, m=3))


def test_missing_upstream_gradient_uses_a_seeded_random_one_and_says_so(ip):
    layers(ip)
    run(ip, "x = np.random.default_rng(0).standard_normal((4, 5))")
    result = check(ip, "-f relu_forward -b relu_backward")
    assert result.passed and "seeded random (4, 5)" in result.functions
    assert list(result.table.index) == ["x"]


def test_relu_backward_with_wrong_mask_fails_x(ip):
    layers(ip, replace=[("return dout * (cache > 0)", "return dout * (cache >= -0.5)")])
    run(ip, "x = np.random.default_rng(1).standard_normal((4, 5))")
    assert failing(check(ip, "-f relu_forward -b relu_backward")) == ["x"]


BN_CELL = """
rng = np.random.default_rng(3)
x = 2 * rng.standard_normal((6, 4)) + 1
gamma = rng.standard_normal(4)
beta = rng.standard_normal(4)
bn_param = {"mode": "train"}
dout = rng.standard_normal((6, 4))
"""


def test_batchnorm_passes_and_leaves_bn_param_untouched(ip):
    layers(ip)
    run(ip, BN_CELL)
    result = check(ip, "-f batchnorm_forward -b batchnorm_backward")
    assert result.passed, result
    assert list(result.table.index) == ["x", "gamma", "beta"]
    assert ip.user_ns["bn_param"] == {"mode": "train"}


def test_wrong_dgamma_fails_gamma_only(ip):
    layers(ip, replace=[("dgamma = (dout * x_hat).sum(axis=0)", "dgamma = dout.sum(axis=0)")])
    run(ip, BN_CELL)
    assert failing(check(ip, "-f batchnorm_forward -b batchnorm_backward")) == ["gamma"]


def test_batchnorm_found_from_the_cell_variables_without_flags(ip):
    layers(ip, replace=[("dbeta = dout.sum(axis=0)", "dbeta = 2 * dout.sum(axis=0)")])
    assert failing(ip.run_cell_magic("gradcheck", "-o", BN_CELL)) == ["beta"]


def test_dropout_with_a_seed_in_its_dict_passes_and_a_wrong_scale_fails(ip):
    cell = "x = np.random.default_rng(2).standard_normal((5, 6))\ndropout_param = {'p': 0.6, 'seed': 7}\n"
    layers(ip)
    run(ip, cell)
    state = np.random.get_state()[1].copy()
    assert check(ip, "-f dropout_forward -b dropout_backward").passed
    assert np.array_equal(np.random.get_state()[1], state)
    layers(ip, replace=[("return dout * cache", "return dout * (cache > 0)")])
    assert failing(check(ip, "-f dropout_forward -b dropout_backward")) == ["x"]


CONV_CELL = """
rng = np.random.default_rng(4)
x = rng.standard_normal((2, 2, 5, 5))
w = rng.standard_normal((3, 2, 3, 3))
b = rng.standard_normal(3)
conv_param = {"stride": 2, "pad": 1}
"""


def test_conv_layer_passes_and_a_wrong_db_fails_b(ip):
    layers(ip)
    run(ip, CONV_CELL)
    result = check(ip, "-f conv_forward_naive -b conv_backward_naive")
    assert result.passed, result
    assert list(result.table.index) == ["x", "w", "b"]
    layers(ip, replace=[("db = dout.sum(axis=(0, 2, 3))", "db = dout.sum(axis=(0, 2, 3)) + 0.1")])
    assert failing(check(ip, "-f conv_forward_naive -b conv_backward_naive")) == ["b"]


def test_max_pool_passes_and_pool_param_is_never_perturbed(ip):
    layers(ip)
    run(
        ip,
        "x = np.random.default_rng(6).standard_normal((2, 3, 4, 4))\n"
        "pool_param = {'pool_height': 2, 'pool_width': 2, 'stride': 2}",
    )
    result = check(ip, "-f max_pool_forward_naive -b max_pool_backward_naive")
    assert result.passed and list(result.table.index) == ["x"]


@pytest.mark.parametrize("loss", ["softmax_loss", "svm_loss"])
def test_loss_layers_are_checked_directly(ip, loss):
    layers(ip)
    run(ip, "rng = np.random.default_rng(8)\nx = rng.standard_normal((6, 4))\ny = rng.integers(4, size=6)")
    result = check(ip, f"-f {loss}")
    assert result.passed, result
    assert list(result.table.index) == ["x"]


def test_softmax_loss_with_a_wrong_dx_fails_x(ip):
    layers(ip, replace=[("    return loss, dx / n\n\n\ndef svm", "    return loss, dx\n\n\ndef svm")])
    run(ip, "rng = np.random.default_rng(8)\nx = rng.standard_normal((6, 4))\ny = rng.integers(4, size=6)")
    assert failing(check(ip, "-f softmax_loss")) == ["x"]


def test_layer_arrays_and_dtypes_are_untouched(ip):
    layers(ip)
    run(ip, AFFINE_CELL.format(seed=9, n=3, m=2) + "w = w.astype(np.float32)")
    before = {k: (ip.user_ns[k].dtype, ip.user_ns[k].tobytes()) for k in ("x", "w", "b", "dout")}
    assert check(ip, "-f affine_forward -b affine_backward").passed
    assert {k: (ip.user_ns[k].dtype, ip.user_ns[k].tobytes()) for k in before} == before


FLAT_CELL = """
rng = np.random.default_rng({seed})
input_layer_size, hidden_layer_size, num_labels = 3, 5, 3
X = rng.standard_normal((7, input_layer_size))
y = rng.integers(num_labels, size=7)
nn_params = 0.5 * rng.standard_normal(hidden_layer_size * (input_layer_size + 1) + num_labels * (hidden_layer_size + 1))
lambda_ = 1.0
"""


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_nn_cost_function_alone_suffices_and_passes(ip, seed):
    load(ip, "flat_cost")
    run(ip, FLAT_CELL.format(seed=seed))
    result = check(ip, "-f nnCostFunction")
    assert result.passed and not result.warned, result
    assert list(result.table.index) == ["nn_params"]


def test_nn_cost_function_missing_regularization_fails_and_localizes_an_entry(ip):
    load(ip, "flat_cost", replace=[("Theta2_grad[:, 1:] += lambda_ / m * Theta2[:, 1:]", "")])
    run(ip, FLAT_CELL.format(seed=0))
    result = check(ip, "-f nnCostFunction")
    assert failing(result) == ["nn_params"]
    worst = result.table.loc["nn_params", "worst_index"]
    assert worst[0] >= 5 * 4  # inside Theta2's part of the vector


def test_scipy_style_fun_returning_f_and_g(ip):
    load(ip, "flat_cost")
    run(ip, "x = np.array([0.5, -1.2, 0.8, 1.1])")
    assert check(ip, "-f rosen_with_grad").passed
    load(ip, "flat_cost", replace=[("g[1:] += 200.0", "g[1:] += 201.0")])
    assert failing(check(ip, "-f rosen_with_grad")) == ["x"]


def test_separate_f_and_fprime_pair(ip):
    load(ip, "flat_cost")
    run(ip, "x0 = np.array([0.5, -1.2, 0.8])")
    assert check(ip, "-f quartic -b quartic_prime -p x0").passed
    load(ip, "flat_cost", replace=[("g[-1] += x[0]", "")])
    assert failing(check(ip, "-f quartic -b quartic_prime -p x0")) == ["x0"]


def test_cell_assigning_nn_params_finds_nn_cost_function_without_flags(ip):
    load(ip, "flat_cost", replace=[("Theta1_grad = d2.T @ a1 / m", "Theta1_grad = d2.T @ a1")])
    result = ip.run_cell_magic("gradcheck", "-o", FLAT_CELL.format(seed=4))
    assert failing(result) == ["nn_params"]
    assert "nnCostFunction(nn_params, input_layer_size" in result.functions
    worst = result.table.loc["nn_params", "worst_index"]
    assert worst[0] < 5 * 4  # inside Theta1's part of the vector


def test_bare_line_over_layer_functions_says_how_to_name_them(ip):
    layers(ip)
    run(ip, AFFINE_CELL.format(seed=0, n=2, m=3))
    with pytest.raises(UsageError, match="affine_forward, .* take the arrays b, w, x") as info:
        ip.run_line_magic("gradcheck", "")
    assert "-f NAME -b NAME" in str(info.value) and "-p/--params NAME" in str(info.value)
