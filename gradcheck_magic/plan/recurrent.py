"""Layer functions with several outputs, and dict-in/dict-out cells (recurrent layers).

cs231n: ``next_h, next_c, cache = lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b)`` and
``dx, dprev_h, dprev_c, dWx, dWh, db = lstm_step_backward(dnext_h, dnext_c, cache)``.  Coursera C5W1:
``a_next, yt_pred, cache = rnn_cell_forward(xt, a_prev, parameters)`` and
``gradients = rnn_cell_backward(da_next, cache)``, a dict (``dxt``, ``da_prev``, ``dWax``, ...).

The check is of the vector-Jacobian product: the backward takes one upstream gradient per output it
differentiates (``dnext_h`` for ``next_h``, matched by name, else by position), so the cost is
Σ_k out_k·dout_k over exactly those outputs (C5W1's ``yt_pred`` has none: it is not in the cost).
Blocks: every float array argument, named by the forward's parameter (``prev_h`` even when the call
passed ``h``), and every array of a parameters dict, named by its key.  Gradients pair by position
in a returned tuple (cs231n), by ``"d" + name`` in a returned dict (C5W1).  An array of the dict that
the backward gives no gradient for and the cost does not read (``Wya``, ``by``) is said, not checked;
one the cost reads fails as a missing gradient.  Integer arrays (word indices), masks and config
dicts are data; every call gets a fresh copy of each dict.

Which pair: ``-f``/``-b`` naming a pair this planner fits (``resolve``); else the user's latest call
of such a forward or backward (``from_call``: the forward's arguments exactly as called, the upstream
gradients its backward's call passed); else a %%gradcheck cell that assigns the arrays
(``candidates``).  A plain one-output pair (affine, rnn_step, word_embedding) is :mod:`.layers`'.
"""

from __future__ import annotations

import ast
import functools
import inspect
import textwrap
from dataclasses import dataclass
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
    positional_params,
    refuse_empty,
    resolved,
    written_in_notebook,
)
from .checkplan import CheckPlan, Hints, Request
from .layers import CACHE_ARGS, namespace_upstream, no_upstream
from .problem import ConventionProblem, marked, silenced
from .ranking import Candidate

#: Seed of the upstream gradients drawn when the namespace has none of an output's shape.
UPSTREAM_SEED = 0
#: Relative size of the nudge that asks whether the cost reads an array the backward gives no gradient.
NUDGE = 1e-3


def is_parameter_dict(value) -> bool:
    """C5W1's ``parameters``: a dict with float arrays under string keys (config dicts hold none)."""
    return (
        isinstance(value, dict)
        and any(is_float_array(v) for v in value.values())
        and all(isinstance(k, str) for k in value)
    )


def upstream_args(bwd) -> Optional[list]:
    """The backward's upstream-gradient arguments (``dnext_h, dnext_c``, each named ``d…``) when it
    ends with the cache, else None (the course's ``L_model_backward(AL, Y, caches)`` takes data)."""
    names = [p.name for p in positional_params(bwd)]
    if len(names) < 2 or names[-1] not in CACHE_ARGS:
        return None
    ups = names[:-1]
    return ups if all(len(n) > 1 and n.startswith("d") and n not in CACHE_ARGS for n in ups) else None


def returned_names(fn) -> list:
    """The names in the forward's last ``return a, b, cache`` (None where an item is not a plain
    name); [] when its source cannot be read."""
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(inspect.unwrap(fn))))
    except (OSError, TypeError, SyntaxError):
        return []
    body = tree.body[0] if tree.body and isinstance(tree.body[0], ast.FunctionDef) else None
    if body is None:
        return []
    returns = []
    stack = list(body.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.Return) and isinstance(node.value, ast.Tuple):
            returns.append(node)
        stack.extend(ast.iter_child_nodes(node))
    if not returns:
        return []
    last = max(returns, key=lambda n: n.lineno)
    return [e.id if isinstance(e, ast.Name) else None for e in last.value.elts]


def fits(fwd, bwd, namespace: dict) -> bool:
    """Is this pair for this planner: several upstream gradients, several outputs, or a parameters
    dict in (C5W1)?  A pair with one output and a tuple of array gradients is the plain layer
    convention (affine)."""
    ups = upstream_args(bwd)
    if ups is None:
        return False
    if len(ups) > 1:
        return True
    names = returned_names(fwd)
    if len(names) > 2:
        return True
    names = [p.name for p in positional_params(fwd)]
    return any(n in ("parameters", "params") or is_parameter_dict(namespace.get(n)) for n in names)


@dataclass
class Arg:
    """One argument of the forward: its parameter name, what the caption shows, its value."""

    name: str
    text: str
    value: object


def bind_forward(fwd, forward: str, namespace: dict, given: Optional[Given] = None) -> list:
    """The forward's arguments: what the user's call passed (``given``), else the variables named like
    the parameters, else the defaults."""
    passed, keywords = (given.args, given.kwargs) if given is not None else ((), {})
    args = []
    for i, p in enumerate(positional_params(fwd)):
        if i < len(passed):
            text, value = passed[i]
        elif p.name in keywords:
            text, value = keywords[p.name]
        elif p.name in namespace:
            text, value = p.name, namespace[p.name]
        elif p.default is not p.empty:
            break
        else:
            bind_by_name(fwd, namespace, forward)  # raises: names the argument and its look-alikes
            raise GradCheckError(f"{forward} needs `{p.name}`, which is not defined in the namespace")
        args.append(Arg(p.name, text, value))
    return args


class Blocks:
    """The float64 working arrays: one per float array argument, one per array of a parameters dict.
    ``call_args()`` gives the forward its arguments, the working arrays in the users' places."""

    def __init__(self, args: list):
        self.args = args
        #: arrays: every working array; work: those checked (an unread one is dropped from it)
        self.arrays, self.work, self.original, self.keys = {}, {}, {}, {}  # keys: (argument, dict key)
        for a in args:
            if is_float_array(a.value):
                self._add(a.name, a.value, a.name, None)
            elif is_parameter_dict(a.value):
                for k, v in a.value.items():
                    if is_float_array(v):
                        self._add(k if k not in self.arrays else f"{a.name}[{k!r}]", v, a.name, k)

    def _add(self, block, value, arg, key):
        self.arrays[block] = self.work[block] = np.array(value, dtype=np.float64, order="C")
        self.original[block] = value
        self.keys[block] = (arg, key)

    def call_args(self) -> list:
        out = []
        for a in self.args:
            if self.keys.get(a.name) == (a.name, None):
                out.append(self.arrays[a.name])
            elif isinstance(a.value, dict):
                fresh = dict(a.value)  # batchnorm-style running averages never leak between calls
                for block, (arg, key) in self.keys.items():
                    if arg == a.name and key is not None:
                        fresh[key] = self.arrays[block]
                out.append(fresh)
            else:
                out.append(a.value)
        return out

    def choose(self, forward: str, only) -> None:
        """Keep the blocks ``-p`` names (``-p Wx``, ``-p Wx,Wh``); an unknown name is refused with the
        list."""
        if not only:
            return
        wanted = [n.strip() for n in only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in self.work]
        if unknown:
            raise GradCheckError(
                f"-p/--params {only}: {forward}'s blocks are {', '.join(self.work)}; "
                "-p chooses among them which to check"
            )
        for block in [b for b in self.work if b not in wanted]:
            del self.work[block]

    def gradient_key(self, block: str) -> str:
        arg, key = self.keys[block]
        return f"d{key if key is not None else arg}"


@dataclass
class Upstream:
    """One upstream gradient: the backward's argument, the output it pairs with, its value, and
    where the value came from (for the caption)."""

    arg: str
    output: str
    index: int
    value: np.ndarray
    source: str  # the variable or expression it came from, or "" for a seeded random draw
    how: str = ""  # "your call", "the namespace", or "" for a seeded random draw
    note: str = ""  # another namespace array that also fits; or why a seeded draw


def pair_outputs(ups: list, outputs: list, names: list) -> list:
    """(upstream argument, output index) pairs: ``dnext_h`` ↔ the output named ``next_h``; else by
    position over the float outputs (the states come first: C5W1's ``a, y_pred, caches``)."""
    by_name = {n: i for i, n in enumerate(names[: len(outputs)]) if n}
    if all(u[1:] in by_name for u in ups):
        return [(u, by_name[u[1:]]) for u in ups]
    floats = [i for i, o in enumerate(outputs) if is_float_array(o)]
    if len(ups) > len(floats):
        return []
    return list(zip(ups, floats))


def _fits_shape(value, shape) -> bool:
    return isinstance(value, np.ndarray) and value.shape == shape and value.dtype.kind in "fiu"


def find_upstream(arg, output_name, shape, namespace, given, index, single) -> Upstream:
    """The upstream gradient for ``arg``: what the user's backward call passed (``given``: label and
    value), else the namespace's variable of that name (or ``d`` + the output's name, or ``dout`` for
    a backward that takes one) when it has the output's shape (:func:`.layers.namespace_upstream`:
    a rival of other values is named in the caption), else a seeded random array."""
    if given is not None and _fits_shape(given[1], shape):
        return Upstream(arg, output_name, index, np.array(given[1], dtype=np.float64), given[0], "your call")
    names = [arg, f"d{output_name}"] + (["dout"] if single else [])
    found, others = namespace_upstream(namespace, names, shape)
    if found is not None:
        value = np.array(namespace[found], dtype=np.float64)
        return Upstream(arg, output_name, index, value, found, "the namespace", others)
    rng = np.random.default_rng([UPSTREAM_SEED, index])
    return Upstream(arg, output_name, index, rng.standard_normal(shape), "", "", no_upstream(names, shape))


def _describe_upstream(upstream: list) -> str:
    """``dnext_h, dnext_c from your call``; ``dh = dout from the namespace``; ``dnext_c: seeded random``."""
    parts = []
    for how in ("your call", "the namespace"):
        named = [u for u in upstream if u.how == how]
        if named:
            texts = [u.arg if u.source == u.arg else f"{u.arg} = {u.source}" for u in named]
            notes = "".join(u.note for u in named)
            parts.append(f"{', '.join(texts)} from {how}{notes}")
    for u in upstream:
        if not u.how:
            parts.append(f"{u.arg}: seeded random {u.value.shape} ({u.note})")
    return "; ".join(parts)


def plan(
    namespace, forward, fwd, backward, bwd, given: Optional[Given] = None, passed=None, only=None
) -> CheckPlan:
    """The check of ``forward``/``backward``: ``given`` is the forward's arguments as the user's call
    gave them (else bound by name), ``passed`` ``{"dnext_h": (label, array)}`` what the user's
    backward call was passed, ``only`` the blocks ``-p`` chose (``"Wx"``, ``"Wx,Wh"``)."""
    __tracebackhide__ = True  # noqa: F841
    ups = upstream_args(bwd)
    if ups is None:
        raise GradCheckError(f"{backward} does not take (upstream gradients..., cache)")
    args = bind_forward(fwd, forward, namespace, given)
    refuse_empty((a.text, a.value) for a in args)
    snapshot = Snapshot({forward: fwd, backward: bwd, **{a.text: a.value for a in args}})
    for a in args:
        snapshot.watch(a.text, a.value)
        if isinstance(a.value, dict):
            for k, v in a.value.items():
                snapshot.watch(f"{a.text}[{k!r}]", v)
    blocks = Blocks(args)
    if not blocks.work:
        raise GradCheckError(f"{forward} takes no float array argument: there is nothing to check")
    call_text = f"{forward}({', '.join(a.text for a in args)})"
    fwd_call = marked(fwd, call_text)
    bwd_text = f"{backward}({', '.join(p.name for p in positional_params(bwd))})"
    bwd_call = marked(bwd, bwd_text)

    def call():
        __tracebackhide__ = True  # noqa: F841
        out = fwd_call(*blocks.call_args())
        if not (isinstance(out, tuple) and len(out) >= 2):
            raise GradCheckError(
                f"{forward} returned {type(out).__name__}; a layer function returns (outputs..., cache)"
            )
        return out

    try:
        with silenced():
            first = call()
    finally:
        snapshot.restore()
    outputs = list(first[:-1])
    names = returned_names(fwd)
    pairs = pair_outputs(ups, outputs, names)
    if not pairs:
        raise GradCheckError(
            f"{backward}({', '.join(ups)}, cache) takes {len(ups)} upstream gradients, but {forward} "
            f"returns {sum(is_float_array(o) for o in outputs)} float outputs before its cache"
        )
    passed = passed or {}
    upstream = []
    for k, (arg, index) in enumerate(pairs):
        output = outputs[index]
        name = names[index] if index < len(names) and names[index] else f"out[{index}]"
        if not is_float_array(output):
            unfinished = ": is it written yet?" if output is None else ""
            raise GradCheckError(
                f"{forward} returned {type(output).__name__} as {name}, the output {arg} is the "
                f"gradient of; it must be a float array{unfinished}"
            )
        found = find_upstream(arg, name, output.shape, namespace, passed.get(arg), k, len(pairs) == 1)
        upstream.append(found)
    for u in upstream:
        if u.source in namespace:
            snapshot.watch(u.source, namespace[u.source])

    def evaluate():
        __tracebackhide__ = True  # noqa: F841
        out = call()
        return float(sum(np.sum(np.asarray(out[u.index], dtype=np.float64) * u.value) for u in upstream))

    def raw_gradients():
        __tracebackhide__ = True  # noqa: F841
        out = call()
        by_name = {u.arg: u.value.copy() for u in upstream}
        return bwd_call(*[by_name[a] for a in ups], out[-1])

    def gradients():
        __tracebackhide__ = True  # noqa: F841
        return pair_gradients(raw_gradients(), blocks, backward)

    returned = _peek(raw_gradients, snapshot)
    unread = _unread_without_gradient(blocks, pair_gradients(returned, blocks, backward), evaluate, snapshot)
    for block in unread:
        del blocks.work[block]
    blocks.choose(forward, only)
    sigma = " + ".join(f"{u.output}·{u.arg}" for u in upstream)
    description = f"{call_text} → Σ {sigma}, {bwd_text}"
    how = _describe_upstream(upstream)
    if how:
        description += f"; {how}"
    if unread:
        description += f"; {', '.join(unread)}: not read by the cost (no gradient expected)"
    order = list(blocks.arrays)
    positions = {b: order.index(b) for b in blocks.work} if isinstance(returned, (tuple, list)) else None
    plan_ = CheckPlan(
        description,
        forward,
        ", ".join(blocks.work),
        {b: blocks.original[b] for b in blocks.work},
        snapshot=snapshot,
        hints=Hints(backward_fn=bwd, positions=positions),
        source=given.source if given is not None else "",
    )

    def unread_message(found):
        return (
            f"{forward}'s outputs did not change when {found[0]} was perturbed: is it an argument it ignores?"
        )

    plan_.problem = ConventionProblem(plan_, snapshot.draws, blocks.work, evaluate, gradients, unread_message)
    return plan_


def pair_gradients(returned, blocks: Blocks, backward: str) -> dict:
    """{block: (gradient or None, its name)}: a dict by ``"d" + name`` (or the name itself), a tuple
    by position over the blocks, a single array for a single block."""
    if isinstance(returned, dict):
        loose = {}  # "dx_t" finds "dxt": a student's x_t beside the course's gradient key
        for k in returned:
            if isinstance(k, str):
                loose.setdefault(k.replace("_", ""), []).append(k)
        found = {}
        for block in blocks.work:
            key = blocks.gradient_key(block)
            near = loose.get(key.replace("_", ""), [])
            if key in returned or key[1:] in returned:
                value = returned.get(key, returned.get(key[1:]))
            elif len(near) == 1:
                key, value = near[0], returned[near[0]]
            else:
                value = None
            found[block] = (value, key)
        return found
    items = list(returned) if isinstance(returned, (tuple, list)) else [returned]
    order = list(blocks.arrays)  # every array, checked or not: the tuple's positions
    found = {}
    for b in blocks.work:
        i = order.index(b)
        found[b] = (
            items[i] if i < len(items) else None,
            f"{backward}(...)[{i}]" if len(items) > 1 else f"d{b}",
        )
    return found


def _peek(raw_gradients, snapshot):
    try:
        with silenced():
            return raw_gradients()
    finally:
        snapshot.restore()


def _unread_without_gradient(blocks: Blocks, grads: dict, evaluate, snapshot) -> list:
    """Arrays of a parameters dict the backward gives no gradient for and the cost does not read
    (C5W1's ``Wya``, ``by``: only the prediction reads them).  One the cost reads stays a block, and
    fails as a missing gradient."""
    try:
        with silenced():
            missing = [b for b, (g, _) in grads.items() if g is None and blocks.keys[b][1] is not None]
            if not missing:
                return []
            state = np.random.get_state()
            np.random.set_state(state)
            base = evaluate()
            rng = np.random.default_rng(12345)
            unread = []
            for b in missing:
                work = blocks.work[b]
                saved = work.copy()
                work += NUDGE * np.maximum(np.abs(work), 1.0) * rng.standard_normal(work.shape)
                np.random.set_state(state)
                try:
                    if evaluate() == base:
                        unread.append(b)
                finally:
                    work[...] = saved
            return unread
    finally:
        snapshot.restore()


def resolve(request: Request) -> Optional[CheckPlan]:
    """``-f lstm_step_forward [-b lstm_step_backward]``: this planner when the pair fits it, on the
    arguments of the user's latest call of that forward (else bound by name); None otherwise (a plain
    one-output pair is the layers adapter's)."""
    namespace, forward = request.namespace, request.forward
    if request.cost or request.target or not forward:
        return None
    fwd = function_named(namespace, forward, "-f/--forward")
    backward = request.backward or forward.replace("forward", "backward")
    if fwd is None or backward == forward:
        return None
    bwd = function_named(namespace, backward, "-b/--backward")
    if bwd is None or not fits(fwd, bwd, namespace):
        return None
    return _from_calls(request, forward, fwd, backward, bwd, request.params)


def from_call(call, request: Request) -> Optional[CheckPlan]:
    """The pair the user's call tested, when it is this planner's: a forward
    (``lstm_step_forward(x, prev_h, prev_c, Wx, Wh, b)``, ``rnn_cell_forward(xt_tmp, a_prev_tmp,
    parameters_tmp)``) or its backward; the upstream gradients are what the backward's call passed."""
    namespace = request.namespace
    fn = resolved(namespace, call.function)
    if not callable(fn) or "ward" not in call.function:
        return None
    if upstream_args(fn) is not None:
        forward, backward = call.function.replace("backward", "forward"), call.function
    else:
        forward, backward = call.function, call.function.replace("forward", "backward")
    fwd, bwd = resolved(namespace, forward), resolved(namespace, backward)
    if forward == backward or not (callable(fwd) and callable(bwd)) or not fits(fwd, bwd, namespace):
        return None
    return _from_calls(request, forward, fwd, backward, bwd)


def _from_calls(request: Request, forward, fwd, backward, bwd, only=None) -> CheckPlan:
    """The plan on the user's latest calls of ``fwd`` (its arguments) and ``bwd`` (the upstream
    gradients it was passed), each bound by name when there is none."""
    namespace = request.namespace
    fwd_call = request.cell.latest(lambda c: resolved(namespace, c.function) is fwd)
    bwd_call = request.cell.latest(lambda c: resolved(namespace, c.function) is bwd)
    given = bind_call(fwd, fwd_call, namespace) if fwd_call is not None else None
    upstream = {}
    if bwd_call is not None:
        params = [p.name for p in positional_params(bwd)]
        passed = dict(zip(params, bwd_call.args)) | dict(bwd_call.keywords)
        for u in upstream_args(bwd) or ():
            if u in passed:
                upstream[u] = (passed[u].text, passed[u].value(namespace))
    return plan(namespace, forward, fwd, backward, bwd, given, upstream, only)


def _is_checked(value) -> bool:
    return is_float_array(value) or is_parameter_dict(value)


def candidates(request: Request) -> list:
    """Without flags and without a call of the pair: the pairs this planner fits whose arrays (or
    parameters dict) the %%gradcheck cell assigned, bound by name."""
    if request.flagged:
        return []
    namespace, prefer = request.namespace, request.written
    found = []
    for name, fwd in namespace.items():
        backward = name.replace("forward", "backward")
        bwd = namespace.get(backward)
        if name.startswith("_") or "forward" not in name or not callable(fwd):
            continue
        if not callable(bwd) or not fits(fwd, bwd, namespace):
            continue
        required = [p.name for p in positional_params(fwd) if p.default is p.empty]
        arrays = [n for n in required if _is_checked(namespace.get(n))]
        if arrays and all(n in namespace for n in required) and all(n in prefer for n in arrays):
            found.append(
                Candidate(
                    f"{name} / {backward}",
                    f"-f {name} -b {backward}",
                    "layer functions",
                    inputs=frozenset(required),
                    functions=(name, backward),
                    local=written_in_notebook(fwd),
                    build=functools.partial(plan, namespace, name, fwd, backward, bwd),
                )
            )
    return found
