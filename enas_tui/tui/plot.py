"""Text drawing for the panels: sparklines, gauges, bands, axes and the colour scales.

Plain functions of numbers to strings and colours, so every panel draws the same way and tests
can check the drawings without running an app. A drawing never carries a value by colour alone;
the panels print the numbers beside it. Sparklines are robust (``spark``): one exploded value is
drawn as an arrow, not allowed to flatten the rest; axis labels are spaced so they never touch
(``ticks``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from rich.style import Style

SPARK = "▁▂▃▄▅▆▇█"
EIGHTHS = " ▏▎▍▌▋▊▉█"  # horizontal eighth blocks, for gauges


def finite(values: Sequence[float]) -> list[float]:
    return [v for v in values if v is not None and math.isfinite(v)]


def sparkline(values: Sequence[float], width: int, lo: float | None = None, hi: float | None = None,
              log: bool = False) -> str:
    """The last values as one line of block heights, scaled to [lo, hi] (default: their range).

    ``log`` scales by the logarithm (perplexities span orders of magnitude). Missing or
    non-finite values are drawn as spaces.
    """
    return spark(values, width, lo, hi, log=log, robust=False).text


@dataclass(frozen=True)
class Spark:
    """A drawn sparkline: its cells, how many were clipped, and the range they are scaled to."""

    text: str
    clipped: int  # cells holding a value outside [lo, hi], drawn as CLIP_HIGH / CLIP_LOW
    lo: float | None  # the range, in the values' own units (not logged)
    hi: float | None


CLIP_HIGH, CLIP_LOW = "↑", "↓"


def robust_range(values: Sequence[float], fences: float = 3.0, min_count: int = 8) -> tuple[float, float] | None:
    """The range of the values that are not outliers: those at most ``fences`` interquartile
    ranges outside the quartiles (Tukey's far-out fences). Fewer than ``min_count`` values are
    too few to call any of them an outlier: their full range."""
    known = sorted(finite(values))
    if not known:
        return None
    n = len(known)
    if n < min_count:
        return known[0], known[-1]
    q1, q3 = _quantile(known, 0.25), _quantile(known, 0.75)
    iqr = q3 - q1
    inside = [v for v in known if q1 - fences * iqr <= v <= q3 + fences * iqr]
    return inside[0], inside[-1]


def _quantile(ordered: list[float], q: float) -> float:
    """Linear-interpolation quantile of sorted values."""
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def spark(values: Sequence[float], width: int, lo: float | None = None, hi: float | None = None,
          log: bool = False, robust: bool = True) -> Spark:
    """A sparkline of the last values that one exploded value cannot flatten.

    The values are logged first (``log``), then scaled to [lo, hi]: given, or their robust range
    (``robust``) or full range. Each cell is the mean of its slice of values clipped to that
    range; a cell whose slice held a value beyond it is drawn as an arrow (up or down) instead.
    """
    shown = [_log(v) if log else v for v in values]
    known = finite(shown)
    if width <= 0 or not shown:
        return Spark("", 0, None, None)
    if not known:
        return Spark(" " * min(width, len(shown)), 0, None, None)
    span = robust_range(known) if robust else (min(known), max(known))
    low = _log(lo) if log and lo is not None else lo
    high = _log(hi) if log and hi is not None else hi
    low = span[0] if low is None else low
    high = span[1] if high is None else high
    cells, clipped = [], 0
    n = len(shown)
    count = min(width, n)
    for i in range(count):
        a, b = i * n // count, max((i + 1) * n // count, i * n // count + 1)
        chunk = finite(shown[a:b])
        if not chunk:
            cells.append(" ")
            continue
        over, under = max(chunk) > high + 1e-12, min(chunk) < low - 1e-12
        if over or under:
            clipped += 1
            cells.append(CLIP_HIGH if over else CLIP_LOW)
            continue
        v = sum(chunk) / len(chunk)
        if high - low <= 0:
            cells.append(SPARK[len(SPARK) // 2])
        else:
            level = (min(max(v, low), high) - low) / (high - low)
            cells.append(SPARK[min(len(SPARK) - 1, int(level * len(SPARK)))])
    back = (lambda x: math.exp(x)) if log else (lambda x: x)
    return Spark("".join(cells), clipped, back(low), back(high))


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




# -- a sequential scale (properties of architectures on the embedding map) ------------------------
SEQUENTIAL: tuple[tuple[int, int, int], ...] = (  # dark blue to yellow, as matplotlib's viridis
    (68, 1, 84), (72, 40, 120), (62, 74, 137), (49, 104, 142), (38, 130, 142),
    (31, 158, 137), (53, 183, 121), (109, 205, 89), (180, 222, 44), (253, 231, 37),
)


def sequential_level(value: float, lo: float, hi: float) -> int:
    """The level (0..9) of ``value`` on [lo, hi]: an index into SEQUENTIAL, or the digit shown
    without colour."""
    if not math.isfinite(value) or hi <= lo:
        return len(SEQUENTIAL) // 2
    x = (min(max(value, lo), hi) - lo) / (hi - lo)
    return min(len(SEQUENTIAL) - 1, int(x * len(SEQUENTIAL)))


def rgb(colour: tuple[int, int, int]) -> str:
    return f"rgb({colour[0]},{colour[1]},{colour[2]})"


# -- axes ----------------------------------------------------------------------------------------
NICE_STEPS = (1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 500, 1000, 2000, 5000, 10000)


def tick_step(count: int, cell: int, first: int = 0) -> int:
    """The smallest step in NICE_STEPS whose labels (``first`` .. ``first + count - 1``), each
    ``cell`` characters per position, are at least one space apart."""
    widest = len(str(first + max(0, count - 1)))
    for step in NICE_STEPS:
        if step * cell >= widest + 1:
            return step
    return NICE_STEPS[-1]


def ticks(count: int, cell: int, width: int, first: int = 0) -> str:
    """An axis under ``count`` positions ``cell`` characters wide: a label every few positions,
    at multiples of a nice step, never running into each other ("0    5    10   15   20")."""
    step = tick_step(count, cell, first)
    line = [" "] * max(0, min(width, count * cell))
    marked = [i for i in range(count) if (first + i) % step == 0]
    if marked and marked[0] > 0 and marked[0] * cell >= len(str(first)) + 1:
        marked.insert(0, 0)  # the first position too, where it does not touch the next label
    for i in marked:
        label = str(first + i)
        at = i * cell
        if at + len(label) > len(line):
            break
        line[at: at + len(label)] = label
    return "".join(line)


def runs(cells) -> Text:
    """One Text from (character, style) pairs, consecutive equal styles merged into one span
    (a span per character costs the terminal renderer far more than the drawing itself)."""
    from rich.text import Text

    text = Text()
    chars: list[str] = []
    current = None
    for char, style in cells:
        if style != current and chars:
            text.append("".join(chars), style=current)
            chars = []
        current = style
        chars.append(char)
    if chars:
        text.append("".join(chars), style=current)
    return text
