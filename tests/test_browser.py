"""Seen in a real browser: a demo notebook executed with this checkout's renderer, exported by nbconvert
(as nbviewer and static sites do) and opened in headless Chromium, shows the failing rows red and the
passing rows green.  Set GRADCHECK_UPDATE_SCREENSHOT=1 to refresh docs/screenshot.png."""

import os
import shutil

import pytest
from browser_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    ROOT,
    executed_demo,
    is_green,
    is_red,
)

if os.environ.get("GRADCHECK_REQUIRE_BROWSER"):  # CI: a missing browser is a failure, not a skip
    from playwright import sync_api

    assert CHROMIUM, "GRADCHECK_REQUIRE_BROWSER is set but no Chromium is installed"
else:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install '.[test]')"
    )
    pytestmark = pytest.mark.skipif(
        CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium)"
    )

ROW_STATUS = """() => Array.from(document.querySelectorAll('table.gradcheck-table')).map(t =>
  Array.from(t.querySelectorAll('tbody tr:not(.gradcheck-note)')).map(tr => {
    const cells = Array.from(tr.querySelectorAll('td'));
    const status = cells[4].textContent.trim();
    return [tr.querySelector('th').textContent.trim(), status, getComputedStyle(cells[0]).backgroundColor];
  }))"""


def test_failing_rows_are_visibly_red_in_chromium(tmp_path):
    import nbformat
    from nbconvert import HTMLExporter

    nb = nbformat.read(str(executed_demo(tmp_path)), as_version=4)
    body, _ = HTMLExporter().from_notebook_node(nb)
    page_file = tmp_path / "demo.html"
    page_file.write_text(body, encoding="utf-8")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 700, "height": 900})
            page.goto(page_file.as_uri())
            tables = page.evaluate(ROW_STATUS)
            first = page.locator("table.gradcheck-table").first
            first.scroll_into_view_if_needed()
            shot = tmp_path / "screenshot.png"
            first.screenshot(path=str(shot))
        finally:
            browser.close()
    assert len(tables) >= 2, "both checks of the demo are rendered"
    buggy, fixed = tables[0], tables[1]
    red = {name for name, _, color in buggy if is_red(color)}
    assert red == {"W2", "b1"}, buggy
    assert {name for name, status, _ in buggy if status == "fail"} == {"W2", "b1"}
    assert not any(is_red(color) for _, _, color in fixed), fixed
    assert all(is_green(color) for _, _, color in fixed), fixed
    assert shot.stat().st_size > 5000
    if os.environ.get("GRADCHECK_UPDATE_SCREENSHOT"):
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copy(shot, ROOT / "docs" / "screenshot.png")


LONG_NAMES = [
    "encoder.layers.attention_block.query_weight"[:40],  # dots and underscores
    "averyveryverylongblocknamewithoutanybreak"[:40],  # nothing to break at
    "b",
]
#: what reaches past the 600 px box, and the text colours on the cells' own backgrounds
FIT_AND_COLOURS = """() => {
  const box = document.getElementById('output').getBoundingClientRect();
  const wide = [], texts = [];
  for (const el of document.querySelectorAll('#output *')) {
    const r = el.getBoundingClientRect();
    if (r.width === 0 || el.parentElement.closest('.gradcheck-scroll')) continue;
    if (r.right > box.right + 1) wide.push(el.tagName + ': ' + el.textContent.slice(0, 40));
    const own = Array.from(el.childNodes).some(n => n.nodeType === 3 && n.textContent.trim());
    let e = el;
    while (e && getComputedStyle(e).backgroundColor === 'rgba(0, 0, 0, 0)') e = e.parentElement;
    if (own && e && e.id !== 'output') texts.push([getComputedStyle(el).color, getComputedStyle(e).backgroundColor]);
  }
  return {wide, texts, scroll: document.getElementById('output').scrollWidth};
}"""


def long_named_result():
    import numpy as np

    from gradcheck_magic.engine import Outcome, Settings
    from gradcheck_magic.result import GradCheckResult

    outcomes = []
    for i, name in enumerate(LONG_NAMES):
        analytic = np.ones((3, 4))
        numeric = analytic.copy()
        numeric[1, 2] = 2.0 if i < 2 else 1.0
        outcomes.append(
            Outcome(
                name,
                (3, 4),
                numeric=numeric,
                analytic=analytic,
                checked=np.ones((3, 4), bool),
                status="fail" if i < 2 else "pass",
                rel_error=0.1 if i < 2 else 1e-10,
                max_abs_error=1.0 if i < 2 else 1e-10,
                worst_index=(1, 2),
                hints=["analytic ≈ 0.50 × numeric"] if i < 2 else [],
                notes=["use a larger step (-e), float64, or remove a constant offset from the cost"],
            )
        )
    return GradCheckResult(outcomes, 0.1, Settings(), "full", 26, functions="forward(X) → backward(cache)")


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_block_names_of_40_characters_fit_a_600px_output_area(tmp_path, theme):
    from gradcheck_magic.palette import MIN_CONTRAST, contrast_ratio

    colours = "color: #111; background: #fff" if theme == "light" else "color: #fff; background: #111"
    page_file = tmp_path / "long.html"
    page_file.write_text(
        f"<html><body style='{colours}; font-family: sans-serif; font-size: 14px'>"
        f"<div id='output' style='width: 600px'>{long_named_result()._repr_html_()}</div></body></html>",
        encoding="utf-8",
    )
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 800, "height": 900})
            page.goto(page_file.as_uri())
            page.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")
            found = page.evaluate(FIT_AND_COLOURS)
        finally:
            browser.close()
    assert not found["wide"] and found["scroll"] <= 600, found["wide"][:5]

    def hexed(css):
        from browser_support import rgba

        return "#" + "".join(f"{round(v):02x}" for v in rgba(css)[:3])

    low = [(t, b) for t, b in found["texts"] if contrast_ratio(hexed(t), hexed(b)) < MIN_CONTRAST]
    assert found["texts"] and not low, low[:5]
