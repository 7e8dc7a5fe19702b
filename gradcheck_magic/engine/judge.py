"""The judge: the evidence a block's status is decided from, and ``verdict``, the one place a
status is decided.

Every mode (full sweep, fast probes, a block with nothing to compare, a block an interruption never
reached) fills an ``Evidence`` and calls ``judge``, which asks ``verdict`` and writes why in the
notes.  The grader re-judges the same ``Evidence`` in its own process with the same ``verdict``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple, Optional

import numpy as np

from ..settings import Settings
from .records import Block, Outcome, count, fmt_index, index_of

#: A gradient whose norm is below this many times the round-off of its numeric estimate is zero
#: as far as float64 can tell: only then is its error measured against the floor below.
ZERO_NOISE_MULTIPLE = 10.0
#: The floor for such near-zero gradients: their round-off divided by this reference (the course's
#: "fine" bound), so that two near-zero gradients never raise a false alarm.
FLOOR_REFERENCE = 1e-7
#: A block's difference counts as a disagreement only beyond this many times its round-off.
BLOCK_NOISE_MULTIPLE = 10.0
#: fast mode stops localizing at this many wrong entries, which already decide its verdict
FAST_WRONG_ENOUGH = 3


@dataclass
class Evidence:
    """Everything a block's verdict is decided from; every mode fills one and calls ``verdict``."""

    rel_error: float  # the block's figure over the judged entries (or probes)
    wrong: int = 0  # entries whose disagreement survived every re-step
    beyond_noise: bool = True  # the block's difference exceeds BLOCK_NOISE_MULTIPLE x its round-off
    resolution: float = 0.0  # round-off relative to the gradient: the smallest error it can show
    unverifiable: int = 0  # entries or probes whose cost was not finite
    judged: int = 0  # entries or probes compared
    kinks: int = 0
    near_kinks: int = 0  # not counted; but a block whose entries are all near-kinks judged none
    localized: bool = False  # fast mode: only sampled entries were differenced, so they decide
    complete: bool = True
    fatal: bool = False
    #: the figure with each value's own round-off discounted (NaN: as rel_error); verdicts compare
    #: this one, so a difference round-off explains never decides a status
    excess: float = float("nan")
    empty: bool = False  # the block has no entries: nothing to check

    @property
    def error(self) -> float:
        return self.rel_error if math.isnan(self.excess) else self.excess


def coarse(ev: Evidence, settings: Settings) -> bool:
    """Round-off too coarse to verify the block: it hides the fail line, or (all entries
    differenced) it explains most of a difference still above the threshold."""
    return ev.resolution > settings.fail_threshold or (
        not ev.localized
        and np.isfinite(ev.rel_error)
        and ev.error > settings.threshold
        and not ev.beyond_noise
    )


def verdict(ev: Evidence, settings: Settings) -> str:
    """The one verdict rule, and the only place a status is decided.

    fail: the gradient cannot be compared, or an entry's disagreement survived every re-step, or
    (when the whole block was differenced) the block's error is above the fail line and beyond its
    round-off.  A localized block (fast mode) fails only through its entries.  pass: the error left
    once round-off is discounted is within the threshold and nothing was left unverified (kinks,
    non-finite costs, round-off too coarse to resolve the fail line, an interruption), or the block
    is empty.  Everything else warns."""
    if ev.fatal or ev.wrong:
        return "fail"
    if ev.empty and ev.complete:
        return "pass"
    if not np.isfinite(ev.rel_error):
        return (
            "warn"
            if ev.unverifiable or ev.kinks or ev.near_kinks or ev.localized or not ev.complete
            else "fail"
        )
    if not ev.localized and ev.error > settings.fail_threshold and ev.beyond_noise:
        return "fail"
    # any unverifiable entry already rules out a pass, so a mostly unverifiable block never passes
    unsure = (
        ev.error > settings.threshold
        or coarse(ev, settings)
        or ev.unverifiable
        or ev.kinks
        or not ev.complete
    )
    return "warn" if unsure else "pass"


def norm(v: np.ndarray) -> float:
    """The 2-norm; cheaper than np.linalg.norm on the small blocks of homework nets."""
    flat = v.reshape(-1)
    return math.sqrt(float(flat @ flat))


#: Entries summed or compared, or of a probe direction made, at a time: no temporary the size of a
#: large block.  A multiple of 8: a direction packs 8 signs to a byte (see probes.Direction).
CHUNK = 1 << 12


class Sums(NamedTuple):
    """Sums of squares over the judged entries, from which every figure of a block is made."""

    analytic: float
    numeric: float
    noise: float
    diff: float  # (analytic - numeric)^2
    excess: float  # max(|analytic - numeric| - noise, 0)^2: the difference round-off does not explain
    noise_off: float  # noise^2 of the entries that disagree beyond ``threshold``


def sums(parts, threshold: float = 0.0) -> Sums:
    """``parts``: (analytic, numeric, noise) 1-D chunks of the judged entries."""
    total = np.zeros(6)
    with np.errstate(invalid="ignore"):
        for a, n, z in parts:
            d = np.abs(a - n)
            off = d > threshold * (np.abs(a) + np.abs(n))
            e = np.maximum(d - z, 0.0)
            z_off = z[off]
            total += (a @ a, n @ n, z @ z, d @ d, e @ e, z_off @ z_off)
    return Sums(*map(float, total))


def figures(s: Sums, notes=None, discount=False) -> tuple:
    """(relative error, resolution): the homework's ‖analytic − numeric‖ / (‖analytic‖ + ‖numeric‖),
    and the round-off relative to the gradient.  Only a gradient that float64 cannot tell from zero
    (below ZERO_NOISE_MULTIPLE times its round-off) is measured against a floor instead.

    ``discount``: each value's difference less its own round-off, so a difference that round-off
    explains counts as none.  Verdicts use this one: which side of the threshold a difference
    *within* round-off falls on depends on the machine's floating-point path (BLAS kernels,
    threads), never on the gradient, so it must not decide anything."""
    size = math.sqrt(s.analytic) + math.sqrt(s.numeric)
    round_off = math.sqrt(s.noise)
    diff = math.sqrt(s.excess if discount else s.diff)
    if size < ZERO_NOISE_MULTIPLE * round_off:
        floor = round_off / FLOOR_REFERENCE
        if notes is not None:
            notes.append(
                f"near-zero gradient (‖grad‖+‖approx‖ = {size:.1e}): "
                f"error measured against the round-off floor {floor:.1e}"
            )
        return diff / floor, 0.0
    if size == 0:
        return 0.0, 0.0
    return diff / size, round_off / size


def relative_error(analytic: np.ndarray, numeric: np.ndarray, noise: np.ndarray, notes=None, discount=False):
    """``figures`` of whole arrays (fast mode's probes, a re-stepped entry)."""
    flat = [np.asarray(x, dtype=np.float64).reshape(-1) for x in (analytic, numeric, noise)]
    return figures(sums(_chunks(*flat)), notes, discount)


def _chunks(analytic, numeric, noise, use=None, verified: Optional[dict] = None):
    """(analytic, numeric, noise) of the entries ``use`` selects, a chunk at a time, from flat arrays;
    ``verified``: flat index -> (estimate, round-off) standing in for the swept values."""
    if verified:
        keys = np.array(sorted(verified), dtype=np.intp)
        values = np.array([verified[k] for k in keys.tolist()], dtype=np.float64)
    for start in range(0, analytic.size, CHUNK):
        where = slice(start, start + CHUNK)
        a, n, z = analytic[where], numeric[where], noise[where]
        if verified:
            lo, hi = np.searchsorted(keys, (start, start + CHUNK))
            if hi > lo:
                n, z = n.copy(), z.copy()
                n[keys[lo:hi] - start], z[keys[lo:hi] - start] = values[lo:hi, 0], values[lo:hi, 1]
        if use is not None:
            m = use[where]
            if not m.all():
                a, n, z = a[m], n[m], z[m]
        yield a, n, z


def _decide(out: Outcome, ev: Evidence, settings: Settings) -> None:
    """The only assignment of a status: ``verdict``'s, kept with the evidence it was decided from."""
    out.evidence = ev
    out.status = verdict(ev, settings)


def entry_evidence(block: Block, out: Outcome, settings: Settings, localized: bool = False) -> Evidence:
    """The block's figures over the judged entries (kinks and near-kinks left out), its worst
    entry (a wrong one first) and the evidence for ``verdict``."""
    g = block.comparable
    use = out.judged
    wrong = out.wrong if out.wrong is not None else np.zeros(out.shape, dtype=bool)
    out.disagreeing = int(wrong.sum())
    ev = Evidence(
        rel_error=out.rel_error,
        wrong=out.disagreeing,
        judged=int(use.sum()),
        unverifiable=int(out.unverifiable.sum()),
        localized=localized,
        kinks=0 if out.kinks is None else int(out.kinks.sum()),
        near_kinks=0 if out.near_kinks is None else int(out.near_kinks.sum()),
        complete=out.complete,
        fatal=bool(block.fatal),
    )
    if g is None or not use.any():
        return ev
    # a chunk at a time over the block (views, no copy of it); the user's step keeps the figure, the
    # verdict sees the wider steps' estimates of the entries verified at one
    flat = (g.reshape(-1), out.numeric.reshape(-1), out.noise.reshape(-1), use.reshape(-1))
    swept = sums(_chunks(*flat), settings.threshold)
    seen = sums(_chunks(*flat, verified=out.verified), settings.threshold) if out.verified else swept
    rel, ev.resolution = figures(swept, out.notes)
    if out.verified:
        ev.resolution = figures(seen)[1]
    ev.excess, _ = figures(seen, discount=True)
    if ev.resolution:  # only the round-off of entries that do not agree could hide an error
        ev.resolution = math.sqrt(seen.noise_off) / (math.sqrt(seen.analytic) + math.sqrt(seen.numeric))
    ev.beyond_noise = math.sqrt(seen.diff) > BLOCK_NOISE_MULTIPLE * math.sqrt(seen.noise)
    ev.rel_error = float(rel)
    if not localized:
        out.rel_error = ev.rel_error
    analytic, numeric, _, judged = flat
    out.max_abs_error, worst = _largest_error(analytic, numeric, judged, wrong.reshape(-1))
    out.worst_index = index_of(out.shape, worst)
    return ev


def _largest_error(analytic, numeric, use, wrong) -> tuple:
    """(the largest |analytic − numeric| over the judged entries, the flat index of the worst entry:
    a wrong one's largest when there is any), a chunk at a time; the first of equals wins."""
    largest, largest_wrong = (-1.0, 0), (-1.0, -1)  # (error, flat index)
    for start in range(0, analytic.size, CHUNK):
        where = slice(start, start + CHUNK)
        error = np.abs(analytic[where] - numeric[where])
        error[~use[where]] = -1.0
        largest = _larger(largest, error, start)
        largest_wrong = _larger(largest_wrong, np.where(wrong[where], error, -1.0), start)
    return largest[0], (largest_wrong if largest_wrong[1] >= 0 else largest)[1]


def _larger(best: tuple, error: np.ndarray, start: int) -> tuple:
    """``best`` or the chunk's largest (error, flat index), whichever is larger (``best`` on a tie)."""
    i = int(np.argmax(error))
    return (float(error[i]), start + i) if error[i] > best[0] else best


def judge(out: Outcome, ev: Evidence, settings: Settings, j0: float) -> None:
    """Apply the verdict rule and say why in the notes."""
    s = settings
    _decide(out, ev, s)
    if ev.fatal:
        return
    if ev.wrong:
        counted = "at least " if ev.localized and ev.wrong >= FAST_WRONG_ENOUGH else ""
        out.notes.insert(
            0,
            f"{counted}{count(ev.wrong, 'entry disagrees', 'entries disagree')} at every "
            "step, far beyond round-off",  # which one is worst: worst_index and the hint
        )
    if out.near_kinks is not None and out.near_kinks.any():
        n = int(out.near_kinks.sum())
        first = fmt_index(out.name, index_of(out.shape, int(np.argmax(out.near_kinks.reshape(-1)))))
        out.notes.append(
            f"near-kink at {first}{f' (+{n - 1} more)' if n > 1 else ''}: the step crossed a "
            "kink, a smaller one does not; not counted as an error"
        )
    small_steady = (
        out.status == "warn"
        and not ev.localized
        and ev.beyond_noise
        and ev.resolution <= s.fail_threshold
        and s.threshold < ev.error <= s.fail_threshold
        and not (ev.kinks or ev.unverifiable or ev.wrong)
        and ev.complete
    )
    if small_steady:  # neither round-off nor a kink: say what does make such a difference
        out.notes.append(
            f"a small steady difference ({ev.error:.1e}) beyond round-off, between the pass "
            "and fail lines: a tiny term the backward leaves out, e.g. the 1e-7 in log(y + 1e-7)"
        )
    elif out.restepped is not None and out.restepped.any() and out.status != "pass":
        n = int(out.restepped.sum())
        out.notes.append(
            f"{count(n, 'entry', 'entries')} estimated at a wider step: the cost's "
            "round-off at the default step was larger than estimated"
        )
    kinks = 0 if out.kinks is None else int(out.kinks.sum())
    if kinks:
        first = fmt_index(out.name, index_of(out.shape, int(np.argmax(out.kinks.reshape(-1)))))
        out.notes.insert(
            0,
            f"non-differentiable point at {first}"
            f"{f' (+{kinks - 1} more)' if kinks > 1 else ''}: the central difference "
            "straddles a kink (the one-sided differences disagree), so "
            f"{'that entry is' if kinks == 1 else 'those entries are'} not judged",
        )
    if coarse(ev, s) and out.status != "fail":
        out.notes.append(
            f"unverifiable: round-off of the cost (|J| = {abs(j0):.3g}) is "
            f"{max(ev.resolution, ev.rel_error):.1e} of the gradient, too coarse to verify it: "
            "use a larger step (-e), float64, or remove a constant offset from the cost"
        )
    if out.status == "pass" and ev.rel_error > s.threshold:
        out.notes.append(
            f"the difference ({ev.rel_error:.1e}) is round-off: less each entry's round-off "
            f"(measured at a wider step where it was large) it is {ev.error:.1e}, within the threshold"
        )
    if not out.complete:
        out.notes.insert(0, "incomplete: interrupted")


def grade(block: Block, out: Outcome, settings: Settings, j0: float) -> None:
    """A block with nothing numeric to compare: a missing or wrong-shaped gradient, or an interruption."""
    judge(
        out,
        Evidence(
            rel_error=out.rel_error,
            unverifiable=int(out.unverifiable.sum()),
            complete=out.complete,
            fatal=bool(block.fatal),
        ),
        settings,
        j0,
    )


def unreached(block: Block, out: Outcome, settings: Settings) -> None:
    """A block an interruption stopped the check before: not checked, so it warns (or fails when
    its gradient could not be compared anyway)."""
    out.complete = False
    out.notes.insert(0, "not checked: interrupted")
    _decide(out, Evidence(rel_error=float("nan"), complete=False, fatal=bool(block.fatal)), settings)


def overall_difference(outcomes) -> float:
    """The homework's figure: one relative difference over every compared entry.  The entries are
    gathered into one array, once for the analytic values, once for the numeric ones (norms of the
    same contiguous arrays as the homework's concatenations, so the same bits), and the difference
    is made in that array a chunk at a time: one array of the entries, not five."""
    parts = []
    for out in outcomes:
        if out.analytic is None:
            continue
        if out.directional is not None:
            ok = np.isfinite(out.directional[1])
            parts.append((out.directional[0][ok], out.directional[1][ok], None))
            continue
        sel = out.judged.reshape(-1)
        parts.append((out.analytic.reshape(-1), out.numeric.reshape(-1), sel))
    if not parts:
        return float("nan")
    counts = [int(np.count_nonzero(sel)) if sel is not None else g.size for g, _, sel in parts]
    buffer = np.empty(sum(counts))

    def copy(where, values):
        buffer[where] = values

    def gather(which: int, chunked=copy) -> None:
        """The analytic (0) or numeric (1) entries handed to ``chunked(where, values)`` (by default
        copied into ``buffer``) a chunk at a time: ``np.compress`` of a whole block would make its
        indices and a buffered copy of its output, two more arrays of the block's size."""
        start = 0
        for part, k in zip(parts, counts):
            values, sel = part[which], part[2]
            if sel is None:
                chunked(slice(start, start + k), values)
            else:
                at = start
                for c in range(0, sel.size, CHUNK):
                    picked = np.compress(sel[c : c + CHUNK], values[c : c + CHUNK])
                    chunked(slice(at, at + picked.size), picked)
                    at += picked.size
            start += k

    gather(0)
    g_norm = np.linalg.norm(buffer)
    gather(1)
    denom = g_norm + np.linalg.norm(buffer)
    # numeric − analytic, entry by entry the exact negative of analytic − numeric: the same norm
    gather(0, lambda where, values: np.subtract(buffer[where], values, out=buffer[where]))
    return float(np.linalg.norm(buffer) / denom) if denom > 0 else 0.0
