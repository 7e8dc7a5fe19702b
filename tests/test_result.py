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
    load_convention(
        ip, "seed_net", replace=[("dW1 = 1. / m * np.dot(dZ1, X.T)", "dW1 = 1. / m * np.dot(X, dZ1.T)")]
    )
    result = check(ip)
    note = result.table.loc["W1", "note"]
    assert note.startswith("dW1 is transposed") and "shape (4, 5) != (5, 4)" in note
    # the headline says why W1 failed (its difference was never computed), and what the figure covers
    assert "failed: W1 (shape (4, 5) != (5, 4)) — overall difference" in result.summary()
    assert "over the other blocks" in result.summary()


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
    assert amber_rows == {
        0
    }  # W1 straddles the kink on both sides; b1 is one-sided, a valid subgradient: passes


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


def _inline_style_of(html, cell_id):
    import re

    return re.search(rf'id="{cell_id}"[^>]*style="([^"]*)"', html).group(1)


def test_row_colours_are_inline_styles_on_the_cells_without_a_style_block(ip):
    result = buggy(ip)
    html = result._repr_html_()
    assert "<style" not in html  # an untrusted notebook's sanitizer would strip it
    uuid = f"T_{result._uuid()}"
    statuses = list(result.table["status"])
    for row, status in enumerate(statuses):
        from gradcheck_magic.palette import ROW_COLOURS

        background, text = ROW_COLOURS[status]
        shown = [c for c in result.table.columns if c not in ("note", "suspect", "evaluations")]
        for col in range(len(shown)):
            style = _inline_style_of(html, f"{uuid}_row{row}_col{col}")
            assert f"background-color: {background}" in style and f"color: {text}" in style
        assert f"background-color: {background}" in _inline_style_of(html, f"{uuid}_level0_row{row}")
    assert statuses == ["pass", "fail", "fail", "pass", "pass", "pass"]


def test_row_colours_have_wcag_aa_contrast_and_differ_by_status():
    from gradcheck_magic.palette import MIN_CONTRAST, ROW_COLOURS, contrast_ratio

    for background, text in ROW_COLOURS.values():
        assert contrast_ratio(background, text) >= MIN_CONTRAST
    assert len({background for background, _ in ROW_COLOURS.values()}) == 3
    assert round(contrast_ratio("#ffffff", "#000000"), 1) == 21.0


def test_notes_go_under_their_row_in_its_colours_and_the_caption_wraps(ip):
    import re

    from gradcheck_magic.palette import ROW_COLOURS

    result = buggy(ip)
    html = result._repr_html_()
    uuid = f"T_{result._uuid()}"
    assert "min-width: 8em" not in html and "max-width: 30em" not in html  # no narrow note column
    notes = re.findall(r'<tr class="gradcheck-note"><td colspan="6" style="([^"]*)">(.*?)</td></tr>', html)
    assert len(notes) == 2  # b1 and W2 have notes; the passing rows have none
    for style, text in notes:
        background, colour = ROW_COLOURS["fail"]
        assert f"background-color: {background}" in style and f"color: {colour}" in style
        assert "white-space: normal" in style and "suspect: <code" in text
    row_b1 = html.index(f'id="{uuid}_level0_row1"')
    assert html.index("analytic ≈ 4.00 × numeric", row_b1) < html.index(f'id="{uuid}_level0_row2"')
    assert "white-space: nowrap" in _inline_style_of(html, f"{uuid}_row1_col0")
    assert "table-layout: auto" in html and "max-width: 100%" in html
    caption = html[html.index("<caption") : html.index(">", html.index("<caption"))]
    assert "white-space: normal" in caption and "overflow-wrap: anywhere" in caption


def test_the_html_holds_every_block_drill_down_as_sections_that_open_without_javascript(ip):
    result = buggy(ip)
    html = result._repr_html_()
    assert html.count("<details class='gradcheck-block'") == 6
    assert html.count("<details class='gradcheck-block' open") == 1  # b1, the worst
    assert (
        html.count("data:image/png") >= 6 and "suspect lines in <code>backward_propagation_n</code>" in html
    )
    result.open_drilldown = False  # under a live widget showing the same view
    assert "<details class='gradcheck-block' open" not in result._repr_html_()


def test_option_names_and_numbers_never_break_across_lines():
    from gradcheck_magic.result import _unbroken_numbers

    text = _unbroken_numbers("use a larger step (-e), or try -m fast; 1e-05 is non-finite")
    assert '<span style="white-space: nowrap">(-e)</span>' in text
    assert '<span style="white-space: nowrap">-m fast</span>' in text
    assert '<span style="white-space: nowrap">1e-05</span>' in text and "non-finite" in text


def test_summary_glyphs_are_in_a_common_font(ip):
    import os

    import pytest

    from gradcheck_magic.result import GLYPHS

    matplotlib = pytest.importorskip(
        "matplotlib", reason="the test reads the DejaVu Sans that matplotlib ships"
    )
    from matplotlib.ft2font import FT2Font

    charmap = FT2Font(os.path.join(matplotlib.get_data_path(), "fonts/ttf/DejaVuSans.ttf")).get_charmap()
    text = repr(buggy(ip)) + "".join(GLYPHS.values())
    missing = {ch for ch in text if ord(ch) > 127 and ord(ch) not in charmap}
    assert not missing


def test_text_fits_the_terminal_with_notes_under_their_rows(ip, monkeypatch):
    result = buggy(ip)
    for columns in (80, 100, 120):
        monkeypatch.setenv("COLUMNS", str(columns))
        lines = repr(result).splitlines()
        assert max(len(line) for line in lines) <= min(columns, 100), columns
        rows = [line.split()[0] for line in lines if not line.startswith(" ")]
        assert rows[2:8] == ["W1", "b1", "W2", "b2", "W3", "b3"]
        b1 = next(i for i, line in enumerate(lines) if line.startswith("b1 "))
        assert lines[b1 + 1].startswith("    analytic ≈ 4.00 × numeric")


def test_colour_only_for_a_colour_terminal(ip, monkeypatch):
    import io

    from gradcheck_magic.palette import colour_terminal

    class Tty(io.StringIO):
        def isatty(self):
            return True

    result = buggy(ip)
    coloured = result.text(colour=True)
    assert "\x1b[1;31mFAIL" in coloured and "\x1b[32mpass" in coloured
    assert "\x1b[" not in repr(result)
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    assert colour_terminal(Tty()) and not colour_terminal(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not colour_terminal(Tty())


def test_a_suspect_column_wraps_like_the_note_and_goes_under_its_row_in_text(ip):
    result = buggy(ip)  # the suspects branch adds this column after note; both renderings leave it room
    suspect = "backward_propagation_n:12  db1 = 4. / m * np.sum(dZ1, axis=1, keepdims=True)"
    result._table = result.table.assign(suspect=["", suspect, "", "", "", ""])
    lines = result.text(width=80).splitlines()
    b1 = next(i for i, line in enumerate(lines) if line.startswith("b1 "))
    at = next(i for i in range(b1, len(lines)) if lines[i].startswith("    suspect: "))
    assert lines[at].startswith("    suspect: backward_propagation_n:12  db1 = 4. / m")
    assert lines[at + 1].strip() == "keepdims=True)" and max(len(line) for line in lines) <= 80
    html = result._repr_html_()
    assert (
        "suspect: <code style='color: #7f1d1d; background-color: transparent'>backward_<wbr>propagation_<wbr>n:<wbr>12"
        in html
    )
