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

import functools
import inspect
import types
from typing import Optional

import numpy as np

from .conventions import Convention, ConventionPlan, ConventionProblem, ObjectSnapshot, Step, marked
from .discovery import PARAM_ALIASES, Candidate
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
    """The layer-function or flat-vector convention the flags pick, or None (no flag: the ranking
    weighs :func:`candidates`; a course pair: the course discovery)."""
    if cost or not forward:
        return None
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
    if bwd is not None and not params:
        params = _vector_for(namespace, forward, fwd, prefer)
    return flat_problem(namespace, forward, fwd, backward, bwd, params)


def _is_vector(value) -> bool:
    return _is_float_array(value) and value.ndim == 1


def _vector_for(namespace: dict, forward: str, fwd, prefer) -> Optional[str]:
    """The vector of ``-f f -b fprime`` without ``-p``: by the argument's name (None: flat_problem
    looks it up), else the one 1-D float array the cell assigned, else the namespace's only one.
    Several are refused with the list and the flag; a function that also takes parameters by name
    (the course's ``forward_propagation(x, theta)``) is left to the course discovery."""
    names = [p.name for p in _params(fwd)]
    if not names or names[0] in namespace or any(n in PARAM_ALIASES for n in names):
        return None
    vectors = _cell_vectors(namespace, prefer) or sorted(
        k for k, v in namespace.items() if not k.startswith("_") and _is_vector(v)
    )
    if len(vectors) > 1:
        raise GradCheckError(
            f"{forward}({names[0]}, ...): no `{names[0]}` in the namespace, and several float vectors "
            f"could be it ({', '.join(vectors)}): choose with -p/--params NAME"
        )
    return vectors[0] if vectors else None


def _cell_vectors(namespace: dict, prefer) -> list:
    """The 1-D float arrays the %%gradcheck cell assigned."""
    return sorted(n for n in prefer if not n.startswith("_") and _is_vector(namespace.get(n)))


def _user_function(value) -> bool:
    """A function written in the notebook (helpers imported from libraries never compete)."""
    return isinstance(value, types.FunctionType) and value.__module__ == "__main__"


def candidates(namespace: dict, prefer=()) -> list:
    """Without flags, what the ranking weighs from here; only what the %%gradcheck cell points at:
    the layer-function pairs whose array arguments the cell assigned, the cost functions and the
    ``(f, fprime)`` pairs whose vector it assigned."""
    if not prefer:
        return []
    return (
        _layer_candidates(namespace, prefer)
        + _flat_candidates(namespace, prefer)
        + _pair_candidates(namespace, prefer)
    )


def _layer_candidates(namespace: dict, prefer) -> list:
    """``affine_forward``/``affine_backward`` when the cell assigned every float array it takes."""
    found = []
    for name, fn in namespace.items():
        if name.startswith("_") or "forward" not in name or not callable(fn):
            continue
        mirrored = name.replace("forward", "backward")
        bwd = namespace.get(mirrored)
        if not (callable(bwd) and is_layer_backward(bwd)):
            continue
        required = [p.name for p in _params(fn) if p.default is p.empty]
        arrays = [n for n in required if _is_float_array(namespace.get(n))]
        if not (arrays and all(n in namespace for n in required) and all(n in prefer for n in arrays)):
            continue
        args = bind_by_name(fn, namespace, name)
        found.append(
            Candidate(
                name,
                f"-f {name} -b {mirrored}",
                "layer functions",
                inputs=frozenset(n for n, _ in args),
                functions=(name, mirrored),
                local=_user_function(fn),
                build=functools.partial(layer_problem, namespace, name, fn, mirrored, bwd),
            )
        )
    return found


def _flat_candidates(namespace: dict, prefer) -> list:
    """A cost/loss function whose first argument is a 1-D vector the cell assigned (``nn_params``);
    it must return ``(J, grad)`` to stay."""
    found = []
    for name, fn in namespace.items():
        low = name.lower()
        if name.startswith("_") or not _user_function(fn) or not ("cost" in low or "loss" in low):
            continue
        if "forward" in low or "backward" in low:
            continue
        first = _params(fn)[:1]
        if not (first and first[0].name in prefer and _is_vector(namespace.get(first[0].name))):
            continue
        found.append(_flat_candidate(namespace, name, fn, None, None, first[0].name, "cost functions"))
    return found


#: How a separate gradient is named after its function (scipy's ``check_grad(f, fprime, x0)``).
GRADIENT_NAMES = ("{}prime", "{}_prime", "grad_{}", "{}_grad", "{}_gradient")
#: Pairs named by habit rather than after each other.
NAMED_PAIRS = (("f", "grad"), ("cost", "grad"), ("loss", "grad"), ("fun", "jac"), ("func", "grad"))


def _pair_candidates(namespace: dict, prefer) -> list:
    """``f``/``fprime`` (``f``/``grad_f``, ``cost``/``grad``, ``fun``/``jac``) on a vector the cell
    assigned: ``f``'s argument by name, else each 1-D float array the cell assigned (several are
    several candidates, which the ranking refuses with their ``-p`` flags)."""
    found = []
    for name, fn in namespace.items():
        low = name.lower()
        if name.startswith("_") or not _user_function(fn) or "forward" in low or "backward" in low:
            continue
        partners = [t.format(name) for t in GRADIENT_NAMES] + [g for f, g in NAMED_PAIRS if f == name]
        names = [p.name for p in _params(fn)]
        if not names or any(n in PARAM_ALIASES for n in names[1:]):
            continue
        if names[0] in namespace:
            vectors = [names[0]] if names[0] in prefer and _is_vector(namespace[names[0]]) else []
        else:
            vectors = _cell_vectors(namespace, prefer)
        for partner in partners:
            if not _user_function(namespace.get(partner)):
                continue
            gradient, kind = namespace[partner], "function pairs"
            for vector in vectors:
                found.append(_flat_candidate(namespace, name, fn, partner, gradient, vector, kind))
    return found


def _flat_candidate(namespace, forward, fwd, backward, bwd, vector, kind) -> Candidate:
    label = forward if bwd is None else f"{forward} / {backward}"
    choose = f"-f {forward}" + (f" -b {backward}" if bwd is not None else "")
    first = _params(fwd)[0].name
    if vector != first:
        label, choose = f"{label} on {vector}", f"{choose} -p {vector}"
    try:
        rest = bind_by_name(fwd, {**namespace, first: namespace[vector]}, forward)[1:]
    except GradCheckError as exc:
        return Candidate(label, choose, kind, frozenset([vector]), refusal=str(exc))
    return Candidate(
        label,
        choose,
        kind,
        inputs=frozenset([vector, *(n for n, _ in rest)]),
        functions=(forward,) if bwd is None else (forward, backward),
        build=functools.partial(_flat_fits, namespace, forward, fwd, backward, bwd, vector),
    )


def _flat_fits(namespace, forward, fwd, backward, bwd, vector) -> Convention:
    """A flat candidate's probe: ``f`` returns ``(J, grad)`` (or ``J``, and ``fprime`` a gradient of
    the vector's size), else it is dropped."""
    __tracebackhide__ = True  # noqa: F841
    found = flat_problem(namespace, forward, fwd, backward, bwd, vector)
    if found is None:
        wanted = "a single number" if bwd is not None else "(cost, gradient)"
        raise GradCheckError(f"{forward} does not return {wanted} for {vector}")
    if bwd is not None:
        try:
            with silenced():
                grad, _ = found.problem._gradients()[vector]
        finally:
            found.snapshot.restore()
            found.problem._reset_work()
        size = np.size(namespace[vector])
        if np.size(grad) != size:
            raise GradCheckError(f"{backward} returned {np.size(grad)} numbers for the {size} of {vector}")
    return found


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
    if bwd is not None and vector.ndim != 1 and not params:
        return None  # a separate (f, fprime) pair is scipy's style: a 1-D vector, unless -p names it
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
