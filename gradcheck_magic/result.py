"""``GradCheckResult``: the raw per-block outcomes, the table people read, and its renderings.

Like IPython's ``TimeitResult`` it is a plain object: it holds what was measured
and derives the rest (``table``, ``passed``, ``failed``); it renders as a pandas
Styler in notebooks, as text in a terminal, and as JSON for the headless checker.
"""
from __future__ import annotations

import html
import math
import zlib
from typing import Optional

import numpy as np
import pandas as pd

from .engine import Outcome, Settings

COLUMNS = ["shape", "rel_error", "max_abs_error", "worst_index", "status", "note", "evaluations"]
ROW_STYLE = {
    "fail": "background-color: #f4c7c3; color: #7f1d1d; font-weight: bold",
    "warn": "background-color: #fde9b5; color: #6b4e00",
    "pass": "",
}
MIME = "application/vnd.gradcheck-magic.result+json"


def _sci(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.2e}"


class GradCheckResult:
    """The outcome of one gradient check."""

    def __init__(self, outcomes: list, difference: float, settings: Settings, mode: str,
                 evaluations: int, functions: str = "", warnings: Optional[list] = None,
                 interrupted: bool = False, seconds: float = 0.0):
        self.outcomes = outcomes
        self.difference = difference
        self.settings = settings
        self.mode = mode
        self.evaluations = evaluations
        self.functions = functions
        self.warnings = list(warnings or [])
        self.interrupted = interrupted
        self.seconds = seconds  # the whole check, discovery to verdict
        self.sweep_seconds = seconds  # the engine's evaluations alone
        self._table = None

    # ---- what people read -----------------------------------------------------
    @property
    def table(self) -> pd.DataFrame:
        if self._table is None:
            rows = [{
                "shape": tuple(o.shape),
                "rel_error": float(o.rel_error),
                "max_abs_error": float(o.max_abs_error),
                "worst_index": o.worst_index,
                "status": o.status,
                "note": "; ".join(o.notes + o.hints),
                "evaluations": o.evaluations,
            } for o in self.outcomes]
            self._table = pd.DataFrame(rows, index=pd.Index([o.name for o in self.outcomes], name="block"),
                                       columns=COLUMNS)
        return self._table

    @property
    def blocks(self) -> dict:
        return {o.name: o for o in self.outcomes}

    @property
    def failed(self) -> list:
        return [o.name for o in self.outcomes if o.status == "fail"]

    @property
    def warned(self) -> list:
        return [o.name for o in self.outcomes if o.status == "warn"]

    @property
    def passed(self) -> bool:
        return not self.failed

    @property
    def complete(self) -> bool:
        return not self.interrupted

    def worst_entries(self, name: str, k: int = 5) -> list:
        """The k entries of a block with the largest |analytic − numeric|."""
        o: Outcome = self.blocks[name]
        err = o.error.reshape(-1)
        order = [i for i in np.argsort(-np.nan_to_num(err, nan=-1.0), kind="stable") if np.isfinite(err[i])]
        out = []
        for i in order[:k]:
            idx = tuple(int(j) for j in np.unravel_index(i, o.shape)) if o.shape else ()
            out.append({"index": idx, "analytic": float(o.analytic.reshape(-1)[i]),
                        "numeric": float(o.numeric.reshape(-1)[i]), "abs_error": float(err[i])})
        return out

    def drilldown(self):
        """The ipywidgets view: pick a block, see analytic vs numeric entry by entry."""
        from .widgets import drilldown
        return drilldown(self)

    # ---- the headline -------------------------------------------------------------
    def summary(self) -> str:
        if self.interrupted:
            head = "⏸ gradient check interrupted — rows so far"
        elif self.failed:
            head = f"✗ gradient check failed: {', '.join(self.failed)}"
        elif self.warned:
            head = f"⚠ gradient check passed with warnings: {', '.join(self.warned)}"
        else:
            head = "✓ gradient check passed"
        eps = "auto" if self.settings.epsilon is None else f"{self.settings.epsilon:g}"
        return (f"{head} — overall difference {_sci(self.difference)} "
                f"({self.mode} mode, {self.evaluations} evaluations, ε {eps}, "
                f"threshold {self.settings.threshold:g}, fail above {self.settings.fail_threshold:g})")

    # ---- renderings -------------------------------------------------------------------
    def _display_frame(self) -> pd.DataFrame:
        """The table with its tuples written out, as both renderings show it."""
        df = self.table.copy()
        df["shape"] = df["shape"].map(str)
        df["worst_index"] = df["worst_index"].map(lambda i: "—" if i is None else str(i))
        return df

    def styler(self):
        """The pandas Styler: failing rows red, warnings amber, numbers in scientific notation."""
        df = self._display_frame()
        status = self.table["status"]
        styler = (df.style
                  .apply(lambda row: [ROW_STYLE[status[row.name]]] * len(row), axis=1)
                  .apply_index(lambda names: [ROW_STYLE[status[n]] for n in names], axis=0)
                  .format(escape="html").format_index(escape="html", axis=0)  # block names, notes: user text
                  .format({"rel_error": _sci, "max_abs_error": _sci})
                  .set_caption(html.escape(self.summary()))
                  .set_table_attributes('class="gradcheck-table"')
                  .set_uuid(self._uuid())
                  .set_table_styles([
                      {"selector": "caption", "props": "caption-side: top; text-align: left; font-weight: bold;"},
                      {"selector": "td, th", "props": "padding: 2px 8px; text-align: left;"},
                  ])
                  .set_properties(subset=[c for c in COLUMNS if c != "note"], **{"white-space": "nowrap"})
                  .set_properties(subset=["note"], **{"min-width": "18em"}))
        return styler

    def _uuid(self) -> str:
        """Deterministic (HTML can be asserted) yet distinct per result, so that two tables on
        one page never share the CSS that colours their rows."""
        key = self.summary() + "|" + self.table.to_json(default_handler=str)
        return f"gradcheck_{zlib.crc32(key.encode()):08x}"

    def _repr_html_(self) -> str:
        parts = [self.styler().to_html()]
        details = []
        if self.functions:
            details.append(f"checked: <code>{html.escape(self.functions)}</code>")
        details.extend(html.escape(w) for w in self.warnings)
        if details:
            parts.append("<div class='gradcheck-details'>" + "<br>".join(details) + "</div>")
        return "\n".join(parts)

    def __repr__(self) -> str:
        df = self._display_frame()
        df["rel_error"] = df["rel_error"].map(_sci)
        df["max_abs_error"] = df["max_abs_error"].map(_sci)
        df["status"] = df["status"].map(lambda s: s.upper() if s != "pass" else s)
        lines = [self.summary()]
        with pd.option_context("display.max_colwidth", 200, "display.width", 250):
            lines.append(df.to_string())
        if self.functions:
            lines.append(f"checked: {self.functions}")
        lines.extend(f"warning: {w}" for w in self.warnings)
        return "\n".join(lines)

    def _repr_pretty_(self, p, cycle):
        p.text(repr(self))

    def to_dict(self) -> dict:
        """JSON-ready: what the headless checker collects from a notebook."""
        def clean(x):
            return None if isinstance(x, float) and not math.isfinite(x) else x
        return {
            "passed": self.passed, "failed": self.failed, "complete": self.complete,
            "difference": clean(float(self.difference)), "mode": self.mode,
            "evaluations": self.evaluations, "functions": self.functions, "warnings": self.warnings,
            "summary": self.summary(),
            "blocks": [{"name": o.name, "shape": list(o.shape), "rel_error": clean(float(o.rel_error)),
                        "max_abs_error": clean(float(o.max_abs_error)),
                        "worst_index": list(o.worst_index) if o.worst_index is not None else None,
                        "status": o.status, "note": "; ".join(o.notes + o.hints),
                        "evaluations": o.evaluations} for o in self.outcomes],
        }

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {MIME: self.to_dict()}

