"""The course's conventions: ``forward``/``backward``/``cost`` functions over a dict of parameters
(or one ``theta``), bound by name, as the deep-learning specialization writes them.

Every (forward, cost, backward) that binds completely is a :class:`Family`, a candidate of the one
ranking; its probe is a dry run of its forward (does it return the cost, or an activation that a cost
function takes?), run once per forward under the check's snapshot.  The chosen family becomes a
:class:`~.checkplan.CheckPlan` over a :class:`~.problem.Problem` (float64 working copies).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import re
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..errors import GradCheckError
from ..safety import Draws
from .binding import (
    CACHE,
    OUTPUT,
    PARAM_ALIASES,
    PARAMS,
    VALUE,
    Binding,
    bind,
    defined_in,
    is_numeric_array,
    is_numeric_scalar,
    looks_like_parameters,
    missing_text,
    named,
    only_star_args,
    refuse_empty,
    user_functions,
    validate_parameters,
    written_in_notebook,
)
from .cell import UNSAFE
from .checkplan import CheckPlan, Hints, Request
from .problem import (
    Problem,
    is_scalar_like,
    marked,
    refuse_complex_cost,
    silenced,
    split_output,
    working_copy,
)
from .ranking import Candidate, Unfit, choose

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


def qualifiers(name: str) -> set:
    return {t for t in name.lower().split("_") if t and t not in NAME_TOKENS}


FLAGS = {"forward": "-f/--forward", "backward": "-b/--backward", "cost": "-c/--cost"}


def functions(namespace: dict, role: str, flagged: Optional[str]) -> dict:
    """The function named by the flag (checked), or every function whose name fits the role."""
    found = user_functions(namespace, role)
    if not flagged:
        return found
    return {flagged: named(namespace, flagged, f"{role} function", FLAGS[role], found)}


def is_config(value: dict) -> bool:
    """A layer's settings (``bn_param = {'mode': 'train'}``, ``conv_param``): words beside or instead
    of arrays, and no array of floats to check.  Data that passes through, never parameters."""
    arrays = [v for v in value.values() if is_numeric_array(v) and v.dtype.kind == "f"]
    return any(isinstance(v, str) for v in value.values()) or not arrays


def reachable(namespace: dict, forward=None, backward=None, cost=None, params=None, prefer=()) -> tuple:
    """(parameters' name, namespace variables any candidate function could be given): what the
    snapshot records before the first user call.  Reads names and signatures only."""
    found = {
        role: functions(namespace, role, flagged)
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
        value = named(
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
        starred = [k for k, fn in forwards.items() if only_star_args(fn)]
        if starred:
            raise GradCheckError(
                f"{starred[0]}(*args, **kwargs) does not name its arguments (a decorator "
                "without functools.wraps?): define it with named arguments, e.g. "
                "(X, parameters), or "
                "pass -f/--forward NAME of the function it wraps"
            )
        for k in sorted(arg_names):  # a dict the forward takes by name, unusable: say which entry and why
            if isinstance(namespace.get(k), dict) and namespace[k] and not is_config(namespace[k]):
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


@dataclass(frozen=True, eq=False)
class Family:
    """One candidate set of functions, under one assumption about what its forward returns."""

    forward: Binding
    backward: Binding
    cost: Optional[Binding]
    forward_returns_cost: bool
    params: str = ""  # the parameters' name: what it checks, so it counts among what it consumes
    course: Optional[Course] = None  # the course it belongs to: its forwards' probes, its rejections

    kind = "function sets"
    refusal = ""

    @property
    def arrays(self) -> frozenset:
        """Ids of the arrays it checks (for :func:`~.ranking.merged`)."""
        value = self.course.params_value if self.course is not None else None
        items = value.values() if isinstance(value, dict) else [value]
        return frozenset(id(v) for v in items if isinstance(v, np.ndarray))

    @property
    def reaches(self) -> frozenset:
        """The namespace names its functions read (a wrapper reads ``model``)."""
        return frozenset(
            n for b in self.bindings for n in getattr(getattr(b.fn, "__code__", None), "co_names", ())
        )

    @property
    def defined(self) -> str:
        return self.forward.name

    def build(self):
        return self.course.build(self)

    def settled(self) -> bool:
        return self.course is not None and self.forward.name in self.course.probes

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
                        missing_text(cb)
                        if not cb.ok
                        else "takes no argument for the forward's output (AL, A3, ...)"
                    )
                )
    found = []
    for bname, bfn in backwards.items():
        bb = bind(bname, bfn, namespace, params_name, after_forward=True, forward_returns_cost=gives_cost)
        if not bb.ok:
            rejected.append(f"{bname}: {missing_text(bb)}")
        elif not (bb.uses(PARAMS) or bb.uses(CACHE) or bb.uses(OUTPUT)):
            rejected.append(f"{bname}: takes neither the parameters nor the forward's cache/output")
        else:
            found.extend(Family(fb, bb, cb, gives_cost, params_name) for cb in cost_choices)
    return found


@dataclass(eq=False)
class Course:
    """The course's candidates: the parameters and every function set that binds completely; each
    forward's probe (does it return the cost?) is run once and shared by its families."""

    params_name: str
    params_value: object
    families: list
    rejected: list  # why each other function could not be used
    namespace: dict = field(default_factory=dict)
    probes: dict = field(default_factory=dict)  # forward name -> returns the cost?, or its exception
    request: object = None

    def build(self, family: Family) -> CheckPlan:
        """A family's probe: its CheckPlan when its forward returns what it assumes, else Unfit."""
        __tracebackhide__ = True  # noqa: F841
        name = family.forward.name
        refuse_empty((a.name, a.value) for b in family.bindings for a in b.args if a.source == VALUE)
        if name not in self.probes:
            self.probes[name] = _probe(family.forward, self.params_name, self.params_value)
        verdict = self.probes[name]
        if isinstance(verdict, BaseException):
            raise verdict
        if verdict is not family.forward_returns_cost:
            raise Unfit(name)
        plan = Plan(
            self.params_name,
            self.params_value,
            family.forward,
            family.backward,
            family.cost,
            self.namespace,
        )
        return checkplan_of(plan, self.request.snapshot.rng)

    def nothing_fits(self) -> str:
        """Every family was dropped quietly: say what each forward returned and what is missing."""
        return _nothing_fits(self.rejected, self.probes)


def course(namespace: dict, forward=None, backward=None, cost=None, params=None, prefer=()) -> Course:
    """Every (forward, cost, backward) that binds; refuses, with what is missing, when none does."""
    forwards = functions(namespace, "forward", forward)
    backwards = functions(namespace, "backward", backward)
    costs = functions(namespace, "cost", cost)
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
        if not fb.uses(PARAMS) and only_star_args(fn):
            rejected.append(
                f"{name}(*args, **kwargs) does not name its arguments (a decorator without "
                "functools.wraps?): define it with named arguments, e.g. (X, parameters)"
            )
        elif not fb.uses(PARAMS):
            rejected.append(f"{fb.signature()}: takes no parameters argument ({params_name!r})")
        elif not fb.ok:
            rejected.append(f"{name}: {missing_text(fb)}")
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
    found = Course(params_name, params_value, families, rejected)
    return found


def _probe(fb: Binding, params_name: str, params_value):
    """Does ``fb`` return the cost?  Else the GradCheckError saying why its output is unusable, or the
    exception it raised."""
    try:
        return bool(dry_run_returns_cost(fb, params_name, params_value))
    except GradCheckError as exc:
        return exc
    except Exception as exc:  # noqa: BLE001 - a candidate's own bug drops that candidate only
        return exc


def dry_run_returns_cost(binding: Binding, params_name: str, params) -> bool:
    """Call a candidate forward once on a working copy: does it return the cost itself?"""
    __tracebackhide__ = True  # noqa: F841
    draws = Draws()
    try:
        _, _, value = working_copy(params)
        with silenced():
            out = marked(binding.caller(value), binding.signature())()
    finally:
        draws.restore()
    first, _ = split_output(out, binding.name)
    refuse_complex_cost(first, binding.name)
    return is_scalar_like(first)


def checkplan_of(plan: Plan, draws) -> CheckPlan:
    """The chosen family as the pipeline reads every convention."""
    scalars = {
        arg.name: float(arg.value)
        for arg in plan.backward.args
        if arg.source == VALUE and is_numeric_scalar(arg.value) and float(arg.value) not in (0.0, 1.0)
    }
    hints = Hints(
        m=plan.m,
        lambd=plan.value_of("lambd"),
        backward_fn=plan.backward.fn,
        cost_fns=((plan.cost or plan.forward).fn,),
        scalars=scalars,
    )
    found = CheckPlan(
        plan.describe(),
        plan.forward.name,
        plan.params_name,
        plan.params,
        Problem(plan, draws),
        hints=hints,
    )
    found.inputs = [
        (arg.name, arg.value)
        for binding in (plan.forward, plan.backward, plan.cost)
        for arg in getattr(binding, "args", ())
        if arg.source == VALUE
    ]
    return found


def resolve(request: Request) -> Optional[CheckPlan]:
    """The course never decides outright: its families, flagged or not, go through the ranking."""
    return None


def candidates(request: Request) -> list:
    """Every family that binds, each a candidate of the ranking; when none can, one candidate that
    carries the refusal (told when nothing else fits, or when the cell points at the course).

    The namespace variables any family could be given are watched in the check's first snapshot
    before any of them is probed."""
    if request.target:
        return []
    ns, prefer = request.namespace, request.written
    flags = (request.forward, request.backward, request.cost, request.params)
    try:
        params_name, watched = reachable(ns, *flags, prefer)
    except GradCheckError as exc:
        return [_refused(exc, None)]
    for name in dict.fromkeys([n for n in (params_name, *watched) if n]):
        if name in ns:
            request.snapshot.watch(name, ns[name])
    for role, flagged in zip(("forward", "backward", "cost"), flags):
        with contextlib.suppress(GradCheckError):  # a flag naming no function: course() says so
            for name, fn in functions(ns, role, flagged).items():
                request.snapshot.keep(name, fn)  # the globals it reads (a log, a helper) are restored
    try:
        found = course(ns, *flags, prefer)
    except GradCheckError as exc:
        return [_refused(exc, getattr(exc, "params_name", None))]
    found.namespace, found.request = ns, request
    families = [_joined(f, found) for f in found.families]
    for name in dict.fromkeys(n for f in families for n in f.reaches if n in ns):
        request.snapshot.keep(name, ns[name])  # objects the functions use (a wrapper sets model.params)
    return families


def from_call(call, request: Request) -> Optional[CheckPlan]:
    """A call of one of the course's functions (``forward_propagation_n(X_dev, Y_dev, params)``), or of
    a gradient-check helper of the notebook's that calls a course forward (``gradient_check_n(
    parameters, gradients, X, Y)``): the families that contain it, ranked as ever, bound from the
    call (:func:`given_by_calls`); None when no family contains it."""
    __tracebackhide__ = True  # noqa: F841
    ns = request.namespace
    if "." in call.function or not callable(ns.get(call.function)):
        return None
    roles = {name: fn for role in ROLES for name, fn in user_functions(ns, role).items()}
    members = {call.function} if call.function in roles else _forwards_checked_by(call.function, ns, roles)
    if not members:
        return None
    given, unread = given_by_calls(call, request, roles)
    sub = request
    if given:
        sub = dataclasses.replace(request, namespace={**ns, **{k: v for k, (_, v) in given.items()}})
        for arg, (text, value) in given.items():  # changes are reported under the user's names
            request.snapshot.watch(text if text.isidentifier() else arg, value)
    pool = [c for c in candidates(sub) if isinstance(c, Family) and members & set(c.functions)]
    if not pool:
        return None
    labels = {arg: text for arg, (text, _) in given.items()}
    for family in pool:
        for binding in family.bindings:
            binding.labels = {a.name: labels[a.name] for a in binding.args if a.name in labels}
    found = choose(pool, request.written, functools.partial(nothing_fits, pool))
    found.source = call.describe()
    by_name = [a for a in sorted(unread) if a in {n for n, _ in found.inputs} | {found.params_name}]
    if by_name:
        found.source += f" ({', '.join(by_name)} bound by name: the call's expression would run code)"
    return found


#: A notebook function named like a gradient check (``gradient_check_n``, ``grad_check``) whose code
#: calls a course forward: its call says which data and parameters that forward is checked on.
CHECK_HELPER = re.compile(r"grad|check", re.IGNORECASE)


def _forwards_checked_by(name: str, ns: dict, roles: dict) -> set:
    fn = ns.get(name)
    if not written_in_notebook(fn) or not CHECK_HELPER.search(name):
        return set()
    forwards = user_functions(ns, "forward")
    return {n for n in getattr(fn, "__code__", None).co_names if n in forwards}


def given_by_calls(call, request: Request, roles: dict) -> dict:
    """(``{argument: (text, value)}``, arguments left to their names): what the user's ``call``
    passes, positional and keyword, values as they are now, then what the cell's other calls of course
    functions pass for arguments it does not (``lambd=0.7`` given to the backward is the cost's
    ``lambd`` too: one name, one value in a check).  Two calls of that cell passing one argument
    different values are refused: no check can honour both.  An argument whose expression would run
    code (``vector_to_dictionary(theta)``) is bound by name instead, and listed."""
    __tracebackhide__ = True  # noqa: F841
    ns = request.namespace
    taken = {a for fn in roles.values() for a in _argument_names(fn)}
    given, first, unread = {}, {}, set()
    for other in [call] + [c for c in request.cell.in_cell(call) if c is not call]:
        if other is not call and other.function not in roles:
            continue
        bound = _call_arguments(ns.get(other.function) if "." not in other.function else None, other, ns)
        for arg, (text, value) in (bound or {}).items():
            if arg not in taken or arg in unread:
                continue
            if value is UNSAFE:  # not re-run: bound by name, and the caption says so
                if arg not in given:
                    unread.add(arg)
            elif arg not in given:
                given[arg], first[arg] = (text, value), other
            elif not _same(given[arg][1], value):
                raise GradCheckError(
                    f"{first[arg].text} and {other.text} in {call.where} pass `{arg}` two different "
                    f"values ({given[arg][0]} and {text}): a check uses one; call them with the same "
                    f"{arg}, or pass -f/-b/-c to bind `{arg}` by name"
                )
    return given, unread


def _argument_names(fn) -> list:
    try:
        return list(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return []


def _call_arguments(fn, call, ns: dict) -> Optional[dict]:
    """``{argument: (text, value)}`` of one call (``value`` is ``UNSAFE`` for an argument that cannot
    be read without running code), or None when the call no longer fits ``fn``'s signature."""
    if not callable(fn):
        return None
    texts = [e.text for e in call.args] + [e.text for e in call.keywords.values()]
    values = [e.value(ns) for e in call.args]
    keywords = {k: e.value(ns) for k, e in call.keywords.items()}
    try:
        signature = inspect.signature(fn)
        bound = signature.bind(*values, **keywords)
    except (TypeError, ValueError):
        return None
    by_position = dict(zip(range(len(call.args)), texts))
    found, position = {}, 0
    for arg, value in bound.arguments.items():
        kind = signature.parameters[arg].kind
        if kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            continue
        if arg in call.keywords:
            found[arg] = (call.keywords[arg].text, value)
        else:
            found[arg] = (by_position[position], value)
            position += 1
    return found


def _same(a, b) -> bool:
    if a is b:
        return True
    if is_numeric_scalar(a) and is_numeric_scalar(b):
        return float(a) == float(b)
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        return a.shape == b.shape and a.dtype == b.dtype and bool(np.array_equal(a, b))
    return False


#: The course's function roles.
ROLES = ("forward", "backward", "cost")


def _joined(family: Family, found: Course) -> Family:
    object.__setattr__(family, "course", found)
    return family


def _refused(exc: GradCheckError, params_name) -> Candidate:
    return Candidate(
        "the course functions",
        "",
        "function sets",
        frozenset([params_name] if params_name else []),
        refusal=str(exc),
    )


def nothing_fits(pool: list) -> str:
    """The refusal when every candidate was dropped quietly (the course's words, if it had families)."""
    courses = [c.course for c in pool if isinstance(c, Family) and c.course is not None]
    return courses[0].nothing_fits() if courses else _nothing_fits([], {})


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
