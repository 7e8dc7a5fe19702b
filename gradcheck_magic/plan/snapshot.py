"""The snapshot of the objects a plan perturbs in place: every array reachable from its roots keeps
its bits and dtype, every attribute, dict entry and list item is put back, np.random's state too.

Kept as it was when it lived in ``conventions.py``; ``safety.py``'s one snapshot room replaces it.
"""

from __future__ import annotations

import types

import numpy as np

#: How deep the snapshot walks into objects, dicts and lists to find arrays to restore.
SNAPSHOT_DEPTH = 5


def is_plain_object(value) -> bool:
    """An instance of a user's class (not a module, class or function)."""
    return hasattr(value, "__dict__") and not isinstance(
        value, (type, types.ModuleType, types.FunctionType, types.MethodType, types.BuiltinFunctionType)
    )


class ObjectSnapshot:
    """Nothing lost for objects: every array reachable from the roots (object attributes,
    dict entries, list items) keeps its bits and dtype, every attribute, dict entry and list
    item is put back, and np.random's state is restored.  ``changes()`` reports only the
    *watched* arrays (parameters and inputs): layer objects legitimately rebind caches."""

    def __init__(self, roots: dict):
        self.roots = dict(roots)
        self.rng = np.random.get_state()
        self.arrays, self.containers, self.watched = [], [], []
        #: every place the walk saw an array: (label, container, key, array) in a dict, list or
        #: object (restore() puts these back, so they may be rebound), and (label, array) in a tuple
        self.slots, self.pinned = [], []
        seen = set()
        for label, value in roots.items():
            self._walk(label, value, 0, seen)

    def _walk(self, label, value, depth, seen):
        if id(value) in seen or depth > SNAPSHOT_DEPTH:
            return
        if isinstance(value, np.ndarray):
            seen.add(id(value))
            self.arrays.append((label, value, value.copy()))
            return
        if isinstance(value, dict):
            seen.add(id(value))
            self.containers.append((value, dict(value)))
            items = [(f"{label}[{k!r}]", k, v) for k, v in value.items()]
        elif isinstance(value, list):
            seen.add(id(value))
            self.containers.append((value, list(value)))
            items = [(f"{label}[{i}]", i, v) for i, v in enumerate(value)]
        elif isinstance(value, tuple):
            items = [(f"{label}[{i}]", None, v) for i, v in enumerate(value)]
        elif is_plain_object(value) and type(value).__module__ not in ("builtins",):
            if type(value).__module__.split(".")[0] in ("numpy", "pandas", "IPython", "gradcheck_magic"):
                return
            seen.add(id(value))
            self.containers.append((value, dict(vars(value))))
            items = [(f"{label}.{k}", k, v) for k, v in vars(value).items()]
        else:
            return
        for item_label, key, item in items:
            if isinstance(item, np.ndarray):
                if isinstance(value, tuple):
                    self.pinned.append((item_label, item))
                else:
                    self.slots.append((item_label, value, key, item))
            self._walk(item_label, item, depth + 1, seen)

    def rebind(self, original: np.ndarray, replacement: np.ndarray) -> tuple:
        """Point every dict entry, list item and attribute the walk found holding ``original`` at
        ``replacement``; ``restore()`` points them back, from what it recorded before this.

        Returns (the places rebound, the places still holding ``original``: tuples, and entries
        whose container would not take the replacement)."""
        rebound, held = [], [label for label, a in self.pinned if a is original]
        for label, container, key, value in self.slots:
            if value is not original:
                continue
            if isinstance(container, (dict, list)):
                if not _holds(container, key, original):
                    continue  # rebound since the walk; restore() puts back what was recorded
                try:
                    container[key] = replacement
                except Exception:  # noqa: BLE001 - a container of the user's that refuses the item
                    held.append(label)
                    continue
                took = _holds(container, key, replacement)
            else:
                if vars(container).get(key) is not original:
                    continue
                vars(container)[key] = replacement
                took = getattr(container, key, None) is replacement
            (rebound if took else held).append(label)
        return rebound, held

    def watch(self, label: str, value) -> None:
        """Report changes of this array (a parameter or an input), not only restore it."""
        if isinstance(value, np.ndarray):
            if not any(value is a for _, a, _ in self.arrays):
                self.arrays.append((label, value, value.copy()))
            self.watched.append((label, value))

    def changes(self) -> list:
        saved = {id(a): s for _, a, s in self.arrays}
        return [
            label
            for label, a in self.watched
            if a.dtype != saved[id(a)].dtype or a.tobytes() != saved[id(a)].tobytes()
        ]

    def restore(self) -> None:
        for obj, items in self.containers:
            if isinstance(obj, dict):
                obj.clear()
                obj.update(items)
            elif isinstance(obj, list):
                obj[:] = items
            else:
                current = vars(obj)
                for extra in [k for k in current if k not in items]:
                    del current[extra]
                current.update(items)
        for _, arr, saved in self.arrays:
            if arr.tobytes() != saved.tobytes():
                arr[...] = saved
        np.random.set_state(self.rng)


def _holds(container, key, value) -> bool:
    """Does ``container[key]`` read as this very object?"""
    try:
        return container[key] is value
    except Exception:  # noqa: BLE001 - a user's container class may raise anything
        return False
