"""Full mode: central differences entry by entry, each entry perturbed in place and put back.

A suspect (an entry that disagrees beyond its round-off) is re-stepped, down to the round-off floor,
before it is called wrong; an entry whose difference round-off may explain is measured again at a
wider step.  Fast mode localizes its errors with the same sweep, so both modes judge entries alike.
"""

from __future__ import annotations

import math
from typing import Callable

import numpy as np

from ..settings import Settings
from .judge import ZERO_NOISE_MULTIPLE, norm
from .records import Block, EvaluationError, Interrupted, Outcome, count, fmt_index, index_of

EPS = np.finfo(np.float64).eps
TINY = np.finfo(np.float64).tiny
#: The automatic step is ``AUTO_STEP * max(|theta_i|, 1)``: the cube root of the
#: float64 epsilon balances truncation (h^2) against round-off (eps/h).
AUTO_STEP = float(np.cbrt(EPS))
#: Round-off of one cost evaluation is taken as ``NOISE_ULPS * eps * |J|``.
NOISE_ULPS = 8.0
#: An entry is a suspect when |analytic - numeric| exceeds this many times its own round-off
#: (and the pass threshold relative to its size); suspects are then re-stepped.
ENTRY_NOISE_MULTIPLE = 16.0
#: Re-steps of a suspect, as factors of its step: a smaller one stops crossing a nearby kink, a
#: larger one multiplies curvature's error by 16 at a quarter of the round-off.
RESTEPS = (1 / 16, 4.0)
#: A suspect is steady when its numeric value at every re-step moves by at most this fraction of
#: its disagreement (plus STEADY_NOISE times the round-off of both steps): a wrong analytic value.
STEADY_FRACTION = 0.25
STEADY_NOISE = 3.0
#: A suspect still off at its smallest re-step is re-stepped ENTRY_SHRINK times smaller, up to
#: ENTRY_SHRINKS more times, while its disagreement still stands out of that step's round-off.
ENTRY_SHRINK = 16.0
ENTRY_SHRINKS = 4
#: An entry above the threshold but within ENTRY_NOISE_MULTIPLE round-offs is measured again at
#: this many times its step, where round-off is that many times smaller; when round-off hides a
#: block's fail line, every entry is, at the power of WIDEN that resolves it, at most WIDEST.
WIDEN = 4.0
WIDEST = WIDEN**3
#: Suspects re-stepped per block sweep, the worst first (4 evaluations each): at most the larger of
#: CONFIRM_LIMIT and CONFIRM_FRACTION of the swept entries (near-kinks of a large block must not
#: crowd out its one wrong entry), stopping at CONFIRM_LIMIT wrong ones; fast mode stops at
#: FAST_WRONG_ENOUGH wrong entries, which already decide its verdict.
CONFIRM_LIMIT = 32
CONFIRM_FRACTION = 0.01
#: One-sided differences that disagree by more than this fraction of the slope (and by more than
#: KINK_NOISE_MULTIPLE times the round-off) mark a kink; smooth curvature over a step of ~1e-5
#: changes the slope by far less.
KINK_SPLIT = 1e-2
KINK_NOISE_MULTIPLE = 100.0
#: At a kink the split keeps its size as the step shrinks 16-fold; a smooth split shrinks with it.
KINK_PERSIST = 0.25
#: Entries whose steps are turned into Python floats at once in the sweep's loop.
SWEEP_CHUNK = 512
#: Entries turned from costs into numeric values at a time: no temporary the size of a large block.
FINISH_CHUNK = 1 << 10
#: Fast mode retries a failing probe with its step divided by PROBE_SHRINK, at most SHRINKS times, and


class Sweep:
    """Evaluates ``cost()`` around entries of a block's working array and books the evaluations;
    it holds what every stage shares: the cost, the settings, J(θ) and the progress bar."""

    def __init__(self, cost: Callable[[], float], settings: Settings, j0: float, progress=None):
        self.cost = cost
        self.settings = settings
        self.j0 = j0
        self.progress = progress
        self.evaluations = 0

    def counted(self, out: Outcome, n: int) -> None:
        """Book n evaluations to the check and the block, and advance the progress bar."""
        self.evaluations += n
        out.evaluations += n
        if self.progress is not None:
            self.progress(n)

    # ---- steps --------------------------------------------------------------
    def steps(self, x: np.ndarray):
        """theta+h, theta-h and the divisor: 2*epsilon when set, else the exact step."""
        if self.settings.epsilon is not None:
            eps = self.settings.epsilon
            return x + eps, x - eps, np.full(x.shape, 2.0 * eps)
        h = AUTO_STEP * np.maximum(np.abs(x), 1.0)
        plus, minus = x + h, x - h
        return plus, minus, plus - minus

    def noise(self, divisor):
        return NOISE_ULPS * EPS * max(abs(self.j0), TINY) / divisor

    # ---- sweeps ---------------------------------------------------------------
    def sweep(self, block: Block, indices: np.ndarray, out: Outcome, enough: int = CONFIRM_LIMIT):
        """Central differences at ``indices``, perturbing the working array in place."""
        __tracebackhide__ = True  # noqa: F841 - IPython hides this frame from tracebacks
        flat = block.work.reshape(-1)  # a view: the working arrays are C-contiguous
        jp = np.full(len(indices), np.nan)  # become the numeric values and their round-off in place
        jm = np.full(len(indices), np.nan)
        cost = self.cost
        k = -1
        try:
            # the steps, as Python floats for the hot loop, a chunk at a time: arrays of a whole large
            # block's steps would be two more copies of it, and a list of them ~4 copies each
            for start in range(0, len(indices), SWEEP_CHUNK):
                stop = start + SWEEP_CHUNK
                plus_c, minus_c, _ = self.steps(flat[indices[start:stop]])
                plus_l, minus_l = plus_c.tolist(), minus_c.tolist()
                for k, i in enumerate(indices[start:stop].tolist(), start):
                    orig = flat[i]
                    try:
                        flat[i] = plus_l[k - start]
                        jp[k] = cost()
                        flat[i] = minus_l[k - start]
                        jm[k] = cost()
                    finally:
                        flat[i] = orig
                    if self.progress is not None:
                        self.progress(2)
        except KeyboardInterrupt:
            done = max(k, 0)
            self._finish_entries(
                block,
                indices[:done],
                jp[:done],
                jm[:done],
                out,
                confirm=False,
            )
            out.complete = False
            self.evaluations += 2 * done  # the bar already advanced entry by entry
            out.evaluations += 2 * done
            raise Interrupted() from None
        except Exception as exc:  # the user's code raised: say where
            i = int(indices[k])
            step = plus_l[k - start] - float(flat[i])  # the entry is already put back
            where = (
                f"while {fmt_index(block.name, index_of(block.work.shape, i))} was perturbed by ±{step:.3g}"
            )
            raise EvaluationError(exc, where) from exc
        self.evaluations += 2 * len(indices)
        out.evaluations += 2 * len(indices)
        self._finish_entries(block, indices, jp, jm, out, enough=enough)

    def _pair(self, block, out: Outcome, i: int, x: float, up: float, down: float):
        """The cost at entry i moved to x + up and x - down, put back whatever happens; the
        entries actually reached (after rounding) come back with the costs, so that the divisor is
        exact. A user exception says which entry and step it met."""
        flat = block.work.reshape(-1)
        try:
            flat[i] = x + up
            plus = float(flat[i])
            jp = self.cost()
            flat[i] = x - down
            minus = float(flat[i])
            jm = self.cost()
        except KeyboardInterrupt:
            out.complete = False
            raise
        except Exception as exc:
            entry = fmt_index(block.name, index_of(block.work.shape, i))
            raise EvaluationError(exc, f"while {entry} was perturbed by ±{up:.3g}") from exc
        finally:
            flat[i] = x
        self.counted(out, 2)
        return plus, minus, jp, jm

    def _finish_entries(
        self,
        block,
        indices,
        jp,
        jm,
        out: Outcome,
        confirm: bool = True,
        enough: int = CONFIRM_LIMIT,
    ):
        """Numeric gradient and non-finite costs for the entries just swept; suspects re-stepped.

        A chunk at a time (the steps made again from θ, elementwise, so the same): the costs become
        the numeric values and their round-off in place when the whole block was swept (no third and
        fourth copy of it), and only the suspects' costs are kept for their re-steps."""
        flat = block.work.reshape(-1)
        analytic = block.comparable
        judging = analytic is not None and confirm
        whole = indices.size == out.checked.size and not out.numeric.flags.writeable
        if not whole:
            out.measuring()
        flat_analytic = analytic.reshape(-1) if analytic is not None else None
        disagree = np.zeros(indices.size, dtype=bool)
        suspect = np.zeros(indices.size, dtype=bool)
        finite = np.zeros(indices.size, dtype=bool)
        kept = []  # (jp, jm) of the suspects, in index order
        for start in range(0, indices.size, FINISH_CHUNK):
            where = slice(start, start + FINISH_CHUNK)
            idx, jp_c, jm_c = indices[where], jp[where], jm[where]
            _, _, divisor = self.steps(flat[idx])
            finite[where] = ok = np.isfinite(jp_c) & np.isfinite(jm_c)
            numeric = np.where(ok, (jp_c - jm_c) / divisor, np.nan)
            noise = self.noise(divisor)
            if judging:
                a = flat_analytic[idx]
                error, size = np.abs(a - numeric), np.abs(a) + np.abs(numeric)
                with np.errstate(invalid="ignore"):
                    disagree[where] = off = error > self.settings.threshold * size
                    suspect[where] = bad = off & (error > ENTRY_NOISE_MULTIPLE * noise)
                if bad.any():
                    kept.append((jp_c[bad], jm_c[bad]))
            if whole:
                jp_c[...], jm_c[...] = numeric, noise
            else:
                out.numeric.reshape(-1)[idx] = numeric
                out.noise.reshape(-1)[idx] = noise
        if whole:
            out.numeric, out.noise = jp.reshape(out.shape), jm.reshape(out.shape)
        num = out.numeric.reshape(-1)
        out.checked.reshape(-1)[indices] = True
        bad = indices[~finite]
        if bad.size:
            first = fmt_index(block.name, index_of(block.work.shape, int(bad[0])))
            out.notes.append(
                f"cost not finite at θ±ε for {count(bad.size, 'entry', 'entries')} "
                f"(first {first}): those cannot be verified"
            )
        if not judging or not indices.size:
            return
        # every entry: views, not copies (what _widen changes in them is read only after the
        # suspects' values are taken, below)
        every = indices.size == analytic.size
        analytic = analytic.reshape(-1) if every else analytic.reshape(-1)[indices]
        numeric = num if every else num[indices]
        noise = out.noise.reshape(-1) if every else out.noise.reshape(-1)[indices]
        limit = max(CONFIRM_LIMIT, int(CONFIRM_FRACTION * indices.size))

        def error_and_size(at):
            """|analytic - numeric| and |analytic| + |numeric| at the positions ``at``, as swept."""
            a, n = analytic[at], numeric[at]
            return np.abs(a - n), np.abs(a) + np.abs(n)

        finite = np.isfinite(numeric)
        if finite.all():  # views: the same norms as of the copies
            a_f, n_f, z_f = analytic, numeric, noise
        else:
            a_f, n_f, z_f = analytic[finite], numeric[finite], noise[finite]
        scale = norm(a_f) + norm(n_f)
        resolution = norm(z_f) / scale if scale > 0 and scale >= ZERO_NOISE_MULTIPLE * norm(z_f) else 0.0
        a_f = n_f = z_f = None
        # the suspects, worst first, with their values as swept (before any widening)
        order = np.flatnonzero(suspect)
        error, size = error_and_size(order)
        ranked = np.argsort(-error / size, kind="stable")
        order = order[ranked]
        jp_s = np.concatenate([k[0] for k in kept]) if kept else np.empty(0)
        jm_s = np.concatenate([k[1] for k in kept]) if kept else np.empty(0)
        suspects = (indices[order], analytic[order], numeric[order], jp_s[ranked], jm_s[ranked])
        if resolution > self.settings.fail_threshold:
            # round-off hides the fail line: every entry measured again where round-off is small enough
            factor = WIDEN ** math.ceil(
                math.log(STEADY_NOISE * resolution / self.settings.fail_threshold, WIDEN)
            )
            noisy = np.flatnonzero(finite & ~suspect)
            error, _ = error_and_size(noisy)
            self._widen(block, indices[noisy], analytic[noisy], error, out, min(factor, WIDEST))
        else:  # above the threshold but within a few round-offs: measured where round-off is less
            noisy = np.flatnonzero(disagree & ~suspect)
            error, size = error_and_size(noisy)
            ranked = np.argsort(-error / size, kind="stable")[:limit]
            noisy, error = noisy[ranked], error[ranked]
            self._widen(block, indices[noisy], analytic[noisy], error, out, WIDEN)
        if not order.size:
            return
        # every suspect is examined (until ``enough`` are wrong): one left out would count in the figure
        x = block.work.reshape(-1)[suspects[0]]
        plus, minus, _ = self.steps(x)  # the sweep's steps again: elementwise, so the same
        self._examine(block, *suspects, plus - x, x - minus, out, enough)

    def _one_sided(self, jp, jm, step_plus, step_minus):
        """(central difference, split of the one-sided differences, larger one-sided slope, noise)."""
        forward = (jp - self.j0) / step_plus
        backward = (self.j0 - jm) / step_minus
        split = abs(forward - backward)
        return (
            (jp - jm) / (step_plus + step_minus),
            split,
            max(abs(forward), abs(backward)),
            self.noise(step_plus + step_minus),
            (forward, backward),
        )

    def _one_side_agrees(self, analytic: float, sides, noise: float) -> bool:
        """A kink crossed on one side only leaves the other side's one-sided difference clean: if
        that one agrees with the analytic value (within the fail line or its round-off, which is
        twice the central difference's), the disagreement is the kink's, not the gradient's."""
        return any(
            abs(side - analytic)
            <= self.settings.fail_threshold * (abs(side) + abs(analytic)) + 2 * STEADY_NOISE * noise
            for side in sides
        )

    def _examine(self, block, indices, analytic, numeric, jp, jm, step_plus, step_minus, out, enough):
        """Re-step each suspect (RESTEPS) and keep as wrong only a disagreement that survives them all.

        wrong: the numeric value is steady at every step (curvature's error grows 16-fold at 4h; a
        kink nearer than h stops being crossed at h/16), no kink persists at the smallest step, and
        the error is beyond the fail line both for the entry and on the block's largest gradient.
        kink: the one-sided differences still disagree at h/16 as much as at h (a non-differentiable
        point: any subgradient is right, so the entry is not judged).  near-kink: a kink was crossed
        at some step but the value moved with the step (reported, not counted).  Otherwise the value
        moved with the step alone: curvature, not an error.  Stops after ``enough`` wrong entries."""
        flat = block.work.reshape(-1)
        threshold = self.settings.fail_threshold
        # a wrong entry's error is beyond the fail line on the block's scale too: an entry whose
        # gradient is nearly zero is not failed for a difference the block would never notice
        floor = threshold * float(np.max(np.abs(block.comparable)))
        for k, i in enumerate(indices.tolist()):
            if out.wrong is not None and out.wrong.sum() >= enough:
                break
            x = float(flat[i])
            gap = abs(analytic[k] - numeric[k])
            central, split, slope, noise, sides = self._one_sided(jp[k], jm[k], step_plus[k], step_minus[k])
            kinked = [split > KINK_NOISE_MULTIPLE * noise and split > KINK_SPLIT * slope]
            clean_side = kinked[0] and self._one_side_agrees(analytic[k], sides, noise)
            splits, steady, last, values = [split], True, numeric[k], {}
            factors = list(RESTEPS)
            for factor in factors:
                plus, minus, jp_k, jm_k = self._pair(
                    block, out, i, x, step_plus[k] * factor, step_minus[k] * factor
                )
                value, split_k, slope_k, noise_k, sides = self._one_sided(jp_k, jm_k, plus - x, x - minus)
                steady &= bool(np.isfinite(value))
                if not np.isfinite(value):  # a re-step met a non-finite cost: the entry cannot be verified
                    out.numeric.reshape(-1)[i] = np.nan
                    note = "cost not finite at a re-step of an entry: it cannot be verified"
                    if note not in out.notes:
                        out.notes.append(note)
                splits.append(split_k)
                kinked.append(split_k > KINK_NOISE_MULTIPLE * noise_k and split_k > KINK_SPLIT * slope_k)
                clean_side |= kinked[-1] and self._one_side_agrees(analytic[k], sides, noise_k)
                steady &= abs(value - numeric[k]) <= STEADY_FRACTION * gap + STEADY_NOISE * (noise + noise_k)
                values[factor] = (value, noise_k)
                if factor < 1:
                    last = value
                if (
                    steady
                    and factor == min(factors)
                    and self._shrink_on(analytic[k], value, noise_k, len(factors))
                ):
                    factors.append(factor / ENTRY_SHRINK)  # still off: smaller, down to the round-off floor
            smallest = 1 + factors.index(min(factors))
            # a kink crossed at the smallest step is crossed at every larger one: one seen only at a
            # small step is the round-off of that step (it grows as 1/h), not a kink
            kink_persists = (
                len(splits) > smallest
                and kinked[0]
                and kinked[smallest]
                and splits[smallest] > KINK_PERSIST * splits[0]
            )
            if clean_side and not kink_persists:  # a kink on one side only: the clean side agrees
                out.mark("near_kinks", i)
            elif kink_persists:
                out.mark("kinks", i)
            elif steady and abs(analytic[k] - last) > max(threshold * (abs(analytic[k]) + abs(last)), floor):
                out.mark("wrong", i)
            elif any(kinked):
                out.mark("near_kinks", i)
            elif self.settings.epsilon is None:
                self._keep_wider_step(out, i, analytic[k], gap, *values[max(RESTEPS)])

    def _shrink_on(self, analytic: float, value: float, noise: float, tried: int) -> bool:
        """Whether a suspect still off at its smallest step is re-stepped smaller: an entry is wrong
        only if its estimate stays wrong as the step shrinks to the round-off floor (a kink anywhere
        downstream, nearer than the step, makes a steady-looking error that a smaller step loses).
        Not past the floor: the disagreement, and a kink's split, must stand out of the smaller
        step's round-off (KINK_NOISE_MULTIPLE times it), so a kink is still seen as one there."""
        gap = abs(analytic - value)
        if not np.isfinite(value) or gap <= self.settings.threshold * (abs(analytic) + abs(value)):
            return False
        return tried < len(RESTEPS) + ENTRY_SHRINKS and KINK_NOISE_MULTIPLE * noise * ENTRY_SHRINK < gap

    def _widen(self, block: Block, indices, analytic, gap, out: Outcome, factor: float):
        """Entries whose difference is above the threshold but within a few round-offs of the cost
        (or every entry, when round-off hides the block's fail line): each is measured again at
        ``factor`` times its step, where round-off is that many times smaller.  That estimate stands
        for the verdict (with an epsilon the user set, the table keeps the homework's figure at that
        step and only the verdict uses it): a difference that round-off makes is not evidence."""
        flat = block.work.reshape(-1)
        for k, i in enumerate(indices.tolist()):
            x = float(flat[i])
            plus, minus, divisor = self.steps(np.array([x]))
            step = float(plus[0] - x) * factor
            wide_plus, wide_minus, jp, jm = self._pair(block, out, i, x, step, step)
            wide = (jp - jm) / (wide_plus - wide_minus)
            noise = float(self.noise(wide_plus - wide_minus))
            base, base_noise = float(out.numeric.reshape(-1)[i]), float(out.noise.reshape(-1)[i])
            # kept when closer, or when it agrees or sees the same value with less round-off (a wrong
            # entry's error is the same at both steps, so this never hides one; a kink crossed is neither)
            gap_wide = abs(analytic[k] - wide)
            agrees = (
                gap_wide <= self.settings.threshold * (abs(analytic[k]) + abs(wide)) + STEADY_NOISE * noise
            )
            consistent = abs(wide - base) <= STEADY_NOISE * (base_noise + noise)
            if not (np.isfinite(wide) and (gap_wide < gap[k] or agrees or consistent)):
                continue
            if self.settings.epsilon is None:
                out.numeric.reshape(-1)[i], out.noise.reshape(-1)[i] = wide, noise
                out.mark("restepped", i)
            else:
                out.verified[i] = (wide, noise)

    def _keep_wider_step(self, out: Outcome, i: int, analytic: float, gap: float, wide: float, noise: float):
        """A smooth suspect whose estimate moved with the step, and is closer to the analytic value at
        the wider step: round-off dominated the default step (the cost is noisier than NOISE_ULPS
        assumes, e.g. log(1 - A) with A near 1).  The wider step's estimate stands for the entry, and
        its round-off with it.  Never with an explicit epsilon: the homework's figures must reproduce."""
        if np.isfinite(wide) and abs(analytic - wide) < gap:
            out.numeric.reshape(-1)[i] = wide
            out.noise.reshape(-1)[i] = noise
            out.mark("restepped", i)
