"""Which line is wrong: the planted line is the top suspect, with a reason; correct code has none."""

import numpy as np
import pytest
from conftest import FILES, SETUPS, check, load, load_convention, run, source
from test_planted_bugs import SEED_FIX

from gradcheck_magic import widgets as gw
from gradcheck_magic.diagnosis import Hint
from gradcheck_magic.engine import Outcome
from gradcheck_magic.suspects import NOTHING, Unfollowable, find_suspects, flow_of, source_html

L2_COST_DOUBLED = "L2_regularization_cost = (1 / m) * lambd * (np.sum(np.square(W1))"

# case -> (convention, planted change, {block: the planted line}, words the top reason must contain)
CASES = {
    "seed_homework_bugs": (
        "seed_net",
        SEED_FIX,
        {
            "W2": "dW2 = 1. / m * np.dot(dZ2, A1.T) * 2",
            "b1": "db1 = 4. / m * np.sum(dZ1, axis=1, keepdims=True)",
        },
        "constant factor",
    ),
    "seed_missing_relu_mask_layer1": (
        "seed_net",
        [("dZ1 = np.multiply(dA1, np.int64(A1 > 0))", "dZ1 = dA1")],
        dict.fromkeys(["W1", "b1"], "dZ1 = dA1"),
        "dZ1 is used without the ReLU mask that dZ2 has",
    ),
    "seed_missing_relu_mask_layer2": (
        "seed_net",
        [("dZ2 = np.multiply(dA2, np.int64(A2 > 0))", "dZ2 = dA2")],
        dict.fromkeys(["W1", "b1", "W2", "b2"], "dZ2 = dA2"),
        "dZ2 is used without the ReLU mask that dZ1 has",
    ),
    "seed_transposed_dW1": (
        "seed_net",
        [("dW1 = 1. / m * np.dot(dZ1, X.T)", "dW1 = 1. / m * np.dot(X, dZ1.T)")],
        {"W1": "dW1 = 1. / m * np.dot(X, dZ1.T)"},
        "operand order: the product gives dW1 transposed",
    ),
    "seed_sign_flipped_dW3": (
        "seed_net",
        [("dW3 = 1. / m", "dW3 = -1. / m")],
        {"W3": "dW3 = -1. / m * np.dot(dZ3, A2.T)"},
        "a minus sign in the line",
    ),
    "seed_missing_one_over_m_db3": (
        "seed_net",
        [("db3 = 1. / m * np.sum(dZ3", "db3 = np.sum(dZ3")],
        {"b3": "db3 = np.sum(dZ3, axis=1, keepdims=True)"},
        "no 1/m in the line",
    ),
    "seed_missing_keepdims_db2": (
        "seed_net",
        [("db2 = 1. / m * np.sum(dZ2, axis=1, keepdims=True)", "db2 = 1. / m * np.sum(dZ2, axis=1)")],
        {"b2": "db2 = 1. / m * np.sum(dZ2, axis=1)"},
        "keepdims",
    ),
    "planar_wrong_tanh_derivative": (
        "planar",
        [("(1 - np.power(A1, 2))", "(1 - A1)")],
        dict.fromkeys(["W1", "b1"], "dZ1 = np.dot(W2.T, dZ2) * (1 - A1)"),
        "activation derivative",
    ),
    "l2_term_missing_from_dW2": (
        "l2",
        [(" + (lambd / m) * W2", "")],
        {"W2": "dW2 = 1. / m * np.dot(dZ2, A1.T)"},
        "the L2 term (λ/m)·W2 is missing",
    ),
    "l2_term_doubled_in_the_cost": (
        "l2",
        [("(lambd / 2)", "lambd")],
        dict.fromkeys(["W1", "W2", "W3"], L2_COST_DOUBLED),
        "the cost's L2 term: if the backward is right, the data fit λ/m·ΣW",
    ),
    "dropout_forgets_keep_prob_in_layer1": (
        "dropout",
        [("    dA1 = dA1 / keep_prob\n", "")],
        dict.fromkeys(["W1", "b1"], "dA1 = dA1 * D1"),
        "dA1 is never divided by keep_prob (= 0.86, the ratio found), as dA2 is",
    ),
    "dropout_forgets_keep_prob_in_layer2": (
        "dropout",
        [("    dA2 = dA2 / keep_prob\n", "")],
        dict.fromkeys(["W1", "b1", "W2", "b2"], "dA2 = dA2 * D2"),
        "dA2 is never divided by keep_prob (= 0.86, the ratio found), as dA1 is",
    ),
}


@pytest.mark.parametrize("mode", ["full", "fast"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_planted_line_is_the_top_suspect(ip, case, mode):
    convention, change, planted, words = CASES[case]
    load_convention(ip, convention, replace=change)
    result = check(ip, f"--mode {mode}")
    assert set(result.failed) == set(planted), result
    for block, line in planted.items():
        top = result.suspects(block)[0]
        assert top.line.startswith(line), (block, result.suspects(block))
        assert words in top.reason, top.reason
        assert result.table.loc[block, "suspect"].startswith(f"{top.function}:{top.lineno}  ")
        assert f"why that line: {top.reason}" in result.table.loc[block, "note"]


@pytest.mark.parametrize("seed, m", [(1, 2), (2, 4), (3, 7), (4, 16)])
def test_homework_bugs_point_at_their_lines_at_any_size_and_seed(ip, seed, m):
    load_convention(ip, "seed_net", replace=SEED_FIX)
    run(
        ip,
        f"""
np.random.seed({seed})
X = np.random.randn(4, {m})
Y = (np.random.rand(1, {m}) > 0.5).astype(int)
parameters = {{"W1": np.random.randn(5, 4), "b1": np.random.randn(5, 1), "W2": np.random.randn(3, 5),
              "b2": np.random.randn(3, 1), "W3": np.random.randn(1, 3), "b3": np.random.randn(1, 1)}}
""",
    )
    result = check(ip)
    assert set(result.failed) == {"W2", "b1"}
    assert result.suspects("W2")[0].line == "dW2 = 1. / m * np.dot(dZ2, A1.T) * 2"
    assert result.suspects("b1")[0].line == "db1 = 4. / m * np.sum(dZ1, axis=1, keepdims=True)"
    assert (result.table.drop(["W2", "b1"])["suspect"] == "").all()


def test_suspect_names_the_function_and_the_line_number_in_the_cell(ip):
    load_convention(ip, "seed_net", replace=SEED_FIX[:1])
    top = check(ip).suspects("W2")[0]
    cell = source("seed_net", replace=SEED_FIX[:1]).splitlines()
    assert top.function == "backward_propagation_n"
    assert cell[top.lineno - 1].strip() == top.line == "dW2 = 1. / m * np.dot(dZ2, A1.T) * 2"


@pytest.mark.parametrize("case", ["seed_missing_relu_mask_layer1", "seed_missing_relu_mask_layer2"])
def test_missing_mask_ranks_the_dZ_line_above_the_lines_that_consume_it(ip, case):
    convention, change, planted, _ = CASES[case]
    load_convention(ip, convention, replace=change)
    result = check(ip)
    for block in planted:
        lines = [s.line for s in result.suspects(block)]
        own = next(line for line in lines if line.startswith(f"d{block} = "))
        assert lines.index(planted[block]) < lines.index(own), lines


def test_l2_names_both_the_cost_and_the_backward_with_the_factor_that_fits(ip):
    convention, change, _, _ = CASES["l2_term_doubled_in_the_cost"]
    load_convention(ip, convention, replace=change)
    result = check(ip)
    cost, backward = result.suspects("W1")[:2]
    assert cost.function == "compute_cost_with_regularization"
    assert backward.function == "backward_propagation_with_regularization"
    assert backward.line.startswith("dW1 = 1. / m * np.dot(dZ1, X.T) + (lambd / m) * W1")
    assert "if the cost is right, the data fit no L2 term here" in backward.reason


def test_l2_term_in_the_backward_comes_before_a_correct_cost(ip):
    load_convention(ip, "l2", replace=[("(lambd / m) * W1", "(lambd / (2 * m)) * W1")])
    result = check(ip)
    first, second = result.suspects("W1")[:2]
    assert first.line.startswith("dW1 = ") and "λ/(2m)·W1 here" in first.reason
    assert second.function == "compute_cost_with_regularization"


@pytest.mark.parametrize(
    "change, line, words",
    [
        (
            ("cost = 1. / m * np.sum(log_probs)", "cost = np.sum(log_probs)"),
            "cost = np.sum(log_probs)",
            "the cost has no 1/m",
        ),
        (
            ("cost = 1. / m * np.sum(log_probs)", "cost = 2. / m * np.sum(log_probs)"),
            "cost = 2. / m * np.sum(log_probs)",
            "constant factor 2 in the cost",
        ),
    ],
)
def test_every_block_off_by_one_factor_names_the_cost(ip, change, line, words):
    load_convention(ip, "seed_net", replace=[change])
    result = check(ip)
    assert len(result.failed) == 6
    for block in result.failed:
        top = result.suspects(block)[0]
        assert (top.function, top.line) == ("forward_propagation_n", line) and words in top.reason


def test_a_factor_in_a_line_all_blocks_share_beats_the_cost(ip):
    load_convention(ip, "seed_net", replace=[("dZ3 = A3 - Y", "dZ3 = 2 * (A3 - Y)")])
    result = check(ip)
    assert len(result.failed) == 6
    assert {result.suspects(b)[0].line for b in result.failed} == {"dZ3 = 2 * (A3 - Y)"}


def test_a_ratio_equal_to_m_still_prefers_the_literal_factor(ip):
    load_convention(ip, "seed_net", replace=[("dA1 = np.dot(W2.T, dZ2)", "dA1 = np.dot(W2.T, dZ2) * 3")])
    result = check(ip)  # m = 3 here, so the hint also offers "a missing 1/m?"
    assert result.failed == ["W1", "b1"]
    assert {result.suspects(b)[0].line for b in result.failed} == {"dA1 = np.dot(W2.T, dZ2) * 3"}


def test_a_factor_shown_by_one_block_points_for_its_layer_sibling_too(ip):
    # with the L2 term in dW1, W1 is no constant multiple of its numeric gradient; b1 is (× 3)
    load_convention(ip, "l2", replace=[("dA1 = np.dot(W2.T, dZ2)", "dA1 = np.dot(W2.T, dZ2) * 3")])
    result = check(ip)
    assert set(result.failed) == {"W1", "b1"}
    assert result.suspects("b1")[0].reason == "constant factor 3 in the line"
    top = result.suspects("W1")[0]
    assert (
        top.line == "dA1 = np.dot(W2.T, dZ2) * 3"
        and top.reason == "constant factor 3 in the line (b1 is off by it)"
    )


def test_a_missing_dropout_mask_points_where_the_other_layer_applies_it(ip):
    # the ReLU mask taken from Z2 lets the dropped units through once dA2 = dA2 * D2 is gone
    load_convention(
        ip, "dropout", replace=[("    dA2 = dA2 * D2\n", ""), ("np.int64(A2 > 0)", "np.int64(Z2 > 0)")]
    )
    result = check(ip)
    assert set(result.failed) == {"W1", "b1", "W2", "b2"}
    for block in result.failed:
        top = result.suspects(block)[0]
        assert top.line == "dA2 = dA2 / keep_prob"  # the last step of dA2, after which the mask belongs
        assert top.reason == "dA2 is never updated as dA1 is: dA1 = dA1 * D1"


def test_extra_one_over_m_points_at_the_line_that_divides_twice(ip):
    load_convention(ip, "seed_net", replace=[("dW3 = 1. / m * np.dot", "dW3 = 1. / m / m * np.dot")])
    top = check(ip).suspects("W3")[0]
    assert top.line.startswith("dW3 = 1. / m / m") and "1/m applied twice" in top.reason


def test_one_parameter_backward_returning_the_gradient_itself(ip):
    load_convention(ip, "one_d", replace=[("dtheta = x", "dtheta = 2 * x")])
    top = check(ip).suspects("theta")[0]
    assert top.line == "dtheta = 2 * x" and "constant factor 2" in top.reason


@pytest.mark.parametrize("convention", ["seed_net", "one_d", "l_layer", "planar", "l2", "dropout"])
def test_correct_code_has_no_suspect(ip, convention):
    load_convention(ip, convention)
    result = check(ip)
    assert result.passed
    assert (result.table["suspect"] == "").all()
    assert all(result.suspects(b) == [] for b in result.table.index)
    assert "suspect:" not in " ".join(result.table["note"])


def test_only_failing_blocks_get_a_suspect(ip):
    load_convention(ip, "seed_net", replace=SEED_FIX)
    table = check(ip).table
    assert (table.loc[["W1", "b2", "W3", "b3"], "suspect"] == "").all()
    assert (table.loc[["W2", "b1"], "suspect"] != "").all()


def test_keys_built_at_run_time_single_out_no_line(ip):
    load_convention(ip, "l_layer", replace=[("dZ[Z <= 0] = 0", "dZ = dZ")])
    result = check(ip)
    assert result.failed
    for block in result.failed:
        assert result.suspects(block) == []
        assert result.table.loc[block, "suspect"] == ""
        assert f"{NOTHING}: keys built at run time" in result.table.loc[block, "note"]


def test_a_missing_gradient_has_no_suspect_and_keeps_its_note(ip):
    load_convention(ip, "seed_net", replace=[('"dW3": dW3, ', "")])
    result = check(ip)
    assert result.suspects("W3") == []
    assert result.table.loc["W3", "suspect"] == ""
    assert result.table.loc["W3", "note"] == "missing gradient dW3"  # which says it all


def test_backward_without_source_still_checks_and_singles_out_no_line(ip):
    load_convention(ip, "seed_net")
    ip.user_ns["_generated"] = source("seed_net", replace=SEED_FIX[:1])
    run(ip, "exec(compile(_generated, '<generated>', 'exec'))")  # no file, nothing in linecache
    result = check(ip)
    assert result.failed == ["W2"]
    assert result.suspects("W2") == []
    assert result.table.loc["W2", "suspect"] == ""
    assert f"{NOTHING}: the source of backward_propagation_n" in result.table.loc["W2", "note"]


def test_suspects_in_a_real_kernel_count_lines_in_the_cell(tmp_path):
    import nbformat

    from gradcheck_magic.notebook_cli import check_notebook

    homework = source("seed_net", replace=SEED_FIX[:1])
    split = homework.index("def backward_propagation_n")  # the backward in a cell of its own
    cells = [
        "%load_ext gradcheck_magic",
        homework[:split],
        homework[split:],
        "%%gradcheck\nX, Y, parameters = gradient_check_n_test_case()",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "student.ipynb"
    nbformat.write(nb, str(path))
    report = check_notebook(path, timeout=120)
    assert report.error is None, report.error
    (check,) = report.checks
    blocks = {b["name"]: b for b in check.record["blocks"]}
    backward_cell = cells[2].splitlines()
    lineno = backward_cell.index("    dW2 = 1. / m * np.dot(dZ2, A1.T) * 2") + 1
    assert blocks["W2"]["suspect"] == f"backward_propagation_n:{lineno}  dW2 = 1. / m * np.dot(dZ2, A1.T) * 2"
    assert blocks["W2"]["note"].endswith("why that line: constant factor 2 in the line")


def test_an_analysis_that_breaks_leaves_the_verdicts_standing(ip, monkeypatch):
    from gradcheck_magic import api

    def broken(*args, **kwargs):
        raise RecursionError("a backward too deep to parse")

    monkeypatch.setattr(api, "find_suspects", broken)
    load_convention(ip, "seed_net", replace=SEED_FIX)
    result = check(ip)
    assert set(result.failed) == {"W2", "b1"}
    assert (result.table["suspect"] == "").all() and result.suspects("W2") == []


def test_suspect_reaches_the_text_and_html_renderings(ip):
    load_convention(ip, "seed_net", replace=SEED_FIX)
    result = check(ip)
    text, page = repr(result), result._repr_html_()
    assert "dW2 = 1. / m * np.dot(dZ2, A1.T) * 2" in text and "constant factor 2" in text
    shown = page.replace("<wbr>", "")  # the suspect may break after _ . and : in a narrow notebook
    assert "suspect" in page and "db1 = 4. / m * np.sum(dZ1, axis=1, keepdims=True)" in shown
    blocks = {b["name"]: b for b in result.to_dict()["blocks"]}
    assert blocks["W2"]["suspect"].startswith("backward_propagation_n:")
    assert blocks["W1"]["suspect"] == ""


def test_drilldown_shows_the_source_with_the_suspect_highlighted(ip):
    load_convention(ip, "seed_net", replace=SEED_FIX)
    result = check(ip)
    page = gw.block_html(result, "W2")
    top = result.suspects("W2")[0]
    assert "suspect lines in <code>backward_propagation_n</code>" in page
    assert f"{top.lineno}</span><b style='display:inline-block;width:2.5em;text-indent:0'>#1</b>" in page
    assert (
        "background-color: #f4c7c3; color: #7f1d1d" in page and "dZ3 = A3 - Y" in page
    )  # the whole function is shown
    assert "suspect lines" not in gw.block_html(result, "W1")  # a passing block has none


# ---- the analysis on its own: conventions wired up by other branches --------------------------------
AFFINE = """
def affine_backward(dout, cache):
    x, w, b = cache
    dx = np.dot(dout, w.T).reshape(x.shape)
    dw = np.dot(x.reshape(x.shape[0], -1).T, dout)
    db = np.sum(dout, axis=0)
    return dx, dw, db
"""

DENSE = """
class Layer_Dense:
    def backward(self, dvalues):
        self.dweights = np.dot(self.inputs.T, dvalues)
        self.dbiases = np.sum(dvalues, axis=0, keepdims=True)
        self.dinputs = np.dot(dvalues, self.weights.T)
"""


def outcome(name, numeric, analytic, hints=()):
    """An engine outcome as the check would give it: failing when the two gradients differ."""
    numeric, analytic = np.asarray(numeric, float), np.asarray(analytic, float)
    same = analytic.shape == numeric.shape and np.allclose(analytic, numeric)
    return Outcome(
        name,
        numeric.shape,
        numeric,
        analytic,
        np.ones(numeric.shape, bool),
        status="pass" if same else "fail",
        hints=list(hints),
    )


def test_tuple_gradients_are_paired_by_position(ip):
    run(
        ip,
        AFFINE.replace(
            "dw = np.dot(x.reshape(x.shape[0], -1).T, dout)",
            "dw = np.dot(x.reshape(x.shape[0], -1).T, dout) * 3",
        ),
    )
    rng = np.random.default_rng(0)
    x, w, b = rng.normal(size=(4, 3)), rng.normal(size=(3, 2)), rng.normal(size=2)
    dw = rng.normal(size=w.shape)
    outcomes = [
        outcome("x", x, x),
        outcome("w", dw, 3 * dw, [Hint("ratio", "analytic ≈ 3.00 × numeric", 3.0)]),
        outcome("b", b, b),
    ]
    finding = find_suspects(ip.user_ns["affine_backward"], outcomes)
    top = finding.ranked["w"][0]
    assert (top.function, top.line) == (
        "affine_backward",
        "dw = np.dot(x.reshape(x.shape[0], -1).T, dout) * 3",
    )
    assert "constant factor 3" in top.reason
    assert set(finding.ranked) == {"w"}


def test_attribute_gradients_of_a_layer_object(ip):
    run(
        ip,
        DENSE.replace(
            "self.dweights = np.dot(self.inputs.T, dvalues)", "self.dweights = np.dot(dvalues.T, self.inputs)"
        ),
    )
    rng = np.random.default_rng(1)
    weights, biases = rng.normal(size=(4, 3)), rng.normal(size=(1, 3))
    outcomes = [
        outcome("dense1.weights", weights, weights.T, [Hint("transposed", "dweights is transposed")]),
        outcome("dense1.biases", biases, biases),
    ]
    layer = ip.user_ns["Layer_Dense"]()
    top = find_suspects(layer.backward, outcomes).ranked["dense1.weights"][0]
    assert top.function == "Layer_Dense.backward"
    assert top.line == "self.dweights = np.dot(dvalues.T, self.inputs)" and "transpose" in top.reason


def test_in_place_and_augmented_updates_are_followed(ip):
    run(
        ip,
        """
def relu_net_backward(dA, Z, A_prev):
    dZ = np.array(dA, copy=True)
    dZ[Z <= 0] = 0
    dW = np.dot(dZ, A_prev.T)
    dW *= 0.5
    db = np.sum(dA, axis=1, keepdims=True)
    return {"dW": dW, "db": db}
""",
    )
    flow = flow_of(ip.user_ns["relu_net_backward"])
    feeding_dW = {s.text for s in flow.closure(flow.output_for("W", None, False))}
    assert {
        "dZ = np.array(dA, copy=True)",
        "dZ[Z <= 0] = 0",
        "dW = np.dot(dZ, A_prev.T)",
        "dW *= 0.5",
    } <= feeding_dW
    feeding_db = {s.text for s in flow.closure(flow.output_for("b", None, False))}
    assert not any(t.startswith("dZ") for t in feeding_db)
    rng = np.random.default_rng(2)
    w = rng.normal(size=(3, 2))
    finding = find_suspects(
        ip.user_ns["relu_net_backward"],
        [
            outcome("W", w, 0.5 * w, [Hint("ratio", "analytic ≈ 0.50 × numeric", 0.5)]),
            outcome("b", w[:, :1], w[:, :1]),
        ],
    )
    assert finding.ranked["W"][0].line == "dW *= 0.5"


def test_a_loss_layer_updating_entries_in_place(ip):
    run(
        ip,
        """
class Loss_CategoricalCrossentropy:
    def backward(self, dvalues, y_true):
        samples = len(dvalues)
        self.dinputs = dvalues.copy()
        self.dinputs[range(samples), y_true] -= 1
        self.dinputs = self.dinputs / samples * 2
""",
    )
    x = np.arange(1.0, 7.0).reshape(3, 2)
    finding = find_suspects(
        ip.user_ns["Loss_CategoricalCrossentropy"]().backward,
        [outcome("loss.inputs", x, 2 * x, [Hint("ratio", "analytic ≈ 2.00 × numeric", 2.0)])],
    )
    assert [s.line for s in finding.ranked["loss.inputs"]][:1] == [
        "self.dinputs = self.dinputs / samples * 2"
    ]
    lines = {s.line for s in finding.ranked["loss.inputs"]}
    assert "self.dinputs[range(samples), y_true] -= 1" in lines  # the in-place update is part of the flow


def test_subscript_stores_into_a_grads_dict(ip):
    run(
        ip,
        """
def backward_with_grads_dict(X, cache):
    grads = {}
    dZ = cache - 1
    grads["dW"] = np.dot(dZ, X.T) * 2
    grads["db"] = np.sum(dZ, axis=1, keepdims=True)
    return grads
""",
    )
    w = np.arange(6.0).reshape(3, 2) + 1
    finding = find_suspects(
        ip.user_ns["backward_with_grads_dict"],
        [
            outcome("W", w, 2 * w, [Hint("ratio", "analytic ≈ 2.00 × numeric", 2.0)]),
            outcome("b", w[:, :1], w[:, :1]),
        ],
    )
    assert finding.ranked["W"][0].line == 'grads["dW"] = np.dot(dZ, X.T) * 2'


def test_a_model_loss_returning_loss_and_grads_pairs_by_key_not_position(ip):
    run(
        ip,
        """
def model_loss(X, W1, W2):
    hidden = np.maximum(0, X.dot(W1))
    loss = np.sum(hidden.dot(W2))
    grads = {}
    dhidden = np.ones((X.shape[0], W2.shape[1])).dot(W2.T)
    grads["W2"] = hidden.T.dot(np.ones((X.shape[0], W2.shape[1])))
    dhidden[hidden <= 0] = 0
    grads["W1"] = X.T.dot(dhidden) * 2
    return loss, grads
""",
    )
    w = np.arange(1.0, 7.0).reshape(3, 2)
    outcomes = [
        outcome("W1", w, 2 * w, [Hint("ratio", "analytic ≈ 2.00 × numeric", 2.0)]),
        outcome("W2", w, w),
    ]
    finding = find_suspects(ip.user_ns["model_loss"], outcomes)
    assert finding.ranked["W1"][0].line == 'grads["W1"] = X.T.dot(dhidden) * 2'
    assert set(finding.ranked) == {"W1"}


def test_a_line_calling_a_helper_without_source_says_the_bug_may_be_inside_it(ip):
    ip.user_ns["_helper"] = "def relu_grad(dA, Z):\n    return dA * 2\n"
    run(ip, "exec(compile(_helper, '<generated>', 'exec'))")  # no source to follow
    run(
        ip,
        """
def backward_with_helper(X, Z1, dA1):
    dZ1 = relu_grad(dA1, Z1)
    dW1 = np.dot(dZ1, X.T)
    db1 = np.sum(dZ1, axis=1, keepdims=True)
    return {"dW1": dW1, "db1": db1}
""",
    )
    w = np.arange(1.0, 7.0).reshape(3, 2)
    outcomes = [outcome("W1", w, 2 * w + np.eye(3, 2)), outcome("b1", w[:, :1], 2 * w[:, :1] + 1)]
    top = find_suspects(ip.user_ns["backward_with_helper"], outcomes).ranked["W1"][0]
    assert top.line == "dZ1 = relu_grad(dA1, Z1)"
    assert "or inside relu_grad, whose body is not followed" in top.reason


def test_a_helper_with_source_is_followed_to_the_line_that_fits(ip):
    run(
        ip,
        """
def relu_grad(dA, Z):
    dZ = dA * 2
    return dZ * (Z > 0)

def backward_with_helper(X, Z1, dA1):
    dZ1 = relu_grad(dA1, Z1)
    dW1 = np.dot(dZ1, X.T)
    db1 = np.sum(dZ1, axis=1, keepdims=True)
    return {"dW1": dW1, "db1": db1}
""",
    )
    w = np.arange(1.0, 7.0).reshape(3, 2)
    outcomes = [
        outcome("W1", w, 2 * w, [Hint("ratio", "analytic ≈ 2.00 × numeric", 2.0)]),
        outcome("b1", w[:, :1], 2 * w[:, :1], [Hint("ratio", "analytic ≈ 2.00 × numeric", 2.0)]),
    ]
    finding = find_suspects(ip.user_ns["backward_with_helper"], outcomes)
    top = finding.ranked["W1"][0]
    assert (top.function, top.line, top.reason) == (
        "relu_grad",
        "dZ = dA * 2",
        "constant factor 2 in the line",
    )
    assert "suspect lines in <code>relu_grad</code>" in source_html(finding, "W1")


def test_a_gradient_read_from_a_layer_object_singles_out_no_line(ip):
    run(
        ip,
        """
class TwoLayerNet:
    def gradient(self, x, t):
        self.loss(x, t)
        dout = self.lastLayer.backward(1)
        for layer in reversed(list(self.layers.values())):
            dout = layer.backward(dout)
        grads = {}
        grads["W1"], grads["b1"] = self.layers["Affine1"].dW, self.layers["Affine1"].db
        grads["W2"], grads["b2"] = self.layers["Affine2"].dW, self.layers["Affine2"].db
        return grads
""",
    )
    w = np.arange(1.0, 7.0).reshape(3, 2)
    outcomes = [outcome("W1", w, 2 * w), outcome("b1", w, w), outcome("W2", w, w), outcome("b2", w, w)]
    finding = find_suspects(ip.user_ns["TwoLayerNet"].gradient, outcomes)
    assert finding.ranked == {}
    assert finding.top("W1") == ""
    assert finding.note("W1") == (
        f"{NOTHING}: TwoLayerNet.gradient reads W1's gradient from self.layers['Affine1'].dW, "
        "computed elsewhere (not followed)"
    )


def test_exec_in_the_backward_is_not_followed(ip):
    run(ip, "def opaque_backward(X):\n    exec('dW = X')\n    return {'dW': X}\n")
    with pytest.raises(Unfollowable, match="exec"):
        flow_of(ip.user_ns["opaque_backward"])
    finding = find_suspects(ip.user_ns["opaque_backward"], [outcome("W", [1.0, 2.0], [2.0, 4.0])])
    assert finding.ranked == {} and "exec" in finding.note("W")


def test_builtins_have_no_source_to_follow():
    finding = find_suspects(np.add, [outcome("W", [1.0, 2.0], [2.0, 4.0])])
    assert finding.top("W") == "" and finding.note("W").startswith(NOTHING)
    assert source_html(finding, "W").startswith("<p>" + NOTHING)


def test_wrong_dw_line_of_a_cs231n_affine_backward_is_the_top_suspect(ip):
    load(ip, "cs231n_layers", replace=[("dw = flat.T @ dout", "dw = flat.T @ dout * 2")])
    run(
        ip,
        "rng = np.random.default_rng(0)\nx = rng.standard_normal((3, 2, 3))\n"
        "w = rng.standard_normal((6, 4))\nb = rng.standard_normal(4)\ndout = rng.standard_normal((3, 4))",
    )
    result = check(ip, "-f affine_forward -b affine_backward")
    assert result.failed == ["w"]
    top = result.suspects("w")[0]
    assert (top.function, top.line) == ("affine_backward", "dw = flat.T @ dout * 2")
    assert result.table.loc["x", "suspect"] == result.table.loc["b", "suspect"] == ""


def test_wrong_self_dweights_line_of_a_layer_object_is_the_top_suspect(ip):
    wrong = "self.dweights = self.inputs.T @ dvalues * 2"
    load(ip, "nnfs_layers", replace=[("self.dweights = self.inputs.T @ dvalues", wrong)])
    run(
        ip,
        "rng = np.random.default_rng(0)\ndense1 = Layer_Dense(3, 4)\nX = rng.standard_normal((5, 3))\n"
        "dense1.forward(X)\ndvalues = rng.standard_normal((5, 4))",
    )
    result = check(ip, "dense1")
    assert result.failed == ["dense1.weights"]
    top = result.suspects("dense1.weights")[0]
    assert top.function.endswith("backward") and top.line == wrong
    assert result.table.loc["dense1.biases", "suspect"] == ""


def test_correct_layer_function_and_layer_object_show_no_suspect(ip):
    load(ip, "cs231n_layers", "nnfs_layers")
    run(
        ip,
        "rng = np.random.default_rng(1)\nx = rng.standard_normal((3, 6))\nw = rng.standard_normal((6, 4))\n"
        "b = rng.standard_normal(4)\ndout = rng.standard_normal((3, 4))\ndense1 = Layer_Dense(3, 4)\n"
        "X = rng.standard_normal((5, 3))\ndvalues = rng.standard_normal((5, 4))",
    )
    for line in ("-f affine_forward -b affine_backward", "dense1"):
        result = check(ip, line)
        assert result.passed and set(result.table["suspect"]) == {""}, result


def test_a_flat_vector_cost_function_names_a_line_only_where_the_numbers_fit(ip):
    from test_layers import FLAT_CELL

    load(ip, "flat_cost", replace=[("Theta2_grad = d3.T @ a2 / m", "Theta2_grad = d3.T @ a2 / m * 2")])
    run(ip, FLAT_CELL.format(seed=0))
    result = check(ip, "-f nnCostFunction")
    assert result.failed == ["nn_params"]
    # one block, half of it off by 2: every line feeds it and the numbers fit none -> no guess
    assert result.table.loc["nn_params", "suspect"] == ""
    assert "no line can be singled out" in result.table.loc["nn_params", "note"]
    load(ip, "flat_cost", replace=[("Theta2_grad[:, 1:] += lambda_ / m * Theta2[:, 1:]", "")])
    run(ip, FLAT_CELL.format(seed=0))
    top = check(ip, "-f nnCostFunction").suspects("nn_params")[0]  # the numbers fit the L2 term
    assert top.function == "nnCostFunction" and "Theta2_grad" in top.line


def test_every_failing_block_gets_a_line_or_the_reason_none_can_be_named(ip, monkeypatch):
    from gradcheck_magic import api

    load_convention(ip, "l_layer", replace=[("dZ = relu_backward(dA, activation_cache)", "dZ = dA")])
    result = check(ip)  # keys built at run time: the analysis says why it names no line
    assert result.failed
    for block in result.failed:
        assert "no line can be singled out" in result.table.loc[block, "note"], result.table.loc[block]

    def broken(*args, **kwargs):
        raise RecursionError("a backward too deep to parse")

    monkeypatch.setattr(api, "find_suspects", broken)
    load_convention(ip, "seed_net", replace=SEED_FIX)
    result = check(ip)
    assert result.failed == ["b1", "W2"]
    for block in result.failed:
        assert result.table.loc[block, "suspect"] == ""
        assert "no line can be singled out" in result.table.loc[block, "note"]


def test_an_interrupted_check_names_no_suspect_line(ip):
    """Lines are told apart by which blocks are right; when some were never checked, a line named
    from the rest would be a guess (it named dZ3 = A3 - Y for a bug in dW1)."""
    load_convention(ip, "seed_net", replace=SEED_FIX)
    run(
        ip,
        """
calls = [0]
_forward = forward_propagation_n
def forward_propagation_n(X, Y, parameters):
    calls[0] += 1
    if calls[0] == 70:
        raise KeyboardInterrupt
    return _forward(X, Y, parameters)
""",
    )
    result = check(ip, "--mode full")
    assert not result.complete and "b1" in result.failed, result
    assert result.suspects("b1") == [] and result.table.loc["b1", "suspect"] == ""
    assert "interrupted before every block was checked" in result.table.loc["b1", "note"]


# ---- issue 18, finding 8: linear, follows calls, names the line where a sign enters ----------------
def deep_net(layers: int, bug=None) -> str:
    """A tanh net ``layers`` deep, written out layer by layer (about 7 backward lines per layer),
    with ``bug`` (a replacement, applied once) planted."""
    acts = ", ".join(f"A{i}" for i in range(layers + 1))
    forward = ["def forward_deep(X, Y, parameters):", "    m = X.shape[1]", "    A0 = X"]
    for i in range(1, layers + 1):
        forward += [
            f"    Z{i} = np.dot(parameters['W{i}'], A{i - 1}) + parameters['b{i}']",
            f"    A{i} = np.tanh(Z{i})",
        ]
    forward += [f"    cost = 0.5 / m * np.sum((A{layers} - Y) ** 2)", f"    return cost, ({acts},)"]
    backward = [
        "def backward_deep(X, Y, cache, parameters):",
        "    m = X.shape[1]",
        f"    ({acts},) = cache",
        "    grads = {}",
        f"    dA{layers} = A{layers} - Y",
    ]
    for i in range(layers, 0, -1):
        backward += [
            f"    W{i} = parameters['W{i}']",
            f"    dZ{i} = dA{i} * (1 - A{i} ** 2)",
            f"    dW{i} = 1. / m * np.dot(dZ{i}, A{i - 1}.T)",
            f"    db{i} = 1. / m * np.sum(dZ{i}, axis=1, keepdims=True)",
            f"    dA{i - 1} = np.dot(W{i}.T, dZ{i})",
            f"    grads['dW{i}'] = dW{i}",
            f"    grads['db{i}'] = db{i}",
        ]
    text = "\n".join(forward + ["", ""] + backward + ["    return grads", ""])
    if bug:
        assert text.count(bug[0]) == 1, bug
        text = text.replace(*bug)
    return text


DEEP_SETUP = """
rng = np.random.default_rng(0)
X, Y = 0.3 * rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
parameters = {{}}
for i in range(1, {layers} + 1):
    parameters[f"W{{i}}"] = np.eye(3) + 0.1 * rng.standard_normal((3, 3))
    parameters[f"b{{i}}"] = 0.01 * rng.standard_normal((3, 1))
"""

DEEP_BUGS = {  # bug -> (planted change for a net of L layers, the line that must come first)
    "one_block_fails": (lambda L: ("dW1 = 1. / m", "dW1 = 2. / m"), "dW1 = 2. / m * np.dot(dZ1, A0.T)"),
    "every_block_fails": (lambda L: (f"dA{L} = A{L} - Y", f"dA{L} = Y - A{L}"), "dA{L} = Y - A{L}"),
}


def traced_work(ip, monkeypatch, layers: int, bug: str, limit: int) -> tuple:
    """Python lines executed (every module's, the standard library's included) while the suspects
    of a ``layers``-deep net with ``bug`` are found (stops counting past ``limit``), and the result."""
    import sys

    from gradcheck_magic import api

    change, _ = DEEP_BUGS[bug]
    run(ip, deep_net(layers, change(layers)))
    run(ip, DEEP_SETUP.format(layers=layers))
    counted = [0]

    def tracer(frame, event, arg):
        counted[0] += 1
        if counted[0] > limit:
            sys.settrace(None)
            return None
        return tracer

    real = find_suspects  # the module's own, not a counting wrapper of an earlier call

    def counting(*args, **kwargs):
        previous = sys.gettrace()
        sys.settrace(tracer)
        try:
            return real(*args, **kwargs)
        finally:
            sys.settrace(previous)

    monkeypatch.setattr(api, "find_suspects", counting)
    result = check(ip, "-f forward_deep -b backward_deep -m fast")
    assert result.failed, result
    return counted[0], result


@pytest.mark.parametrize("bug", sorted(DEEP_BUGS))
def test_suspect_analysis_work_grows_linearly_with_the_backward(ip, monkeypatch, bug):
    """Counted, not timed: the lines executed while naming the suspects of a backward twice as long
    (and with twice as many failing blocks, when every block fails) at most double, give or take."""
    small, _ = traced_work(ip, monkeypatch, 8, bug, limit=10**8)
    middle, _ = traced_work(ip, monkeypatch, 16, bug, limit=3 * small)
    large, result = traced_work(ip, monkeypatch, 32, bug, limit=3 * middle)
    assert middle <= 2.3 * small and large <= 2.3 * middle, (small, middle, large)  # main: ×3.6, ×5.9
    top = DEEP_BUGS[bug][1].format(L=32)
    assert all(result.suspects(block)[0].line == top for block in result.failed), result


def test_a_bug_in_a_layer_function_the_model_calls_is_named_there_not_on_the_l2_lines(ip):
    """Demo 07: model.loss takes W1's and W2's gradients from affine_backward; the wrong line is
    affine_backward's dw, never the correct L2 lines grads["W1"] += self.reg * self.params["W1"]."""
    load(ip, "cs231n_layers", replace=[("dw = flat.T @ dout", "dw = flat.T @ dout / len(dout)")])
    run(
        ip,
        "rng = np.random.default_rng(0)\nmodel = TwoLayerNet(input_dim=6, hidden_dim=7, num_classes=3)\n"
        "X = rng.standard_normal((4, 6))\ny = np.array([0, 2, 1, 2])",
    )
    result = check(ip, "model")
    assert result.failed == ["W1", "W2"]
    for block in result.failed:
        lines = [(s.function, s.line) for s in result.suspects(block)]
        assert lines[0] == ("affine_backward", "dw = flat.T @ dout / len(dout)"), lines
        assert not any("self.reg" in line for _, line in lines), lines
        assert result.table.loc[block, "suspect"].startswith("affine_backward:")
    assert "suspect lines in <code>affine_backward</code>" in gw.block_html(result, "W2")


def test_a_call_whose_outputs_partly_pass_is_followed_per_output(ip):
    """dx, dw, db from one call: db passing clears db's lines, not dw's."""
    load(ip, "cs231n_layers", replace=[("db = dout.sum(axis=0)", "db = dout.sum(axis=0) * 2")])
    run(
        ip,
        "rng = np.random.default_rng(0)\nmodel = TwoLayerNet(input_dim=6, hidden_dim=7, num_classes=3)\n"
        "X = rng.standard_normal((4, 6))\ny = np.array([0, 2, 1, 2])",
    )
    result = check(ip, "model")
    assert result.failed == ["b1", "b2"]
    for block in result.failed:
        top = result.suspects(block)[0]
        assert (top.function, top.line, top.reason) == (
            "affine_backward",
            "db = dout.sum(axis=0) * 2",
            "constant factor 2 in the line",
        )


def test_a_sign_flipped_where_every_block_reads_it_is_named_on_that_line(ip):
    load_convention(ip, "planar", replace=[("dZ2 = A2 - Y", "dZ2 = Y - A2")])
    result = check(ip)
    assert set(result.failed) == {"W1", "b1", "W2", "b2"}
    for block in result.failed:
        top = result.suspects(block)[0]
        assert top.line == "dZ2 = Y - A2", result.suspects(block)
        assert "feeds exactly the blocks whose sign is flipped (W1, W2, b1 and b2)" in top.reason


def test_hints_are_data_that_the_suspects_read_not_their_english(ip, monkeypatch):
    from gradcheck_magic import diagnosis

    load_convention(ip, "seed_net", replace=SEED_FIX[:1])
    result = check(ip)
    (ratio, worst) = result.blocks["W2"].hints
    assert (ratio.kind, round(ratio.ratio, 6), ratio.text) == ("ratio", 2.0, "analytic ≈ 2.00 × numeric")
    assert worst.kind == "worst" and result.table.loc["W2", "note"].startswith(
        "analytic ≈ 2.00 × numeric; worst W2["
    )
    real = diagnosis._ratio_hint

    def reworded(g, a, ctx):
        hint = real(g, a, ctx)
        return hint and diagnosis.Hint(
            hint.kind, "le gradient analytique vaut 2 fois le numérique", hint.ratio
        )

    monkeypatch.setattr(diagnosis, "_ratio_hint", reworded)
    result = check(ip)
    assert result.table.loc["W2", "note"].startswith("le gradient analytique")
    top = result.suspects("W2")[0]
    assert (top.line, top.reason) == ("dW2 = 1. / m * np.dot(dZ2, A1.T) * 2", "constant factor 2 in the line")


def test_an_l2_term_doubled_in_the_cost_is_not_called_missing_from_the_backward(ip):
    """The backward has its (λ/m)·W term; the cost counts λ/m·ΣW² instead of λ/(2m)·ΣW². The data
    show the analytic gradient one (λ/m)·W short: the note says that and both ways it can happen."""
    convention, change, _, _ = CASES["l2_term_doubled_in_the_cost"]
    load_convention(ip, convention, replace=change)
    result = check(ip)
    for block in ["W1", "W2", "W3"]:
        note = result.table.loc[block, "note"]
        assert "is missing" not in note, note
        assert (
            f"the analytic gradient lacks (λ/m)·{block}: the L2 term missing from the backward, "
            "or counted twice in the cost" in note
        )
        assert result.suspects(block)[0].function == "compute_cost_with_regularization"
    load_convention(ip, "l2", replace=[("(lambd / m) * W2", "(2 * lambd / m) * W2")])
    result = check(ip)
    note = result.table.loc["W2", "note"]
    assert "the analytic gradient has (λ/m)·W2 too much" in note
    cost = result.suspects("W2")[1]
    assert cost.function == "compute_cost_with_regularization"
    assert "the data fit no L2 term of it in the cost" in cost.reason  # not "3.14e-11·λ/m·ΣW2²"


# ---- never a correct line first ----------------------------------------------------------------------
MODEL_SETUP = (
    "rng = np.random.default_rng(0)\nmodel = TwoLayerNet(input_dim=6, hidden_dim=7, num_classes=3)\n"
    "X = rng.standard_normal((4, 6))\ny = np.array([0, 2, 1, 2])"
)
LAYER_SETUP = (
    "rng = np.random.default_rng(0)\nx = rng.standard_normal((3, 2, 3))\nw = rng.standard_normal((6, 4))\n"
    "b = rng.standard_normal(4)\ndout = rng.standard_normal((3, 4))"
)
DENSE_SETUP = (
    "rng = np.random.default_rng(0)\ndense1 = Layer_Dense(3, 4)\nX = rng.standard_normal((5, 3))\n"
    "dense1.forward(X)\ndvalues = rng.standard_normal((5, 4))"
)
# case -> (homework files, setup, the check's line, planted change, the lines that hold (or take) the fix)
PLANTED = {
    **{
        name: (FILES[c], SETUPS[c], "", change, set(lines.values()))
        for name, (c, change, lines, _) in CASES.items()
    },
    "seed_dZ3_doubled": (
        ("seed_net",),
        "X, Y, parameters = gradient_check_n_test_case()",
        "",
        [("dZ3 = A3 - Y", "dZ3 = 2 * (A3 - Y)")],
        {"dZ3 = 2 * (A3 - Y)"},
    ),
    "seed_dZ3_sign": (
        ("seed_net",),
        "X, Y, parameters = gradient_check_n_test_case()",
        "",
        [("dZ3 = A3 - Y", "dZ3 = Y - A3")],
        {"dZ3 = Y - A3"},
    ),
    "seed_cost_without_one_over_m": (
        ("seed_net",),
        "X, Y, parameters = gradient_check_n_test_case()",
        "",
        [("cost = 1. / m * np.sum(log_probs)", "cost = np.sum(log_probs)")],
        {"cost = np.sum(log_probs)"},
    ),
    "planar_sign_dZ2": (
        ("planar",),
        "X, Y, parameters = planar_test_case()",
        "",
        [("dZ2 = A2 - Y", "dZ2 = Y - A2")],
        {"dZ2 = Y - A2"},
    ),
    "planar_sign_db2": (
        ("planar",),
        "X, Y, parameters = planar_test_case()",
        "",
        [("db2 = (1 / m)", "db2 = -(1 / m)")],
        {"db2 = -(1 / m) * np.sum(dZ2, axis=1, keepdims=True)"},
    ),
    "l2_doubled_in_dW2": (
        ("three_layer", "l2"),
        "X, Y, parameters = three_layer_test_case()",
        "",
        [("(lambd / m) * W2", "(2 * lambd / m) * W2")],
        {"dW2 = 1. / m * np.dot(dZ2, A1.T) + (2 * lambd / m) * W2"},
    ),
    "l_layer_missing_one_over_m": (
        ("l_layer",),
        "X, Y, parameters = L_layer_test_case()",
        "",
        [("dW = 1 / m * np.dot(dZ, A_prev.T)", "dW = np.dot(dZ, A_prev.T)")],
        {"dW = np.dot(dZ, A_prev.T)"},
    ),
    "model_affine_dw_over_n": (
        ("cs231n_layers",),
        MODEL_SETUP,
        "model",
        [("dw = flat.T @ dout", "dw = flat.T @ dout / len(dout)")],
        {"dw = flat.T @ dout / len(dout)"},
    ),
    "model_affine_db_doubled": (
        ("cs231n_layers",),
        MODEL_SETUP,
        "model",
        [("db = dout.sum(axis=0)", "db = dout.sum(axis=0) * 2")],
        {"db = dout.sum(axis=0) * 2"},
    ),
    "model_l2_doubled": (
        ("cs231n_layers",),
        MODEL_SETUP,
        "model",
        [('grads["W2"] += self.reg * self.params["W2"]', 'grads["W2"] += 2 * self.reg * self.params["W2"]')],
        {'grads["W2"] += 2 * self.reg * self.params["W2"]'},
    ),
    "model_softmax_dx_doubled": (
        ("cs231n_layers",),
        MODEL_SETUP,
        "model",
        [("dx = np.exp(log_probs)", "dx = 2 * np.exp(log_probs)")],
        {"dx = 2 * np.exp(log_probs)"},
    ),
    "layer_affine_dw_doubled": (
        ("cs231n_layers",),
        LAYER_SETUP,
        "-f affine_forward -b affine_backward",
        [("dw = flat.T @ dout", "dw = flat.T @ dout * 2")],
        {"dw = flat.T @ dout * 2"},
    ),
    "dense_dweights_doubled": (
        ("nnfs_layers",),
        DENSE_SETUP,
        "dense1",
        [("self.dweights = self.inputs.T @ dvalues", "self.dweights = self.inputs.T @ dvalues * 2")],
        {"self.dweights = self.inputs.T @ dvalues * 2"},
    ),
}


@pytest.mark.parametrize("case", sorted(PLANTED))
def test_a_planted_bug_never_gets_a_correct_line_as_its_top_suspect(ip, case):
    """Across the homework fixtures: for every failing block the first suspect is a planted line
    (or where the fix goes), or no line is singled out, with the reason; never a correct line."""
    files, setup, line, change, planted = PLANTED[case]
    load(ip, *files, replace=change, setup=setup)
    result = check(ip, line)
    assert result.failed, result
    for block in result.failed:
        ranked = result.suspects(block)
        if ranked:
            assert any(ranked[0].line.startswith(p) for p in planted), (block, ranked[0], planted)
        else:
            assert (
                NOTHING in result.table.loc[block, "note"]
                or "missing gradient" in result.table.loc[block, "note"]
            )


# ---- one block (a loss returning (loss, dW), a flat vector): no passing block to contrast with --------

LINEAR_DATA = """
rng = np.random.default_rng({seed})
W = 0.01 * rng.standard_normal(({d}, 4))
X_dev = rng.standard_normal(({n}, {d}))
y_dev = rng.integers(4, size={n})
"""
# case -> (loss, planted change, reg, the top suspect, the second or None, words of the top reason)
ONE_BLOCK = {
    "svm_half_l2_gradient": (
        "svm_loss_naive",
        ("dW += 2 * reg * W", "dW += reg * W"),
        100.0,
        "dW += reg * W",
        "loss += reg * np.sum(W * W)",
        "the L2 term: it adds 1·reg·W, but the loss's 1·reg·ΣW²",
    ),
    "svm_loss_l2_doubled": (
        "svm_loss_naive",
        ("loss += reg * np.sum(W * W)", "loss += 2 * reg * np.sum(W * W)"),
        100.0,
        "loss += 2 * reg * np.sum(W * W)",
        "dW += 2 * reg * W",
        "the loss's L2 term: 2·reg·ΣW², whose gradient is 4·reg·W",
    ),
    "svm_data_term_halved": (
        "svm_loss_naive",
        ("dW /= num_train", "dW /= num_train * 2"),
        0.05,
        "dW /= num_train * 2",
        None,
        "constant factor 2 in the line: the gradient apart from its L2 term is off by 0.5",
    ),
    "softmax_naive_half_l2": (
        "softmax_loss_naive",
        ("dW = dW / num_train + 2 * reg * W", "dW = dW / num_train + reg * W"),
        100.0,
        "dW = dW / num_train + reg * W",
        "loss = loss / num_train + reg * np.sum(W * W)",
        "the L2 term",
    ),
    "softmax_vectorized_sign": (
        "softmax_loss_vectorized",
        ("dW = X.T.dot(dscores) / num_train", "dW = -X.T.dot(dscores) / num_train"),
        0.05,
        "dW = -X.T.dot(dscores) / num_train + 2 * reg * W",
        None,
        "a minus sign in the line: the gradient apart from its L2 term is off by -1",
    ),
}


def one_block(ip, loss, change, reg, n, d, seed):
    load(ip, "linear_classifiers", replace=[change] if change else [])
    run(ip, LINEAR_DATA.format(seed=seed, n=n, d=d))
    return ip.run_cell_magic("gradcheck", "-o", f"loss, grad = {loss}(W, X_dev, y_dev, {reg})")


@pytest.mark.parametrize("n,d,seed", [(15, 6, 0), (15, 6, 1), (40, 9, 2)])
@pytest.mark.parametrize("case", sorted(ONE_BLOCK))
def test_a_one_block_loss_names_the_line_its_numbers_point_at(ip, case, n, d, seed):
    loss, change, reg, top, second, words = ONE_BLOCK[case]
    result = one_block(ip, loss, change, reg, n, d, seed)
    assert result.failed == ["W"], result
    suspects = result.suspects("W")
    assert suspects[0].line == top and words in suspects[0].reason, suspects
    assert (suspects[1].line if len(suspects) > 1 else None) == second, suspects


# planted bugs the numbers of one block cannot attribute to one line: none is named, never a guess
UNATTRIBUTABLE = {
    "svm_correct_class_sign": ("svm_loss_naive", ("dW[:, y[i]] -= X[i]", "dW[:, y[i]] += X[i]")),
    "svm_wrong_class_doubled": ("svm_loss_naive", ("dW[:, j] += X[i]", "dW[:, j] += 2 * X[i]")),
    "softmax_indicator_sign": (
        "softmax_loss_naive",
        ("dW[:, j] += (probs[j] - (j == y[i])) * X[i]", "dW[:, j] += (probs[j] + (j == y[i])) * X[i]"),
    ),
}


@pytest.mark.parametrize("case", sorted(UNATTRIBUTABLE))
def test_a_one_block_bug_the_numbers_cannot_place_names_no_line(ip, case):
    loss, change = UNATTRIBUTABLE[case]
    result = one_block(ip, loss, change, 0.05, 15, 6, 0)
    assert result.failed == ["W"] and result.suspects("W") == [], result.suspects("W")
    assert NOTHING in result.table.loc["W", "note"]


def test_a_gradient_missing_the_losss_l2_term_says_so_without_naming_a_line(ip):
    result = one_block(ip, "svm_loss_naive", ("    dW += 2 * reg * W\n", ""), 100.0, 15, 6, 0)
    assert result.failed == ["W"] and result.suspects("W") == []
    assert (
        f"{NOTHING}: the error is -2·reg × W: the gradient lacks the L2 term 2·reg·W of the loss's "
        "1·reg·ΣW² (svm_loss_naive:24)" in result.table.loc["W", "note"]
    ), result.table.loc["W", "note"]


Q2_DATA = """
rng = np.random.default_rng({seed})
dimensions = [5, {h}, 3]
data = rng.standard_normal(({n}, 5))
labels = np.eye(3)[rng.integers(3, size={n})]
params = rng.standard_normal(5 * {h} + {h} + {h} * 3 + 3)
"""
# planted change -> the top suspect (None: no line can be singled out)
Q2_BUGS = {
    ("gradW2 = h.T.dot(d2)", "gradW2 = h.T.dot(d2) * 2"): "gradW2 = h.T.dot(d2) * 2",
    ("gradb1 = d1.sum(axis=0, keepdims=True)", "gradb1 = 0.5 * d1.sum(axis=0, keepdims=True)"): (
        "gradb1 = 0.5 * d1.sum(axis=0, keepdims=True)"
    ),
    ("gradW1 = data.T.dot(d1)", "gradW1 = -data.T.dot(d1)"): "gradW1 = -data.T.dot(d1)",
    ("d1 = d2.dot(W2.T) * h * (1 - h)", "d1 = d2.dot(W2.T) * h"): None,
}


@pytest.mark.parametrize("n,h,seed", [(8, 4, 0), (20, 6, 1)])
@pytest.mark.parametrize(
    "change", list(Q2_BUGS), ids=["W2_doubled", "b1_halved", "W1_sign", "no_sigmoid_grad"]
)
def test_forward_backward_prop_names_the_segments_line_from_the_entries_that_disagree(ip, change, n, h, seed):
    load(ip, "q2_neural", replace=[change])
    run(ip, Q2_DATA.format(seed=seed, n=n, h=h))
    result = ip.run_cell_magic(
        "gradcheck", "-o", "cost, grad = forward_backward_prop(data, labels, params, dimensions)"
    )
    assert result.failed == ["params"], result
    suspects = result.suspects("params")
    assert (suspects[0].line if suspects else None) == Q2_BUGS[change], suspects
    if suspects:
        assert "entries that disagree are off by" in suspects[0].reason


def test_a_loss_scaled_as_a_whole_is_told_without_naming_the_loss_or_a_gradient_line(ip):
    load(ip, "q2_neural", replace=[("cost = -np.sum(labels", "cost = -2 * np.sum(labels")])
    run(ip, Q2_DATA.format(seed=0, n=8, h=4))
    result = ip.run_cell_magic(
        "gradcheck", "-o", "cost, grad = forward_backward_prop(data, labels, params, dimensions)"
    )
    assert result.suspects("params") == []
    assert (
        "the whole gradient is off by 0.5, the factor of forward_backward_prop:28"
        in result.table.loc["params", "note"]
    )


@pytest.mark.parametrize("n,d,seed", [(15, 6, 0), (40, 9, 1)])
@pytest.mark.parametrize("loss", ["svm_loss_naive", "softmax_loss_vectorized"])
def test_correct_one_block_losses_pass_with_no_suspect(ip, loss, n, d, seed):
    result = one_block(ip, loss, None, 100.0, n, d, seed)
    assert result.passed and not result.warned and result.suspects("W") == [], result
