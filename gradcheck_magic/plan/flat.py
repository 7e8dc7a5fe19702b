"""Cost-and-gradient functions on one flat vector, and separate ``(f, fprime)`` pairs.

``J, grad = nnCostFunction(nn_params, ...)``, scipy's ``fun(x) -> (f, g)``, ``softmax_loss(x, y)
-> (loss, dx)``, or ``f(x)`` with ``fprime(x)`` as ``scipy.optimize.check_grad`` takes them: one
block, the vector.  The functions get a float64 working copy; the user's arrays are never touched.
"""

from __future__ import annotations

import functools
import inspect
from typing import Optional

import numpy as np

from ..errors import GradCheckError
from ..safety import Snapshot
from .binding import (
    PARAM_ALIASES,
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
from .checkplan import CheckPlan, Hints, Request
from .layers import is_layer_backward
from .problem import ConventionProblem, is_scalar_like, marked, silenced
from .ranking import Candidate


def _takes_star_args(fn) -> bool:
    try:
        return any(p.kind == p.VAR_POSITIONAL for p in inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return False


def resolve(request: Request) -> Optional[CheckPlan]:
    """The flat-vector convention the flags pick, or None (a course pair found by its mirrored
    name is the course's)."""
    namespace, forward, backward = request.namespace, request.forward, request.backward
    params = request.params
    if request.cost or not forward:
        return None
    fwd = function_named(namespace, forward, "-f/--forward")
    if fwd is None:
        return None
    mirrored = forward.replace("forward", "backward")
    bwd = (
        function_named(namespace, backward or mirrored, "-b/--backward")
        if (backward or mirrored != forward)
        else None
    )
    if bwd is not None and is_layer_backward(bwd) and not params:
        return None  # the layer adapter's
    if backward and bwd is None:
        return None
    if bwd is not None and not backward:
        return None  # a course pair found by its mirrored name
    if bwd is not None and not params:
        params = _vector_for(namespace, forward, fwd, request.written)
    call = request.cell.latest(lambda c: resolved(namespace, c.function) is fwd)
    return flat_problem(namespace, forward, fwd, backward, bwd, params, call)


def candidates(request: Request) -> list:
    """Without flags, the cost functions and ``(f, fprime)`` pairs whose vector the cell assigned."""
    if request.flagged or not request.written:
        return []
    return _flat_candidates(request.namespace, request.written) + _pair_candidates(
        request.namespace, request.written
    )


def _is_vector(value) -> bool:
    return is_float_array(value) and value.ndim == 1


def _vector_for(namespace: dict, forward: str, fwd, prefer) -> Optional[str]:
    """The vector of ``-f f -b fprime`` without ``-p``: by the argument's name (None: flat_problem
    looks it up), else the one 1-D float array the cell assigned, else the namespace's only one.
    Several are refused with the list and the flag; a function that also takes parameters by name
    (the course's ``forward_propagation(x, theta)``) is left to the course discovery."""
    names = [p.name for p in positional_params(fwd)]
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


def _flat_candidates(namespace: dict, prefer) -> list:
    """A cost/loss function whose first argument is a 1-D vector the cell assigned (``nn_params``);
    it must return ``(J, grad)`` to stay."""
    found = []
    for name, fn in namespace.items():
        low = name.lower()
        if name.startswith("_") or not written_in_notebook(fn) or not ("cost" in low or "loss" in low):
            continue
        if "forward" in low or "backward" in low:
            continue
        first = positional_params(fn)[:1]
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
        if name.startswith("_") or not written_in_notebook(fn) or "forward" in low or "backward" in low:
            continue
        partners = [t.format(name) for t in GRADIENT_NAMES] + [g for f, g in NAMED_PAIRS if f == name]
        names = [p.name for p in positional_params(fn)]
        if not names or any(n in PARAM_ALIASES for n in names[1:]):
            continue
        if names[0] in namespace:
            vectors = [names[0]] if names[0] in prefer and _is_vector(namespace[names[0]]) else []
        else:
            vectors = _cell_vectors(namespace, prefer)
        for partner in partners:
            if not written_in_notebook(namespace.get(partner)):
                continue
            gradient, kind = namespace[partner], "function pairs"
            for vector in vectors:
                found.append(_flat_candidate(namespace, name, fn, partner, gradient, vector, kind))
    return found


def _flat_candidate(namespace, forward, fwd, backward, bwd, vector, kind) -> Candidate:
    label = forward if bwd is None else f"{forward} / {backward}"
    choose = f"-f {forward}" + (f" -b {backward}" if bwd is not None else "")
    first = positional_params(fwd)[0].name
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


def _flat_fits(namespace, forward, fwd, backward, bwd, vector) -> CheckPlan:
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


def flat_problem(namespace, forward, fwd, backward, bwd, params, call=None) -> Optional[CheckPlan]:
    """``J, grad = f(theta, ...)`` or ``f(theta, ...)`` with ``fprime(theta, ...)``: one block, theta.
    The arguments after the vector are those of the user's ``call`` of ``f`` when there is one
    (``f(x0, a)``, ``check_grad(f, g, x0, a)``), else bound by name."""
    params_list = positional_params(fwd)
    if not params_list:
        return None
    first_name = params_list[0].name
    vector_name = params or first_name
    vector = namespace.get(vector_name)
    if not is_float_array(vector) or (bwd is None and vector_name not in namespace):
        return None
    if bwd is not None and vector.ndim != 1 and not params:
        return None  # a separate (f, fprime) pair is scipy's style: a 1-D vector
    given = bind_call(fwd, call, namespace) if call is not None and call.args else None
    if given is not None:
        rest = given.args[1:] + list(given.kwargs.values())
    elif _takes_star_args(fwd):
        raise GradCheckError(
            f"{forward}({first_name}, *args): no call of yours shows what *args are, and the check "
            f"cannot guess them; call {forward}({vector_name}, ...) with them in the %%gradcheck cell "
            f"(or scipy's check_grad({forward}, {backward or '...'}, {vector_name}, ...)), or bind "
            f"them: {forward}1 = lambda {first_name}: {forward}({first_name}, ...)"
        )
    else:
        rest = bind_by_name(fwd, {**namespace, first_name: vector}, forward)[1:]
    refuse_empty(rest)
    functions = {forward: fwd, **({backward: bwd} if bwd is not None else {})}
    snapshot = Snapshot({**functions, vector_name: vector, **dict(rest)})
    snapshot.watch(vector_name, vector)
    for n, v in rest:
        snapshot.watch(n, v)
    work = np.array(vector, dtype=np.float64, order="C")
    others = [pass_through(v) for _, v in rest]
    if given is not None and given.kwargs:  # keywords stay keywords: f(x0, a, scale=2)
        keywords = {k: pass_through(v) for k, (_, v) in given.kwargs.items()}
        others = others[: len(others) - len(keywords)]
        fwd = functools.partial(fwd, **keywords)
        bwd = functools.partial(bwd, **keywords) if bwd is not None else None
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
    values = dict(rest)
    hints = Hints(
        lambd=values.get("lambd", namespace.get("lambda_", namespace.get("lambd"))),
        backward_fn=bwd if bwd is not None else fwd,
        cost_fns=(fwd,),
        positions=None if bwd is not None else {vector_name: 1},  # J, grad = f(...)
    )
    plan = CheckPlan(description, forward, vector_name, {vector_name: vector}, snapshot=snapshot, hints=hints)
    plan.problem = ConventionProblem(plan, snapshot.draws, {vector_name: work}, evaluate, gradients, unread)
    return plan
