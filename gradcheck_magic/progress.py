"""A progress bar with an ETA for long checks (tqdm: a widget in notebooks, text in a terminal).

A check expected to take under ``MIN_SECONDS`` shows no bar at all.
"""
from __future__ import annotations

MIN_SECONDS = 1.0


class Bar:
    """A tick(n) callable over a tqdm bar; ``close()`` removes it."""

    def __init__(self, total: int):
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, unit="eval", desc="gradcheck", leave=False, mininterval=0.2)
        self.update = self._bar.update

    def __call__(self, n: int) -> None:
        self.update(n)

    def close(self) -> None:
        self._bar.close()


def progress_factory(enabled: bool = True, min_seconds: float = MIN_SECONDS):
    """For ``gradcheck(progress=...)``: a bar only when the estimate exceeds ``min_seconds``."""
    def start(total: int, estimated_seconds: float):
        if not enabled or estimated_seconds < min_seconds or total <= 0:
            return None
        return Bar(total)
    return start
