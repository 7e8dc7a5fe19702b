"""Layer functions (cs231n) and cost-and-gradient functions on one flat vector.

Layer functions: ``out, cache = affine_forward(x, w, b)``, ``dx, dw, db =
affine_backward(dout, cache)``.  The check is of the vector-Jacobian product: cost
= Σ out·dout, every float array argument a block named by its argument, paired
with the backward's tuple by position; dicts and integers pass through (a fresh
copy of each dict per call, so batchnorm's running averages never leak).

Flat vectors and loss layers: ``J, grad = nnCostFunction(nn_params, ...)``,
scipy's ``fun(x) -> (f, g)``, ``softmax_loss(x, y) -> (loss, dx)``, or a separate
``(f, fprime)`` pair: one block, the first argument.  Functions get float64
working copies; the user's arrays are never touched.
"""

from __future__ import annotations

import inspect
from typing import Optional

import numpy as np

from .conventions import Convention, ConventionPlan, ConventionProblem, ObjectSnapshot, Step, marked
from .errors import GradCheckError
from .objects import bind_by_name
from .problem import is_scalar_like, silenced

#: Argument names of a backward that receive the forward's cache.
CACHE_ARGS = ("cache", "caches")
#: Seed of the upstream gradient drawn when the namespace has none of the output's shape.
UPSTREAM_SEED = 0


def _is_float_array(value) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.size > 0


def _params(fn) -> list:
    try:
        return [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.KEYWORD_ONLY)
        ]
    except (TypeError, ValueError):
        return []


def is_layer_backward(fn) -> bool:
    """``backward(dout, cache)``: two arguments, one of them the forward's cache."""
    names = [p.name for p in _params(fn)]
    return len(names) == 2 and any(n in CACHE_ARGS for n in names)


def _function(namespace: dict, name: str, flag: str):
    if name not in namespace:
        return None
    value = namespace[name]
    if not callable(value):
        raise GradCheckError(f"{flag} {name}: {name!r} is a {type(value).__name__}, not a function")
    return value


def resolve(namespace: dict, forward=None, backward=None, cost=None, params=None, prefer=()):
    """A layer-function or flat-vector convention for this line, or None (course conventions)."""
    if cost:
        return None
    if not forward:
        if backward or params:
            return None
        return _unflagged_layer(namespace, prefer) or _unflagged_flat(namespace, prefer)
    fwd = _function(namespace, forward, "-f/--forward")
    if fwd is None:
        return None
    mirrored = forward.replace("forward", "backward")
    bwd = (
        _function(namespace, backward or mirrored, "-b/--backward")
        if (backward or mirrored != forward)
        else None
    )
    if bwd is not None and is_layer_backward(bwd) and not params:
        return layer_problem(namespace, forward, fwd, backward or mirrored, bwd)
    if backward and bwd is None:
        return None
    if bwd is not None and not backward:
        return None  # a course pair found by its mirrored name
    return flat_problem(namespace, forward, fwd, backward, bwd, params)


def _unflagged_layer(namespace: dict, prefer) -> Optional[Convention]:
    """Without flags: the layer pair whose array arguments the cell itself assigned."""
    if not prefer:
        return None
    fits = []
    for name, fn in namespace.items():
        if name.startswith("_") or "forward" not in name or not callable(fn):
            continue
        bwd = namespace.get(name.replace("forward", "backward"))
        if not (callable(bwd) and is_layer_backward(bwd)):
            continue
        required = [p.name for p in _params(fn) if p.default is p.empty]
        arrays = [n for n in required if _is_float_array(namespace.get(n))]
        if arrays and all(n in namespace for n in required) and all(n in prefer for n in arrays):
            fits.append((sum(n in prefer for n in required), name))
    if not fits:
        return None
    # the pair that uses the most of the cell's variables (batchnorm's bn_param beats relu's x alone)
    best = max(score for score, _ in fits)
    fits = sorted(name for score, name in fits if score == best)
    if len(fits) > 1:
        raise GradCheckError(
            f"ambiguous: several layer functions fit the cell's variables "
            f"({', '.join(fits)}); choose with -f/--forward NAME"
        )
    name = fits[0]
    mirrored = name.replace("forward", "backward")
    return layer_problem(namespace, name, namespace[name], mirrored, namespace[mirrored])


def _unflagged_flat(namespace: dict, prefer) -> Optional[Convention]:
    """Without flags: the one cost/loss function whose first argument is a flat vector the cell
    assigned (``nn_params``), when it returns ``(J, grad)``."""
    fits = []
    for name, fn in namespace.items():
        low = name.lower()
        if name.startswith("_") or not callable(fn) or not ("cost" in low or "loss" in low):
            continue
        if "forward" in low or "backward" in low or getattr(fn, "__module__", None) != "__main__":
            continue
        first = _params(fn)[:1]
        value = namespace.get(first[0].name) if first else None
        if first and first[0].name in prefer and _is_float_array(value) and value.ndim == 1:
            fits.append(name)
    if len(fits) > 1:
        raise GradCheckError(
            f"ambiguous: several cost functions take the cell's vector ({', '.join(sorted(fits))}); "
            "choose with -f/--forward NAME"
        )
    return flat_problem(namespace, fits[0], namespace[fits[0]], None, None, None) if fits else None


def _pass_through(value):
    """Dicts are copied for each call (batchnorm stores running averages in its bn_param)."""
    return dict(value) if isinstance(value, dict) else value


def layer_problem(namespace, forward, fwd, backward, bwd) -> Convention:
    args = bind_by_name(fwd, namespace, forward)
    snapshot = ObjectSnapshot(dict(args))
    for n, v in args:
        snapshot.watch(n, v)
    blocks = [n for n, v in args if _is_float_array(v)]
    if not blocks:
        raise GradCheckError(f"{forward} takes no float array argument: there is nothing to check")
    work = {n: np.array(v, dtype=np.float64, order="C") for n, v in args if n in blocks}
    fwd_call = marked(fwd, f"{forward}({', '.join(n for n, _ in args)})")
    bwd_names = [p.name for p in _params(bwd)]
    upstream_name = next(n for n in bwd_names if n not in CACHE_ARGS)
    bwd_call = marked(bwd, f"{backward}({', '.join(bwd_names)})")

    def call():
        __tracebackhide__ = True  # noqa: F841
        out = fwd_call(*[work[n] if n in work else _pass_through(v) for n, v in args])
        if not (isinstance(out, tuple) and len(out) == 2):
            raise GradCheckError(
                f"{forward} returned {type(out).__name__}; a layer function returns (out, cache)"
            )
        return out

    try:
        with silenced():
            first = np.asarray(call()[0], dtype=np.float64)
    finally:
        snapshot.restore()
    value = namespace.get(upstream_name)
    if isinstance(value, np.ndarray) and value.shape == first.shape:
        upstream = np.array(value, dtype=np.float64)
        how = f"{upstream_name} from the namespace"
    else:
        upstream = np.random.default_rng(UPSTREAM_SEED).standard_normal(first.shape)
        how = f"{upstream_name}: seeded random {first.shape} (none of that shape in the namespace)"

    def evaluate():
        return float(np.sum(np.asarray(call()[0], dtype=np.float64) * upstream))

    def gradients():
        __tracebackhide__ = True  # noqa: F841
        _, cache = call()
        by_name = {upstream_name: upstream.copy()}
        returned = bwd_call(*[by_name.get(n, cache) for n in bwd_names])
        items = list(returned) if isinstance(returned, (tuple, list)) else [returned]
        return {
            n: (items[i] if i < len(items) else None, f"{backward}(...)[{i}]" if len(items) > 1 else f"d{n}")
            for i, n in enumerate(blocks)
        }

    def unread(names):
        return (
            f"{forward}'s output did not change when {names[0]} was perturbed: is it an argument it ignores?"
        )

    plan = ConventionPlan(
        f"{forward}({', '.join(n for n, _ in args)}) → Σ out·{upstream_name}, "
        f"{backward}({', '.join(bwd_names)}); {how}",
        Step(forward),
        ", ".join(blocks),
        {n: v for n, v in args if n in blocks},
        values=dict(args),
        backward_fn=bwd,
        positions={n: i for i, n in enumerate(blocks)},
    )
    problem = ConventionProblem(plan, snapshot.rng, work, evaluate, gradients, unread)
    return Convention(snapshot, plan, problem)


def flat_problem(namespace, forward, fwd, backward, bwd, params) -> Optional[Convention]:
    """``J, grad = f(theta, ...)`` or ``f(theta, ...)`` with ``fprime(theta, ...)``: one block, theta."""
    params_list = _params(fwd)
    if not params_list:
        return None
    first_name = params_list[0].name
    vector_name = params or first_name
    vector = namespace.get(vector_name)
    if not _is_float_array(vector) or (bwd is None and vector_name not in namespace):
        return None
    if bwd is not None and vector.ndim != 1:
        return None  # a separate (f, fprime) pair is scipy's style: a 1-D vector
    rest = bind_by_name(fwd, {**namespace, first_name: vector}, forward)[1:]
    snapshot = ObjectSnapshot({vector_name: vector, **dict(rest)})
    snapshot.watch(vector_name, vector)
    for n, v in rest:
        snapshot.watch(n, v)
    work = np.array(vector, dtype=np.float64, order="C")
    others = [_pass_through(v) for _, v in rest]
    arg_text = ", ".join([first_name] + [n for n, _ in rest])
    fwd_call = marked(fwd, f"{forward}({arg_text})")
    try:
        with silenced():
            out = fwd_call(work, *others)
    finally:
        snapshot.restore()
        work[...] = vector
    if bwd is None:
        if not (
            isinstance(out, tuple)
            and len(out) == 2
            and is_scalar_like(out[0])
            and np.size(out[1]) == work.size
        ):
            return None
    elif not is_scalar_like(out):
        return None
    bwd_call = marked(bwd, f"{backward}({arg_text})") if bwd is not None else None

    def evaluate():
        __tracebackhide__ = True  # noqa: F841
        value = fwd_call(work, *others)
        return value[0] if isinstance(value, tuple) else value

    def gradients():
        __tracebackhide__ = True  # noqa: F841
        grad = bwd_call(work, *others) if bwd_call else fwd_call(work, *others)[1]
        if grad is not None and np.size(grad) == work.size and np.shape(grad) != work.shape:
            grad = np.reshape(grad, work.shape)  # (n, 1) columns for a flat vector
        return {vector_name: (grad, f"{backward}(...)" if bwd_call else f"{forward}(...)[1]")}

    def unread(names):
        return f"{forward} did not change when {vector_name} was perturbed: is it an argument it ignores?"

    description = (
        f"{forward}({arg_text}), {backward}({arg_text})"
        if bwd_call
        else f"{forward}({arg_text}) → (cost, gradient)"
    ) + f"; one block {vector_name}"
    plan = ConventionPlan(
        description,
        Step(forward),
        vector_name,
        {vector_name: vector},
        values=dict(rest) | {"lambd": namespace.get("lambda_", namespace.get("lambd"))},
        backward_fn=bwd if bwd is not None else fwd,
        cost_fns=(fwd,),
        positions=None if bwd is not None else {vector_name: 1},  # J, grad = f(...)
    )
    problem = ConventionProblem(plan, snapshot.rng, {vector_name: work}, evaluate, gradients, unread)
    return Convention(snapshot, plan, problem)
