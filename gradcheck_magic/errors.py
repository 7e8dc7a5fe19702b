"""Errors a user can act on, and the note that says which of the user's calls raised."""

from __future__ import annotations


class GradCheckError(Exception):
    """Bad input: the message names the thing to fix.  The magic shows it as a UsageError."""


def mark_call(exc: BaseException, call: str) -> None:
    """Remember which user call raised (the innermost one wins)."""
    if not hasattr(exc, "_gradcheck_call"):
        try:
            exc._gradcheck_call = call
        except AttributeError:  # pragma: no cover - exceptions with __slots__
            pass


def describe_failure(exc: BaseException, where: str = "") -> str:
    """One line: which call raised, and what was perturbed at the time."""
    call = getattr(exc, "_gradcheck_call", "your code")
    text = f"gradcheck: {call} raised {type(exc).__name__}"
    if where:
        text += f" {where}"
    return text + "; your arrays, objects and both random states are restored."
