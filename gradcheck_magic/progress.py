"""A progress bar with an ETA for long checks (tqdm: a widget in notebooks, text in a terminal).

A check expected to take under ``MIN_SECONDS`` shows no bar at all.  When the time left exceeds the
check's time budget and fast mode would be quicker, the bar says so.  However the check ends
(finished, interrupted, raised), the bar disappears: the table below it says how it went.
"""

from __future__ import annotations

import time

MIN_SECONDS = 1.0
#: what the bar says when the check will overrun its time budget
SUGGEST_FAST = "over budget: try -m fast"
#: short enough that the bar, the time left and the hint fit 80 columns (tqdm sizes the bar to the rest)
BAR_FORMAT = "{desc} {percentage:3.0f}%|{bar}| {remaining} left{postfix}"
#: in a notebook the hint must not wrap after its hyphen ("try -" / "m fast"): a word joiner holds it
NOTEBOOK_HINT = SUGGEST_FAST.replace("-m", "-\u2060m")
#: what a notebook bar's display holds once the bar closes: nothing to see, nothing for nbconvert to warn of
EMPTIED = {"text/plain": "", "text/html": ""}
#: the live ETA is re-estimated after this fraction of the planned evaluations
REESTIMATE_EVERY = 0.01


def fast_would_help(mode: str | None) -> bool:
    """Suggesting ``-m fast`` helps unless the check already runs in fast mode."""
    return mode != "fast"


class Bar:
    """A tick(n) callable over a tqdm bar; ``close()`` removes it."""

    def __init__(
        self,
        total: int,
        estimated_seconds: float = 0.0,
        budget: float | None = None,
        suggest_fast: bool = False,
        clock=time.perf_counter,
    ):
        from tqdm.auto import tqdm

        # in a notebook the bar is shown through a display of ours, emptied when the bar closes: tqdm's
        # own display would leave its widget view in the saved notebook, which reopened without the
        # kernel shows ipywidgets' "Error displaying widget: model not found" under the check
        notebook = any(c.__module__ == "tqdm.notebook" for c in tqdm.__mro__)
        self._bar = tqdm(
            total=total,
            unit="eval",
            desc="gradcheck",
            leave=False,
            mininterval=0.2,
            bar_format=BAR_FORMAT,
            dynamic_ncols=True,
            **({"display": False} if notebook else {}),
        )
        self._handle = None
        if notebook:
            from IPython.display import display

            self._handle = display(self._bar.container, display_id=True)
        self._budget = budget
        self._suggest = suggest_fast and budget is not None
        self._clock = clock
        self._started = clock()
        self._next_estimate = max(int(total * REESTIMATE_EVERY), 1)
        self.suggested = False
        if self._suggest and estimated_seconds > budget:
            self._suggest_fast()

    def __call__(self, n: int) -> None:
        self._bar.update(n)
        if self._suggest and not self.suggested and self._bar.n >= self._next_estimate:
            self._next_estimate += max(int(self._bar.total * REESTIMATE_EVERY), 1)
            elapsed = self._clock() - self._started
            remaining = elapsed / self._bar.n * (self._bar.total - self._bar.n)
            if elapsed + remaining > self._budget:
                self._suggest_fast()

    def _suggest_fast(self) -> None:
        self.suggested = True
        notebook = getattr(self._bar, "container", None) is not None
        self._bar.set_postfix_str(NOTEBOOK_HINT if notebook else SUGGEST_FAST)

    def close(self) -> None:
        """Remove the bar.  tqdm's notebook bar would stay, frozen and red, after an interrupt or
        when a fast check needed fewer evaluations than planned; hide and close its widget."""
        self._bar.close()
        container = getattr(self._bar, "container", None)
        if container is not None:
            container.layout.display = "none"
            container.close()
        if self._handle is not None:  # nothing of the bar is left in the output, live or saved
            self._handle.update(EMPTIED, raw=True)
            self._handle = None


def progress_factory(enabled: bool = True, min_seconds: float = MIN_SECONDS, settings=None):
    """For ``gradcheck(progress=...)``: a bar only when the estimate exceeds ``min_seconds``;
    with ``settings``, the bar suggests fast mode when the check will overrun its time budget."""

    def start(total: int, estimated_seconds: float, mode: str | None = None):
        """``mode``: the one the engine chose (auto resolved), so the hint never contradicts it."""
        if not enabled or estimated_seconds < min_seconds or total <= 0:
            return None
        budget = settings.time_budget if settings is not None else None
        chosen = mode or (settings.mode if settings is not None else None)
        return Bar(total, estimated_seconds, budget, fast_would_help(chosen))

    return start
