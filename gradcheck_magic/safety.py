"""Nothing lost: snapshot every array the check can reach and np.random's state; restore them.

The snapshot is taken before the first call of any user code (discovery's probes included) and
restored in a ``finally``, so a pass, a fail, an exception or Ctrl-C all leave the arrays bit-for-bit
and dtype-for-dtype as they were, and the global RNG where it was.  Each array is restored on its own:
one that cannot be written back (a backward did ``arr.shape = (-1,)`` on a view) is rebound to a copy
of the original, and the restore says so; it never stops the rest or the RNG.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def rng_equal(s1, s2) -> bool:
    return s1[0] == s2[0] and np.array_equal(s1[1], s2[1]) and s1[2:] == s2[2:]


@dataclass
class Saved:
    """One array as it was, and where it lives (a namespace variable or a dict entry)."""

    label: str
    array: np.ndarray
    copy: np.ndarray
    owner: dict  # the namespace or the user's dict holding it
    key: object


@dataclass
class SavedDict:
    """A user's dict of parameters: its identity, key order and values."""

    label: str
    value: dict
    items: list  # (key, value) in the user's order


class Snapshot:
    """What the user had: the named variables, the arrays in their dicts, and np.random's state."""

    def __init__(self, namespace: dict, params_name: Optional[str], watched=()):
        self.namespace = namespace
        self.params_name = params_name
        self.rng = np.random.get_state()
        self.bindings = {}  # namespace name -> the object it was bound to
        self.arrays: list = []
        self.dicts: list = []
        for name in dict.fromkeys([n for n in (params_name, *watched) if n]):
            if name in namespace:
                self.watch(name, namespace[name])

    @property
    def params(self):
        return self.bindings.get(self.params_name)

    def watch(self, name: str, value) -> None:
        """Also keep (and restore) a variable the user's functions are given."""
        if name in self.namespace and self.namespace[name] is value:
            self.bindings.setdefault(name, value)
        if isinstance(value, dict):
            if any(d.value is value for d in self.dicts):
                return
            self.dicts.append(SavedDict(name, value, list(value.items())))
            for key, item in value.items():
                self._keep(f"{name}[{key!r}]", item, value, key)
        else:
            self._keep(name, value, self.namespace, name)

    def _keep(self, label: str, value, owner: dict, key) -> None:
        if isinstance(value, np.ndarray) and not any(value is s.array for s in self.arrays):
            self.arrays.append(Saved(label, value, value.copy(), owner, key))

    def changes(self) -> list:
        """Names of what differs from the snapshot (for reporting mutation)."""
        found = [
            f"{name} (rebound)"
            for name, value in self.bindings.items()
            if self.namespace.get(name) is not value
        ]
        for saved in self.dicts:
            if list(saved.value) != [k for k, _ in saved.items]:
                found.append(f"{saved.label} (keys changed)")
            found += [
                f"{saved.label}[{k!r}] (replaced)"
                for k, v in saved.items
                if k in saved.value and saved.value[k] is not v
            ]
        found += [s.label for s in self.arrays if not _same_bits(s.array, s.copy)]
        return found

    def restore(self) -> list:
        """Put back every binding, dict and array, each on its own, then the RNG; notes of what
        could only be rebound."""
        notes = []
        try:
            for name, value in self.bindings.items():
                self.namespace[name] = value
            for saved in self.dicts:
                try:
                    saved.value.clear()
                    saved.value.update(saved.items)
                except Exception as exc:  # noqa: BLE001 - a user's dict subclass may refuse
                    notes.append(f"could not restore the keys of {saved.label} ({type(exc).__name__})")
            for saved in self.arrays:
                note = _restore_array(saved)
                if note:
                    notes.append(note)
        finally:
            np.random.set_state(self.rng)
        return notes


def _restore_array(saved: Saved) -> Optional[str]:
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
        try:
            saved.owner[saved.key] = copy
        except Exception as exc:  # noqa: BLE001
            return f"{saved.label} could not be restored ({type(exc).__name__}: {exc})"
        return (
            f"{saved.label} was reshaped or retyped in place and could not be written back: "
            "it is rebound to a copy of the original (other references still see the change)"
        )
