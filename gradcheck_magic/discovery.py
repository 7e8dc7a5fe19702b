"""Find the forward, backward and cost functions and the parameters in a namespace.

Nothing here runs numerics: it reads signatures and names, binds every argument
(from the parameters, the forward's outputs, the namespace, or the default) and
scores the combinations that bind completely.  A forward's kind of output (cost
or activation) is learned by the caller's dry run and handed back in
``forward_returns_cost``.
"""

from __future__ import annotations

import functools
import inspect
import re
import types
from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Optional

import numpy as np

from .errors import GradCheckError
from .settings import suggest

PARAM_ALIASES = ("parameters", "params", "theta", "weights")
CACHE_NAMES = ("cache", "caches")
OUTPUT_NAME = re.compile(r"^([Aa]\d*|AL|A_?L|A_last|Yhat|Y_hat|yhat|y_hat|output|out|probs?|probas|cost|J)$")
NAME_TOKENS = {
    "forward",
    "backward",
    "propagation",
    "prop",
    "compute",
    "cost",
    "loss",
    "model",
    "pass",
    "backprop",
    "fwd",
    "bwd",
    "function",
    "fn",
    "func",
}
ROLE_WORDS = {
    "forward": ("forward",),
    "backward": ("backward", "backprop"),
    "cost": ("cost", "loss"),
}

# sources of an argument's value
PARAMS, OUTPUT, CACHE, VALUE = "params", "output", "cache", "value"


class Arg(NamedTuple):
    """One argument of a user function: its name, where its value comes from, and how it is passed."""

    name: str
    source: str  # PARAMS, OUTPUT, CACHE or VALUE
    value: object  # the namespace value when source is VALUE
    keyword_only: bool


@dataclass
class Binding:
    """How to call one user function: each argument's source, in signature order."""

    name: str
    fn: Callable
    args: list  # of Arg, in signature order
    missing: list = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.missing

    def uses(self, source: str) -> bool:
        return any(src == source for _, src, _, _ in self.args)

    @property
    def namespace_args(self) -> int:
        return sum(src == VALUE for _, src, _, _ in self.args)

    def signature(self) -> str:
        return f"{self.name}({', '.join(a for a, _, _, _ in self.args)})"

    def fixed_args(self, params_obj):
        """(args, kwargs) when every argument is known up front (no forward output needed)."""
        if any(src in (OUTPUT, CACHE) for _, src, _, _ in self.args):
            return None
        value = {PARAMS: lambda v: params_obj, VALUE: lambda v: v}
        args = tuple(value[src](v) for _, src, v, kw in self.args if not kw)
        kwargs = {a: value[src](v) for a, src, v, kw in self.args if kw}
        return args, kwargs

    def caller(self, params_value: Callable[[], object]):
        """``call(output, cache)``; the parameters are read through ``params_value`` at each call
        (the hot loop binds constant arguments once instead, with ``fixed_args``)."""
        fn = self.fn
        plan = [(src, value) for _, src, value, kw in self.args if not kw]
        keywords = {a: (src, value) for a, src, value, kw in self.args if kw}

        def pick(src, value, output, cache):
            if src == PARAMS:
                return params_value()
            if src == OUTPUT:
                return output
            if src == CACHE:
                return cache
            return value

        def call(output=None, cache=None):
            __tracebackhide__ = True  # noqa: F841
            args = [pick(s, v, output, cache) for s, v in plan]
            kw = {a: pick(s, v, output, cache) for a, (s, v) in keywords.items()}
            return fn(*args, **kw)

        return call


@dataclass
class Plan:
    """The chosen functions, parameters and bindings for one check."""

    params_name: str
    params: object
    forward: Binding
    backward: Binding
    cost: Optional[Binding]
    namespace: dict
    reason: str = ""  # why this set won over the other complete ones ("" when it was the only one)

    def describe(self) -> str:
        parts = [self.forward.signature()]
        if self.cost:
            parts.append(self.cost.signature())
        parts.append(self.backward.signature())
        return " → ".join(parts)

    @property
    def m(self) -> Optional[int]:
        """Number of examples, from the ``X`` the functions were given (for hints)."""
        for b in (self.forward, self.backward):
            for arg, src, value, _ in b.args:
                if src == VALUE and arg in ("X", "x") and isinstance(value, np.ndarray) and value.ndim == 2:
                    return int(value.shape[1])
        return None

    def value_of(self, arg: str):
        for b in (self.forward, self.backward, self.cost):
            if b is None:
                continue
            for name, src, value, _ in b.args:
                if name == arg and src == VALUE:
                    return value
        return self.namespace.get(arg)


def is_numeric_array(value) -> bool:
    """Real or complex numbers (complex and masked arrays are found, then refused by name)."""
    return isinstance(value, np.ndarray) and value.dtype.kind in "biufc"


def is_numeric_scalar(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)


#: Gradient names: ``d`` and a capital (dW1, dA2), a single letter and digits (db1, dw) or a parameter alias
#: (dtheta, dweights).  ``dense`` or ``decoder`` are model keys, not gradients.
GRADIENT_KEY = re.compile(r"^d(?:[A-Z]|[a-z]\d*$|(?:theta|weights|biases|gamma|beta)$)")


def looks_like_parameters(value) -> bool:
    """A non-empty dict of numeric arrays (numbers may sit beside them) whose keys are not all gradient
    names (dW1, ...)."""
    if not isinstance(value, dict) or not value:
        return False
    numeric = (is_numeric_array(v) or is_numeric_scalar(v) for v in value.values())
    if not all(isinstance(k, str) for k in value) or not all(numeric):
        return False
    if not any(is_numeric_array(v) for v in value.values()):
        return False
    return not all(GRADIENT_KEY.match(k) for k in value)


#: Names that say a function is a helper, not the model: test-case generators, fills, initializers, plots.
HELPER_NAME = re.compile(
    r"(^|_)(test_?case|tests?|fill|ffill|bfill|init|initiali[sz]e|plot|print|load|example|demo|check)(_|$)"
)


def is_candidate_callable(value) -> bool:
    """Plain functions, ``functools.partial``, bound methods and callable objects; not classes."""
    if isinstance(value, type) or isinstance(value, types.ModuleType) or not callable(value):
        return False
    return not defined_in(value).startswith("gradcheck_magic")


def defined_in(fn) -> str:
    """The module that wrote ``fn`` (through partials, bound methods and callable objects)."""
    target = fn
    for _ in range(4):
        if isinstance(target, functools.partial):
            target = target.func
        elif isinstance(target, types.MethodType):
            target = target.__func__
        else:
            break
    if not isinstance(target, (types.FunctionType, types.BuiltinFunctionType)):
        target = type(target)
    return getattr(target, "__module__", None) or ""


def user_functions(namespace: dict, role: str) -> dict:
    """Callables in the namespace whose name says they play ``role`` (helpers excluded)."""
    words = ROLE_WORDS[role]
    others = [w for r, ws in ROLE_WORDS.items() if r != role for w in ws]
    found = {}
    for name, value in namespace.items():
        if name.startswith("_") or not is_candidate_callable(value):
            continue
        low = name.lower()
        if any(w in low for w in words) and not any(w in low for w in others) and not HELPER_NAME.search(low):
            found[name] = value
    return found


def qualifiers(name: str) -> set:
    return {t for t in name.lower().split("_") if t and t not in NAME_TOKENS}


def bind(
    name: str,
    fn: Callable,
    namespace: dict,
    params_name: str,
    after_forward: bool,
    forward_returns_cost: Optional[bool] = None,
) -> Binding:
    """Bind each argument by name: parameters, forward outputs, namespace, default."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return Binding(name, fn, [], missing=["<no signature>"])
    args, missing = [], []
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        kw = p.kind == p.KEYWORD_ONLY
        arg = p.name
        if arg == params_name or (arg in PARAM_ALIASES and arg not in namespace):
            args.append(Arg(arg, PARAMS, None, kw))
        elif after_forward and arg in CACHE_NAMES:
            args.append(Arg(arg, CACHE, None, kw))
        elif (
            after_forward
            and OUTPUT_NAME.match(arg)
            and not (arg in ("cost", "J") and forward_returns_cost is False)
        ):
            args.append(Arg(arg, OUTPUT, None, kw))
        elif arg in namespace:
            args.append(Arg(arg, VALUE, namespace[arg], kw))
        elif p.default is not p.empty:
            continue
        else:
            missing.append(arg)
    return Binding(name, fn, args, missing)


def _lookup(namespace: dict, name: str, what: str, flag: str, found: dict):
    if name not in namespace and "." in name and what != "parameters":  # issue 11: dotted function names
        from .objects import lookup

        namespace = {name: lookup(namespace, name, flag)}
    if name not in namespace:
        listing = ", ".join(sorted(found)) or "none"
        raise GradCheckError(
            f"{flag} {name}: no {what} named {name!r} in the namespace"
            f"{suggest(name, found)} "
            f"(found {what if what.endswith('s') else what + 's'}: {listing})"
        )
    value = namespace[name]
    if what != "parameters" and not callable(value):
        raise GradCheckError(f"{flag} {name}: {name!r} is a {type(value).__name__}, not a function")
    return value


FLAGS = {"forward": "-f/--forward", "backward": "-b/--backward", "cost": "-c/--cost"}


def candidates(namespace: dict, role: str, flagged: Optional[str]) -> dict:
    """The function named by the flag (checked), or every function whose name fits the role."""
    found = user_functions(namespace, role)
    if not flagged:
        return found
    return {flagged: _lookup(namespace, flagged, f"{role} function", FLAGS[role], found)}


def reachable(namespace: dict, forward=None, backward=None, cost=None, params=None, prefer=()) -> tuple:
    """(parameters' name, namespace variables any candidate function could be given): what the
    snapshot records before the first user call.  Reads names and signatures only."""
    found = {
        role: candidates(namespace, role, flagged)
        for role, flagged in (("forward", forward), ("backward", backward), ("cost", cost))
    }
    params_name = None
    if found["forward"] or params:
        params_name, _ = find_parameters(namespace, params, found["forward"], prefer)
    watched = []
    for fns in found.values():
        for fn in fns.values():
            try:
                watched += [arg for arg in inspect.signature(fn).parameters if arg in namespace]
            except (TypeError, ValueError):
                continue
    return params_name, list(dict.fromkeys(watched))


def find_parameters(namespace: dict, params: Optional[str], forwards: dict, prefer=()):
    """The parameters' name and value: the flag, else what a forward takes by name.

    Among several candidates (the course notebook holds both the 1-D ``theta`` and the net's
    ``parameters``), those the %%gradcheck cell itself assigned (``prefer``) win, then a dict
    of arrays over a lone scalar or array."""
    if params:
        value = _lookup(
            namespace,
            params,
            "parameters",
            "-p/--params",
            {k: v for k, v in namespace.items() if looks_like_parameters(v)},
        )
        validate_parameters(params, value)
        return params, value
    arg_names = set()
    for fn in forwards.values():
        try:
            arg_names.update(inspect.signature(fn).parameters)
        except (TypeError, ValueError):
            continue
    candidates = sorted(
        k
        for k in arg_names
        if k in namespace
        and (
            looks_like_parameters(namespace[k])
            or (k in PARAM_ALIASES and (is_numeric_array(namespace[k]) or is_numeric_scalar(namespace[k])))
        )
    )
    if not candidates:
        starred = [k for k, fn in forwards.items() if _only_star_args(fn)]
        if starred:
            raise GradCheckError(
                f"{starred[0]}(*args, **kwargs) does not name its arguments (a decorator "
                "without functools.wraps?): define it with named arguments, e.g. "
                "(X, parameters), or "
                "pass -f/--forward NAME of the function it wraps"
            )
        for k in sorted(arg_names):  # a dict the forward takes by name, unusable: say which entry and why
            if isinstance(namespace.get(k), dict) and namespace[k]:
                try:
                    validate_parameters(k, namespace[k])
                except GradCheckError as exc:
                    raise GradCheckError(f"no parameters found: {exc}") from None
        arrays = sorted(
            k for k in arg_names if is_numeric_array(namespace.get(k)) or is_numeric_scalar(namespace.get(k))
        )
        if arrays:  # the forward takes arrays, none of them named or shaped like the parameters
            names = ", ".join(sorted(forwards)[:3]) + (", ..." if len(forwards) > 3 else "")
            raise GradCheckError(
                f"no parameters found: {names} take{'s' if len(forwards) == 1 else ''} the arrays "
                f"{', '.join(arrays)}, none a dict of arrays or named like parameters "
                f"({', '.join(PARAM_ALIASES)}): pass -p/--params NAME to check one of them, or, for "
                "layer functions such as affine_forward(x, w, b), -f NAME -b NAME"
            )
        dicts = [k for k, v in namespace.items() if looks_like_parameters(v) and not k.startswith("_")]
        hint = f" (dicts of arrays in the namespace: {', '.join(sorted(dicts))})" if dicts else ""
        raise GradCheckError(
            "no parameters found: define a dict of arrays such as "
            "`parameters = {'W1': ..., 'b1': ...}` that your forward takes as an "
            f"argument, or pass -p/--params NAME{hint}"
        )
    for narrower in (
        [k for k in candidates if k in prefer],
        [k for k in candidates if looks_like_parameters(namespace[k])],
        [k for k in candidates if k in PARAM_ALIASES],
    ):
        if len(candidates) > 1 and narrower:
            candidates = narrower
    if len(candidates) > 1:
        raise GradCheckError(
            f"several parameter candidates: {', '.join(candidates)}; choose one with -p/--params NAME"
        )
    name = candidates[0]
    validate_parameters(name, namespace[name])
    return name, namespace[name]


def validate_parameters(name: str, value) -> None:
    """Parameters are a dict of real numeric arrays (numbers may sit beside them), or one real
    number or array; what cannot be checked is refused by name, with the fix."""
    if isinstance(value, dict):
        if not value:
            raise GradCheckError(f"{name!r} is an empty dict: there is no parameter to check")
        for key, arr in value.items():
            if not isinstance(key, str):
                raise GradCheckError(f"{name!r} has a key {key!r} that is not a string")
            _refuse_unusual(f"{name}[{key!r}]", arr)
            if is_numeric_scalar(arr):
                continue
            if not isinstance(arr, np.ndarray):
                raise GradCheckError(
                    f"{name}[{key!r}] is a {type(arr).__name__}, not a numpy array: "
                    "parameters must be a dict of numpy arrays"
                )
            if arr.dtype.kind not in "biuf":
                raise GradCheckError(
                    f"{name}[{key!r}] has dtype {arr.dtype}: parameters must be real numbers"
                )
            if arr.size == 0:
                raise GradCheckError(f"{name}[{key!r}] is empty (shape {arr.shape})")
        return
    _refuse_unusual(name, value)
    if is_numeric_scalar(value) or (is_numeric_array(value) and value.size):
        return
    raise GradCheckError(
        f"{name!r} is a {type(value).__name__}: parameters must be a dict of numpy "
        "arrays (W1, b1, ...) or a single number or numpy array"
    )


def _refuse_unusual(label: str, value) -> None:
    """Complex and masked parameters: refused with the reason and the fix, never checked wrongly."""
    if isinstance(value, np.ma.MaskedArray):
        raise GradCheckError(
            f"{label} is a masked array: the check cannot know what the mask means for the "
            "gradient; pass plain data (np.ma.getdata(...) or .filled(value))"
        )
    if np.iscomplexobj(value):
        raise GradCheckError(
            f"{label} is complex: central differences check real parameters; check the real "
            "and imaginary parts as two real arrays"
        )


@dataclass(frozen=True)
class Family:
    """One candidate set of functions, under one assumption about what its forward returns."""

    forward: Binding
    backward: Binding
    cost: Optional[Binding]
    forward_returns_cost: bool
    params: str = ""  # the parameters' name: what it checks, so it counts among what it consumes

    kind = "function sets"

    @property
    def bindings(self) -> list:
        return [b for b in (self.forward, self.cost, self.backward) if b is not None]

    @property
    def label(self) -> str:
        return " / ".join(b.name for b in self.bindings)

    @property
    def choose(self) -> str:
        """The flags that pick this set."""
        return f"-f {self.forward.name} -b {self.backward.name}" + (
            f" -c {self.cost.name}" if self.cost else ""
        )

    @property
    def functions(self) -> tuple:
        return tuple(b.name for b in self.bindings)

    @property
    def inputs(self) -> frozenset:
        """The namespace variables it consumes (X, Y, lambd, keep_prob, ...) and its parameters."""
        values = frozenset(a.name for b in self.bindings for a in b.args if a.source == VALUE)
        return values | {self.params} if self.params else values

    def cell_hits(self, written: set) -> int:
        """How many of its inputs and functions the %%gradcheck cell itself assigned, defined or called."""
        return len(self.inputs & written) + sum(name in written for name in self.functions)

    @property
    def consistent(self) -> bool:
        """Each function's qualifiers (``with_dropout``) also appear in another of the family."""
        tokens = [qualifiers(b.name) for b in self.bindings]
        if len(tokens) < 2:
            return True
        others = [set().union(*(o for j, o in enumerate(tokens) if j != i)) for i in range(len(tokens))]
        return all(t <= rest for t, rest in zip(tokens, others))

    def tie_break(self) -> tuple:
        """Among families consuming the same inputs: more bound inputs, written in the notebook, mirrored."""
        specific = sum(b.namespace_args for b in self.bindings)
        local = sum(defined_in(b.fn) == "__main__" for b in self.bindings)
        mirrored = self.backward.name.lower() == self.forward.name.lower().replace("forward", "backward")
        return (specific, local, mirrored)


@dataclass(eq=False)
class Candidate:
    """A check beyond the course's function sets, as :func:`rank` sees it: a model or network object,
    forward/backward functions over layer objects, a layer-function pair, a flat-vector cost or an
    ``(f, fprime)`` pair.  The conventions (objects.py, layers.py) describe theirs with one of these,
    so that one rule ranks them with the course families.

    ``build()`` plans the check (it may dry-run the user's code under its own snapshot) and returns an
    object with a ``.plan`` (whose ``.reason`` the ranking sets) and a ``.release()`` (put back what
    building it changed, when it is not chosen); it raises to have the candidate dropped, as a course
    forward that raises in its dry run is.  ``refusal`` is set instead when it cannot even be bound
    (a missing argument): it is not ranked, and its reason is told only when nothing else fits, or
    when the cell points at it more than at anything that remains."""

    label: str  # as listed when ambiguous: "model", "affine_forward / affine_backward"
    choose: str  # what picks it: "%gradcheck model", "-f affine_forward -b affine_backward"
    kind: str  # its kind, plural, for a refusal among candidates of one kind only
    inputs: frozenset = frozenset()  # namespace variables it consumes, its parameters or object included
    functions: tuple = ()  # names of the user's functions it calls by name
    local: bool = True  # written in this notebook
    build: Optional[Callable[[], object]] = None
    refusal: str = ""

    consistent = True

    def cell_hits(self, written: set) -> int:
        return len(self.inputs & written) + sum(name in written for name in self.functions)

    def tie_break(self) -> tuple:
        return (len(self.inputs), int(self.local), True)


def rank(families: list, written: set) -> list:
    """The candidates that nothing the user wrote separates, best first (a list of ties).

    The one rule for every candidate, course :class:`Family` or convention :class:`Candidate`: in order,
    consistent names; the most inputs/functions the cell itself wrote, assigned or called (the cell
    outranks leftovers of other cells); a candidate whose inputs are a strict subset of another's loses
    (a defined ``lambd`` means the L2 family); then, among candidates consuming the same inputs, the
    tie-breakers (more bound inputs, written in the notebook, mirrored names).  Inputs include what is
    checked (the parameters, the model object), so candidates over different parameters are compared
    only by what the cell wrote, never by the tie-breakers."""
    pool = [f for f in families if f.consistent] or list(families)
    best = max(f.cell_hits(written) for f in pool)
    pool = [f for f in pool if f.cell_hits(written) == best]
    pool = [f for f in pool if not any(f.inputs < other.inputs for other in pool)]
    by_inputs = {}
    for f in pool:
        by_inputs.setdefault(f.inputs, []).append(f)
    if len(by_inputs) > 1:
        return pool  # different inputs and nothing separates them: the caller refuses
    pool.sort(key=lambda f: f.tie_break(), reverse=True)
    return [f for f in pool if f.tie_break() == pool[0].tie_break()]


def _families(
    fb: Binding,
    gives_cost: bool,
    costs: dict,
    backwards: dict,
    namespace: dict,
    params_name: str,
    cost_flagged: bool,
    rejected: list,
) -> list:
    """Every (forward, cost, backward) that binds completely, if ``fb`` returns the cost or not."""
    cost_choices = [None] if gives_cost and not cost_flagged else []
    if not cost_choices:
        for cname, cfn in costs.items():
            cb = bind(cname, cfn, namespace, params_name, after_forward=True, forward_returns_cost=False)
            if cb.ok and cb.uses(OUTPUT):
                cost_choices.append(cb)
            else:
                rejected.append(
                    f"{cname}: "
                    + (
                        _missing(cb)
                        if not cb.ok
                        else "takes no argument for the forward's output (AL, A3, ...)"
                    )
                )
    found = []
    for bname, bfn in backwards.items():
        bb = bind(bname, bfn, namespace, params_name, after_forward=True, forward_returns_cost=gives_cost)
        if not bb.ok:
            rejected.append(f"{bname}: {_missing(bb)}")
        elif not (bb.uses(PARAMS) or bb.uses(CACHE) or bb.uses(OUTPUT)):
            rejected.append(f"{bname}: takes neither the parameters nor the forward's cache/output")
        else:
            found.extend(Family(fb, bb, cb, gives_cost, params_name) for cb in cost_choices)
    return found


@dataclass
class Course:
    """The course's candidates: the parameters and every function set that binds completely."""

    params_name: str
    params_value: object
    families: list
    rejected: list  # why each other function could not be used


def course(namespace: dict, forward=None, backward=None, cost=None, params=None, prefer=()) -> Course:
    """Every (forward, cost, backward) that binds; refuses, with what is missing, when none does."""
    forwards = candidates(namespace, "forward", forward)
    backwards = candidates(namespace, "backward", backward)
    costs = candidates(namespace, "cost", cost)
    if not forwards:
        raise GradCheckError(
            "no forward function found (looked for functions named *forward*): "
            "define one or pass -f/--forward NAME (a cost-and-gradient function on one vector, "
            "such as nnCostFunction, needs only -f NAME; a model or layer object: %gradcheck NAME)"
        )
    if not backwards:
        raise GradCheckError(
            "no backward function found (looked for functions named *backward* or "
            "*backprop*): define one or pass -b/--backward NAME"
        )
    params_name, params_value = find_parameters(namespace, params, forwards, prefer)
    try:
        return _course_families(namespace, forwards, backwards, costs, params_name, params_value, cost)
    except GradCheckError as exc:
        exc.params_name = params_name  # the ranking weighs a refusal by what the cell wrote
        raise


def _course_families(namespace, forwards, backwards, costs, params_name, params_value, cost) -> Course:
    rejected, families, callable_forwards = [], [], 0
    for name, fn in forwards.items():
        fb = bind(name, fn, namespace, params_name, after_forward=False)
        if not fb.uses(PARAMS) and _only_star_args(fn):
            rejected.append(
                f"{name}(*args, **kwargs) does not name its arguments (a decorator without "
                "functools.wraps?): define it with named arguments, e.g. (X, parameters)"
            )
        elif not fb.uses(PARAMS):
            rejected.append(f"{fb.signature()}: takes no parameters argument ({params_name!r})")
        elif not fb.ok:
            rejected.append(f"{name}: {_missing(fb)}")
        else:
            callable_forwards += 1
            for gives_cost in (True, False):
                families += _families(
                    fb, gives_cost, costs, backwards, namespace, params_name, bool(cost), rejected
                )
    if not callable_forwards:
        raise GradCheckError(
            "no forward function can be called: "
            + "; ".join(rejected)
            + ". Define the missing names or pass -f/--forward NAME"
        )
    if not families:
        raise GradCheckError(_nothing_fits(rejected))
    return Course(params_name, params_value, families, rejected)


def plan(
    namespace: dict,
    forward: Optional[str] = None,
    backward: Optional[str] = None,
    cost: Optional[str] = None,
    params: Optional[str] = None,
    returns_cost: Optional[Callable[[Binding, str, object], bool]] = None,
    prefer=(),
    others=(),
):
    """Choose functions and bindings; what the ``%%gradcheck`` cell wrote (``prefer``) ranks first.

    ``returns_cost(binding, params_name, params)`` is the caller's probe (a dry run under the check's
    snapshot): does this forward return the cost itself?  It is called only for the forwards of the
    best-ranked families; a forward that raises in it is dropped, never the check's error.

    ``others`` are the conventions' candidates (:class:`Candidate`), ranked with the course families
    by the one rule of :func:`rank`; their ``build()`` is their probe, called only for the best-ranked.
    The result is a :class:`Plan` when a course family wins, else what the winner's ``build()``
    returned.  With ``others``, the course's own refusal (no forward function, ...) only counts when
    nothing else fits."""
    __tracebackhide__ = True  # noqa: F841
    written = set(prefer)
    others = list(others)
    try:
        found = course(namespace, forward, backward, cost, params, prefer)
    except GradCheckError as exc:
        if not others:
            raise
        found, course_error = Course(None, None, [], []), exc
    else:
        course_error = None
    pool = found.families + [c for c in others if not c.refusal]

    def key(c):
        return c.forward.name if isinstance(c, Family) else c

    def probe(c):
        if isinstance(c, Family):
            return _probe(c.forward, found.params_name, found.params_value, returns_cost)
        return _build(c)

    def kept(c, verdict) -> bool:
        if isinstance(c, Family):
            return verdict is c.forward_returns_cost
        return not isinstance(verdict, BaseException)

    probed = {}  # forward name or candidate -> its probe's verdict, or the error that drops it
    kept_built = None
    try:
        candidates_left = pool
        while candidates_left:
            top = rank(candidates_left, written)
            unprobed = [c for c in top if key(c) not in probed]
            if not unprobed:
                break
            for c in unprobed:
                probed[key(c)] = probe(c)
            candidates_left = [c for c in candidates_left if key(c) not in probed or kept(c, probed[key(c)])]
        # the cell pointed at a candidate that cannot be used (it raised, or cannot be bound): say why,
        # never check something else the cell did not point at; ties with the winner are dropped quietly
        best = max((c.cell_hits(written) for c in candidates_left), default=-1)
        unusable = _unusable(pool, probed, key, others, course_error)
        pointed = [(c, e) for c, e in unusable if c.cell_hits(written) > best]
        if pointed:
            _, error = max(pointed, key=lambda ce: ce[0].cell_hits(written))
            if not isinstance(error, GradCheckError):  # the user's own error, as the user's traceback
                raise error.with_traceback(error.__traceback__)
            raise GradCheckError(str(error))
        if not candidates_left:
            notes = [v for v in probed.values() if isinstance(v, str)]
            raise GradCheckError(_nothing_fits(found.rejected + notes, probed))
        top = rank(candidates_left, written)
        if len(top) > 1:
            raise GradCheckError(_ambiguous(top))
        chosen = top[0]
        reason = _why(chosen, candidates_left, written)
        if isinstance(chosen, Family):
            return Plan(
                found.params_name,
                found.params_value,
                chosen.forward,
                chosen.backward,
                chosen.cost,
                namespace,
                reason=reason,
            )
        built = probed[chosen]
        built.plan.reason = reason
        kept_built = built
        return built
    finally:  # what was built for a candidate not chosen puts back what building it changed
        for verdict in probed.values():
            if verdict is not kept_built and callable(getattr(verdict, "release", None)):
                verdict.release()


def _unusable(pool, probed, key, others, course_error) -> list:
    """(candidate, error) for each that raised in its probe or cannot be bound: user errors first,
    then refusals, then the course's own."""
    raised = [(c, probed[key(c)]) for c in pool if isinstance(probed.get(key(c)), Exception)]
    found = [ce for ce in raised if not isinstance(ce[1], GradCheckError)]
    found += [ce for ce in raised if isinstance(ce[1], GradCheckError)]
    found += [(c, GradCheckError(c.refusal)) for c in others if c.refusal]
    if course_error is not None:
        params_name = getattr(course_error, "params_name", None)
        course = Candidate(
            "the course functions", "", "function sets", frozenset([params_name] if params_name else [])
        )
        found.append((course, course_error))
    return found


def _build(c: Candidate):
    """A candidate's probe: its planned check, or the error that drops it."""
    try:
        return c.build()
    except GradCheckError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - a candidate's own bug drops that candidate only
        return exc


#: What a refusal among candidates of one kind calls them.
SEVERAL = {
    "models": "several models in the namespace",
    "layer functions": "several layer functions fit the cell's variables",
    "cost functions": "several cost functions take the cell's vector",
    "function pairs": "several (f, fprime) pairs take the cell's vector",
    "functions over layer objects": "several forward functions call layer objects",
}


def _ambiguous(top: list) -> str:
    """The refusal when nothing separates the best candidates: each of them, and what picks it."""
    if all(isinstance(c, Family) for c in top):
        listing = "; ".join(f.label for f in top)
        return (
            f"ambiguous: several function sets fit ({listing}) and nothing in the cell separates them; "
            "choose with -f/--forward NAME, -b/--backward NAME (and -c/--cost NAME), or assign the "
            "variable only one of them uses (lambd, keep_prob, ...) in the %%gradcheck cell"
        )
    kinds = {c.kind for c in top}
    several = (SEVERAL.get(kinds.pop()) if len(kinds) == 1 else None) or "several candidates fit"
    listing = ", ".join(c.label for c in top)
    choices = ", or ".join(c.choose for c in top)
    return (
        f"ambiguous: {several} ({listing}) and nothing in the %%gradcheck cell separates them; "
        f"choose with {choices}, or assign in the %%gradcheck cell a variable only one of them uses"
    )


def _why(chosen, families: list, written: set) -> str:
    """One line: which other complete candidates there were, and the rule that set them aside."""
    others = list(dict.fromkeys(f.label for f in families if f.label != chosen.label))
    if not others:
        return ""
    if chosen.cell_hits(written):
        mine = (chosen.inputs | set(chosen.functions)) & written
        rule = f"the cell assigns or defines {', '.join(sorted(mine))}"
    elif any(f.inputs < chosen.inputs for f in families):
        rule = f"it uses more of what you defined ({', '.join(sorted(chosen.inputs))})"
    else:
        rule = "its names agree and it is written in this notebook"
    return f"chose {chosen.label} over {'; '.join(others)}: {rule}"


def _only_star_args(fn) -> bool:
    try:
        kinds = {p.kind for p in inspect.signature(fn).parameters.values()}
    except (TypeError, ValueError):
        return False
    return bool(kinds) and kinds <= {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD}


def _probe(fb: Binding, params_name: str, params_value, returns_cost):
    """Does ``fb`` return the cost?  Else the GradCheckError saying why its output is unusable, or the
    exception it raised."""
    if returns_cost is None:
        return True
    try:
        return bool(returns_cost(fb, params_name, params_value))
    except GradCheckError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - a candidate's own bug drops that candidate only
        return exc


def _nothing_fits(rejected: list, probed=None) -> str:
    """One message for 'no family binds or survives its probe': what each candidate lacked, and the flags."""
    outputs = [name for name, gives in (probed or {}).items() if gives is False]
    reasons = "; ".join(dict.fromkeys(rejected))
    if outputs:
        return (
            f"{', '.join(outputs)} returns an output, not a cost, and no cost function can be applied "
            f"to it; pass -c/--cost NAME" + (f" ({reasons})" if reasons else "")
        )
    return (
        f"no backward function can be called: {reasons}. Define the missing names or pass -b/--backward NAME"
    )


def _missing(b: Binding) -> str:
    names = ", ".join(f"`{m}`" for m in b.missing)
    return f"needs {names}, which {'is' if len(b.missing) == 1 else 'are'} not defined"
