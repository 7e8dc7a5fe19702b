"""The ranker: one rule for every candidate, whichever adapter offered it, and the loop that probes
only the best-ranked.

:func:`rank` orders candidates by what the user wrote; :func:`choose` builds (probes) the best ones,
drops those that raise or do not fit, and returns the winner's :class:`~.checkplan.CheckPlan` with
the reason it won, or refuses with the list of candidates and the flags that pick each.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Optional

from ..errors import GradCheckError
from .checkplan import CheckPlan
from .problem import is_scalar_like, silenced


class Unfit(Exception):
    """A candidate's probe found it does not fit (a forward returns an activation where the family
    assumed a cost): dropped quietly, never shown as an error."""


@dataclass(eq=False)
class Candidate:
    """A check beyond the course's function sets, as :func:`rank` sees it: a model or network object,
    forward/backward functions over layer objects, a layer-function pair, a flat-vector cost or an
    ``(f, fprime)`` pair.  The adapters describe theirs with one of these,
    so that one rule ranks them with the course families.

    ``build()`` plans the check (it may dry-run the user's code under its own snapshot) and returns a
    :class:`~.checkplan.CheckPlan` (whose ``reason`` the ranking sets; its ``release()`` puts back what
    building it changed, when it is not chosen); it raises to have the candidate dropped (``Unfit``
    to drop it quietly).  ``refusal`` is set instead when it cannot even be bound
    (a missing argument): it is not ranked, and its reason is told only when nothing else fits, or
    when the cell points at it more than at anything that remains."""

    label: str  # as listed when ambiguous: "model", "affine_forward / affine_backward"
    choose: str  # what picks it: "%gradcheck model", "-f affine_forward -b affine_backward"
    kind: str  # its kind, plural, for a refusal among candidates of one kind only
    inputs: frozenset = frozenset()  # namespace variables it consumes, its parameters or object included
    functions: tuple = ()  # names of the user's functions it calls by name
    local: bool = True  # written in this notebook
    build: Optional[Callable[[], object]] = None
    refusal: str = ""
    #: for :func:`merged`: ids of the arrays it checks, the namespace names its functions read, and
    #: the name whose definition dates it (the model's, the wrapper function's)
    arrays: frozenset = frozenset()
    reaches: frozenset = frozenset()
    defined: str = ""

    consistent = True

    def cell_hits(self, written: set) -> int:
        return len(self.inputs & written) + sum(name in written for name in self.functions)

    def tie_break(self) -> tuple:
        return (len(self.inputs), int(self.local), True)

    def settled(self) -> bool:
        """Is its probe's verdict already known without running user code?  (A course family's is,
        once another family of the same forward was probed.)"""
        return False


def rank(families: list, written: set) -> list:
    """The candidates that nothing the user wrote separates, best first (a list of ties).

    The one rule for every candidate, course :class:`Family` or convention :class:`Candidate`: in order,
    consistent names; the most inputs/functions the cell itself wrote, assigned or called (the cell
    outranks leftovers of other cells); a candidate whose inputs are a strict subset of another's loses
    (a defined ``lambd`` means the L2 family); then, among candidates consuming the same inputs, the
    tie-breakers (more bound inputs, written in the notebook, mirrored names).  Inputs include what is
    checked (the parameters, the model object), so candidates over different parameters are compared
    only by what the cell wrote, never by the tie-breakers."""
    pool = [f for f in families if f.consistent] or list(families)
    best = max(f.cell_hits(written) for f in pool)
    pool = [f for f in pool if f.cell_hits(written) == best]
    pool = [f for f in pool if not any(f.inputs < other.inputs for other in pool)]
    by_inputs = {}
    for f in pool:
        by_inputs.setdefault(f.inputs, []).append(f)
    if len(by_inputs) > 1:
        return pool  # different inputs and nothing separates them: the caller refuses
    pool.sort(key=lambda f: f.tie_break(), reverse=True)
    return [f for f in pool if f.tie_break() == pool[0].tie_break()]


def merged(pool: list, cell) -> list:
    """Candidates that check the same arrays through the same function are one candidate: a wrapper
    ``def forward(params): model.params = params; return model.loss(X, y)`` and the model it wraps.
    The one defined last is what the user means (the %%gradcheck cell's definitions are the newest;
    unknown or the same cell: the wrapper, written with the model in mind)."""

    def age(c) -> float:
        if c.defined in cell.names:
            return float("inf")
        return cell.assigned.get(c.defined, -1)

    kept = list(pool)
    for a in pool:
        for b in pool:
            if a is b or a not in kept or b not in kept or not a.arrays or a.arrays != b.arrays:
                continue
            if a.defined and a.defined in b.reaches:  # b wraps a
                kept.remove(a if age(a) <= age(b) else b)
    return kept


def choose(pool: list, written: set, nothing_fits: Callable[[], str]) -> CheckPlan:
    """The winner of :func:`rank` among the candidates that survive their probe.

    Only the best-ranked are built; one that raises or does not fit is dropped and the rest ranked
    again.  When the cell points at a candidate that cannot be used (it raised, or cannot be bound)
    more than at anything that remains, its error is raised (the user's own exception as the user's
    traceback): a wrong check of something else is never run silently.  ``nothing_fits()`` words the
    refusal when every candidate was dropped quietly."""
    __tracebackhide__ = True  # noqa: F841
    usable = [c for c in pool if not c.refusal]
    refused = [c for c in pool if c.refusal]
    probed = {}  # candidate -> its CheckPlan, or the exception that drops it
    kept = None
    try:
        left = usable
        while left:
            top = rank(left, written)
            unprobed = [c for c in top if c not in probed]
            if not unprobed:
                break
            for c in unprobed:
                probed[c] = _build(c)
            for c in left:  # verdicts now known without running anything (a family's sibling)
                if c not in probed and c.settled():
                    probed[c] = _build(c)
            left = [c for c in left if not isinstance(probed.get(c), BaseException)]
        best = max((c.cell_hits(written) for c in left), default=-1)
        unusable = _unusable(usable, probed, refused)
        pointed = [(c, e) for c, e in unusable if c.cell_hits(written) > best]
        if pointed:
            _, error = max(pointed, key=lambda ce: ce[0].cell_hits(written))
            if not isinstance(error, GradCheckError):  # the user's own error, as the user's traceback
                raise error.with_traceback(error.__traceback__)
            raise GradCheckError(str(error))
        if not left:
            raise GradCheckError(nothing_fits())
        top = rank(left, written)
        if len(top) > 1:
            raise GradCheckError(_ambiguous(top))
        chosen = top[0]
        kept = probed[chosen]
        kept.reason = _why(chosen, left, written)
        return kept
    finally:  # what was built for a candidate not chosen puts back what building it changed
        for verdict in probed.values():
            if verdict is not kept and isinstance(verdict, CheckPlan):
                verdict.release()


def _unusable(usable: list, probed: dict, refused: list) -> list:
    """(candidate, error) for each that raised in its probe or cannot be bound: user errors first,
    then refusals, in the pool's order (the course's own refusal last)."""
    raised = [
        (c, probed[c])
        for c in usable
        if isinstance(probed.get(c), Exception) and not isinstance(probed[c], Unfit)
    ]
    found = [ce for ce in raised if not isinstance(ce[1], GradCheckError)]
    found += [ce for ce in raised if isinstance(ce[1], GradCheckError)]
    found += [(c, GradCheckError(c.refusal)) for c in refused]
    return found


def _build(c):
    """A candidate's probe: its planned check, or the error that drops it."""
    try:
        return c.build()
    except Exception as exc:  # noqa: BLE001 - a candidate's own bug drops that candidate only
        return exc


#: What a refusal among candidates of one kind calls them.
SEVERAL = {
    "models": "several models in the namespace",
    "layer functions": "several layer functions fit the cell's variables",
    "cost functions": "several cost functions take the cell's vector",
    "function pairs": "several (f, fprime) pairs take the cell's vector",
    "functions over layer objects": "several forward functions call layer objects",
}


def _ambiguous(top: list) -> str:
    """The refusal when nothing separates the best candidates: each of them, and what picks it."""
    if all(c.kind == "function sets" for c in top):
        listing = "; ".join(f.label for f in top)
        return (
            f"ambiguous: several function sets fit ({listing}) and nothing in the cell separates them; "
            "choose with -f/--forward NAME, -b/--backward NAME (and -c/--cost NAME), or assign the "
            "variable only one of them uses (lambd, keep_prob, ...) in the %%gradcheck cell"
        )
    kinds = {c.kind for c in top}
    several = (SEVERAL.get(kinds.pop()) if len(kinds) == 1 else None) or "several candidates fit"
    listing = ", ".join(c.label for c in top)
    choices = ", or ".join(c.choose for c in top)
    return (
        f"ambiguous: {several} ({listing}) and nothing in the %%gradcheck cell separates them; "
        f"choose with {choices}, or assign in the %%gradcheck cell a variable only one of them uses"
    )


def _why(chosen, families: list, written: set) -> str:
    """One line: which other complete candidates there were, and the rule that set them aside."""
    others = list(dict.fromkeys(f.label for f in families if f.label != chosen.label))
    if not others:
        return ""
    if chosen.cell_hits(written):
        mine = (chosen.inputs | set(chosen.functions)) & written
        rule = f"the cell assigns or defines {', '.join(sorted(mine))}"
    elif any(f.inputs < chosen.inputs for f in families):
        rule = f"it uses more of what you defined ({', '.join(sorted(chosen.inputs))})"
    else:
        rule = "its names agree and it is written in this notebook"
    return f"chose {chosen.label} over {'; '.join(others)}: {rule}"


def dry_run(convention: Optional[CheckPlan]) -> CheckPlan:
    """A candidate's probe: evaluate its cost once, then put everything back as the planner left it
    (the user's arrays restored, the float64 copies swapped into an object swapped in again).  It
    raises, to have the candidate dropped, when the user's code raises or the cost is not a single
    number (a cs231n ``model.loss(X)`` without labels returns scores)."""
    __tracebackhide__ = True  # noqa: F841
    if convention is None:
        raise GradCheckError("it does not fit this convention")
    snapshot = convention.snapshot
    try:
        with silenced():
            value = convention.problem._evaluate()
    finally:
        snapshot.restore()  # a candidate that is dropped leaves nothing swapped in
    if not is_scalar_like(value):
        raise GradCheckError(
            f"{convention.forward} returned {type(value).__name__}, not a single number: "
            "the cost must be a scalar"
        )
    snapshot.swap_in()  # the float64 copies again, refilled from the user's arrays
    return convention
