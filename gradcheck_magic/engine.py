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
from typing import Callable, Optional

import numpy as np

from .settings import MODES, Settings  # noqa: F401 - one validated settings object

EPS = np.finfo(np.float64).eps
TINY = np.finfo(np.float64).tiny
#: The automatic step is ``AUTO_STEP * max(|theta_i|, 1)``: the cube root of the
#: float64 epsilon balances truncation (h^2) against round-off (eps/h).
AUTO_STEP = float(np.cbrt(EPS))
#: Round-off of one cost evaluation is taken as ``NOISE_ULPS * eps * |J|``.
NOISE_ULPS = 8.0
#: Errors are measured against a floor: the round-off noise of the numeric
#: gradient divided by this reference (the course's "fine" bound), so that two
#: near-zero gradients never raise a false alarm.
FLOOR_REFERENCE = 1e-7
#: One-sided differences that disagree by more than this fraction of the slope mark a kink;
#: smooth curvature over a step of ~1e-5 changes the slope by far less.
KINK_SPLIT = 1e-2
#: Fast mode retries a failing probe with its step divided by 8, at most this many times.
SHRINKS = 2
#: Entries differenced when kinks may explain a fast-mode probe's error.
KINK_SAMPLE = 256


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

    @property
    def error(self) -> np.ndarray:
        """|analytic - numeric| per entry (NaN where unknown)."""
        if self.analytic is None or self.analytic.shape != self.numeric.shape:
            return np.full(self.shape, np.nan)
        return np.abs(self.analytic - self.numeric)


class Interrupted(Exception):
    """Raised inside the sweep on Ctrl-C, carrying the blocks finished so far."""


class EvaluationError(Exception):
    """The user's code raised during an evaluation; ``where`` says what was perturbed."""

    def __init__(self, original: BaseException, where: str):
        super().__init__(where)
        self.original = original
        self.where = where


def _norm(v: np.ndarray) -> float:
    """The 2-norm; cheaper than np.linalg.norm on the small blocks of homework nets."""
    flat = v.reshape(-1)
    return math.sqrt(float(flat @ flat))


def verdict(rel: float, settings: Settings) -> str:
    if not np.isfinite(rel):
        return "fail"
    if rel <= settings.threshold:
        return "pass"
    return "warn" if rel <= settings.fail_threshold else "fail"


def index_of(shape: tuple, flat: int) -> tuple:
    return tuple(int(i) for i in np.unravel_index(flat, shape)) if shape else ()


def fmt_index(name: str, index: tuple) -> str:
    return f"{name}[{', '.join(map(str, index))}]" if index else name


class Engine:
    """Runs the check over blocks; ``cost()`` evaluates J at the current working arrays."""

    def __init__(self, blocks, cost: Callable[[], float], settings: Settings, progress=None,
                 j0: Optional[float] = None):
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

    def choose_mode(self, seconds_per_evaluation: float) -> str:
        """auto: full when the sweep should finish within the time budget, else fast."""
        s = self.settings
        if s.mode != "auto":
            return s.mode
        if s.sample:
            return "full"
        return "full" if seconds_per_evaluation * self.planned_evaluations("full") <= s.time_budget else "fast"

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
    def _sweep(self, block: Block, indices: np.ndarray, out: Outcome):
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
            self._finish_entries(block, indices[:done], jp[:done], jm[:done], plus[:done],
                                 minus[:done], divisor[:done], out, confirm=False)
            out.complete = False
            self.evaluations += 2 * done  # the bar already advanced entry by entry
            out.evaluations += 2 * done
            raise Interrupted() from None
        except Exception as exc:  # the user's code raised: say where
            i = idx_l[k]
            step = plus_l[k] - float(x[k])
            where = (f"while {fmt_index(block.name, index_of(block.work.shape, i))} was perturbed "
                     f"by ±{step:.3g}")
            raise EvaluationError(exc, where) from exc
        self.evaluations += 2 * len(indices)
        out.evaluations += 2 * len(indices)
        self._finish_entries(block, indices, jp, jm, plus, minus, divisor, out)

    def _finish_entries(self, block, indices, jp, jm, plus, minus, divisor, out: Outcome,
                        confirm: bool = True):
        """Numeric gradient, non-finite costs and kinks for the entries just swept."""
        num = out.numeric.reshape(-1)
        checked = out.checked.reshape(-1)
        finite = np.isfinite(jp) & np.isfinite(jm)
        num[indices] = np.where(finite, (jp - jm) / divisor, np.nan)
        out.noise.reshape(-1)[indices] = self._noise(divisor)
        checked[indices] = True
        bad = indices[~finite]
        if bad.size:
            first = fmt_index(block.name, index_of(block.work.shape, int(bad[0])))
            out.notes.append(f"cost not finite at θ±ε for {bad.size} entr{'y' if bad.size == 1 else 'ies'} "
                             f"(first {first}): those cannot be verified")
        g = block.comparable
        if g is None or not indices.size:
            return
        gi = g.reshape(-1)[indices]
        err = np.abs(gi - num[indices])
        significant = err > self.settings.threshold * (np.abs(gi) + np.abs(num[indices]))
        if not significant.any():
            return
        x = block.work.reshape(-1)[indices]
        kink = self._kinks(jp, jm, x - minus, plus - x, err, out.noise.reshape(-1)[indices]) & significant
        if kink.any() and confirm:
            kink[kink] = self._confirm_kinks(block, indices[kink], x[kink], plus[kink] - x[kink],
                                             jp[kink] - 2 * self.j0 + jm[kink], out)
        if kink.any():
            if out.kinks is None:
                out.kinks = np.zeros(out.shape, dtype=bool)
            out.kinks.reshape(-1)[indices[kink]] = True

    def _confirm_kinks(self, block, indices, x, h, second, out) -> np.ndarray:
        """Halve the step: where J is smooth the second difference drops fourfold, at a kink it
        halves (or vanishes, when the kink leaves the interval)."""
        flat = block.work.reshape(-1)
        keep = np.zeros(len(indices), dtype=bool)
        for k, i in enumerate(indices.tolist()):
            try:
                flat[i] = x[k] + h[k] / 2
                jp = self.cost()
                flat[i] = x[k] - h[k] / 2
                jm = self.cost()
            finally:
                flat[i] = x[k]
            self._counted(out, 2)
            # second differences scale as h^2 where J is smooth (ratio 1/4), as h at a kink
            ratio = (jp - 2 * self.j0 + jm) / second[k] if second[k] else np.inf
            keep[k] = not 0.2 < ratio < 0.3
        return keep

    def _kinks(self, jp, jm, step_minus, step_plus, err, noise):
        """Non-differentiable points: the two one-sided differences disagree by far more than
        curvature over one step explains.  There the central difference says nothing about the
        analytic gradient (any subgradient is right), so such entries warn and never fail."""
        forward = (jp - self.j0) / step_plus
        backward = (self.j0 - jm) / step_minus
        split = np.abs(forward - backward)
        slope = np.maximum(np.abs(forward), np.abs(backward))
        with np.errstate(invalid="ignore"):
            return (np.isfinite(split) & (err > 100 * noise) & (split > 100 * noise)
                    & (split > KINK_SPLIT * slope))

    def _directional(self, block: Block, out: Outcome, rng: np.random.Generator, exclude=None):
        """Fast mode: compare J(θ±Δ) with the analytic gradient along random ±1 directions Δ
        (scaled like the per-entry step).

        A real gradient error is the same fraction of the signal at any step; kinks crossed
        and curvature shrink with the step.  So a failing probe is repeated with the step
        divided by 8: a steady relative error is kept as a finding, one that moves is
        retried smaller (up to SHRINKS times) and flagged as unsettled if it never steadies.
        Returns per probe analytic, numeric and noise; whether any probe stayed unsettled; and
        the step of the probe that disagreed most (where bisection starts)."""
        __tracebackhide__ = True  # noqa: F841 - IPython hides this frame from tracebacks
        g = block.comparable
        work = block.work
        orig = work.copy()
        k = min(self.settings.probes, work.size)
        noise = NOISE_ULPS * EPS * max(abs(self.j0), TINY)
        floor = noise / FLOOR_REFERENCE
        ana, num, unsettled, worst_step, worst_gap = [], [], False, None, -1.0
        try:
            for _ in range(k):
                v = rng.choice((-1.0, 1.0), size=work.shape)
                if exclude is not None:
                    v[exclude] = 0.0
                if self.settings.epsilon is not None:
                    base = self.settings.epsilon * v
                else:
                    base = AUTO_STEP * np.maximum(np.abs(orig), 1.0) * v
                previous = None
                for shrink in range(SHRINKS + 1):
                    a, n = self._probe(g, orig, work, base / 8.0 ** shrink, out)
                    rel = abs(a - n) / max(abs(a) + abs(n), floor)
                    if not np.isfinite(n) or rel <= self.settings.threshold or self.settings.epsilon is not None:
                        break
                    if previous is not None and 0.5 < rel / previous < 2.0:
                        break  # the same fraction at a smaller step: a real discrepancy
                    previous = rel
                else:
                    unsettled = True
                if worst_step is None or abs(a - n) > worst_gap:
                    worst_step, worst_gap = base / 8.0 ** shrink, abs(a - n)
                ana.append(a)
                num.append(n)
        except KeyboardInterrupt:
            out.complete = False
            raise Interrupted() from None
        except Exception as exc:
            raise EvaluationError(exc, f"while {block.name} was perturbed along a random direction") from exc
        finally:
            work[...] = orig
        out.directional = (np.array(ana), np.array(num))
        return np.array(ana), np.array(num), np.full(k, noise), unsettled, worst_step

    def _bisect(self, block: Block, out: Outcome, delta: np.ndarray, rng: np.random.Generator) -> int:
        """The entry carrying most of a probe's discrepancy: probe each half of the entries along
        the same step and follow the half whose analytic and numeric disagree more.  About
        2·log2(n) evaluations, and never a full sweep."""
        g, work = block.comparable, block.work
        orig = work.copy()
        flat_delta = delta.reshape(-1)
        idx = rng.permutation(np.flatnonzero(flat_delta))
        try:
            while idx.size > 1:
                halves = (idx[: idx.size // 2], idx[idx.size // 2:])
                gaps = []
                for half in halves:
                    part = np.zeros(work.size)
                    part[half] = flat_delta[half]
                    a, n = self._probe(g, orig, work, part.reshape(work.shape), out)
                    gaps.append(abs(a - n))
                idx = halves[int(np.argmax(gaps))]
        except KeyboardInterrupt:
            out.complete = False
            raise Interrupted() from None
        finally:
            work[...] = orig
        return int(idx[0])

    def _probe(self, g, orig, work, delta, out):
        """(g·Δ, (J(θ+Δ) − J(θ−Δ))/2) with the steps actually representable."""
        np.add(orig, delta, out=work)
        step_plus = work - orig
        jp = self.cost()
        np.subtract(orig, delta, out=work)
        step_minus = orig - work
        jm = self.cost()
        work[...] = orig
        self._counted(out, 2)
        return float(np.sum(g * (step_plus + step_minus))) / 2.0, (jp - jm) / 2.0

    # ---- per block --------------------------------------------------------
    def _stats(self, out: Outcome, g: np.ndarray, a: np.ndarray, noise: np.ndarray):
        """Relative error (with its noise floor), max abs error and worst entry."""
        mask = np.isfinite(a)
        if not mask.any():
            return
        diff = np.where(mask, g - a, 0.0)
        ng, na = _norm(g[mask]), _norm(a[mask])
        floor = _norm(noise[mask]) / FLOOR_REFERENCE
        denom = ng + na
        if denom < floor:
            out.notes.append(f"near-zero gradient (‖grad‖+‖approx‖ = {denom:.1e}): "
                             f"error measured against the round-off floor {floor:.1e}")
            denom = floor
        num = _norm(diff)
        out.rel_error = float(num / denom) if denom > 0 else 0.0
        absdiff = np.abs(diff)
        out.max_abs_error = float(absdiff.max())
        out.worst_index = index_of(out.shape, int(np.argmax(absdiff.reshape(-1))))

    def _finish_block(self, block: Block, out: Outcome):
        g = block.comparable
        if g is not None and out.checked.any():
            use = out.checked if out.kinks is None else out.checked & ~out.kinks
            a = np.where(use, out.numeric, np.nan)
            self._stats(out, np.where(use, g, 0.0), a, out.noise)
        self._grade(block, out)

    def _grade(self, block: Block, out: Outcome):
        s = self.settings
        if block.fatal:
            out.status = "fail"
            return
        out.status = verdict(out.rel_error, s)
        unverifiable = out.checked & ~np.isfinite(out.numeric)
        if unverifiable.any() and out.status == "pass":
            out.status = "warn"
        if np.isnan(out.rel_error) and unverifiable.any():
            out.status = "warn"  # nothing could be verified: not a pass, not a proven bug
        if out.kinks is not None and out.kinks.any():
            n = int(out.kinks.sum())
            first = fmt_index(out.name, index_of(out.shape, int(np.argmax(out.kinks.reshape(-1)))))
            if out.status == "pass" or np.isnan(out.rel_error):
                out.status = "warn"
            out.notes.insert(0, f"non-differentiable point at {first}"
                                f"{f' (+{n - 1} more)' if n > 1 else ''}: the central difference "
                                "straddles a kink (the one-sided differences disagree), so "
                                f"{'that entry is' if n == 1 else 'those entries are'} not judged")
        if not out.complete:
            out.notes.insert(0, "incomplete: interrupted")
            if out.status == "pass":
                out.status = "warn"

    def _new_outcome(self, block: Block) -> Outcome:
        shape = block.work.shape
        return Outcome(name=block.name, shape=shape, numeric=np.full(shape, np.nan), noise=np.full(shape, np.nan),
                       analytic=block.comparable, checked=np.zeros(shape, dtype=bool),
                       notes=list(block.notes) + ([block.fatal] if block.fatal else []))

    def _rng(self, block: Block) -> np.random.Generator:
        return np.random.default_rng([self.settings.seed, zlib.crc32(block.name.encode())])

    def check_block(self, block: Block, mode: str) -> Outcome:
        __tracebackhide__ = True  # noqa: F841 - IPython hides this frame from tracebacks
        out = self._new_outcome(block)
        n = block.work.size
        if block.analytic is None:
            self._grade(block, out)
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
        except Interrupted as stop:
            self._grade(block, out)
            stop.outcome = out
            raise

    def _probe_error(self, ana, num, noise, notes=None) -> float:
        probe = Outcome(name="", shape=ana.shape, numeric=num, analytic=ana, checked=np.ones(ana.shape, bool))
        self._stats(probe, ana, np.where(np.isfinite(num), num, np.nan), noise)
        if notes is not None:
            notes.extend(probe.notes)
        return probe.rel_error

    def _fast_block(self, block: Block, out: Outcome):
        """Directional probes decide; a failing block is then localized, never fully swept.

        Localizing: sampled entries plus the entry that bisection finds carrying the probe's
        discrepancy.  Then: a small block has been differenced in full, which decides.  If
        kinks were found and the probes agree once they are left out, the kinks explain it
        (warn).  If kinks remain possible (found, or an error that moved with the step), a
        wider sample decides, at best a warning.  Otherwise the steady directional error is a
        real one and the block fails."""
        __tracebackhide__ = True  # noqa: F841 - IPython hides this frame from tracebacks
        rng = self._rng(block)
        n = block.work.size
        with self._interruptible(block, out):
            ana, num, noise, unsettled, worst_step = self._directional(block, out, rng)
        finite = np.isfinite(num)
        out.rel_error = self._probe_error(ana, num, noise, out.notes)
        if not finite.all():
            out.notes.append("cost not finite along a probe direction: cannot be verified")
        if verdict(out.rel_error, self.settings) == "pass" and finite.all():
            self._grade(block, out)
            return
        indices = self._localize_indices(block, rng)
        case = "directional"
        with self._interruptible(block, out):
            if indices.size < n and finite.all() and not unsettled:
                indices = np.union1d(indices, [self._bisect(block, out, worst_step, rng)])
            self._sweep(block, indices, out)
            kinks = out.kinks is not None and out.kinks.any()
            if indices.size == n:
                case = "full"
            elif kinks or unsettled:
                if kinks:
                    ana2, num2, noise2, _, _ = self._directional(block, out, rng, exclude=out.kinks)
                    without = self._probe_error(ana2, num2, noise2)
                    out.notes.append(f"probes without the kinks found: relative error {without:.1e}")
                    if verdict(without, self.settings) == "pass":
                        case, out.rel_error = "kinks", without
                if case == "directional":
                    wider = np.setdiff1d(np.arange(n), indices)
                    wider = np.sort(rng.choice(wider, min(KINK_SAMPLE, wider.size), replace=False))
                    self._sweep(block, wider, out)
                    indices = np.union1d(indices, wider)
                    case = "sampled"
        use = out.checked & np.isfinite(out.numeric)
        if out.kinks is not None:
            use &= ~out.kinks
        g = block.comparable
        if use.any():
            err = np.where(use, np.abs(g - np.where(use, out.numeric, 0.0)), -1.0)
            out.max_abs_error = float(err.max())
            out.worst_index = index_of(out.shape, int(np.argmax(err.reshape(-1))))
        sampled = Outcome(name=block.name, shape=out.shape, numeric=out.numeric, analytic=g, checked=use)
        self._stats(sampled, np.where(use, g, 0.0), np.where(use, out.numeric, np.nan), out.noise)
        if case == "full":
            out.notes.append(f"fast mode: {len(ana)} random directions failed, so every entry was checked")
            out.rel_error = sampled.rel_error
        elif case == "kinks":
            out.notes.append("fast mode: the directional error comes from the kinks")
        elif case == "sampled":
            out.notes.append(f"fast mode: the directional error ({out.rel_error:.1e}) may come from kinks; "
                             f"{indices.size} sampled entries decide")
            out.rel_error = sampled.rel_error
        else:
            out.notes.append(f"fast mode: {len(ana)} random directions; worst of {indices.size} sampled "
                             "entries shown")
        self._grade(block, out)
        if out.status == "pass" and (case in ("kinks", "sampled") or not finite.all()):
            out.status = "warn"

    def _localize_indices(self, block: Block, rng: np.random.Generator) -> np.ndarray:
        """Entries to difference in full: the largest analytic gradients and random ones."""
        n = block.work.size
        k = min(self.settings.localize, n)
        g = block.comparable.reshape(-1)
        top = np.argsort(-np.abs(g), kind="stable")[: k // 2]
        rest = np.setdiff1d(np.arange(n), top)
        extra = rng.choice(rest, min(k - top.size, rest.size), replace=False) if rest.size else rest
        return np.sort(np.concatenate([top, extra]).astype(np.intp))

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
        sel = out.checked & np.isfinite(out.numeric)
        gs.append(out.analytic[sel])
        ns.append(out.numeric[sel])
    if not gs:
        return float("nan")
    g, a = np.concatenate(gs), np.concatenate(ns)
    denom = np.linalg.norm(g) + np.linalg.norm(a)
    return float(np.linalg.norm(g - a) / denom) if denom > 0 else 0.0
