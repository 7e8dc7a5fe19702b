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
  Array.from(t.querySelectorAll('tbody tr')).map(tr => {
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
            page = browser.new_page(viewport={"width": 1400, "height": 900})
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
