"""``gradcheck()``: the one implementation behind the magic and behind scripts.

It discovers (or takes) the functions and parameters, snapshots everything the
user owns, runs the engine and always restores, whatever happens.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Callable, Optional

import numpy as np

from . import conventions, discovery, grading
from .diagnosis import Context, diagnose
from .engine import Engine, EvaluationError, Settings, fmt_index, overall_difference
from .errors import GradCheckError
from .problem import Problem, arrays_in, dry_run_returns_cost, silenced
from .result import GradCheckResult
from .safety import Snapshot
from .suspects import Finding, find_suspects


def _as_name(namespace: dict, value, default: str) -> Optional[str]:
    """Flags may be names or the objects themselves (script use)."""
    if value is None or isinstance(value, str):
        return value
    name = getattr(value, "__name__", None) if callable(value) else None
    name = name if name and name != "<lambda>" else default
    namespace[name] = value
    return name


def gradcheck(namespace: Optional[dict] = None, *, forward=None, backward=None, cost=None,
              params=None, settings: Optional[Settings] = None,
              progress: Optional[Callable[[int, float], Callable[[int], None]]] = None,
              prefer=(), target=None, **overrides) -> GradCheckResult:
    """Check a hand-written backward against central differences.

    ``namespace`` is where names are looked up and arguments bound (a notebook's
    ``user_ns``, or ``globals()``); ``forward``/``backward``/``cost``/``params`` are
    names or objects; keyword ``overrides`` set fields of :class:`Settings`.
    ``progress(total_evaluations, estimated_seconds)`` may return a tick callback;
    ``prefer`` names variables to favour as the parameters (the magic passes those its cell assigned);
    ``target`` names a model or layer object to check (``%gradcheck model``), dotted names allowed.
    """
    namespace = namespace if isinstance(namespace, dict) else dict(namespace or {})
    unknown = set(overrides) - {f.name for f in dataclasses.fields(Settings)}
    if unknown:
        raise GradCheckError(f"unknown setting(s) {', '.join(sorted(unknown))}")
    settings = dataclasses.replace(settings or Settings(), **overrides)
    settings = grading.in_force(settings)  # a grading run's imposed settings win
    if any(not isinstance(v, (str, type(None))) for v in (forward, backward, cost, params, target)):
        namespace = dict(namespace)
        target = _as_name(namespace, target, "model")
        forward = _as_name(namespace, forward, "forward")
        backward = _as_name(namespace, backward, "backward")
        cost = _as_name(namespace, cost, "cost")
        params = _as_name(namespace, params, "parameters")

    __tracebackhide__ = True  # noqa: F841 - IPython hides this frame from tracebacks
    started = time.perf_counter()
    rng_before = np.random.get_state()
    snapshot = None
    tick_closer = None
    try:
        # issue 11: layer functions, models, layer objects and flat vectors have their own planners
        convention = conventions.resolve(namespace, forward, backward, cost, params, target, prefer)
        if convention is not None:
            snapshot, plan, problem = convention.snapshot, convention.plan, convention.problem
        else:
            # find the parameters first so that they are snapshotted before any user code runs
            pname, _ = discovery.find_parameters(namespace, params,
                                                 discovery.candidates(namespace, "forward", forward), prefer)
            snapshot = Snapshot(namespace, pname)
            plan = discovery.plan(namespace, forward, backward, cost, pname, returns_cost=dry_run_returns_cost)
            for b in (plan.forward, plan.backward, plan.cost):
                for arg, src, value, _ in (b.args if b else ()):
                    if src == discovery.VALUE:
                        snapshot.watch(arg, value)
            problem = Problem(plan, snapshot.rng)
        j0, first, cache = problem.baseline()
        changed = snapshot.changes()
        if changed:
            raise GradCheckError(f"{plan.forward.name} modified {', '.join(changed)} in place: a forward "
                                 "pass must not change its inputs (your arrays are restored)")
        if not np.isfinite(j0):
            raise GradCheckError(f"the cost at the current parameters is {j0}: nothing can be verified "
                                 "(log(0) or an overflow in the forward or the cost?)")
        blocks = problem.blocks(first, cache)
        cost_fn = problem.cost_function()
        with silenced():
            again = cost_fn()
        if not abs(again - j0) <= 16 * np.finfo(float).eps * max(abs(j0), 1e-300):
            raise GradCheckError(
                f"the cost changed between two evaluations at the same parameters ({j0!r} then "
                f"{again!r}): {plan.forward.name} is not deterministic. Random draws must come from "
                "np.random's global state (replayed before every evaluation), not from an unseeded "
                "np.random.default_rng() or another source")
        gradient_is_nonzero = any(b.comparable is not None and np.any(b.comparable) for b in blocks)
        with silenced():
            sensitive = not gradient_is_nonzero or problem.sensitivity(j0, cost_fn)
        if not sensitive:
            raise GradCheckError(
                f"the cost did not change when the parameters were perturbed: {plan.forward.name} "
                f"seems to ignore its {plan.params_name!r} argument (does it read a global variable "
                "instead?)")
        engine = Engine(blocks, cost_fn, settings, j0=j0)
        mode = engine.choose_mode(max(problem.eval_seconds, 1e-7))
        if progress is not None:
            planned = engine.planned_evaluations(mode)
            tick_closer = progress(planned, planned * max(problem.eval_seconds, 1e-7))
            engine.progress = tick_closer
        sweep_started = time.perf_counter()
        with np.errstate(all="ignore"), silenced():  # overflow at θ±ε is reported per block
            outcomes, interrupted = engine.run(mode)
        sweep_seconds = time.perf_counter() - sweep_started
        ctx = Context(m=plan.m, lambd=_number(plan.value_of("lambd")),
                      values={k: v for k, v in problem.pristine.items()},
                      activations=[a for _, a in arrays_in((first, cache), "out")])
        diagnose(blocks, outcomes, ctx, settings.threshold, settings.fail_threshold)
        for o in outcomes:
            if o.status == "fail" and o.analytic is not None and o.worst_index is not None:
                o.hints.append(_worst(o))
        finding = _suspects(plan, outcomes, ctx)
        warnings = list(problem.warnings)
        changed = snapshot.changes()
        if changed:
            warnings.append(f"your code modified {', '.join(changed)} during the check; restored")
        result = GradCheckResult(outcomes, overall_difference(outcomes), settings, mode,
                                 engine.evaluations, plan.describe(), warnings, interrupted,
                                 time.perf_counter() - started, finding=finding)
        result.sweep_seconds = sweep_seconds
        grading.record(result)  # the headless checker grades only checks recorded here
        return result
    except EvaluationError as err:
        exc = err.original
        exc._gradcheck_where = err.where
        raise exc.with_traceback(exc.__traceback__) from None
    finally:
        if tick_closer is not None and hasattr(tick_closer, "close"):
            tick_closer.close()
        if snapshot is not None:
            snapshot.restore()
        else:
            np.random.set_state(rng_before)


def _suspects(plan, outcomes, ctx) -> Optional[Finding]:
    """Which lines to suspect; a failure of the analysis only means no line is singled out."""
    try:
        if not hasattr(plan, "backward"):  # a layer / object convention
            if plan.backward_fn is None:
                return None
            return find_suspects(plan.backward_fn, outcomes, ctx, plan.cost_fns, {}, plan.positions)
        scalars = {arg: float(v) for arg, src, v, _ in plan.backward.args
                   if src == discovery.VALUE and discovery.is_numeric_scalar(v) and float(v) not in (0.0, 1.0)}
        costs = [(plan.cost or plan.forward).fn]  # the function whose value is the cost
        return find_suspects(plan.backward.fn, outcomes, ctx, costs, scalars)
    except Exception:  # noqa: BLE001 - the check's verdicts stand without suspects
        return None


def _worst(o) -> str:
    i = o.worst_index
    return f"worst {fmt_index(o.name, i)}: analytic {o.analytic[i]:.4g} vs numeric {o.numeric[i]:.4g}"


def _number(value) -> Optional[float]:
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


__all__ = ["gradcheck", "Settings", "GradCheckResult", "GradCheckError"]
