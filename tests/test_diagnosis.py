"""Hints claim a pattern only when the data fit it."""

import numpy as np

from gradcheck_magic.diagnosis import Context, Hint, _l2_hint, _ratio_hint, _rows_hint, _shape_hint


def test_constant_ratio_is_named_with_its_meaning():
    a = np.array([0.1, -0.3, 0.25, 0.7, -0.2])
    assert _ratio_hint(2 * a, a, Context()) == Hint("ratio", "analytic ≈ 2.00 × numeric", 2.0)
    assert _ratio_hint(-a, a, Context()) == Hint("sign", "analytic ≈ -1.00 × numeric (sign flipped)", -1.0)
    assert _ratio_hint(32 * a, a, Context(m=32)).kind == "missing_m"
    assert _ratio_hint(a / 32, a, Context(m=32)).kind == "extra_m"
    assert _ratio_hint(1.37 * a, a, Context()).text == "analytic ≈ 1.37 × numeric"


def test_no_ratio_is_claimed_without_support():
    a = np.array([0.1, -0.3, 0.25, 0.7, -0.2])
    noisy = 2 * a + np.array([0.01, 0, -0.02, 0, 0.01])
    assert _ratio_hint(noisy, a, Context()) is None
    assert _ratio_hint(a, a, Context()) is None  # ratio 1 is no bug
    assert _ratio_hint(np.array([1.67]), np.array([1.0]), Context()) is None  # one entry: any ratio
    assert _ratio_hint(np.array([2.0]), np.array([1.0]), Context()).text == "analytic ≈ 2.00 × numeric"


def test_l2_term_missing_or_halved():
    w = np.array([[0.5, -1.0], [2.0, 0.3]])
    a = np.array([[0.1, 0.2], [-0.3, 0.05]])
    ctx = Context(m=4, lambd=0.8, values={"W1": w})
    sel = np.ones_like(w, dtype=bool)
    missing = _l2_hint("W1", (a - 0.2 * w)[sel], a[sel], sel, ctx)
    assert (missing.kind, round(missing.ratio, 6)) == ("l2", -0.2)
    assert "the analytic gradient lacks (λ/m)·W1" in missing.text
    halved = _l2_hint("W1", (a - 0.1 * w)[sel], a[sel], sel, ctx)
    assert "only half the L2 term" in halved.text
    assert _l2_hint("b1", (a - 0.2 * w)[sel], a[sel], sel, ctx) is None  # biases carry no L2 term


def test_shape_hints():
    num = np.arange(6.0).reshape(3, 2)
    assert "transposed (its transpose matches" in _shape_hint("W", num.T, num, (3, 2), 1e-6).text
    assert "does not match either" in _shape_hint("W", 2 * num.T, num, (3, 2), 1e-6).text
    col = np.array([[1.0], [2.0], [3.0]])
    assert (
        _shape_hint("b", col.reshape(3), col, (3, 1), 1e-6).text
        == "missing keepdims=True in the sum (the values match)"
    )


def test_rows_hint_points_at_dead_units_and_stays_quiet_when_all_rows_differ():
    num = np.array([[0.1, 0.2], [0.0, 0.0], [0.3, -0.1]])
    ana = num.copy()
    ana[1] = [0.5, 0.4]
    assert (
        "nonzero in row 1 where the numeric gradient is exactly 0"
        in _rows_hint("W", ana, num, (3, 2), Context(), 1e-5).text
    )
    live = num + np.array([[0.0, 0.0], [0.2, 0.1], [0.0, 0.0]])
    assert _rows_hint("W", 1.5 * live + 0.1, live, (3, 2), Context(), 1e-5) is None


def test_a_small_block_shares_the_ratio_of_its_layer():
    from gradcheck_magic.diagnosis import _sibling_ratio

    a = np.array([0.0, 0.2, -0.4])
    assert _sibling_ratio("b1", 0.86 * a, a, {"W1": 0.86}) == Hint(
        "ratio", "analytic ≈ 0.86 × numeric, as in W1", 0.86
    )
    assert _sibling_ratio("b1", 0.86 * a, a, {"W2": 0.86}) is None  # another layer says nothing
    assert _sibling_ratio("b1", 0.5 * a, a, {"W1": 0.86}) is None
