"""The orchestrator: chooses the mode, runs each block through its stage (``Sweep`` for full mode,
``Probes`` for fast mode), hands what they measured to the judge, and stops cleanly on Ctrl-C.

It decides nothing numeric itself: the stages measure, ``judge.verdict`` decides.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Optional

import numpy as np

from ..settings import Settings
from .judge import Evidence, entry_evidence, grade, judge, unreached
from .probes import Probes
from .records import Block, Interrupted, Outcome
from .sweep import Sweep

#: auto mode: a problem of at most this many evaluations is always checked in full, and one of at
#: most time_budget * NOMINAL_EVALUATIONS_PER_SECOND too (a count, never a clock, decides)
AUTO_FULL_EVALUATIONS = 2_000
NOMINAL_EVALUATIONS_PER_SECOND = 20_000


class Engine:
    """Runs the check over blocks; ``cost()`` evaluates J at the current working arrays."""

    def __init__(
        self, blocks, cost: Callable[[], float], settings: Settings, progress=None, j0: Optional[float] = None
    ):
        self.blocks = blocks
        self.settings = settings
        self.j0 = cost() if j0 is None else j0
        self.sweep = Sweep(cost, settings, self.j0, progress)
        self.probes = Probes(self.sweep)

    @property
    def cost(self) -> Callable[[], float]:
        return self.sweep.cost

    @property
    def progress(self):
        """Called with the number of evaluations just made; settable after construction."""
        return self.sweep.progress

    @progress.setter
    def progress(self, tick) -> None:
        self.sweep.progress = tick

    @property
    def evaluations(self) -> int:
        """Evaluations of the cost made so far, by every stage."""
        return self.sweep.evaluations

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

    def _new_outcome(self, block: Block) -> Outcome:
        shape = block.work.shape
        return Outcome(
            name=block.name,
            shape=shape,
            numeric=Outcome.unmeasured(shape),  # arrays of their own once an entry is differenced
            noise=Outcome.unmeasured(shape),
            analytic=block.comparable,
            checked=Outcome.unchecked(shape),
            notes=list(block.notes) + ([block.fatal] if block.fatal else []),
        )

    def _rng(self, block: Block) -> np.random.Generator:
        return np.random.default_rng([self.settings.seed, zlib.crc32(block.name.encode())])

    def check_block(self, block: Block, mode: str) -> Outcome:
        __tracebackhide__ = True  # noqa: F841 - IPython hides this frame from tracebacks
        out = self._new_outcome(block)
        n = block.work.size
        if block.analytic is None:
            grade(block, out, self.settings, self.j0)
            return out
        if n == 0 and block.comparable is not None:  # an empty parameter (0, 3): nothing to compare
            out.notes.append(f"empty {out.shape}: no entries, nothing to check")
            judge(out, Evidence(rel_error=float("nan"), empty=True), self.settings, self.j0)
            return out
        if mode == "fast" and block.comparable is not None:
            self.probes.check(block, out, self._rng(block))
            return out
        # a wrong-shaped gradient in fast mode: a sample is enough for the shape hint
        sample = self.settings.localize if mode == "fast" else self.settings.sample
        if sample and sample < n:
            indices = np.sort(self._rng(block).choice(n, sample, replace=False))
            out.notes.append(f"sampled {sample} of {n} entries")
        else:
            indices = np.arange(n, dtype=np.int32 if n < 2**31 else np.intp)  # half the memory of intp
        if block.comparable is None and block.analytic.size != n:
            grade(block, out, self.settings, self.j0)  # wrong size: nothing numeric would help the diagnosis
            return out
        try:
            self.sweep.sweep(block, indices, out)
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
                judge(out, entry_evidence(block, out, self.settings), self.settings, self.j0)
            else:
                grade(block, out, self.settings, self.j0)
        return out

    def run(self, mode: str):
        """Check every block; returns (outcomes, interrupted)."""
        __tracebackhide__ = True  # noqa: F841 - IPython hides this frame from tracebacks
        outcomes = []
        interrupted = False
        for block in self.blocks:
            if interrupted:
                out = self._new_outcome(block)
                unreached(block, out, self.settings)
                outcomes.append(out)
                continue
            try:
                out = self.check_block(block, mode)
            except Interrupted as stop:
                interrupted = True
                out = stop.outcome
            out.noise = None  # judged: its evidence keeps what the verdict needs, and nothing else reads it
            outcomes.append(out)
        return outcomes, interrupted
