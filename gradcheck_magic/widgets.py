"""The drill-down under the table: pick a block, see analytic vs numeric entry by entry.

Imported only when a notebook shows a result.  The widget's display bundle also
carries static HTML of the worst block, so a notebook saved without widget state
(or rendered on a code-hosting site) still shows where the block is wrong.
"""
from __future__ import annotations

import html

import numpy as np
import pandas as pd

from .result import GradCheckResult
from .suspects import source_html

MAX_CELLS = 24  # rows/columns shown around the worst entry of a large block


def default_block(result: GradCheckResult) -> str:
    """The worst block: failing first, then warning, then by relative error."""
    rank = {"fail": 2, "warn": 1, "pass": 0}
    return max(result.outcomes,
               key=lambda o: (rank[o.status], np.nan_to_num(o.rel_error, nan=np.inf))).name


def _as_2d(a: np.ndarray) -> np.ndarray:
    if a.ndim == 0:
        return a.reshape(1, 1)
    if a.ndim == 1:
        return a.reshape(-1, 1)
    return a.reshape(a.shape[0], -1)


def _window(shape2, center) -> tuple:
    """Row and column slices of at most MAX_CELLS around ``center``."""
    def span(n, c):
        start = int(min(max(c - MAX_CELLS // 2, 0), max(n - MAX_CELLS, 0)))
        return slice(start, min(start + MAX_CELLS, n))
    return span(shape2[0], center[0]), span(shape2[1], center[1])


def block_html(result: GradCheckResult, name: str) -> str:
    """Heatmap of per-entry relative error in the block's shape, analytic and numeric side by
    side, and the worst entries with their indices."""
    o = result.blocks[name]
    parts = [f"<h4 style='margin:6px 0'>{html.escape(name)} {o.shape}: {o.status}"
             f" — {html.escape('; '.join(o.notes + o.hints)) or 'no notes'}</h4>"]
    parts.append(source_html(result.finding, name))  # the function's source, suspect lines highlighted
    if o.analytic is None or not o.checked.any():
        parts.append("<p>No entry-by-entry comparison for this block.</p>")
        return "\n".join(parts)
    g, a = _as_2d(o.analytic), _as_2d(o.numeric)
    with np.errstate(all="ignore"):
        rel = np.abs(g - a) / np.maximum(np.abs(g) + np.abs(a), 1e-300)
    rel[~np.isfinite(a)] = np.nan
    worst = np.unravel_index(np.nanargmax(np.where(np.isnan(rel), -1, rel)), rel.shape)
    rows, cols = _window(rel.shape, worst)
    if rel.shape[0] > MAX_CELLS or rel.shape[1] > MAX_CELLS:
        parts.append(f"<p>Showing rows {rows.start}–{rows.stop - 1}, columns {cols.start}–{cols.stop - 1} "
                     f"of {rel.shape[0]}×{rel.shape[1]}, around the worst entry.</p>")

    def frame(values):
        return pd.DataFrame(values[rows, cols], index=range(rows.start, rows.stop),
                            columns=range(cols.start, cols.stop))

    heat = (frame(rel).style.background_gradient(cmap="Reds", axis=None, vmin=0, vmax=max(np.nanmax(rel), 1e-12))
            .format("{:.1e}", na_rep="—").set_caption("relative error per entry").set_uuid(f"heat-{name}"))
    side = [frame(g).style.format("{:.3e}").set_caption("analytic").set_uuid(f"ana-{name}"),
            frame(a).style.format("{:.3e}", na_rep="—").set_caption("numeric").set_uuid(f"num-{name}")]
    parts.append("<div style='display:flex;gap:16px;flex-wrap:wrap'>" +
                 "".join(f"<div>{s.to_html()}</div>" for s in [heat, *side]) + "</div>")
    worst_rows = result.worst_entries(name, k=5)
    if worst_rows:
        items = "".join(f"<li><code>{html.escape(name)}{list(w['index'])}</code>: analytic {w['analytic']:.4e}, "
                        f"numeric {w['numeric']:.4e}, |error| {w['abs_error']:.2e}</li>" for w in worst_rows)
        parts.append(f"<p style='margin:4px 0'>Worst entries:</p><ol>{items}</ol>")
    return "\n".join(parts)


def drilldown(result: GradCheckResult):
    """A dropdown of blocks (the worst selected) over that block's entry-by-entry view."""
    import ipywidgets as widgets

    names = [o.name for o in result.outcomes]
    choose = widgets.Dropdown(options=names, value=default_block(result), description="block")
    view = widgets.HTML(value=block_html(result, choose.value))
    choose.observe(lambda change: setattr(view, "value", block_html(result, change["new"])), names="value")
    return widgets.VBox([choose, view])


def widgets_supported(shell) -> bool:
    """Only a kernel with a front end can show widgets; a terminal shell would print their repr."""
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def show_drilldown(result: GradCheckResult, shell) -> bool:
    if not widgets_supported(shell) or not result.outcomes:
        return False
    from IPython.display import display

    box = drilldown(result)
    bundle = box._repr_mimebundle_()
    bundle["text/html"] = block_html(result, default_block(result))
    bundle["text/plain"] = f"gradcheck drill-down: {default_block(result)}"
    display(bundle, raw=True)
    return True
