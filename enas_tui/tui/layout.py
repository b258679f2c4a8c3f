"""Where each panel goes: columns of panels whose heights follow what each panel needs.

A fixed grid gave panels rows they could not use and took lines from panels that needed them
(at 120x36 Table 1 lost two of its four rows). Instead each panel states, for its width, its
*essential* lines (without them it is useless: all four Table 1 rows), its *full* lines (all it
has; None for no limit) and a *grow* weight. The plan gives every panel of a column its essential
lines first, then the panels of fixed size (weight 0: Table 1, training, the buffer, the best
architecture) their full lines in column order, then shares what is left among the others by
weight, none past its full lines. A panel that does not fit even that way (only in terminals
smaller than 80x24) is left out of the grid and reachable by its zoom key; the app says so.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Need:
    """Content lines a panel wants at some width (not counting its border)."""

    essential: int
    full: int | None  # None: any number of lines is useful
    grow: int = 0  # weight in sharing the lines left over (0: a fixed-size panel)


@dataclass(frozen=True)
class Placement:
    """A panel's box on the screen, border included (``visible`` False: not in the grid)."""

    name: str
    x: int
    y: int
    width: int
    height: int
    visible: bool = True


# Columns of panel names, top to bottom, by terminal width. Panels that belong together sit
# together: the controller's view (probabilities, hidden states, embedding map), the measures
# and the run (Table 1, training, buffer, cell shape, best architecture).
NARROW: tuple[tuple[str, ...], ...] = (
    ("probabilities", "heatmap", "embedding", "shape", "eventlog"),
    ("spearman", "training", "buffer", "architecture"),
)
WIDE: tuple[tuple[str, ...], ...] = (
    ("probabilities", "eventlog"),
    ("heatmap", "embedding", "shape"),
    ("spearman", "training", "buffer", "architecture"),
)
WIDE_FROM = 140  # columns
# Which panel leaves the grid first when a column cannot hold every panel's essential lines.
DROP_ORDER = ("shape", "embedding", "buffer", "eventlog", "architecture", "heatmap", "probabilities",
              "training", "spearman")


def column_widths(width: int, columns: int) -> list[int]:
    """Widths of the columns (the first is narrower in the wide layout: the probability table)."""
    if columns == 3:
        first = max(46, min(60, width * 3 // 10))
        rest = width - first
        return [first, rest // 2, rest - rest // 2]
    half = width // 2
    return [half, width - half]


def plan(width: int, height: int, need: Callable[[str, int], Need], chrome: int,
         inner: Callable[[int], int]) -> list[Placement]:
    """Placements of every panel in a ``width`` x ``height`` area.

    ``need(name, content_width)`` is what a panel asks for; ``chrome`` is the lines its border
    takes; ``inner(outer_width)`` the content width of a panel that wide.
    """
    columns = WIDE if width >= WIDE_FROM else NARROW
    out: list[Placement] = []
    x = 0
    for names, w in zip(columns, column_widths(width, len(columns))):
        needs = {name: need(name, inner(w)) for name in names}
        heights = column_heights(names, needs, height, chrome)
        y = 0
        for name in names:
            h = heights.get(name, 0)
            out.append(Placement(name, x, y, w, h, visible=h > 0))
            y += h
        x += w
    return out


def column_heights(names: Sequence[str], needs: dict[str, Need], height: int, chrome: int,
                   drop_order: Sequence[str] = DROP_ORDER) -> dict[str, int]:
    """Outer heights of one column's panels (0 for a panel left out), summing to ``height``."""
    shown = list(names)
    while shown and sum(needs[n].essential + chrome for n in shown) > height:
        shown.remove(min(shown, key=lambda n: drop_order.index(n) if n in drop_order else -1))
    if not shown:
        return {}
    heights = {n: needs[n].essential + chrome for n in shown}
    spare = height - sum(heights.values())
    for n in shown:  # fixed-size panels: everything they have, in column order
        if needs[n].grow == 0 and needs[n].full is not None:
            more = min(spare, needs[n].full + chrome - heights[n])
            if more > 0:
                heights[n] += more
                spare -= more
    growers = [n for n in shown if needs[n].grow > 0]
    while spare > 0 and growers:
        room = {n: None if needs[n].full is None else needs[n].full + chrome - heights[n] for n in growers}
        growers = [n for n in growers if room[n] is None or room[n] > 0]
        if not growers:
            break
        total = sum(needs[n].grow for n in growers)
        given = 0
        for n in growers:
            share = max(1, spare * needs[n].grow // total) if given < spare else 0
            if room[n] is not None:
                share = min(share, room[n])
            share = min(share, spare - given)
            heights[n] += share
            given += share
        spare -= given
        if given == 0:
            break
    if spare > 0:
        heights[shown[-1]] += spare  # no blank strip under the last panel
    return heights
