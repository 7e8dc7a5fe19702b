"""The plan stage's interface: the :class:`Request` every adapter reads and the :class:`CheckPlan`
every adapter produces.

A ``Request`` is what the user gave: the namespace, the flags, and what the ``%%gradcheck`` cell and
the notebook's history wrote and called (:class:`~.cell.CellFacts`).  A ``CheckPlan`` is what the rest
of the pipeline (``api.preflight``, the engine, diagnosis, suspects, the caption) needs from a
convention, and nothing else: the blocks and how to evaluate the cost and the analytic gradients
(``problem``), what to restore (``snapshot``), a description, the reason it was chosen, where it
came from, and the hints the suspect analysis reads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional

from .cell import CellFacts


@dataclass
class Request:
    """What the user gave: the namespace, the flags (names, dotted allowed) and the cell's facts.

    ``snapshot`` is the check's first snapshot (``safety.Snapshot``), taken before any user call;
    adapters that reach more namespace variables ``watch`` them in it.  ``snapshots`` collects every
    further snapshot an adapter takes, so that the check restores them all even when planning raises.
    """

    namespace: dict
    forward: Optional[str] = None
    backward: Optional[str] = None
    cost: Optional[str] = None
    params: Optional[str] = None
    target: Optional[str] = None
    cell: CellFacts = field(default_factory=CellFacts)
    snapshot: object = None
    snapshots: list = field(default_factory=list)

    @property
    def flagged(self) -> bool:
        """Did a flag or an object name say what to check (then the ranking does not)?"""
        return any((self.forward, self.backward, self.cost, self.params, self.target))

    @property
    def written(self) -> set:
        """What the %%gradcheck cell assigned, defined, changed or called (the ranking's first rule)."""
        return self.cell.names

    def keep(self, snapshot):
        """Record a snapshot an adapter took, to be restored by the check; returns it."""
        self.snapshots.append(snapshot)
        return snapshot


@dataclass
class Hints:
    """What diagnosis and the suspect analysis read: the number of examples and λ for the hints; the
    function whose source holds the gradients (a backward, a ``loss`` returning ``(loss, grads)``, a
    layer class's ``backward``), the functions whose value is the cost, the backward's scalar
    arguments (``keep_prob``) and each block's place in a tuple the backward returns."""

    m: Optional[int] = None
    lambd: object = None
    backward_fn: Optional[Callable] = None
    cost_fns: tuple = ()
    scalars: dict = field(default_factory=dict)
    positions: Optional[dict] = None


@dataclass(frozen=True)
class PlanSummary:
    """What the result keeps of its plan (``result.plan``): what was checked, from which of the
    user's calls, and why it was chosen over the other candidates."""

    description: str
    source: str = ""
    reason: str = ""

    def __str__(self) -> str:
        return "; ".join(
            p for p in (self.description, self.source and f"from {self.source}", self.reason) if p
        )


@dataclass(eq=False)
class CheckPlan:
    """One check, whatever its convention.

    ``problem`` evaluates the cost (``baseline``, ``cost_function``) and the analytic gradients
    (``blocks``) on float64 working arrays; ``forward`` names the function errors speak of;
    ``params`` maps block names to the user's own arrays (for the dtype notes), or is the course's
    parameters value; ``snapshot`` (an object snapshot, or None when the request's snapshot covers
    everything) is restored when the plan is not chosen (``release``) and after the check."""

    description: str
    forward: str
    params_name: str
    params: object
    problem: object = None
    snapshot: object = None
    hints: Hints = field(default_factory=Hints)
    reason: str = ""  # why the ranking chose it over the other candidates ("" when it was alone)
    source: str = ""  # the user's call it follows: "net.loss(X, y, reg=0.05) in cell [5]"
    inputs: list = field(default_factory=list)  # (name, array) given to the functions: changes reported

    def describe(self) -> str:
        return self.description

    def summary(self) -> PlanSummary:
        return PlanSummary(self.description, self.source, self.reason)

    def release(self) -> None:
        """Not chosen after all: put back what planning it changed (float64 copies swapped in)."""
        if self.snapshot is not None:
            self.snapshot.restore()
