"""The colours of a verdict, in one place: table rows, heatmap cells and terminal text.

Rows carry both a background and a text colour, so the table reads the same in light and dark
themes (each pair has a WCAG contrast ratio of at least ``MIN_CONTRAST``).  The heatmap's fills are
translucent, so that near-zero errors tint the page's own background instead of glaring white.
"""

from __future__ import annotations

import os

MIN_CONTRAST = 4.5  # WCAG AA for normal text

#: status -> (background, text) of a table row
ROW_COLOURS = {
    "pass": ("#d4edda", "#14532d"),
    "warn": ("#fde9b5", "#6b4e00"),
    "fail": ("#f4c7c3", "#7f1d1d"),
}

#: the drill-down's suspect source lines by rank (most likely first): (background, text); the text
#: colour is always set with the background, so a dark theme's white text never lands on pink
SUSPECT_COLOURS = (("#f4c7c3", "#7f1d1d"), ("#fbe3e1", "#7f1d1d"), ("#fdf1f0", "#7f1d1d"))

#: status -> ANSI SGR code of its word in a colour terminal
ANSI = {"pass": "32", "warn": "33", "fail": "1;31"}

#: heatmap fills, RGB; the alpha grows with the error inside each band
GREEN = (22, 163, 74)
AMBER = (245, 158, 11)
RED = (220, 38, 38)
KINK = (124, 58, 237)  # drawn striped: not judged
UNVERIFIABLE = (107, 114, 128)  # drawn checkered: the difference was not finite


def row_style(status: str) -> str:
    background, text = ROW_COLOURS[status]
    weight = "; font-weight: bold" if status == "fail" else ""
    return f"background-color: {background}; color: {text}{weight}"


def suspect_style(rank: int) -> str:
    background, text = SUSPECT_COLOURS[min(rank, len(SUSPECT_COLOURS) - 1)]
    return f"background-color: {background}; color: {text}"


def relative_luminance(hex_colour: str) -> float:
    channels = [int(hex_colour.lstrip("#")[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast_ratio(first: str, second: str) -> float:
    """WCAG 2 contrast ratio of two ``#rrggbb`` colours (1 to 21)."""
    high, low = sorted((relative_luminance(first), relative_luminance(second)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def colour_terminal(stream) -> bool:
    """Colour only for a terminal: never in pipes or logs, never with NO_COLOR set (no-color.org)."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:  # a closed stream
        return False


def ansi(text: str, status: str) -> str:
    return f"\x1b[{ANSI[status]}m{text}\x1b[0m"
