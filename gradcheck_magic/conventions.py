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
import types
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from .errors import GradCheckError, mark_call
from .problem import (
    Problem,
    is_scalar_like,
    silenced,
)

#: How deep the snapshot walks into objects, dicts and lists to find arrays to restore.
SNAPSHOT_DEPTH = 5
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
    snapshot: ObjectSnapshot
    plan: ConventionPlan
    problem: ConventionProblem

    def release(self) -> None:
        """Not chosen after all: put back what planning it changed (float64 copies swapped in)."""
        self.snapshot.restore()


def _is_plain_object(value) -> bool:
    return hasattr(value, "__dict__") and not isinstance(
        value, (type, types.ModuleType, types.FunctionType, types.MethodType, types.BuiltinFunctionType)
    )


class ObjectSnapshot:
    """Nothing lost for objects: every array reachable from the roots (object attributes,
    dict entries, list items) keeps its bits and dtype, every attribute, dict entry and list
    item is put back, and np.random's state is restored.  ``changes()`` reports only the
    *watched* arrays (parameters and inputs): layer objects legitimately rebind caches."""

    def __init__(self, roots: dict):
        self.roots = dict(roots)
        self.rng = np.random.get_state()
        self.arrays, self.containers, self.watched = [], [], []
        #: every place the walk saw an array: (label, container, key, array) in a dict, list or
        #: object (restore() puts these back, so they may be rebound), and (label, array) in a tuple
        self.slots, self.pinned = [], []
        seen = set()
        for label, value in roots.items():
            self._walk(label, value, 0, seen)

    def _walk(self, label, value, depth, seen):
        if id(value) in seen or depth > SNAPSHOT_DEPTH:
            return
        if isinstance(value, np.ndarray):
            seen.add(id(value))
            self.arrays.append((label, value, value.copy()))
            return
        if isinstance(value, dict):
            seen.add(id(value))
            self.containers.append((value, dict(value)))
            items = [(f"{label}[{k!r}]", k, v) for k, v in value.items()]
        elif isinstance(value, list):
            seen.add(id(value))
            self.containers.append((value, list(value)))
            items = [(f"{label}[{i}]", i, v) for i, v in enumerate(value)]
        elif isinstance(value, tuple):
            items = [(f"{label}[{i}]", None, v) for i, v in enumerate(value)]
        elif _is_plain_object(value) and type(value).__module__ not in ("builtins",):
            if type(value).__module__.split(".")[0] in ("numpy", "pandas", "IPython", "gradcheck_magic"):
                return
            seen.add(id(value))
            self.containers.append((value, dict(vars(value))))
            items = [(f"{label}.{k}", k, v) for k, v in vars(value).items()]
        else:
            return
        for item_label, key, item in items:
            if isinstance(item, np.ndarray):
                if isinstance(value, tuple):
                    self.pinned.append((item_label, item))
                else:
                    self.slots.append((item_label, value, key, item))
            self._walk(item_label, item, depth + 1, seen)

    def rebind(self, original: np.ndarray, replacement: np.ndarray) -> tuple:
        """Point every dict entry, list item and attribute the walk found holding ``original`` at
        ``replacement``; ``restore()`` points them back, from what it recorded before this.

        Returns (the places rebound, the places still holding ``original``: tuples, and entries
        whose container would not take the replacement)."""
        rebound, held = [], [label for label, a in self.pinned if a is original]
        for label, container, key, value in self.slots:
            if value is not original:
                continue
            if isinstance(container, (dict, list)):
                if not _holds(container, key, original):
                    continue  # rebound since the walk; restore() puts back what was recorded
                try:
                    container[key] = replacement
                except Exception:  # noqa: BLE001 - a container of the user's that refuses the item
                    held.append(label)
                    continue
                took = _holds(container, key, replacement)
            else:
                if vars(container).get(key) is not original:
                    continue
                vars(container)[key] = replacement
                took = getattr(container, key, None) is replacement
            (rebound if took else held).append(label)
        return rebound, held

    def watch(self, label: str, value) -> None:
        """Report changes of this array (a parameter or an input), not only restore it."""
        if isinstance(value, np.ndarray):
            if not any(value is a for _, a, _ in self.arrays):
                self.arrays.append((label, value, value.copy()))
            self.watched.append((label, value))

    def changes(self) -> list:
        saved = {id(a): s for _, a, s in self.arrays}
        return [
            label
            for label, a in self.watched
            if a.dtype != saved[id(a)].dtype or a.tobytes() != saved[id(a)].tobytes()
        ]

    def restore(self) -> None:
        for obj, items in self.containers:
            if isinstance(obj, dict):
                obj.clear()
                obj.update(items)
            elif isinstance(obj, list):
                obj[:] = items
            else:
                current = vars(obj)
                for extra in [k for k in current if k not in items]:
                    del current[extra]
                current.update(items)
        for _, arr, saved in self.arrays:
            if arr.tobytes() != saved.tobytes():
                arr[...] = saved
        np.random.set_state(self.rng)


def _holds(container, key, value) -> bool:
    """Does ``container[key]`` read as this very object?"""
    try:
        return container[key] is value
    except Exception:  # noqa: BLE001 - a user's container class may raise anything
        return False


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
        rng_state,
        work: dict,
        evaluate: Callable[[], object],
        gradients: Callable[[], dict],
        unread: Callable[[list], str],
        notes: Optional[dict] = None,
    ):
        self.plan = plan
        self.rng = rng_state
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
        evaluate, to_float, replay, rng, set_state = (
            self._evaluate,
            self.to_float,
            self.replay,
            self.rng,
            np.random.set_state,
        )

        def J():
            __tracebackhide__ = True  # noqa: F841
            if replay:
                set_state(rng)
            return to_float(evaluate())

        return J

    def blocks(self, first=None, cache=None) -> list:
        __tracebackhide__ = True  # noqa: F841 - IPython hides this frame from tracebacks
        np.random.set_state(self.rng)
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
        """Is any block read at all?  Each block with a nonzero gradient is nudged; when none of them
        changes the cost, the arrays the code reads are not the ones perturbed: say which, precisely.
        A block that alone does not move the cost is checked like any other: its true gradient may
        be zero (a bias feeding a batchnorm), and a nonzero analytic one then fails, with this note;
        unless it is a float64 copy swapped into an object, which the code may simply not read."""
        rng = np.random.default_rng(12345)
        nudged, unread = [], []
        for block in self._blocks:
            if block.comparable is None or not np.any(block.comparable):
                continue
            nudged.append(block)
            try:
                # a Gaussian direction: ±1 signs can all agree, and softmax ignores a shift of its biases
                block.work += (
                    NUDGE * np.maximum(np.abs(block.work), 1.0) * rng.standard_normal(block.work.shape)
                )
                if cost() == j0:
                    unread.append(block)
            finally:
                self._reset_work()
        swapped = [b for b in unread if b.name in self._notes]  # a float64 copy the code never saw
        if swapped or (unread and len(unread) == len(nudged)):
            raise GradCheckError(self._unread([b.name for b in swapped or unread]))
        for block in unread:
            block.notes.append(
                f"the cost did not change when {block.name} was nudged: its true gradient is zero "
                f"(a bias feeding a batchnorm), or the code reads another array than {block.name}"
            )
        return True


def dry_run(convention: Optional[Convention]) -> Convention:
    """A candidate's probe: evaluate its cost once, then put everything back as the planner left it
    (float64 copies it swapped into an object stay swapped in; the check's own snapshot puts the
    user's arrays back at the end).  It raises, to have the candidate dropped, when the user's code
    raises or the cost is not a single number (a cs231n ``model.loss(X)`` without labels returns
    scores)."""
    __tracebackhide__ = True  # noqa: F841
    if convention is None:
        raise GradCheckError("it does not fit this convention")
    planned = ObjectSnapshot(convention.snapshot.roots)
    try:
        with silenced():
            value = convention.problem._evaluate()
    except BaseException:
        planned.restore()
        convention.snapshot.restore()  # a candidate that is dropped leaves nothing swapped in
        raise
    planned.restore()
    if not is_scalar_like(value):
        convention.snapshot.restore()
        raise GradCheckError(
            f"{convention.plan.forward.name} returned {type(value).__name__}, not a single number: "
            "the cost must be a scalar"
        )
    return convention


def resolve(
    namespace: dict, forward=None, backward=None, cost=None, params=None, target=None, prefer=()
) -> Optional[Convention]:
    """The convention the flags or the object name pick, or None (no flag: the ranking decides)."""
    from . import layers, losses, objects

    found = objects.resolve(namespace, forward, backward, cost, params, target, prefer)
    if found is None and not target:
        found = losses.resolve(namespace, forward, backward, cost, params, prefer)
    if found is None:
        found = layers.resolve(namespace, forward, backward, cost, params, prefer)
    return found


def candidates(namespace: dict, prefer=()) -> list:
    """Without flags: every convention that could apply, for ``discovery.plan`` to rank with the course
    families (models, functions over layer objects, layer-function pairs, flat-vector costs and
    ``(f, fprime)`` pairs)."""
    from . import layers, losses, objects

    return (
        objects.candidates(namespace, prefer)
        + layers.candidates(namespace, prefer)
        + losses.candidates(namespace, prefer)
    )
