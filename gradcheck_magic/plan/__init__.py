"""The plan stage: from the namespace, the flags and the user's cells to one :class:`CheckPlan`.

Modules, top-down (each imports only those below it):

    __init__    make(): the flags decide outright (``resolve``), else one ranking of every adapter's
                candidates (``candidates``); ADAPTERS is the registry
    objects     adapter: models and networks (``.params``, ``.loss``), layer objects, functions over them
    flat        adapter: a cost-and-gradient function on one flat vector, ``(f, fprime)`` pairs
    losses      adapter: losses with one gradient per array argument (word2vec, svm_loss_naive), a flat
                vector at any argument position (forward_backward_prop), from the user's latest call
    layers      adapter: cs231n layer-function pairs, cost = Σ out·dout
    course      adapter: the course's forward/backward/cost families over a dict of parameters
    ranking     the one rule that orders candidates, and the loop that probes only the best
    binding     the binder: each argument's value (the user's call, by name, the default); lookups
    problem     evaluation: float64 working copies, the cost closure, gradients paired with blocks
    snapshot    ObjectSnapshot: what a plan perturbs in place, put back (safety.py will take it over)
    checkplan   the interface: Request (what the user gave), CheckPlan (what every adapter produces)
    cell        what the %%gradcheck cell wrote and called (its syntax tree; no user code runs)

Writing an adapter (a new convention, e.g. ``plan/recurrent.py``):

1.  Write a module with two functions, both taking the :class:`Request`:

    ``resolve(request) -> CheckPlan | None``
        The flags or the object name (``request.forward``, ``.backward``, ``.cost``, ``.params``,
        ``.target``) pick your convention: return its plan, already built; return None when they
        do not (the next adapter is asked); raise ``GradCheckError`` when they pick it but it cannot
        be checked (the message names what to fix).
    ``candidates(request) -> list[Candidate]``
        Without flags (return ``[]`` when ``request.flagged``): one :class:`~.ranking.Candidate`
        per check your convention could make here, described by what it consumes (``inputs``: the
        namespace variables and the checked object; ``functions``: the user's functions it calls by
        name) so that the one rule can weigh it against everything else, and a ``build()`` that
        returns its CheckPlan (it may run the user's code once, under the plan's own snapshot) or
        raises to be dropped.  ``refusal=`` instead of ``build`` when it cannot even be bound.

2.  Build the plan: bind the arguments with :mod:`.binding` (``bind_by_name``: the user's call first,
    then by name), snapshot what the user's code can reach (``ObjectSnapshot(roots)``, ``watch`` the
    arrays whose changes are to be reported), give the functions float64 working arrays, and wrap
    them in a ``ConventionProblem(plan, snapshot.rng, work, evaluate, gradients, unread)``:
    ``work`` maps block names to the float64 arrays the engine perturbs, ``evaluate()`` returns the
    cost, ``gradients()`` returns ``{block: (analytic array or None, key for the note)}``.
    Fill :class:`~.checkplan.Hints` for the suspect lines (``backward_fn``, ``positions``).

3.  Register it: add the module to ``ADAPTERS`` below, one line.  The order is the order in which
    ``resolve`` is asked (more specific conventions first); the ranking does not depend on it.

Tests: drive it through the real shell (tests/conftest.py), correct and planted-bug code, several
sizes and seeds.
"""

from __future__ import annotations

import functools

from . import course, flat, layers, losses, objects, ranking
from .cell import CellFacts
from .checkplan import CheckPlan, Hints, Request

#: The registered adapters, asked in this order for a flagged plan; all offer candidates to the
#: ranking.  A new convention adds one line.
ADAPTERS = (
    objects,
    losses,
    layers,
    flat,
    course,  # last: the name-based fallback
)


def make(request: Request) -> CheckPlan:
    """The plan for this check: the first adapter whose ``resolve`` takes the flags, else the winner
    of one ranking over every adapter's candidates."""
    __tracebackhide__ = True  # noqa: F841
    for adapter in ADAPTERS:
        found = adapter.resolve(request)
        if found is not None:
            break
    else:
        found = None if request.flagged else _from_calls(request)
        if found is None:
            pool = ranking.merged(
                [c for adapter in ADAPTERS for c in adapter.candidates(request)], request.cell
            )
            found = ranking.choose(pool, request.written, functools.partial(course.nothing_fits, pool))
    if found.snapshot is not None:
        request.keep(found.snapshot)
    return found


def _from_calls(request: Request):
    """The user's call is the plan: the most recent call an adapter recognises (``from_call``), in the
    %%gradcheck cell, then in the history; the history only when the cell itself wrote nothing the
    ranking could weigh.  None: no such call (or an adapter raised ``Unfit``): the ranking decides."""
    __tracebackhide__ = True  # noqa: F841
    for call in request.cell.history:
        if call.cell is not None and request.written:
            return None
        for adapter in ADAPTERS:
            from_call = getattr(adapter, "from_call", None)
            try:
                found = from_call(call, request) if from_call is not None else None
            except ranking.Unfit:
                return None
            if found is not None:
                return found
    return None


__all__ = ["ADAPTERS", "CellFacts", "CheckPlan", "Hints", "Request", "make"]
