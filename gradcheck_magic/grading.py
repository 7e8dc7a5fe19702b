"""The kernel side of the headless checker: which checks really ran, and with which settings.

``gradcheck-notebook`` starts a session in a hidden cell before a notebook's first cell.  From then
on every check that finishes appends a record to the checker's registry file, tagged with the
checker's nonce, and settings the grader imposed replace whatever the notebook set.  Grading reads
only this registry, never display bundles, so a hand-made result displayed by a student counts for
nothing.  Code that deliberately attacks the checker from inside the kernel is out of reach of any
in-process registry; the README says how to sandbox a grading run.
"""

from __future__ import annotations

import dataclasses
import json
import math

from .settings import Settings


@dataclasses.dataclass(frozen=True)
class Session:
    """One grading run in one kernel."""

    registry: str  # the JSON-lines file the checker created and reads after execution
    nonce: str  # the checker's secret for this run; records without it are not the checker's
    imposed: Settings | None  # None: each check runs with the notebook's own settings


_session: Session | None = None


def start(registry: str, nonce: str, imposed: dict | None = None) -> None:
    """Called by the checker's hidden setup cell, before any of the notebook's code."""
    global _session
    _session = Session(registry, nonce, Settings(**imposed) if imposed is not None else None)


def imposes_settings() -> bool:
    """Whether a grading run imposes its own settings (flags and the notebook's config then yield)."""
    return _session is not None and _session.imposed is not None


def in_force(settings: Settings) -> Settings:
    """The settings a check runs with: the grader's when imposed, whatever the notebook or a flag set."""
    if _session is None or _session.imposed is None:
        return settings
    return dataclasses.replace(_session.imposed)


def record(result) -> None:
    """Append a finished check to the registry (nothing outside a grading run)."""
    if _session is None:
        return
    entry = {
        "nonce": _session.nonce,
        "functions": result.functions,
        "settings": dataclasses.asdict(result.settings),
        "passed": bool(result.passed),
        "failed": list(result.failed),
        "complete": bool(result.complete),
        "summary": result.summary(),
        "blocks": [_block(name, row) for name, row in result.table.iterrows()],
    }
    with open(_session.registry, "a", encoding="utf-8") as registry:
        registry.write(json.dumps(entry, ensure_ascii=False, default=str) + "\n")


def _block(name, row) -> dict:
    """One table row in JSON terms (the table's columns are the design contract)."""
    return {
        "name": str(name),
        "shape": [int(n) for n in row["shape"]],
        "rel_error": _finite(row["rel_error"]),
        "max_abs_error": _finite(row["max_abs_error"]),
        "worst_index": _index(row["worst_index"]),
        "status": str(row["status"]),
        "note": str(row["note"]),
        "suspect": str(row.get("suspect", "")),
    }


def _index(value) -> list | None:
    """An entry's index as a list; None when the block has none (missing gradient, empty block)."""
    if isinstance(value, (tuple, list)):
        return [int(i) for i in value]
    return None if value is None or isinstance(value, float) else [int(value)]


def _finite(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
