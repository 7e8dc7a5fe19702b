"""The plan stage: from the namespace, the flags and the user's cells to one :class:`CheckPlan`.

Modules, top-down (each imports only those below it; tests/test_plan_layout.py keeps it so):

    __init__    make(): flags decide (``resolve``), else the user's latest call (``from_call``), else one
                ranking of every adapter's candidates (``candidates``); ADAPTERS is the registry
    objects     adapter: models and networks (``.params``, ``.loss``), layer objects, functions over them
    flat        adapter: a cost-and-gradient function on one flat vector, ``(f, fprime)`` pairs
    recurrent   adapter: layer functions with several outputs (cs231n's RNN/LSTM), C5W1's dict-in/out cells
    losses      adapter: losses with one gradient per array argument (word2vec, svm_loss_naive), a flat
                vector at any argument position (forward_backward_prop), from the user's latest call
    layers      adapter: cs231n layer-function pairs, cost = Σ out·dout
    course      adapter: the course's forward/backward/cost families over a dict of parameters
    ranking     the one rule that orders candidates, merges duplicates, probes only the best
    binding     the binder: each argument's value (the user's call, by name, the default); lookups
    problem     evaluation: float64 working copies, the cost closure, gradients paired with blocks
    checkplan   the interface: Request (what the user gave), CheckPlan (what every adapter produces)
    cell        the user's cells: what the %%gradcheck cell wrote, every call it and ``In`` made

How a check is planned (``make``):

1.  Flags or an object name: each adapter's ``resolve(request)`` in ADAPTERS order; the first plan wins.
2.  The user's call is the plan: ``request.cell.history`` holds every call of the %%gradcheck cell, then
    of the notebook's cells (``In``), newest first (:class:`~.cell.Call`: the function as written, each
    argument's text and syntax tree, the cell, and for a numerical-gradient helper on a lambda the call
    inside the lambda with the helper's ``x`` and ``dout``).  The newest call an adapter recognises
    (``from_call``) is the plan, on exactly its arguments (``binding.bind_call``: positional and keyword,
    values as they are now).  History calls count only when the %%gradcheck cell wrote nothing itself.
3.  Otherwise one ranking (:func:`.ranking.rank`) of every adapter's ``candidates``, after
    :func:`.ranking.merged` has made candidates that check the same arrays through the same function one.

Writing an adapter (a new convention, e.g. ``plan/recurrent.py``):

1.  Write a module with these functions, all taking the :class:`Request`:

    ``resolve(request) -> CheckPlan | None``
        The flags or the object name (``request.forward``, ``.backward``, ``.cost``, ``.params``,
        ``.target``) pick your convention: return its plan, already built; return None when they
        do not (the next adapter is asked); raise ``GradCheckError`` when they pick it but it cannot
        be checked (the message names what to fix).
    ``from_call(call, request) -> CheckPlan | None`` (optional)
        ``call`` is one of the user's calls (newest first).  Return None when it is not a call of your
        convention; else its plan, bound with ``bind_call(fn, call, request.namespace)`` (None when an
        argument cannot be read without running code: then bind by name).  ``request.cell.in_cell(call)``
        gives the other calls of that cell (the backward it called), ``request.cell.latest(pred)`` the
        newest call matching ``pred``; ``call.upstream`` is a helper's ``dout``.  Set the plan's
        ``source = call.describe()`` (the caption's "from:").  Raise ``ranking.Unfit`` to have the
        ranking decide instead.
    ``candidates(request) -> list[Candidate]``
        Without flags (return ``[]`` when ``request.flagged``): one :class:`~.ranking.Candidate`
        per check your convention could make here, described by what it consumes (``inputs``: the
        namespace variables and the checked object; ``functions``: the user's functions it calls by
        name) so that the one rule can weigh it against everything else, and a ``build()`` that
        returns its CheckPlan (it may run the user's code once, under the plan's own snapshot) or
        raises to be dropped.  ``refusal=`` instead of ``build`` when it cannot even be bound.
        ``arrays``/``reaches``/``defined`` let :func:`.ranking.merged` see it checks what another does.

2.  Build the plan: bind the arguments with :mod:`.binding` (``bind_call``, else ``bind_by_name``),
    refuse empty data (``refuse_empty``), snapshot what the user's code can reach
    (``safety.Snapshot(roots)``, the functions among the roots so that the globals they read are
    restored; ``watch`` the arrays whose changes are to be reported; ``stand_in``/``swap_in`` for
    float32 arrays an object reads), give the functions float64 working arrays, and wrap them in a
    ``ConventionProblem(plan, snapshot.draws, work, evaluate, gradients, unread)``: ``work`` maps
    block names to the float64 arrays the engine perturbs, ``evaluate()`` returns the cost,
    ``gradients()`` returns ``{block: (analytic array or None, key for the note)}``.  Integers and
    index arrays are data, never blocks.  Wrap each user function with
    ``problem.marked(fn, "f(x, w)")`` so that its exceptions say which call raised.  Fill
    :class:`~.checkplan.Hints` for the suspect lines (``backward_fn``, ``positions``).

3.  Register it: add the module to ``ADAPTERS`` below, one line.  The order is the order in which
    ``resolve`` and ``from_call`` are asked (more specific conventions first); the ranking does not
    depend on it.

Tests: drive it through the real shell (tests/conftest.py), correct and planted-bug code, several
sizes and seeds.
"""

from __future__ import annotations

import functools

from . import course, flat, layers, losses, objects, ranking, recurrent
from .cell import CellFacts
from .checkplan import CheckPlan, Hints, Request

#: The registered adapters, asked in this order for a flagged plan; all offer candidates to the
#: ranking.  A new convention adds one line.
ADAPTERS = (
    objects,
    recurrent,  # before layers: several outputs or a parameters dict, which layers' (out, cache) cannot take
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
