"""Turn a plan into what the engine needs: float64 working parameters,
a cost closure ``J()`` and the analytic gradient of every block.

The forward sees float64 *working arrays*: the user's own float64 arrays, perturbed in place
and put back bit for bit (the snapshot holds their values, so no second copy of a large block is
made), or a float64 copy of any other array (float32, integer, read-only, strided, aliased: the
user's arrays and their dtype are never touched).  If the forward draws from ``np.random`` or
Python's ``random``, both states are replayed before every evaluation so that dropout masks (and
word2vec's negative samples) are the same each time.
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import io
import sys
import time
import types
import warnings
from collections.abc import Callable
from typing import Optional

import numpy as np

from ..engine import Block, fmt_index
from ..errors import GradCheckError, mark_call
from ..safety import Draws, _global_names, _same_bits, bits_digest, is_library, saved_copy


@contextlib.contextmanager
def silenced():
    """Swallow what the user's functions print or warn during repeated evaluations."""
    sink = io.StringIO()
    with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def working_copy(params, in_place: bool = False):
    """(object the functions receive, {block: float64 array} or None, params_value callable).

    The functions get the user's own kinds back: their dict subclass or OrderedDict, ``np.matrix``
    entries (views of the float64 working arrays, so a perturbation is seen through them).
    ``in_place``: a float64 array that can be perturbed in place (``perturbable``) is its own working
    array (the caller restores it); any other is copied."""
    if isinstance(params, dict):
        work = {k: _working(v, in_place) for k, v in params.items()}
        given = _same_container(params, {k: _as_given(params[k], w) for k, w in work.items()})
        return given, work, (lambda: given)
    if isinstance(params, np.ndarray):
        arr = _working(params, in_place)
        given = _as_given(params, arr)
        return given, None, (lambda: given)
    arr = np.array(float(params))
    return arr, None, (lambda: float(arr))


def perturbable(value) -> bool:
    """A plain, writeable, C-contiguous float64 array: its own working array, perturbed in place."""
    return (
        type(value) is np.ndarray
        and value.dtype == np.float64
        and value.flags.c_contiguous
        and value.flags.writeable
    )


def _working(value, in_place: bool) -> np.ndarray:
    if in_place and perturbable(value):
        return value
    return np.array(value, dtype=np.float64, copy=True, order="C")


def in_place_safe(params, others=()) -> bool:
    """Whether the user's float64 parameter arrays may be perturbed in place: no two of them, and
    none of them and another array the functions get (``others``), share memory (a perturbation of
    one would then move the other, which a working copy never does)."""
    arrays = list(params.values()) if isinstance(params, dict) else [params]
    arrays = [a for a in arrays if isinstance(a, np.ndarray)]
    ours = [a for a in arrays if perturbable(a)]
    for i, a in enumerate(ours):
        for b in arrays[:] + [o for o in others if isinstance(o, np.ndarray)]:
            if b is not a and np.may_share_memory(a, b):
                return False
        if any(b is a for b in ours[:i]):
            return False
    return True


#: How deep ``reads_params_elsewhere`` follows functions, containers and objects from the functions.
ELSEWHERE_DEPTH = 4
#: Builtins through which a function can reach any global by name.
DYNAMIC_LOOKUPS = frozenset({"globals", "vars", "eval", "exec", "locals"})


def reads_params_elsewhere(functions, params) -> bool:
    """Whether the user's functions can reach the parameters other than through their argument
    (``_reaches``); anything unusual on the way counts as yes: the parameters are then copied."""
    try:
        return _reaches(functions, params)
    except Exception:  # noqa: BLE001 - a property or __getattr__ that raises: be safe, copy
        return True


def _reaches(functions, params) -> bool:
    """Whether the user's functions can reach the parameters other than through their argument: a
    global, closure cell or default they read (through the functions, containers and objects it
    leads to) holds the parameters or one of their arrays.  A forward that reads the global
    ``parameters`` must not see the perturbations, so that it is found out (``sensitivity``)."""
    arrays = [
        a for a in (params.values() if isinstance(params, dict) else [params]) if isinstance(a, np.ndarray)
    ]
    targets = {id(params)} | {id(a) for a in arrays}
    seen: set = set()
    stack = [(inspect.unwrap(getattr(f, "__func__", f)), 0) for f in functions if f is not None]
    while stack:
        value, depth = stack.pop()
        if id(value) in seen or depth > ELSEWHERE_DEPTH:
            continue
        seen.add(id(value))
        if id(value) in targets:
            return True
        if isinstance(value, np.ndarray):
            if any(np.may_share_memory(value, a) for a in arrays):
                return True
            continue
        children = []
        if isinstance(value, types.FunctionType):
            if is_library(getattr(value, "__module__", None)):
                continue
            read, _ = _global_names(value.__code__)
            if read & DYNAMIC_LOOKUPS:  # globals()["parameters"]: anything may be reached
                return True
            children = [value.__globals__[n] for n in read if n in value.__globals__]
            for cell in value.__closure__ or ():
                with contextlib.suppress(ValueError):
                    children.append(cell.cell_contents)
            children += list(value.__defaults__ or ()) + list((value.__kwdefaults__ or {}).values())
        elif isinstance(value, types.MethodType):
            children = [value.__func__, value.__self__]
        elif isinstance(value, dict):
            children = list(value.values())
        elif isinstance(value, (list, tuple)):
            children = list(value)
        elif not isinstance(value, (type, types.ModuleType)) and hasattr(value, "__dict__"):
            if is_library(getattr(type(value), "__module__", None)):
                continue
            children = list(vars(value).values())
        stack.extend((child, depth + 1) for child in children)
    return False


def _pristine(original, work: np.ndarray) -> np.ndarray:
    """The working array's first values: the snapshot's (read-only) copy of the user's array when it
    has the same bits, so the parameters are not copied once more; else a copy of its own."""
    saved = saved_copy(original) if isinstance(original, np.ndarray) else None
    if (
        saved is not None
        and saved.dtype == work.dtype == np.float64
        and saved.shape == work.shape
        and saved.flags.c_contiguous
        and _same_bits(saved, work)
    ):
        return saved
    return work.copy()


#: Entries updated at a time by the whole-block nudges: no temporary the size of a large block.
CHUNK = 1 << 12


def nudge(v: np.ndarray, rng: np.random.Generator, size: float = 1e-3) -> None:
    """v += size * max(|v|, 1) * (random ±1), a chunk at a time: the same draws and the same values
    as in one expression (the generator's stream does not depend on how its draws are split)."""
    if not v.flags.c_contiguous:
        v += size * np.maximum(np.abs(v), 1.0) * rng.choice((-1.0, 1.0), size=v.shape)
        return
    flat = v.reshape(-1)
    for start in range(0, flat.size, CHUNK):
        part = flat[start : start + CHUNK]
        part += size * np.maximum(np.abs(part), 1.0) * rng.choice((-1.0, 1.0), size=part.shape)


def _as_given(original, work: np.ndarray):
    """What the user's code receives for one working array: an ``np.matrix`` stays a matrix."""
    if isinstance(original, np.matrix):
        return work.view(np.matrix)
    return work


def _same_container(original: dict, items: dict) -> dict:
    """A dict of the user's own type (OrderedDict, a subclass) holding ``items``; a plain dict if that
    type cannot be copied."""
    if type(original) is dict:
        return dict(items)
    try:
        container = copy.copy(original)
        for key, value in items.items():
            container[key] = value
        if type(container) is type(original) and all(container[k] is v for k, v in items.items()):
            return container
    except Exception:  # noqa: BLE001 - an unusual subclass: the functions get a plain dict
        pass
    return dict(items)


def split_output(out, fn_name: str):
    """(first output, cache) of a forward: the cost, or (output, cache) / (cost, cache)."""
    if isinstance(out, (tuple, list)):
        if not out:
            raise GradCheckError(
                f"{fn_name} returned an empty {type(out).__name__}; expected the cost or (output, cache)"
            )
        return out[0], (out[1] if len(out) > 1 else None)
    if out is None or isinstance(out, (dict, str)):
        raise GradCheckError(
            f"{fn_name} returned {type(out).__name__ if out is not None else 'None'}; "
            "expected the cost, or (output, cache), or (cost, cache)"
        )
    return out, None


def is_scalar_like(value) -> bool:
    try:
        arr = np.asarray(value)
    except Exception:  # noqa: BLE001 - anything numpy cannot read is not a cost
        return False
    return arr.dtype.kind in "biuf" and arr.size == 1


def refuse_cost_kind(value, where: str) -> None:
    """A cost central differences cannot read: integer (no small changes) or below float64 precision."""
    dtype = np.asarray(value).dtype
    if dtype.kind in "biu":
        raise GradCheckError(
            f"{where} returned an integer cost ({dtype}): a whole-number cost cannot "
            "show the small changes central differences measure; return a float (no int(), "
            "round() or astype(int) on the cost)"
        )
    if dtype.kind == "f" and dtype.itemsize < 8:
        raise GradCheckError(
            f"{where} returned a {dtype} cost: its precision (about "
            f"{np.finfo(dtype).eps:.0e} relative) is too coarse for central differences and "
            "would be mistaken for wrong gradients; compute the cost in float64 (drop the "
            "astype/float32 inputs)"
        )


#: A float64 cost that is exactly a float32 value with more significant bits than this was computed in
#: float32 (a float64 result lands on a float32 value with probability 2**-29; short values such as
#: 8.0 or 0.75 are exact in both and say nothing).
FLOAT32_EVIDENCE_BITS = 12


def carries_float32_precision(j0: float) -> bool:
    """Was this float64 cost computed in float32 (and widened by ``float()``)?"""
    if j0 == 0 or not np.isfinite(j0) or float(np.float32(j0)) != j0:
        return False
    mantissa, _ = np.frexp(abs(j0))
    bits = 53
    scaled = int(mantissa * 2.0**53)
    while bits > 0 and scaled % 2 == 0:
        scaled //= 2
        bits -= 1
    return bits > FLOAT32_EVIDENCE_BITS


def refuse_float32_precision(j0: float, where: str) -> None:
    """A float cost that was computed in float32 and widened (``float(cost32)``) is refused by name."""
    if carries_float32_precision(j0):
        raise GradCheckError(
            f"{where} returned a cost with float32 precision ({j0!r} is exactly a "
            "float32 value): the forward computes in float32, too coarse for central "
            "differences (it would be mistaken for wrong gradients); compute it in float64"
        )


#: The precision probe's reference step, in units of the sub-float32 nudge: large enough for float32 to
#: resolve, so that it measures the block's slope along the nudge whatever precision the forward uses.
VISIBLE_SCALE = 1e3
#: The cost must be expected to move by this many ulps of |J| under the nudge for its not moving at
#: all to mean anything (float64 round-off amplified by, say, log(1 - A) with A near 1 stays below it).
VISIBLE_ULPS = 1e4


def coarse_blocks(blocks, cost, j0: float) -> list:
    """Names of the blocks the cost reads at float32 precision or coarser (an astype(np.float32) or
    a float32 array inside the forward).  Each entry is nudged by less than the distance to the
    nearest float32 rounding boundary, so float32 code sees exactly its old parameters and returns
    exactly the old cost, while float64 code moves it by what the block's slope says (measured with
    a float32-visible step: numeric only, so a wrong analytic gradient never triggers it).  The
    arrays are put back."""
    rng = np.random.default_rng(20261123)
    ulp = np.finfo(np.float64).eps * max(abs(j0), np.finfo(np.float64).tiny)
    coarse = []
    for block in blocks:
        if block.comparable is None or not np.any(block.comparable):
            continue
        pristine = block.work.copy()
        nearest = pristine.astype(np.float32)
        up = np.nextafter(nearest, np.float32(np.inf)).astype(np.float64)
        down = np.nextafter(nearest, np.float32(-np.inf)).astype(np.float64)
        room = np.minimum(pristine - (nearest + down) / 2, (nearest + up) / 2 - pristine)
        nudge = 0.5 * np.maximum(room, 0.0) * rng.choice((-1.0, 1.0), size=pristine.shape)
        costs = []
        try:
            for step in (nudge, -nudge, VISIBLE_SCALE * nudge, -VISIBLE_SCALE * nudge):
                block.work[...] = pristine + step
                costs.append(
                    perturbed(
                        cost,
                        {block.name: block.work},
                        {block.name: pristine},
                        f"every entry of {block.name} was nudged by less than float32's rounding",
                    )
                )
        finally:
            block.work[...] = pristine
        plus, minus, far_plus, far_minus = costs
        expected = (far_plus - far_minus) / (2 * VISIBLE_SCALE)  # the change the nudge should make
        if np.isfinite(expected) and abs(expected) > VISIBLE_ULPS * ulp and plus == minus == j0:
            coarse.append(block.name)
    return coarse


#: How many entries, one at a time, are tried to find the one whose perturbation makes the code raise.
LOCATE_ENTRIES = 2000


def perturbed(cost, blocks: dict, pristine: dict, nudge: str) -> float:
    """``cost()`` with ``blocks`` (name -> working array) perturbed, outside the engine's sweep.
    When the user's code raises, the exception says which entry's perturbation makes it raise
    (tried one entry at a time from the pristine values), or what was nudged when none alone does."""
    __tracebackhide__ = True  # noqa: F841
    try:
        return cost()
    except Exception as exc:
        if not hasattr(exc, "_gradcheck_where"):
            changed = {n: w.copy() for n, w in blocks.items()}
            where = _raising_entry(cost, blocks, pristine, changed) or f"while {nudge}"
            try:
                exc._gradcheck_where = where
            except AttributeError:  # pragma: no cover - exceptions with __slots__
                pass
            for name, work in blocks.items():  # as it was when it raised; the caller resets
                work[...] = changed[name]
        raise


def _raising_entry(cost, blocks: dict, pristine: dict, changed: dict) -> str:
    tried = 0
    for name, work in blocks.items():
        work[...] = pristine[name]
    for name, work in blocks.items():
        flat, moved = work.reshape(-1), changed[name].reshape(-1)
        for k in np.flatnonzero(moved != pristine[name].reshape(-1))[: LOCATE_ENTRIES - tried]:
            tried += 1
            old = flat[k]
            flat[k] = moved[k]
            try:
                cost()
            except Exception:  # noqa: BLE001 - the user's error again: this entry makes it raise
                entry = fmt_index(name, tuple(int(i) for i in np.unravel_index(k, work.shape)))
                return f"while {entry} was perturbed by {moved[k] - old:+.3g}"
            finally:
                flat[k] = old
    return ""


def to_float_for(value):
    """A fast converter to float for this kind of cost value."""
    return float if np.ndim(value) == 0 else (lambda v: float(np.asarray(v).reshape(-1)[0]))


def refuse_complex_cost(value, where: str) -> None:
    """A complex cost has no ordering to descend: refused by name, not taken for an activation."""
    if np.iscomplexobj(value) and np.size(value) == 1:
        shown = complex(np.asarray(value).reshape(-1)[0])
        raise GradCheckError(
            f"{where} returned a complex cost ({shown:.4g}): the cost must be a real "
            "number (take .real or abs(...) if that is what you mean)"
        )


def marked(fn: Callable, signature: str) -> Callable:
    """Call ``fn``; an exception remembers which of the user's calls raised."""

    def run(*args, **kwargs):
        __tracebackhide__ = True  # noqa: F841 - IPython hides this frame from tracebacks
        try:
            return fn(*args, **kwargs)
        except BaseException as exc:
            mark_call(exc, signature)
            raise

    return run


def arrays_in(obj, label: str, depth: int = 0, seen=None):
    """(label, array) for every array in a cache (nested tuples, lists, dicts)."""
    seen = set() if seen is None else seen
    if isinstance(obj, np.ndarray):
        if id(obj) not in seen:
            seen.add(id(obj))
            yield label, obj
        return
    if depth > 4:
        return
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from arrays_in(v, f"{label}[{k!r}]", depth + 1, seen)
    elif isinstance(obj, (tuple, list)):
        for i, v in enumerate(obj):
            yield from arrays_in(v, f"{label}[{i}]", depth + 1, seen)


class Problem:
    """The course's functions wired to a float64 working copy of the parameters."""

    def __init__(self, plan, draws: Draws):
        self.plan = plan
        self.name = plan.forward.name
        self.rng = draws  # both random generators, replayed before every evaluation
        others = [
            arg.value
            for binding in (plan.forward, plan.backward, plan.cost)
            for arg in getattr(binding, "args", ())
            if isinstance(getattr(arg, "value", None), np.ndarray)
        ]
        functions = [getattr(b, "fn", None) for b in (plan.forward, plan.cost, plan.backward)]
        in_place = in_place_safe(plan.params, others) and not reads_params_elsewhere(functions, plan.params)
        self.params_obj, work_dict, self.params_value = working_copy(plan.params, in_place=in_place)
        if work_dict is None:
            self.work = {plan.params_name: np.asarray(self.params_obj)}
            self.given = {}
        else:
            self.work = work_dict
            self.given = dict(self.params_obj.items())
        self.pristine = {
            k: _pristine(plan.params.get(k) if isinstance(plan.params, dict) else plan.params, v)
            for k, v in self.work.items()
        }
        self.replay = True
        self.warnings = []
        self.eval_seconds = 0.0
        self._forward = marked(plan.forward.caller(self.params_value), plan.forward.signature())
        self._cost = marked(plan.cost.caller(self.params_value), plan.cost.signature()) if plan.cost else None
        self._backward = marked(plan.backward.caller(self.params_value), plan.backward.signature())

    # ---- the baseline -------------------------------------------------------
    def _changed_blocks(self) -> list:
        """Blocks whose working array was modified, or replaced in the dict the functions get."""
        changed = [k for k, v in self.work.items() if not _same_bits(v, self.pristine[k])]
        if isinstance(self.params_obj, dict):
            changed += [
                k for k, v in self.given.items() if self.params_obj.get(k) is not v and k not in changed
            ]
            changed += [f"{k} (added)" for k in self.params_obj if k not in self.work]
        return changed

    def _reset_work(self):
        for k, v in self.work.items():
            v[...] = self.pristine[k]
        if isinstance(self.params_obj, dict):
            self.params_obj.clear()
            self.params_obj.update(self.given)

    def _first_call(self, call, what: str):
        """The first evaluation at θ, from the recorded RNG state: it tells whether the forward draws
        from np.random (then every evaluation replays it) and refuses a forward that changes
        ``what`` in place."""
        __tracebackhide__ = True  # noqa: F841 - IPython hides this frame from tracebacks
        self.rng.replay()
        out = call()
        self.replay = self.rng.moved()
        changed = self._changed_blocks()
        if changed:
            self._reset_work()
            raise GradCheckError(
                f"{self.name} changed {what} in place ({', '.join(changed)}): a forward "
                "pass must not modify its inputs (your arrays are restored)"
            )
        return out

    def baseline(self):
        """Evaluate once at θ: the cost J0, the forward's (first output, cache)."""
        __tracebackhide__ = True  # noqa: F841 - IPython hides this frame from tracebacks
        start = time.perf_counter()
        out = self._first_call(self._forward, "its parameters argument")
        first, cache = split_output(out, self.plan.forward.name)
        if self._cost is not None:
            value = self._cost(first, cache)
            where = self.plan.cost.name
        else:
            value = first
            where = self.plan.forward.name
        if not is_scalar_like(value):
            shape = getattr(np.asarray(value, dtype=object), "shape", "?")
            raise GradCheckError(
                f"{where} returned {type(value).__name__} of shape {shape}, not a "
                "single number: the cost must be a scalar (pass -c/--cost NAME if "
                "the forward returns an activation)"
            )
        return self._accepted_cost(value, where, start), first, cache

    def _accepted_cost(self, value, where: str, start: float) -> float:
        """The baseline cost as a float, once it is one central differences can read (not complex,
        integer or below float64 precision); the first evaluation's time is kept for the estimate."""
        refuse_complex_cost(value, where)
        refuse_cost_kind(value, where)
        self.to_float = to_float_for(value)
        j0 = self.to_float(value)
        refuse_float32_precision(j0, where)
        self.eval_seconds = time.perf_counter() - start
        return j0

    def cost_function(self):
        """J() at the current working arrays: the engine's hot path, kept lean.  With a dict or
        array of parameters the forward's arguments never change, so they are bound once."""
        forward, cost, to_float = self._forward, self._cost, self.to_float
        replay = self.rng.replay if self.replay else None
        fixed = (
            None
            if np.ndim(self.params_obj) == 0 and not isinstance(self.params_obj, dict)
            else self.plan.forward.fixed_args(self.params_obj)
        )
        if fixed is not None:
            fn, (fargs, fkw), signature = self.plan.forward.fn, fixed, self.plan.forward.signature()
        else:
            fn, fargs, fkw, signature = forward, (), {}, None
        tuple_out = None

        def J():
            __tracebackhide__ = True  # noqa: F841
            nonlocal tuple_out
            if replay:
                replay()
            try:
                out = fn(*fargs, **fkw)
            except BaseException as exc:
                if signature:
                    mark_call(exc, signature)
                raise
            if tuple_out is None:
                tuple_out = isinstance(out, (tuple, list))
            if cost is not None:
                return to_float(
                    cost(out[0], out[1] if len(out) > 1 else None) if tuple_out else cost(out, None)
                )
            return to_float(out[0] if tuple_out else out)

        return J

    def sensitivity(self, j0: float, cost) -> bool:
        """Does perturbing every parameter at once change the cost at all?"""
        rng = np.random.default_rng(12345)
        try:
            for v in self.work.values():
                nudge(v, rng)
            return (
                perturbed(cost, self.work, self.pristine, "every parameter was nudged by 1e-3 (relative)")
                != j0
            )
        finally:
            self._reset_work()

    # ---- the analytic gradient ---------------------------------------------
    def blocks(self, first, cache) -> list:
        """Run the backward once and pair each parameter block with its gradient."""
        __tracebackhide__ = True  # noqa: F841 - IPython hides this frame from tracebacks
        cache_arrays = [
            (label, a, bits_digest(a))
            for label, a in arrays_in(cache, "cache")
            if not any(a is w for w in self.work.values())
        ]
        self.rng.replay()
        grads = self._backward(first, cache)
        name = self.plan.backward.name
        changed = self._changed_blocks()
        if changed:
            self._reset_work()
            self.warnings.append(
                f"{name} modified the parameters in place ({', '.join(changed)}); "
                "the check used the original values and your arrays are restored"
            )
        mutated = [label for label, a, digest in cache_arrays if bits_digest(a) != digest]
        if mutated:
            self.warnings.append(
                f"{name} modified the forward's cache in place "
                f"({', '.join(mutated[:4])}{', ...' if len(mutated) > 4 else ''}); "
                "reusing that cache would give wrong results"
            )
        return self._pair(grads)

    def _pair(self, grads) -> list:
        name = self.plan.backward.name
        single = not isinstance(self.plan.params, dict)
        if single:
            pname = self.plan.params_name
            if isinstance(grads, dict):
                key = next((k for k in (f"d{pname}", pname, "dtheta", "grad") if k in grads), None)
                if key is None and len(grads) != 1:
                    raise GradCheckError(
                        f"{name} returned a dict with keys {sorted(map(str, grads))}; "
                        f"expected the gradient of {pname!r} (or a key d{pname})"
                    )
                grads = grads[key] if key else next(iter(grads.values()))
            return [self._block(pname, self.work[pname], grads, f"d{pname}")]
        if not isinstance(grads, dict):
            raise GradCheckError(
                f"{name} returned {type(grads).__name__}; expected a dict of gradients "
                f"such as {{'dW1': ..., 'db1': ...}} for the parameters "
                f"{', '.join(self.work)}"
            )
        matched = {
            k: (f"d{k}" if f"d{k}" in grads else k) for k in self.work if f"d{k}" in grads or k in grads
        }
        if not matched:
            raise GradCheckError(
                f"the gradient keys returned by {name} ({', '.join(map(str, grads))}) match "
                f"no parameter ({', '.join(self.work)}): name the gradient of W1 'dW1' (or 'W1')"
            )
        held = [k for k in self.work if k not in matched and not isinstance(self.plan.params[k], np.ndarray)]
        if held:  # a number beside the arrays (a rate, lambd) with no gradient is a constant, not a block
            self.warnings.append(
                f"{', '.join(held)}: number(s) in {self.plan.params_name} with no gradient, "
                "held fixed and not checked"
            )
        # the gradients only this dict holds (a backward's fresh results) are taken, not copied: no
        # one else can see or change them, and a second copy of a large block would be made at once
        owned = sys.getrefcount(grads) <= OWNED_DICT_REFS and type(grads) is dict
        owned_keys = {k for k in matched if owned and _owned(grads, matched[k])}  # before any is taken
        return [
            self._block(
                k,
                w,
                grads.get(matched[k]) if k in matched else None,
                matched.get(k, f"d{k}"),
                k in owned_keys,
            )
            for k, w in self.work.items()
            if k not in held
        ]

    def _block(self, pname: str, work: np.ndarray, grad, key: str, owned: bool = False) -> Block:
        original = self.plan.params[pname] if isinstance(self.plan.params, dict) else self.plan.params
        notes = []
        dtype = np.asarray(original).dtype
        if dtype.kind == "f" and dtype != np.float64:
            notes.append(f"{dtype} parameters checked in float64 (your own training runs in {dtype})")
        elif dtype.kind in "biu":
            notes.append("integer parameters checked in float64")
        block = Block(pname, work, notes=notes, saved=self.pristine.get(pname))  # no 2nd copy in probes
        if grad is None:
            block.fatal = f"missing gradient {key}"
            return block
        if np.iscomplexobj(grad):
            imaginary = float(np.max(np.abs(np.imag(grad)))) if np.size(grad) else 0.0
            if imaginary > 0:
                block.fatal = (
                    f"gradient {key} is complex (imaginary part up to {imaginary:.3g}); the "
                    "parameter is real, so its gradient must be real"
                )
                return block
            grad = np.real(grad)
        try:
            g = grad if owned else np.array(grad, dtype=np.float64)
        except (TypeError, ValueError):
            block.fatal = f"gradient {key} is a {type(grad).__name__}, not numeric"
            return block
        if g.shape != work.shape:
            if work.ndim == 0 and g.size == 1:
                g = g.reshape(())
            else:
                block.analytic = g
                block.fatal = f"shape {g.shape} != {work.shape}"
                return block
        bad = ~np.isfinite(g)
        block.analytic = g
        if bad.any():
            block.fatal = f"analytic gradient {key} has {int(bad.sum())} non-finite entries"
        return block


#: References to the backward's gradient dict when only ``_pair`` holds it: ``blocks``'s local, the
#: argument, and ``sys.getrefcount``'s own.
OWNED_DICT_REFS = 3


def _owned(grads: dict, key) -> bool:
    """A float64 array that owns its memory and that only ``grads`` refers to."""
    value = grads[key]
    return (
        type(value) is np.ndarray
        and value.dtype == np.float64
        and value.flags.owndata
        and value.flags.writeable
        and sys.getrefcount(value) <= 3  # the dict's, ``value``'s and the argument's
    )


#: Relative size of the all-entries nudge that asks "does the cost read this block at all?".
NUDGE = 1e-3


class ConventionProblem(Problem):
    """The Problem interface api.py drives, over blocks the conventions define.

    ``work`` maps block names to the float64 arrays ``evaluate()`` reads: working copies
    for functions, the user's own arrays (perturbed in place) for objects, or the float64
    copies swapped into an object for its float32/integer arrays.  ``gradients()``
    returns ``{block: (analytic or None, key)}`` at the unperturbed point.  ``unread(names)``
    words the error when perturbing a block does not change the cost.  ``notes`` are a block's
    own notes; they stand in for the generic dtype note (they say how that block was checked)."""

    def __init__(
        self,
        plan,
        draws: Draws,
        work: dict,
        evaluate: Callable[[], object],
        gradients: Callable[[], dict],
        unread: Callable[[list], str],
        notes: Optional[dict] = None,
    ):
        self.plan = plan
        self.name = plan.forward
        self.rng = draws  # both random generators, replayed before every evaluation
        self.work = work
        self.pristine = {k: _pristine(v, v) for k, v in work.items()}
        self.params_obj = None
        self.replay = True
        self.warnings = []
        self.eval_seconds = 0.0
        self._evaluate, self._gradients, self._unread = evaluate, gradients, unread
        self._notes = notes or {}
        self._blocks = []

    def _changed_blocks(self) -> list:
        return [k for k, v in self.work.items() if not _same_bits(v, self.pristine[k])]

    def _reset_work(self):
        for k, v in self.work.items():
            v[...] = self.pristine[k]

    def baseline(self):
        __tracebackhide__ = True  # noqa: F841 - IPython hides this frame from tracebacks
        start = time.perf_counter()
        value = self._first_call(self._evaluate, "the arrays it is checked on")
        if not is_scalar_like(value):
            raise GradCheckError(
                f"{self.name} returned {type(value).__name__}, not a single number: the cost must be a scalar"
            )
        return self._accepted_cost(value, self.name, start), None, None

    def cost_function(self):
        evaluate, to_float = self._evaluate, self.to_float
        replay = self.rng.replay if self.replay else None

        def J():
            __tracebackhide__ = True  # noqa: F841
            if replay:
                replay()
            return to_float(evaluate())

        return J

    def blocks(self, first=None, cache=None) -> list:
        __tracebackhide__ = True  # noqa: F841 - IPython hides this frame from tracebacks
        self.rng.replay()
        grads = self._gradients()
        changed = self._changed_blocks()
        if changed:
            self._reset_work()
            self.warnings.append(
                f"the backward modified {', '.join(changed)} in place; the check used "
                "the original values and your arrays are restored"
            )
        self._blocks = []
        for name, work in self.work.items():
            grad, key = grads.get(name, (None, f"d{name}"))
            block = self._block(name, work, grad, key)
            if name in self._notes:
                block.notes[:] = self._notes[name]
            self._blocks.append(block)
        return self._blocks

    def sensitivity(self, j0: float, cost) -> bool:
        """Is any block read at all?  Each block with a nonzero gradient is nudged; when none of them
        changes the cost, the arrays the code reads are not the ones perturbed: say which, precisely.
        A block that alone does not move the cost is checked like any other: its true gradient may
        be zero (a bias feeding a batchnorm), and a nonzero analytic one then fails, with this note;
        unless it is a float64 copy swapped into an object, which the code may simply not read."""
        rng = np.random.default_rng(12345)
        nudged, unread = [], []
        for block in self._blocks:
            if block.comparable is None or not np.any(block.comparable):
                continue
            nudged.append(block)
            try:
                # a Gaussian direction: ±1 signs can all agree, and softmax ignores a shift of its biases
                block.work += (
                    NUDGE * np.maximum(np.abs(block.work), 1.0) * rng.standard_normal(block.work.shape)
                )
                what = f"every entry of {block.name} was nudged by 1e-3 (relative)"
                if perturbed(cost, {block.name: block.work}, self.pristine, what) == j0:
                    unread.append(block)
            finally:
                self._reset_work()
        swapped = [b for b in unread if b.name in self._notes]  # a float64 copy the code never saw
        if swapped or (unread and len(unread) == len(nudged)):
            raise GradCheckError(self._unread([b.name for b in swapped or unread]))
        for block in unread:
            block.notes.append(
                f"the cost did not change when {block.name} was nudged: its true gradient is zero "
                f"(a bias feeding a batchnorm), or the code reads another array than {block.name}"
            )
        return True
