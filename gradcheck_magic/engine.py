"""The numeric engine: central differences per parameter block, in pure numpy.

It knows nothing of IPython or of how the cost is computed: it perturbs float64
working arrays *in place*, calls ``cost()`` and compares with the analytic
gradient it is handed.  One copy of a block is made for the fast mode; the full
sweep copies nothing per entry, which is what makes it linear where the homework
loop (copy the vector, rebuild the dict, per entry) is quadratic.
"""

from __future__ import annotations

import contextlib
import math
import zlib
from dataclasses import dataclass, field
from typing import Callable, NamedTuple, Optional

import numpy as np

from .settings import Settings

EPS = np.finfo(np.float64).eps
TINY = np.finfo(np.float64).tiny
#: The automatic step is ``AUTO_STEP * max(|theta_i|, 1)``: the cube root of the
#: float64 epsilon balances truncation (h^2) against round-off (eps/h).
AUTO_STEP = float(np.cbrt(EPS))
#: Round-off of one cost evaluation is taken as ``NOISE_ULPS * eps * |J|``.
NOISE_ULPS = 8.0
#: A gradient whose norm is below this many times the round-off of its numeric estimate is zero
#: as far as float64 can tell: only then is its error measured against the floor below.
ZERO_NOISE_MULTIPLE = 10.0
#: The floor for such near-zero gradients: their round-off divided by this reference (the course's
#: "fine" bound), so that two near-zero gradients never raise a false alarm.
FLOOR_REFERENCE = 1e-7
#: A block's difference counts as a disagreement only beyond this many times its round-off.
BLOCK_NOISE_MULTIPLE = 10.0
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
FAST_WRONG_ENOUGH = 3
#: One-sided differences that disagree by more than this fraction of the slope (and by more than
#: KINK_NOISE_MULTIPLE times the round-off) mark a kink; smooth curvature over a step of ~1e-5
#: changes the slope by far less.
KINK_SPLIT = 1e-2
KINK_NOISE_MULTIPLE = 100.0
#: At a kink the split keeps its size as the step shrinks 16-fold; a smooth split shrinks with it.
KINK_PERSIST = 0.25
#: Fast mode retries a failing probe with its step divided by PROBE_SHRINK, at most SHRINKS times, and
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
#: auto mode: a problem of at most this many evaluations is always checked in full, and one of at
#: most time_budget * NOMINAL_EVALUATIONS_PER_SECOND too (a count, never a clock, decides)
AUTO_FULL_EVALUATIONS = 2_000
NOMINAL_EVALUATIONS_PER_SECOND = 20_000


@dataclass
class Block:
    """One parameter block: the float64 working array the forward sees, and its gradient."""

    name: str
    work: np.ndarray
    analytic: Optional[np.ndarray] = None  # as returned, in float64; None when missing
    notes: list = field(default_factory=list)
    fatal: Optional[str] = None  # set when the analytic gradient cannot be compared

    @property
    def comparable(self) -> Optional[np.ndarray]:
        """The analytic gradient in the parameter's shape, when the shapes agree."""
        if self.analytic is not None and self.fatal is None:
            return self.analytic
        return None


class Directional(NamedTuple):
    """Fast mode's probes: per random direction, the analytic and numeric directional derivative,
    the round-off of the numeric one, and whether it crossed a kink (then it is left out)."""

    analytic: np.ndarray
    numeric: np.ndarray
    noise: np.ndarray
    kinked: np.ndarray
    unsettled: bool  # some probe's error moved with the step and never steadied
    worst_step: Optional[np.ndarray]  # the step of the probe that disagreed most (bisection starts there)


@dataclass
class Outcome:
    """What the engine measured for one block."""

    name: str
    shape: tuple
    numeric: np.ndarray  # central differences, NaN where not computed
    analytic: Optional[np.ndarray]
    checked: np.ndarray  # bool mask of the entries that were differenced
    rel_error: float = float("nan")
    max_abs_error: float = float("nan")
    worst_index: Optional[tuple] = None
    status: str = "fail"
    notes: list = field(default_factory=list)
    hints: list = field(default_factory=list)
    evaluations: int = 0
    kinks: Optional[np.ndarray] = None  # bool mask of non-differentiable entries
    directional: Optional[tuple] = None  # fast mode: (analytic, numeric) per probe
    noise: Optional[np.ndarray] = None  # estimated round-off of each numeric entry
    complete: bool = True
    wrong: Optional[np.ndarray] = None  # bool mask: disagreement survived every re-step
    near_kinks: Optional[np.ndarray] = None  # bool mask: a smaller step no longer crossed the kink
    disagreeing: int = 0  # entries whose disagreement survived every re-step
    restepped: Optional[np.ndarray] = None  # bool mask: estimated at a wider step (round-off at h)
    #: with an epsilon the user set: flat index -> (estimate, round-off) at a wider step, which the
    #: verdict uses while the table keeps the homework's figure at the user's step
    verified: dict = field(default_factory=dict)
    evidence: Optional[Evidence] = None  # what the status was decided from (the grader re-judges it)

    @property
    def error(self) -> np.ndarray:
        """|analytic - numeric| per entry (NaN where unknown)."""
        if self.analytic is None or self.analytic.shape != self.numeric.shape:
            return np.full(self.shape, np.nan)
        return np.abs(self.analytic - self.numeric)

    @property
    def judged(self) -> np.ndarray:
        """The one mask of entries that count: differenced, finite, and neither a kink nor a
        near-kink.  Verdicts, figures, the heatmap, worst entries and hints all read this one."""
        use = self.checked & np.isfinite(self.numeric)
        for mask in (self.kinks, self.near_kinks):
            if mask is not None:
                use &= ~mask
        return use

    @property
    def unverifiable(self) -> np.ndarray:
        """Entries differenced whose cost was not finite at θ±ε."""
        return self.checked & ~np.isfinite(self.numeric)

    def mark(self, attribute: str, flat_indices: np.ndarray) -> None:
        """Set entries of one of the bool masks, creating it on first use."""
        if getattr(self, attribute) is None:
            setattr(self, attribute, np.zeros(self.shape, dtype=bool))
        getattr(self, attribute).reshape(-1)[flat_indices] = True


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


def _norm(v: np.ndarray) -> float:
    """The 2-norm; cheaper than np.linalg.norm on the small blocks of homework nets."""
    flat = v.reshape(-1)
    return math.sqrt(float(flat @ flat))


def relative_error(analytic: np.ndarray, numeric: np.ndarray, noise: np.ndarray, notes=None, discount=False):
    """The homework's ‖analytic − numeric‖ / (‖analytic‖ + ‖numeric‖), and the round-off relative to
    the gradient.  Only a gradient that float64 cannot tell from zero (below ZERO_NOISE_MULTIPLE
    times its round-off) is measured against a floor instead; nothing else is.

    ``discount``: each value's difference less its own round-off, so a difference that round-off
    explains counts as none.  Verdicts use this one: which side of the threshold a difference
    *within* round-off falls on depends on the machine's floating-point path (BLAS kernels,
    threads), never on the gradient, so it must not decide anything."""
    size = _norm(analytic) + _norm(numeric)
    round_off = _norm(noise)
    diff = np.abs(analytic - numeric)
    if discount:
        diff = np.maximum(diff - noise, 0.0)
    if size < ZERO_NOISE_MULTIPLE * round_off:
        floor = round_off / FLOOR_REFERENCE
        if notes is not None:
            notes.append(
                f"near-zero gradient (‖grad‖+‖approx‖ = {size:.1e}): "
                f"error measured against the round-off floor {floor:.1e}"
            )
        return _norm(diff) / floor, 0.0
    if size == 0:
        return 0.0, 0.0
    return _norm(diff) / size, round_off / size


def index_of(shape: tuple, flat: int) -> tuple:
    return tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()


def fmt_index(name: str, index: tuple) -> str:
    return f"{name}[{', '.join(map(str, index))}]" if index else name


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


class Interrupted(Exception):
    """Raised inside the sweep on Ctrl-C, carrying the blocks finished so far."""


class EvaluationError(Exception):
    """The user's code raised during an evaluation; ``where`` says what was perturbed."""

    def __init__(self, original: BaseException, where: str):
        super().__init__(where)
        self.original = original
        self.where = where


class Engine:
    """Runs the check over blocks; ``cost()`` evaluates J at the current working arrays."""

    def __init__(
        self, blocks, cost: Callable[[], float], settings: Settings, progress=None, j0: Optional[float] = None
    ):
        self.blocks = blocks
        self.cost = cost
        self.settings = settings
        self.progress = progress
        self.evaluations = 0
        self.j0 = cost() if j0 is None else j0

    def planned_evaluations(self, mode: str) -> int:
        total = 0
        for b in self.blocks:
            if b.analytic is None:
                continue
            n = b.work.size
            if mode == "fast":
                total += 2 * min(self.settings.probes, n)
            elif self.settings.sample:
                total += 2 * min(self.settings.sample, n)
            else:
                total += 2 * n
        return total

    def choose_mode(self) -> str:
        """auto: full for a problem small enough by count (the homework nets always), else fast.

        Only a count decides, never a clock, so the same problem gets the same mode on any machine
        under any load (a slow forward in full mode is slow, not wrong: the progress bar then
        suggests -m fast)."""
        s = self.settings
        if s.mode != "auto":
            return s.mode
        if s.sample:
            return "full"
        planned = self.planned_evaluations("full")
        if planned <= AUTO_FULL_EVALUATIONS:
            return "full"
        return "full" if planned <= s.time_budget * NOMINAL_EVALUATIONS_PER_SECOND else "fast"

    def _counted(self, out: Outcome, n: int) -> None:
        """Book n evaluations to the check and the block, and advance the progress bar."""
        self.evaluations += n
        out.evaluations += n
        if self.progress is not None:
            self.progress(n)

    # ---- steps --------------------------------------------------------------
    def _steps(self, x: np.ndarray):
        """theta+h, theta-h and the divisor: 2*epsilon when set, else the exact step."""
        if self.settings.epsilon is not None:
            eps = self.settings.epsilon
            return x + eps, x - eps, np.full(x.shape, 2.0 * eps)
        h = AUTO_STEP * np.maximum(np.abs(x), 1.0)
        plus, minus = x + h, x - h
        return plus, minus, plus - minus

    def _noise(self, divisor):
        return NOISE_ULPS * EPS * max(abs(self.j0), TINY) / divisor

    # ---- sweeps ---------------------------------------------------------------
    def _sweep(self, block: Block, indices: np.ndarray, out: Outcome, enough: int = CONFIRM_LIMIT):
        """Central differences at ``indices``, perturbing the working array in place."""
        __tracebackhide__ = True  # noqa: F841 - IPython hides this frame from tracebacks
        flat = block.work.reshape(-1)  # a view: the working arrays are C-contiguous
        x = flat[indices]
        plus, minus, divisor = self._steps(x)
        jp = np.full(len(indices), np.nan)
        jm = np.full(len(indices), np.nan)
        cost = self.cost
        plus_l, minus_l, idx_l = plus.tolist(), minus.tolist(), indices.tolist()
        k = -1
        try:
            for k, i in enumerate(idx_l):
                orig = flat[i]
                try:
                    flat[i] = plus_l[k]
                    jp[k] = cost()
                    flat[i] = minus_l[k]
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
                plus[:done],
                minus[:done],
                divisor[:done],
                out,
                confirm=False,
            )
            out.complete = False
            self.evaluations += 2 * done  # the bar already advanced entry by entry
            out.evaluations += 2 * done
            raise Interrupted() from None
        except Exception as exc:  # the user's code raised: say where
            i = idx_l[k]
            step = plus_l[k] - float(x[k])
            where = (
                f"while {fmt_index(block.name, index_of(block.work.shape, i))} was perturbed by ±{step:.3g}"
            )
            raise EvaluationError(exc, where) from exc
        self.evaluations += 2 * len(indices)
        out.evaluations += 2 * len(indices)
        self._finish_entries(block, indices, jp, jm, plus, minus, divisor, out, enough=enough)

    def _finish_entries(
        self,
        block,
        indices,
        jp,
        jm,
        plus,
        minus,
        divisor,
        out: Outcome,
        confirm: bool = True,
        enough: int = CONFIRM_LIMIT,
    ):
        """Numeric gradient and non-finite costs for the entries just swept; suspects re-stepped."""
        num = out.numeric.reshape(-1)
        finite = np.isfinite(jp) & np.isfinite(jm)
        num[indices] = np.where(finite, (jp - jm) / divisor, np.nan)
        out.noise.reshape(-1)[indices] = self._noise(divisor)
        out.checked.reshape(-1)[indices] = True
        bad = indices[~finite]
        if bad.size:
            first = fmt_index(block.name, index_of(block.work.shape, int(bad[0])))
            out.notes.append(
                f"cost not finite at θ±ε for {_count(bad.size, 'entry', 'entries')} "
                f"(first {first}): those cannot be verified"
            )
        analytic = block.comparable
        if analytic is None or not indices.size or not confirm:
            return
        analytic = analytic.reshape(-1)[indices]
        numeric = num[indices]
        error = np.abs(analytic - numeric)
        size = np.abs(analytic) + np.abs(numeric)
        noise = out.noise.reshape(-1)[indices]
        limit = max(CONFIRM_LIMIT, int(CONFIRM_FRACTION * indices.size))
        with np.errstate(invalid="ignore"):
            disagree = error > self.settings.threshold * size
            suspect = disagree & (error > ENTRY_NOISE_MULTIPLE * noise)
        finite = np.isfinite(numeric)
        scale = _norm(analytic[finite]) + _norm(numeric[finite])
        resolution = (
            _norm(noise[finite]) / scale
            if scale > 0 and scale >= ZERO_NOISE_MULTIPLE * _norm(noise[finite])
            else 0.0
        )
        if resolution > self.settings.fail_threshold:
            # round-off hides the fail line: every entry measured again where round-off is small enough
            factor = WIDEN ** math.ceil(
                math.log(STEADY_NOISE * resolution / self.settings.fail_threshold, WIDEN)
            )
            noisy = np.flatnonzero(finite & ~suspect)
            self._widen(block, indices[noisy], analytic[noisy], error[noisy], out, min(factor, WIDEST))
        else:  # above the threshold but within a few round-offs: measured where round-off is less
            noisy = np.flatnonzero(disagree & ~suspect)
            noisy = noisy[np.argsort(-error[noisy] / size[noisy], kind="stable")][:limit]
            self._widen(block, indices[noisy], analytic[noisy], error[noisy], out, WIDEN)
        if not suspect.any():
            return
        # every suspect is examined (until ``enough`` are wrong): one left out would count in the figure
        order = np.flatnonzero(suspect)
        order = order[np.argsort(-error[order] / size[order], kind="stable")]
        x = block.work.reshape(-1)[indices[order]]
        self._examine(
            block,
            indices[order],
            analytic[order],
            numeric[order],
            jp[order],
            jm[order],
            plus[order] - x,
            x - minus[order],
            out,
            enough,
        )

    def _one_sided(self, jp, jm, step_plus, step_minus):
        """(central difference, split of the one-sided differences, larger one-sided slope, noise)."""
        forward = (jp - self.j0) / step_plus
        backward = (self.j0 - jm) / step_minus
        split = abs(forward - backward)
        return (
            (jp - jm) / (step_plus + step_minus),
            split,
            max(abs(forward), abs(backward)),
            self._noise(step_plus + step_minus),
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
                try:
                    flat[i] = x + step_plus[k] * factor
                    plus = float(flat[i])
                    jp_k = self.cost()
                    flat[i] = x - step_minus[k] * factor
                    minus = float(flat[i])
                    jm_k = self.cost()
                except KeyboardInterrupt:
                    out.complete = False
                    raise
                except Exception as exc:
                    where = (
                        f"while {fmt_index(block.name, index_of(block.work.shape, i))} was perturbed "
                        f"by ±{step_plus[k] * factor:.3g}"
                    )
                    raise EvaluationError(exc, where) from exc
                finally:
                    flat[i] = x
                self._counted(out, 2)
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
            plus, minus, divisor = self._steps(np.array([x]))
            step = float(plus[0] - x) * factor
            try:
                flat[i] = x + step
                wide_plus = float(flat[i])
                jp = self.cost()
                flat[i] = x - step
                wide_minus = float(flat[i])
                jm = self.cost()
            except KeyboardInterrupt:
                out.complete = False
                raise
            except Exception as exc:
                entry = fmt_index(block.name, index_of(block.work.shape, i))
                where = f"while {entry} was perturbed by ±{step:.3g}"
                raise EvaluationError(exc, where) from exc
            finally:
                flat[i] = x
            self._counted(out, 2)
            wide = (jp - jm) / (wide_plus - wide_minus)
            noise = float(self._noise(wide_plus - wide_minus))
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
        orig = work.copy()
        k = min(self.settings.probes, work.size)
        noise = self._noise(1.0)  # of J itself: a probe differences J along Δ
        analytic, numeric, kinked = [], [], []
        unsettled, worst_step, worst, shrunk = False, None, (False, False, -1.0), 0
        try:
            for _ in range(k):
                v = rng.choice((-1.0, 1.0), size=work.shape)
                if self.settings.epsilon is not None:
                    base = self.settings.epsilon * v
                else:
                    base = AUTO_STEP * np.maximum(np.abs(orig), 1.0) * v
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
                f"fast mode: {_count(shrunk, 'probe', 'probes')} agreed only at a smaller step "
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
        noise = self._noise(1.0)
        previous_slope = previous_step = previous_second = None
        explained, unexplained_steps, kinks_seen = False, 0, 0
        for shrink in range(MAX_SHRINKS + 1):
            step = base / PROBE_SHRINK**shrink
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
        orig = flat.copy()
        flat_delta = delta.reshape(-1)
        idx = rng.permutation(np.flatnonzero(flat_delta))
        try:
            while idx.size > 1:
                halves, gaps = (idx[: idx.size // 2], idx[idx.size // 2 :]), []
                for half in halves:
                    a, n, second = self._probe(analytic, orig, flat, half, flat_delta[half], out)
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
        entries moved; analytic·((θ+Δ) − (θ−Δ))/2 with the steps as stored, not analytic·Δ."""
        base = orig[idx]
        plus = base + step
        try:
            flat[idx] = plus
            jp = self.cost()
            minus = flat[idx]  # the block itself for a slice (no copy of a large block), else a copy
            np.subtract(base, step, out=minus)
            flat[idx] = minus
            jm = self.cost()
            np.subtract(plus, minus, out=plus)
        finally:
            flat[idx] = base
        self._counted(out, 2)
        return float(analytic[idx] @ plus) / 2.0, (jp - jm) / 2.0, jp - 2.0 * self.j0 + jm

    # ---- per block --------------------------------------------------------
    def _entry_evidence(self, block: Block, out: Outcome, localized: bool = False) -> Evidence:
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
        analytic, numeric, noise = g[use], out.numeric[use], out.noise[use]
        rel, ev.resolution = relative_error(analytic, numeric, noise, out.notes)
        if out.verified:  # the user's step keeps the figure; the verdict sees the wider steps' estimates
            numeric, noise = out.numeric.copy(), out.noise.copy()
            for i, (value, round_off) in out.verified.items():
                numeric.reshape(-1)[i], noise.reshape(-1)[i] = value, round_off
            numeric, noise = numeric[use], noise[use]
            ev.resolution = relative_error(analytic, numeric, noise)[1]
        ev.excess, _ = relative_error(analytic, numeric, noise, discount=True)
        if ev.resolution:  # only the round-off of entries that do not agree could hide an error
            with np.errstate(invalid="ignore"):
                off = np.abs(analytic - numeric) > self.settings.threshold * (
                    np.abs(analytic) + np.abs(numeric)
                )
            ev.resolution = _norm(noise[off]) / (_norm(analytic) + _norm(numeric))
        ev.beyond_noise = _norm(analytic - numeric) > BLOCK_NOISE_MULTIPLE * _norm(noise)
        ev.rel_error = float(rel)
        if not localized:
            out.rel_error = ev.rel_error
        error = np.where(use, np.abs(g - np.where(use, out.numeric, 0.0)), -1.0)
        out.max_abs_error = float(error.max())
        worst = np.where(wrong, error, -1.0) if wrong.any() else error
        out.worst_index = index_of(out.shape, int(np.argmax(worst.reshape(-1))))
        return ev

    def _judge(self, out: Outcome, ev: Evidence):
        """Apply the verdict rule and say why in the notes."""
        s = self.settings
        out.evidence = ev
        out.status = verdict(ev, s)
        if ev.fatal:
            return
        if ev.wrong:
            counted = "at least " if ev.localized and ev.wrong >= FAST_WRONG_ENOUGH else ""
            out.notes.insert(
                0,
                f"{counted}{_count(ev.wrong, 'entry disagrees', 'entries disagree')} at every "
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
                f"{_count(n, 'entry', 'entries')} estimated at a wider step: the cost's "
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
                f"unverifiable: round-off of the cost (|J| = {abs(self.j0):.3g}) is "
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

    def _finish_block(self, block: Block, out: Outcome):
        self._judge(out, self._entry_evidence(block, out))

    def _grade(self, block: Block, out: Outcome):
        """A block with nothing numeric to compare: a missing or wrong-shaped gradient, or an interruption."""
        self._judge(
            out,
            Evidence(
                rel_error=out.rel_error,
                unverifiable=int(out.unverifiable.sum()),
                complete=out.complete,
                fatal=bool(block.fatal),
            ),
        )

    def _new_outcome(self, block: Block) -> Outcome:
        shape = block.work.shape
        return Outcome(
            name=block.name,
            shape=shape,
            numeric=np.full(shape, np.nan),
            noise=np.full(shape, np.nan),
            analytic=block.comparable,
            checked=np.zeros(shape, dtype=bool),
            notes=list(block.notes) + ([block.fatal] if block.fatal else []),
        )

    def _rng(self, block: Block) -> np.random.Generator:
        return np.random.default_rng([self.settings.seed, zlib.crc32(block.name.encode())])

    def check_block(self, block: Block, mode: str) -> Outcome:
        __tracebackhide__ = True  # noqa: F841 - IPython hides this frame from tracebacks
        out = self._new_outcome(block)
        n = block.work.size
        if block.analytic is None:
            self._grade(block, out)
            return out
        if n == 0 and block.comparable is not None:  # an empty parameter (0, 3): nothing to compare
            out.notes.append(f"empty {out.shape}: no entries, nothing to check")
            self._judge(out, Evidence(rel_error=float("nan"), empty=True))
            return out
        if mode == "fast" and block.comparable is not None:
            self._fast_block(block, out)
            return out
        # a wrong-shaped gradient in fast mode: a sample is enough for the shape hint
        sample = self.settings.localize if mode == "fast" else self.settings.sample
        if sample and sample < n:
            indices = np.sort(self._rng(block).choice(n, sample, replace=False))
            out.notes.append(f"sampled {sample} of {n} entries")
        else:
            indices = np.arange(n)
        if block.comparable is None and block.analytic.size != n:
            self._grade(block, out)  # wrong size: nothing numeric would help the diagnosis
            return out
        try:
            self._sweep(block, indices, out)
        except Interrupted as stop:
            stop.outcome = out
            raise
        except KeyboardInterrupt:  # while confirming kinks, after the sweep
            out.complete = False
            stop = Interrupted()
            stop.outcome = out
            raise stop from None
        finally:
            if out.checked.any():
                self._finish_block(block, out)
            else:
                self._grade(block, out)
        return out

    @contextlib.contextmanager
    def _interruptible(self, block: Block, out: Outcome):
        """On Ctrl-C, grade what was measured and hand the partial outcome up."""
        try:
            yield
        except (Interrupted, KeyboardInterrupt) as caught:
            out.complete = False
            stop = caught if isinstance(caught, Interrupted) else Interrupted()
            self._grade(block, out)
            stop.outcome = out
            raise stop from None

    def _fast_block(self, block: Block, out: Outcome):
        """Directional probes decide a pass; a block they do not pass is localized, never fully swept.

        Probes that cross a kink are left out.  If the others agree, the block passes.  Otherwise
        sampled entries plus the entry that bisection finds carrying the discrepancy are
        differenced (and their suspects re-stepped); if none is wrong, a wider sample is.  A wrong
        entry fails the block; a block whose localized entries all agree never fails (it warns:
        the directional error is unexplained).  A small block is differenced in full, which decides
        as in full mode."""
        __tracebackhide__ = True  # noqa: F841 - IPython hides this frame from tracebacks
        rng = self._rng(block)
        n = block.work.size
        with self._interruptible(block, out):
            probes = self._directional(block, out, rng)
        finite = np.isfinite(probes.numeric)
        use = finite & ~probes.kinked
        crossed = int(probes.kinked.sum())
        if crossed:
            out.notes.append(
                f"fast mode: {_count(crossed, 'probe', 'probes')} crossed a kink and "
                f"{'was' if crossed == 1 else 'were'} left out"
            )
        if not finite.all():
            out.notes.append("cost not finite along a probe direction: cannot be verified")
        ev = Evidence(
            rel_error=float("nan"), judged=int(use.sum()), unverifiable=int((~finite).sum()), localized=True
        )
        # probes too small for the round-off (a near-zero floor) prove nothing: the entries decide
        resolved = use.any() and (
            _norm(probes.analytic[use]) + _norm(probes.numeric[use])
            >= ZERO_NOISE_MULTIPLE * _norm(probes.noise[use])
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
            self._judge(out, ev)
            return
        indices = self._localize_indices(block, rng)
        with self._interruptible(block, out):
            if indices.size < n and probes.worst_step is not None and finite.all():
                indices = np.union1d(indices, [self._bisect(block, out, probes.worst_step, rng)])
            enough = CONFIRM_LIMIT if indices.size == n else FAST_WRONG_ENOUGH
            self._sweep(block, indices, out, enough)
            if indices.size < n and out.wrong is None:
                wider = self._others(n, indices, KINK_SAMPLE, rng)
                self._sweep(block, wider, out, FAST_WRONG_ENOUGH)
                indices = np.union1d(indices, wider)
        if indices.size == n:
            out.rel_error = float("nan")  # every entry was differenced: the entries alone give the figure
            out.notes.append(
                f"fast mode: {len(probes.analytic)} random directions did not pass, so every "
                "entry was checked"
            )
            entries = self._entry_evidence(block, out)
            entries.unverifiable += ev.unverifiable
            self._judge(out, entries)
            return
        entries = self._entry_evidence(block, out, localized=True)
        if np.isfinite(ev.rel_error):  # the block's figure is the directional one; else the sample's
            entries.rel_error = ev.rel_error
        out.rel_error = entries.rel_error
        entries.unverifiable += ev.unverifiable
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
        self._judge(out, entries)

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

    # ---- the whole check ------------------------------------------------------
    def run(self, mode: str):
        """Check every block; returns (outcomes, interrupted)."""
        __tracebackhide__ = True  # noqa: F841 - IPython hides this frame from tracebacks
        outcomes = []
        interrupted = False
        for block in self.blocks:
            if interrupted:
                out = self._new_outcome(block)
                out.complete = False
                out.notes.insert(0, "not checked: interrupted")
                out.status = "fail" if block.fatal else "warn"
                outcomes.append(out)
                continue
            try:
                outcomes.append(self.check_block(block, mode))
            except Interrupted as stop:
                interrupted = True
                outcomes.append(stop.outcome)
        return outcomes, interrupted


def overall_difference(outcomes) -> float:
    """The homework's figure: one relative difference over every compared entry."""
    gs, ns = [], []
    for out in outcomes:
        if out.analytic is None:
            continue
        if out.directional is not None:
            ok = np.isfinite(out.directional[1])
            gs.append(out.directional[0][ok])
            ns.append(out.directional[1][ok])
            continue
        sel = out.judged
        gs.append(out.analytic[sel])
        ns.append(out.numeric[sel])
    if not gs:
        return float("nan")
    g, a = np.concatenate(gs), np.concatenate(ns)
    denom = np.linalg.norm(g) + np.linalg.norm(a)
    return float(np.linalg.norm(g - a) / denom) if denom > 0 else 0.0
