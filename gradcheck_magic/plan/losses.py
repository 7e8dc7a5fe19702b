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
array no gradient pairs with (``X_dev``).  Python's ``random`` is replayed for every evaluation
(``dataset.sampleTokenIdx``) and restored after.
"""

from __future__ import annotations

import ast
import functools
import inspect
import random
import textwrap
import types
from dataclasses import dataclass
from typing import Optional

import numpy as np

from ..errors import GradCheckError
from .binding import bind_by_name, is_float_array, pass_through, written_in_notebook
from .checkplan import CheckPlan, Hints, Request
from .problem import ConventionProblem, is_scalar_like, marked, silenced
from .ranking import Candidate, Unfit
from .snapshot import ObjectSnapshot


class NotALoss(GradCheckError):
    """The function does not return ``(loss, gradient, ...)`` pairing with its array arguments."""


class _Unresolvable(Exception):
    """An argument expression that cannot be read without running code."""


@dataclass
class Call:
    """A call of the user's, as written: argument texts with their values now."""

    function: str
    args: list  # [(text, value)]
    kwargs: dict  # name -> (text, value)
    where: str  # "this cell", "In[12]"


# ---- the user's call: the cell, then In ------------------------------------------------------------


def _trees(text: str) -> list:
    """The statements of a cell's text, and of the ``%%gradcheck`` body inside it (IPython stores
    ``get_ipython().run_cell_magic('gradcheck', '', body)`` in ``In``)."""
    try:
        tree = ast.parse(text)
    except (SyntaxError, ValueError):
        return []
    found = [tree]
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "run_cell_magic"
            and len(node.args) == 3
            and isinstance(node.args[2], ast.Constant)
            and isinstance(node.args[2].value, str)
        ):
            found.extend(_trees(node.args[2].value))
    return found


def _user_function(value) -> bool:
    """A plain function or lambda written in the notebook (library helpers never compete)."""
    return isinstance(value, types.FunctionType) and written_in_notebook(value)


def _sources(namespace: dict, cell) -> list:
    """(where, tree), the latest first: the ``%%gradcheck`` cell, then the history."""
    found = []
    tree = getattr(cell, "tree", None)
    if tree is not None:
        found.append(("this cell", tree))
    history = namespace.get("In")
    if isinstance(history, list):
        for i in range(len(history) - 1, 0, -1):
            if isinstance(history[i], str):
                found.extend((f"In[{i}]", t) for t in reversed(_trees(history[i])))
    return found


def _outside_definitions(tree: ast.AST):
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                stack.append(child)


def _unpacked_calls(tree: ast.AST) -> list:
    """``a, b = f(...)`` statements' calls, and calls in a lambda handed to a numerical-gradient helper
    with the vector it is given substituted (``gradcheck_naive(lambda v: f(x, v)[0], W)`` → ``f(x, W)``)."""
    found = []
    for node in _outside_definitions(tree):
        if (
            isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call)
            and isinstance(node.targets[0], ast.Tuple)
            and len(node.targets[0].elts) >= 2
        ):
            found.append(node.value)
        elif isinstance(node, ast.Call) and len(node.args) >= 2 and isinstance(node.args[0], ast.Lambda):
            inner = _through_lambda(node.args[0], node.args[1])
            if inner is not None:
                found.append(inner)
    return sorted(found, key=lambda n: (n.lineno, n.col_offset))


def _through_lambda(fn: ast.Lambda, given: ast.expr) -> Optional[ast.Call]:
    params = fn.args.args
    body = fn.body
    while isinstance(body, ast.Subscript):  # f(...)[0]
        body = body.value
    if len(params) != 1 or not isinstance(body, ast.Call):
        return None
    name = params[0].arg

    class Substitute(ast.NodeTransformer):
        def visit_Name(self, node):
            return given if node.id == name else node

    inner = Substitute().visit(ast.parse(ast.unparse(body), mode="eval").body)
    return ast.copy_location(inner, fn)


def _value(node: ast.AST, namespace: dict):
    """The value of a plain argument expression now: a name, an attribute, a constant, a slice or
    item of one, a tuple or list of them.  Anything else would have to be run: unresolvable."""
    if isinstance(node, ast.Name):
        if node.id not in namespace:
            raise _Unresolvable(node.id)
        return namespace[node.id]
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        value = _value(node.operand, namespace)
        if not isinstance(value, (int, float)):
            raise _Unresolvable(ast.unparse(node))
        return -value if isinstance(node.op, ast.USub) else value
    if isinstance(node, ast.Attribute):
        base = _value(node.value, namespace)
        if isinstance(base, types.ModuleType):
            raise _Unresolvable(ast.unparse(node))
        try:
            return getattr(base, node.attr)
        except Exception:  # noqa: BLE001 - a property that raises is not replayed here
            raise _Unresolvable(ast.unparse(node)) from None
    if isinstance(node, ast.Subscript):
        base = _value(node.value, namespace)
        if not isinstance(base, (np.ndarray, list, tuple, dict)):
            raise _Unresolvable(ast.unparse(node))
        return base[_index(node.slice, namespace)]
    if isinstance(node, (ast.Tuple, ast.List)):
        items = [_value(e, namespace) for e in node.elts]
        return tuple(items) if isinstance(node, ast.Tuple) else items
    raise _Unresolvable(ast.unparse(node))


def _index(node: ast.AST, namespace: dict):
    if isinstance(node, ast.Slice):
        parts = [None if p is None else _value(p, namespace) for p in (node.lower, node.upper, node.step)]
        if not all(p is None or isinstance(p, (int, np.integer)) for p in parts):
            raise _Unresolvable(ast.unparse(node))
        return slice(*parts)
    if isinstance(node, ast.Tuple):
        return tuple(_index(e, namespace) for e in node.elts)
    value = _value(node, namespace)
    if not isinstance(value, (int, np.integer, str)):
        raise _Unresolvable(ast.unparse(node))
    return value


def latest_call(namespace: dict, cell, wanted, any_call: bool = True) -> Optional[Call]:
    """The user's latest call of a function ``wanted(name)`` accepts (``any_call`` False: only
    ``loss, grad = f(...)`` and helpers' lambdas), its arguments read now; a call whose arguments
    cannot be read, or that passes no float array, is skipped for an earlier one."""
    for where, tree in _sources(namespace, cell):
        calls = _unpacked_calls(tree) + (_plain_calls(tree) if any_call else [])
        for node in sorted(calls, key=lambda n: (n.lineno, n.col_offset), reverse=True):
            if not (isinstance(node.func, ast.Name) and wanted(node.func.id)):
                continue
            if any(isinstance(a, ast.Starred) for a in node.args) or any(
                k.arg is None for k in node.keywords
            ):
                continue
            try:
                args = [(ast.unparse(a), _value(a, namespace)) for a in node.args]
                kwargs = {k.arg: (ast.unparse(k.value), _value(k.value, namespace)) for k in node.keywords}
            except _Unresolvable:
                continue
            if not any(is_float_array(v) for _, v in [*args, *kwargs.values()]) and not any_call:
                continue
            return Call(node.func.id, args, kwargs, where)
    return None


def _plain_calls(tree: ast.AST) -> list:
    return sorted(
        (n for n in _outside_definitions(tree) if isinstance(n, ast.Call)),
        key=lambda n: (n.lineno, n.col_offset),
    )


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


class _Snapshot(ObjectSnapshot):
    """The objects' snapshot, and Python's ``random`` state (word2vec's ``dataset`` draws from it)."""

    def __init__(self, roots: dict):
        super().__init__(roots)
        self.py_random = random.getstate()

    def restore(self) -> None:
        super().restore()
        random.setstate(self.py_random)


def _bind(fn, name: str, call: Optional[Call], namespace: dict, params: Optional[str]) -> tuple:
    """([(parameter, text, value)] positional, {parameter: (text, value)} keywords, the parameter ``-p``
    names or None): from the user's call, else by name.  ``-p NAME`` is the argument the call passes
    as ``NAME``, else the parameter called ``NAME``, else a one-argument function's only one (a
    ``lambda w: ...`` gets the vector whatever its argument is called); its value is ``NAME``'s."""
    sig = inspect.signature(fn)
    names = [
        p.name for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    passed = {}
    if call is not None:
        passed = {(names[i] if i < len(names) else f"*{i}"): t for i, (t, _) in enumerate(call.args)}
        passed |= {k: t for k, (t, _) in call.kwargs.items()}
    target = None
    if params:
        if params not in namespace:
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
    if target is not None:
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
    single = len([p for p, _, _ in entries]) == 1 and params is not None
    label = {p: (params if single else p) for p, _, _ in entries}
    arrays = [(p, v) for p, _, v in entries if is_float_array(v)]
    snapshot = _Snapshot({t: v for _, t, v in entries})
    for _, t, v in entries:
        snapshot.watch(t, v)
    work = {p: np.array(v, dtype=np.float64, order="C") for p, v in arrays}
    text = (
        f"{name}({', '.join([t for _, t, _ in positional] + [f'{k}={t}' for k, (t, _) in keywords.items()])})"
    )
    fn_call = marked(fn, text)
    py_state = snapshot.py_random

    def call_it(blocks):
        __tracebackhide__ = True  # noqa: F841
        random.setstate(py_state)  # every evaluation sees the same draws of Python's random
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
        origin = call.where if " = lambda" in call.where else f"{text} in {call.where}"
    grads = ", ".join(f"d{label[p]}" for p in blocks)
    plan = CheckPlan(
        f"{text} → (loss, {grads})",
        name,
        ", ".join(rows),
        {label[p]: v for p, v in arrays if p in paired},
        snapshot=snapshot,
        hints=Hints(backward_fn=fn, cost_fns=(fn,), positions={label[p]: i for p, i in paired.items()}),
        source=origin,
        inputs=[(t, v) for _, t, v in entries if isinstance(v, np.ndarray)],
    )
    plan.problem = ConventionProblem(plan, snapshot.rng, rows, evaluate, gradients, unread)
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
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)).strip().rstrip(",;"))
    except (OSError, TypeError, SyntaxError):
        return None
    lambdas = [n for n in ast.walk(tree) if isinstance(n, ast.Lambda)]
    if len(lambdas) != 1:
        return None
    inner = _through_lambda(lambdas[0], ast.Name(params, ast.Load()))
    if (
        inner is None
        or not isinstance(inner.func, ast.Name)
        or not _user_function(namespace.get(inner.func.id))
    ):
        return None
    scope = {**fn.__globals__, **namespace}
    try:
        args = [(ast.unparse(a), _value(a, scope)) for a in inner.args]
        kwargs = {k.arg: (ast.unparse(k.value), _value(k.value, scope)) for k in inner.keywords if k.arg}
    except _Unresolvable:
        return None
    return Call(inner.func.id, args, kwargs, f"{name} = {ast.unparse(lambdas[0])}")


def candidates(request: Request) -> list:
    """Without flags: the user's latest ``loss, grad... = f(...)`` call of a notebook function (or a
    numerical-gradient helper's lambda around one), in the cell or the history."""
    if request.flagged:
        return []
    namespace = request.namespace

    def wanted(name):
        return _user_function(namespace.get(name)) and not _layer_forward(namespace, name)

    call = latest_call(namespace, request.cell, wanted, any_call=False)
    if call is None:
        return []
    name = call.function
    inputs = frozenset(t for t, _ in [*call.args, *call.kwargs.values()] if t.isidentifier())
    texts = ", ".join([t for t, _ in call.args] + [f"{k}={t}" for k, (t, _) in call.kwargs.items()])
    return [
        Candidate(
            f"{name}({texts})",
            f"-f {name}",
            "losses",
            inputs=inputs,
            functions=(name,),
            build=functools.partial(_build, namespace, name, call),
        )
    ]


def _build(namespace: dict, name: str, call: Call) -> CheckPlan:
    try:
        return plan_loss(namespace, name, namespace[name], call, None)
    except NotALoss as exc:
        raise Unfit(str(exc)) from None
