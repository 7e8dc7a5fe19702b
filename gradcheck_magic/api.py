"""``gradcheck()``: the one implementation behind the magic and behind scripts, as named stages.

    grading.capture     a grading run is handed the inputs first, to re-run the check (grading.py)
    settings.validated  every setting, one validation                     (settings.py)
    Snapshot            every reachable array + np.random, before any user call (safety.py)
    plan                which functions/parameters, and why; probes under the snapshot (discovery.py);
                        layer functions, models and layer objects plan in conventions.py
    preflight           baseline at θ; refuses what cannot be checked, by name     (here, problem.py)
    sweep (run)         central differences, RNG replayed per evaluation   (engine.py, problem.py)
    judge               the verdict rule                                   (engine.py)
    diagnosed           hints for failing blocks, suspect lines      (diagnosis.py, suspects.py)
    result              GradCheckResult, built once, after the restore     (result.py)

The restore runs in a ``finally``; what it could only rebind is reported in the result's warnings.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np

from . import conventions, discovery, grading
from .diagnosis import Context, diagnose
from .engine import Engine, EvaluationError, fmt_index, overall_difference
from .errors import GradCheckError
from .problem import Problem, arrays_in, coarse_blocks, dry_run_returns_cost, silenced
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
    ``prefer`` names variables to favour as the parameters (the magic passes those its cell assigned);
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
        # flags or an object name that pick a layer/object/flat-vector convention decide outright;
        # its planner snapshots the objects it reaches
        convention = conventions.resolve(namespace, forward, backward, cost, params, target, prefer)
        if convention is None:
            # without flags the conventions are candidates, ranked with the course families by one rule
            flagged = any((forward, backward, cost, params, target))
            others = [] if flagged else conventions.candidates(namespace, prefer)
            try:
                reach = discovery.reachable(namespace, forward, backward, cost, params, prefer)
            except GradCheckError:
                if not others:
                    raise
                reach = (None, [])  # no course parameters: no course family will be probed
            snapshot = Snapshot(namespace, *reach)
            snapshots.append(snapshot)
            chosen = discovery.plan(
                namespace,
                forward,
                backward,
                cost,
                params,
                returns_cost=dry_run_returns_cost,
                prefer=prefer,
                others=others,
            )
            if isinstance(chosen, discovery.Plan):
                plan, problem = chosen, Problem(chosen, snapshot.rng)
            else:
                convention = chosen
        if convention is not None:
            snapshots.append(convention.snapshot)
            plan, problem = convention.plan, convention.problem
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
        raise exc.with_traceback(exc.__traceback__) from None
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
    )
    return result


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
    first: object
    cache: object


def preflight(plan, problem: Problem, snapshots: list, settings: Settings) -> Checked:
    """Evaluate once at θ and refuse, with a one-line reason, what cannot be checked."""
    __tracebackhide__ = True  # noqa: F841
    for binding in (plan.forward, getattr(plan, "backward", None), getattr(plan, "cost", None)):
        for arg in getattr(binding, "args", ()):
            if arg.source == discovery.VALUE:
                snapshots[-1].watch(arg.name, arg.value)
    j0, first, cache = problem.baseline()
    changed = _changes(snapshots)
    if changed:
        raise GradCheckError(
            f"{plan.forward.name} modified {', '.join(changed)} in place: a forward "
            "pass must not change its inputs (your arrays are restored)"
        )
    if not np.isfinite(j0):
        raise GradCheckError(
            f"the cost at the current parameters is {j0}: nothing can be verified "
            "(log(0) or an overflow in the forward or the cost?)"
        )
    blocks = problem.blocks(first, cache)
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
            f"{plan.forward.name} change a global or its inputs between calls?"
        )
    if not abs(again - j0) <= REPEAT_ULPS * np.finfo(float).eps * max(abs(j0), 1e-300):
        raise GradCheckError(
            f"the cost changed between two evaluations at the same parameters ({j0!r} then "
            f"{again!r}): {plan.forward.name} is not deterministic. Random draws must come from "
            "np.random's global state (replayed before every evaluation), not from an unseeded "
            "np.random.default_rng() or another source"
        )
    gradient_is_nonzero = any(b.comparable is not None and np.any(b.comparable) for b in blocks)
    with silenced():
        sensitive = not gradient_is_nonzero or problem.sensitivity(j0, cost_fn)
    if not sensitive:
        raise GradCheckError(
            f"the cost did not change when the parameters were perturbed: {plan.forward.name} "
            f"seems to ignore its {plan.params_name!r} argument (does it read a global variable "
            "instead?)"
        )
    return Checked(j0, blocks, cost_fn, first, cache)


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
            f"{plan.forward.name} reads {', '.join(coarse)} at float32 precision or coarser: "
            "a change smaller than float32's rounding, which float64 resolves, leaves the cost exactly "
            "as it was, so central differences would be mistaken for wrong gradients. Compute in float64 "
            "(no astype(np.float32) on parameters or activations, no float32 arrays mixed in)"
        )


def diagnosed(plan, problem: Problem, checked: Checked, run: Run, settings: Settings) -> tuple:
    """Hints for the failing blocks, and the lines to suspect for them."""
    ctx = Context(
        m=plan.m,
        lambd=_number(plan.value_of("lambd")),
        values={k: v for k, v in problem.pristine.items()},
        activations=[a for _, a in arrays_in((checked.first, checked.cache), "out")],
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
    if not hasattr(plan, "backward"):  # a layer / object convention
        if plan.backward_fn is None:
            return Finding()
        return find_suspects(plan.backward_fn, outcomes, ctx, plan.cost_fns, {}, plan.positions)
    scalars = {
        arg.name: float(arg.value)
        for arg in plan.backward.args
        if arg.source == discovery.VALUE
        and discovery.is_numeric_scalar(arg.value)
        and float(arg.value) not in (0.0, 1.0)
    }
    costs = [(plan.cost or plan.forward).fn]  # the function whose value is the cost
    return find_suspects(plan.backward.fn, outcomes, ctx, costs, scalars)


def _worst(o) -> str:
    i = o.worst_index
    return f"worst {fmt_index(o.name, i)}: analytic {o.analytic[i]:.4g} vs numeric {o.numeric[i]:.4g}"


def _number(value) -> Optional[float]:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


__all__ = ["gradcheck", "Settings", "GradCheckResult", "GradCheckError"]
