"""What the ``%%gradcheck`` cell wrote and called, read from its syntax tree (no user code runs).

The ranking puts what the cell itself assigned, defined, changed or called first, and an object is
checked on the data the cell passed its method (``model.loss(Xs, ys)``).
"""

from __future__ import annotations

import ast
import copy
import re
from dataclasses import dataclass, field
from typing import Optional


def _root(node: ast.AST):
    """The variable under ``model.params['W1']`` or ``model.loss``: ``model`` (None for ``f()()``)."""
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _outside_definitions(tree: ast.AST):
    """Every node of the cell's own statements, not of the functions and classes it defines."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
                stack.append(child)


class CellNames(set):
    """The names a cell wrote, and ``calls``: the methods its own statements call with plain names,
    ``{"model.loss": (("Xs", "ys"), {})}``, so that an object is checked on the data the cell gives it."""

    calls: dict


def cell_calls(tree: ast.AST) -> dict:
    """``obj.method(a, b, k=c)`` calls whose arguments are all plain names (the last in the cell's
    text wins: the walk below does not go in that order)."""
    calls = {}
    in_order = sorted(
        (n for n in _outside_definitions(tree) if isinstance(n, ast.Call)),
        key=lambda n: (n.lineno, n.col_offset),
    )
    for node in in_order:
        if not isinstance(node.func, ast.Attribute):
            continue
        owner = node.func.value
        plain = all(isinstance(a, ast.Name) for a in node.args) and all(
            k.arg and isinstance(k.value, ast.Name) for k in node.keywords
        )
        if isinstance(owner, ast.Name) and plain:
            calls[f"{owner.id}.{node.func.attr}"] = (
                tuple(a.id for a in node.args),
                {k.arg: k.value.id for k in node.keywords},
            )
    return calls


def assigned_names(tree: ast.AST) -> set:
    """Names a cell binds: assignments, loop targets, imports, function and class definitions; and,
    in its own statements, the variables it changes through an item or attribute
    (``model.params['W1'] = ...``) and the names it calls (``model.loss(X, y)``, ``forward(X)``):
    discovery ranks the candidates that use what the cell wrote first."""
    names = {
        node.id for node in ast.walk(tree) if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store)
    }
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    for node in _outside_definitions(tree):
        if isinstance(node, (ast.Attribute, ast.Subscript)) and isinstance(node.ctx, ast.Store):
            names.add(_root(node))
        elif isinstance(node, ast.Call):
            names.add(_root(node.func))
    names.discard(None)
    found = CellNames(names)
    found.calls = cell_calls(tree)
    return found


#: Numerical-gradient helpers applied to a lambda: ``helper(lambda x: f(x, ...)[0], x, dout)``.
HELPER = re.compile(r"(numerical_grad|grad_check|gradcheck_naive|check_grad)", re.IGNORECASE)
#: How many cells of the notebook's history are read, newest first.
HISTORY_CELLS = 200
#: Why an argument's value cannot be taken as it is now (it would run code).
UNSAFE = object()


@dataclass
class Expr:
    """One argument as the user wrote it: its text and its syntax tree."""

    text: str
    node: ast.AST

    def value(self, namespace: dict, bound: Optional[dict] = None):
        """Its value now, or ``UNSAFE`` when that would run code (a call, an operator on arrays)
        or it cannot be read (an undefined name, an attribute that raises)."""
        return _value(self.node, namespace, bound or {})


@dataclass
class Call:
    """A call the user wrote: ``net.loss(X, y, reg=0.05)``, ``affine_forward(x, w, b)``, or the
    call inside a lambda a numerical-gradient helper was applied to (``via`` is the helper's call;
    the lambda's argument stands for the helper's second argument, ``upstream`` is its third)."""

    function: str  # the dotted name as written: "net.loss", "affine_forward"
    args: tuple  # Expr of each positional argument
    keywords: dict  # name -> Expr
    cell: Optional[int]  # the In index of the cell; None for the %%gradcheck cell itself
    text: str
    via: str = ""
    upstream: Optional[Expr] = None

    @property
    def where(self) -> str:
        return "the %%gradcheck cell" if self.cell is None else f"cell [{self.cell}]"

    def describe(self) -> str:
        return f"{self.via or self.text} in {self.where}"

    def values(self, namespace: dict):
        """(positional values, keyword values) as they are now, or None when one cannot be read."""
        args = [a.value(namespace) for a in self.args]
        kwargs = {k: e.value(namespace) for k, e in self.keywords.items()}
        if any(v is UNSAFE for v in [*args, *kwargs.values()]):
            return None
        return args, kwargs

    @property
    def names(self) -> tuple:
        """(positional, keyword) names of the arguments that are plain variables (others: None)."""
        positional = tuple(a.node.id if isinstance(a.node, ast.Name) else None for a in self.args)
        keywords = {k: e.node.id if isinstance(e.node, ast.Name) else None for k, e in self.keywords.items()}
        return positional, keywords


def _value(node: ast.AST, namespace: dict, bound: dict):
    """Names, constants, attributes, subscripts and tuples of them: what can be read without calling
    the user's code (an attribute or item access may still run it; what raises is UNSAFE)."""
    try:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            if node.id in bound:
                return bound[node.id]
            return namespace[node.id] if node.id in namespace else UNSAFE
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
            inner = _value(node.operand, namespace, bound)
            if isinstance(inner, (int, float)) and not isinstance(inner, bool):
                return -inner if isinstance(node.op, ast.USub) else inner
            return UNSAFE
        if isinstance(node, (ast.Tuple, ast.List)):
            items = [_value(e, namespace, bound) for e in node.elts]
            if any(v is UNSAFE for v in items):
                return UNSAFE
            return tuple(items) if isinstance(node, ast.Tuple) else list(items)
        if isinstance(node, ast.Attribute):
            owner = _value(node.value, namespace, bound)
            return UNSAFE if owner is UNSAFE else getattr(owner, node.attr)
        if _is_copy(node):  # gamma.copy(): the value itself (the check works on its own copies)
            return _value(node.func.value, namespace, bound)
        if isinstance(node, ast.Subscript):
            owner = _value(node.value, namespace, bound)
            key = _index(node.slice, namespace, bound)
            return UNSAFE if owner is UNSAFE or key is UNSAFE else owner[key]
    except Exception:  # noqa: BLE001 - an attribute or item the user's code refuses: not readable
        return UNSAFE
    return UNSAFE


def _is_copy(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr == "copy"
        and not node.args
        and not node.keywords
    )


def _index(node: ast.AST, namespace: dict, bound: dict):
    if isinstance(node, ast.Slice):
        ends = (node.lower, node.upper, node.step)
        parts = [None if p is None else _value(p, namespace, bound) for p in ends]
        return UNSAFE if any(p is UNSAFE for p in parts) else slice(*parts)
    if isinstance(node, ast.Tuple):
        items = [_index(e, namespace, bound) for e in node.elts]
        return UNSAFE if any(i is UNSAFE for i in items) else tuple(items)
    return _value(node, namespace, bound)


def dotted(node: ast.AST) -> Optional[str]:
    """``net.loss`` for ``net.loss``; None for anything but names and attributes of names."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    return ".".join([node.id, *reversed(parts)])


def _substituted(node: ast.AST, names: dict) -> ast.AST:
    """``node`` with the lambda's argument names replaced by the expressions they stand for."""

    class Swap(ast.NodeTransformer):
        def visit_Name(self, n):
            return names.get(n.id, n) if isinstance(n.ctx, ast.Load) else n

    return Swap().visit(copy.deepcopy(node))


def _inner_call(body: ast.AST) -> Optional[ast.Call]:
    """The call a lambda's body makes: ``f(x, w, b)[0]`` or ``f(x, w, b)``."""
    if isinstance(body, ast.Subscript):
        body = body.value
    return body if isinstance(body, ast.Call) and dotted(body.func) else None


def calls_in(tree: ast.AST, source: str, cell: Optional[int]) -> list:
    """The calls of a cell in the order they run (by position), outside the functions and classes it
    defines; a helper applied to a lambda (written there or assigned to a name earlier in the cell)
    gives the lambda's call, with the lambda's argument standing for the helper's second argument."""
    lambdas = {}  # fx = lambda x: ... in this cell
    found = []

    def text(node):
        return ast.get_source_segment(source, node) or ast.unparse(node)

    def add(node: ast.Call, via: str = "", upstream=None, names=None):
        name = dotted(node.func)
        if name is None:
            return
        if names:
            node = _substituted(node, names)
        found.append(
            Call(
                name,
                tuple(Expr(ast.unparse(a), a) for a in node.args if not isinstance(a, ast.Starred)),
                {k.arg: Expr(ast.unparse(k.value), k.value) for k in node.keywords if k.arg},
                cell,
                ast.unparse(node) if names else text(node),
                via,
                upstream,
            )
        )

    nodes = sorted(
        (n for n in _outside_definitions(tree) if isinstance(n, (ast.Call, ast.Assign))),
        key=lambda n: (n.lineno, n.col_offset, isinstance(n, ast.Call)),
    )
    for node in nodes:
        if isinstance(node, ast.Assign):
            if isinstance(node.value, ast.Lambda):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        lambdas[target.id] = node.value
            continue
        name = dotted(node.func)
        first = node.args[0] if node.args else None
        if (
            name
            and name.split(".")[-1] == "check_grad"
            and isinstance(first, ast.Name)
            and first.id not in lambdas
        ):
            if len(node.args) >= 3:  # scipy's check_grad(f, fprime, x0, *args): the call f(x0, *args)
                add(ast.Call(func=first, args=node.args[2:], keywords=[]), via=text(node), names={})
            continue
        if name and HELPER.search(name.split(".")[-1]) and first is not None:
            lam = lambdas.get(first.id) if isinstance(first, ast.Name) else first
            if isinstance(lam, ast.Lambda) and _inner_call(lam.body) is not None:
                params = [a.arg for a in lam.args.args]
                stands = {params[0]: node.args[1]} if params and len(node.args) > 1 else {}
                upstream = node.args[2] if len(node.args) > 2 else None
                add(
                    _inner_call(lam.body),
                    via=text(node),
                    upstream=Expr(ast.unparse(upstream), upstream) if upstream is not None else None,
                    names=stands,
                )
                continue
        add(node)
    return found


def assignments_in(tree: ast.AST) -> set:
    """The names a cell binds: assignments, definitions and imports (for "which cell assigned what
    was bound" and "the one defined last")."""
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((alias.asname or alias.name).split(".")[0] for alias in node.names)
    return names


def _magic_body(tree: ast.AST) -> Optional[str]:
    """The body of a ``%%gradcheck`` cell as IPython stores it in ``In``
    (``get_ipython().run_cell_magic('gradcheck', '', 'body')``)."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "run_cell_magic"
            and len(node.args) == 3
            and all(isinstance(a, ast.Constant) and isinstance(a.value, str) for a in node.args)
        ):
            return node.args[2].value
    return None


@dataclass
class CellFacts:
    """What the plan stage knows of the user's cells: the names the %%gradcheck cell wrote; the
    calls its own statements made with plain names (``{"model.loss": (("Xs", "ys"), {})}``); and
    ``history``: every call of the %%gradcheck cell, then of the notebook's earlier cells (``In``),
    newest first (:class:`Call`), with which cell last assigned each name (``assigned``)."""

    names: set = field(default_factory=set)
    calls: dict = field(default_factory=dict)
    history: list = field(default_factory=list)
    assigned: dict = field(default_factory=dict)  # name -> the In index of the last cell assigning it

    @classmethod
    def read(cls, tree: Optional[ast.AST], source: str = "", inputs=()) -> CellFacts:
        """The facts of the %%gradcheck cell (``tree``, None for the line form) and of the notebook's
        history (``inputs``: IPython's ``In``, the current cell last)."""
        names = assigned_names(tree) if tree is not None else CellNames()
        facts = cls(set(names), dict(getattr(names, "calls", {})))
        if tree is not None:
            facts.history = list(reversed(calls_in(tree, source, None)))
        inputs = list(inputs or ())
        for index in range(len(inputs) - 1, max(len(inputs) - 1 - HISTORY_CELLS, 0) - 1, -1):
            raw = inputs[index]
            try:
                cell_tree = ast.parse(raw) if isinstance(raw, str) and raw.strip() else None
                body = _magic_body(cell_tree) if cell_tree is not None else None
                source = body if body is not None else raw
                cell_tree = ast.parse(body) if body is not None else cell_tree
            except (SyntaxError, ValueError):
                continue
            if cell_tree is None:
                continue
            for name in assignments_in(cell_tree):
                facts.assigned.setdefault(name, index)
            facts.history.extend(reversed(calls_in(cell_tree, source, index)))
        return facts

    def latest(self, wanted) -> Optional[Call]:
        """The most recent call for which ``wanted(call)`` holds (the %%gradcheck cell first)."""
        return next((c for c in self.history if wanted(c)), None)

    def in_cell(self, call: Call) -> list:
        """Every call of the cell ``call`` was made in, newest first."""
        return [c for c in self.history if c.cell == call.cell]

    def provenance(self, names) -> str:
        """``" (x from cell [7], prev_h from cell [3])"``: which cell last assigned each variable a call
        is given, so that a leftover of an earlier cell shows as one; "" when none is known."""
        names = [n for n in dict.fromkeys(names) if n in self.assigned]
        known = [f"{n} from cell [{self.assigned[n]}]" for n in names]
        cells = sorted({self.assigned[n] for n in names})
        if len(cells) > 1:  # the leftovers: what an earlier cell assigned than the newest ones
            older = [n for n in names if self.assigned[n] < cells[-1]]
            known.append(f"{', '.join(older)} older than the rest")
        return f" ({', '.join(known)})" if known else ""

    @classmethod
    def of(cls, prefer) -> CellFacts:
        """From what ``api.gradcheck`` was given: a CellFacts, the magic's CellNames, or names."""
        if isinstance(prefer, CellFacts):
            return prefer
        if hasattr(prefer, "history") and hasattr(prefer, "names"):  # another copy's (the grader re-runs)
            return cls(
                set(prefer.names),
                dict(getattr(prefer, "calls", {}) or {}),
                list(prefer.history),
                dict(getattr(prefer, "assigned", {}) or {}),
            )
        return cls(set(prefer or ()), dict(getattr(prefer, "calls", {}) or {}))
