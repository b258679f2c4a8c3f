"""Text drawing for the panels: sparklines, gauges, bands and a diverging colour scale.

Plain functions of numbers to strings and colours, so every panel draws the same way and tests
can check the drawings without running an app. A drawing never carries a value by colour alone;
the panels print the numbers beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from rich.style import Style

SPARK = "▁▂▃▄▅▆▇█"
EIGHTHS = " ▏▎▍▌▋▊▉█"  # horizontal eighth blocks, for gauges


def finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def resample(values: Sequence[float], width: int) -> list[float]:
    """At most ``width`` values: the mean of each of ``width`` equal slices (keeps the shape)."""
    if width <= 0:
        return []
    n = len(values)
    if n <= width:
        return list(values)
    out = []
    for i in range(width):
        lo, hi = i * n // width, max((i + 1) * n // width, i * n // width + 1)
        chunk = finite(values[lo:hi])
        out.append(sum(chunk) / len(chunk) if chunk else float("nan"))
    return out


def sparkline(values: Sequence[float], width: int, lo: float | None = None, hi: float | None = None,
              log: bool = False) -> str:
    """The last values as one line of block heights, scaled to [lo, hi] (default: their range).

    ``log`` scales by the logarithm (perplexities span orders of magnitude). Missing or
    non-finite values are drawn as spaces.
    """
    values = resample(values, width)
    if not values:
        return ""
    shown = [_log(v) if log else v for v in values]
    known = finite(shown)
    if not known:
        return " " * len(values)
    lo = _log(lo) if log and lo is not None else lo
    hi = _log(hi) if log and hi is not None else hi
    lo = min(known) if lo is None else lo
    hi = max(known) if hi is None else hi
    span = hi - lo
    out = []
    for v in shown:
        if v is None or not math.isfinite(v):
            out.append(" ")
        elif span <= 0:
            out.append(SPARK[len(SPARK) // 2])
        else:
            level = (min(max(v, lo), hi) - lo) / span
            out.append(SPARK[min(len(SPARK) - 1, int(level * len(SPARK)))])
    return "".join(out)


def _log(v: float | None) -> float | None:
    """log(v), or None where it is undefined (drawn as a gap)."""
    if v is None or not math.isfinite(v) or v <= 0:
        return None
    return math.log(v)


def gauge(fraction: float, width: int) -> str:
    """A horizontal bar ``width`` cells wide, filled to ``fraction`` in eighths of a cell."""
    if width <= 0:
        return ""
    fraction = 0.0 if not math.isfinite(fraction) else min(max(fraction, 0.0), 1.0)
    eighths = round(fraction * width * 8)
    full, part = divmod(eighths, 8)
    bar = "█" * full + (EIGHTHS[part] if part else "")
    return bar + "░" * (width - len(bar))


def level(p: float) -> str:
    """One cell whose height shows a probability (a space for zero)."""
    if not math.isfinite(p) or p <= 0:
        return " "
    if p < 1 / 16:
        return "·"
    return SPARK[min(len(SPARK) - 1, int(p * len(SPARK)))]


def band(lo: float, mid: float, hi: float, width: int) -> str:
    """A 0..1 axis ``width`` cells wide with [lo, hi] drawn as a band and ``mid`` as a dot."""
    if width <= 0:
        return ""

    def cell(x: float) -> int:
        return min(width - 1, max(0, int(round(x * (width - 1)))))

    chars = ["·"] * width
    a, b, m = cell(lo), cell(hi), cell(mid)
    for i in range(a, b + 1):
        chars[i] = "─"
    chars[a], chars[b] = "├", "┤"
    if a == b:
        chars[a] = "│"
    chars[m] = "●"
    return "".join(chars)


def duration(seconds: float | None) -> str:
    """A short human duration: 45s, 12m05s, 3h20m, 2d04h."""
    if seconds is None or not math.isfinite(seconds):
        return "-"
    s = int(round(max(0.0, seconds)))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 86400}d{s % 86400 // 3600:02d}h"


def pvalue(p: float | None) -> str:
    """A p-value in at most 7 characters."""
    if p is None or not math.isfinite(p):
        return "-"
    if p == 0:
        return "<1e-300"
    if p < 1e-3:
        return f"{p:.0e}"
    return f"{p:.3f}"


# -- colour -------------------------------------------------------------------------------------
# A diverging scale (blue - neutral - red) as in the paper's Fig. 3; the neutral middle is dark so
# near-zero units recede on a dark terminal and solid columns (a collapsed controller) stand out.
_NEG = (33, 102, 172)
_MID = (40, 40, 40)
_POS = (214, 96, 77)
LEVELS = 16  # colour steps per side: enough to see structure, few enough to cache styles


def _blend(step: int) -> tuple[int, int, int]:
    """Colour of level ``step`` in -LEVELS..LEVELS."""
    end, a = (_POS if step > 0 else _NEG), abs(step) / LEVELS
    return tuple(int(round(m + (e - m) * a)) for m, e in zip(_MID, end))  # type: ignore[return-value]


PALETTE: tuple[tuple[int, int, int], ...] = tuple(_blend(step) for step in range(-LEVELS, LEVELS + 1))


def levels(values, scale: float):
    """Palette indices (0..2*LEVELS) of an array of values; non-finite values get the middle."""
    import numpy as np

    values = np.asarray(values, dtype=np.float64)
    if scale <= 0:
        return np.full(values.shape, LEVELS, dtype=np.int64)
    steps = np.rint(np.clip(values / scale, -1.0, 1.0) * LEVELS)
    return np.where(np.isfinite(steps), steps, 0).astype(np.int64) + LEVELS


def diverging(value: float, scale: float) -> tuple[int, int, int]:
    """The colour of ``value`` on a scale symmetric around zero (``scale`` maps to full colour)."""
    if not math.isfinite(value) or scale <= 0:
        return _MID
    return PALETTE[int(levels([value], scale)[0])]


_STYLES: dict[tuple, Style] = {}


def half_block_style(top: tuple[int, int, int], bottom: tuple[int, int, int] | None) -> Style:
    """Style of a '▀' cell: the top pixel is the foreground, the bottom one the background."""
    key = (top, bottom)
    style = _STYLES.get(key)
    if style is None:
        style = Style(color=f"rgb({top[0]},{top[1]},{top[2]})",
                      bgcolor=None if bottom is None else f"rgb({bottom[0]},{bottom[1]},{bottom[2]})")
        _STYLES[key] = style
    return style


SHADES = " ░▒▓█"


def shade(value: float, lo: float, hi: float) -> str:
    """A monochrome cell for ``value`` in [lo, hi] (used when colour is off)."""
    if not math.isfinite(value) or hi <= lo:
        return SHADES[len(SHADES) // 2]
    x = (min(max(value, lo), hi) - lo) / (hi - lo)
    return SHADES[min(len(SHADES) - 1, int(x * len(SHADES)))]

