"""Seen in a real browser: an executed demo notebook, rendered by nbconvert and opened in headless
Chromium, shows the failing rows red and the passing rows not.  Set GRADCHECK_UPDATE_SCREENSHOT=1
to refresh docs/screenshot.png."""
import os
import shutil
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
if os.environ.get("GRADCHECK_REQUIRE_BROWSER"):  # CI: a missing browser is a failure, not a skip
    from playwright import sync_api
    assert CHROMIUM, "GRADCHECK_REQUIRE_BROWSER is set but no Chromium is installed"
else:
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install '.[test]')")
    pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium)")

ROW_STATUS = """() => Array.from(document.querySelectorAll('table.gradcheck-table')).map(t =>
  Array.from(t.querySelectorAll('tbody tr')).map(tr => {
    const cells = Array.from(tr.querySelectorAll('td'));
    const status = cells[4].textContent.trim();
    return [tr.querySelector('th').textContent.trim(), status, getComputedStyle(cells[0]).backgroundColor];
  }))"""


def rgb(css):
    parts = css[css.index("(") + 1:css.index(")")].split(",")
    return tuple(float(p) for p in parts[:3]) + ((float(parts[3]),) if len(parts) > 3 else (1.0,))


def is_red(css):
    r, g, b, a = rgb(css)
    return a > 0 and r > 200 and r - g > 30 and r - b > 30


def test_failing_rows_are_visibly_red_in_chromium(tmp_path):
    from nbconvert import HTMLExporter
    import nbformat

    nb = nbformat.read(str(ROOT / "demo_notebooks" / "01_fraud_detection.ipynb"), as_version=4)
    body, _ = HTMLExporter().from_notebook_node(nb)
    page_file = tmp_path / "demo.html"
    page_file.write_text(body, encoding="utf-8")
    args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
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
    assert shot.stat().st_size > 5000
    if os.environ.get("GRADCHECK_UPDATE_SCREENSHOT"):
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copy(shot, ROOT / "docs" / "screenshot.png")
