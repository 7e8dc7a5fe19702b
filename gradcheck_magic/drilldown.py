"""The drill-down as static HTML: per block, where it is wrong as a picture, the suspect lines, the numbers.

This is the content; the live widget (``widgets.py``) only adds a block picker over the same views.
Everything here is plain HTML with inline styles, PNG data URIs and ``<details>`` sections that open
without JavaScript, so a saved notebook (trusted or not), nbconvert, nbviewer and GitHub show all of it.
It fits a 600 px output area: one column that never grows wider than its container, wide numbers
wrapping below each other, and only big blocks' pictures and number grids scrolling inside their box.
"""

from __future__ import annotations

import html

import numpy as np

from . import heatmap, palette
from .engine import fmt_index
from .suspects import source_html

MAX_CELLS = 24  # rows/columns of numbers shown around the worst entry of a large block
OPEN_NUMBERS_UP_TO = 64  # entries: a block this small shows its numbers at once, a larger one on demand
PICTURE_MAX_HEIGHT = "360px"  # the picture scrolls inside itself beyond this
LEGEND_SWATCH = "display:inline-block;width:1em;height:1em;vertical-align:middle;margin:0 3px 0 10px"
#: the elements that may scroll inside themselves (a big block's picture and numbers); nothing else may
SCROLL_CLASS = "gradcheck-scroll"


def has_entries(outcome) -> bool:
    return heatmap.entry_errors(outcome) is not None


def default_block(result) -> str:
    """The worst block that has entry data: failing first, then warning, then by relative error."""
    rank = {"fail": 2, "warn": 1, "pass": 0}
    return max(
        result.outcomes,
        key=lambda o: (has_entries(o), rank[o.status], np.nan_to_num(o.rel_error, nan=np.inf)),
    ).name


def _window(shape2, center) -> tuple:
    """Row and column slices of at most MAX_CELLS around ``center``."""

    def span(n, c):
        start = int(min(max(c - MAX_CELLS // 2, 0), max(n - MAX_CELLS, 0)))
        return slice(start, min(start + MAX_CELLS, n))

    return span(shape2[0], center[0]), span(shape2[1], center[1])


def _legend(settings) -> str:
    """The fixed scale's key.  Plain swatches are inline-styled spans; the kink swatch is a small PNG
    of the picture's own stripes (a sanitizer drops CSS gradients, never an image)."""

    def swatch(rgb, alpha, label):
        fill = f"background-color: rgba({rgb[0]},{rgb[1]},{rgb[2]},{alpha})"
        return f"<span style='{LEGEND_SWATCH};{fill}'></span>{html.escape(label)}"

    def image(uri, label):
        return (
            f"<img src='{uri}' width='12' height='12' alt='' style='{LEGEND_SWATCH}'>"
            f"<span style='white-space:nowrap'>{html.escape(label)}</span>"
        )

    return (
        "<div style='font-size:smaller;margin:2px 0 6px 0'>"
        + swatch(palette.GREEN, 0.5, f"≤ {settings.threshold:g} (pass)")
        + swatch(palette.AMBER, 0.8, f"≤ {settings.fail_threshold:g} (warn)")
        + swatch(palette.RED, 1.0, f"> {settings.fail_threshold:g} (fail)")
        + image(heatmap.swatch("kink"), "kink, not judged")
        + image(heatmap.swatch("unverifiable"), "not finite")
        + "<span style='margin-left:10px'>blank: not differenced</span></div>"
    )


def _numbers_table(values, rows, cols, worst, fmt) -> str:
    """A plain table of numbers; the worst entry outlined (inline, so it survives sanitizers)."""
    head = "".join(f"<th style='padding:1px 4px'>{c}</th>" for c in range(cols.start, cols.stop))
    body = []
    for r in range(rows.start, rows.stop):
        cells = []
        for c in range(cols.start, cols.stop):
            ring = "outline:2px solid currentColor;" if (r, c) == worst else ""
            value = values[r, c]
            text = "—" if not np.isfinite(value) else format(value, fmt)
            cells.append(f"<td style='{ring}padding:1px 4px;text-align:right;white-space:nowrap'>{text}</td>")
        body.append(f"<tr><th style='padding:1px 4px'>{r}</th>{''.join(cells)}</tr>")
    return (
        f"<table style='border-collapse:collapse;font-size:smaller;table-layout:auto'>"
        f"<thead><tr><th></th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )


def header(result, name: str) -> str:
    o = result.blocks[name]
    notes = html.escape("; ".join(o.notes + [h.text for h in o.hints])) or "no notes"
    return f"{html.escape(name)} {o.shape}: {o.status} — {notes}"


def block_html(result, name: str, with_header: bool = True) -> str:
    """Heatmap of per-entry relative error in the block's shape on the verdict's fixed scale, the
    suspect lines, the worst entries with their numbers, and the values around the worst entry."""
    o = result.blocks[name]
    parts = []
    if with_header:
        parts.append(
            "<h4 style='margin:6px 0;white-space:normal;overflow-wrap:anywhere;word-break:break-word;"
            f"line-height:1.3'>{header(result, name)}</h4>"
        )
    parts.append(source_html(result.finding, name))  # the function's source, suspect lines highlighted
    pic = heatmap.picture(o, result.settings.threshold, result.settings.fail_threshold)
    if pic is None:
        parts.append("<p>No entry-by-entry comparison for this block.</p>")
        return _fitted(parts)
    grid_text = f"{pic.grid[0]}×{pic.grid[1]}"
    pooled = (
        f"; each cell is the largest of {pic.pooled[0]}×{pic.pooled[1]} entries"
        if pic.pooled != (1, 1)
        else ""
    )
    parts.append(
        f"<div style='font-size:smaller'>relative error per entry ({grid_text}{pooled}; "
        "share of the block's rel_error, fixed scale)</div>"
    )
    parts.append(_legend(result.settings))
    worst_label = ""
    if pic.worst is not None:
        worst_index = o.worst_index if o.worst_index is not None else pic.worst
        worst_label = f"worst entry {html.escape(fmt_index(name, tuple(worst_index)))}, ringed"
    parts.append(
        f"<div class='gradcheck-heatmap {SCROLL_CLASS}' style='overflow:auto;max-width:100%;"
        f"max-height:{PICTURE_MAX_HEIGHT}'><img src='{pic.data_uri}' width='{pic.width}' "
        f"height='{pic.height}' alt='relative error per entry of {html.escape(name)}; {worst_label}' "
        f"title='{worst_label}' style='image-rendering:pixelated;max-width:none'></div>"
    )
    if worst_label:
        parts.append(f"<div style='font-size:smaller'>{worst_label}</div>")
    worst_rows = result.worst_entries(name, k=5)
    if worst_rows:
        items = "".join(
            f"<li><code>{html.escape(name)}{list(w['index'])}</code>: analytic {w['analytic']:.4e}, "
            f"numeric {w['numeric']:.4e}, |error| {w['abs_error']:.2e}"
            + ("" if w.get("judged", True) else " <i>(kink, not judged)</i>")
            + "</li>"
            for w in worst_rows
        )
        parts.append(f"<p style='margin:4px 0'>Worst entries:</p><ol style='margin:0'>{items}</ol>")

    analytic, numeric = heatmap.as_2d(o.analytic), heatmap.as_2d(o.numeric)
    center = pic.worst if pic.worst is not None else (0, 0)
    rows, cols = _window(analytic.shape, center)
    where = (
        f"Showing rows {rows.start}–{rows.stop - 1}, columns {cols.start}–{cols.stop - 1} "
        f"of {grid_text}, around the worst entry"
        if analytic.size > MAX_CELLS * MAX_CELLS
        or analytic.shape[0] > MAX_CELLS
        or analytic.shape[1] > MAX_CELLS
        else ("The only entry" if analytic.size == 1 else f"All {analytic.size} entries")
    )
    tables = "".join(
        f"<div><div style='font-weight:bold'>{label}</div>"
        f"{_numbers_table(values, rows, cols, pic.worst, fmt)}</div>"
        for label, values, fmt in (("analytic", analytic, ".3e"), ("numeric", numeric, ".3e"))
    )
    opened = " open" if o.analytic.size <= OPEN_NUMBERS_UP_TO else ""
    parts.append(
        f"<details{opened}><summary>analytic and numeric values: {where}</summary>"
        f"<div class='{SCROLL_CLASS}' style='overflow:auto;max-width:100%;max-height:{PICTURE_MAX_HEIGHT}'>"
        f"<div style='display:flex;flex-wrap:wrap;gap:4px 16px'>{tables}</div></div></details>"
    )
    return _fitted(parts)


def _fitted(parts: list) -> str:
    """One column as wide as the output area, never wider: the box otherwise grows to its widest child
    and clips the header's lines on the right, while the boxes that scroll (picture, numbers) scroll
    inside it."""
    return (
        "<div style='display:grid;grid-template-columns:minmax(0,1fr);max-width:100%'>"
        + "\n".join(parts)
        + "</div>"
    )


def static_html(result, open_block: bool = True) -> str:
    """Every block's drill-down as a ``<details>`` section (the worst failing or warning block open
    when ``open_block``): the content that the live widget must never be the only holder of."""
    if not result.outcomes:
        return ""
    worst = default_block(result)
    sections = []
    for o in result.outcomes:
        opened = " open" if open_block and o.name == worst and o.status != "pass" else ""
        badge = f"<span style='{palette.row_style(o.status)};padding:0 4px'>{html.escape(o.status)}</span>"
        sections.append(
            f"<details class='gradcheck-block'{opened} style='margin:2px 0'>"
            f"<summary style='overflow-wrap:anywhere;word-break:break-word'>"
            f"{html.escape(o.name)} {html.escape(str(o.shape))}: {badge}</summary>"
            f"{block_html(result, o.name, with_header=False)}</details>"
        )
    return (
        "<div class='gradcheck-drilldown' style='max-width:100%;margin-top:4px'>"
        "<div style='font-size:smaller'>drill-down: the picture, suspect lines and numbers of each block"
        "</div>" + "".join(sections) + "</div>"
    )
