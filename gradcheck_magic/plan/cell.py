"""What the ``%%gradcheck`` cell wrote and called, read from its syntax tree (no user code runs).

The ranking puts what the cell itself assigned, defined, changed or called first, and an object is
checked on the data the cell passed its method (``model.loss(Xs, ys)``).
"""

from __future__ import annotations

import ast
from dataclasses import dataclass, field


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
    found.tree = tree  # the calls in it decide a loss's arguments (losses.py)
    return found


@dataclass
class CellFacts:
    """What the plan stage knows of the user's cells: the names the %%gradcheck cell wrote, and
    the calls it made (``{"model.loss": (("Xs", "ys"), {})}``)."""

    names: set = field(default_factory=set)
    calls: dict = field(default_factory=dict)
    tree: object = None  # the cell's syntax tree

    @classmethod
    def of(cls, prefer) -> CellFacts:
        """From what ``api.gradcheck`` was given: a CellFacts, the magic's CellNames, or names."""
        if isinstance(prefer, CellFacts):
            return prefer
        return cls(set(prefer or ()), dict(getattr(prefer, "calls", {}) or {}), getattr(prefer, "tree", None))
