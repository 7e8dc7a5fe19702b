"""Every planted bug fails exactly the blocks it breaks, in full and in fast mode, with its hint."""

import pytest
from conftest import check, load_convention

SEED_FIX = [
    ("dW2 = 1. / m * np.dot(dZ2, A1.T)", "dW2 = 1. / m * np.dot(dZ2, A1.T) * 2"),
    ("db1 = 1. / m * np.sum(dZ1", "db1 = 4. / m * np.sum(dZ1"),
]

# (convention, planted change, blocks that must fail, words the hint must contain or None)
ZOO = {
    "seed_dW2_times_2": ("seed_net", [SEED_FIX[0]], {"W2"}, "2.00 × numeric"),
    "seed_db1_times_4": ("seed_net", [SEED_FIX[1]], {"b1"}, "4.00 × numeric"),
    "seed_both_homework_bugs": ("seed_net", SEED_FIX, {"W2", "b1"}, "× numeric"),
    "seed_sign_flipped_dW3": ("seed_net", [("dW3 = 1. / m", "dW3 = -1. / m")], {"W3"}, "sign flipped"),
    "seed_missing_relu_mask_layer2": (
        "seed_net",
        [("dZ2 = np.multiply(dA2, np.int64(A2 > 0))", "dZ2 = dA2")],
        {"W2", "b2", "W1", "b1"},
        None,
    ),
    "seed_missing_relu_mask_layer1": (
        "seed_net",
        [("dZ1 = np.multiply(dA1, np.int64(A1 > 0))", "dZ1 = dA1")],
        {"W1", "b1"},
        "mask",
    ),
    "seed_transposed_dW1": (
        "seed_net",
        [("dW1 = 1. / m * np.dot(dZ1, X.T)", "dW1 = 1. / m * np.dot(X, dZ1.T)")],
        {"W1"},
        "transposed",
    ),
    "seed_missing_keepdims_db2": (
        "seed_net",
        [("db2 = 1. / m * np.sum(dZ2, axis=1, keepdims=True)", "db2 = 1. / m * np.sum(dZ2, axis=1)")],
        {"b2"},
        "keepdims",
    ),
    "seed_missing_key_dW3": ("seed_net", [('"dW3": dW3, ', "")], {"W3"}, "missing gradient dW3"),
    "seed_missing_one_over_m_db3": (
        "seed_net",
        [("db3 = 1. / m * np.sum(dZ3", "db3 = np.sum(dZ3")],
        {"b3"},
        "missing 1/m",
    ),
    "seed_extra_one_over_m_dW3": (
        "seed_net",
        [("dW3 = 1. / m * np.dot", "dW3 = 1. / m / m * np.dot")],
        {"W3"},
        "extra 1/m",
    ),
    "one_d_wrong_scale": ("one_d", [("dtheta = x", "dtheta = 2 * x")], {"theta"}, "2.00 × numeric"),
    "planar_wrong_tanh_derivative": ("planar", [("(1 - np.power(A1, 2))", "(1 - A1)")], {"W1", "b1"}, None),
    "planar_sign_flipped_db2": ("planar", [("db2 = (1 / m)", "db2 = -(1 / m)")], {"b2"}, "sign flipped"),
    "l_layer_missing_relu_mask": ("l_layer", [("dZ[Z <= 0] = 0", "dZ = dZ")], {"W1", "b1", "W2", "b2"}, None),
    "l_layer_wrong_sigmoid_derivative": (
        "l_layer",
        [("dZ = dA * s * (1 - s)", "dZ = dA * s")],
        {"W1", "b1", "W2", "b2", "W3", "b3"},
        None,
    ),
    "l_layer_missing_one_over_m": (
        "l_layer",
        [("dW = 1 / m * np.dot(dZ, A_prev.T)", "dW = np.dot(dZ, A_prev.T)")],
        {"W1", "W2", "W3"},
        "missing 1/m",
    ),
    "l2_missing_term_dW2": (
        "l2",
        [(" + (lambd / m) * W2", "")],
        {"W2"},
        "the analytic gradient lacks (λ/m)·W2",
    ),
    "l2_halved_term_dW1": (
        "l2",
        [("(lambd / m) * W1", "(lambd / (2 * m)) * W1")],
        {"W1"},
        "half the L2 term",
    ),
    # with the ReLU mask taken from A2 (after dropout) a missing D2 changes nothing; from Z2 it matters
    "dropout_missing_mask_dA2": (
        "dropout",
        [("    dA2 = dA2 * D2\n", ""), ("np.int64(A2 > 0)", "np.int64(Z2 > 0)")],
        {"W2", "b2", "W1", "b1"},
        "mask",
    ),
    "dropout_missing_keep_prob_dA1": (
        "dropout",
        [("    dA1 = dA1 / keep_prob\n", "")],
        {"W1", "b1"},
        "0.86 × numeric, as in W1",
    ),
}


@pytest.mark.parametrize("mode", ["full", "fast"])
@pytest.mark.parametrize("case", sorted(ZOO))
def test_planted_bug_fails_exactly_its_blocks(ip, case, mode):
    convention, change, expected, hint = ZOO[case]
    load_convention(ip, convention, replace=change)
    result = check(ip, f"--mode {mode}")
    assert set(result.failed) == expected, result
    assert not result.passed
    assert all(result.table.loc[b, "status"] == "fail" for b in expected)
    assert all(result.table.loc[b, "status"] == "pass" for b in result.table.index if b not in expected), (
        result
    )
    if hint and mode == "full":
        notes = " | ".join(result.table.loc[sorted(expected), "note"])
        assert hint in notes, notes


def test_dropout_relu_mask_from_z_is_still_correct(ip):
    load_convention(ip, "dropout", replace=[("np.int64(A2 > 0)", "np.int64(Z2 > 0)")])
    assert check(ip).passed


@pytest.mark.parametrize("convention", ["seed_net", "one_d", "l_layer", "planar", "l2", "dropout"])
@pytest.mark.parametrize("mode", ["full", "fast"])
def test_correct_code_passes_cleanly(ip, convention, mode):
    load_convention(ip, convention)
    result = check(ip, f"--mode {mode}")
    assert result.passed and not result.warned, result
    assert (result.table["status"] == "pass").all()
