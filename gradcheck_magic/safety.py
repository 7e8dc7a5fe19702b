"""Nothing lost: snapshot the user's parameters, inputs and np.random state; restore them.

The snapshot is taken before any user code runs for the check and restored in a
``finally``, so a pass, a fail, an exception or Ctrl-C all leave the arrays
bit-for-bit and dtype-for-dtype as they were, and the global RNG where it was.
"""
from __future__ import annotations

import numpy as np


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def rng_equal(s1, s2) -> bool:
    return (s1[0] == s2[0] and np.array_equal(s1[1], s2[1]) and s1[2:] == s2[2:])


class Snapshot:
    """What the user had: the parameters (dict entries or a variable) and array inputs."""

    def __init__(self, namespace: dict, params_name: str):
        self.namespace = namespace
        self.params_name = params_name
        self.params = namespace.get(params_name)
        self.rng = np.random.get_state()
        self.entries = None
        if isinstance(self.params, dict):
            self.entries = [(k, v, v.copy() if isinstance(v, np.ndarray) else None)
                            for k, v in self.params.items()]
        self.arrays = []
        self.watch(params_name, self.params)

    def watch(self, name: str, value) -> None:
        """Also keep (and restore) an input array the user's functions are given."""
        if isinstance(value, np.ndarray) and not any(value is a for _, a, _ in self.arrays):
            self.arrays.append((name, value, value.copy()))

    def changes(self) -> list:
        """Names of what differs from the snapshot (for reporting mutation)."""
        found = []
        if self.namespace.get(self.params_name) is not self.params:
            found.append(f"{self.params_name} (rebound)")
        if self.entries is not None:
            current = self.params
            keys = [k for k, _, _ in self.entries]
            if list(current) != keys:
                found.append(f"{self.params_name} (keys changed)")
            for k, obj, saved in self.entries:
                now = current.get(k)
                if now is not obj:
                    found.append(f"{self.params_name}[{k!r}] (replaced)")
                elif saved is not None and not _same_bits(obj, saved):
                    found.append(f"{self.params_name}[{k!r}]")
        for name, obj, saved in self.arrays:
            if not _same_bits(obj, saved):
                found.append(name)
        return found

    def restore(self) -> None:
        """Put back every object, its bits, and the RNG state."""
        if self.params_name in self.namespace or self.params is not None:
            self.namespace[self.params_name] = self.params
        if self.entries is not None:
            d = self.params
            for extra in [k for k in d if k not in {k for k, _, _ in self.entries}]:
                del d[extra]
            for k, obj, saved in self.entries:
                d[k] = obj
                if saved is not None and not _same_bits(obj, saved):
                    obj[...] = saved
            # keep the key order the user had
            items = [(k, d.pop(k)) for k, _, _ in self.entries]
            d.update(items)
        for _, obj, saved in self.arrays:
            if not _same_bits(obj, saved):
                obj[...] = saved
        np.random.set_state(self.rng)
