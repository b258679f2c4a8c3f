"""A Braille-dot canvas: 2x4 dots per character cell, for scatter plots and small line charts.

Each dot can carry a value (e.g. a property of the architecture it stands for); a cell's value is
the mean of its dots' values, and the panel colours the cell by it (or, without colour, prints
the value's level as a digit). Dots can also carry a layer (zero line, band, median), and a cell
takes the highest layer drawn in it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

# Bit of each dot in a Braille cell, by (column 0..1, row 0..3).
_BITS = np.array([[0x01, 0x02, 0x04, 0x40], [0x08, 0x10, 0x20, 0x80]], dtype=np.uint8)
BLANK = chr(0x2800)


@dataclass(frozen=True)
class Cell:
    """One character of a drawn canvas."""

    char: str
    value: float | None  # mean value of the dots in it (None: no valued dot)
    layer: int  # highest layer drawn in it (0: nothing)


class Canvas:
    """``width`` x ``height`` character cells: ``2 * width`` x ``4 * height`` dots, y downwards."""

    def __init__(self, width: int, height: int):
        self.width, self.height = max(1, width), max(1, height)
        self.bits = np.zeros((self.height, self.width), dtype=np.uint8)
        self.sums = np.zeros((self.height, self.width))
        self.counts = np.zeros((self.height, self.width), dtype=np.int64)
        self.layers = np.zeros((self.height, self.width), dtype=np.int64)

    @property
    def dots_x(self) -> int:
        return 2 * self.width

    @property
    def dots_y(self) -> int:
        return 4 * self.height

    def dot(self, x: int, y: int, value: float | None = None, layer: int = 1) -> None:
        """Set the dot at (x, y); values outside the canvas are ignored."""
        if not (0 <= x < self.dots_x and 0 <= y < self.dots_y):
            return
        row, col = y // 4, x // 2
        self.bits[row, col] |= _BITS[x % 2, y % 4]
        self.layers[row, col] = max(self.layers[row, col], layer)
        if value is not None and math.isfinite(value):
            self.sums[row, col] += value
            self.counts[row, col] += 1

    def points(self, xs: np.ndarray, ys: np.ndarray, values: np.ndarray | None = None, layer: int = 1) -> None:
        """Dots at many (x, y) positions at once (integer dot coordinates)."""
        xs, ys = np.asarray(xs, dtype=np.int64), np.asarray(ys, dtype=np.int64)
        inside = (xs >= 0) & (xs < self.dots_x) & (ys >= 0) & (ys < self.dots_y)
        xs, ys = xs[inside], ys[inside]
        rows, cols = ys // 4, xs // 2
        np.bitwise_or.at(self.bits, (rows, cols), _BITS[xs % 2, ys % 4])
        np.maximum.at(self.layers, (rows, cols), layer)
        if values is not None:
            values = np.asarray(values, dtype=np.float64)[inside]
            ok = np.isfinite(values)
            np.add.at(self.sums, (rows[ok], cols[ok]), values[ok])
            np.add.at(self.counts, (rows[ok], cols[ok]), 1)

    def hline(self, y: int, layer: int = 1, dashed: bool = True) -> None:
        """A horizontal line at dot row ``y`` (every other dot when ``dashed``)."""
        for x in range(0, self.dots_x, 2 if dashed else 1):
            self.dot(x, y, layer=layer)

    def vspan(self, x: int, y0: int, y1: int, layer: int = 1) -> None:
        """A vertical run of dots in column ``x`` from row ``y0`` to ``y1`` (inclusive, any order)."""
        for y in range(min(y0, y1), max(y0, y1) + 1):
            self.dot(x, y, layer=layer)

    def line(self, x0: int, y0: int, x1: int, y1: int, layer: int = 1) -> None:
        """A straight line of dots between two points."""
        steps = max(abs(x1 - x0), abs(y1 - y0), 1)
        for i in range(steps + 1):
            self.dot(round(x0 + (x1 - x0) * i / steps), round(y0 + (y1 - y0) * i / steps), layer=layer)

    def rows(self) -> list[list[Cell]]:
        """The drawn cells, top row first."""
        out = []
        for r in range(self.height):
            row = []
            for c in range(self.width):
                count = int(self.counts[r, c])
                value = float(self.sums[r, c] / count) if count else None
                row.append(Cell(chr(0x2800 + int(self.bits[r, c])), value, int(self.layers[r, c])))
            out.append(row)
        return out


def scale(values: np.ndarray, lo: float, hi: float, dots: int, flip: bool = False) -> np.ndarray:
    """Dot coordinates (0..dots-1) of values on [lo, hi]; ``flip`` puts hi at 0 (the top row)."""
    values = np.asarray(values, dtype=np.float64)
    span = hi - lo if hi > lo else 1.0
    pos = np.clip((values - lo) / span, 0.0, 1.0) * (dots - 1)
    pos = np.where(np.isfinite(pos), pos, -1)
    out = np.rint(pos).astype(np.int64)
    return np.where(out < 0, -1, (dots - 1 - out) if flip else out)
