"""The binder: how each argument of a user function gets its value, and what counts as parameters.

One place for the rules every adapter shares: an argument is bound from the call the user wrote
(``request.call_for``), else by name (the parameters, the forward's outputs, the namespace, the
default); dotted names are looked up attribute by attribute; parameters are a dict of real arrays
or one real number/array, and anything else is refused by name.  Nothing here runs user code.
"""

from __future__ import annotations

import functools
import inspect
import re
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple, Optional

import numpy as np

from ..errors import GradCheckError, mark_call
from ..settings import suggest

PARAM_ALIASES = ("parameters", "params", "theta", "weights")
CACHE_NAMES = ("cache", "caches")
OUTPUT_NAME = re.compile(r"^([Aa]\d*|AL|A_?L|A_last|Yhat|Y_hat|yhat|y_hat|output|out|probs?|probas|cost|J)$")
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
    labels: dict = field(default_factory=dict)  # argument -> the text the user's call gave it ("X_dev")

    @property
    def ok(self) -> bool:
        return not self.missing

    def uses(self, source: str) -> bool:
        return any(src == source for _, src, _, _ in self.args)

    @property
    def namespace_args(self) -> int:
        return sum(src == VALUE for _, src, _, _ in self.args)

    def signature(self) -> str:
        return f"{self.name}({', '.join(self.label(a) for a, _, _, _ in self.args)})"

    def label(self, arg: str) -> str:
        """How an argument is shown: the variable the user's call passed (``X_dev``), ``lambd=0.7``
        for anything else it passed, else the argument's own name."""
        text = self.labels.get(arg, arg)
        return text if text.isidentifier() else f"{arg}={text}"

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
    args, missing, skipped = [], [], False
    for p in sig.parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        kw = p.kind == p.KEYWORD_ONLY or (skipped and p.kind == p.POSITIONAL_OR_KEYWORD)
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
            skipped = True  # left to its default: the arguments after it are passed by keyword
            continue
        else:
            missing.append(arg)
    return Binding(name, fn, args, missing)


def lookup(namespace: dict, dotted: str, flag: str = ""):
    """The value of ``name`` or ``obj.attr.attr``; the error names the missing part.  A property or
    ``__getattr__`` of the user's that raises something else is the user's exception, marked with
    what was read."""
    head, *attrs = dotted.split(".")
    prefix = f"{flag} {dotted}: " if flag else ""
    if head not in namespace:
        raise GradCheckError(f"{prefix}no variable named {head!r} in the namespace")
    value, path = namespace[head], head
    for attr in attrs:
        try:
            value, path = getattr(value, attr), f"{path}.{attr}"
        except AttributeError:
            raise GradCheckError(
                f"{prefix}{path} ({type(value).__name__}) has no attribute {attr!r}"
            ) from None
        except Exception as exc:
            mark_call(exc, f"reading {path}.{attr}")
            raise
    return value


def attribute(value, name: str, default=None):
    """``getattr(value, name, default)`` for discovery's look at every object of the namespace: a
    property or ``__getattr__`` that raises anything (a dict subclass mapping attributes to keys
    raises KeyError) means the attribute is not there."""
    try:
        return getattr(value, name, default)
    except Exception:  # noqa: BLE001 - the user's property; discovery only looks
        return default


def named(namespace: dict, name: str, what: str, flag: str, found: dict):
    if name not in namespace and "." in name and what != "parameters":  # issue 11: dotted function names
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


def bind_by_name(fn, namespace: dict, label: str, fallback: Optional[dict] = None, given=None):
    """Positional arguments of ``fn``: the variables the cell passed it (``given``, from
    ``cell_call``) first, else from the namespace by name (``fallback`` second, the default last);
    the error names what is missing."""
    args = []
    positional, keywords = given or ((), {})
    for i, p in enumerate(inspect.signature(fn).parameters.values()):
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.KEYWORD_ONLY):
            continue
        passed = positional[i] if i < len(positional) else keywords.get(p.name)
        if passed in namespace:
            args.append((passed, namespace[passed]))
        elif p.name in namespace:
            args.append((p.name, namespace[p.name]))
        elif fallback and p.name in fallback:
            args.append((p.name, fallback[p.name]))
        elif p.default is not p.empty and not (p.default is None and _look_alikes(namespace, p.name)):
            break  # the default (a y=None left out while y_train, y_dev exist would give scores: named)
        else:
            alike = _look_alikes(namespace, p.name)
            raise GradCheckError(
                f"{label} needs `{p.name}`, which is not defined in the namespace"
                + (
                    f" (there is {', '.join(alike[:3])}: call {label}(...) with it in the %%gradcheck "
                    f"cell, or assign {p.name} = {alike[0]})"
                    if alike
                    else ""
                )
            )
    return args


def _look_alikes(namespace: dict, name: str) -> list:
    """Arrays named like an argument with a suffix: ``y_train``, ``y_dev`` for ``y``."""
    return [k for k in namespace if k.startswith(f"{name}_") and isinstance(namespace[k], np.ndarray)]


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
    if isinstance(value, (tuple, list)):
        raise GradCheckError(
            f"{name!r} is a {type(value).__name__}: parameters must be a dict of numpy arrays (each key a "
            f"block) or one array; put its {len(value)} items in a dict, e.g. "
            f"{name} = {{'W1': ..., 'b1': ...}}, or check one array with -p NAME"
        )
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
    try:
        complex_ = np.iscomplexobj(value)
    except Exception:  # noqa: BLE001 - not array-like (ragged): the dtype checks refuse it by name
        complex_ = False
    if complex_:
        raise GradCheckError(
            f"{label} is complex: central differences check real parameters; check the real "
            "and imaginary parts as two real arrays"
        )


def only_star_args(fn) -> bool:
    try:
        kinds = {p.kind for p in inspect.signature(fn).parameters.values()}
    except (TypeError, ValueError):
        return False
    return bool(kinds) and kinds <= {inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD}


def missing_text(b: Binding) -> str:
    names = ", ".join(f"`{m}`" for m in b.missing)
    return f"needs {names}, which {'is' if len(b.missing) == 1 else 'are'} not defined"


def is_float_array(value) -> bool:
    return isinstance(value, np.ndarray) and value.dtype.kind == "f" and value.size > 0


def positional_params(fn) -> list:
    try:
        return [
            p
            for p in inspect.signature(fn).parameters.values()
            if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.KEYWORD_ONLY)
        ]
    except (TypeError, ValueError):
        return []


def function_named(namespace: dict, name: str, flag: str):
    if name not in namespace:
        return None
    value = namespace[name]
    if not callable(value):
        raise GradCheckError(f"{flag} {name}: {name!r} is a {type(value).__name__}, not a function")
    return value


def written_in_notebook(value) -> bool:
    """A function written in the notebook (helpers imported from libraries never compete)."""
    return isinstance(value, types.FunctionType) and value.__module__ == "__main__"


def pass_through(value):
    """Dicts are copied for each call (batchnorm stores running averages in its bn_param)."""
    return dict(value) if isinstance(value, dict) else value


@dataclass
class Given:
    """A function's arguments as one call gives them: positional ``(label, value)`` pairs and keyword
    ``name -> (label, value)``; ``source`` says which of the user's calls they come from."""

    args: list
    kwargs: dict = field(default_factory=dict)
    source: str = ""

    @property
    def values(self) -> list:
        return [v for _, v in self.args]

    @property
    def kwvalues(self) -> dict:
        return {k: v for k, (_, v) in self.kwargs.items()}

    def items(self) -> list:
        """Every (label, value), keywords included: what a snapshot roots and watches."""
        return list(self.args) + list(self.kwargs.values())

    def text(self) -> str:
        return ", ".join([n for n, _ in self.args] + [f"{k}={n}" for k, (n, _) in self.kwargs.items()])


def resolved(namespace: dict, name: str):
    """The value of a dotted name now, or None when it cannot be read (for matching calls: never
    raises, a property that raises is not a match)."""
    try:
        return lookup(namespace, name)
    except Exception:  # noqa: BLE001 - a property or __getattr__ of the user's that raises
        return None


def bind_call(fn, call, namespace: dict) -> Optional[Given]:
    """The arguments of the user's ``call`` of ``fn``, exactly (positional and keyword), with their
    values as they are now; None when one cannot be read without running code or the call no
    longer fits ``fn``'s signature (then the arguments are bound by name)."""
    values = call.values(namespace)
    if values is None:
        return None
    args, kwargs = values
    try:
        inspect.signature(fn).bind(*args, **kwargs)
    except TypeError:
        return None
    except ValueError:  # no signature (a builtin): take the call as written
        pass
    return Given(
        [(e.text, v) for e, v in zip(call.args, args)],
        {k: (call.keywords[k].text, v) for k, v in kwargs.items()},
        call.describe(),
    )


def refuse_empty(items) -> None:
    """A data argument with no entries (an empty batch: ``X[:0]``, a filter that kept nothing) has no
    loss to check: refused by name before any call, instead of the user's code failing inside."""
    for label, value in items:
        if isinstance(value, np.ndarray) and value.ndim >= 1 and value.size == 0:
            raise GradCheckError(
                f"{label} is empty (shape {value.shape}): there is no example to compute the cost on; "
                "give it at least one (an empty batch, or a selection that kept nothing?)"
            )
