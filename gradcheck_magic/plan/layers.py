"""Layer functions (cs231n): ``out, cache = affine_forward(x, w, b)``, ``dx, dw, db =
affine_backward(dout, cache)``.

The check is of the vector-Jacobian product: cost = Σ out·dout, every float array argument a block
named by its argument, paired with the backward's tuple by position; dicts and integers pass through
(a fresh copy of each dict per call, so batchnorm's running averages never leak).  Functions get
float64 working copies; the user's arrays are never touched.
"""

from __future__ import annotations

import functools
from typing import Optional

import numpy as np

from ..errors import GradCheckError
from .binding import (
    bind_by_name,
    function_named,
    is_float_array,
    pass_through,
    positional_params,
    written_in_notebook,
)
from .checkplan import CheckPlan, Hints, Request
from .problem import ConventionProblem, marked, silenced
from .ranking import Candidate
from .snapshot import ObjectSnapshot

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
    if request.cost or not forward or request.params:
        return None
    fwd = function_named(namespace, forward, "-f/--forward")
    if fwd is None:
        return None
    name = backward or forward.replace("forward", "backward")
    if name == forward:
        return None
    bwd = function_named(namespace, name, "-b/--backward")
    if bwd is not None and is_layer_backward(bwd):
        return layer_problem(namespace, forward, fwd, name, bwd)
    return None


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


def layer_problem(namespace, forward, fwd, backward, bwd) -> CheckPlan:
    args = bind_by_name(fwd, namespace, forward)
    snapshot = ObjectSnapshot(dict(args))
    for n, v in args:
        snapshot.watch(n, v)
    blocks = [n for n, v in args if is_float_array(v)]
    if not blocks:
        raise GradCheckError(f"{forward} takes no float array argument: there is nothing to check")
    work = {n: np.array(v, dtype=np.float64, order="C") for n, v in args if n in blocks}
    fwd_call = marked(fwd, f"{forward}({', '.join(n for n, _ in args)})")
    bwd_names = [p.name for p in positional_params(bwd)]
    upstream_name = next(n for n in bwd_names if n not in CACHE_ARGS)
    bwd_call = marked(bwd, f"{backward}({', '.join(bwd_names)})")

    def call():
        __tracebackhide__ = True  # noqa: F841
        out = fwd_call(*[work[n] if n in work else pass_through(v) for n, v in args])
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

    plan = CheckPlan(
        f"{forward}({', '.join(n for n, _ in args)}) → Σ out·{upstream_name}, "
        f"{backward}({', '.join(bwd_names)}); {how}",
        forward,
        ", ".join(blocks),
        {n: v for n, v in args if n in blocks},
        snapshot=snapshot,
        hints=Hints(
            lambd=dict(args).get("lambd"), backward_fn=bwd, positions={n: i for i, n in enumerate(blocks)}
        ),
    )
    plan.problem = ConventionProblem(plan, snapshot.rng, work, evaluate, gradients, unread)
    return plan
