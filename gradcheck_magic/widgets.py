"""The live drill-down under the table: a block picker over the static views of ``drilldown.py``.

Opt-in (``widgets=on``) or ``result.drilldown()``: a widget view saved in a notebook shows ipywidgets'
"Error displaying widget: model not found" once its kernel is gone, and the static sections already pick
a block.  The widget adds interaction, never content: every view it can show is already in the result's
own ``text/html`` (``drilldown.static_html``), so where no widget can run nothing is lost.
"""

from __future__ import annotations

import html

from .drilldown import block_html, default_block, has_entries  # noqa: F401 - the widget's views
from .result import GradCheckResult

#: what the widget's output says where it cannot run (a saved notebook, a static renderer)
STATIC_NOTE = "live block picker (run the cell to use it); every block's drill-down is in the sections above"


def drilldown(result: GradCheckResult):
    """A dropdown of blocks (the worst selected) over that block's entry-by-entry view."""
    import ipywidgets as widgets

    options = [(f"{o.name} ({o.status})", o.name) for o in result.outcomes]
    choose = widgets.Dropdown(options=options, value=default_block(result), description="block")
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
    # where no widget can run, the views are in the table's output above; say so, add nothing
    bundle["text/html"] = f"<div style='font-size:smaller'>{html.escape(STATIC_NOTE)}</div>"
    bundle["text/plain"] = STATIC_NOTE
    display(bundle, raw=True)
    return True
