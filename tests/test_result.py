"""GradCheckResult: the table's contract, the Styler HTML, the text and JSON renderings."""
import json
import math

import numpy as np
import pandas as pd

from conftest import check, load_convention
from test_planted_bugs import SEED_FIX
from gradcheck_magic.result import MIME


def buggy(ip):
    load_convention(ip, "seed_net", replace=SEED_FIX)
    return check(ip)


def test_table_has_the_contract_columns_and_types(ip):
    result = buggy(ip)
    table = result.table
    assert isinstance(table, pd.DataFrame)
    for col in ("shape", "rel_error", "max_abs_error", "worst_index", "status", "note"):
        assert col in table.columns
    assert table.loc["W1", "shape"] == (5, 4)
    assert table["rel_error"].dtype == float
    assert set(table["status"]) <= {"pass", "warn", "fail"}
    assert table.loc["W2", "worst_index"] == (2, 0)
    assert result.failed == ["b1", "W2"] and result.passed is False
    assert math.isclose(result.difference, 0.2850931567761623, rel_tol=1e-6)


def test_missing_gradient_has_nan_error_and_a_note(ip):
    load_convention(ip, "seed_net", replace=[('"dW3": dW3, ', "")])
    table = check(ip).table
    assert math.isnan(table.loc["W3", "rel_error"])
    assert table.loc["W3", "status"] == "fail" and table.loc["W3", "note"] == "missing gradient dW3"


def test_wrong_shape_note_gives_both_shapes(ip):
    load_convention(ip, "seed_net", replace=[("dW1 = 1. / m * np.dot(dZ1, X.T)", "dW1 = 1. / m * np.dot(X, dZ1.T)")])
    note = check(ip).table.loc["W1", "note"]
    assert note.startswith("shape (4, 5) != (5, 4)")


def test_html_is_a_styler_table_with_red_failing_rows(ip):
    result = buggy(ip)
    html = result._repr_html_()
    assert "<table" in html and 'class="gradcheck-table"' in html
    assert "#f4c7c3" in html  # the failing rows' red
    assert "gradient check failed: b1, W2" in html and "2.85e-01" in html
    assert html == result._repr_html_()  # deterministic: the Styler uuid is fixed
    # exactly the failing rows are red
    styled = result.styler()._compute().ctx
    red_rows = {r for (r, _), props in styled.items() if ("background-color", "#f4c7c3") in props}
    assert red_rows == {1, 2}


def test_warn_rows_are_amber(ip):
    load_convention(ip, "seed_net")
    from test_verdicts import KINK
    ip.run_cell(KINK)
    result = check(ip)
    styled = result.styler()._compute().ctx
    amber_rows = {r for (r, _), props in styled.items() if ("background-color", "#fde9b5") in props}
    assert amber_rows == {0, 1}


def test_text_repr_for_terminals(ip):
    text = repr(buggy(ip))
    assert text.splitlines()[0].startswith("✗ gradient check failed: b1, W2")
    assert "FAIL" in text and "analytic ≈ 2.00 × numeric" in text


def test_mimebundle_carries_json_and_the_formatter_keeps_html_and_text(ip):
    result = buggy(ip)
    html_formatter = ip.display_formatter.formatters["text/html"]
    enabled, html_formatter.enabled = html_formatter.enabled, True  # as in a notebook kernel
    try:
        data, _ = ip.display_formatter.format(result)
    finally:
        html_formatter.enabled = enabled
    assert {"text/plain", "text/html", MIME} <= set(data)
    payload = json.loads(json.dumps(data[MIME]))
    assert payload["failed"] == ["b1", "W2"]
    assert [b["status"] for b in payload["blocks"]] == ["pass", "fail", "fail", "pass", "pass", "pass"]


def test_worst_entries_for_drill_down(ip):
    result = buggy(ip)
    worst = result.worst_entries("W2", k=3)
    assert len(worst) == 3 and worst[0]["index"] == (2, 0)
    assert worst[0]["abs_error"] >= worst[1]["abs_error"] >= worst[2]["abs_error"]
    assert np.isclose(worst[0]["analytic"], 2 * worst[0]["numeric"], rtol=1e-6)
