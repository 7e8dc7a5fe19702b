"""Nothing lost: one snapshot of what the check's calls can touch, put back on every path.

:class:`Snapshot` is taken before the first call of any user code (discovery's probes included) and
restored in a ``finally``, so a pass, a fail, an exception or Ctrl-C all leave things as they were:

- every array reachable from the roots, bit for bit and dtype for dtype (one copy of each, shared
  by every snapshot alive at once while the array keeps those bits);
- every object, dict, list and set on the way, at any depth: the same attributes, entries and items
  (the same objects: an array rebound to an equal new one is put back; none added, none removed);
- the globals the user's functions read or assign, found from their code (``LOAD_GLOBAL`` and
  ``STORE_GLOBAL`` against ``__globals__``), the cells of their closures, their mutable defaults, and
  the class attributes of user classes; so a ``model.loss`` that calls ``norm.update(X)`` on a global
  helper leaves ``norm`` as it was.  Library code (numpy, the standard library, installed packages,
  this package under any name) and modules are not walked: only what the user's own code can reach
  through the user's own objects;
- numpy's global random state and Python's ``random`` state (:class:`Draws`, also what every
  evaluation replays).

Objects whose methods read their own float32, integer, read-only or strided arrays are checked
through one float64 copy per array swapped into every place the snapshot found holding it
(:class:`Swap`, :meth:`Snapshot.swap_in`); the restore swaps the user's array back.

Each thing is restored on its own: an array that cannot be written back (``arr.shape = (-1,)`` on a
view) is rebound to a copy of the original and the restore says so; nothing stops the rest or the
random states.
"""

from __future__ import annotations

import dis
import functools
import gc
import hashlib
import operator
import os
import random
import site
import sys
import sysconfig
import types
import weakref
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

#: Marks a global or attribute that did not exist when the snapshot was taken.
MISSING = object()
#: Top-level packages never walked, wherever they are installed (an editable install is not in
#: site-packages).
NEVER_WALKED = frozenset({"builtins", "gradcheck_magic", "numpy", "pandas", "IPython", "ipykernel"})
#: Values that hold nothing to walk (checked by exact type first: the walk's hot path).
_LEAVES = frozenset({str, int, float, bool, bytes, complex, type(None)})
#: This package's own files, under whatever module name a copy of it is loaded (the grader's private one).
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_GLOBAL_OPS = frozenset({"LOAD_GLOBAL", "STORE_GLOBAL", "DELETE_GLOBAL", "LOAD_NAME", "STORE_NAME"})


# ---- the random generators --------------------------------------------------------------------


def rng_equal(s1, s2) -> bool:
    return s1[0] == s2[0] and np.array_equal(s1[1], s2[1]) and s1[2:] == s2[2:]


class Draws:
    """numpy's global random state and Python's ``random`` state as they were: replayed before each
    evaluation (a dropout mask, word2vec's ``sampleTokenIdx``: the same draws every time) and put
    back after the check."""

    def __init__(self):
        self.numpy = np.random.get_state()
        self.python = random.getstate()

    def replay(self) -> None:
        np.random.set_state(self.numpy)
        random.setstate(self.python)

    restore = replay

    def moved(self) -> bool:
        """Has either generator drawn since it was recorded (or last replayed)?"""
        return random.getstate() != self.python or not rng_equal(np.random.get_state(), self.numpy)


# ---- what is the user's ---------------------------------------------------------------------------


@functools.cache
def _library_dirs() -> tuple:
    paths = sysconfig.get_paths()
    dirs = {paths.get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    try:
        dirs.update(site.getsitepackages())
        dirs.add(site.getusersitepackages())
    except AttributeError:  # pragma: no cover - a virtualenv's old site.py
        pass
    return tuple(sorted(d for d in dirs if d))


@functools.lru_cache(maxsize=4096)
def is_library(module: Optional[str]) -> bool:
    """Code from numpy, the standard library or an installed package (not walked), as opposed to the
    user's: ``__main__``, code run with ``exec``, and modules outside the installation's paths."""
    if not module:
        return False
    top = module.partition(".")[0]
    if top == "__main__":
        return False
    if top in NEVER_WALKED or top in sys.stdlib_module_names:
        return True
    found = sys.modules.get(module) or sys.modules.get(top)
    path = getattr(found, "__file__", None)
    return bool(path) and path.startswith((*_library_dirs(), _PACKAGE_DIR))


def _users_type(cls) -> bool:
    return cls is types.SimpleNamespace or not is_library(getattr(cls, "__module__", None))


@functools.lru_cache(maxsize=4096)
def _global_names(code: types.CodeType) -> tuple:
    """(names the code reads as globals, names it assigns or deletes as globals), nested code included."""
    read, stored = set(), set()
    for ins in dis.get_instructions(code):
        if ins.opname in _GLOBAL_OPS:
            (stored if ins.opname.startswith(("STORE", "DELETE")) else read).add(ins.argval)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            r, s = _global_names(const)
            read |= r
            stored |= s
    return frozenset(read), frozenset(stored)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    """Bit for bit (a NaN's payload, the sign of a zero), without copying the arrays."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    size = a.dtype.itemsize
    if a.dtype.hasobject or size not in (1, 2, 4, 8):
        return a.tobytes() == b.tobytes()
    view = np.dtype(f"u{size}")
    return bool(np.array_equal(a.view(view), b.view(view)))


def bits_digest(a: np.ndarray) -> tuple:
    """A fingerprint of the array's dtype, shape and bits: tells whether a call changed it, with no
    copy of a contiguous array (a cache the backward must not modify is watched this way)."""
    if a.dtype.hasobject:
        return (a.dtype.str, a.shape, a.tobytes())
    flat = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
    return (a.dtype.str, a.shape, hashlib.blake2b(flat).digest())


def _listed(labels: list, most: int = 3) -> str:
    shown = ", ".join(labels[:most])
    return shown + (f" and {len(labels) - most} more" if len(labels) > most else "")


# ---- the snapshot ---------------------------------------------------------------------------------


@dataclass
class Saved:
    """One array as it was: its one copy, shared by every snapshot alive that reaches the array while
    it still has these bits (the check's first snapshot and each candidate's)."""

    label: str
    array: np.ndarray
    copy: np.ndarray


#: id(array) -> its Saved copy, while a snapshot holds it: no second copy of an unchanged array.
_COPIES: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def saved_copy(array: np.ndarray) -> Optional[np.ndarray]:
    """The copy a live snapshot holds of ``array``, read-only (it is what the restore writes back),
    so that a caller needing the same values makes no copy of its own; None when there is none."""
    known = _COPIES.get(id(array))
    if known is None or known.array is not array:
        return None
    view = known.copy.view()
    view.flags.writeable = False
    return view


def _saved(label: str, array: np.ndarray) -> Saved:
    """The array's copy: the one a live snapshot already holds if its bits are still the array's,
    else a new one."""
    known = _COPIES.get(id(array))
    if known is not None and known.array is array and _same_bits(array, known.copy):
        return known
    saved = _COPIES[id(array)] = Saved(label, array, array.copy())
    return saved


@dataclass(slots=True)
class Place:
    """Where the walk saw a value: an entry of a dict or list, an attribute, a global, a tuple item."""

    label: str
    kind: str  # "item" (dict or list), "attr", "global", "cell", "pinned" (a tuple: cannot be rebound)
    owner: object
    key: object
    value: object


class Snapshot:
    """What the user had, from ``roots`` (label → value) outward, and both random generators.

    ``namespace``: where the roots' names are bound (a name rebound there is put back).  ``watch``:
    the roots whose changes are reported, not only restored (parameters and the arguments the user's
    functions get; a layer object legitimately rebinds its caches, so those are only restored)."""

    def __init__(self, roots: Optional[dict] = None, namespace: Optional[dict] = None, watch=()):
        self.draws = Draws()
        self.namespace = namespace
        self.arrays: dict = {}  # id(array) -> Saved
        self.places: list = []  # every Place an array sits in (for swaps and rebinding copies)
        self.containers: list = []  # (kind, object, its contents as they were)
        self.bindings: dict = {}  # (id(mapping), key) -> (label, mapping, key, value or MISSING)
        self.watched_arrays: dict = {}  # id -> label, the arrays whose changes are reported
        self.watched_names: dict = {}  # label -> the object it was bound to
        self.watched_dicts: list = []  # (label, dict, [(key, value)])
        self.swaps: dict = {}  # id(original) -> Swap
        self.swapped: dict = {}  # block -> Swap
        self._seen: dict = {}  # id -> object (kept alive so ids stay unique)
        for label, value in (roots or {}).items():
            self.keep(label, value)
        for label in watch:
            if label in (roots or {}):
                self.watch(label, roots[label])

    @property
    def rng(self) -> Draws:
        return self.draws

    # ---- taking ---------------------------------------------------------------------------------
    def keep(self, label: str, value) -> None:
        """Restore ``value`` and everything reachable from it (a root bound in the namespace too)."""
        ns = self.namespace
        if ns is not None and "." not in label and "[" not in label and ns.get(label, MISSING) is value:
            self._bind(label, ns, label, value)
        self._walk(label, value)

    def watch(self, label: str, value) -> None:
        """Also report changes of ``value`` (an array, a dict of arrays, a namespace name)."""
        self.keep(label, value)
        ns = self.namespace
        if ns is not None and ns.get(label, MISSING) is value:
            self.watched_names.setdefault(label, value)
        if isinstance(value, np.ndarray):
            self.watched_arrays.setdefault(id(value), label)
        elif isinstance(value, dict):
            if not any(d is value for _, d, _ in self.watched_dicts):
                self.watched_dicts.append((label, value, list(value.items())))
            for key, item in value.items():
                if isinstance(item, np.ndarray):
                    self.watched_arrays.setdefault(id(item), f"{label}[{key!r}]")

    def _bind(self, label: str, mapping: dict, key, value) -> None:
        self.bindings.setdefault((id(mapping), key), (label, mapping, key, value))

    def _walk(self, label: str, value) -> None:
        """Every container and array reachable from ``value``, iteratively (any depth, cycles once)."""
        stack = [(label, value)]
        collecting = gc.isenabled()
        gc.disable()  # the walk only adds references: a collection per thousand containers is waste
        try:
            self._walk_from(stack)
        finally:
            if collecting:
                gc.enable()

    def _walk_from(self, stack: list) -> None:
        while stack:
            label, value = stack.pop()
            if isinstance(value, np.ndarray):
                if id(value) not in self.arrays:
                    self.arrays[id(value)] = _saved(label, value)
                continue
            if id(value) in self._seen or not self._walkable(value):
                continue
            self._seen[id(value)] = value
            children = self._children(label, value)
            for place in children:
                if isinstance(place.value, np.ndarray):
                    self.places.append(place)
            stack.extend((p.label, p.value) for p in reversed(children))

    @staticmethod
    def _walkable(value) -> bool:
        if value is None or isinstance(value, (str, bytes, int, float, complex, bool, types.ModuleType)):
            return False
        if isinstance(value, (dict, list, set, tuple, types.MethodType, functools.partial)):
            return True
        if isinstance(value, (types.FunctionType, type)):
            return not is_library(getattr(value, "__module__", None))
        if isinstance(value, (staticmethod, classmethod, property)):
            return True
        return _users_type(type(value))

    def _children(self, label: str, value) -> list:
        """The places inside ``value`` (recording how to put its contents back)."""
        if isinstance(value, dict):
            self.containers.append(("dict", value, list(value.items())))
            return self._places(label, "item", value, value.items(), value.values())
        if isinstance(value, list):
            self.containers.append(("list", value, list(value)))
            return self._places(label, "item", value, enumerate(value), value)
        if isinstance(value, set):
            self.containers.append(("set", value, set(value)))
            return []
        if isinstance(value, tuple):
            return self._places(label, "pinned", value, enumerate(value), value)
        if isinstance(value, types.MethodType):
            owner = label.rpartition(".")[0] or label
            return [Place(owner, "pinned", value, None, value.__self__), self._code(label, value.__func__)]
        if isinstance(value, functools.partial):
            return [Place(label, "pinned", value, "func", value.func)] + [
                Place(f"{label}(…)", "pinned", value, None, v) for v in (value.args, value.keywords)
            ]
        if isinstance(value, (staticmethod, classmethod)):
            return [self._code(label, value.__func__)]
        if isinstance(value, property):
            return [self._code(label, f) for f in (value.fget, value.fset, value.fdel) if f is not None]
        if isinstance(value, types.FunctionType):
            return self._function(label, value)
        if isinstance(value, type):
            return self._class(label, value)
        return self._object(label, value)

    def _places(self, label: str, kind: str, owner, pairs, values, attrs: bool = False) -> list:
        """The places of ``owner``'s children worth walking: arrays and containers, not numbers or
        strings (a list of words costs one pass in C, no label per word)."""
        if _LEAVES.issuperset(map(type, values)):
            return []
        places = []
        for key, v in pairs:
            if type(v) in _LEAVES:
                continue
            if isinstance(v, np.ndarray) or (id(v) not in self._seen and self._walkable(v)):
                places.append(Place(f"{label}.{key}" if attrs else f"{label}[{key!r}]", kind, owner, key, v))
        return places

    @staticmethod
    def _code(label, fn) -> Place:
        return Place(label, "pinned", fn, None, fn)

    def _function(self, label: str, fn) -> list:
        """A user function: the globals its code reads or assigns, its closure cells, its defaults."""
        places = []
        read, stored = _global_names(fn.__code__)
        g = fn.__globals__
        for name in sorted(read | stored):
            if name in g:
                self._bind(name, g, name, g[name])
                places.append(Place(name, "global", g, name, g[name]))
            elif name in stored:
                self._bind(name, g, name, MISSING)  # a global the check's calls create is removed
        for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
            try:
                contents = cell.cell_contents
            except ValueError:
                contents = MISSING
            self.containers.append(("cell", cell, contents))
            if contents is not MISSING:
                places.append(Place(f"the closure of {label} ({name})", "cell", cell, None, contents))
        for defaults in (fn.__defaults__, fn.__kwdefaults__):
            if defaults:
                places.append(Place(f"the defaults of {label}", "pinned", fn, None, defaults))
        return places

    def _class(self, label: str, cls) -> list:
        """A user class: its attributes (class-level state) and its methods' globals; its bases."""
        attrs = dict(vars(cls))
        self.containers.append(("class", cls, attrs))
        code = (types.FunctionType, staticmethod, classmethod, property)
        places = [
            Place(f"{cls.__name__}.{k}", "pinned", cls, k, v)
            for k, v in attrs.items()
            if isinstance(v, code) or not (k.startswith("__") and k.endswith("__"))
        ]
        return places + [Place(b.__name__, "pinned", cls, None, b) for b in cls.__bases__ if b is not object]

    def _object(self, label: str, obj) -> list:
        """An instance of a user class: its attributes (``__dict__`` and slots), and its class."""
        places = []
        attrs = getattr(obj, "__dict__", None)
        if isinstance(attrs, dict):
            self.containers.append(("dict", attrs, list(attrs.items())))
            places += self._places(label, "attr", obj, attrs.items(), attrs.values(), attrs=True)
        slots = [s for c in type(obj).__mro__ for s in _slots(c) if s not in ("__dict__", "__weakref__")]
        if slots:
            values = {s: getattr(obj, s, MISSING) for s in slots}
            self.containers.append(("slots", obj, values))
            places += self._places(label, "pinned", obj, values.items(), values.values(), attrs=True)
        return places + [Place(type(obj).__name__, "pinned", obj, None, type(obj))]

    # ---- the float64 stand-ins ------------------------------------------------------------------
    def rebind(self, original: np.ndarray, replacement: np.ndarray) -> tuple:
        """Point every dict entry, list item, attribute and global the walk found holding ``original``
        at ``replacement``; ``restore()`` points them back.  Returns (the places rebound, the places
        still holding ``original``: tuples, closures, slots, containers that refuse the item)."""
        rebound, held = [], []
        for place in self.places:
            if place.value is not original:
                continue
            if place.kind in ("pinned", "cell"):
                held.append(place.label)
                continue
            if not _holds(place, original):
                continue  # rebound since the walk; restore() puts back what was recorded
            try:
                _put(place, replacement)
            except Exception:  # noqa: BLE001 - a container of the user's that refuses the item
                held.append(place.label)
                continue
            (rebound if _holds(place, replacement) else held).append(place.label)
        return rebound, held

    def stand_in(self, block: str, label: str, arr, owner: str) -> np.ndarray:
        """The array the check perturbs for ``block``: the user's own where it lies when it can be
        written (float64, contiguous, writeable), else one float64 copy per array (a network's
        ``params['W1']`` and its layer's ``.W`` share it), swapped in by :meth:`swap_in`."""
        why = _why_copied(label, arr, owner)
        if why is None:
            return arr
        swap = self.swaps.get(id(arr))
        if swap is None:
            swap = Swap(label, why, arr, np.array(arr, dtype=np.float64, order="C", copy=True))
            self.swaps[id(arr)] = swap
        self.swapped[block] = swap
        return swap.copy

    def swap_in(self) -> None:
        """Swap the stand-ins in, each refilled from its original (so a second swap-in after a
        restore starts clean); on any failure (or Ctrl-C) everything is put back before it propagates."""
        try:
            for swap in self.swaps.values():
                swap.copy[...] = swap.original
                places, held = self.rebind(swap.original, swap.copy)
                swap.places, swap.held = places, list(dict.fromkeys(held))
                if not swap.places:
                    from .errors import GradCheckError

                    raise GradCheckError(
                        f"{swap.label} is {swap.why}: the check would perturb a float64 copy of it, but "
                        "found no dict entry, list item or attribute holding it to swap the copy into"
                        + (f" (it sits in {_listed(swap.held)})" if swap.held else "")
                        + f"; {swap.remedy()}"
                    )
        except BaseException:
            self.restore()
            raise

    def swapped_description(self) -> str:
        """For the plan's description: which blocks go through copies."""
        if not self.swapped:
            return ""
        return f" (float64 copies swapped in for {_listed(list(self.swapped), 4)})"

    def swapped_notes(self) -> dict:
        return {block: [swap.note()] for block, swap in self.swapped.items()}

    def swapped_unread(self, names: list, changed: str, elsewhere: str = "") -> Optional[str]:
        """The message when perturbing a swapped block did not change the cost, or None."""
        swapped = [n for n in names if n in self.swapped]
        if not swapped:
            return None
        others = [n for n in names if n != swapped[0]]
        also = f" (also {', '.join(others)})" if others else ""
        return self.swapped[swapped[0]].unread(changed, elsewhere or Swap.ELSEWHERE) + also

    # ---- giving back ----------------------------------------------------------------------------
    def changes(self) -> list:
        """What differs from the snapshot among the watched things (for reporting mutation)."""
        found = [
            f"{name} (rebound)"
            for name, value in self.watched_names.items()
            if self.namespace.get(name, MISSING) is not value
        ]
        for label, d, items in self.watched_dicts:
            if list(d) != [k for k, _ in items]:
                found.append(f"{label} (keys changed)")
            found += [f"{label}[{k!r}] (replaced)" for k, v in items if k in d and d[k] is not v]
        for i, label in self.watched_arrays.items():
            saved = self.arrays[i]
            if not _same_bits(saved.array, saved.copy):
                found.append(label)
        return found

    def restore(self) -> list:
        """Put back every container, global and array, each on its own, then both random generators;
        notes of what could only be rebound.  It may be called more than once."""
        notes = []
        try:
            for kind, obj, saved in self.containers:
                note = _restore_container(kind, obj, saved)
                if note:
                    notes.append(note)
            for label, mapping, key, value in self.bindings.values():
                try:
                    if value is MISSING:
                        mapping.pop(key, None)
                    elif mapping.get(key, MISSING) is not value:
                        mapping[key] = value
                except Exception as exc:  # noqa: BLE001 - a user's mapping may refuse
                    notes.append(f"could not restore {label} ({type(exc).__name__})")
            for saved in self.arrays.values():
                note = self._restore_array(saved)
                if note:
                    notes.append(note)
        finally:
            self.draws.restore()
        return notes

    def _restore_array(self, saved: Saved) -> Optional[str]:
        """Write the original bits back in place; if that is impossible, rebind a copy and say so."""
        array, copy = saved.array, saved.copy
        if _same_bits(array, copy):
            return None
        try:
            if array.shape != copy.shape:
                array.shape = copy.shape
            if array.dtype != copy.dtype:
                raise TypeError("dtype changed")
            array[...] = copy
            return None
        except Exception:  # noqa: BLE001 - shape/dtype cannot be put back in place: rebind instead
            places = [p for p in self.places if p.value is array and p.kind not in ("pinned", "cell")]
            bound = [b for b in self.bindings.values() if b[3] is array]
            copy = copy.copy()  # the user's from now on; the saved copy stays the snapshots' own
            try:
                for place in places:
                    _put(place, copy)
                for _, mapping, key, _ in bound:
                    mapping[key] = copy
            except Exception as exc:  # noqa: BLE001
                return f"{saved.label} could not be restored ({type(exc).__name__}: {exc})"
            return (
                f"{saved.label} was reshaped or retyped in place and could not be written back: "
                "it is rebound to a copy of the original (other references still see the change)"
            )


def _slots(cls) -> tuple:
    slots = vars(cls).get("__slots__", ())
    return (slots,) if isinstance(slots, str) else tuple(slots)


def _holds(place: Place, value) -> bool:
    """Does the place read as this very object?"""
    try:
        if place.kind == "attr":
            return vars(place.owner).get(place.key, MISSING) is value
        return place.owner[place.key] is value
    except Exception:  # noqa: BLE001 - a user's container class may raise anything
        return False


def _put(place: Place, value) -> None:
    if place.kind == "attr":
        vars(place.owner)[place.key] = value
    else:
        place.owner[place.key] = value


def _same_entries(current: dict, saved: list) -> bool:
    """The same keys in the same order, each holding the very object it held."""
    return (
        len(current) == len(saved)
        and list(current) == [k for k, _ in saved]
        and all(map(operator.is_, current.values(), (v for _, v in saved)))
    )


def _same_items(current: list, saved: list) -> bool:
    return len(current) == len(saved) and all(map(operator.is_, current, saved))


def _restore_container(kind: str, obj, saved) -> Optional[str]:
    """Put one container's contents back if they differ (identity of every value, key order)."""
    try:
        if kind == "dict":
            if not _same_entries(obj, saved):
                obj.clear()
                obj.update(saved)
        elif kind == "list":
            if not _same_items(obj, saved):
                obj[:] = saved
        elif kind == "set":
            if obj != saved:
                obj.clear()
                obj.update(saved)
        elif kind == "cell":
            if saved is MISSING:
                try:
                    del obj.cell_contents
                except ValueError:
                    pass
            else:
                obj.cell_contents = saved
        elif kind == "class":
            current = dict(vars(obj))
            for key in [k for k in current if k not in saved]:
                delattr(obj, key)
            for key, value in saved.items():
                if current.get(key, MISSING) is not value and not key.startswith("__"):
                    setattr(obj, key, value)
        elif kind == "slots":
            for key, value in saved.items():
                if value is MISSING:
                    if hasattr(obj, key):
                        delattr(obj, key)
                elif getattr(obj, key, MISSING) is not value:
                    setattr(obj, key, value)
    except Exception as exc:  # noqa: BLE001 - a user's container may refuse; the rest goes on
        return f"could not restore the contents of a {type(obj).__name__} ({type(exc).__name__}: {exc})"
    return None


# ---- the float64 stand-in of one array --------------------------------------------------------


def _why_copied(label: str, arr, owner: str) -> Optional[str]:
    """None when an array the methods read can be perturbed where it lies (float64, contiguous,
    writeable); else why it is checked through a float64 copy instead: its dtype, or its layout."""
    if not isinstance(arr, np.ndarray) or arr.dtype.kind not in "iuf":
        from .errors import GradCheckError

        kind = arr.dtype if isinstance(arr, np.ndarray) else type(arr).__name__
        raise GradCheckError(
            f"{label} is {kind}: {owner}'s methods read it in place, so only real (float or "
            "integer) arrays can be checked (make it float64)"
        )
    if arr.dtype != np.float64:
        return str(arr.dtype)
    if not arr.flags.writeable:
        return "read-only"
    if not arr.flags.c_contiguous:
        return "non-contiguous"
    return None


@dataclass
class Swap:
    """A float32, integer, read-only or non-contiguous array the methods read: a float64 copy stands in
    for it in every dict entry, list item and attribute the snapshot reaches, for the check only."""

    #: Where the methods may read an array that no copy can reach, when the walk found no such place.
    ELSEWHERE = "a tuple, a view of another array, a closure, or a copy made when the object was built?"

    label: str
    why: str  # its dtype ("float32", "int64"), "read-only" or "non-contiguous"
    original: np.ndarray
    copy: np.ndarray
    places: list = field(default_factory=list)  # where the copy was swapped in
    held: list = field(default_factory=list)  # where the original stays (tuples, containers that refuse)

    @property
    def of_dtype(self) -> bool:
        return self.why not in ("read-only", "non-contiguous")

    def note(self) -> str:
        kind = {"read-only": "a writeable", "non-contiguous": "a contiguous"}.get(self.why, "a float64")
        note = (
            f"{self.why} array checked through {kind} copy swapped into {_listed(self.places)} "
            "(your array untouched)"
        )
        return note + (f"; {_listed(self.held)} still holds your array" if self.held else "")

    def remedy(self) -> str:
        if self.of_dtype:
            return "build the object with float64 arrays to check it"
        return "store a contiguous writeable float64 array in the object (np.array(..., dtype=np.float64))"

    def unread(self, changed: str, elsewhere: str) -> str:
        where = f"it also sits in {_listed(self.held)}, which cannot be swapped" if self.held else elsewhere
        return (
            f"{changed} did not change when {self.label} was perturbed: {self.label} is {self.why}, and "
            f"the check could not swap every reference to it: it swapped a float64 copy into "
            f"{_listed(self.places)}, but your code reads the {self.why} array elsewhere ({where}); "
            f"{self.remedy()} (your arrays are untouched)"
        )
