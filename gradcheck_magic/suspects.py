"""Which line is wrong: the backward's data flow, narrowed by the verdicts, ranked by the hints.

The backward's source (a notebook cell's, kept by IPython in ``linecache``, a module's or a
method's) is parsed into *steps*, one per statement that gives a value a name, each knowing the
steps it reads.  A returned gradient (dict key, tuple position, ``self.dweights``, or the whole
return value) depends on the steps its closure reaches.  A call of one of the user's own functions
(defined beside the backward: ``affine_backward`` inside ``model.loss``) is followed into that
function, each call in its own context, so a gradient taken from its second output reaches the
lines behind that output and no others.  The lines that feed a failing block and no passing block
are the suspects; what the diagnosis found (its hints' kind and number: a constant ratio, a flipped
sign, a transpose, a missing mask or keepdims, an error proportional to the weights) ranks them; the
cost's own lines join them when the data fit a cost that is wrong (an L2 term counted twice, every
block off by one factor).  Where the flow cannot be followed (no source, exec, keys built at run
time, a gradient read from another object), the finding says so instead of guessing.

The work is linear in the source: each statement is parsed and its text cut once, the names in
scope live in overlays that compound statements join by what they wrote, and the per-line rules
look their twins up in indexes; each failing block then walks only the steps it reaches.
Pure: no IPython import.
"""

from __future__ import annotations

import ast
import builtins
import heapq
import html
import inspect
import re
import textwrap
from collections import ChainMap
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import NamedTuple

import numpy as np

from . import palette
from .diagnosis import RATIO_KINDS, weight_multiple

NOTHING = "no line can be singled out"
FIT = 1e-3  # as in diagnosis: a ratio is taken from data that fit it this closely
CLOSE = 2e-2  # a literal, an argument or an L2 factor "matches" a measured number within this fraction
MODULES = {"np", "numpy", "math", "scipy", "torch"}  # calls on these update nothing
REG_NAMES = ("lambd", "lambda_", "lam", "reg", "reg_lambda", "l2_lambda", "l2")  # names of the L2 strength
COUNT_NAMES = ("m", "N", "n_samples", "num_examples", "batch_size")  # names of the number of examples
GRAD_PREFIXES = ("d", "grad_", "d_")
BUILTINS = set(dir(builtins))  # calls to these are no helpers of the user's
NO_FIT, WEAK, STRONG = 0, 1, 2  # how well a line fits the kind of bug: not at all, plausibly, a match
MAX_SHOWN = 80  # characters of the top suspect shown in the table (the full line is in suspects())
MAX_RANKED = 12  # lines kept per block, most likely first (a long backward has hundreds of candidates)
MAX_DEPTH = 4  # calls followed into the user's functions, nested this deep at most
MAX_CONTEXTS = 256  # calls followed in one analysis at most (each call site is followed on its own)
MAX_LISTED = 6  # blocks a reason names one by one
KIND_ORDER = ("sign", "missing_m", "extra_m", "ratio", "transposed", "keepdims", "l2")  # which hint ranks
PASS_ON = "pass on"  # a ``return f(...)``: the caller's tuple position goes on into f


class Suspect(NamedTuple):
    """One line that may hold the bug, and why it is suspected."""

    function: str
    lineno: int  # as tracebacks count: the line in the cell, module or file
    line: str  # the statement's own text, on one line
    reason: str

    def __str__(self) -> str:
        return f"{self.function}:{self.lineno}  {self.line}"


class Unfollowable(Exception):
    """The data flow of a function cannot be followed; the message says why."""


@dataclass(eq=False)
class Call:
    """A call of one of the user's own functions: which of its outputs the step takes and which of
    the caller's steps each of its parameters reads."""

    fn: Callable
    name: str  # as the caller wrote it: ``affine_backward``, ``self.helper``
    position: object  # the tuple position taken, None for the whole value, PASS_ON for ``return f(...)``
    args: dict  # parameter -> set of the caller's steps


@dataclass(eq=False)
class Step:
    """One statement that gives a value a name; ``deps`` are the steps it reads."""

    function: str
    lineno: int
    text: str
    target: str
    value: ast.AST | None
    reads: frozenset
    deps: set = field(default_factory=set)
    op_on_target: type | None = None  # Div for ``x = x / k`` and ``x /= k``
    packaging: bool = False  # only puts a value into the returned dict or tuple (or an argument)
    order: int = 0  # creation order within its function: ties on a line are broken by it
    param: bool = False  # a parameter: in a followed call, the caller's argument feeds it
    call: Call | None = None  # the value is this call's result, followed into the callee
    opaque: tuple = ()  # helpers the line calls whose bodies cannot be followed


@dataclass
class Flow:
    """The steps of one function and which of them each output (gradient) is defined by."""

    function: str
    start: int  # line number of the ``def``
    lines: list  # the function's source lines
    steps: list
    outputs: dict  # key ("dW1", 0, "self.dweights", or None for the whole value) -> set of steps
    dynamic: str = ""  # why some keys cannot be named (keys built at run time)

    def closure(self, direct) -> set:
        """Every step of this function the given steps read, directly or through others."""
        seen, todo = set(), list(direct)
        while todo:
            step = todo.pop()
            if step not in seen:
                seen.add(step)
                todo.extend(step.deps)
        return seen

    def computes(self, name: str) -> bool:
        """Whether a line here gives ``name`` a value (a method call on it, ``self.loss(x)``, does not)."""
        return any(
            not (
                isinstance(s.value, ast.Call)
                and isinstance(s.value.func, ast.Attribute)
                and _dotted(s.value.func.value) == name
            )
            for s in self.by_target.get(name, ())
            if not s.param
        )

    def output_for(self, block: str, position: int | None, single: bool):
        """The steps defining ``block``'s gradient, or None when this function does not give it."""
        leaf = block.split(".")[-1]
        names = [p + leaf for p in GRAD_PREFIXES] + [leaf]
        for key in names + [f"self.{n}" for n in names]:
            if key in self.outputs:
                return self.outputs[key]
        if position is not None and position in self.outputs:
            return self.outputs[position]
        if single and None in self.outputs:
            return self.outputs[None]
        return None

    # ---- indexes, so that the per-line rules look their twins up instead of scanning every step
    @cached_property
    def by_target(self) -> dict:
        found = {}
        for s in self.steps:
            found.setdefault(s.target, []).append(s)
        return found

    @cached_property
    def by_twin(self) -> dict:
        """Layer-free target (``dZ#``) -> its steps with a value (not parameters)."""
        found = {}
        for s in self.steps:
            if not s.param:
                found.setdefault(_twin(s.target), []).append(s)
        return found

    def twins(self, step: Step, keep: Callable, targets: int = 2) -> list:
        """Steps of ``step``'s twin variables that ``keep`` accepts, the first of up to ``targets``
        distinct variables other than the step's own (enough for every rule that asks)."""
        cache = self.__dict__.setdefault("_twins", {})
        key = (_twin(step.target), keep)
        if key not in cache:
            firsts = {}
            for s in self.by_twin.get(key[0], ()):
                if keep(s) and s.target not in firsts:
                    firsts[s.target] = s
            cache[key] = firsts
        return [s for t, s in cache[key].items() if t != step.target][:targets]

    @cached_property
    def updates_by_twin(self) -> dict:
        """Layer-free target -> layer-free text of an in-place update -> the first such step per variable."""
        found = {}
        for s in self.steps:
            if s.op_on_target is not None:
                per_text = found.setdefault(_twin(s.target), {}).setdefault(_twin(s.text), {})
                per_text.setdefault(s.target, s)
        return found


# ---- source -> flow ---------------------------------------------------------------------------------
def _source(fn: Callable):
    fn = getattr(fn, "__func__", fn)
    fn = inspect.unwrap(fn)
    if not (inspect.isfunction(fn) or inspect.ismethod(fn)):
        raise Unfollowable(f"{getattr(fn, '__name__', fn)!r} is not a Python function")
    try:
        lines, start = inspect.getsourcelines(fn)
    except (OSError, TypeError) as err:
        raise Unfollowable(f"the source of {fn.__name__} is not available ({err})") from None
    name = fn.__qualname__ if "<" not in fn.__qualname__ else fn.__name__  # Layer_Dense.backward
    return name, lines, start


def _dotted(node) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def _reads(node) -> set:
    """Names (and dotted attribute chains such as ``self.inputs``) an expression reads."""
    found = set()
    for sub in ast.walk(node) if node is not None else ():
        if isinstance(sub, (ast.Name, ast.Attribute)) and isinstance(getattr(sub, "ctx", None), ast.Load):
            name = _dotted(sub)
            if name:
                found.add(name)
                found.add(name.split(".")[0])
    return found


def _key(node) -> object | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, (str, int)) else None


class _Resolver:
    """Which of the user's own functions a call names: a function of the backward's namespace (its
    globals or closure) or a method of its class, defined in the same namespace.  Library code
    (numpy, another module) is never followed."""

    def __init__(self, fn: Callable):
        self.owner = type(fn.__self__) if inspect.ismethod(fn) else None
        fn = inspect.unwrap(getattr(fn, "__func__", fn))
        self.globals = getattr(fn, "__globals__", {})
        code, cells = getattr(fn, "__code__", None), getattr(fn, "__closure__", None) or ()
        self.local = {}
        for name, cell in zip(code.co_freevars if code else (), cells):
            try:
                self.local[name] = cell.cell_contents
            except ValueError:  # an empty cell
                continue
        if self.owner is None:
            parts = getattr(fn, "__qualname__", "").split(".")
            if len(parts) > 1 and "<locals>" not in parts:
                owner = self.globals.get(parts[0])
                for part in parts[1:-1]:
                    owner = inspect.getattr_static(owner, part, None)
                self.owner = owner if inspect.isclass(owner) else None

    def __call__(self, func) -> tuple | None:
        """(function, whether it is called bound) for a call's ``func`` node, or None."""
        name = _dotted(func)
        if name is None:
            return None
        bound = False
        if "." not in name:
            found = self.local.get(name, self.globals.get(name))
        elif name.count(".") == 1 and name.startswith("self.") and self.owner is not None:
            found = inspect.getattr_static(self.owner, name[5:], None)
            if isinstance(found, staticmethod):
                found = found.__func__
            elif isinstance(found, classmethod):
                found, bound = found.__func__, True
            else:
                bound = True
        else:
            return None
        if inspect.isfunction(found):
            found = inspect.unwrap(found)
        if not inspect.isfunction(found) or found.__globals__ is not self.globals:
            return None
        return found, bound


EMPTY = frozenset()


class _Builder:
    """Walks a function body once, keeping the steps that reach each name (reaching definitions).

    ``env`` maps a name (or ``grads[dW1]``) to the steps that may have given its value; a compound
    statement runs its bodies in overlays (``ChainMap`` children) and joins only what they wrote."""

    def __init__(self, name: str, source: str, offset: int, resolve: Callable | None = None):
        self.name, self.source, self.offset, self.resolve = name, source, offset, resolve
        self.lines = re.split(r"\r\n|\r|\n", source)  # as ast numbers them
        self.steps, self.returns, self.dynamic = [], {}, ""
        self.keyed = set()  # names that have held keyed entries (grads[dW1]): only these have stale keys

    def text(self, node) -> str:
        """The statement on one line, cut from the lines once split (ast.get_source_segment splits
        the whole source on every call, which made long backwards quadratic); a compound statement
        (``for l in range(L):``) is its first line."""
        first, last = node.lineno - 1, node.end_lineno - 1
        if hasattr(node, "body"):
            return self.lines[first].strip()
        if first == last:
            parts = [self.lines[first].encode()[node.col_offset : node.end_col_offset].decode()]
        else:
            parts = [self.lines[first].encode()[node.col_offset :].decode()]
            parts += self.lines[first + 1 : last]
            parts.append(self.lines[last].encode()[: node.end_col_offset].decode())
        return " ".join(part.strip().rstrip("\\").strip() for part in parts).strip()

    def new(self, node, target, value, reads, deps, **kw) -> Step:
        step = Step(
            self.name,
            node.lineno + self.offset,
            self.text(node),
            target,
            value,
            frozenset(reads),
            set(deps),
            **kw,
        )
        step.order = len(self.steps)
        self.steps.append(step)
        return step

    def linked(self, value) -> tuple | None:
        """(function, bound) when ``value`` is a call of one of the user's functions."""
        if self.resolve is None or not isinstance(value, ast.Call):
            return None
        return self.resolve(value.func)

    def value_deps(self, node, expr, env) -> tuple:
        """The steps an expression's value comes from, and the helpers it calls that are not
        followed.  A call of the user's own function becomes a step of its own whose value the
        callee gives."""
        deps, opaque = set(), []
        todo = [expr] if expr is not None else []
        while todo:
            sub = todo.pop()
            if isinstance(sub, ast.Call):
                found = self.linked(sub)
                if found is not None:
                    call = self.call(node, sub, found, None, env)
                    deps.add(self.new(node, "", sub, _reads(sub), call[1], packaging=True, call=call[0]))
                    continue
                if isinstance(sub.func, ast.Name) and sub.func.id not in BUILTINS:
                    opaque.append(sub.func.id)
            if isinstance(sub, (ast.Name, ast.Attribute)) and isinstance(getattr(sub, "ctx", None), ast.Load):
                name = _dotted(sub)
                if name:
                    deps |= env.get(name, EMPTY)
                    deps |= env.get(name.split(".")[0], EMPTY)
            todo.extend(ast.iter_child_nodes(sub))
        return deps, tuple(dict.fromkeys(reversed(opaque)))

    def call(self, node, expr: ast.Call, found: tuple, position, env) -> tuple:
        """The ``Call`` of a user function: each parameter's argument steps; and the steps the call
        reads, for when the callee cannot be followed after all."""
        fn, bound = found
        try:
            params = list(inspect.signature(fn).parameters.values())[1 if bound else 0 :]
        except (TypeError, ValueError):
            params = []
        positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        rest = [p.name for p in params if p.kind == p.VAR_POSITIONAL]
        extra = [p.name for p in params if p.kind == p.VAR_KEYWORD]
        names = {p.name for p in params}
        args, spread, everything = {}, set(), set()
        for i, arg in enumerate(expr.args):
            steps = self.value_deps(node, arg.value if isinstance(arg, ast.Starred) else arg, env)[0]
            everything |= steps
            if isinstance(arg, ast.Starred):
                spread |= steps
            elif i < len(positional):
                args[positional[i]] = steps
            elif rest:
                args[rest[0]] = args.get(rest[0], set()) | steps
            else:
                spread |= steps
        for keyword in expr.keywords:
            steps = self.value_deps(node, keyword.value, env)[0]
            everything |= steps
            if keyword.arg in names:
                args[keyword.arg] = steps
            elif keyword.arg is not None and extra:
                args[extra[0]] = args.get(extra[0], set()) | steps
            else:
                spread |= steps
        if spread:  # *args or **kwargs at the call: any parameter may take them
            for name in names:
                args[name] = args.get(name, set()) | spread
        reads = self.value_deps(node, expr.func, env)[0]
        return Call(fn, _dotted(expr.func) or "", position, args), everything | reads

    def step(self, node, target, value, env, extra=(), op=None, packaging=False, position=None) -> Step:
        reads = _reads(value) | set(extra)
        if op is None and isinstance(value, ast.BinOp) and _dotted(value.left) == target:
            op = type(value.op)  # x = x / k
        found = self.linked(value) if op is None and not packaging else None
        if found is not None:  # x, dw, db = affine_backward(dout, cache): the value is the callee's
            call, deps = self.call(node, value, found, position, env)
            return self.new(node, target, value, reads, deps, op_on_target=op, call=call)
        deps, opaque = self.value_deps(node, value, env)
        for name in extra:
            deps |= env.get(name, EMPTY)
        return self.new(node, target, value, reads, deps, op_on_target=op, packaging=packaging, opaque=opaque)

    def assign(self, node, target, value, env, op=None, position=None):
        if isinstance(target, (ast.Tuple, ast.List)):
            unpacked = isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts)
            for i, sub in enumerate(target.elts):
                if unpacked:
                    self.assign(node, sub, value.elts[i], env, op)
                else:  # a, b = f(x): each name takes its position of the one value
                    self.assign(node, sub, value, env, op, i)
            return
        if isinstance(target, ast.Starred):
            target = target.value
        name = _dotted(target)
        if name is not None:
            extra = {name} if op is not None else set()
            if op is None and name in self.keyed:  # a new value: the keys stored in the old one are gone
                for stale in [k for k in env if k.startswith(name + "[")]:
                    env[stale] = EMPTY
            if isinstance(value, ast.Dict):
                for key, item in zip(value.keys, value.values):
                    if _key(key) is not None:
                        self.keyed.add(name)
                        env[f"{name}[{_key(key)}]"] = {self.step(node, name, item, env, packaging=True)}
            env[name] = {self.step(node, name, value, env, extra, op, position=position)}
            return
        if isinstance(target, ast.Subscript):
            base = _dotted(target.value)
            if base is None:
                return
            key = _key(target.slice)
            if key is not None:  # grads["dW1"] = ...: that key alone, not the rest of the dict
                extra = {f"{base}[{key}]"} if op is not None else set()
                update = self.step(node, base, value, env, extra, op, position=position)
                self.keyed.add(base)
                env[f"{base}[{key}]"] = {update}
                env[base] = env.get(base, EMPTY) | {update}
                return
            if _builds_a_name(target.slice):  # grads["dW" + str(l)]; not dZ[Z <= 0] or x[i]
                self.dynamic = self.dynamic or f"keys built at run time ({self.text(target)})"
            env[base] = {self.step(node, base, value, env, {base} | _reads(target.slice), op)}

    def block(self, body, env) -> None:
        for node in body:
            self.statement(node, env)

    def branch(self, body, env) -> ChainMap:
        """``body`` run in an overlay of ``env``; the overlay holds what it wrote."""
        child = env.new_child()
        self.block(body, child)
        return child

    @staticmethod
    def join(env, *overlays, into=None) -> ChainMap:
        """Write into ``into`` (by default ``env``), for every name an overlay wrote, the union of
        what ``env`` and every overlay see for it: a value any path gave may reach what follows."""
        into = env if into is None else into
        depth = len(env.maps)
        written = set()
        for overlay in overlays:
            for layer in overlay.maps[: len(overlay.maps) - depth]:
                written.update(layer)
        for name in written:
            into[name] = env.get(name, EMPTY).union(*(o.get(name, EMPTY) for o in overlays))
        return into

    def statement(self, node, env) -> None:
        if isinstance(node, ast.Assign):
            for target in node.targets:
                self.assign(node, target, node.value, env)
        elif isinstance(node, ast.AugAssign):
            self.assign(node, node.target, node.value, env, type(node.op))
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            self.assign(node, node.target, node.value, env)
        elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Call):
            func = node.value.func
            base = _dotted(func.value) if isinstance(func, ast.Attribute) else None
            if base and base.split(".")[0] not in MODULES:  # grads.update(...), caches.append(...)
                env[base] = {self.step(node, base, node.value, env, {base})}
        elif isinstance(node, ast.Return) and node.value is not None:
            self.ret(node, env)
        elif isinstance(node, ast.If):
            self.join(env, self.branch(node.body, env), self.branch(node.orelse, env))
        elif isinstance(node, (ast.For, ast.While)):
            if isinstance(node, ast.For):
                self.assign(node, node.target, node.iter, env)
            once = self.branch(node.body, env)
            again = self.join(env, once, into=env.new_child())  # what one pass defines reaches the next
            twice = self.branch(node.body, again)
            self.join(env, twice, self.branch(node.orelse, twice))
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            self.block(node.body, env)
        elif isinstance(node, ast.Try):
            after = self.branch(node.body, env)
            handlers = []
            for handler in node.handlers:
                entry = self.join(env, after, into=env.new_child())
                handlers.append(self.branch(handler.body, entry))
            self.join(env, after, *handlers)
            self.block(node.finalbody, env)

    def ret(self, node, env):
        value = node.value
        if isinstance(value, ast.Dict):
            for key, item in zip(value.keys, value.values):
                if _key(key) is not None:
                    self.add(_key(key), {self.step(node, str(_key(key)), item, env, packaging=True)})
        elif isinstance(value, ast.Tuple):
            for position, item in enumerate(value.elts):
                self.add(position, {self.step(node, str(position), item, env, packaging=True)})
                if isinstance(item, ast.Name):  # return loss, grads
                    self.keys_of(item.id, env)
        elif isinstance(value, ast.Name):
            self.keys_of(value.id, env)
            self.add(None, env.get(value.id, EMPTY))
            return
        self.add(None, {self.step(node, "return", value, env, position=PASS_ON)})

    def keys_of(self, name: str, env):
        """The keys stored in a returned dict (``grads["dW1"] = ...`` or a dict literal)."""
        if name not in self.keyed:
            return
        for key, steps in env.items():
            if steps and key.startswith(name + "["):
                self.add(_unquote(key[len(name) + 1 : -1]), steps)

    def add(self, key, steps):
        self.returns.setdefault(key, set()).update(steps)


def _builds_a_name(node) -> bool:
    return _has(node, ast.JoinedStr) or any(
        isinstance(n, ast.Constant) and isinstance(n.value, str) for n in ast.walk(node)
    )


def _unquote(key: str):
    return int(key) if key.isdigit() else key


def flow_of(fn: Callable, follow: bool = True) -> Flow:
    """The data flow of ``fn``; raises :class:`Unfollowable` when it cannot be read.  With ``follow``,
    calls of the user's own functions are linked (``Step.call``) for the analysis to follow."""
    name, lines, start = _source(fn)
    source = textwrap.dedent("".join(lines))
    try:
        tree = ast.parse(source)
    except SyntaxError:
        raise Unfollowable(f"the source of {name} cannot be parsed on its own") from None
    defs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    if not defs:
        raise Unfollowable(f"{name} is not defined by a def statement")
    calls = {_dotted(n.func) for n in ast.walk(defs[0]) if isinstance(n, ast.Call)}
    if calls & {"exec", "eval"}:
        raise Unfollowable(f"{name} calls exec/eval")
    builder = _Builder(name, source, start - 1, _Resolver(fn) if follow else None)
    env = ChainMap({})
    arguments = defs[0].args
    for arg in (
        arguments.posonlyargs
        + arguments.args
        + arguments.kwonlyargs
        + [a for a in (arguments.vararg, arguments.kwarg) if a is not None]
    ):
        env[arg.arg] = {builder.new(defs[0], arg.arg, None, (), (), packaging=True, param=True)}
    builder.block(defs[0].body, env)
    outputs = dict(builder.returns)
    for key, steps in env.items():
        if key.startswith("self.") and key.count(".") == 1 and steps:  # self.dweights = ...
            outputs[key] = steps
    return Flow(name, start, [line.rstrip("\n") for line in lines], builder.steps, outputs, builder.dynamic)


# ---- the calls followed: each call site is a context of its own -------------------------------------
@dataclass(eq=False)
class _Context:
    """One followed call: the callee's flow, the call that entered it, the position asked of it."""

    flow: Flow
    parent: _Context | None = None
    call: Call | None = None
    position: object = None
    depth: int = 0
    codes: frozenset = EMPTY  # the functions on the way here (a recursive call is not followed)
    direct: set = field(default_factory=set)  # the callee's steps giving the position asked


class _Graph:
    """The backward's flow and the flows of the user's functions it calls, walked as one: a step
    whose value a followed call gives reads the callee's output, and a callee's parameter reads
    the argument of the call site that entered it (not of every site: ``affine_backward`` called for
    two layers is two contexts)."""

    def __init__(self, flow: Flow, fn: Callable):
        self.flows = {flow.function: flow}
        self.by_code = {}
        self.children = {}
        self.root = _Context(flow, codes=frozenset({_code(fn)}))

    def flow(self, fn: Callable) -> Flow | None:
        code = _code(fn)
        if code not in self.by_code:
            try:
                flow = flow_of(fn)
            except Unfollowable:
                flow = None
            self.by_code[code] = flow
            if flow is not None:
                self.flows.setdefault(flow.function, flow)
        return self.by_code[code]

    def enter(self, context: _Context, step: Step) -> _Context | None:
        """The context of the call ``step`` makes, or None where it is not followed (no source,
        recursion, too deep, too many, or the callee gives nothing for the position)."""
        key = (context, step)
        if key not in self.children:
            self.children[key] = self._enter(context, step)
        return self.children[key]

    def _enter(self, context: _Context, step: Step) -> _Context | None:
        call = step.call
        code = _code(call.fn)
        if context.depth >= MAX_DEPTH or code in context.codes or len(self.children) > MAX_CONTEXTS:
            return None
        flow = self.flow(call.fn)
        if flow is None:
            return None
        position = context.position if call.position == PASS_ON else call.position
        outputs = flow.outputs
        direct = outputs.get(position) if isinstance(position, int) and position in outputs else None
        direct = direct if direct is not None else outputs.get(None, set())
        if not direct:
            return None
        return _Context(flow, context, call, position, context.depth + 1, context.codes | {code}, direct)

    def followed(self, call: Call) -> bool:
        return self.flow(call.fn) is not None

    def _next(self, step: Step, context: _Context, own: bool = False):
        """The (step, context) pairs ``step`` reads; for ``own``, only past steps that carry a value."""
        if step.call is not None:
            child = self.enter(context, step)
            if child is not None:
                return [(d, child) for d in child.direct]
        if step.param:
            if context.call is None:
                return []
            return [(d, context.parent) for d in context.call.args.get(step.target, ())]
        if own:
            deps = [d for d in step.deps if not d.param]
            if not ((step.packaging or isinstance(step.value, ast.Name)) and deps):
                return None  # the step computes the value: it is the block's own line
            return [(d, context) for d in deps]
        return [(d, context) for d in step.deps]

    def reach(self, steps, context: _Context | None = None) -> set:
        """Every step the given ones read, through followed calls, in any function."""
        context = context or self.root
        seen, todo = set(), [(s, context) for s in steps]
        while todo:
            pair = todo.pop()
            if pair not in seen:
                seen.add(pair)
                todo.extend(self._next(*pair))
        return {step for step, _ in seen}

    def masks(self, roots: list) -> dict:
        """(step, context) -> bitmask of the roots (lists of steps) that reach it: one depth-first
        walk for the order, one pass in that order, whatever the number of roots."""
        order, seen = [], set()
        for steps in roots:
            for start in ((s, self.root) for s in steps):
                if start in seen:
                    continue
                seen.add(start)
                stack = [(start, iter(self._next(*start)))]
                while stack:
                    node, following = stack[-1]
                    for pair in following:
                        if pair not in seen:
                            seen.add(pair)
                            stack.append((pair, iter(self._next(*pair))))
                            break
                    else:
                        stack.pop()
                        order.append(node)
        mask = {}
        for bit, steps in enumerate(roots):
            for s in steps:
                mask[(s, self.root)] = mask.get((s, self.root), 0) | 1 << bit
        for node in reversed(order):  # every reader before what it reads
            m = mask.get(node, 0)
            if m:
                for pair in self._next(*node):
                    mask[pair] = mask.get(pair, 0) | m
        return mask

    def own(self, steps) -> set:
        """The lines that compute a gradient, past the dict, tuple, call or argument that only
        carries it out (``grads["W2"]`` taken from ``affine_backward``'s ``dw``)."""
        own, seen, todo = set(), set(), [(s, self.root) for s in steps]
        while todo:
            pair = todo.pop()
            if pair in seen:
                continue
            seen.add(pair)
            following = self._next(*pair, own=True)
            if following is None:
                own.add(pair[0])
            else:
                todo.extend(following)
        return own


def _code(fn):
    fn = inspect.unwrap(getattr(fn, "__func__", fn))
    return getattr(fn, "__code__", fn)


# ---- verdicts -> suspects -----------------------------------------------------------------------
@dataclass
class Finding:
    """Per failing block: the ranked suspects, or why none can be named."""

    ranked: dict = field(default_factory=dict)  # block -> [Suspect, ...]
    why_none: dict = field(default_factory=dict)  # block -> reason no line is named
    sources: dict = field(default_factory=dict)  # function -> (first line number, source lines)

    def top(self, block: str) -> str:
        """The table's entry: the likeliest line, shortened; "" where there is none."""
        if not self.ranked.get(block):
            return ""
        text = str(self.ranked[block][0])
        return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 1] + "…"

    def note(self, block: str) -> str:
        """For the note: why the top line is suspected, or why no line can be singled out."""
        if self.ranked.get(block):
            return f"why that line: {self.ranked[block][0].reason}"
        return f"{NOTHING}: {self.why_none[block]}" if block in self.why_none else ""


@dataclass
class _Case:
    """What the data say about one failing block."""

    name: str
    kind: str | None
    ratio: float | None  # analytic / numeric, when it is a constant
    l2: float | None  # analytic − numeric ≈ l2 × W


def _case(outcome) -> _Case:
    """The kind of bug the diagnosis found and the number behind it, read from its hints' data."""
    hints = {h.kind: h for h in outcome.hints}
    kind = next((k for k in KIND_ORDER if k in hints), None)
    number = hints[kind].ratio if kind else None
    return _Case(
        outcome.name,
        kind,
        number if kind in RATIO_KINDS else None,
        number if kind == "l2" else None,
    )


def _ratio(outcome) -> float | None:
    if outcome.analytic is None or outcome.analytic.shape != outcome.numeric.shape:
        return None
    sel = outcome.judged
    analytic, numeric = outcome.analytic[sel], outcome.numeric[sel]
    nn = float(numeric @ numeric)
    if nn == 0:
        return None
    c = float(analytic @ numeric) / nn
    return c if np.linalg.norm(analytic - c * numeric) <= FIT * np.linalg.norm(analytic) else None


def _close(x: float, target: float) -> bool:
    return abs(x - target) <= CLOSE * max(abs(target), 1e-300)


def _rounded(ratio: float | None):
    """A ratio to 4 digits: blocks broken by one bug share it (their ratios differ by round-off),
    so what a line shows for it is worked out once."""
    return None if ratio is None else float(f"{ratio:.4g}")


def _twin(name: str) -> str:
    """Layer-free name: dZ1 and dZ2 are twins (``dZ#``)."""
    return re.sub(r"\d+", "#", name)


def _scaling_nodes(node) -> list:
    """The nodes of a line that scale its value: not exponents, keyword arguments (``axis=-1``)
    or indices."""
    skip = set()
    for sub in ast.walk(node):
        if isinstance(sub, ast.BinOp) and isinstance(sub.op, ast.Pow):
            skip.update(id(n) for n in ast.walk(sub.right))
        elif isinstance(sub, ast.Call):
            skip.update(id(n) for k in sub.keywords for n in ast.walk(k.value))
            if (_dotted(sub.func) or "").endswith("power"):
                skip.update(id(n) for a in sub.args[1:] for n in ast.walk(a))
        elif isinstance(sub, ast.Subscript):
            skip.update(id(n) for n in ast.walk(sub.slice))
    return [n for n in ast.walk(node) if id(n) not in skip]


def _literals(node) -> list:
    """Numeric literals that scale the line's value."""
    return [
        float(n.value)
        for n in _scaling_nodes(node)
        if isinstance(n, ast.Constant) and isinstance(n.value, (int, float)) and not isinstance(n.value, bool)
    ]


def _matching_literal(node, ratio: float) -> float | None:
    """A literal factor k of the line that the ratio analytic/numeric equals (k or 1/k)."""
    for literal in _literals(node):
        if literal not in (0.0, 1.0) and (_close(abs(ratio), literal) or _close(abs(ratio), 1 / literal)):
            return literal
    return None


def _count_reads(node) -> int:
    """How often the line reads the number of examples (``m``)."""
    return sum(isinstance(n, ast.Name) and n.id in COUNT_NAMES for n in ast.walk(node))


def _root(node) -> str:
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return node.id if isinstance(node, ast.Name) else ""


def _is_fetch(node) -> bool:
    """``self.layers["Affine1"].dW``: a value read from an object, not computed on the line."""
    if not isinstance(node, (ast.Attribute, ast.Subscript)):
        return False
    while isinstance(node, (ast.Attribute, ast.Subscript)):
        node = node.value
    return isinstance(node, ast.Name)


def _has(node, kind) -> bool:
    return any(isinstance(n, kind) for n in ast.walk(node)) if node is not None else False


def _negated(node) -> bool:
    return any(isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub) for n in _scaling_nodes(node))


def _swappable(node) -> bool:
    """A subtraction of two computed values (``Y - A2``), whose operands swapped flip the sign; not
    ``1 - A1 ** 2``, the usual form of a derivative."""
    return any(
        isinstance(n, ast.BinOp)
        and isinstance(n.op, ast.Sub)
        and not isinstance(n.left, ast.Constant)
        and not isinstance(n.right, ast.Constant)
        for n in _scaling_nodes(node)
    )


def _sum_without_keepdims(node) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Call) and (_dotted(sub.func) or "").split(".")[-1] == "sum":
            keep = [k for k in sub.keywords if k.arg == "keepdims"]
            if not keep or (isinstance(keep[0].value, ast.Constant) and keep[0].value.value is False):
                return True
    return False


def _matmul(node) -> bool:
    return any(
        (isinstance(n, ast.Call) and (_dotted(n.func) or "").split(".")[-1] in ("dot", "matmul"))
        or (isinstance(n, ast.BinOp) and isinstance(n.op, ast.MatMult))
        for n in ast.walk(node)
    )


def _is_reg(name: str) -> bool:
    return name.split(".")[-1] in REG_NAMES


def _adds_weight_term(step: Step, block: str) -> bool:
    """``grads["W1"] += self.reg * self.params["W1"]``: the line only adds a multiple of the block's
    own weights (no call, nothing but the weights, the L2 strength and m).  Such a line can only put
    an error proportional to the weights into the gradient."""
    if step.op_on_target not in (ast.Add, ast.Sub) or step.value is None:
        return False
    term = step.value
    if isinstance(term, ast.BinOp) and _dotted(term.left) == step.target:  # x = x + k * W, else x += k * W
        term = term.right
    leaf, mentions = block.split(".")[-1], False
    for node in ast.walk(term):
        if isinstance(node, (ast.Call, ast.Lambda, ast.Compare)):
            return False
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            if node.value != leaf:
                return False
            mentions = True
        names = (
            [node.id]
            if isinstance(node, ast.Name)
            else [node.attr]
            if isinstance(node, ast.Attribute)
            else []
        )
        for name in names:
            if name == leaf:
                mentions = True
            elif name not in REG_NAMES + COUNT_NAMES + ("self", "params", "parameters", "model"):
                return False
    return mentions


def _factor(x: float) -> str:
    """x as a multiple of λ/m: "λ/m", "λ/(2m)", "2λ/m"; "no" when it is 0."""
    if abs(x) < CLOSE:
        return "no"
    for k in range(1, 5):
        if _close(x, k):
            return "λ/m" if k == 1 else f"{k}λ/m"
        if _close(x, 1 / k):
            return f"λ/({k}m)"
    return f"{x:.3g}·λ/m"


def _describe(blocks) -> str:
    blocks = sorted(blocks)
    if len(blocks) > MAX_LISTED:
        return f"{', '.join(blocks[:3])} and {len(blocks) - 3} other blocks"
    return blocks[0] if len(blocks) == 1 else ", ".join(blocks[:-1]) + " and " + blocks[-1]


class _Ranker:
    """Scores the candidate lines of one failing block by the rule its kind of bug calls for.
    What a line shows for a kind of bug is worked out once per line and kind, whichever block asks."""

    def __init__(self, graph: _Graph, cost_flows: list, scalars: dict, ctx, cases: dict, all_fail: bool):
        self.graph, self.cost_flows, self.scalars, self.ctx, self.cases = (
            graph,
            cost_flows,
            scalars,
            ctx,
            cases,
        )
        ratios = [c.ratio for c in cases.values()]
        # every block fails, all by one factor: the cost may be scaled instead
        self.uniform = all_fail and None not in ratios and all(_close(r, ratios[0]) for r in ratios)
        # the blocks whose sign is flipped: the line where the sign enters feeds exactly these
        self.flipped = frozenset(
            c.name for c in cases.values() if c.ratio is not None and _close(c.ratio, -1)
        )
        self.names = sorted(cases)  # bit i of a line's mask: it feeds the i-th failing block (alphabetical)
        self.bits = {name: i for i, name in enumerate(self.names)}
        self.flipped_mask = sum(1 << self.bits[n] for n in self.flipped)
        self.groups = {}  # (kind, ratio) -> mask of the blocks showing it, for the ratio kinds
        for c in cases.values():
            if c.ratio:
                key = _signature(c)
                self.groups[key] = self.groups.get(key, 0) | 1 << self.bits[c.name]
        self.memo = {}
        self.orders = {}
        self.cost_memo = {}
        self.cost_lines = [s for f in cost_flows for s in f.steps if any(_is_reg(r) for r in s.reads)]
        self.lines = {}  # (function, line) -> its first step; set by find_suspects
        self.line_mask = {}  # (function, line) -> the failing blocks it feeds, as bits

    def describe(self, mask: int) -> str:
        """The blocks of a mask, alphabetical (the first few when there are many)."""
        names, m = [], mask
        while m and len(names) <= MAX_LISTED:
            low = m & -m
            names.append(self.names[low.bit_length() - 1])
            m ^= low
        if mask.bit_count() > MAX_LISTED:
            return f"{', '.join(names[:3])} and {mask.bit_count() - 3} other blocks"
        return _describe(names)

    def flow(self, step: Step) -> Flow:
        return self.graph.flows[step.function]

    def evidence(self, case: _Case, step: Step, own: bool, fed: int) -> str | None:
        """Why this line fits the kind of bug the data show, or None; else the evidence the line
        shows for another failing block it feeds (b1's ratio for ``dA1 = ... * 3``)."""
        why = self.fits(case, step, own, fed)
        if why is None:
            others = [(m & -m, key) for key, m in ((k, fed & g) for k, g in self.groups.items()) if m]
            for low, key in sorted(others, key=lambda t: t[0]):
                other = self.cases[self.names[low.bit_length() - 1]]
                if key == _signature(case):
                    continue
                found = self.fits(other, step, own, fed)
                if found:
                    return f"{found} ({other.name} is off by it)"
        return why

    def fits(self, case: _Case, step: Step, own: bool, fed: int) -> str | None:
        """Why this line fits the kind of bug ``case`` shows, or None (once per line and kind)."""
        key = (step, _signature(case), own, case.name if own else None, fed == self.flipped_mask)
        if key not in self.memo:
            self.memo[key] = self._evidence(case, step, own, fed)
        return self.memo[key]

    def order(self, case: _Case) -> list:
        """Every line that feeds a failing block and no passing one, scored for the kind of bug
        ``case`` shows as if it were no block's own line, the likeliest first (once per kind)."""
        key = _signature(case)
        if key not in self.orders:
            scored = []
            for line, step in self.lines.items():
                fed = self.line_mask[line]
                why = self.evidence(case, step, False, fed)
                fits = STRONG if why else WEAK if self.built_here(case, step, fed) else NO_FIT
                scored.append((_rank_key(fits, fed, 0, step), line, fits, why))
            scored.sort(key=lambda t: t[0])
            self.orders[key] = scored
        return self.orders[key]

    def _evidence(self, case: _Case, step: Step, own: bool, fed: int) -> str | None:
        value, kind, ratio = step.value, case.kind, case.ratio
        if value is None:
            return None
        if kind == "sign" or (ratio is not None and _close(ratio, -1)):
            if _negated(value):
                return "a minus sign in the line"
            if _has(value, ast.Sub) and own:
                return "a subtraction in the block's own line: operands swapped?"
            if _swappable(value) and len(self.flipped) > 1 and fed == self.flipped_mask:
                return (
                    f"a subtraction in a line that feeds exactly the blocks whose sign is flipped "
                    f"({self.describe(fed)}): operands swapped?"
                )
            return None
        if ratio is not None and not _close(abs(ratio), 1):
            literal = _matching_literal(value, ratio)
            if literal is not None:
                return f"constant factor {literal:g} in the line"
        if kind == "missing_m" and not (step.reads & set(COUNT_NAMES)):
            twins = self.flow(step).twins(step, _reads_m)
            if twins:
                return f"no 1/m in the line ({twins[0].target}'s has one)"
        if kind == "extra_m" and _count_reads(value) > 1:
            return "1/m applied twice in the line"
        if kind == "transposed" and own and _matmul(value):
            return f"operand order: the product gives d{case.name.split('.')[-1]} transposed"
        if kind == "keepdims" and _sum_without_keepdims(value):
            return "np.sum without keepdims=True"
        if ratio is not None and not _close(abs(ratio), 1):
            scalar = self.scalar_evidence(step, ratio)
            if scalar:
                return scalar
        if ratio is None:  # a constant ratio is no mask or activation-derivative bug
            return self.mask_evidence(step) or self.missing_update(step)
        return None

    def missing_update(self, step: Step) -> str | None:
        """The other layer updates its twin in place (``dA1 = dA1 * D1``) and this one never does:
        the update belongs after this line, the variable's last definition."""
        if not self.last_definition(step) or not re.search(r"\d", step.target):
            return None
        mine = {_twin(s.text) for s in self.same_var(step)}
        updates = self.flow(step).updates_by_twin.get(_twin(step.target), {})
        for text, per_target in updates.items():
            if text in mine:
                continue
            other = next((s for t, s in per_target.items() if t != step.target), None)
            if other is not None:
                return f"{step.target} is never updated as {other.target} is: {other.text}"
        return None

    def scalar_evidence(self, step: Step, ratio: float) -> str | None:
        """A ratio equal to an argument's value (keep_prob): the step where the sibling layer
        applies it and this layer does not."""
        for arg, value in self.scalars.items():
            if arg in step.reads and (_close(ratio, value**2) or _close(ratio, value**-2)):
                return (
                    f"{arg} applied the wrong way in the line: analytic ≈ {ratio:.2f} × numeric = "
                    f"{arg}{'²' if _close(ratio, value**2) else '⁻²'} ({arg} = {value:g})"
                )
            if not (_close(ratio, value) or _close(ratio, 1 / value)):
                continue
            if arg in step.reads:
                return f"{arg} (= {value:g}, the ratio found) in the line"
            if not self.last_definition(step) or any(arg in s.reads for s in self.same_var(step)):
                continue
            for user in self.flow(step).twins(step, _Updates(arg)):
                verb = "divided" if user.op_on_target is ast.Div else "multiplied"
                return (
                    f"{step.target} is never {verb} by {arg} (= {value:g}, the ratio found), "
                    f"as {user.target} is"
                )
        return None

    def same_var(self, step: Step) -> list:
        return [s for s in self.flow(step).by_target.get(step.target, ()) if not s.param]

    def last_definition(self, step: Step) -> bool:
        same = self.same_var(step)
        return bool(same) and same[-1] is step

    def mask_evidence(self, step: Step) -> str | None:
        """dZ built without the comparison its twin lines have (the ReLU mask)."""
        if not re.match(r"^d[zZ]\d*$", step.target.split(".")[-1]) or _has(step.value, ast.Compare):
            return None
        twins = self.flow(step).twins(step, _compares, targets=1)
        if twins:
            return f"{step.target} is used without the ReLU mask that {twins[0].target} has"
        return None

    def built_here(self, case: _Case, step: Step, fed: int) -> str | None:
        """Weaker: a dZ that feeds several failing blocks, with no constant ratio to explain them
        (built on this line: a dZ a followed call gives is built in the callee)."""
        if step.call is not None and self.graph.followed(step.call):
            return None
        if case.ratio is None and fed.bit_count() > 1 and re.match(r"^d[zZ]\d*$", step.target.split(".")[-1]):
            return (
                f"{step.target} is built here and feeds {self.describe(fed)}: "
                "the activation derivative or mask?"
            )
        return None

    def cost_scale(self, case: _Case) -> list:
        """Every block off by one factor: the cost's own scale is as likely as a line all share.
        (fits, Step-like suspect) pairs for the lines of the cost that give the cost value."""
        key = _rounded(case.ratio)
        if key not in self.cost_memo:
            self.cost_memo[key] = self._cost_scale(case)
        return self.cost_memo[key]

    def _cost_scale(self, case: _Case) -> list:
        found = []
        m = self.ctx.m if self.ctx is not None else None
        for flow in self.cost_flows[:1]:
            direct = flow.outputs.get(0) or flow.outputs.get(None)  # (cost, cache) or the cost
            if not direct or case.ratio is None:
                continue
            reached = sorted(flow.closure(direct), key=lambda s: (s.lineno, s.order))
            own = sorted(_own(direct), key=lambda s: (s.lineno, s.order))
            for step in reached:
                literal = _matching_literal(step.value, case.ratio) if step.value is not None else None
                if literal is not None:
                    found.append(
                        (True, step, f"constant factor {literal:g} in the cost: every block is off by it")
                    )
                elif m and _close(case.ratio, m) and _count_reads(step.value) > 1:
                    found.append((True, step, "1/m twice in the cost: every block is off by m"))
            if (
                not found
                and m
                and _close(case.ratio, 1 / m)
                and not any(s.reads & set(COUNT_NAMES) for s in reached)
            ):
                found = [(True, own[-1], "the cost has no 1/m: every block is off by 1/m")] if own else []
            if not found and own:
                found = [
                    (
                        False,
                        own[-1],
                        f"every block is off by the same factor {case.ratio:.3g}: the cost's scale?",
                    )
                ]
        return found

    def l2(self, case: _Case, own: list) -> list:
        """The L2 term, in the backward or in the cost: both named, the likelier first."""
        ctx = self.ctx
        if case.l2 is None or ctx is None or not ctx.lambd or not ctx.m:
            return []
        unit = ctx.lambd / ctx.m
        backward = [s for s in own if s.value is not None]
        has_term = any(_is_reg(r) for s in backward for r in s.reads)
        cost_lines = self.cost_lines
        same = [c for c in self.cases.values() if c.l2 is not None and _close(c.l2, case.l2)]
        cost_first = has_term and len(same) > 1 and cost_lines
        beta = (case.l2 + unit) / unit  # the backward's coefficient, if the cost is right
        kappa = (unit - case.l2) / 2 / unit  # the cost's coefficient, if the backward is right
        fit = "no L2 term" if abs(beta) < CLOSE else f"{_factor(beta)}·{case.name}"
        in_cost_fit = "no L2 term of it" if abs(kappa) < CLOSE else f"{_factor(kappa)}·Σ{case.name}²"
        in_backward = [
            Suspect(
                s.function,
                s.lineno,
                s.text,
                f"the L2 term of {case.name}: if the cost is right, the data fit {fit} here, "
                f"not (λ/m)·{case.name}"
                if has_term
                else f"the L2 term (λ/m)·{case.name} is missing from the line",
            )
            for s in backward
        ]
        in_cost = [
            Suspect(
                s.function,
                s.lineno,
                s.text,
                f"the cost's L2 term: if the backward is right, the data fit {in_cost_fit} in the cost, "
                f"not λ/(2m)·Σ{case.name}²",
            )
            for s in cost_lines[:1]
        ]
        return in_cost + in_backward if cost_first else in_backward + in_cost


def _reads_m(step: Step) -> bool:
    return bool(step.reads & set(COUNT_NAMES))


def _compares(step: Step) -> bool:
    return _has(step.value, ast.Compare)


@dataclass(frozen=True)
class _Updates:
    """An in-place update by a scalar argument (``dA2 /= keep_prob``); hashable for the twin index."""

    arg: str

    def __call__(self, step: Step) -> bool:
        return self.arg in step.reads and step.op_on_target is not None


def _own(direct) -> set:
    """The lines of one function that compute a gradient, past the dict or tuple that only carries it out."""
    own, todo, seen = set(), list(direct), set()
    while todo:
        step = todo.pop()
        if step in seen:
            continue
        seen.add(step)
        deps = [d for d in step.deps if not d.param]
        if (step.packaging or isinstance(step.value, ast.Name)) and deps:
            todo.extend(deps)
        elif not step.param:
            own.add(step)
    return own


def _signature(case: _Case) -> tuple:
    return (case.kind, _rounded(case.ratio))


def _rank_key(fits: int, fed: int, origin: int, step: Step) -> tuple:
    """The ranking: how well the line fits, how many failing blocks it feeds, the backward before
    the cost, the later line first."""
    return (-fits, -fed.bit_count(), origin, -step.lineno, -step.order)


def _rank(ranker: _Ranker, case: _Case, own: set) -> tuple:
    """The lines feeding this block and no passing block, the likeliest first: the lines the kind
    of bug points at, then those feeding more failing blocks, then the later.  Returns how to
    count the candidates, the best MAX_RANKED as Suspects, whether the best fits the numbers, and
    whether a line was ruled out as an L2 term the data do not show.

    The lines come in the kind's order (worked out once); a block takes the first MAX_RANKED that
    feed it, and scores its own lines (where "in the block's own line" matters) itself."""
    bit = 1 << ranker.bits[case.name]
    mine = {(s.function, s.lineno) for s in own}
    mine = {line for line in mine if line in ranker.lines and ranker.line_mask[line] & bit}
    mine = {line for line in mine if ranker.lines[line] in own}
    ruled_out = False

    def allowed(line) -> bool:
        nonlocal ruled_out
        if case.kind != "l2" and _adds_weight_term(ranker.lines[line], case.name):
            ruled_out = True  # it adds a multiple of the weights, and the error is none: the data rule it out
            return False
        return True

    preferred = ranker.l2(case, [ranker.lines[line] for line in sorted(mine)]) if case.kind == "l2" else []
    named = {(s.function, s.lineno) for s in preferred}
    chosen, complete = [], True
    for key, line, fits, why in ranker.order(case):
        if ranker.line_mask[line] & bit and line not in mine and allowed(line):
            chosen.append((key, 0, ranker.lines[line], fits, why))
            if len(chosen) >= MAX_RANKED:
                complete = False
                break
    for line in mine - named:
        if allowed(line):
            step, fed = ranker.lines[line], ranker.line_mask[line]
            why = ranker.evidence(case, step, True, fed)
            fits = STRONG if why else WEAK if ranker.built_here(case, step, fed) else NO_FIT
            chosen.append((_rank_key(fits, fed, 0, step), 0, step, fits, why))
    backward = len(chosen) if complete else None  # more than MAX_RANKED: counted only if a message needs it
    if ranker.uniform:
        everything = (1 << len(ranker.names)) - 1
        chosen += [
            (_rank_key(WEAK if fits else NO_FIT, everything, 1, s), 1, s, WEAK if fits else NO_FIT, why)
            for fits, s, why in ranker.cost_scale(case)
        ]
    best = heapq.nsmallest(max(MAX_RANKED - len(preferred), 1), chosen, key=lambda t: t[0])
    ranked = preferred + [_suspect(ranker, case, t, backward) for t in best]
    fits = bool(preferred) or bool(best) and (best[0][4] is not None or best[0][3] != NO_FIT)

    def count() -> int:
        lines = backward
        if lines is None:
            lines = sum(
                1
                for line, m in ranker.line_mask.items()
                if m & bit
                and line not in named
                and (line in mine or not _adds_weight_term(ranker.lines[line], case.name))
            )
        return lines + len(preferred) + sum(1 for t in chosen if t[1] == 1)

    return count, ranked[:MAX_RANKED], fits, ruled_out


def _suspect(ranker: _Ranker, case: _Case, chosen: tuple, count: int) -> Suspect:
    _, origin, step, fits, why = chosen
    fed = ranker.line_mask.get((step.function, step.lineno), 0) if origin == 0 else 0
    if why is None and fits == WEAK:
        why = ranker.built_here(case, step, fed)
    if why is None:
        why = (
            f"the only line that feeds {ranker.describe(fed)} and no passing block"
            if count == 1
            else f"feeds {ranker.describe(fed)} and no passing block"
        )
    unfollowed = list(step.opaque) if origin == 0 else []
    if step.call is not None and not ranker.graph.followed(step.call):
        unfollowed.insert(0, step.call.name)
    if unfollowed:
        why += f"; or inside {unfollowed[0]}, whose body is not followed"
    return Suspect(step.function, step.lineno, step.text, why)


def find_suspects(
    backward: Callable, outcomes: list, ctx=None, costs=(), scalars=None, positions: dict | None = None
) -> Finding:
    """Rank the lines of ``backward`` (of the user's functions it calls, and of the cost functions
    ``costs``) for every failing block.

    ``outcomes`` are the engine's (status, analytic, numeric, hints); ``ctx`` the diagnosis context
    (m, λ, parameter values); ``scalars`` the backward's scalar arguments (``keep_prob``);
    ``positions`` maps a block to its place in a returned tuple (by default the blocks' order, when
    the tuple has one entry per block).
    """
    finding = Finding()
    failing = [o for o in outcomes if o.status == "fail"]
    if not failing:
        return finding
    try:
        flow = flow_of(backward)
    except Unfollowable as err:
        finding.why_none = {o.name: str(err) for o in failing}
        return finding
    graph = _Graph(flow, backward)
    cost_flows = _followable(costs)
    direct = _direct(flow, outcomes, positions)
    passing = {
        (s.function, s.lineno)
        for s in graph.reach(
            [s for o in outcomes if o.status == "pass" and o.name in direct for s in direct[o.name]]
        )
    }
    cases = _cases(failing)
    ranker = _Ranker(graph, cost_flows, scalars or {}, ctx, cases, len(failing) == len(outcomes) > 1)
    masks = graph.masks([direct.get(name, ()) for name in ranker.names])
    for (step, _), mask in masks.items():  # each line: its first step, and the failing blocks it feeds
        line = (step.function, step.lineno)
        if line not in passing:
            ranker.line_mask[line] = ranker.line_mask.get(line, 0) | mask
            if not step.packaging and (line not in ranker.lines or step.order < ranker.lines[line].order):
                ranker.lines[line] = step
    ranker.line_mask = {line: m for line, m in ranker.line_mask.items() if line in ranker.lines}
    for o in failing:
        if o.name not in direct and not flow.dynamic:
            continue  # the backward does not return it: the note already says "missing gradient"
        why = _unexplained(flow, o.name, direct)
        if why:
            finding.why_none[o.name] = why
            continue
        count, ranked, fits, ruled_out = _rank(ranker, cases[o.name], graph.own(direct[o.name]))
        if not ranked:
            finding.why_none[o.name] = f"every line that feeds {o.name} also feeds a passing block" + (
                f", or only adds a multiple of {o.name} (an L2 term), which the error is not"
                if ruled_out
                else ""
            )
            continue
        if len(outcomes) == 1 and not fits:  # one block: no contrast, only the numbers can name a line
            alone = _one_block(ranker, o, ctx, scalars or {})
            if alone is not None:
                if isinstance(alone, str):
                    finding.why_none[o.name] = alone
                else:
                    finding.ranked[o.name] = alone
                continue
        if not passing and not fits and len(ranked) > 1:
            # nothing passing rules a line out and no line fits the numbers: naming one is a guess
            finding.why_none[o.name] = (
                f"{count()} lines feed {o.name}, no passing block rules any of them out, "
                "and the numbers fit none in particular"
            )
            continue
        finding.ranked[o.name] = ranked
    flows = {**{f.function: f for f in cost_flows}, **graph.flows}
    for function in {s.function for ranked in finding.ranked.values() for s in ranked}:
        if function in flows:
            finding.sources[function] = (flows[function].start, flows[function].lines)
    return finding


# ---- one block: no passing block to contrast with, so only lines the numbers single out -------------

#: Ratios a one-block rule accepts: a literal factor or its inverse, a flipped sign.
SIMPLE = tuple(k for n in range(2, 11) for k in (n, 1 / n))


def _simple(a: float) -> bool:
    return any(_close(abs(a), k) for k in SIMPLE) or _close(a, -1)


def _one_block(ranker: _Ranker, outcome, ctx, scalars: dict):
    """A function with one block (``loss, dW = svm_loss_naive(W, X, y, reg)``, a flat vector): no
    passing block rules any line out, so a line is named only when the numbers point at it alone.

    *   The error is exactly a multiple of the weights (the L2 term): the gradient's L2 line and the
        loss's are read (``2 * reg * W``: 2; ``reg * np.sum(W * W)``: 1); when their coefficients
        explain the measured multiple, the one off the usual pairing (loss k·reg·ΣW², gradient
        2k·reg·W, k = 1 or ½) is named first, the other second.
    *   The data term is off by a simple factor (the whole block, the block apart from its L2 term, or
        the entries that disagree, such as one segment of a flat vector): the one line whose literal
        factor is that number (or whose minus sign flips it) is named.

    Returns the Suspects, a reason (str) when the numbers say what is wrong but no existing line is it,
    or None (the general rule decides)."""
    name = outcome.name
    if outcome.analytic is None or outcome.analytic.shape != outcome.numeric.shape:
        return None
    bit = 1 << ranker.bits[name]
    lines = [ranker.lines[line] for line, m in ranker.line_mask.items() if m & bit]
    weights = ctx.values.get(name) if ctx is not None else None
    reg = next((float(v) for k, v in scalars.items() if _is_reg(k) and float(v) != 0), None)
    if reg is None and ctx is not None and ctx.lambd and not ctx.m:
        reg = float(ctx.lambd)
    sel = outcome.judged
    analytic, numeric = outcome.analytic[sel], outcome.numeric[sel]
    w = weights[sel] if weights is not None and weights.shape == outcome.analytic.shape else None
    leaf = name.split(".")[-1]
    l2_lines = [(s, c) for s in lines for c in [_l2_coefficient(s, leaf)] if c is not None]
    if w is not None and reg is not None:
        found = _l2_suspects(ranker, name, leaf, analytic - numeric, w, reg, l2_lines)
        if found is not None:
            return found
    for ratio, where in _data_ratios(analytic, numeric, w if l2_lines else None):
        cost = _cost_lines(ranker, lines) if where == WHOLE else []
        matches = [
            (step, why) for step in lines + cost for why in [_factor_evidence(step, leaf, ratio)] if why
        ]
        in_loss = [step for step, _ in matches if step in cost]
        if len(matches) == 1 and not in_loss:
            step, why = matches[0]
            return [
                Suspect(
                    step.function,
                    step.lineno,
                    step.text,
                    f"{why}: {where} off by {ratio:.3g}, and no other line of {name}"
                    + (" or of its loss" if where == WHOLE else "")
                    + " has that factor",
                )
            ]
        if in_loss:  # the loss's own scale, or a gradient line's: the numbers cannot tell which is meant
            listed = ", ".join(f"{s.function}:{s.lineno}" for s, _ in matches)
            return f"{where} off by {ratio:.3g}, the factor of {listed}: the loss's scale or the gradient's?"
    return None


def _factor_evidence(step: Step, leaf: str, ratio: float) -> str | None:
    """The line's own factor that is the ratio (a literal k or 1/k, a leading minus for -1)."""
    for term in _data_terms(step, leaf):  # an L2 term's own factor (2·reg·W) is no evidence
        if _close(ratio, -1):
            if _leading_minus(term):
                return "a minus sign in the line"
            continue
        literal = _matching_literal(term, ratio)
        if literal is not None:
            return f"constant factor {literal:g} in the line"
    return None


#: The whole gradient off by one factor: the loss's own scale is as likely as a gradient line.
WHOLE = "the whole gradient is"


def _cost_lines(ranker: _Ranker, lines: list) -> list:
    """The lines that give the loss its value (``cost = -2 * np.sum(...)``), beyond ``lines``."""
    known = {(s.function, s.lineno) for s in lines}
    found = []
    for flow in ranker.cost_flows[:1]:
        direct = flow.outputs.get(0) or flow.outputs.get(None)  # (loss, grad) or the loss
        for step in sorted(flow.closure(direct) if direct else (), key=lambda s: (s.lineno, s.order)):
            if (step.function, step.lineno) not in known and not step.param:
                known.add((step.function, step.lineno))
                found.append(step)
    return found


def _leading_minus(node) -> bool:
    """A minus that scales the whole term (``-X.T.dot(d) / n``), not one inside a call (``exp(-x)``)."""
    while True:
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
            return True
        if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Mult, ast.Div)):
            if _leading_minus(node.right) and not isinstance(node.op, ast.Div):
                return True
            node = node.left
            continue
        return False


def _data_terms(step: Step, leaf: str) -> list:
    """The parts of a line's value other than an L2 term (``-X.T.dot(d) / n`` of ``dW = -X.T.dot(d) / n
    + 2 * reg * W``); the whole value when it has no L2 term, nothing when it is only one."""
    if step.value is None:
        return []
    value = step.value
    if isinstance(value, ast.BinOp) and _dotted(value.left) == step.target:
        value = value.right  # x = x + ..., the target itself is no term
    terms = [t for t, _ in _added_terms(value)]
    data = [t for t in terms if _term_coefficient(t, leaf, False) is None]
    return [step.value] if len(data) == len(terms) else data


def _data_ratios(analytic: np.ndarray, numeric: np.ndarray, w) -> list:
    """(simple ratio, what is off by it): the whole block; the block apart from a term proportional
    to the weights (analytic ≈ a·numeric + b·W); the entries that disagree (one segment of a flat
    vector).  Only ratios the data fit closely."""
    found = []
    nn = float(numeric @ numeric)
    if nn > 0:
        a = float(analytic @ numeric) / nn
        if np.linalg.norm(analytic - a * numeric) <= FIT * np.linalg.norm(analytic):
            found.append((a, WHOLE))
    if w is not None and np.any(w):
        basis = np.stack([numeric, w], axis=1)
        (a, b), *_ = np.linalg.lstsq(basis, analytic, rcond=None)
        if np.linalg.norm(analytic - a * numeric - b * w) <= FIT * np.linalg.norm(analytic):
            found.append((float(a), "the gradient apart from its L2 term is"))
    scale = np.abs(analytic) + np.abs(numeric)
    bad = np.abs(analytic - numeric) > 1e-4 * scale + 1e-12 * (float(scale.max()) if scale.size else 0.0)
    if 1 < bad.sum() < bad.size:
        a_bad, n_bad = analytic[bad], numeric[bad]
        nn = float(n_bad @ n_bad)
        if nn > 0:
            a = float(a_bad @ n_bad) / nn
            if np.linalg.norm(a_bad - a * n_bad) <= FIT * np.linalg.norm(a_bad):
                found.append((a, f"the {int(bad.sum())} entries that disagree are"))
    return [(a, where) for a, where in found if _simple(a) and not _close(a, 1)]


def _l2_suspects(ranker: _Ranker, name: str, leaf: str, d: np.ndarray, w: np.ndarray, reg: float, l2_lines):
    """The L2 rule of :func:`_one_block`; None when the error is no multiple of the weights."""
    c = weight_multiple(d, w)
    if c is None:
        return None
    k = c / reg  # the error as a multiple of reg·W
    cost = [
        (s, q) for s in ranker.cost_lines for q in [_l2_coefficient(s, leaf, squared=True)] if q is not None
    ]
    term = f"{_num(k)}·reg × {name}"
    if len(l2_lines) > 1 or len(cost) > 1:
        return None
    if not cost and not l2_lines:
        return f"the error is {term}, an L2 term, and neither the loss nor the gradient has one"
    if not cost:
        step, beta = l2_lines[0]
        if not _close(k, beta):
            return None
        return (
            f"the error is {term}: {step.function}:{step.lineno} adds {_num(beta)}·reg·{name} to the "
            f"gradient and the loss has no L2 term of {name}: add it to the loss, or drop that term"
        )
    cstep, kappa = cost[0]
    if not l2_lines:
        if not _close(k, -2 * kappa):
            return None
        return (
            f"the error is {term}: the gradient lacks the L2 term {_num(2 * kappa)}·reg·{name} of the "
            f"loss's {_num(kappa)}·reg·Σ{name}² ({cstep.function}:{cstep.lineno})"
        )
    step, beta = l2_lines[0]
    if not _close(k, beta - 2 * kappa):
        return None
    grad = Suspect(
        step.function,
        step.lineno,
        step.text,
        f"the L2 term: it adds {_num(beta)}·reg·{name}, but the loss's {_num(kappa)}·reg·Σ{name}² "
        f"({cstep.function}:{cstep.lineno}) has the gradient {_num(2 * kappa)}·reg·{name} "
        f"(the error is {term})",
    )
    loss = Suspect(
        cstep.function,
        cstep.lineno,
        cstep.text,
        f"the loss's L2 term: {_num(kappa)}·reg·Σ{name}², whose gradient is {_num(2 * kappa)}·reg·{name}, "
        f"while the gradient adds {_num(beta)}·reg·{name} ({step.function}:{step.lineno})",
    )
    if any(_close(kappa, u) for u in (0.5, 1)):
        return [grad, loss]
    if any(_close(beta, u) for u in (1, 2)):
        return [loss, grad]
    return "the loss's and the gradient's L2 terms disagree, and neither has the usual coefficient"


def _num(x: float) -> str:
    return f"{x:.3g}"


def _l2_coefficient(step: Step, leaf: str, squared: bool = False) -> float | None:
    """The coefficient k of the L2 term a line adds: ``dW += 2 * reg * W`` gives 2 (of reg·W);
    ``loss += reg * np.sum(W * W)`` gives 1 (of reg·ΣW², ``squared``).  None when the line adds no
    such term, or one that cannot be read as a number times reg times the weights."""
    value = step.value
    if value is None:
        return None
    sign = 1.0
    if step.op_on_target in (ast.Add, ast.Sub):
        sign = -1.0 if step.op_on_target is ast.Sub else 1.0
        if isinstance(value, ast.BinOp) and isinstance(value.op, (ast.Add, ast.Sub)):
            if _dotted(value.left) == step.target:
                sign = -1.0 if isinstance(value.op, ast.Sub) else 1.0
                value = value.right
    found = []
    for term, term_sign in _added_terms(value):
        coefficient = _term_coefficient(term, leaf, squared)
        if coefficient is not None:
            found.append(sign * term_sign * coefficient)
    return found[0] if len(found) == 1 else None


def _added_terms(node, sign: float = 1.0) -> list:
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub)):
        right = -sign if isinstance(node.op, ast.Sub) else sign
        return _added_terms(node.left, sign) + _added_terms(node.right, right)
    return [(node, sign)]


def _term_coefficient(node, leaf: str, squared: bool) -> float | None:
    """k for a product k·reg·W (or k·reg·ΣW² when ``squared``), reg and the weights each exactly once."""
    seen = {"reg": 0, "weights": 0}

    def value(n) -> float | None:
        if (
            isinstance(n, ast.Constant)
            and isinstance(n.value, (int, float))
            and not isinstance(n.value, bool)
        ):
            return float(n.value)
        if isinstance(n, ast.UnaryOp) and isinstance(n.op, ast.USub):
            inner = value(n.operand)
            return None if inner is None else -inner
        if isinstance(n, ast.BinOp) and isinstance(n.op, (ast.Mult, ast.Div)):
            left, right = value(n.left), value(n.right)
            if left is None or right is None or (isinstance(n.op, ast.Div) and right == 0):
                return None
            return left * right if isinstance(n.op, ast.Mult) else left / right
        if _is_reg(_dotted(n) or ""):
            seen["reg"] += 1
            return 1.0
        if (squared and _squared_sum(n, leaf)) or (not squared and _is_weights(n, leaf)):
            seen["weights"] += 1
            return 1.0
        return None

    k = value(node)
    return k if k is not None and seen == {"reg": 1, "weights": 1} else None


def _is_weights(node, leaf: str) -> bool:
    """``W``, ``self.W``, ``self.params['W']``."""
    if isinstance(node, ast.Subscript):
        key = node.slice
        return isinstance(key, ast.Constant) and key.value == leaf
    return (_dotted(node) or "").split(".")[-1] == leaf


def _squared_sum(node, leaf: str) -> bool:
    """``np.sum(W * W)``, ``np.sum(W ** 2)``, ``np.sum(np.square(W))``, ``(W * W).sum()``."""
    if not isinstance(node, ast.Call):
        return False
    fn = (_dotted(node.func) or "").split(".")[-1]
    if fn == "sum" and isinstance(node.func, ast.Attribute) and not node.args:
        inner = node.func.value  # (W * W).sum()
    elif fn == "sum" and len(node.args) == 1:
        inner = node.args[0]
    else:
        return False
    if isinstance(inner, ast.BinOp) and isinstance(inner.op, ast.Mult):
        return _is_weights(inner.left, leaf) and _is_weights(inner.right, leaf)
    if isinstance(inner, ast.BinOp) and isinstance(inner.op, ast.Pow):
        return (
            _is_weights(inner.left, leaf) and isinstance(inner.right, ast.Constant) and inner.right.value == 2
        )
    if isinstance(inner, ast.Call) and (_dotted(inner.func) or "").split(".")[-1] == "square":
        return len(inner.args) == 1 and _is_weights(inner.args[0], leaf)
    return False


def _followable(functions) -> list:
    flows = []
    for fn in functions:
        try:
            flows.append(flow_of(fn, follow=False))
        except Unfollowable:
            continue
    return flows


def _direct(flow: Flow, outcomes: list, positions: dict | None) -> dict:
    """block -> the steps that define its gradient."""
    if positions is None:  # a tuple pairs with the blocks by position only when it has one entry each
        returned = [k for k in flow.outputs if isinstance(k, int)]
        positions = {o.name: i for i, o in enumerate(outcomes)} if len(returned) == len(outcomes) else {}
    found = {}
    for o in outcomes:
        steps = flow.output_for(o.name, positions.get(o.name), len(outcomes) == 1)
        if steps is not None:
            found[o.name] = steps
    return found


def _cases(failing: list) -> dict:
    """block -> what the data say; a block with too few entries to claim a ratio alone takes
    the one another failing block shows, when its data fit it."""
    cases = {o.name: _case(o) for o in failing}
    claimed = []
    for c in cases.values():
        if c.ratio is not None and not any(_close(c.ratio, r) for r in claimed):
            claimed.append(c.ratio)
    for o in failing:
        found = _ratio(o) if cases[o.name].ratio is None and claimed else None
        if found is not None and any(_close(found, c) for c in claimed):
            cases[o.name] = _Case(o.name, "ratio", found, None)
    return cases


def _unexplained(flow: Flow, block: str, direct: dict) -> str:
    """Why no line of ``flow`` can stand for ``block``'s gradient, or "" when some can."""
    if block not in direct:
        return flow.dynamic
    own = _own(direct[block])
    fetched = [s for s in own if _is_fetch(s.value) and not flow.computes(_root(s.value))]
    if fetched and len(fetched) == len(own):
        return (
            f"{flow.function} reads {block}'s gradient from {ast.unparse(fetched[0].value)}, "
            "computed elsewhere (not followed)"
        )
    return ""


# ---- the drill-down's source panel -------------------------------------------------------------
SUSPECT_STYLE = tuple(palette.suspect_style(i) for i in range(len(palette.SUSPECT_COLOURS)))


def source_html(finding: Finding, block: str) -> str:
    """The source of the functions holding ``block``'s suspects, the suspect lines highlighted
    (the most likely darkest) and numbered by rank."""
    ranked = finding.ranked.get(block, [])
    if not ranked:
        why = finding.why_none.get(block)
        return f"<p>{html.escape(finding.note(block))}.</p>" if why else ""
    parts = []
    for function in dict.fromkeys(s.function for s in ranked):
        start, lines = finding.sources.get(function, (None, None))
        if lines is None:
            continue
        rank = {s.lineno: i for i, s in reversed(list(enumerate(ranked))) if s.function == function}
        rows = []
        for offset, text in enumerate(lines):
            lineno = start + offset
            i = rank.get(lineno)
            colours = f"{SUSPECT_STYLE[min(i, len(SUSPECT_STYLE) - 1)]};" if i is not None else ""
            mark = f"#{i + 1}" if i is not None else ""
            title = f" title='{html.escape(ranked[i].reason, quote=True)}'" if i is not None else ""
            rows.append(  # a long line wraps under itself (hanging indent), never past the output
                f"<div{title} style='{colours}padding-left:6em;text-indent:-6em'>"
                f"<span style='display:inline-block;width:3.5em;text-indent:0'>"
                f"{lineno}</span><b style='display:inline-block;width:2.5em;text-indent:0'>{mark}</b>"
                f"{html.escape(text)}</div>"
            )
        parts.append(
            f"<div class='gradcheck-source'><p style='margin:4px 0'>suspect lines in "
            f"<code>{html.escape(function)}</code>, most likely first:</p>"
            f"<pre style='margin:0;white-space:pre-wrap;overflow-wrap:anywhere'>{''.join(rows)}</pre></div>"
        )
    items = "".join(f"<li><code>{html.escape(str(s))}</code> — {html.escape(s.reason)}</li>" for s in ranked)
    parts.append(f"<ol style='margin:4px 0'>{items}</ol>")
    return "\n".join(parts)
