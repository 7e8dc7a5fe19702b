"""``gradcheck()``: the one implementation behind the magic and behind scripts, as named stages.

    grading.capture     a grading run is handed the inputs first, to re-run the check (grading.py)
    settings.validated  every setting, one validation                     (settings.py)
    Snapshot            every array, object and global the user's calls can reach + both random
                        generators, before any user call (safety.py)
    plan                which convention, functions, arguments and blocks, and why: one CheckPlan
                        from the adapters of the plan/ subpackage; probes under the snapshot
    preflight           baseline at θ; refuses what cannot be checked, by name     (here, problem.py)
    sweep (run)         central differences, RNG replayed per evaluation   (engine/, problem.py)
    judge               the verdict rule                                   (engine/judge.py)
    diagnosed           hints for failing blocks, suspect lines      (diagnosis.py, suspects.py)
    result              GradCheckResult, built once, after the restore     (result.py)

The restore runs in a ``finally``; what it could only rebind is reported in the result's warnings.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from . import grading
from . import plan as planning
from .diagnosis import Context, Hint, diagnose, zero_rows
from .engine import Engine, EvaluationError, fmt_index, overall_difference
from .errors import GradCheckError
from .plan.problem import Problem, arrays_in, coarse_blocks, silenced
from .result import GradCheckResult
from .safety import Snapshot
from .settings import Settings, step_problem, validated
from .suspects import Finding, find_suspects


def _as_name(namespace: dict, value, default: str) -> Optional[str]:
    """Flags may be names or the objects themselves (script use)."""
    if value is None or isinstance(value, str):
        return value
    name = getattr(value, "__name__", None) if callable(value) else None
    name = name if name and name != "<lambda>" else default
    namespace[name] = value
    return name


def gradcheck(
    namespace: Optional[dict] = None,
    *,
    forward=None,
    backward=None,
    cost=None,
    params=None,
    settings: Optional[Settings] = None,
    progress: Optional[Callable[[int, float], Callable[[int], None]]] = None,
    prefer=(),
    target=None,
    **overrides,
) -> GradCheckResult:
    """Check a hand-written backward against central differences.

    ``namespace`` is where names are looked up and arguments bound (a notebook's
    ``user_ns``, or ``globals()``); ``forward``/``backward``/``cost``/``params`` are
    names or objects; keyword ``overrides`` set fields of :class:`Settings`.
    ``progress(total_evaluations, estimated_seconds)`` may return a tick callback;
    ``prefer`` is what the user's cells wrote and called (the magic passes a ``plan.CellFacts``: the
    %%gradcheck cell's names and every call of it and of ``In``; a script may pass names to favour);
    ``target`` names a model or layer object to check (``%gradcheck model``), dotted names allowed.
    """
    # a grading run re-runs this check with its own copy after the last cell: hand it the inputs first
    grading.capture(
        namespace,
        forward=forward,
        backward=backward,
        cost=cost,
        params=params,
        settings=settings,
        prefer=prefer,
        target=target,
        **overrides,
    )
    namespace = namespace if isinstance(namespace, dict) else dict(namespace or {})
    settings = validated(settings, **overrides)
    if any(not isinstance(v, (str, type(None))) for v in (forward, backward, cost, params, target)):
        namespace = dict(namespace)
        target = _as_name(namespace, target, "model")
        forward = _as_name(namespace, forward, "forward")
        backward = _as_name(namespace, backward, "backward")
        cost = _as_name(namespace, cost, "cost")
        params = _as_name(namespace, params, "parameters")

    __tracebackhide__ = True  # noqa: F841 - IPython hides this frame from tracebacks
    started = time.perf_counter()
    snapshots = []  # each taken before the first user call it guards; all restored in the finally
    try:
        snapshots.append(Snapshot(namespace=namespace))  # both random states before any user call
        request = planning.Request(
            namespace, forward, backward, cost, params, target, planning.CellFacts.of(prefer), snapshots[0]
        )
        request.snapshots = snapshots
        plan = planning.make(request)
        problem = plan.problem
        checked = preflight(plan, problem, snapshots, settings)
        run = sweep(problem, checked, settings, progress)
        refuse_coarse(plan, checked, run)
        outcomes, finding = diagnosed(plan, problem, checked, run, settings)
        changed = _changes(snapshots)
        if changed:
            run.mutations.append(f"your code modified {', '.join(changed)} during the check; restored")
    except EvaluationError as err:
        exc = err.original
        exc._gradcheck_where = err.where
        raise exc.with_traceback(user_frames(exc.__traceback__)) from None
    except GradCheckError:
        raise
    except Exception as exc:  # the user's own error (a forward that raises, a property): their frames
        raise exc.with_traceback(user_frames(exc.__traceback__)) from None
    finally:
        # the latest first: the earliest snapshot, taken before any user call, has the last word
        restored = [note for s in reversed(snapshots) for note in (s.restore() or [])]
    warnings = list(problem.warnings) + run.mutations + restored
    result = GradCheckResult(
        outcomes,
        overall_difference(outcomes),
        settings,
        run.mode,
        run.evaluations,
        plan.describe(),
        warnings,
        run.interrupted,
        time.perf_counter() - started,
        finding=finding,
        sweep_seconds=run.seconds,
        plan=plan.summary(),
    )
    return result


PACKAGE = os.path.dirname(os.path.abspath(__file__))


def user_frames(tb):
    """The traceback from the first frame outside this package: a user's exception is shown from
    their own code, not from the plan or the engine that called it (unchanged when no frame of the
    user's is in it: a bug of the package's own shows where it is)."""
    first = tb
    while first is not None and os.path.abspath(first.tb_frame.f_code.co_filename).startswith(PACKAGE):
        first = first.tb_next
    return first if first is not None else tb


def _changes(snapshots) -> list:
    return list(dict.fromkeys(change for s in snapshots for change in s.changes()))


#: Two evaluations at the same θ may differ by this many ulps of |J| and still count as the same cost.
REPEAT_ULPS = 16


@dataclass
class Checked:
    """What preflight established: the baseline cost, the blocks and the cost function the engine calls."""

    j0: float
    blocks: list
    cost: Callable[[], float]
    zero_rows: list  # of the forward's output and cache, for the mask hint (see diagnosis.Context)


def preflight(plan, problem: Problem, snapshots: list, settings: Settings) -> Checked:
    """Evaluate once at θ and refuse, with a one-line reason, what cannot be checked."""
    __tracebackhide__ = True  # noqa: F841
    for name, value in plan.inputs:
        snapshots[-1].watch(name, value)
    j0, first, cache = problem.baseline()
    changed = _changes(snapshots)
    if changed:
        raise GradCheckError(
            f"{plan.forward} modified {', '.join(changed)} in place: a forward "
            "pass must not change its inputs (your arrays are restored)"
        )
    if not np.isfinite(j0):
        raise GradCheckError(
            f"the cost at the current parameters is {j0}: nothing can be verified "
            "(log(0) or an overflow in the forward or the cost?)"
        )
    blocks = problem.blocks(first, cache)
    rows = zero_rows(a for _, a in arrays_in((first, cache), "out"))
    del first, cache  # the activations are not held through the sweep
    refusal = step_problem(settings.epsilon, settings.fail_threshold, j0, blocks)
    if refusal:
        raise GradCheckError(refusal)
    cost_fn = problem.cost_function()
    with silenced():
        again = cost_fn()
    if not np.isfinite(again):
        raise GradCheckError(
            f"the cost is not finite ({again}) on a second evaluation at the same "
            f"parameters (it was {j0!r} the first time): nothing can be verified; does "
            f"{plan.forward} change a global or its inputs between calls?"
        )
    if not abs(again - j0) <= REPEAT_ULPS * np.finfo(float).eps * max(abs(j0), 1e-300):
        raise GradCheckError(
            f"the cost changed between two evaluations at the same parameters ({j0!r} then "
            f"{again!r}): {plan.forward} is not deterministic. Random draws must come from "
            "np.random's global state (replayed before every evaluation), not from an unseeded "
            "np.random.default_rng() or another source"
        )
    gradient_is_nonzero = any(b.comparable is not None and np.any(b.comparable) for b in blocks)
    with silenced():
        sensitive = not gradient_is_nonzero or problem.sensitivity(j0, cost_fn)
    if not sensitive:
        raise GradCheckError(
            f"the cost did not change when the parameters were perturbed: {plan.forward} "
            f"seems to ignore its {plan.params_name!r} argument (does it read a global variable "
            "instead?)"
        )
    return Checked(j0, blocks, cost_fn, rows)


@dataclass
class Run:
    """What the sweep produced."""

    outcomes: list
    mode: str
    evaluations: int
    interrupted: bool
    seconds: float
    mutations: list = field(default_factory=list)


def sweep(problem: Problem, checked: Checked, settings: Settings, progress) -> Run:
    """Central differences over every block, in the mode the engine chooses."""
    __tracebackhide__ = True  # noqa: F841
    engine = Engine(checked.blocks, checked.cost, settings, j0=checked.j0)
    mode = engine.choose_mode()
    tick_closer = None
    if progress is not None:
        planned = engine.planned_evaluations(mode)
        tick_closer = progress(planned, planned * max(problem.eval_seconds, 1e-7), mode)
        engine.progress = tick_closer
    started = time.perf_counter()
    try:
        with np.errstate(all="ignore"), silenced():  # overflow at θ±ε is reported per block
            outcomes, interrupted = engine.run(mode)
    finally:
        if tick_closer is not None and hasattr(tick_closer, "close"):
            tick_closer.close()
    return Run(outcomes, mode, engine.evaluations, interrupted, time.perf_counter() - started)


def refuse_coarse(plan, checked: Checked, run: Run) -> None:
    """A block that did not pass is probed for float32 rounding inside the forward (a float64 cost
    computed from parameters rounded to float32): its disagreement would be the rounding, never a
    wrong gradient.  Only doubtful blocks are probed, so a passing check pays nothing."""
    if run.interrupted:
        return
    doubtful = [b for b, o in zip(checked.blocks, run.outcomes) if o.status != "pass"]
    with np.errstate(all="ignore"), silenced():
        coarse = coarse_blocks(doubtful, checked.cost, checked.j0)
    if coarse:
        raise GradCheckError(
            f"{plan.forward} reads {', '.join(coarse)} at float32 precision or coarser: "
            "a change smaller than float32's rounding, which float64 resolves, leaves the cost exactly "
            "as it was, so central differences would be mistaken for wrong gradients. Compute in float64 "
            "(no astype(np.float32) on parameters or activations, no float32 arrays mixed in)"
        )


def diagnosed(plan, problem: Problem, checked: Checked, run: Run, settings: Settings) -> tuple:
    """Hints for the failing blocks, and the lines to suspect for them."""
    ctx = Context(
        m=plan.hints.m,
        lambd=_number(plan.hints.lambd),
        values={k: v for k, v in problem.pristine.items()},
        zero_rows=checked.zero_rows,
    )
    diagnose(checked.blocks, run.outcomes, ctx, settings.threshold, settings.fail_threshold)
    for o in run.outcomes:
        if o.status == "fail" and o.analytic is not None and o.worst_index is not None:
            o.hints.append(_worst(o))
    return run.outcomes, _suspects(plan, run.outcomes, ctx)


def _suspects(plan, outcomes, ctx) -> Finding:
    """Which lines to suspect.  Every failing block that has a gradient gets either a line or the
    reason none can be named; a failure of the analysis only means no line is singled out."""
    if any(not o.complete for o in outcomes):  # lines are told apart by which blocks are right
        finding = Finding()
        for o in outcomes:
            if o.status == "fail" and o.analytic is not None:
                finding.why_none[o.name] = "the check was interrupted before every block was checked"
        return finding
    try:
        finding = _find_suspects(plan, outcomes, ctx)
    except Exception:  # noqa: BLE001 - the check's verdicts stand without suspects
        finding = Finding()
    for o in outcomes:
        if o.status == "fail" and o.analytic is not None and o.name not in finding.ranked:
            finding.why_none.setdefault(o.name, "the backward's data flow could not be followed to it")
    return finding


def _find_suspects(plan, outcomes, ctx) -> Finding:
    hints = plan.hints
    if hints.backward_fn is None:
        return Finding()
    return find_suspects(hints.backward_fn, outcomes, ctx, hints.cost_fns, hints.scalars, hints.positions)


def _worst(o) -> Hint:
    i = o.worst_index
    return Hint(
        "worst", f"worst {fmt_index(o.name, i)}: analytic {o.analytic[i]:.4g} vs numeric {o.numeric[i]:.4g}"
    )


def _number(value) -> Optional[float]:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


__all__ = ["gradcheck", "Settings", "GradCheckResult", "GradCheckError"]
