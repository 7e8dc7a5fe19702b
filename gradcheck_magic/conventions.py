"""Conventions beyond the course: layer functions, models, layer objects and flat vectors.

``resolve()`` is what ``api.gradcheck`` asks first: when the flags or the positional
object name pick a layer/object/flat-vector convention, it returns that
:class:`Convention` (snapshot, plan, problem), and the flags decide outright.  Without
flags it returns ``None``, and ``candidates()`` describes every convention that could
apply as a :class:`~.discovery.Candidate`; ``discovery.plan`` ranks them with the
course families by its one rule.  The planners themselves live in :mod:`.layers`
(functions) and :mod:`.objects` (objects whose methods read their own arrays).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from .errors import GradCheckError, mark_call
from .problem import (
    Problem,
    is_scalar_like,
    silenced,
)
from .safety import Snapshot

#: Relative size of the all-entries nudge that asks "does the cost read this block at all?".
NUDGE = 1e-3


@dataclass
class Step:
    """Stands in for a discovery ``Binding`` where api.py only needs a name."""

    name: str


@dataclass
class ConventionPlan:
    """What api.py reads from a plan: a description, the names and values for the hints."""

    description: str
    forward: Step
    params_name: str
    params: dict  # block name -> the user's original array (for the dtype notes)
    values: dict = field(default_factory=dict)
    m: Optional[int] = None
    #: for the suspect lines: the user's backward (function or bound method), the functions whose
    #: value is the cost, and each block's place in a tuple the backward returns
    backward_fn: Optional[Callable] = None
    cost_fns: tuple = ()
    positions: Optional[dict] = None
    reason: str = ""  # why the ranking chose it over the other candidates ("" when it was alone)

    def describe(self) -> str:
        return self.description

    def value_of(self, arg: str):
        return self.values.get(arg)


@dataclass
class Convention:
    snapshot: Snapshot
    plan: ConventionPlan
    problem: ConventionProblem

    def release(self) -> None:
        """Not chosen after all: put back what planning it changed (float64 copies swapped in)."""
        self.snapshot.restore()


def marked(fn: Callable, signature: str) -> Callable:
    """Call ``fn``; an exception remembers which of the user's calls raised."""

    def run(*args, **kwargs):
        __tracebackhide__ = True  # noqa: F841 - IPython hides this frame from tracebacks
        try:
            return fn(*args, **kwargs)
        except BaseException as exc:
            mark_call(exc, signature)
            raise

    return run


class ConventionProblem(Problem):
    """The Problem interface api.py drives, over blocks the conventions define.

    ``work`` maps block names to the float64 arrays ``evaluate()`` reads: working copies
    for functions, the user's own arrays (perturbed in place) for objects, or the float64
    copies swapped into an object for its float32/integer arrays.  ``gradients()``
    returns ``{block: (analytic or None, key)}`` at the unperturbed point.  ``unread(names)``
    words the error when perturbing a block does not change the cost.  ``notes`` are a block's
    own notes; they stand in for the generic dtype note (they say how that block was checked)."""

    def __init__(
        self,
        plan: ConventionPlan,
        draws,
        work: dict,
        evaluate: Callable[[], object],
        gradients: Callable[[], dict],
        unread: Callable[[list], str],
        notes: Optional[dict] = None,
    ):
        self.plan = plan
        self.rng = draws  # both random generators, replayed before every evaluation
        self.work = work
        self.pristine = {k: v.copy() for k, v in work.items()}
        self.params_obj = None
        self.replay = True
        self.warnings = []
        self.eval_seconds = 0.0
        self._evaluate, self._gradients, self._unread = evaluate, gradients, unread
        self._notes = notes or {}
        self._blocks = []

    def _changed_blocks(self) -> list:
        return [k for k, v in self.work.items() if v.tobytes() != self.pristine[k].tobytes()]

    def _reset_work(self):
        for k, v in self.work.items():
            v[...] = self.pristine[k]

    def baseline(self):
        __tracebackhide__ = True  # noqa: F841 - IPython hides this frame from tracebacks
        start = time.perf_counter()
        value = self._first_call(self._evaluate, "the arrays it is checked on")
        if not is_scalar_like(value):
            raise GradCheckError(
                f"{self.plan.forward.name} returned {type(value).__name__}, not a single "
                "number: the cost must be a scalar"
            )
        return self._accepted_cost(value, self.plan.forward.name, start), None, None

    def cost_function(self):
        evaluate, to_float = self._evaluate, self.to_float
        replay = self.rng.replay if self.replay else None

        def J():
            __tracebackhide__ = True  # noqa: F841
            if replay:
                replay()
            return to_float(evaluate())

        return J

    def blocks(self, first=None, cache=None) -> list:
        __tracebackhide__ = True  # noqa: F841 - IPython hides this frame from tracebacks
        self.rng.replay()
        grads = self._gradients()
        changed = self._changed_blocks()
        if changed:
            self._reset_work()
            self.warnings.append(
                f"the backward modified {', '.join(changed)} in place; the check used "
                "the original values and your arrays are restored"
            )
        self._blocks = []
        for name, work in self.work.items():
            grad, key = grads.get(name, (None, f"d{name}"))
            block = self._block(name, work, grad, key)
            if name in self._notes:
                block.notes[:] = self._notes[name]
            self._blocks.append(block)
        return self._blocks

    def sensitivity(self, j0: float, cost) -> bool:
        """Each block with a nonzero gradient must change the cost when nudged; when one does
        not, the arrays the code reads are not the ones perturbed: say which, precisely."""
        rng = np.random.default_rng(12345)
        unread = []
        for block in self._blocks:
            if block.comparable is None or not np.any(block.comparable):
                continue
            try:
                # a Gaussian direction: ±1 signs can all agree, and softmax ignores a shift of its biases
                block.work += (
                    NUDGE * np.maximum(np.abs(block.work), 1.0) * rng.standard_normal(block.work.shape)
                )
                if cost() == j0:
                    unread.append(block.name)
            finally:
                self._reset_work()
        if unread:
            raise GradCheckError(self._unread(unread))
        return True


def dry_run(convention: Optional[Convention]) -> Convention:
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
    except BaseException:
        snapshot.restore()  # a candidate that is dropped leaves nothing swapped in
        raise
    snapshot.restore()
    if not is_scalar_like(value):
        raise GradCheckError(
            f"{convention.plan.forward.name} returned {type(value).__name__}, not a single number: "
            "the cost must be a scalar"
        )
    snapshot.swap_in()  # the float64 copies again, refilled from the user's arrays
    return convention


def resolve(
    namespace: dict, forward=None, backward=None, cost=None, params=None, target=None, prefer=()
) -> Optional[Convention]:
    """The convention the flags or the object name pick, or None (no flag: the ranking decides)."""
    from . import layers, objects

    found = objects.resolve(namespace, forward, backward, cost, params, target, prefer)
    if found is None:
        found = layers.resolve(namespace, forward, backward, cost, params, prefer)
    return found


def candidates(namespace: dict, prefer=()) -> list:
    """Without flags: every convention that could apply, for ``discovery.plan`` to rank with the course
    families (models, functions over layer objects, layer-function pairs, flat-vector costs and
    ``(f, fprime)`` pairs)."""
    from . import layers, objects

    return objects.candidates(namespace, prefer) + layers.candidates(namespace, prefer)
