"""``GradCheckResult``: the raw per-block outcomes, the table people read, and its renderings.

Like IPython's ``TimeitResult`` it is a plain object: it holds what was measured
and derives the rest (``table``, ``passed``, ``failed``); it renders as a pandas
Styler in notebooks, as text in a terminal, and as JSON for the headless checker.
"""

from __future__ import annotations

import html
import math
import re
import shutil
import sys
import textwrap
import zlib
from typing import Optional

import numpy as np
import pandas as pd

from .engine import Outcome
from .palette import ROW_COLOURS, ansi, colour_terminal, row_style
from .settings import Settings
from .suspects import Finding

COLUMNS = ["shape", "rel_error", "max_abs_error", "worst_index", "status", "note", "suspect", "evaluations"]
MIME = "application/vnd.gradcheck-magic.result+json"

#: free-text columns: in HTML they go under their row (as in the terminal), spanning the table
WRAPPING_COLUMNS = ("note", "suspect")
#: columns the HTML table leaves out: the free text (under the row) and the per-block evaluation
#: counts (in ``table``; the caption gives the total)
HIDDEN_IN_HTML = ("note", "suspect", "evaluations")
#: styles of the table's own elements.  They end up inline (see ``_inline_styles``) because
#: JupyterLab's sanitizer strips the <style> block of untrusted notebooks; ``table-layout: auto``
#: overrides JupyterLab's ``fixed``, which cut the caption and headers short.
TABLE_STYLE = "border-collapse: collapse; table-layout: auto; width: auto; max-width: 100%"
CELL_PROPS = "padding: 2px 6px; text-align: left; vertical-align: top"
CAPTION_PROPS = (
    "caption-side: top; text-align: left; font-weight: bold; white-space: normal; "
    "overflow-wrap: anywhere; padding: 2px 0"
)
#: a block name (up to 40 characters and more) wraps rather than widen the table past 600 px
NAME_PROPS = {"white-space": "normal", "overflow-wrap": "anywhere", "word-break": "break-word"}
#: the row of notes and suspect line under a block's row
NOTE_ROW_PROPS = (
    "padding: 0 6px 4px 2em; text-align: left; white-space: normal; overflow-wrap: anywhere; "
    "word-break: break-word; font-weight: normal"
)

#: the plain text: at most this wide (or the terminal's width, if narrower), and never narrower than
#: ``MIN_TEXT_WIDTH`` (the table's own columns do not wrap)
TEXT_WIDTH = 100
MIN_TEXT_WIDTH = 60
NOTE_INDENT = "    "
#: the summary's leading glyph; each is in DejaVu Sans, the common fallback font (⏸ is not)
GLYPHS = {"interrupted": "■", "fail": "✗", "warn": "⚠", "pass": "✓"}

_NUMBER = re.compile(r"\d(?:\.\d+)?e[+-]\d+")  # browsers would break 1e-05 after its hyphen
#: option names (``(-e)``, ``-m fast``): a browser would break them after the hyphen
_OPTION = re.compile(r"\(-\w+\)|(?<![\w-])-\w\b(?: \w+)?")
_CSS_RULE = re.compile(r"([^{}]+)\{([^{}]*)\}")
_OPEN_TAG = re.compile(r"<(table|caption|th|td)\b([^>]*)>")


def note_parts(note: str, suspect: str = "") -> list:
    """A note's parts in reading order: the hints and notes, then the suspect line, then why that line
    (the text table and the headless checker print them so)."""
    parts = [p for p in note.split("; ") if p]
    if suspect:
        why = [p for p in parts if p.startswith("why that line:")]
        parts = [p for p in parts if p not in why] + [f"suspect: {suspect}"] + why
    return parts


def _under_row(df: pd.DataFrame, block) -> list:
    """The text lines under a row."""
    return note_parts(
        str(df.loc[block, "note"]), str(df.loc[block, "suspect"]) if "suspect" in df.columns else ""
    )


def _breakable(text) -> str:
    """HTML-escaped code whose long names may break after ``_``, ``.`` and ``:``: a sanitizer (an
    untrusted notebook) may drop ``overflow-wrap``, and ``backward_propagation_n:14`` would then push
    the table past the notebook's edge."""
    return re.sub(r"([_.:])", r"\1<wbr>", html.escape(str(text)))


def _uncompared(o: Outcome) -> bool:
    """A block whose gradient is missing or of the wrong shape: no entry of it was compared."""
    return o.analytic is None or o.analytic.shape != o.numeric.shape


def _judged(o: Outcome) -> np.ndarray:
    """The entries the verdict judged: the engine's own mask when it gives one, else differenced,
    finite and neither a kink nor a near-kink (the engine's rule)."""
    judged = getattr(o, "judged", None)
    if isinstance(judged, np.ndarray):
        return judged
    use = o.checked & np.isfinite(o.numeric)
    for mask in (o.kinks, o.near_kinks):
        if mask is not None:
            use = use & ~mask
    return use


def _sci(x) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "—"
    return f"{x:.2e}"


class GradCheckResult:
    """The outcome of one gradient check."""

    def __init__(
        self,
        outcomes: list,
        difference: float,
        settings: Settings,
        mode: str,
        evaluations: int,
        functions: str = "",
        warnings: Optional[list] = None,
        interrupted: bool = False,
        seconds: float = 0.0,
        finding: Optional[Finding] = None,
        sweep_seconds: Optional[float] = None,
        plan=None,
    ):
        self.outcomes = outcomes
        self.difference = difference
        self.settings = settings
        self.mode = mode
        self.evaluations = evaluations
        self.functions = functions
        self.warnings = list(warnings or [])
        self.interrupted = interrupted
        self.seconds = seconds  # the whole check, discovery to verdict
        self.sweep_seconds = seconds if sweep_seconds is None else sweep_seconds  # the evaluations alone
        self.finding = finding or Finding()  # which lines to suspect, per failing block
        self.plan = plan  # what was checked, from which call and why (plan.checkplan.PlanSummary)
        self._table = None
        #: whether the HTML opens the worst block's drill-down (closed under a live widget showing it)
        self.open_drilldown = True

    # ---- what people read -----------------------------------------------------
    @property
    def table(self) -> pd.DataFrame:
        if self._table is None:
            rows = [
                {
                    "shape": tuple(o.shape),
                    "rel_error": float(o.rel_error),
                    "max_abs_error": float(o.max_abs_error),
                    "worst_index": o.worst_index,
                    "status": o.status,
                    "note": self._note(o),
                    "suspect": self.finding.top(o.name),
                    "evaluations": o.evaluations,
                }
                for o in self.outcomes
            ]
            self._table = pd.DataFrame(
                rows, index=pd.Index([o.name for o in self.outcomes], name="block"), columns=COLUMNS
            )
        return self._table

    def suspects(self, block: str) -> list:
        """The lines that may hold ``block``'s bug, most likely first (``Suspect`` tuples)."""
        return list(self.finding.ranked.get(block, []))

    def _note(self, o: Outcome) -> str:
        """What kind of bug (the hints) first, as a student reads it, then the engine's notes, then why
        the top suspect line is suspected (or why no line can be)."""
        return "; ".join([h.text for h in o.hints] + o.notes + [n for n in [self.finding.note(o.name)] if n])

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
        """The k entries of a block with the largest |analytic − numeric|, judged entries first (in
        the order that makes the first the table's ``worst_index``); an entry the verdict did not
        judge (a kink) comes after them, with ``judged`` False."""
        o: Outcome = self.blocks[name]
        err = o.error.reshape(-1)
        judged = _judged(o).reshape(-1)
        wrong = o.wrong.reshape(-1) if o.wrong is not None else np.zeros(err.shape, bool)
        finite = np.nan_to_num(err, nan=-1.0)
        # lexsort: the last key is the primary one
        order = np.lexsort((-finite, ~(judged & wrong), ~judged), axis=0)
        out = []
        for i in order[np.isfinite(err[order])][:k]:
            idx = tuple(int(j) for j in np.unravel_index(i, o.shape)) if o.shape else ()
            out.append(
                {
                    "index": idx,
                    "analytic": float(o.analytic.reshape(-1)[i]),
                    "numeric": float(o.numeric.reshape(-1)[i]),
                    "abs_error": float(err[i]),
                    "judged": bool(judged[i]),
                }
            )
        return out

    def drilldown(self):
        """The ipywidgets view: pick a block, see analytic vs numeric entry by entry."""
        from .widgets import drilldown

        return drilldown(self)

    # ---- the headline -------------------------------------------------------------
    def summary(self) -> str:
        if self.interrupted:
            head = f"{GLYPHS['interrupted']} gradient check interrupted — rows so far"
        elif self.failed:
            head = f"{GLYPHS['fail']} gradient check failed: {', '.join(self._failed_named())}"
        elif self.warned:
            head = f"{GLYPHS['warn']} gradient check passed with warnings: {', '.join(self.warned)}"
        else:
            head = f"{GLYPHS['pass']} gradient check passed"
        eps = "auto" if self.settings.epsilon is None else f"{self.settings.epsilon:g}"
        others = " over the other blocks" if any(_uncompared(o) for o in self.outcomes) else ""
        return (
            f"{head} — overall difference {_sci(self.difference)}{others} "
            f"({self.mode} mode, {self.evaluations} evaluations, ε {eps}, "
            f"threshold {self.settings.threshold:g}, fail above {self.settings.fail_threshold:g})"
        )

    def _failed_named(self) -> list:
        """Failing blocks, each with why when its gradient could not be compared at all
        (``W1 (shape (4, 5) != (5, 4))``, ``W3 (missing gradient dW3)``)."""
        named = []
        for o in self.outcomes:
            if o.status == "fail":
                fatal = [n for n in o.notes if n.startswith(("shape ", "missing gradient"))]
                named.append(f"{o.name} ({fatal[0]})" if _uncompared(o) and fatal else o.name)
        return named

    # ---- renderings -------------------------------------------------------------------
    def _display_frame(self) -> pd.DataFrame:
        """The table with its tuples written out, as both renderings show it."""
        df = self.table.copy()
        df["shape"] = df["shape"].map(str)
        df["worst_index"] = df["worst_index"].map(lambda i: "—" if i is None else str(i))
        return df

    def styler(self):
        """The pandas Styler: passing rows green, warnings amber, failing rows red (background and text
        colour on every cell), numbers in scientific notation; the free text and the per-block
        evaluations hidden (``_repr_html_`` puts the notes and suspect line under each row)."""
        df = self._display_frame()
        status = self.table["status"]
        styler = (
            df.style.apply(lambda row: [row_style(status[row.name])] * len(row), axis=1)
            .apply_index(lambda names: [row_style(status[n]) for n in names], axis=0)
            .format(escape="html")
            .format_index(_breakable, axis=0)  # block names: user text, may break after _ and .
            .format({"rel_error": _sci, "max_abs_error": _sci, "suspect": _breakable})
            .format_index(lambda name: html.escape(str(name)).replace("_", "_<wbr>"), axis=1)
            .set_caption(_unbroken_numbers(html.escape(self.summary())))
            .set_table_attributes(f'class="gradcheck-table" style="{TABLE_STYLE}"')
            .set_uuid(self._uuid())
            .set_table_styles(
                [{"selector": "caption", "props": CAPTION_PROPS}, {"selector": "td, th", "props": CELL_PROPS}]
            )
            .set_properties(
                subset=[c for c in df.columns if c not in HIDDEN_IN_HTML], **{"white-space": "nowrap"}
            )
            .apply_index(lambda names: [_css(NAME_PROPS)] * len(names), axis=0)
            .hide(list(HIDDEN_IN_HTML), axis="columns")
        )
        return styler

    def _note_rows(self) -> list:
        """Per block, the HTML row under it with its notes and suspect line ("" when it has none)."""
        df = self._display_frame()
        shown = len([c for c in df.columns if c not in HIDDEN_IN_HTML]) + 1  # and the block name
        rows = []
        for o in self.outcomes:
            parts = _under_row(df, o.name)
            if not parts:
                rows.append("")
                continue
            lines = "".join(f"<div>{_note_html(part, ROW_COLOURS[o.status][1])}</div>" for part in parts)
            rows.append(
                f'<tr class="gradcheck-note"><td colspan="{shown}" '
                f'style="{row_style(o.status)}; {NOTE_ROW_PROPS}">{lines}</td></tr>'
            )
        return rows

    def _uuid(self) -> str:
        """Deterministic (HTML can be asserted) yet distinct per result, so that two tables on
        one page never share an element id."""
        key = self.summary() + "|" + self.table.to_json(default_handler=str)
        return f"gradcheck_{zlib.crc32(key.encode()):08x}"

    def _repr_html_(self) -> str:
        """The table, notes under their rows, then every block's drill-down: all of it static HTML
        with inline styles, so that it survives saving, untrusted notebooks and static renderers."""
        from .drilldown import static_html

        parts = [_with_rows_under(_inline_styles(self.styler().to_html()), self._note_rows())]
        details = []
        if self.functions:
            details.append(f"checked: <code>{_breakable(self.functions)}</code>")
        details.extend(html.escape(line) for line in self._plan_lines())
        details.extend(html.escape(w) for w in self.warnings)
        if details:
            parts.append(
                "<div class='gradcheck-details' style='overflow-wrap: anywhere; word-break: break-word'>"
                + "<br>".join(details)
                + "</div>"
            )
        parts.append(static_html(self, open_block=self.open_drilldown))
        return "\n".join(parts)

    def text(self, width: int | None = None, colour: bool = False) -> str:
        """The table for terminals and logs: one line per block, its notes indented under it,
        everything within ``width`` columns (default: the terminal's, at most ``TEXT_WIDTH``)."""
        if width is None:
            width = min(shutil.get_terminal_size((TEXT_WIDTH, 24)).columns, TEXT_WIDTH)
        width = max(width, MIN_TEXT_WIDTH)
        df = self._display_frame()
        df["rel_error"] = df["rel_error"].map(_sci)
        df["max_abs_error"] = df["max_abs_error"].map(_sci)
        df["status"] = df["status"].map(lambda s: s.upper() if s != "pass" else s)
        columns = [c for c in df.columns if c not in WRAPPING_COLUMNS]
        cells = [[str(name)] + [str(v) for v in row] for name, row in zip(df.index, df[columns].values)]
        header = [df.index.name or ""] + columns
        widths = [max(len(r[i]) for r in [header, *cells]) for i in range(len(header))]

        def line(values, status=None):
            padded = [v.ljust(w) for v, w in zip(values, widths)]
            if status is not None and colour:
                padded[0] = ansi(padded[0], status)
                padded[header.index("status")] = ansi(padded[header.index("status")], status)
            return "  ".join(padded).rstrip()

        lines = textwrap.wrap(self.summary(), width, subsequent_indent="  ")
        if colour:
            overall = "fail" if self.failed else "warn" if (self.warned or self.interrupted) else "pass"
            lines = [ansi(text, overall) for text in lines]
        lines.append(line(header))
        for o, values in zip(self.outcomes, cells):
            lines.append(line(values, o.status))
            for part in _under_row(df, o.name):
                lines.extend(
                    textwrap.wrap(
                        part,
                        width,
                        initial_indent=NOTE_INDENT,
                        subsequent_indent=NOTE_INDENT + "  ",
                        break_on_hyphens=False,
                    )
                )
        if self.functions:
            lines.extend(textwrap.wrap(f"checked: {self.functions}", width, subsequent_indent="  "))
        for line in self._plan_lines():
            lines.extend(textwrap.wrap(line, width, subsequent_indent="  "))
        for w in self.warnings:
            lines.extend(textwrap.wrap(f"warning: {w}", width, subsequent_indent="  "))
        return "\n".join(lines)

    def __repr__(self) -> str:
        return self.text()

    def _plan_lines(self) -> list:
        """Under "checked:": the user's call the check followed, and why it was chosen."""
        if self.plan is None:
            return []
        lines = [f"from: {self.plan.source}"] if self.plan.source else []
        return lines + ([f"why: {self.plan.reason}"] if self.plan.reason else [])

    def _repr_pretty_(self, p, cycle):
        p.text(self.text(colour=colour_terminal(sys.stdout)))

    def to_dict(self) -> dict:
        """JSON-ready: what the headless checker collects from a notebook."""

        def clean(x):
            return None if isinstance(x, float) and not math.isfinite(x) else x

        return {
            "passed": self.passed,
            "failed": self.failed,
            "complete": self.complete,
            "difference": clean(float(self.difference)),
            "mode": self.mode,
            "evaluations": self.evaluations,
            "functions": self.functions,
            "warnings": self.warnings,
            "summary": self.summary(),
            "blocks": [
                {
                    "name": o.name,
                    "shape": list(o.shape),
                    "rel_error": clean(float(o.rel_error)),
                    "max_abs_error": clean(float(o.max_abs_error)),
                    "worst_index": list(o.worst_index) if o.worst_index is not None else None,
                    "status": o.status,
                    "note": self._note(o),
                    "suspect": self.finding.top(o.name),
                    "evaluations": o.evaluations,
                }
                for o in self.outcomes
            ],
        }

    def _repr_mimebundle_(self, include=None, exclude=None):
        return {MIME: self.to_dict()}


def _unbroken_numbers(text: str) -> str:
    """Escaped text whose numbers (1e-05) and options ((-e), -m fast) never break across lines."""
    nowrap = lambda m: f'<span style="white-space: nowrap">{m.group(0)}</span>'  # noqa: E731
    return _OPTION.sub(nowrap, _NUMBER.sub(nowrap, text))


def _css(props: dict) -> str:
    return "; ".join(f"{k}: {v}" for k, v in props.items())


def _note_html(part: str, colour: str) -> str:
    """One line under a row: the suspect's code in monospace, breakable after ``_`` and ``.``, in the
    row's text colour (a theme's own colour for code would land on the row's background)."""
    if part.startswith("suspect: "):
        code = part[len("suspect: ") :]
        return (
            f"suspect: <code style='color: {colour}; background-color: transparent'>{_breakable(code)}</code>"
        )
    return _unbroken_numbers(html.escape(part))


def _with_rows_under(table_html: str, rows: list) -> str:
    """The table with ``rows[i]`` inserted after its i-th body row."""
    start = table_html.index("<tbody>") + len("<tbody>")
    end = table_html.index("</tbody>")
    body = table_html[start:end].split("</tr>")
    merged = "".join(row + "</tr>" + (rows[i] if i < len(rows) else "") for i, row in enumerate(body[:-1]))
    return table_html[:start] + merged + body[-1] + table_html[end:]


def _inline_styles(table_html: str) -> str:
    """The Styler's HTML with its <style> block moved into ``style`` attributes on the elements
    themselves: untrusted notebooks, nbviewer, GitHub and VS Code keep those."""
    style_block = re.search(r"<style[^>]*>(.*?)</style>\s*", table_html, flags=re.DOTALL)
    if style_block is None:
        return table_html
    by_id, by_tag = {}, {}
    for selectors, body in _CSS_RULE.findall(style_block.group(1)):
        props = "".join(p.strip() + "; " for p in body.split(";") if p.strip())
        for selector in (s.strip() for s in selectors.split(",")):
            parts = selector.split()
            if len(parts) == 1 and parts[0].startswith("#"):
                by_id[parts[0][1:]] = by_id.get(parts[0][1:], "") + props
            elif len(parts) == 2:
                by_tag[parts[1]] = by_tag.get(parts[1], "") + props

    def inline(match):
        tag, attrs = match.group(1), match.group(2)
        element_id = re.search(r'\bid="([^"]+)"', attrs)
        props = (by_tag.get(tag, "") + (by_id.get(element_id.group(1), "") if element_id else "")).strip()
        if not props:
            return match.group(0)
        existing = re.search(r'\bstyle="([^"]*)"', attrs)
        if existing:
            merged = existing.group(1).rstrip("; ") + "; " + props
            return f'<{tag}{attrs[: existing.start()]}style="{merged}"{attrs[existing.end() :]}>'
        return f'<{tag}{attrs.rstrip()} style="{props}">'

    body = table_html[: style_block.start()] + table_html[style_block.end() :]
    return _OPEN_TAG.sub(inline, body)
