"""Fast mode: random directional probes decide a pass; a block they do not pass is localized.

A probe that fails is repeated at smaller steps (a kink crossed or curvature shrinks with the step,
a wrong gradient does not), bisection finds the entry that carries a probe's discrepancy, and the
full sweep differences that entry and a sample, so a fast-mode fail always names entries that are
wrong at every step.
"""

from __future__ import annotations

import contextlib
from typing import NamedTuple, Optional

import numpy as np

from .judge import (
    CHUNK,
    FAST_WRONG_ENOUGH,
    ZERO_NOISE_MULTIPLE,
    Evidence,
    entry_evidence,
    grade,
    judge,
    norm,
    relative_error,
    verdict,
)
from .records import Block, EvaluationError, Interrupted, Outcome, count, fmt_index, index_of
from .sweep import AUTO_STEP, CONFIRM_LIMIT, KINK_NOISE_MULTIPLE, STEADY_NOISE, Sweep

#: a probe that crosses a kink at most MAX_SHRINKS times (8**6: a pre-activation 1e-9 from 0 at 500k).
PROBE_SHRINK = 8.0
SHRINKS = 2
MAX_SHRINKS = 6
#: A probe's error per unit step that stays within this ratio band after a shrink is steady (real).
STEADY_RATIO = (0.5, 2.0)
#: A probe's |analytic − numeric| within this many second differences is explained by a kink crossed
#: along its direction (which accounts for half of one) or by curvature, not by the gradient.
KINK_EXPLAINS = 1.0
#: Along a smooth direction the second difference shrinks as the step squared (1/64 per shrink),
#: across kinks as the step (1/8): a ratio above this marks a probe that crosses kinks.
PROBE_KINK_RATIO = 1 / 24
#: Entries differenced when a fast-mode error has not been localized by the first sample.
KINK_SAMPLE = 256


class Direction:
    """A probe's step Δ = scale · v (/ PROBE_SHRINK**k), held as v's signs (one bit an entry) and
    made a chunk at a time: the values are bit for bit those of the whole-array expression, without
    the float64 arrays of v, the scale and Δ.  ``scale``: the explicit epsilon, or None for the
    per-entry AUTO_STEP · max(|θ|, 1) of ``orig``."""

    def __init__(self, bits: np.ndarray, scale: Optional[float], orig: np.ndarray, divisor=None):
        self.bits, self.scale, self.orig, self.divisor = bits, scale, orig, divisor
        self.size = orig.size

    @classmethod
    def draw(cls, rng: np.random.Generator, orig: np.ndarray, scale: Optional[float]) -> Direction:
        """Random ±1 signs, drawn a chunk at a time (the generator's stream, and so every later draw,
        is the same as one ``rng.choice((-1.0, 1.0), size=n)``), packed 8 to a byte."""
        bits = np.empty((orig.size + 7) // 8, dtype=np.uint8)
        for start in range(0, orig.size, CHUNK):
            part = rng.choice((-1.0, 1.0), size=min(CHUNK, orig.size - start))
            bits[start // 8 : start // 8 + (part.size + 7) // 8] = np.packbits(part > 0)
        return cls(bits, scale, orig)

    def __truediv__(self, divisor) -> Direction:
        assert self.divisor is None
        return Direction(self.bits, self.scale, self.orig, divisor)

    def chunk(self, start: int, stop: int) -> np.ndarray:
        assert start % 8 == 0  # chunks start on a byte of the packed signs
        v = np.unpackbits(self.bits[start // 8 : (stop + 7) // 8], count=stop - start).astype(np.float64)
        v *= 2.0
        v -= 1.0  # exactly ±1
        if self.scale is None:
            scale = np.abs(self.orig[start:stop])  # AUTO_STEP * max(|θ|, 1), as in the sweep
            np.maximum(scale, 1.0, out=scale)
            np.multiply(AUTO_STEP, scale, out=scale)
        else:
            scale = self.scale
        base = np.multiply(scale, v, out=v)
        return base / self.divisor if self.divisor is not None else base

    def chunks(self):
        for start in range(0, self.size, CHUNK):
            stop = min(start + CHUNK, self.size)
            yield slice(start, stop), self.chunk(start, stop)

    def full(self) -> np.ndarray:
        """Δ as one array (bisection indexes it)."""
        step = np.empty(self.size)
        for where, part in self.chunks():
            step[where] = part
        return step


class Directional(NamedTuple):
    """Fast mode's probes: per random direction, the analytic and numeric directional derivative,
    the round-off of the numeric one, and whether it crossed a kink (then it is left out)."""

    analytic: np.ndarray
    numeric: np.ndarray
    noise: np.ndarray
    kinked: np.ndarray
    unsettled: bool  # some probe's error moved with the step and never steadied
    worst_step: Optional[Direction]  # the step of the probe that disagreed most (bisection starts there)


class Probes:
    """Fast mode over one block at a time, on the shared ``Sweep`` (cost, settings, bookkeeping)."""

    def __init__(self, sweep: Sweep):
        self.sweep = sweep
        self.settings = sweep.settings
        self.unverified = 0  # the current block's bisection probes whose cost was not finite

    @contextlib.contextmanager
    def _interruptible(self, block: Block, out: Outcome):
        """On Ctrl-C, grade what was measured and hand the partial outcome up."""
        try:
            yield
        except (Interrupted, KeyboardInterrupt) as caught:
            out.complete = False
            stop = caught if isinstance(caught, Interrupted) else Interrupted()
            grade(block, out, self.settings, self.sweep.j0)
            stop.outcome = out
            raise stop from None

    def check(self, block: Block, out: Outcome, rng: np.random.Generator) -> None:
        """Directional probes decide a pass; a block they do not pass is localized, never fully swept.

        Probes that cross a kink are left out.  If the others agree, the block passes.  Otherwise
        sampled entries plus the entry that bisection finds carrying the discrepancy are
        differenced (and their suspects re-stepped); if none is wrong, a wider sample is.  A wrong
        entry fails the block; a block whose localized entries all agree never fails (it warns:
        the directional error is unexplained).  A small block is differenced in full, which decides
        as in full mode."""
        __tracebackhide__ = True  # noqa: F841 - IPython hides this frame from tracebacks
        n = block.work.size
        with self._interruptible(block, out):
            probes = self._directional(block, out, rng)
        finite = np.isfinite(probes.numeric)
        use = finite & ~probes.kinked
        crossed = int(probes.kinked.sum())
        if crossed:
            out.notes.append(
                f"fast mode: {count(crossed, 'probe', 'probes')} crossed a kink and "
                f"{'was' if crossed == 1 else 'were'} left out"
            )
        if not finite.all():
            out.notes.append("cost not finite along a probe direction: cannot be verified")
        ev = Evidence(
            rel_error=float("nan"), judged=int(use.sum()), unverifiable=int((~finite).sum()), localized=True
        )
        # probes too small for the round-off (a near-zero floor) prove nothing: the entries decide
        resolved = use.any() and (
            norm(probes.analytic[use]) + norm(probes.numeric[use])
            >= ZERO_NOISE_MULTIPLE * norm(probes.noise[use])
        )
        if use.any():
            ev.rel_error, ev.resolution = relative_error(
                probes.analytic[use], probes.numeric[use], probes.noise[use], out.notes if resolved else None
            )
            ev.excess, _ = relative_error(
                probes.analytic[use], probes.numeric[use], probes.noise[use], discount=True
            )
        out.rel_error = ev.rel_error
        if resolved and verdict(ev, self.settings) == "pass":
            judge(out, ev, self.settings, self.sweep.j0)
            return
        indices = self._localize_indices(block, rng)
        self.unverified = 0  # bisection's probes whose cost was not finite
        with self._interruptible(block, out):
            if indices.size < n and probes.worst_step is not None and finite.all():
                indices = np.union1d(indices, [self._bisect(block, out, probes.worst_step, rng)])
            enough = CONFIRM_LIMIT if indices.size == n else FAST_WRONG_ENOUGH
            self.sweep.sweep(block, indices, out, enough)
            if indices.size < n and out.wrong is None:
                wider = self._others(n, indices, KINK_SAMPLE, rng)
                self.sweep.sweep(block, wider, out, FAST_WRONG_ENOUGH)
                indices = np.union1d(indices, wider)
        if indices.size == n:
            out.rel_error = float("nan")  # every entry was differenced: the entries alone give the figure
            out.notes.append(
                f"fast mode: {len(probes.analytic)} random directions did not pass, so every "
                "entry was checked"
            )
            entries = entry_evidence(block, out, self.settings)
            entries.unverifiable += ev.unverifiable + self.unverified
            judge(out, entries, self.settings, self.sweep.j0)
            return
        entries = entry_evidence(block, out, self.settings, localized=True)
        if np.isfinite(ev.rel_error):  # the block's figure is the directional one; else the sample's
            entries.rel_error = ev.rel_error
        out.rel_error = entries.rel_error
        entries.unverifiable += ev.unverifiable + self.unverified
        if crossed and not use.any():  # every probe crossed a kink: a sample alone cannot pass the block
            entries.kinks += crossed
            out.notes.append(
                "every probe crossed a kink, so the block is only sampled: check it in full "
                "(--mode full) or move the parameters off the kink"
            )
        if out.wrong is None and use.any():
            out.notes.append(
                f"fast mode: the directional error ({ev.rel_error:.1e}) was not found in "
                f"{indices.size} sampled entries, which all agree"
            )
        elif out.wrong is not None:
            out.notes.append(
                f"fast mode: {len(probes.analytic)} random directions; {indices.size} sampled "
                "entries localize the error"
            )
        judge(out, entries, self.settings, self.sweep.j0)

    def _localize_indices(self, block: Block, rng: np.random.Generator) -> np.ndarray:
        """Entries to difference in full: the largest analytic gradients and random ones."""
        n = block.work.size
        k = min(self.settings.localize, n)
        magnitude = -np.abs(block.comparable.reshape(-1))
        top = np.argpartition(magnitude, k // 2 - 1)[: k // 2] if k >= 2 else np.empty(0, np.intp)
        top = top[np.argsort(magnitude[top], kind="stable")]
        return np.union1d(top, self._others(n, top, k - top.size, rng)).astype(np.intp)

    @staticmethod
    def _others(n: int, taken: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        """Up to k random entries of 0..n-1 not in ``taken``, without an O(n log n) set difference."""
        free = np.ones(n, dtype=bool)
        free[taken] = False
        rest = np.flatnonzero(free)
        if k >= rest.size:
            return rest
        return np.sort(rest[rng.choice(rest.size, k, replace=False)])

    def _directional(self, block: Block, out: Outcome, rng: np.random.Generator) -> Directional:
        """Fast mode: compare J(θ±Δ) with the analytic gradient along random ±1 directions Δ
        (scaled like the per-entry step).

        A real gradient error is the same fraction of the signal at any step; kinks crossed
        and curvature shrink with the step.  So a failing probe is repeated at smaller steps
        (``_shrinking_probe``): a steady relative error is kept as a finding, one that moves and
        never steadies is flagged as unsettled, and one that still crosses a kink at the smallest
        step is marked and left out of the verdict.  Bisection starts from the probe that
        disagrees most, at the step where it settled."""
        __tracebackhide__ = True  # noqa: F841 - IPython hides this frame from tracebacks
        analytic_gradient = block.comparable.reshape(-1)
        work = block.work.reshape(-1)  # a view: the working arrays are C-contiguous
        orig = block.original()
        k = min(self.settings.probes, work.size)
        noise = self.sweep.noise(1.0)  # of J itself: a probe differences J along Δ
        analytic, numeric, kinked = [], [], []
        unsettled, worst_step, worst, shrunk = False, None, (False, False, -1.0), 0
        # the per-entry step (the epsilon, or AUTO_STEP * max(|θ|, 1)) is made a chunk at a time
        scale = self.settings.epsilon
        try:
            for _ in range(k):
                base = Direction.draw(rng, orig, scale)  # signs only: Δ is made a chunk at a time
                a, n, outcome, settled = self._shrinking_probe(analytic_gradient, orig, work, base, out)
                unsettled |= outcome == "unsettled"
                crossed = outcome == "crossed"
                rel, _ = relative_error(np.array([a]), np.array([n]), np.array([noise]))
                # a steady discrepancy is the surest start for bisection, one across a kink the last
                rank = (outcome == "real", outcome != "crossed", rel)
                if settled is not None and rank > worst:
                    worst_step, worst = settled, rank
                shrunk += outcome == "agrees past a kink"
                analytic.append(a)
                numeric.append(n)
                kinked.append(crossed)
                base = settled = None  # freed before the next direction is drawn (unless worst_step)
        except KeyboardInterrupt:
            out.complete = False
            raise Interrupted() from None
        except Exception as exc:
            raise EvaluationError(exc, f"while {block.name} was perturbed along a random direction") from exc
        finally:
            work[...] = orig
        out.directional = (np.array(analytic), np.array(numeric))
        if shrunk:
            out.notes.append(
                f"fast mode: {count(shrunk, 'probe', 'probes')} agreed only at a smaller step "
                "(a kink a hair from θ is crossed at the default one)"
            )
        return Directional(
            np.array(analytic),
            np.array(numeric),
            np.full(k, noise),
            np.array(kinked, bool),
            unsettled,
            worst_step,
        )

    def _shrinking_probe(self, analytic_gradient, orig, work, base, out):
        """One probe direction, its step divided by PROBE_SHRINK until its verdict is clear.

        Returns (analytic, numeric, outcome, the step to bisect from); a non-finite value or an
        explicit epsilon (the homework's exact step) is "taken" as it is.  A kink crossed along the
        direction puts half of the second difference J(θ+Δ) − 2J(θ) + J(θ−Δ) into the central
        difference, curvature less than that; a gradient error puts in its own share, whatever the
        second difference.  So a discrepancy within KINK_EXPLAINS × the second difference is
        explained (a kink, or curvature) and the step shrinks on, up to MAX_SHRINKS times and while
        round-off still resolves the fail line: a pre-activation a hair from 0 is crossed by every
        direction at the default step, and only a smaller step sees the gradient past it.  The probe
        agrees (within the threshold), or an unexplained error per unit step holds steady over two steps
        ("real": bisection starts from the larger step), or it never steadies within SHRINKS + 1
        unexplained steps ("unsettled"), or it is still explained at the end ("crossed": left out)."""
        s = self.settings
        noise = self.sweep.noise(1.0)
        previous_slope = previous_step = previous_second = None
        explained, unexplained_steps, kinks_seen = False, 0, 0
        for shrink in range(MAX_SHRINKS + 1):
            step = base / PROBE_SHRINK**shrink if shrink else base  # x / 1 is x: no copy
            a, n, second = self._probe(analytic_gradient, orig, work, slice(None), step, out)
            rel, resolution = relative_error(np.array([a]), np.array([n]), np.array([noise]), discount=True)
            if not np.isfinite(n) or s.epsilon is not None:  # nothing to shrink for: taken as it is
                return a, n, "taken", step
            if rel <= s.threshold and resolution <= s.fail_threshold:
                return a, n, "agrees past a kink" if kinks_seen else "agrees", step
            # a wrong gradient's |analytic − numeric| shrinks exactly like the step (the relative
            # error saturates at 1 when the error outgrows the signal, so it cannot tell)
            slope = abs(a - n) * PROBE_SHRINK**shrink
            measurable = abs(second) > KINK_NOISE_MULTIPLE * noise
            # kinks of both signs can cancel in the second difference, but it then still shrinks
            # like the step rather than its square
            explained = measurable and (
                abs(a - n) <= KINK_EXPLAINS * abs(second)
                or (previous_second is not None and second / previous_second > PROBE_KINK_RATIO)
            )
            if (
                not explained
                and abs(a - n) > STEADY_NOISE * noise  # an error within round-off is never "real"
                and previous_slope is not None
                and STEADY_RATIO[0] < slope / previous_slope < STEADY_RATIO[1]
            ):
                return a, n, "real", previous_step  # the same error per unit step at a smaller step
            unexplained_steps += not explained
            kinks_seen += explained
            if resolution > s.fail_threshold or unexplained_steps > SHRINKS:
                break  # round-off now hides the fail line, or an unexplained error that never steadied
            previous_slope, previous_step = (None, None) if explained else (slope, step)
            previous_second = second if measurable else None
        return (a, n, "crossed", base) if explained else (a, n, "unsettled", step)

    def _bisect(self, block: Block, out: Outcome, delta: np.ndarray, rng: np.random.Generator) -> int:
        """The entry carrying a probe's discrepancy: probe both halves of the entries along the same
        step and follow the one that disagrees more, down to one entry.  Each half is measured, never
        inferred as the whole minus the other: a kink the whole does not cross can be crossed by a
        half.  A half whose disagreement a kink explains is measured by its clean one-sided
        difference instead.  About 4·log2(n) evaluations, and never a full sweep."""
        analytic, flat = block.comparable.reshape(-1), block.work.reshape(-1)  # views: C-contiguous
        orig = block.original()
        flat_delta = delta.full() if isinstance(delta, Direction) else delta.reshape(-1)
        idx = rng.permutation(np.flatnonzero(flat_delta))
        try:
            while idx.size > 1:
                halves, gaps = (idx[: idx.size // 2], idx[idx.size // 2 :]), []
                for half in halves:
                    a, n, second = self._probe(analytic, orig, flat, half, flat_delta[half], out)
                    if not np.isfinite(n):  # the half cannot be measured: it is not followed
                        self.unverified += 1
                        first = fmt_index(block.name, index_of(block.work.shape, int(half.min())))
                        out.notes.append(
                            f"cost not finite when {half.size} entries (first {first}) were moved "
                            "together while bisecting: that probe cannot be verified"
                        )
                        gaps.append(-1.0)
                        continue
                    gap = abs(a - n)
                    if gap <= KINK_EXPLAINS * abs(second):
                        # explained: a kink crossed on one side leaves the other side's one-sided
                        # difference, n ∓ second/2, clean of it
                        gap = min(abs(n + second / 2 - a), abs(n - second / 2 - a))
                    gaps.append(gap)
                idx = halves[0] if gaps[0] >= gaps[1] else halves[1]
        except KeyboardInterrupt:
            out.complete = False
            raise Interrupted() from None
        finally:
            flat[...] = orig
        return int(idx[0])

    def _probe(self, analytic, orig, flat, idx, step, out):
        """(analytic·Δ, (J(θ+Δ) − J(θ−Δ))/2, J(θ+Δ) − 2J(θ) + J(θ−Δ)) along Δ = ``step`` on the entries
        ``idx`` of flat views (``slice(None)``: the whole block), so the work is proportional to the
        entries moved; analytic·((θ+Δ) − (θ−Δ))/2 with the steps as stored, not analytic·Δ.
        A ``Direction`` over the whole block is applied a chunk at a time (``_probe_block``)."""
        if isinstance(step, Direction):
            return self._probe_block(analytic, orig, flat, step, out)
        base = orig[idx]
        plus = base + step
        try:
            flat[idx] = plus
            jp = self.sweep.cost()
            minus = flat[idx]  # the block itself for a slice (no copy of a large block), else a copy
            np.subtract(base, step, out=minus)
            flat[idx] = minus
            jm = self.sweep.cost()
            np.subtract(plus, minus, out=plus)
        finally:
            flat[idx] = base
        self.sweep.counted(out, 2)
        return float(analytic[idx] @ plus) / 2.0, (jp - jm) / 2.0, jp - 2.0 * self.sweep.j0 + jm

    def _probe_block(self, analytic, orig, flat, step: Direction, out):
        """``_probe`` along a whole-block ``Direction``, bit for bit, with no array the size of the block:
        θ ± Δ is written into the block a chunk at a time, and once both costs are taken the block
        itself holds (θ+Δ) − (θ−Δ) for the one dot product with the analytic gradient."""
        try:
            for where, part in step.chunks():
                np.add(orig[where], part, out=flat[where])
            jp = self.sweep.cost()
            for where, part in step.chunks():
                np.subtract(orig[where], part, out=flat[where])
            jm = self.sweep.cost()
            for where, part in step.chunks():
                np.add(orig[where], part, out=part)
                np.subtract(part, flat[where], out=flat[where])
            along = float(analytic @ flat) / 2.0
        finally:
            flat[...] = orig
        self.sweep.counted(out, 2)
        return along, (jp - jm) / 2.0, jp - 2.0 * self.sweep.j0 + jm
