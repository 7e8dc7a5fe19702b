"""Hints for failing blocks: what kind of bug the analytic-vs-numeric data point to.

Each rule claims a pattern only when the data fit it closely (a least-squares fit
with a small residual); otherwise it says nothing.  A hint is data (``kind``, ``ratio``,
``text``): the suspects read the kind and the number, people read the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

FIT = 1e-3  # a pattern fits when its residual is below this fraction of what it explains
MIN_ENTRIES = 4  # entries needed before an arbitrary constant ratio counts as a pattern


@dataclass(frozen=True)
class Hint:
    """What the data say about a failing block: the kind of bug, the number behind it, the sentence.

    ``kind`` is one of KINDS; ``ratio`` is analytic/numeric for the ratio kinds and the
    coefficient c of ``analytic − numeric ≈ c × W`` for "l2" (None for the others)."""

    kind: str
    text: str
    ratio: Optional[float] = None

    def __str__(self) -> str:
        return self.text


RATIO_KINDS = ("sign", "missing_m", "extra_m", "ratio")  # analytic ≈ ratio × numeric
KINDS = RATIO_KINDS + ("l2", "transposed", "keepdims", "no_effect", "mask", "rows", "worst")


@dataclass
class Context:
    """What the hints may use beyond the two gradients."""

    m: Optional[int] = None  # number of examples
    lambd: Optional[float] = None  # L2 strength, when the functions take one
    values: dict = field(default_factory=dict)  # block -> parameter values (float64)
    #: per 2-D array of the forward's cache and output: (its shape, which rows hold a 0), the one
    #: thing the mask hint reads of them, so the activations themselves are not kept for the hints
    zero_rows: list = field(default_factory=list)


def zero_rows(arrays) -> list:
    """(shape, rows holding a 0) of each 2-D array: inactive ReLU or dropped-out units per layer."""
    return [(a.shape, (a == 0).any(axis=1)) for a in arrays if a.ndim == 2]


def weight_multiple(d: np.ndarray, w: np.ndarray) -> Optional[float]:
    """The c with d ≈ c·w (an L2 term's signature), or None when d is no multiple of w."""
    ww = float(w @ w)
    if ww == 0 or not np.any(d):
        return None
    c = float(d @ w) / ww
    if np.linalg.norm(d - c * w) > FIT * np.linalg.norm(d):
        return None
    return c


def _close(x: float, target: float, tol: float = 2e-3) -> bool:
    return abs(x - target) <= tol * max(abs(target), 1e-300)


def _ratio_hint(g: np.ndarray, a: np.ndarray, ctx: Context) -> Optional[Hint]:
    """A constant ratio analytic/numeric.  With few entries any two numbers have "a ratio",
    so below MIN_ENTRIES only a simple one (±k, 1/k, m, 1/m) is claimed."""
    aa = float(a @ a)
    if aa == 0 or not np.any(g):
        return None
    c = float(g @ a) / aa
    if np.linalg.norm(g - c * a) > FIT * np.linalg.norm(g) or _close(c, 1.0) or _close(c, 0.0, tol=1e-9):
        return None
    m = ctx.m if ctx.m and ctx.m > 1 else None
    if _close(c, -1.0):
        kind, why = "sign", " (sign flipped)"
    elif m and _close(c, m):
        kind, why = "missing_m", f" (= m = {m}: a missing 1/m?)"
    elif m and _close(c, 1.0 / m):
        kind, why = "extra_m", " (= 1/m: an extra 1/m?)"
    else:
        kind, why = "ratio", ""
    simple = why or any(_close(abs(c), k) or _close(abs(c), 1.0 / k) for k in range(2, 11))
    if not simple and np.count_nonzero(a) < MIN_ENTRIES:
        return None
    return Hint(kind, f"analytic ≈ {c:.2f} × numeric{why}", c)


def _l2_hint(name: str, g: np.ndarray, a: np.ndarray, sel: np.ndarray, ctx: Context) -> Optional[Hint]:
    """analytic − numeric ≈ c × W.  The data tell only the difference: one (λ/m)·W short is the
    backward's term missing or the cost's counted twice; one too many, the other way round."""
    w = ctx.values.get(name)
    if w is None or not name.startswith("W"):
        return None
    w = w[sel]
    c = weight_multiple(g - a, w)
    if c is None:
        return None
    text = f"analytic − numeric ≈ {c:.3g} × {name}: a term proportional to the weights"
    if ctx.lambd and ctx.m:
        full = ctx.lambd / ctx.m
        if _close(c, -full, 1e-2):
            return Hint(
                "l2",
                text + f" — the analytic gradient lacks (λ/m)·{name}: the L2 term missing from the "
                "backward, or counted twice in the cost",
                c,
            )
        if _close(c, -full / 2, 1e-2):
            return Hint("l2", text + f" — only half the L2 term: use (λ/m)·{name}, not (λ/2m)·{name}", c)
        if _close(c, full, 1e-2):
            return Hint(
                "l2",
                text + f" — the analytic gradient has (λ/m)·{name} too much: the L2 term counted twice "
                "in the backward, or missing from the cost",
                c,
            )
    return Hint("l2", text + " (check the L2 regularization term)", c)


def _rows_hint(
    name: str, g2: np.ndarray, a2: np.ndarray, shape: tuple, ctx: Context, fail: float
) -> Optional[Hint]:
    """Errors confined to some units (rows), or present where the cost is flat: a missing mask."""
    if len(shape) != 2 or shape[0] < 2:
        return None
    err = np.linalg.norm(g2 - a2, axis=1)
    scale = np.linalg.norm(g2, axis=1) + np.linalg.norm(a2, axis=1)
    bad = err > fail * np.maximum(scale, 1e-12 * max(scale.max(), 1e-300))
    if not bad.any():
        return None
    dead = bad & (np.abs(a2).max(axis=1) == 0)
    mask = "a missing ReLU or dropout mask, or a wrong activation derivative?"
    if dead.any():
        return Hint(
            "mask",
            f"the analytic gradient is nonzero in {_listing(dead)} where the numeric gradient is "
            f"exactly 0 (those units are inactive for every example): {mask}",
        )
    for act_shape, flat in ctx.zero_rows:
        if act_shape[0] == shape[0] and (ctx.m is None or act_shape[1] == ctx.m):
            if flat.any() and not flat.all() and np.array_equal(bad, flat):
                return Hint(
                    "mask",
                    f"errors only in {_listing(bad)}: exactly units whose output is 0 for some "
                    f"examples (inactive ReLU or dropped-out units), the others match: {mask}",
                )
    if not bad.all():
        return Hint(
            "rows",
            f"errors only in {_listing(bad)} of {shape[0]} (units of this layer); the other rows match",
        )
    return None


def _listing(rows: np.ndarray) -> str:
    idx = np.flatnonzero(rows)
    return (
        ("row " if idx.size == 1 else "rows ")
        + ", ".join(map(str, idx[:8]))
        + (", ..." if idx.size > 8 else "")
    )


def _shape_hint(
    name: str, raw: np.ndarray, numeric: np.ndarray, shape: tuple, threshold: float
) -> Optional[Hint]:
    def matches(candidate):
        ok = np.isfinite(numeric)
        if not ok.any():
            return None
        d = np.linalg.norm(candidate[ok] - numeric[ok])
        s = np.linalg.norm(candidate[ok]) + np.linalg.norm(numeric[ok])
        return d <= threshold * max(s, 1e-300)

    if raw.ndim == 2 and len(shape) == 2 and raw.shape == shape[::-1]:
        fit = matches(raw.T)
        return Hint(
            "transposed",
            f"d{name} is transposed"
            + (
                " (its transpose matches the numeric gradient)"
                if fit
                else " and its transpose does not match either"
            ),
        )
    if raw.size == int(np.prod(shape)) and tuple(s for s in raw.shape if s != 1) == tuple(
        s for s in shape if s != 1
    ):
        fit = matches(raw.reshape(shape))
        return Hint(
            "keepdims",
            "missing keepdims=True in the sum"
            + (" (the values match)" if fit else "; the values differ too"),
        )
    return None


def _layer(name: str) -> str:
    """The layer a block belongs to: W2 and b2 share "2"."""
    return re.sub(r"^\D+", "", name)


def _sibling_ratio(name, g, a, ratios) -> Optional[Hint]:
    """Too few entries for a ratio of its own, but the layer's other block has one that fits."""
    for other, c in ratios.items():
        if (
            other != name
            and _layer(other) == _layer(name)
            and np.any(a)
            and np.linalg.norm(g - c * a) <= FIT * np.linalg.norm(g)
        ):
            return Hint("ratio", f"analytic ≈ {c:.2f} × numeric, as in {other}", c)
    return None


def diagnose(blocks, outcomes, ctx: Context, threshold: float, fail: float) -> None:
    """Append hints (``Hint``) to the outcomes of failing (or warning) blocks."""
    ratios = {}  # block -> constant ratio found, which a small sibling block may share
    pending = []
    for block, out in zip(blocks, outcomes):
        if out.status == "pass":
            continue
        if block.analytic is not None and block.comparable is None and block.analytic.shape != out.shape:
            hint = _shape_hint(out.name, block.analytic, out.numeric, out.shape, max(threshold * 10, 1e-6))
            if hint:
                out.hints.append(hint)
            continue
        if out.analytic is None or out.status != "fail":
            continue
        sel = out.checked & np.isfinite(out.numeric)
        if not sel.any():
            continue
        g, a = out.analytic[sel], out.numeric[sel]
        if not np.any(a) and np.any(g):
            out.hints.append(
                Hint(
                    "no_effect",
                    f"the cost does not change when {out.name} is perturbed: does the forward "
                    f"use {out.name} from its parameters argument?",
                )
            )
            continue
        ratio = _ratio_hint(g, a, ctx)
        if ratio:
            out.hints.append(ratio)
            ratios[out.name] = ratio.ratio
            continue
        hint = _l2_hint(out.name, g, a, sel, ctx)
        if hint:
            out.hints.append(hint)
            continue
        pending.append((out, sel, g, a))
    for out, sel, g, a in pending:
        hint = _sibling_ratio(out.name, g, a, ratios)
        if not hint and sel.all() and len(out.shape) == 2:
            hint = _rows_hint(out.name, out.analytic, out.numeric, out.shape, ctx, fail)
        if hint:
            out.hints.append(hint)
