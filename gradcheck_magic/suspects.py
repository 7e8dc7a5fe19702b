"""Which line is wrong: the backward's data flow, narrowed by the verdicts, ranked by the hints.

The backward's source (a notebook cell's, kept by IPython in ``linecache``, a module's or a
method's) is parsed into *steps*, one per statement that gives a value a name, each knowing the
steps it reads.  A returned gradient (dict key, tuple position, ``self.dweights``, or the whole
return value) depends on the steps its closure reaches.  The lines that feed a failing block and no
passing block are the suspects; what the diagnosis found (a constant ratio, a flipped sign, a
transpose, a missing mask or keepdims, an error proportional to the weights) ranks them; the cost's
own lines join them when the data fit a cost that is wrong (an L2 term counted twice, every block
off by one factor).  Where the flow cannot be followed (no source, exec, keys built at run time, a
gradient read from another object), the finding says so instead of guessing; a line that calls one
of the user's helpers says the bug may be inside it.  Pure: no IPython import.
"""

from __future__ import annotations

import ast
import builtins
import html
import inspect
import re
import textwrap
from dataclasses import dataclass, field
from typing import Callable, NamedTuple

import numpy as np

NOTHING = "no line can be singled out"
FIT = 1e-3  # as in diagnosis: a ratio or an L2 coefficient is taken from data that fit it this closely
CLOSE = 2e-2  # a literal, an argument or an L2 factor "matches" a measured number within this fraction
MODULES = {"np", "numpy", "math", "scipy", "torch"}  # calls on these update nothing
REG_NAMES = ("lambd", "lambda_", "lam", "reg", "reg_lambda", "l2_lambda", "l2")  # names of the L2 strength
COUNT_NAMES = ("m", "N", "n_samples", "num_examples", "batch_size")  # names of the number of examples
GRAD_PREFIXES = ("d", "grad_", "d_")
BUILTINS = set(dir(builtins))  # calls to these are no helpers of the user's
NO_FIT, WEAK, STRONG = 0, 1, 2  # how well a line fits the kind of bug: not at all, plausibly, a match
MAX_SHOWN = 80  # characters of the top suspect shown in the table (the full line is in suspects())

# The diagnosis's hints (diagnosis.py) name the kind of bug; these patterns read that kind back.
HINT_KINDS = [
    ("sign", re.compile(r"sign flipped")),
    ("missing_m", re.compile(r"missing 1/m")),
    ("extra_m", re.compile(r"extra 1/m")),
    ("ratio", re.compile(r"× numeric")),
    ("transposed", re.compile(r"is transposed")),
    ("keepdims", re.compile(r"keepdims")),
    ("l2", re.compile(r"proportional to the weights")),
]

RATIO_KINDS = {"sign", "missing_m", "extra_m", "ratio"}  # the kinds that claim analytic ≈ c × numeric


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
    packaging: bool = False  # only puts a value into the returned dict or tuple


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
        """Every step the given steps read, directly or through others."""
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
            s.target == name
            and not (
                isinstance(s.value, ast.Call)
                and isinstance(s.value.func, ast.Attribute)
                and _dotted(s.value.func.value) == name
            )
            for s in self.steps
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


class _Builder:
    """Walks a function body once, keeping the steps that reach each name (reaching definitions)."""

    def __init__(self, name: str, source: str, offset: int):
        self.name, self.source, self.offset = name, source, offset
        self.steps, self.returns, self.dynamic = [], {}, ""

    def text(self, node) -> str:
        segment = ast.get_source_segment(self.source, node) or ""
        return " ".join(part.strip().rstrip("\\").strip() for part in segment.splitlines()).strip()

    def step(self, node, target, value, env, extra=(), op=None, packaging=False) -> Step:
        reads = _reads(value) | set(extra)
        if op is None and isinstance(value, ast.BinOp) and _dotted(value.left) == target:
            op = type(value.op)  # x = x / k
        step = Step(
            self.name,
            node.lineno + self.offset,
            self.text(node),
            target,
            value,
            frozenset(reads),
            op_on_target=op,
            packaging=packaging,
        )
        for name in reads:
            step.deps |= env.get(name, set())
        self.steps.append(step)
        return step

    def assign(self, node, target, value, env, op=None):
        if isinstance(target, (ast.Tuple, ast.List)):
            values = (
                value.elts
                if isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts)
                else [value] * len(target.elts)
            )
            for sub, sub_value in zip(target.elts, values):
                self.assign(node, sub, sub_value, env, op)
            return
        if isinstance(target, ast.Starred):
            target = target.value
        name = _dotted(target)
        if name is not None:
            extra = {name} if op is not None else set()
            if op is None:  # a new value: the keys stored in the old one are gone
                for stale in [k for k in env if k.startswith(name + "[")]:
                    del env[stale]
            if isinstance(value, ast.Dict):
                for key, item in zip(value.keys, value.values):
                    if _key(key) is not None:
                        env[f"{name}[{_key(key)}]"] = {self.step(node, name, item, env, packaging=True)}
            env[name] = {self.step(node, name, value, env, extra, op)}
            return
        if isinstance(target, ast.Subscript):
            base = _dotted(target.value)
            if base is None:
                return
            key = _key(target.slice)
            if key is not None:  # grads["dW1"] = ...: that key alone, not the rest of the dict
                extra = {f"{base}[{key}]"} if op is not None else set()
                update = self.step(node, base, value, env, extra, op)
                env[f"{base}[{key}]"] = {update}
                env[base] = env.get(base, set()) | {update}
                return
            if _builds_a_name(target.slice):  # grads["dW" + str(l)]; not dZ[Z <= 0] or x[i]
                self.dynamic = self.dynamic or f"keys built at run time ({self.text(target)})"
            env[base] = {self.step(node, base, value, env, {base} | _reads(target.slice), op)}

    def block(self, body, env) -> dict:
        for node in body:
            env = self.statement(node, env)
        return env

    def statement(self, node, env) -> dict:
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
            env = _merge(self.block(node.body, dict(env)), self.block(node.orelse, dict(env)))
        elif isinstance(node, (ast.For, ast.While)):
            if isinstance(node, ast.For):
                self.assign(node, node.target, node.iter, env)
            once = self.block(node.body, dict(env))
            twice = self.block(node.body, _merge(env, once))  # what one pass defines reaches the next
            env = _merge(env, twice, self.block(node.orelse, dict(twice)))
        elif isinstance(node, (ast.With, ast.AsyncWith)):
            env = self.block(node.body, env)
        elif isinstance(node, ast.Try):
            after = self.block(node.body, dict(env))
            branches = [self.block(h.body, _merge(env, after)) for h in node.handlers]
            env = self.block(node.finalbody, _merge(after, *branches))
        return env

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
            self.add(None, env.get(value.id, set()))
            return
        self.add(None, {self.step(node, "return", value, env)})

    def keys_of(self, name: str, env):
        """The keys stored in a returned dict (``grads["dW1"] = ...`` or a dict literal)."""
        for key, steps in env.items():
            if key.startswith(name + "["):
                self.add(_unquote(key[len(name) + 1 : -1]), steps)

    def add(self, key, steps):
        self.returns.setdefault(key, set()).update(steps)


def _builds_a_name(node) -> bool:
    return _has(node, ast.JoinedStr) or any(
        isinstance(n, ast.Constant) and isinstance(n.value, str) for n in ast.walk(node)
    )


def _unquote(key: str):
    return int(key) if key.isdigit() else key


def _merge(*envs) -> dict:
    out = {}
    for env in envs:
        for name, steps in env.items():
            out.setdefault(name, set()).update(steps)
    return out


def flow_of(fn: Callable) -> Flow:
    """The data flow of ``fn``; raises :class:`Unfollowable` when it cannot be read."""
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
    builder = _Builder(name, source, start - 1)
    env = builder.block(defs[0].body, {})
    outputs = dict(builder.returns)
    for key, steps in env.items():
        if key.startswith("self.") and key.count(".") == 1:  # self.dweights = ...
            outputs[key] = steps
    return Flow(name, start, [line.rstrip("\n") for line in lines], builder.steps, outputs, builder.dynamic)


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


def _case(outcome, weights) -> _Case:
    """The kind of bug the diagnosis found, and the number behind it measured again from the data
    (only where the diagnosis claimed the pattern: a one-entry block has "a ratio" by chance)."""
    kind = _kind(outcome.notes + outcome.hints)
    ratio = _ratio(outcome) if kind in RATIO_KINDS else None
    return _Case(outcome.name, kind, ratio, _l2(outcome, weights) if kind == "l2" else None)


def _kind(texts) -> str | None:
    joined = " | ".join(texts)
    return next((kind for kind, pattern in HINT_KINDS if pattern.search(joined)), None)


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


def _l2(outcome, weights) -> float | None:
    if weights is None or outcome.analytic is None or outcome.analytic.shape != outcome.numeric.shape:
        return None
    sel = outcome.checked & np.isfinite(outcome.numeric)
    diff, w = outcome.analytic[sel] - outcome.numeric[sel], np.asarray(weights, dtype=float)[sel]
    ww = float(w @ w)
    return float(diff @ w) / ww if ww else None


def _close(x: float, target: float) -> bool:
    return abs(x - target) <= CLOSE * max(abs(target), 1e-300)


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


def _helpers(node) -> list:
    """The user's functions a line calls (not numpy's, not methods of arrays): their bodies are
    not followed, so a bug there shows up on the calling line."""
    names = []
    for sub in ast.walk(node) if node is not None else ():
        if isinstance(sub, ast.Call) and isinstance(sub.func, ast.Name) and sub.func.id not in BUILTINS:
            names.append(sub.func.id)
    return names


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


def _factor(x: float) -> str:
    """x as a multiple of λ/m: "λ/m", "λ/(2m)", "2λ/m"."""
    for k in range(1, 5):
        if _close(x, k):
            return "λ/m" if k == 1 else f"{k}λ/m"
        if _close(x, 1 / k):
            return f"λ/({k}m)"
    return f"{x:.3g}·λ/m"


class _Ranker:
    """Scores the candidate lines of one failing block by the rule its kind of bug calls for."""

    def __init__(self, flow: Flow, cost_flows: list, scalars: dict, ctx, cases: dict, all_fail: bool):
        self.flow, self.cost_flows, self.scalars, self.ctx, self.cases = flow, cost_flows, scalars, ctx, cases
        ratios = [c.ratio for c in cases.values()]
        # every block fails, all by one factor: the cost may be scaled instead
        self.uniform = all_fail and None not in ratios and all(_close(r, ratios[0]) for r in ratios)

    def evidence(self, case: _Case, step: Step, own: set, fed: set) -> str | None:
        """Why this line fits the kind of bug the data show, or None."""
        value, kind, ratio = step.value, case.kind, case.ratio
        if value is None:
            return None
        if kind == "sign" or (ratio is not None and _close(ratio, -1)):
            if _negated(value):
                return "a minus sign in the line"
            if _has(value, ast.Sub) and step in own:
                return "a subtraction in the block's own line: operands swapped?"
            return None
        if ratio is not None and not _close(abs(ratio), 1):
            literal = _matching_literal(value, ratio)
            if literal is not None:
                return f"constant factor {literal:g} in the line"
        if kind == "missing_m" and not (step.reads & set(COUNT_NAMES)) and self.twins_read_m(step):
            return f"no 1/m in the line ({self.twins_read_m(step)[0].target}'s has one)"
        if kind == "extra_m" and _count_reads(value) > 1:
            return "1/m applied twice in the line"
        if kind == "transposed" and step in own and _matmul(value):
            return f"operand order: the product gives d{case.name.split('.')[-1]} transposed"
        if kind == "keepdims" and _sum_without_keepdims(value):
            return "np.sum without keepdims=True"
        if ratio is not None and not _close(abs(ratio), 1):
            scalar = self.scalar_evidence(step, ratio)
            if scalar:
                return scalar
        if ratio is None:  # a constant ratio is no mask or activation-derivative bug
            return self.mask_evidence(step, fed) or self.missing_update(step)
        return None

    def missing_update(self, step: Step) -> str | None:
        """The other layer updates its twin in place (``dA1 = dA1 * D1``) and this one never does:
        the update belongs after this line, the variable's last definition."""
        if not self.last_definition(step) or not re.search(r"\d", step.target):
            return None
        mine = {_twin(s.text) for s in self.same_var(step)}
        for other in self.flow.steps:
            if (
                other.op_on_target is not None
                and other.target != step.target
                and _twin(other.target) == _twin(step.target)
                and _twin(other.text) not in mine
            ):
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
            users = [s for s in self.flow.steps if arg in s.reads and s.op_on_target is not None]
            for user in users:
                if (
                    _twin(user.target) == _twin(step.target)
                    and user.target != step.target
                    and self.last_definition(step)
                    and not any(arg in s.reads for s in self.same_var(step))
                ):
                    verb = "divided" if user.op_on_target is ast.Div else "multiplied"
                    return (
                        f"{step.target} is never {verb} by {arg} (= {value:g}, the ratio found), "
                        f"as {user.target} is"
                    )
        return None

    def twins_read_m(self, step: Step) -> list:
        """The same gradient of other layers (db1, db2 for db3), when they divide by m."""
        return [
            s
            for s in self.flow.steps
            if s.target != step.target
            and _twin(s.target) == _twin(step.target)
            and s.reads & set(COUNT_NAMES)
        ]

    def same_var(self, step: Step) -> list:
        return [s for s in self.flow.steps if s.target == step.target]

    def last_definition(self, step: Step) -> bool:
        return self.same_var(step)[-1] is step

    def mask_evidence(self, step: Step, fed: set) -> str | None:
        """dZ built without the comparison its twin lines have (the ReLU mask)."""
        if not re.match(r"^d[zZ]\d*$", step.target.split(".")[-1]):
            return None
        twins = [
            s
            for s in self.flow.steps
            if s is not step and _twin(s.target) == _twin(step.target) and _has(s.value, ast.Compare)
        ]
        if twins and not _has(step.value, ast.Compare):
            return f"{step.target} is used without the ReLU mask that {twins[0].target} has"
        return None

    def built_here(self, case: _Case, step: Step, fed: set) -> str | None:
        """Weaker: a dZ that feeds several failing blocks, with no constant ratio to explain them."""
        if case.ratio is None and len(fed) > 1 and re.match(r"^d[zZ]\d*$", step.target.split(".")[-1]):
            return (
                f"{step.target} is built here and feeds {_describe(fed)}: the activation derivative or mask?"
            )
        return None

    def cost_scale(self, case: _Case) -> list:
        """Every block off by one factor: the cost's own scale is as likely as a line all share.
        (fits, Step-like suspect) pairs for the lines of the cost that give the cost value."""
        found = []
        m = self.ctx.m if self.ctx is not None else None
        for flow in self.cost_flows[:1]:
            direct = flow.outputs.get(0) or flow.outputs.get(None)  # (cost, cache) or the cost
            if not direct or case.ratio is None:
                continue
            reached = sorted(flow.closure(direct), key=lambda s: s.lineno)
            own = sorted(_own(direct), key=lambda s: s.lineno)
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

    def l2(self, case: _Case, own: set) -> list:
        """The L2 term, in the backward or in the cost: both named, the likelier first."""
        ctx = self.ctx
        if case.l2 is None or not ctx.lambd or not ctx.m:
            return []
        unit = ctx.lambd / ctx.m
        backward = [s for s in own if s.value is not None]
        has_term = any(set(REG_NAMES) & s.reads for s in backward)
        cost_lines = [s for f in self.cost_flows for s in f.steps if set(REG_NAMES) & s.reads]
        same = [c for c in self.cases.values() if c.l2 is not None and _close(c.l2, case.l2)]
        cost_first = has_term and len(same) > 1 and cost_lines
        beta = (case.l2 + unit) / unit  # the backward's coefficient, if the cost is right
        kappa = (unit - case.l2) / 2 / unit  # the cost's coefficient, if the backward is right
        fit = "no L2 term" if abs(beta) < CLOSE else f"{_factor(beta)}·{case.name}"
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
                f"the cost's L2 term: if the backward is right, the data fit {_factor(kappa)}·"
                f"Σ{case.name}² in the cost, not λ/(2m)·Σ{case.name}²",
            )
            for s in cost_lines[:1]
        ]
        return in_cost + in_backward if cost_first else in_backward + in_cost


def _own(direct) -> set:
    """The lines that compute a gradient, past the dict or tuple that only carries it out."""
    own, todo = set(), list(direct)
    while todo:
        step = todo.pop()
        if (step.packaging or isinstance(step.value, ast.Name)) and step.deps:
            todo.extend(step.deps)
        else:
            own.add(step)
    return own


def _rank(
    ranker: _Ranker, case: _Case, own: set, reached: set, passing_lines: set, failing_feeds: dict
) -> list:
    """The candidates (lines feeding this block and no passing block), the likeliest first: the
    lines the kind of bug points at, then those feeding more failing blocks, then the later."""
    candidates = {}
    for step in sorted(reached, key=lambda s: s.lineno):
        if not step.packaging and step.lineno not in passing_lines and step.lineno not in candidates:
            candidates[step.lineno] = step
    preferred = ranker.l2(case, [s for s in candidates.values() if s in own]) if case.kind == "l2" else []
    named = {(s.function, s.lineno) for s in preferred}
    scored = []
    for step in candidates.values():
        if (step.function, step.lineno) in named:
            continue
        fed = failing_feeds.get(step.lineno, {case.name})
        why = ranker.evidence(case, step, own, fed)
        for other in sorted(fed - {case.name}) if why is None else ():  # b1's ratio for dA1 = ... * 3
            found = (
                ranker.evidence(ranker.cases[other], step, own, fed) if ranker.cases[other].ratio else None
            )
            if found:
                why = f"{found} ({other} is off by it)"
                break
        fits = STRONG if why else WEAK if ranker.built_here(case, step, fed) else NO_FIT
        why = why or ranker.built_here(case, step, fed)
        if not fits:
            why = (
                f"the only line that feeds {_describe(fed)} and no passing block"
                if len(candidates) == 1
                else f"feeds {_describe(fed)} and no passing block"
            )
        helpers = _helpers(step.value)
        if helpers:
            why += f"; or inside {helpers[0]}, whose body is not followed"
        scored.append((fits, len(fed), 0, step.lineno, Suspect(step.function, step.lineno, step.text, why)))
    if ranker.uniform:
        everything = len(ranker.cases)
        scored += [
            (fits, everything, 1, s.lineno, Suspect(s.function, s.lineno, s.text, why))
            for fits, s, why in ranker.cost_scale(case)
        ]
    scored.sort(key=lambda t: (-t[0], -t[1], t[2], -t[3]))
    return preferred + [t[4] for t in scored]


def _describe(blocks) -> str:
    blocks = sorted(blocks)
    return blocks[0] if len(blocks) == 1 else ", ".join(blocks[:-1]) + " and " + blocks[-1]


def find_suspects(
    backward: Callable, outcomes: list, ctx=None, costs=(), scalars=None, positions: dict | None = None
) -> Finding:
    """Rank the lines of ``backward`` (and of the cost functions ``costs``) for every failing block.

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
    finding.sources[flow.function] = (flow.start, flow.lines)
    cost_flows = _followable(costs)
    feeds = _feeds(flow, outcomes, positions)
    passing_lines = {
        s.lineno for o in outcomes if o.status == "pass" and o.name in feeds for s in feeds[o.name][1]
    }
    failing_feeds = {}  # line -> failing blocks it feeds
    for o in failing:
        for s in feeds.get(o.name, ((), ()))[1]:
            failing_feeds.setdefault(s.lineno, set()).add(o.name)
    cases = _cases(failing, getattr(ctx, "values", {}) or {})
    ranker = _Ranker(flow, cost_flows, scalars or {}, ctx, cases, len(failing) == len(outcomes) > 1)
    for o in failing:
        if o.name not in feeds and not flow.dynamic:
            continue  # the backward does not return it: the note already says "missing gradient"
        why = _unexplained(flow, o.name, feeds)
        if why:
            finding.why_none[o.name] = why
            continue
        direct, reached = feeds[o.name]
        ordered = _rank(ranker, cases[o.name], _own(direct), reached, passing_lines, failing_feeds)
        if not ordered:
            finding.why_none[o.name] = f"every line that feeds {o.name} also feeds a passing block"
            continue
        if not passing_lines and len(ordered) > 1 and ordered[0].reason.startswith("feeds "):
            # nothing passing rules a line out and no line fits the numbers: naming one is a guess
            finding.why_none[o.name] = (
                f"{len(ordered)} lines feed {o.name}, no passing block rules any of them out, "
                "and the numbers fit none in particular"
            )
            continue
        finding.ranked[o.name] = ordered
        for f in cost_flows:
            if any(x.function == f.function for x in ordered):
                finding.sources[f.function] = (f.start, f.lines)
    return finding


def _followable(functions) -> list:
    flows = []
    for fn in functions:
        try:
            flows.append(flow_of(fn))
        except Unfollowable:
            continue
    return flows


def _feeds(flow: Flow, outcomes: list, positions: dict | None) -> dict:
    """block -> (the steps that define its gradient, every step those read)."""
    if positions is None:  # a tuple pairs with the blocks by position only when it has one entry each
        returned = [k for k in flow.outputs if isinstance(k, int)]
        positions = {o.name: i for i, o in enumerate(outcomes)} if len(returned) == len(outcomes) else {}
    feeds = {}
    for o in outcomes:
        direct = flow.output_for(o.name, positions.get(o.name), len(outcomes) == 1)
        if direct is not None:
            feeds[o.name] = (direct, flow.closure(direct))
    return feeds


def _cases(failing: list, values: dict) -> dict:
    """block -> what the data say; a block with too few entries to claim a ratio alone takes
    the one another failing block shows, when its data fit it."""
    cases = {o.name: _case(o, values.get(o.name)) for o in failing}
    claimed = [c.ratio for c in cases.values() if c.ratio is not None]
    for o in failing:
        found = _ratio(o) if cases[o.name].ratio is None and claimed else None
        if found is not None and any(_close(found, c) for c in claimed):
            cases[o.name] = _Case(o.name, "ratio", found, None)
    return cases


def _unexplained(flow: Flow, block: str, feeds: dict) -> str:
    """Why no line of ``flow`` can stand for ``block``'s gradient, or "" when some can."""
    if block not in feeds:
        return flow.dynamic
    own = _own(feeds[block][0])
    fetched = [s for s in own if _is_fetch(s.value) and not flow.computes(_root(s.value))]
    if fetched and len(fetched) == len(own):
        return (
            f"{flow.function} reads {block}'s gradient from {ast.unparse(fetched[0].value)}, "
            "computed elsewhere (not followed)"
        )
    return ""


# ---- the drill-down's source panel -------------------------------------------------------------
SUSPECT_STYLE = ("background-color: #f4c7c3", "background-color: #fbe3e1", "background-color: #fdf1f0")


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
            style = f" style='{SUSPECT_STYLE[min(i, len(SUSPECT_STYLE) - 1)]}'" if i is not None else ""
            mark = f"#{i + 1}" if i is not None else ""
            title = f" title='{html.escape(ranked[i].reason, quote=True)}'" if i is not None else ""
            rows.append(
                f"<div{style}{title}><span style='color:#888;display:inline-block;width:3.5em'>"
                f"{lineno}</span><b style='display:inline-block;width:2.5em'>{mark}</b>"
                f"{html.escape(text)}</div>"
            )
        parts.append(
            f"<div class='gradcheck-source'><p style='margin:4px 0'>suspect lines in "
            f"<code>{html.escape(function)}</code>, most likely first:</p>"
            f"<pre style='margin:0;white-space:pre'>{''.join(rows)}</pre></div>"
        )
    items = "".join(f"<li><code>{html.escape(str(s))}</code> — {html.escape(s.reason)}</li>" for s in ranked)
    parts.append(f"<ol style='margin:4px 0'>{items}</ol>")
    return "\n".join(parts)
