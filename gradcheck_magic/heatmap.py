"""The drill-down's picture: per-entry relative error of one block as a PNG data URI.

The colour scale is fixed and anchored to the verdict's own bounds, so colours mean the same in
every block: green up to ``threshold``, amber up to ``fail_threshold``, red above.  A cell's value
is its entry's share of the block's relative error, ``|analytic − numeric|`` over the block's
``‖analytic‖ + ‖numeric‖`` (rescaled so the squares sum to the table's ``rel_error``): no entry
exceeds the block's own error, so a passing block is never red, and the brightest cell is the
table's ``worst_index``.  Kinks (not judged) are striped and entries whose difference was not
finite are checkered.  A PNG in an <img> survives untrusted notebooks and static renderers, and is
encoded by Pillow (deterministic, no plotting import).
"""

from __future__ import annotations

import base64
import functools
import io
import math
from dataclasses import dataclass

import numpy as np

from .palette import AMBER, GREEN, KINK, RED, UNVERIFIABLE

#: the picture holds at most this many cells per side; larger blocks pool entries (max per cell)
MAX_CELLS_PER_SIDE = 160
#: target width of the picture and the bounds of one cell's side, in pixels
TARGET_PIXELS = 480
MIN_CELL_PIXELS, MAX_CELL_PIXELS = 3, 20
#: errors this many decades under ``threshold`` get the palest green
GREEN_DECADES = 6
#: alpha ranges inside each band: translucent, so near-zero cells tint the page's background
GREEN_ALPHA = (0.22, 0.55)
AMBER_ALPHA = (0.65, 0.9)
RED_ALPHA = (0.8, 1.0)
#: the marker around the worst entry: a dark ring with a light ring inside, visible on any theme
MARKER_OUTER, MARKER_INNER = (17, 17, 17, 255), (255, 255, 255, 255)


@dataclass
class Picture:
    """A block's heatmap: the PNG and what a reader needs to interpret it."""

    data_uri: str
    width: int  # pixels
    height: int
    grid: tuple  # (rows, columns) of entries in the 2-D view of the block
    pooled: tuple  # (rows, columns) of entries per cell
    worst: tuple | None  # (row, column) of the worst entry in the 2-D view


def as_2d(a: np.ndarray) -> np.ndarray:
    """A scalar is 1×1, a vector one row, an n-d array its first axis by the rest (C order)."""
    if a.ndim == 0:
        return a.reshape(1, 1)
    if a.ndim == 1:
        return a.reshape(1, -1)
    return a.reshape(a.shape[0], -1)


def entry_errors(outcome) -> np.ndarray | None:
    """Each entry's share of the block's relative error (NaN where not judged); None without entry data."""
    analytic = outcome.analytic
    if analytic is None or analytic.shape != outcome.numeric.shape or not outcome.checked.any():
        return None
    judged = outcome.judged
    diff = np.where(judged, np.abs(analytic - np.where(judged, outcome.numeric, 0.0)), 0.0)
    norm = math.sqrt(float((diff * diff).sum()))
    rel = float(outcome.rel_error)
    if math.isfinite(rel):
        scale = rel / norm if norm > 0 else 0.0
    else:  # not graded (a hand-built outcome): the plain ratio to the block's norms
        size = math.sqrt(float((analytic[judged] ** 2).sum())) + math.sqrt(
            float((outcome.numeric[judged] ** 2).sum())
        )
        scale = 1 / size if size > 0 else 0.0
    return np.where(judged, diff * scale, np.nan)


def colour_of(error: np.ndarray, threshold: float, fail_threshold: float) -> np.ndarray:
    """RGBA (uint8) of finite errors on the fixed scale."""
    with np.errstate(divide="ignore"):
        decades = np.log10(np.maximum(error, 1e-300))
    low, mid, high = math.log10(threshold) - GREEN_DECADES, math.log10(threshold), math.log10(fail_threshold)
    top = max(high + 1, 0.0)  # relative errors rarely exceed 1

    def ramp(lo, hi, alphas):
        t = np.clip((decades - lo) / max(hi - lo, 1e-12), 0, 1)
        return alphas[0] + t * (alphas[1] - alphas[0])

    rgba = np.zeros(error.shape + (4,))
    bands = [
        (error <= threshold, GREEN, ramp(low, mid, GREEN_ALPHA)),
        ((error > threshold) & (error <= fail_threshold), AMBER, ramp(mid, high, AMBER_ALPHA)),
        (error > fail_threshold, RED, ramp(high, top, RED_ALPHA)),
    ]
    for mask, rgb, alpha in bands:
        rgba[mask, :3] = rgb
        rgba[mask, 3] = (alpha * 255)[mask]
    return rgba.astype(np.uint8)


def _pool(values: np.ndarray, rows: int, cols: int, fill, reduce) -> np.ndarray:
    """Reduce blocks of rows×cols entries (the edges padded with ``fill``)."""
    r, c = values.shape
    padded = np.full((-(-r // rows) * rows, -(-c // cols) * cols), fill, dtype=values.dtype)
    padded[:r, :c] = values
    shaped = padded.reshape(padded.shape[0] // rows, rows, padded.shape[1] // cols, cols)
    return reduce(reduce(shaped, axis=3), axis=1)


def picture(outcome, threshold: float, fail_threshold: float) -> Picture | None:
    """The heatmap of one block, or None when the block has no entry-by-entry data."""
    errors = entry_errors(outcome)
    if errors is None:
        return None
    errors = as_2d(errors)
    grid = errors.shape
    checked = as_2d(outcome.checked)
    kinks = as_2d(outcome.kinks) if outcome.kinks is not None else np.zeros(grid, bool)
    unverifiable = checked & ~as_2d(np.isfinite(outcome.numeric))
    pooled = tuple(-(-n // MAX_CELLS_PER_SIDE) for n in grid)
    worst_flat = None
    if outcome.worst_index is not None:
        worst_flat = int(np.ravel_multi_index(outcome.worst_index, outcome.shape)) if outcome.shape else 0
    elif np.isfinite(errors).any():
        worst_flat = int(np.nanargmax(errors))
    worst = divmod(worst_flat, grid[1]) if worst_flat is not None else None

    cell_error = _pool(np.where(np.isnan(errors), -1.0, errors), *pooled, -1.0, np.max)
    cell_kink = _pool(kinks & checked, *pooled, False, np.any)
    cell_unverifiable = _pool(unverifiable & ~kinks, *pooled, False, np.any)
    n_rows, n_cols = cell_error.shape
    side = int(np.clip(TARGET_PIXELS // max(n_cols, 1), MIN_CELL_PIXELS, MAX_CELL_PIXELS))

    rgba = np.zeros((n_rows, n_cols, 4), np.uint8)
    judged = cell_error >= 0
    rgba[judged] = colour_of(cell_error[judged], threshold, fail_threshold)
    image = np.repeat(np.repeat(rgba, side, axis=0), side, axis=1)
    stripes, checker = _patterns(image.shape[:2])

    def enlarged(mask):
        return np.repeat(np.repeat(mask & ~judged, side, axis=0), side, axis=1)

    image[enlarged(cell_kink) & stripes] = (*KINK, 255)
    image[enlarged(cell_unverifiable) & checker] = (*UNVERIFIABLE, 255)
    if worst is not None:
        _mark(image, worst[0] // pooled[0] * side, worst[1] // pooled[1] * side, side)
    height, width = image.shape[:2]
    return Picture(
        "data:image/png;base64," + base64.b64encode(_png(image)).decode("ascii"),
        width,
        height,
        grid,
        pooled,
        worst,
    )


def _patterns(shape) -> tuple:
    """The masks of the kink stripes and the not-finite checkers, in pixels."""
    y, x = np.indices(shape)
    return ((x + y) // 2) % 2 == 0, ((x // 2) + (y // 2)) % 2 == 0


@functools.cache
def swatch(kind: str, side: int = 12) -> str:
    """The legend's swatch of a pattern (``"kink"`` or ``"unverifiable"``) as a PNG data URI: the
    picture's own stripes, which a sanitizer keeps (it drops CSS gradients)."""
    stripes, checker = _patterns((side, side))
    image = np.zeros((side, side, 4), np.uint8)
    if kind == "kink":
        image[stripes] = (*KINK, 255)
    else:
        image[checker] = (*UNVERIFIABLE, 255)
    return "data:image/png;base64," + base64.b64encode(_png(image)).decode("ascii")


def _mark(image: np.ndarray, top: int, left: int, side: int) -> None:
    """Two rings around the cell at (top, left), reaching past it so a 3-pixel cell still shows."""
    height, width = image.shape[:2]
    for pad, colour in ((3, MARKER_OUTER), (2, MARKER_INNER)):
        t, b = max(top - pad, 0), min(top + side + pad, height) - 1
        lft, r = max(left - pad, 0), min(left + side + pad, width) - 1
        image[t, lft : r + 1] = colour
        image[b, lft : r + 1] = colour
        image[t : b + 1, lft] = colour
        image[t : b + 1, r] = colour


def _png(rgba: np.ndarray) -> bytes:
    """An 8-bit RGBA PNG, encoded by Pillow (the same pixels give the same bytes)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(rgba, dtype=np.uint8), mode="RGBA").save(buffer, format="PNG")
    return buffer.getvalue()
