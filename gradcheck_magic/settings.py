"""The settings validation: one ``Settings`` object and the one place that says which values are valid.

Every way of setting a value (the magic's flags, ``%gradcheck_config``, ``%config GradCheck.x``,
``ipython_config.py`` and the script API) goes through :func:`validated`, so a value refused in one
place is refused in all of them, with the same one-line message.  The step rule that needs the
parameters' values (:func:`step_problem`) lives here too, beside the rest of the epsilon rule.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass
from typing import Optional

import numpy as np

from .errors import GradCheckError

MODES = ("auto", "full", "fast")
EPS = float(np.finfo(np.float64).eps)
#: A fixed step is refused when the cost's round-off over the step exceeds this share of
#: ``fail_threshold`` times the gradient's root-mean-square: a failing error could then hide in the noise.
STEP_NOISE_SHARE = 1.0


@dataclass
class Settings:
    """Knobs of one check; build it with :func:`validated` (the magic and the script API do)."""

    epsilon: Optional[float] = None  # None: step chosen per entry
    threshold: float = 1e-7  # largest relative error that passes
    fail_threshold: float = 1e-5  # above it a block fails
    mode: str = "auto"
    sample: Optional[int] = None  # K random entries per block (full differences)
    probes: int = 4  # random directions per block in fast mode
    localize: int = 32  # entries sampled to localize a fast-mode failure
    seed: int = 0
    time_budget: float = 1.0  # auto: full mode when it should finish within this
    watch: bool = False  # re-run the last check when a cell redefines a function it checked


FIELDS = tuple(f.name for f in dataclasses.fields(Settings))


def suggest(name: str, known) -> str:
    """`` (did you mean threshold?)`` for a misspelt key, else ``""``."""
    close = difflib.get_close_matches(name, list(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _number(key: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise GradCheckError(f"{key} must be a number, not {value!r}")
    return float(value)


def _positive(key: str, value) -> float:
    number = _number(key, value)
    if not (math.isfinite(number) and number > 0):
        raise GradCheckError(f"{key} must be a positive number (and finite), not {value!r}")
    return number


def _whole(key: str, value, minimum: int) -> int:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, np.integer))
        and not (isinstance(value, (float, np.floating)) and float(value).is_integer())
    ):
        raise GradCheckError(f"{key} must be a whole number, not {value!r}")
    if int(value) < minimum:
        raise GradCheckError(f"{key} must be at least {minimum}, not {int(value)}")
    return int(value)


def check_value(key: str, value):
    """One setting on its own: the normalised value, or a GradCheckError naming the key and the fix."""
    if key not in FIELDS:
        raise GradCheckError(f"unknown setting {key!r}{suggest(key, FIELDS)}; settings: {', '.join(FIELDS)}")
    if key == "epsilon":
        return None if value is None else _positive(key, value)
    if key in ("threshold", "fail_threshold", "time_budget"):
        return _positive(key, value)
    if key == "mode":
        if not isinstance(value, str) or value.lower() not in MODES:
            raise GradCheckError(f"mode must be one of {', '.join(MODES)}, not {value!r}")
        return value.lower()
    if key == "watch":
        if not isinstance(value, (bool, np.bool_)):
            raise GradCheckError(f"watch must be on or off (True or False), not {value!r}")
        return bool(value)
    if key == "sample":
        return None if value is None or value == 0 else _whole(key, value, 1)
    if key in ("probes", "localize"):
        return _whole(key, value, 1)
    return _whole(key, value, 0)  # seed


def check_pair(threshold: float, fail_threshold: float) -> None:
    """The two thresholds together: a pass bound above the fail bound makes no sense."""
    if threshold > fail_threshold:
        raise GradCheckError(
            f"threshold ({threshold:g}) must not exceed fail_threshold ({fail_threshold:g}): "
            f"raise fail_threshold too, or choose a smaller threshold"
        )


def validated(base: Optional[Settings] = None, **changes) -> Settings:
    """A new Settings from ``base`` with ``changes``, every value and the pair checked."""
    base = base if base is not None else Settings()
    values = {key: getattr(base, key) for key in FIELDS}
    for key, value in changes.items():
        values[key] = check_value(key, value)
    for key in FIELDS:
        if key not in changes:
            values[key] = check_value(key, values[key])
    check_pair(values["threshold"], values["fail_threshold"])
    return Settings(**values)


def step_problem(epsilon: Optional[float], fail_threshold: float, j0: float, blocks: list) -> Optional[str]:
    """Why a fixed step ``epsilon`` cannot tell a right gradient from a wrong one here, or None.

    Two ways: θ±ε rounds back to θ for some entry (the step does not move it), or the cost's own
    round-off divided by the step, ``eps·|J|/ε``, exceeds ``STEP_NOISE_SHARE·fail_threshold`` of the
    gradient's typical size (every difference would then be noise, and noise is never counted as an
    error, so a wrong gradient would pass)."""
    if epsilon is None:
        return None
    for block in blocks:
        values = block.work
        stuck = (values + epsilon == values) | (values - epsilon == values)
        if stuck.any():
            where = np.unravel_index(int(np.argmax(stuck)), values.shape) if values.ndim else ()
            value = float(values[where])
            return (
                f"epsilon {epsilon:g} does not move {block.name}{list(where) if where else ''} "
                f"(value {value:.3g}, "
                f"float64 spacing {float(np.spacing(abs(value))):.2g}): the step cannot be seen; "
                f"{_STEP_FIX}"
            )
    analytic = [b.comparable.reshape(-1) for b in blocks if b.comparable is not None]
    if not analytic:
        return None
    slope = float(np.sqrt(np.mean(np.concatenate(analytic) ** 2)))
    noise = EPS * abs(j0) / (2.0 * epsilon)
    if noise > STEP_NOISE_SHARE * fail_threshold * slope:
        return (
            f"epsilon {epsilon:g} is too small for this cost: its round-off over the step ({noise:.2g}) "
            f"hides errors in gradients of size {slope:.2g}; {_STEP_FIX}"
        )
    return None


_STEP_FIX = "use -e 1e-7 (the homework's) or leave epsilon unset for a per-entry step"
