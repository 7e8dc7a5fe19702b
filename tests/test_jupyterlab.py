"""Seen in a real JupyterLab: the suite starts JupyterLab headless on localhost, opens a demo notebook
that was executed with the current renderer and saved unsigned (so JupyterLab treats it as untrusted
and sanitizes its HTML), and checks in Chromium what a student sees: the stored table's failing rows
red and passing rows green; after Run All, the live table, the drill-down widget (choosing another
block changes the picture) and a table that fits a 700 px notebook; in the dark theme, readable rows
and no glaring white heatmap; and a slow check's progress bar, which suggests fast mode and is gone
after an interrupt, leaving no widget view in the outputs to be saved.  The kernels run with the live block
picker on (``c.GradCheck.widgets = True``; it is opt-in).

Set GRADCHECK_UPDATE_SCREENSHOT=1 to refresh docs/jupyterlab_untrusted.png and docs/jupyterlab_live.png.
"""

import os
import shutil
import sys

import pytest
from browser_support import (
    CHROMIUM,
    CHROMIUM_ARGS,
    DEMO,
    ROOT,
    executed_demo,
    is_green,
    is_red,
    jupyter_server,
    narrow_notebook,
    rgba,
)

REQUIRED = bool(os.environ.get("GRADCHECK_REQUIRE_BROWSER"))  # CI: missing pieces fail, not skip
if REQUIRED:
    from playwright import sync_api

    assert CHROMIUM, "GRADCHECK_REQUIRE_BROWSER is set but no Chromium is installed"
    import jupyterlab  # noqa: F401
else:
    sync_api = pytest.importorskip(
        "playwright.sync_api", reason="playwright is not installed (pip install '.[test]')"
    )
    pytest.importorskip("jupyterlab", reason="jupyterlab is not installed (pip install '.[test]')")
    pytestmark = pytest.mark.skipif(
        CHROMIUM is None, reason="no Chromium on this machine (apt-get install chromium)"
    )

sys.path.insert(0, str(ROOT / "demo_notebooks"))
from build_demos import EXPECTED  # noqa: E402 - importable once its folder is on the path

SERVER_START_SECONDS = 90
PAGE_SECONDS = 120  # a ceiling, not a wait: on a loaded 2-core machine a kernel start alone can take a minute
RUN_ALL_SECONDS = 240
NOTEBOOK_WIDTH = 700  # px: the narrow notebook the table must fit

ROWS = """() => Array.from(document.querySelectorAll('table.gradcheck-table')).map(t =>
  Array.from(t.querySelectorAll('tbody tr:not(.gradcheck-note)')).map(tr => {
    const cells = Array.from(tr.querySelectorAll('td'));
    return [tr.querySelector('th').textContent.trim(), cells[4].textContent.trim(),
            getComputedStyle(cells[0]).backgroundColor, getComputedStyle(cells[0]).color];
  }))"""
FITS = """() => Array.from(document.querySelectorAll('table.gradcheck-table')).map(t => {
  const output = t.closest('.jp-OutputArea-output');
  const panel = t.closest('.jp-Notebook').getBoundingClientRect();
  return {table: t.getBoundingClientRect().width, right: t.getBoundingClientRect().right,
          output_right: output.getBoundingClientRect().right, panel: panel.width, panel_right: panel.right,
          scroll: output.scrollWidth, client: output.clientWidth};
})"""
IDLE = """() => {
  const prompts = Array.from(document.querySelectorAll('.jp-CodeCell .jp-InputArea-prompt'))
    .map(p => p.textContent.trim());
  return prompts.length > 0 && prompts.every(p => /^\\[\\d+\\]:$/.test(p));
}"""


SLOW = "slow.ipynb"
#: a forward that takes 50 ms per call, then waits for the interrupt (the test's only way out)
SLOW_FORWARD = """# SLOW_FORWARD_MARK
import time
_calls = [0]
_forward = forward_propagation_n
def forward_propagation_n(X, Y, parameters):
    _calls[0] += 1
    time.sleep(0.05 if _calls[0] < 40 else 3600)
    return _forward(X, Y, parameters)
"""


def slow_notebook(path):
    """A notebook whose full-mode check is slow enough for a progress bar, and hangs until interrupted."""
    import nbformat
    from conftest import SETUPS, source

    cells = [
        "%load_ext gradcheck_magic\nimport numpy as np",
        source("seed_net"),
        SETUPS["seed_net"],
        SLOW_FORWARD,
        "%gradcheck --mode full --no-widgets",
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, str(path))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """JupyterLab on 127.0.0.1 with the executed demo and the slow notebook, stopped afterwards."""
    root = tmp_path_factory.mktemp("lab")
    notebook = executed_demo(root)
    slow_notebook(root / SLOW)
    # the live block picker is opt-in (a saved widget view shows "model not found" without its kernel)
    widgets_on = "c.GradCheck.widgets = True\n"
    with jupyter_server(root, tmp_path_factory.mktemp("jupyter"), SERVER_START_SECONDS, widgets_on) as (
        base,
        token,
    ):
        yield {
            "url": f"{base}/lab/tree/{DEMO}?token={token}",
            "notebook": notebook,
            "slow_url": f"{base}/lab/tree/{SLOW}?token={token}",
        }


@pytest.fixture(scope="module")
def page(lab):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(PAGE_SECONDS * 1000)
            page.goto(lab["url"])
            page.wait_for_function("() => document.querySelectorAll('table.gradcheck-table').length >= 2")
            narrow_notebook(page, NOTEBOOK_WIDTH)  # every check and screenshot in a 700 px notebook
            yield page
        finally:
            browser.close()


def save_screenshot(page, name, folder):
    shot = folder / name
    page.locator(".jp-NotebookPanel").last.screenshot(path=str(shot))
    assert shot.stat().st_size > 5000
    if os.environ.get("GRADCHECK_UPDATE_SCREENSHOT"):
        shutil.copy(shot, ROOT / "docs" / name)


def scroll_to_first_table(page):
    page.locator("table.gradcheck-table").first.scroll_into_view_if_needed()


def assert_rows_coloured(tables):
    buggy, fixed = tables[0], tables[1]
    assert {name for name, status, _, _ in buggy if status == "fail"} == set(EXPECTED[DEMO][0])
    for name, status, background, _ in buggy + fixed:
        assert is_red(background) == (status == "fail"), (name, status, background)
        assert is_green(background) == (status == "pass"), (name, status, background)


def test_untrusted_stored_notebook_shows_red_and_green_rows(page, tmp_path):
    trusted = page.evaluate("() => document.querySelectorAll('.jp-Notebook').length")
    assert trusted == 1
    tables = page.evaluate(ROWS)
    assert len(tables) == 2, tables
    assert_rows_coloured(tables)
    # the sanitizer really ran: no <style> element reached the page from the outputs
    assert page.evaluate("() => document.querySelectorAll('.jp-OutputArea-output style').length") == 0
    assert (
        page.locator(".jp-OutputArea-output .gradcheck-heatmap img[src^='data:image/png']").count() >= 1
    )  # the static picture
    scroll_to_first_table(page)
    save_screenshot(page, "jupyterlab_untrusted.png", tmp_path)
    assert_tables_fit_a_narrow_notebook(page)  # the sanitizer drops some wrapping styles: still fits


def test_after_run_all_the_live_table_widget_and_width(page, tmp_path):
    page.locator(".jp-NotebookPanel").last.click(position={"x": 5, "y": 5})
    page.get_by_text("Run", exact=True).first.click()
    page.get_by_text("Run All Cells", exact=True).first.click()
    page.wait_for_function(IDLE, timeout=RUN_ALL_SECONDS * 1000)
    page.wait_for_selector(".jupyter-widgets select")
    assert_rows_coloured(page.evaluate(ROWS))

    select = page.locator(".jupyter-widgets select").first
    picture = page.locator(".widget-html .gradcheck-heatmap img").first
    before = picture.get_attribute("src")
    assert select.input_value() == "b1 (fail)"  # the worst block is preselected
    select.select_option(label="W1 (pass)")
    page.wait_for_function(
        "before => { const img = document.querySelector('.widget-html .gradcheck-heatmap img');"
        " return img && img.getAttribute('src') !== before; }",
        arg=before,
    )
    assert "W1 (5, 4): pass" in page.locator(".widget-html").first.inner_text()
    select.scroll_into_view_if_needed()  # the block picker with W1's view under it
    save_screenshot(page, "jupyterlab_live.png", tmp_path)

    assert_tables_fit_a_narrow_notebook(page)
    select.select_option(label="W2 (fail)")  # a long header over two wide tables of numbers
    page.wait_for_function("() => document.querySelector('.widget-html h4').textContent.includes('W2')")
    header = page.evaluate(
        "() => { const h = document.querySelector('.widget-html h4');"
        " const out = h.closest('.jp-OutputArea-output').getBoundingClientRect();"
        " const r = h.getBoundingClientRect();"
        " return {scroll: h.scrollWidth, client: h.clientWidth, right: r.right, out: out.right,"
        " lines: Math.round(r.height / parseFloat(getComputedStyle(h).lineHeight))}; }"
    )
    assert header["scroll"] <= header["client"] and header["right"] <= header["out"] + 0.5, header
    assert header["lines"] >= 2, header  # it wraps instead of running off to the right


def assert_tables_fit_a_narrow_notebook(page):
    """At a notebook NOTEBOOK_WIDTH wide, no table reaches past its output area or scrolls."""
    fits = page.evaluate(FITS)
    print("widths at a narrow notebook:", fits)

    for fit in fits:
        assert fit["panel"] <= NOTEBOOK_WIDTH
        assert fit["right"] <= fit["output_right"] + 0.5, fit
        assert fit["scroll"] <= fit["client"], fit


def test_dark_theme_keeps_rows_readable_and_the_heatmap_dark(page, tmp_path):
    import io

    import numpy as np
    from PIL import Image

    from gradcheck_magic.palette import MIN_CONTRAST, contrast_ratio

    page.get_by_text("Settings", exact=True).first.click()
    page.get_by_text("Theme", exact=True).first.hover()
    page.get_by_text("JupyterLab Dark", exact=True).first.click()
    page.wait_for_function("() => document.body.dataset.jpThemeLight === 'false'")
    for name, status, background, text in page.evaluate(ROWS)[0]:
        hexes = ["#" + "".join(f"{int(v):02x}" for v in rgba(css)[:3]) for css in (background, text)]
        assert contrast_ratio(*hexes) >= MIN_CONTRAST, (name, status, hexes)
    picture = page.locator(".widget-html .gradcheck-heatmap img").first
    picture.scroll_into_view_if_needed()
    pixels = np.asarray(Image.open(io.BytesIO(picture.screenshot())).convert("RGB")).astype(int)
    near_white = (pixels > 235).all(axis=-1).mean()
    assert near_white < 0.05, near_white  # only the worst entry's thin light ring
    scroll_to_first_table(page)
    save_screenshot(page, "jupyterlab_dark.png", tmp_path)


def test_progress_bar_suggests_fast_mode_and_goes_away_on_interrupt(page, lab):
    from gradcheck_magic.progress import SUGGEST_FAST

    page.goto(lab["slow_url"])
    panel = page.locator(".jp-NotebookPanel").filter(visible=True).filter(has_text="SLOW_FORWARD_MARK")
    panel.wait_for(state="visible")
    panel.click(position={"x": 5, "y": 5})
    page.get_by_text("Run", exact=True).first.click()
    page.get_by_text("Run All Cells", exact=True).first.click()
    bar = panel.locator(".jp-OutputArea-output .widget-hprogress").first
    bar.wait_for(state="visible")
    page.wait_for_function(
        "text => Array.from(document.querySelectorAll('.jp-OutputArea-output .widget-html'))"
        ".some(e => e.textContent.replace(/\\u2007/g, ' ').replace(/\\u2060/g, '').includes(text))",
        arg=SUGGEST_FAST,
    )
    lines = page.evaluate(  # the hint's "try -m fast" on one line, never "try -" / "m fast"
        """() => {
      const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
      for (let n = walker.nextNode(); n; n = walker.nextNode()) {
        const at = n.textContent.indexOf('try');
        if (at < 0 || !n.textContent.includes('fast')) continue;
        const range = document.createRange();
        range.setStart(n, at);
        range.setEnd(n, n.textContent.indexOf('fast', at) + 4);
        return new Set(Array.from(range.getClientRects()).map(r => Math.round(r.top))).size;
      }
      return -1;
    }"""
    )
    assert lines == 1, lines
    page.get_by_text("Kernel", exact=True).first.click()
    page.get_by_text("Interrupt Kernel", exact=True).first.click()
    page.wait_for_function(IDLE, timeout=RUN_ALL_SECONDS * 1000)
    caption = panel.locator("table.gradcheck-table caption").first
    caption.wait_for(state="visible")
    assert "gradient check interrupted" in caption.inner_text()
    visible_bars = page.evaluate(
        "() => Array.from(document.querySelectorAll('.widget-hprogress'))"
        ".filter(e => e.offsetParent !== null).length"
    )
    assert visible_bars == 0
    outputs = page.evaluate(  # nothing of the bar is left to be saved: no widget view in the outputs
        "() => JSON.stringify(window.jupyterapp.shell.currentWidget.content.model.toJSON().cells"
        ".map(c => c.outputs || []))"
    )
    assert "gradient check interrupted" in outputs and "widget-view+json" not in outputs
