"""What the stages hand each other: a parameter block, the outcome measured for it, and the two
exceptions that carry a stage's interruption or the user's error up to the orchestrator.

Kept apart from the stages so that each of them, and the judge, can import these without importing
one another.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Optional

import numpy as np

if TYPE_CHECKING:
    from .judge import Evidence


@dataclass
class Block:
    """One parameter block: the float64 working array the forward sees, and its gradient."""

    name: str
    work: np.ndarray
    analytic: Optional[np.ndarray] = None  # as returned, in float64; None when missing
    notes: list = field(default_factory=list)
    fatal: Optional[str] = None  # set when the analytic gradient cannot be compared
    saved: Optional[np.ndarray] = None  # the caller's own copy of work's values, if it keeps one

    def original(self) -> np.ndarray:
        """work's values before a probe, flat, to restore from: the caller's saved copy when it is
        bit for bit the same (fast mode then makes no copy of a large block), else a copy."""
        flat, saved = self.work.reshape(-1), self.saved
        if (
            saved is not None
            and saved.dtype == flat.dtype == np.float64
            and saved.size == flat.size
            and saved.flags.c_contiguous
            and np.array_equal(saved.reshape(-1).view(np.int64), flat.view(np.int64))
        ):
            return saved.reshape(-1)
        return flat.copy()

    @property
    def comparable(self) -> Optional[np.ndarray]:
        """The analytic gradient in the parameter's shape, when the shapes agree."""
        if self.analytic is not None and self.fatal is None:
            return self.analytic
        return None


@dataclass
class Outcome:
    """What the engine measured for one block."""

    name: str
    shape: tuple
    numeric: np.ndarray  # central differences, NaN where not computed
    analytic: Optional[np.ndarray]
    checked: np.ndarray  # bool mask of the entries that were differenced
    rel_error: float = float("nan")
    max_abs_error: float = float("nan")
    worst_index: Optional[tuple] = None
    status: str = "fail"
    notes: list = field(default_factory=list)
    hints: list = field(default_factory=list)
    evaluations: int = 0
    kinks: Optional[np.ndarray] = None  # bool mask of non-differentiable entries
    directional: Optional[tuple] = None  # fast mode: (analytic, numeric) per probe
    noise: Optional[np.ndarray] = None  # estimated round-off of each numeric entry
    complete: bool = True
    wrong: Optional[np.ndarray] = None  # bool mask: disagreement survived every re-step
    near_kinks: Optional[np.ndarray] = None  # bool mask: a smaller step no longer crossed the kink
    disagreeing: int = 0  # entries whose disagreement survived every re-step
    restepped: Optional[np.ndarray] = None  # bool mask: estimated at a wider step (round-off at h)
    #: with an epsilon the user set: flat index -> (estimate, round-off) at a wider step, which the
    #: verdict uses while the table keeps the homework's figure at the user's step
    verified: dict = field(default_factory=dict)
    evidence: Optional[Evidence] = None  # what the status was decided from (the grader re-judges it)

    @property
    def error(self) -> np.ndarray:
        """|analytic - numeric| per entry (NaN where unknown)."""
        if self.analytic is None or self.analytic.shape != self.numeric.shape:
            return np.full(self.shape, np.nan)
        return np.abs(self.analytic - self.numeric)

    @property
    def judged(self) -> np.ndarray:
        """The one mask of entries that count: differenced, finite, and neither a kink nor a
        near-kink.  Verdicts, figures, the heatmap, worst entries and hints all read this one."""
        use = self.checked & np.isfinite(self.numeric)
        for mask in (self.kinks, self.near_kinks):
            if mask is not None:
                use &= ~mask
        return use

    @property
    def unverifiable(self) -> np.ndarray:
        """Entries differenced whose cost was not finite at θ±ε."""
        return self.checked & ~np.isfinite(self.numeric)

    @staticmethod
    def unmeasured(shape: tuple) -> np.ndarray:
        """All-NaN and read-only, with no memory of its own: a block that fast mode's probes pass
        never differences an entry, so it needs no per-entry arrays (see ``measuring``)."""
        return np.broadcast_to(np.float64(np.nan), shape)

    @staticmethod
    def unchecked(shape: tuple) -> np.ndarray:
        """All-False and read-only, with no memory of its own until an entry is differenced."""
        return np.broadcast_to(np.False_, shape)

    def mark_checked(self, flat_indices: np.ndarray) -> None:
        if not self.checked.flags.writeable:
            self.checked = np.zeros(self.shape, dtype=bool)
        self.checked.reshape(-1)[flat_indices] = True

    def measuring(self) -> None:
        """Give ``numeric`` and ``noise`` memory of their own before the first entry is written."""
        if not self.numeric.flags.writeable:
            self.numeric = np.full(self.shape, np.nan)
        if self.noise is None or not self.noise.flags.writeable:
            self.noise = np.full(self.shape, np.nan)

    def mark(self, attribute: str, flat_indices: np.ndarray) -> None:
        """Set entries of one of the bool masks, creating it on first use."""
        if getattr(self, attribute) is None:
            setattr(self, attribute, np.zeros(self.shape, dtype=bool))
        getattr(self, attribute).reshape(-1)[flat_indices] = True


def index_of(shape: tuple, flat: int) -> tuple:
    return tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()


def fmt_index(name: str, index: tuple) -> str:
    return f"{name}[{', '.join(map(str, index))}]" if index else name


def count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


class Interrupted(Exception):
    """Raised inside the sweep on Ctrl-C, carrying the blocks finished so far."""


class EvaluationError(Exception):
    """The user's code raised during an evaluation; ``where`` says what was perturbed."""

    def __init__(self, original: BaseException, where: str):
        super().__init__(where)
        self.original = original
        self.where = where
