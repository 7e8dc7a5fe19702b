"""Layer functions (cs231n): ``out, cache = affine_forward(x, w, b)``, ``dx, dw, db =
affine_backward(dout, cache)``.

The check is of the vector-Jacobian product: cost = Σ out·dout, every float array argument a block
named by its argument, paired with the backward's tuple by position; dicts and integers pass through
(a fresh copy of each dict per call, so batchnorm's running averages never leak).  Functions get
float64 working copies; the user's arrays are never touched.
"""

from __future__ import annotations

import functools
import inspect
from typing import Optional

import numpy as np

from ..errors import GradCheckError
from ..safety import Snapshot
from .binding import (
    Given,
    bind_by_name,
    bind_call,
    function_named,
    is_float_array,
    pass_through,
    positional_params,
    refuse_empty,
    resolved,
    written_in_notebook,
)
from .cell import CellFacts
from .checkplan import CheckPlan, Hints, Request
from .problem import ConventionProblem, marked, silenced
from .ranking import Candidate

#: Argument names of a backward that receive the forward's cache.
CACHE_ARGS = ("cache", "caches")
#: Seed of the upstream gradient drawn when the namespace has none of the output's shape.
UPSTREAM_SEED = 0


def is_layer_backward(fn) -> bool:
    """``backward(dout, cache)``: two arguments, one of them the forward's cache."""
    names = [p.name for p in positional_params(fn)]
    return len(names) == 2 and any(n in CACHE_ARGS for n in names)


def resolve(request: Request) -> Optional[CheckPlan]:
    """The layer-function pair the flags pick (``-f affine_forward``, its backward named or mirrored),
    or None."""
    namespace, forward, backward = request.namespace, request.forward, request.backward
    if request.cost or not forward:
        return None
    fwd = function_named(namespace, forward, "-f/--forward")
    if fwd is None:
        return None
    name = backward or forward.replace("forward", "backward")
    if name == forward:
        return None
    bwd = function_named(namespace, name, "-b/--backward")
    if bwd is None or not is_layer_backward(bwd):
        return None
    call = request.cell.latest(lambda c: resolved(namespace, c.function) is fwd)
    given = bind_call(fwd, call, namespace) if call is not None else None
    upstream = _upstream_of(request, call, bwd) if call is not None else None
    return layer_problem(namespace, forward, fwd, name, bwd, given, upstream, request.params, request.cell)


def from_call(call, request: Request) -> Optional[CheckPlan]:
    """The pair the user's call tested, or None when ``call`` is not of a layer function: a forward
    (``affine_forward(x, w, b)``, or a numerical-gradient helper on ``lambda x:
    batchnorm_forward(x, gamma, beta, bn_param)[0]``) or a backward (``affine_backward(dout, cache)``).

    The forward's arguments are those of its latest call; the backward is the one the same cell
    calls (``batchnorm_backward_alt``), else the mirrored name; the upstream gradient is what that
    backward call, else the helper, was given."""
    namespace = request.namespace
    fn = resolved(namespace, call.function)
    if not callable(fn):
        return None
    if is_layer_backward(fn):
        bwd_name, fwd_name = call.function, _partner(namespace, call.function, "backward", "forward")
        bwd_call = call
    else:
        fwd_name = call.function
        bwd_call = next(
            (
                c
                for c in request.cell.in_cell(call)
                if is_layer_backward(resolved(namespace, c.function))
                and _partner(namespace, c.function, "backward", "forward") == fwd_name
            ),
            None,
        )
        bwd_name = bwd_call.function if bwd_call else _partner(namespace, fwd_name, "forward", "backward")
    fwd = resolved(namespace, fwd_name) if fwd_name else None
    bwd = resolved(namespace, bwd_name) if bwd_name else None
    if not (callable(fwd) and not is_layer_backward(fwd) and is_layer_backward(bwd)):
        return None
    fwd_call = call if fwd is fn else request.cell.latest(lambda c: resolved(namespace, c.function) is fwd)
    given = bind_call(fwd, fwd_call, namespace) if fwd_call is not None else None
    upstream = _upstream_of(request, fwd_call, bwd, bwd_call)
    found = layer_problem(namespace, fwd_name, fwd, bwd_name, bwd, given, upstream, cell=request.cell)
    found.source = (fwd_call or call).describe()
    return found


def _partner(namespace: dict, name: str, old: str, new: str) -> Optional[str]:
    """``affine_backward`` for ``affine_forward``; ``batchnorm_forward`` for
    ``batchnorm_backward_alt``; None when nothing of that name is a function."""
    if old not in name:
        return None
    for candidate in (name.replace(old, new), name[: name.index(old)] + new):
        if callable(resolved(namespace, candidate)):
            return candidate
    return None


def _upstream_of(request: Request, fwd_call, bwd, bwd_call=None):
    """``(label, value)`` of the upstream gradient the user gave: their backward call's (``dout``),
    else their numerical-gradient helper's third argument."""
    namespace = request.namespace
    if bwd_call is None:
        bwd_call = request.cell.latest(lambda c: resolved(namespace, c.function) is bwd)
    if bwd_call is not None:
        names = [p.name for p in positional_params(bwd)]
        for expr, name in zip(bwd_call.args, names):
            if name not in CACHE_ARGS:
                return expr.text, expr.value(namespace)
    helper = fwd_call.upstream if fwd_call is not None else None
    return (helper.text, helper.value(namespace)) if helper is not None else None


def candidates(request: Request) -> list:
    """Without flags, the layer-function pairs whose array arguments the %%gradcheck cell assigned."""
    if request.flagged or not request.written:
        return []
    return _layer_candidates(request.namespace, request.written)


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
        required = [p.name for p in positional_params(fn) if p.default is p.empty]
        arrays = [n for n in required if is_float_array(namespace.get(n))]
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
                local=written_in_notebook(fn),
                build=functools.partial(layer_problem, namespace, name, fn, mirrored, bwd),
            )
        )
    return found


def _arguments(fn, given: Given) -> tuple:
    """(parameter name of each positional value, or None past them (``*args``: data); the
    arguments by parameter name, in the signature's order)."""
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        params = []
    positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    names = (positional + [None] * len(given.args))[: len(given.args)]
    by_name = dict(zip(names, given.values)) | given.kwvalues
    by_name.pop(None, None)
    order = {p.name: i for i, p in enumerate(params)}
    return names, dict(sorted(by_name.items(), key=lambda kv: order.get(kv[0], len(order))))


def _is_array_argument(value) -> bool:
    """An array argument the backward returns a gradient for, or data such as integer indices."""
    return isinstance(value, np.ndarray) and value.dtype.kind in "biuf" and value.size > 0


def _upstream_for(namespace, upstream_name, upstream, shape) -> tuple:
    """(upstream gradient, how it was chosen): the user's (the ``dout`` their backward call or their
    numerical-gradient helper was given), else the namespace's (:func:`namespace_upstream`), when it
    has the output's shape; else a seeded random array."""
    if upstream is not None:
        label, value = upstream
        if isinstance(value, np.ndarray) and value.shape == shape:
            return np.array(value, dtype=np.float64), f"{label} from your call"
    names = [upstream_name, "dout"]
    found, others = namespace_upstream(namespace, names, shape)
    if found is not None:
        label = upstream_name if found == upstream_name else f"{upstream_name} = {found}"
        return np.array(namespace[found], dtype=np.float64), f"{label} from the namespace{others}"
    drawn = np.random.default_rng(UPSTREAM_SEED).standard_normal(shape)
    return drawn, f"{upstream_name}: seeded random {shape} ({no_upstream(names, shape)})"


def namespace_upstream(namespace: dict, names: list, shape) -> tuple:
    """(the namespace variable that is the upstream gradient, or None; the caption's note on the
    others).  ``names`` in order of preference: the backward's own argument (``dh``), ``d`` + the
    output's name, ``dout`` (cs231n names it so in some years).  The first that holds a real array of
    the output's shape is taken; when another of a different value also fits, the note names it, so
    the caption says in one line which was used and how to choose the other."""
    fits = [n for n in dict.fromkeys(names) if _fits(namespace.get(n), shape)]
    if not fits:
        return None, ""
    chosen = namespace[fits[0]]
    rivals = [n for n in fits[1:] if not _same_array(namespace[n], chosen)]
    if not rivals:
        return fits[0], ""
    return fits[0], (
        f" ({', '.join(rivals)} also {'fits' if len(rivals) == 1 else 'fit'}, with other values: "
        "pass it to the backward in a call of yours to use it)"
    )


def no_upstream(names: list, shape) -> str:
    """Why a seeded draw: ``no dh, dout of shape (3, 6, 5) in the namespace``."""
    return f"no {', '.join(dict.fromkeys(names))} of shape {shape} in the namespace"


def _fits(value, shape) -> bool:
    return isinstance(value, np.ndarray) and value.shape == shape and value.dtype.kind in "fiu"


def _same_array(a: np.ndarray, b: np.ndarray) -> bool:
    return a is b or bool(np.array_equal(a, b))


def layer_problem(
    namespace,
    forward,
    fwd,
    backward,
    bwd,
    given: Optional[Given] = None,
    upstream=None,
    only=None,
    cell: Optional[CellFacts] = None,
) -> CheckPlan:
    """The check of one layer-function pair.  ``given``: the forward's arguments as the user's call
    gave them (else bound by name); ``upstream``: ``(label, array)`` the user's backward call or
    helper was given; ``only``: the blocks ``-p`` chose (``"w"``, ``"w,b"``).

    Every float array argument is a block named by its parameter; integers, index arrays and dicts
    are data.  The backward's tuple pairs by argument position: its k-th item is the gradient of the
    k-th array argument (an integer ``x`` still has its ``dx``), or of the k-th float one when it
    returns exactly one per float array (``word_embedding_backward`` returns only ``dW``)."""
    given = given or Given(bind_by_name(fwd, namespace, forward))
    names, arguments = _arguments(fwd, given)
    refuse_empty(arguments.items())
    functions = {forward: fwd, **({backward: bwd} if bwd is not None else {})}
    snapshot = Snapshot({**functions, **dict(arguments)})
    for n, v in arguments.items():
        snapshot.watch(n, v)
    floats = [n for n, v in arguments.items() if is_float_array(v)]
    arrays = [n for n, v in arguments.items() if _is_array_argument(v)]
    blocks = _chosen(forward, floats, arguments, only)
    work = {n: np.array(arguments[n], dtype=np.float64, order="C") for n in blocks}
    arg_text = given.text() or ", ".join(arguments)
    bound = cell.provenance(n for n, _ in given.items()) if cell is not None else ""
    fwd_call = marked(fwd, f"{forward}({arg_text}){bound}")
    bwd_names = [p.name for p in positional_params(bwd)]
    upstream_name = next(n for n in bwd_names if n not in CACHE_ARGS)
    bwd_call = marked(bwd, f"{backward}({', '.join(bwd_names)})")
    values, keywords = list(zip(names, given.values)), given.kwvalues

    def call():
        __tracebackhide__ = True  # noqa: F841
        out = fwd_call(
            *[work[n] if n in work else pass_through(v) for n, v in values],
            **{k: work[k] if k in work else pass_through(v) for k, v in keywords.items()},
        )
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
    dout, how = _upstream_for(namespace, upstream_name, upstream, first.shape)

    def evaluate():
        return float(np.sum(np.asarray(call()[0], dtype=np.float64) * dout))

    def gradients():
        __tracebackhide__ = True  # noqa: F841
        _, cache = call()
        by_name = {upstream_name: dout.copy()}
        returned = bwd_call(*[by_name.get(n, cache) for n in bwd_names])
        items = list(returned) if isinstance(returned, (tuple, list)) else [returned]
        order = floats if len(items) == len(floats) != len(arrays) else arrays
        found = {}
        for n in blocks:
            i = order.index(n)
            found[n] = (
                items[i] if i < len(items) else None,
                f"{backward}(...)[{i}]" if len(items) > 1 else f"d{n}",
            )
        return found

    def unread(names):
        return (
            f"{forward}'s output did not change when {names[0]} was perturbed: is it an argument it ignores?"
        )

    plan = CheckPlan(
        f"{forward}({arg_text}) → Σ out·{upstream_name}, {backward}({', '.join(bwd_names)}); {how}",
        forward,
        ", ".join(blocks),
        {n: arguments[n] for n in blocks},
        snapshot=snapshot,
        hints=Hints(
            lambd=arguments.get("lambd"), backward_fn=bwd, positions={n: arrays.index(n) for n in blocks}
        ),
        source=given.source,
    )
    plan.problem = ConventionProblem(plan, snapshot.draws, work, evaluate, gradients, unread)
    return plan


def _chosen(forward: str, floats: list, arguments: dict, only) -> list:
    """The blocks: every float array argument, or those ``-p`` names (``-p w``, ``-p w,b``)."""
    if not floats:
        raise GradCheckError(f"{forward} takes no float array argument: there is nothing to check")
    if not only:
        return floats
    wanted = [n.strip() for n in only.split(",") if n.strip()]
    unknown = [n for n in wanted if n not in floats]
    if unknown:
        data = [n for n in unknown if n in arguments]
        why = (
            f" ({', '.join(data)} {'is' if len(data) == 1 else 'are'} data, not a float array)"
            if data
            else ""
        )
        raise GradCheckError(
            f"-p/--params {only}: {forward}'s float array arguments are {', '.join(floats)}{why}; "
            "-p chooses among them which blocks to check"
        )
    return [n for n in floats if n in wanted]
