"""Full mode: central differences entry by entry, each entry perturbed in place and put back.

A suspect (an entry that disagrees beyond its round-off) has its estimate followed as the step
shrinks 16-fold at a time, down to the round-off floor, and is judged where it settles: it agrees,
or one side's difference agrees at the two smallest steps (a kink crossed on the other side), or it
is wrong (steady, beyond the fail line, and more than a kink crossed could make), or a kink sits at
the point (not judged).  An entry whose difference round-off may explain is measured again at a
wider step, whose estimate is kept only when a kink it may cross cannot explain it.  Fast mode
localizes its errors with the same sweep, so both modes judge entries alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

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
#: A suspect is also measured at this many times its step: where round-off dominated the default
#: step (a cost noisier than NOISE_ULPS assumes), the wider estimate is the closer one.
WIDER_RESTEP = 4.0
#: A suspect's estimate is followed as the step shrinks ENTRY_SHRINK-fold, at most ENTRY_SHRINKS
#: times (16**5: a pre-activation ~1e-11 from 0), while round-off still resolves its
#: disagreement: a kink nearer than the step stops being crossed, curvature's error falls 256-fold.
ENTRY_SHRINK = 16.0
ENTRY_SHRINKS = 5
#: Steady: two successive estimates differ by at most this fraction of the disagreement (plus
#: STEADY_NOISE times the round-off of both): the step no longer moves the estimate.
STEADY_FRACTION = 0.25
STEADY_NOISE = 3.0
#: A kink crossed on one side moves the central difference by half the one-sided split (curvature in
#: the split shifts that by up to half again), so a disagreement within KINK_SHARE of the split (plus
#: round-off) may be the kink's, not the gradient's.
KINK_SHARE = 0.75
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
#: A side's difference moves (it crosses a kink at a distance comparable to the step) when it changes
#: by more than this fraction of the split over a 16x smaller step.
SIDE_MOVES = 0.25
#: A split is seen (a kink, not round-off) beyond this many times the central difference's round-off.
KINK_NOISE_MULTIPLE = 100.0
#: A kink is at the point when its split keeps within this fraction of its size over a 16x smaller
#: step: one at a distance d loses a d/h share of it, a smooth split loses 15/16.
KINK_AT_POINT = 0.1
#: Entries whose steps are turned into Python floats at once in the sweep's loop.
SWEEP_CHUNK = 512
#: Entries turned from costs into numeric values at a time: no temporary the size of a large block.
FINISH_CHUNK = 1 << 10


#: how the notes start when a re-step of an entry met a non-finite cost
UNVERIFIABLE = "cost not finite when"


class Level(NamedTuple):
    """An entry's evidence at one step."""

    central: float
    sides: tuple  # (forward, backward) one-sided differences
    split: float  # |forward - backward|
    noise: float  # round-off of the central difference


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
        out.mark_checked(indices)
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
            self._widen(block, indices[noisy], analytic[noisy], out, min(factor, WIDEST))
        else:  # above the threshold but within a few round-offs: measured where round-off is less
            noisy = np.flatnonzero(disagree & ~suspect)
            error, size = error_and_size(noisy)
            noisy = noisy[np.argsort(-error / size, kind="stable")[:limit]]
            self._widen(block, indices[noisy], analytic[noisy], out, WIDEN)
        if not order.size:
            return
        # every suspect is examined (until ``enough`` are wrong): one left out would count in the figure
        x = block.work.reshape(-1)[suspects[0]]
        plus, minus, _ = self.steps(x)  # the sweep's steps again: elementwise, so the same
        self._examine(block, *suspects, plus - x, x - minus, out, enough)

    def _level(self, jp, jm, step_plus, step_minus) -> Level:
        """One step's evidence for an entry: central difference, one-sided ones, their split, round-off."""
        forward = (jp - self.j0) / step_plus
        backward = (self.j0 - jm) / step_minus
        return Level(
            (jp - jm) / (step_plus + step_minus),
            (forward, backward),
            abs(forward - backward),
            float(self.noise(step_plus + step_minus)),
        )

    def _agrees(self, analytic: float, value: float, noise: float, line: float) -> bool:
        """Within ``line`` (a relative bound) of the analytic value, or within its round-off."""
        return abs(analytic - value) <= line * (abs(analytic) + abs(value)) + STEADY_NOISE * noise

    def _side_agrees(self, analytic: float, level: Level):
        """The one-sided difference (0 forward, 1 backward) that agrees with the analytic value,
        within the fail line or its round-off (twice the central difference's), else None: a kink
        crossed on one side only leaves the other side's difference clean of it."""
        for side, value in enumerate(level.sides):
            if self._agrees(analytic, value, 2 * level.noise, self.settings.fail_threshold):
                return side
        return None

    @staticmethod
    def _explained(analytic: float, level: Level) -> bool:
        """The disagreement at this step may be a kink's (or curvature's): within KINK_SHARE of the split."""
        gap = abs(analytic - level.central)
        return gap <= KINK_SHARE * level.split + STEADY_NOISE * level.noise

    def _settled(self, analytic: float, floor: float, levels: list):
        """What the two smallest steps so far say, or None while the estimate is still moving.

        agrees: the estimate at the smallest step agrees.  one-sided: the same side's difference
        agrees at both (a kink crossed on the other side; the analytic value is a one-sided
        derivative, a valid subgradient).  wrong: the estimate is steady over both, neither step's
        disagreement is one a kink crossed could make, no kink sits at the point, and it is beyond
        the fail line, for the entry and on the block's largest gradient (a nearly-zero entry is
        not failed for a difference the block would never notice)."""
        prev, cur = levels[-2], levels[-1]
        if self._agrees(analytic, cur.central, cur.noise, self.settings.threshold):
            return "agrees"
        side = self._side_agrees(analytic, cur)
        if side is not None and side == self._side_agrees(analytic, prev):
            return "one-sided"
        gap = abs(analytic - cur.central)
        steady = abs(cur.central - prev.central) <= STEADY_FRACTION * gap + STEADY_NOISE * (
            cur.noise + prev.noise
        )
        # wrong at every step followed, the sweep's included: a cost whose round-off is coarser than
        # NOISE_ULPS assumes (log(1 - A) with A within a few ulps of 1) wanders away from a right
        # value as the step shrinks, and an estimate within the fail line at the sweep's step is
        # never made wrong by smaller steps alone
        if not all(self._beyond(analytic, lv.central, floor) for lv in levels):
            return None
        explained = self._explained(analytic, prev) or self._explained(analytic, cur)
        if steady and not explained and not self._kink_at_point(prev, cur):
            return "wrong"
        if self._clean_side_disagrees(analytic, floor, prev, cur):
            return "wrong"
        return None

    def _beyond(self, analytic: float, value: float, floor: float) -> bool:
        """Beyond the fail line, for the entry and on the block's largest gradient."""
        return abs(analytic - value) > max(self.settings.fail_threshold * (abs(analytic) + abs(value)), floor)

    def _clean_side_disagrees(self, analytic: float, floor: float, prev: Level, cur: Level) -> bool:
        """A kink a hair from θ on one side: that side's difference moves as the step shrinks (the
        share of the step past the kink shrinks), the other's holds still.  The kink is then not at
        the point, θ is differentiable, and its derivative is the still side's: an analytic value
        beyond the fail line from it is wrong, even when it lies between the two sides."""
        for side in (0, 1):
            still, moving = (cur.sides[side], prev.sides[side]), (cur.sides[1 - side], prev.sides[1 - side])
            gap = abs(analytic - still[0])
            noise = 2 * STEADY_NOISE * (cur.noise + prev.noise)  # a one-sided difference's round-off
            if (
                abs(still[0] - still[1]) <= STEADY_FRACTION * gap + noise
                and abs(moving[0] - moving[1]) > SIDE_MOVES * cur.split + noise
                and gap > max(self.settings.fail_threshold * (abs(analytic) + abs(still[0])), floor) + noise
            ):
                return True
        return False

    @staticmethod
    def _kink_at_point(prev: Level, cur: Level) -> bool:
        """The split is seen and keeps its size over a 16x smaller step: a kink at the point (or
        nearer than the step), where kinks on both sides can put the central difference outside
        the one-sided ones, and any subgradient (the analytic value among them) is right."""
        return cur.split > KINK_NOISE_MULTIPLE * cur.noise and abs(cur.split - prev.split) <= (
            KINK_AT_POINT * prev.split
        )

    def _examine(self, block, indices, analytic, numeric, jp, jm, step_plus, step_minus, out, enough):
        """Follow each suspect's estimate as the step shrinks, and judge it where it settles.

        The step is divided by ENTRY_SHRINK until ``_settled`` decides, round-off would hide the
        disagreement at the next step, or ENTRY_SHRINKS steps were taken.  Undecided at the end:
        a kink at the point when its split kept its size over the last shrink (a non-differentiable
        point: any subgradient is right, so the entry is not judged); a near-kink when a kink may
        explain the disagreement at some step (reported, not counted); else the estimate moved with
        the step alone (curvature or round-off), and the wider step's estimate is kept when closer.
        An entry that agrees where it settles takes that estimate.  Stops after ``enough`` wrong
        entries."""
        flat = block.work.reshape(-1)
        # a wrong entry's error is beyond the fail line on the block's scale too
        floor = self.settings.fail_threshold * float(np.max(np.abs(block.comparable)))
        one_sided, crossed = [], []
        for k, i in enumerate(indices.tolist()):
            if out.wrong is not None and out.wrong.sum() >= enough:
                break
            x, a = float(flat[i]), float(analytic[k])
            levels = [self._level(jp[k], jm[k], step_plus[k], step_minus[k])]
            wide = None
            outcome, factor = None, 1.0
            if self.settings.epsilon is None:
                wide = self._restep(block, out, i, x, step_plus[k], step_minus[k], WIDER_RESTEP)
                if not np.isfinite(wide.central):
                    outcome, factor = "unverifiable", WIDER_RESTEP
            for _ in range(ENTRY_SHRINKS if outcome is None else 0):
                factor /= ENTRY_SHRINK
                levels.append(self._restep(block, out, i, x, step_plus[k], step_minus[k], factor))
                if not np.isfinite(levels[-1].central):
                    outcome = "unverifiable"
                    break
                outcome = self._settled(a, floor, levels)
                gap = abs(a - levels[-1].central)
                if outcome is not None or KINK_NOISE_MULTIPLE * ENTRY_SHRINK * levels[-1].noise >= gap:
                    break  # decided, or the next step's round-off would hide the disagreement
            prev, cur = levels[-2], levels[-1]
            if outcome == "unverifiable":
                self._unverifiable(block, out, i, step_plus[k] * factor)
            elif outcome == "wrong":
                out.mark("wrong", i)
            elif outcome == "one-sided":
                # the clean side's difference stands for the entry, its curvature (linear in the
                # step: the side at two steps 16x apart) extrapolated away
                side = self._side_agrees(a, cur)
                value = (ENTRY_SHRINK * cur.sides[side] - prev.sides[side]) / (ENTRY_SHRINK - 1)
                # closer at the wider step: the cost's round-off (coarser than NOISE_ULPS assumes,
                # log(1 - A) with A near 1) made the small steps' sides agree, not a kink
                if not self._keep_wider_if_closer(out, i, a, wide, value):
                    noise = 2 * (ENTRY_SHRINK * cur.noise + prev.noise) / (ENTRY_SHRINK - 1)
                    self._keep(out, i, value, noise)
                    one_sided.append(i)
            elif outcome == "agrees":
                self._keep(out, i, cur.central, cur.noise)
                if any(self._kink_seen(a, lv) for lv in levels[:-1]):
                    crossed.append(i)
            elif self._kink_at_point(prev, cur):
                out.mark("kinks", i)
            elif any(self._kink_seen(a, lv) for lv in levels):
                out.mark("near_kinks", i)
            else:
                self._keep_wider_if_closer(out, i, a, wide, numeric[k])
        if crossed:
            out.notes.append(
                f"near-kink at {self._entries(block, crossed)}: the step crossed a kink, a smaller "
                "one does not, and agrees there"
            )
        if one_sided:
            out.notes.append(
                f"kink crossed on one side at {self._entries(block, one_sided)}, at every step: the "
                "other side's difference agrees and stands for the entry (a one-sided derivative is a "
                "valid subgradient)"
            )

    @staticmethod
    def _entries(block: Block, flat_indices: list) -> str:
        """The first entry's name, and how many more."""
        first = fmt_index(block.name, index_of(block.work.shape, flat_indices[0]))
        return first + (f" (+{len(flat_indices) - 1} more)" if len(flat_indices) > 1 else "")

    def _kink_seen(self, analytic: float, level: Level) -> bool:
        """A split well beyond round-off that may explain the disagreement: a kink crossed."""
        return level.split > KINK_NOISE_MULTIPLE * level.noise and self._explained(analytic, level)

    def _restep(self, block, out: Outcome, i: int, x: float, step_plus, step_minus, factor: float) -> Level:
        """The entry's evidence at ``factor`` times its sweep step (the steps actually reached)."""
        plus, minus, jp, jm = self._pair(block, out, i, x, step_plus * factor, step_minus * factor)
        return self._level(jp, jm, plus - x, x - minus)

    def _keep_wider_if_closer(self, out: Outcome, i: int, analytic: float, wide, than: float) -> bool:
        """Keep the wider step's estimate (``wide``, a Level or None) when it is finite and closer to
        the analytic value than ``than``; whether it was kept."""
        if (
            wide is None
            or not np.isfinite(wide.central)
            or not abs(analytic - wide.central) < abs(analytic - than)  # NaN: not closer
        ):
            return False
        self._keep(out, i, wide.central, wide.noise)
        out.mark("restepped", i)
        return True

    def _keep(self, out: Outcome, i: int, value: float, noise: float) -> None:
        """The estimate an entry is judged by: with an epsilon the user set, the table keeps the
        homework's figure at that step and only the verdict uses this one."""
        if self.settings.epsilon is None:
            out.numeric.reshape(-1)[i], out.noise.reshape(-1)[i] = value, noise
        else:
            out.verified[i] = (value, noise)

    def _widen(self, block: Block, indices, analytic, out: Outcome, factor: float):
        """Entries whose difference is above the threshold but within a few round-offs of the cost
        (or every entry, when round-off hides the block's fail line): each is measured again at
        ``factor`` times its step, where round-off is that many times smaller.  That estimate stands
        for the entry only when it agrees with the analytic value, or is less off than the default
        step's (each less its round-off), or is consistent with the default step's and its
        disagreement is not one a kink crossed at the wider step could make (KINK_SHARE of its
        one-sided split): a wider step crosses kinks the default one does not.  Else the next
        smaller widening is tried, down to WIDEN; none kept, the default step's estimate stays."""
        flat = block.work.reshape(-1)
        for k, i in enumerate(indices.tolist()):
            x, a = float(flat[i]), float(analytic[k])
            plus, _, _ = self.steps(np.array([x]))
            step = float(plus[0] - x)
            base, base_noise = float(out.numeric.reshape(-1)[i]), float(out.noise.reshape(-1)[i])
            f = factor
            while f > 1:
                wide = self._restep(block, out, i, x, step, step, f)
                if not np.isfinite(wide.central):
                    self._unverifiable(block, out, i, step * f)
                    break
                consistent = abs(wide.central - base) <= STEADY_NOISE * (base_noise + wide.noise)
                # closer: less off than the default step's estimate, each less its own round-off
                closer = abs(a - wide.central) - wide.noise < abs(a - base) - base_noise
                if (
                    self._agrees(a, wide.central, wide.noise, self.settings.threshold)
                    or closer
                    or (consistent and not self._explained(a, wide))
                ):
                    self._keep(out, i, wide.central, wide.noise)
                    if self.settings.epsilon is None:
                        out.mark("restepped", i)
                    break
                f /= WIDEN

    def _unverifiable(self, block: Block, out: Outcome, i: int, step: float) -> None:
        """A re-step met a non-finite cost: the entry cannot be verified, and the notes say which."""
        out.numeric.reshape(-1)[i] = np.nan
        out.verified.pop(i, None)
        if not any(note.startswith(UNVERIFIABLE) for note in out.notes):  # the first one is named
            entry = fmt_index(block.name, index_of(block.work.shape, i))
            out.notes.append(f"{UNVERIFIABLE} {entry} was re-stepped by ±{step:.3g}: it cannot be verified")
