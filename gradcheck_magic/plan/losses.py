"""Losses that return one gradient per array argument, and cost-and-gradient functions whose flat
vector sits at any argument position.

    loss, gradCenterVec, gradOutsideVecs = naiveSoftmaxLossAndGradient(centerWordVec, 1, U, dataset)
    loss, dW = svm_loss_naive(W, X_dev, y_dev, 0.05)
    cost, grad = forward_backward_prop(data, labels, params, dimensions)
    f = lambda w: softmax_loss_naive(w, X_dev, y_dev, 0.0)           # %gradcheck -f f -p W

The user's call decides the arguments: the latest call of the function in the ``%%gradcheck`` cell,
then in the notebook's history (``In``), its positional and keyword arguments taken as they are now
(names, attributes, constants and slices of them; a call whose arguments need computing is not
replayed).  Without a call the arguments are bound by name.  The returned gradients pair with the
float array arguments: all of them in order when there are as many of each and the shapes agree,
else each gradient with the first float array argument of its shape (``grad`` with ``params``, not
``data``).  Integer and index arrays (``y``, ``outsideWordIdx``) are data, never blocks; so is a float
array no gradient pairs with (``X_dev``).  Both random generators are replayed for every evaluation
(``dataset.sampleTokenIdx`` draws from Python's ``random``) and restored after (``safety.Snapshot``).
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import types
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import GradCheckError
from ..safety import Snapshot, is_library
from .binding import (
    bind_by_name,
    is_float_array,
    is_numeric_scalar,
    pass_through,
    refuse_empty,
    written_in_notebook,
)
from .cell import UNSAFE, CellFacts, _inner_call, _substituted, _value, dotted
from .checkplan import CheckPlan, Hints, Request
from .problem import ConventionProblem, is_scalar_like, marked, silenced


class NotALoss(GradCheckError):
    """The function does not return ``(loss, gradient, ...)`` pairing with its array arguments."""


@dataclass
class Call:
    """A call of the user's, its arguments read now: (text, value) of each."""

    function: str
    args: list  # [(text, value)]
    kwargs: dict  # name -> (text, value)
    where: str  # "... in the %%gradcheck cell", "f = lambda w: ..."


def _user_function(value) -> bool:
    """A plain function or lambda of the user's: written in the notebook, or imported from the
    assignment's own modules (cs231n's ``from cs231n.rnn_layers import *``); never an installed
    library's (numpy, scipy) or this package's."""
    return isinstance(value, types.FunctionType) and (
        written_in_notebook(value) or not is_library(getattr(value, "__module__", None))
    )


def _returns_tuples(fn) -> bool:
    """Does ``fn``'s source return a tuple of two or more (``return loss, dW``)?  Read, never run: a
    call of anything else in the history is not taken for a loss's."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
    except (OSError, TypeError, SyntaxError):
        return False
    return any(
        isinstance(n, ast.Return) and isinstance(n.value, ast.Tuple) and len(n.value.elts) >= 2
        for n in ast.walk(tree)
    )


def _read(c, namespace: dict) -> Optional[Call]:
    """A call of the history with its arguments read now, or None when one cannot be read."""
    values = c.values(namespace)
    if values is None:
        return None
    args = [(e.text, v) for e, v in zip(c.args, values[0])]
    kwargs = {k: (c.keywords[k].text, v) for k, v in values[1].items()}
    return Call(c.function, args, kwargs, c.describe())


def latest_call(namespace: dict, cell: CellFacts, wanted) -> Optional[Call]:
    """The user's latest call (the %%gradcheck cell, then ``In``) of a function ``wanted(name)``
    accepts, whose arguments can be read now without running code."""
    for c in cell.history:
        found = _read(c, namespace) if wanted(c.function) else None
        if found is not None:
            return found
    return None


def _looks_like_loss(namespace: dict, name: str) -> bool:
    """A notebook function, no layer or course forward, whose source returns ``(loss, grad, ...)``."""
    fn = namespace.get(name)
    return _user_function(fn) and not _layer_forward(namespace, name) and _returns_tuples(fn)


# ---- pairing the returned gradients with the array arguments ---------------------------------------


def pair(arrays: list, grads: tuple) -> Optional[dict]:
    """{argument: index of its gradient in the returned tuple}, or None when a gradient pairs with no
    float array argument.  As many gradients as arrays, shapes agreeing: in order; else each gradient
    with the first unpaired argument of its shape (then of its size: a column for a flat vector)."""
    if not grads or not all(isinstance(g, np.ndarray) or np.isscalar(g) for g in grads):
        return None
    if len(grads) == len(arrays) and all(np.size(g) == a.size for g, (_, a) in zip(grads, arrays)):
        return {name: i + 1 for i, (name, _) in enumerate(arrays)}
    paired = {}
    for i, g in enumerate(grads):
        free = [(n, a) for n, a in arrays if n not in paired]
        match = next((n for n, a in free if np.shape(g) == a.shape), None)
        match = match or next((n for n, a in free if np.size(g) == a.size), None)
        if match is None:
            return None
        paired[match] = i + 1
    return paired


# ---- the plan ---------------------------------------------------------------------------------------


def _bind(fn, name: str, call: Optional[Call], namespace: dict, params: Optional[str]) -> tuple:
    """([(parameter, text, value)] positional, {parameter: (text, value)} keywords, the parameter ``-p``
    names or None): from the user's call, else by name.  ``-p NAME`` is the argument the call passes
    as ``NAME``, else the parameter called ``NAME``, else a one-argument function's only one (a
    ``lambda w: ...`` gets the vector whatever its argument is called); its value is the variable
    ``NAME``'s, or what the call passes for the parameter ``NAME`` when no variable has that name."""
    sig = inspect.signature(fn)
    names = [
        p.name for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    passed = {}
    if call is not None:
        passed = {(names[i] if i < len(names) else f"*{i}"): t for i, (t, _) in enumerate(call.args)}
        passed |= {k: t for k, (t, _) in call.kwargs.items()}
    target = None
    from_call = params in passed and params not in namespace  # -p outsideVectors: the call's value
    if params:
        if params not in namespace and not from_call:
            raise GradCheckError(f"-p {params}: no variable {params!r} in the namespace")
        target = next((p for p, t in passed.items() if t == params), None)
        if target is None and params in names:
            target = params
        elif target is None and len(names) == 1:
            target = names[0]
        elif target is None:
            raise GradCheckError(
                f"-p {params}: {name} takes no argument {params!r} and is not called with it "
                f"(its arguments: {', '.join(names)})"
            )
    if call is not None:
        positional = [(p, *call.args[i]) for i, p in enumerate(passed) if i < len(call.args)]
        keywords = dict(call.kwargs)
    else:
        override = {target: namespace[params]} if target else {}
        bound = bind_by_name(fn, {**namespace, **override}, name)
        positional = [(names[i], t, v) for i, (t, v) in enumerate(bound)]
        keywords = {}
    if target is not None and not from_call:
        value = namespace[params]
        if target in keywords:
            keywords[target] = (params, value)
        elif any(p == target for p, _, _ in positional):
            positional = [(p, params, value) if p == target else (p, t, v) for p, t, v in positional]
        else:
            keywords[target] = (params, value)
    return positional, keywords, target


def plan_loss(namespace: dict, name: str, fn, call: Optional[Call], params: Optional[str]) -> CheckPlan:
    """The check of ``fn`` on these arguments; raises :class:`NotALoss` when it does not return
    ``(loss, gradient, ...)`` with each gradient pairing with a float array argument."""
    __tracebackhide__ = True  # noqa: F841
    positional, keywords, target = _bind(fn, name, call, namespace, params)
    entries = [(p, t, v) for p, t, v in positional] + [(p, t, v) for p, (t, v) in keywords.items()]
    if target is not None:
        value = next(v for p, _, v in entries if p == target)
        if isinstance(value, np.ndarray) and value.dtype.kind in "biu":
            raise GradCheckError(
                f"-p {params}: {params} holds integers (indices or labels): it is data, not a parameter"
            )
    refuse_empty((t, v) for _, t, v in entries)
    single = len([p for p, _, _ in entries]) == 1 and params is not None
    label = {p: (params if single else p) for p, _, _ in entries}
    arrays = [(p, v) for p, _, v in entries if is_float_array(v)]
    snapshot = Snapshot({name: fn, **{t: v for _, t, v in entries}})  # the globals it reads, both draws
    for _, t, v in entries:
        snapshot.watch(t, v)
    work = {p: np.array(v, dtype=np.float64, order="C") for p, v in arrays}
    text = (
        f"{name}({', '.join([t for _, t, _ in positional] + [f'{k}={t}' for k, (t, _) in keywords.items()])})"
    )
    fn_call = marked(fn, text)

    def call_it(blocks):
        __tracebackhide__ = True  # noqa: F841
        args = [work[p] if p in blocks else pass_through(v) for p, _, v in positional]
        kwargs = {p: work[p] if p in blocks else pass_through(v) for p, (_, v) in keywords.items()}
        return fn_call(*args, **kwargs)

    try:
        with silenced():
            out = call_it(set(work))
    finally:
        snapshot.restore()
        for p, v in arrays:
            work[p][...] = v
    returns = "(loss, gradient, ...)"
    if not (isinstance(out, tuple) and len(out) >= 2 and is_scalar_like(out[0])):
        raise NotALoss(f"{text} does not return {returns}: it returned {type(out).__name__}")
    paired = pair(arrays, out[1:])
    if paired is None:
        shapes = ", ".join(str(np.shape(g)) for g in out[1:])
        raise NotALoss(
            f"{text} returned gradients of shapes {shapes}, which pair with none of its float array arguments"
        )
    if target is not None:
        if target not in paired:
            raise GradCheckError(f"-p {params}: {name} returns no gradient of {params}'s shape")
        paired = {target: paired[target]}
    blocks = [p for p, _ in arrays if p in paired]
    work = {p: work[p] for p in blocks}
    rows = {label[p]: work[p] for p in blocks}

    def evaluate():
        __tracebackhide__ = True  # noqa: F841
        return call_it(blocks)[0]

    def gradients():
        __tracebackhide__ = True  # noqa: F841
        out = call_it(blocks)
        return {label[p]: (out[i] if i < len(out) else None, f"{name}(...)[{i}]") for p, i in paired.items()}

    def unread(names):
        return f"{name} did not change when {names[0]} was perturbed: is it an argument it ignores?"

    origin = "arguments bound by name"
    if call is not None:
        origin = call.where
    grads = ", ".join(f"d{label[p]}" for p in blocks)
    plan = CheckPlan(
        f"{text} → (loss, {grads})",
        name,
        ", ".join(rows),
        {label[p]: v for p, v in arrays if p in paired},
        snapshot=snapshot,
        hints=Hints(
            backward_fn=fn,
            cost_fns=(fn,),
            scalars={p: float(v) for p, _, v in entries if is_numeric_scalar(v)},  # reg, for the suspects
            positions={label[p]: i for p, i in paired.items()},
        ),
        source=origin,
        inputs=[(t, v) for _, t, v in entries if isinstance(v, np.ndarray)],
    )
    plan.problem = ConventionProblem(plan, snapshot.draws, rows, evaluate, gradients, unread)
    return plan


def _layer_forward(namespace: dict, name: str) -> bool:
    """``affine_forward`` with an ``affine_backward`` beside it, or a course forward: not a loss."""
    mirrored = name.replace("forward", "backward")
    return mirrored != name and callable(namespace.get(mirrored))


def resolve(request: Request) -> Optional[CheckPlan]:
    """``-f loss`` (``-p`` optional): the loss convention when the function returns ``(loss, gradient,
    ...)``; None when it returns something else, for the other adapters to try."""
    namespace, forward, params = request.namespace, request.forward, request.params
    if not forward or request.cost or request.target or forward not in namespace:
        return None
    if request.backward and request.backward != forward:
        return None
    fn = namespace[forward]
    if not isinstance(fn, types.FunctionType) or _layer_forward(namespace, forward):
        return None
    call = latest_call(namespace, request.cell, lambda n: n == forward)
    try:
        return plan_loss(namespace, forward, fn, call, params)
    except NotALoss:
        inner = _lambda_call(forward, fn, params, namespace)
        if inner is not None:  # f = lambda w: loss(w, X_dev, y_dev, 0.0)[0]: the loss it takes apart
            return plan_loss(namespace, inner.function, namespace[inner.function], inner, params)
        return None  # not a loss of this kind: the flat-vector and course adapters may fit


def _lambda_call(name: str, fn, params: Optional[str], namespace: dict) -> Optional[Call]:
    """``f = lambda w: svm_loss_naive(w, X_dev, y_dev, 0.0)[0]`` with ``-p W``: the loss it calls, on
    ``W`` (cs231n's cell hands such an ``f`` to its numerical gradient); None for anything else."""
    if fn.__name__ != "<lambda>" or not params:
        return None
    try:
        source = textwrap.dedent(inspect.getsource(fn)).strip()
        tree = ast.parse(source)
    except (OSError, TypeError, SyntaxError):
        return None
    lambdas = [n for n in ast.walk(tree) if isinstance(n, ast.Lambda)]
    if len(lambdas) != 1 or len(lambdas[0].args.args) != 1:
        return None
    inner = _inner_call(lambdas[0].body)
    if inner is None or not _user_function(namespace.get(dotted(inner.func) or "")):
        return None
    inner = _substituted(inner, {lambdas[0].args.args[0].arg: ast.Name(params, ast.Load())})
    scope = {**fn.__globals__, **namespace}
    args = [(ast.unparse(a), _value(a, scope, {})) for a in inner.args]
    kwargs = {k.arg: (ast.unparse(k.value), _value(k.value, scope, {})) for k in inner.keywords if k.arg}
    if any(v is UNSAFE for _, v in [*args, *kwargs.values()]):
        return None
    return Call(dotted(inner.func), args, kwargs, f"{name} = {ast.unparse(lambdas[0])}")


def from_call(call, request: Request) -> Optional[CheckPlan]:
    """The user's call is the plan: ``loss, gradCenterVec, gradOutsideVecs = f(...)`` (or a helper's
    lambda around it) checks ``f`` on exactly those arguments; None for a call of anything else."""
    namespace = request.namespace
    if not _looks_like_loss(namespace, call.function):
        return None
    found = _read(call, namespace)
    if found is None or not any(is_float_array(v) for _, v in [*found.args, *found.kwargs.values()]):
        return None
    try:
        return plan_loss(namespace, found.function, namespace[found.function], found, None)
    except NotALoss:
        return None


def candidates(request: Request) -> list:
    """None: a loss is checked from the user's call (:func:`from_call`) or from the flags; the history
    counts only when the %%gradcheck cell wrote nothing (then ``from_call`` already saw the call), and
    a cost function on a vector the cell assigned is the flat adapter's candidate."""
    return []
