"""Panel 9: cell shape over the search (wide and shallow?).

Shu et al. found that cell-based searches drift toward wide, shallow cells. For each probe set
this panel shows the depth (longest path from node 0) and width (number of leaves) of the
sampled cells: the median with its quartiles now, their history over the search, and where
uniform sampling (every controller's starting point) puts them, plus the shape of the derived
cell. With room (or zoomed, key 9) the histories are drawn as bands: the interquartile range
shaded, the median as a line, uniform sampling's median dashed.
"""

from __future__ import annotations

import numpy as np
from rich.text import Text

from enas_tui import cell_shape
from enas_tui.search_space import Architecture, ArchitectureError
from enas_tui.tui.braille import Canvas, scale
from enas_tui.tui.layout import Need
from enas_tui.tui.panel import Panel, lines_to_text
from enas_tui.tui.plot import runs, sparkline
from enas_tui.tui.state import DashboardState

LABEL = 6
CHART_ROWS = 4  # Braille rows per quantity when charts are drawn


def verdict(summary: cell_shape.ShapeSummary, reference: cell_shape.ShapeSummary) -> str:
    """How the sampled cells compare with uniform sampling, in words (by the medians)."""
    def word(value: float, ref: float, more: str, less: str) -> str | None:
        return more if value > ref else (less if value < ref else None)

    words = [w for w in (word(summary.width.median, reference.width.median, "wider", "narrower"),
                         word(summary.depth.median, reference.depth.median, "deeper", "shallower")) if w]
    return (", ".join(words) + " than uniform sampling") if words else "as uniform sampling"


class ShapePanel(Panel):
    TITLE = "cell shape (depth, width)"
    PARTS = ("shape", "arch")
    SEARCH_ONLY = "the shape of the cells the controller samples"

    def need(self, width: int) -> Need:
        return Need(essential=2, full=None, grow=1)

    def draw(self, state: DashboardState, width: int, height: int) -> Text:
        summary = state.shape_latest
        if summary is None:
            return Text("no probe yet: the cell shape follows each probe set", style="dim")
        reference = cell_shape.uniform_reference(state.num_nodes)
        lines = [self.row("depth", summary.depth, reference.depth, state.shape_series("depth_median"), width),
                 self.row("width", summary.width, reference.width, state.shape_series("width_median"), width),
                 self.derived(state, width)]
        lines.append(Text(f"n={summary.n}: {verdict(summary, reference)}", style="dim"))
        rows = (height - len(lines) - 3) // 2
        if rows >= 2 and width >= 30 and len(state.shape) >= 2:
            for quantity in cell_shape.QUANTITIES:
                lines += self.chart(state, quantity, reference, width, min(rows, 8))
            lines.append(self.axis(state, width))
        return lines_to_text(lines, height)

    @staticmethod
    def row(name: str, now: cell_shape.Quartiles, ref: cell_shape.Quartiles, history: list[float],
            width: int) -> Text:
        numbers = f"{now.median:>4g} [{now.q25:g}–{now.q75:g}]"
        uniform = f" uniform {ref.median:g} [{ref.q25:g}–{ref.q75:g}]"
        with_ref = LABEL + len(numbers) + len(uniform) <= width
        room = width - LABEL - len(numbers) - 2 - (len(uniform) if with_ref else 0)
        line = Text(f"{name:<{LABEL}}", style="bold") + Text(numbers)
        if room >= 4:
            line.append(" " + sparkline(history, room).ljust(room), style="magenta")
        if with_ref:
            line.append(uniform, style="dim")
        return line

    @staticmethod
    def derived(state: DashboardState, width: int) -> Text:
        text = state.derived_arch or state.best_arch
        if not text:
            return Text("derived cell: none yet", style="dim")
        try:
            arch = Architecture.parse(text)
        except ArchitectureError:
            return Text("derived cell: unreadable", style="red")
        depth, leaves = cell_shape.depth_width(arch)
        when = f" (epoch {state.derived_epoch})" if state.derived_arch and state.derived_epoch else " (best)"
        return Text(f"derived cell{when}: depth {depth}, width {leaves}")

    @staticmethod
    def chart(state: DashboardState, quantity: str, reference: cell_shape.ShapeSummary, width: int,
              rows: int) -> list[Text]:
        """The quantity's median per probe set (line) in its interquartile band (shaded dots)."""
        q25 = np.asarray(state.shape_series(f"{quantity}_q25"))
        med = np.asarray(state.shape_series(f"{quantity}_median"))
        q75 = np.asarray(state.shape_series(f"{quantity}_q75"))
        ref = getattr(reference, quantity).median
        lo = float(min(q25.min(), ref)) - 0.5
        hi = float(max(q75.max(), ref)) + 0.5
        canvas = Canvas(width - LABEL, rows)
        xs = scale(np.arange(len(med)), 0, max(1, len(med) - 1), canvas.dots_x)
        top, mid, bottom = (scale(v, lo, hi, canvas.dots_y, flip=True) for v in (q75, med, q25))
        canvas.hline(int(scale([ref], lo, hi, canvas.dots_y, flip=True)[0]), layer=1)
        for i, x in enumerate(xs):
            canvas.vspan(int(x), int(top[i]), int(bottom[i]), layer=2)
        for i in range(1, len(xs)):
            canvas.line(int(xs[i - 1]), int(mid[i - 1]), int(xs[i]), int(mid[i]), layer=3)
        styles = {0: "dim", 1: "dim", 2: "magenta", 3: "bold white"}
        out = [Text(f"{quantity} per probe set: median (line), quartiles (band), uniform (dashed)", style="dim")]
        for r, row in enumerate(canvas.rows()):
            label = f"{hi - 0.5:g}" if r == 0 else (f"{lo + 0.5:g}" if r == rows - 1 else "")
            line = Text(f"{label:>{LABEL - 1}} ", style="dim")
            line += runs((cell.char, styles[min(cell.layer, 3)]) for cell in row)
            out.append(line)
        return out

    @staticmethod
    def axis(state: DashboardState, width: int) -> Text:
        """Epochs under the charts (the probe sets are spaced evenly, so ticks are by position)."""
        steps = state.shape.xs()
        if not steps:
            return Text("")
        first, last = steps[0], steps[-1]
        return Text(f"{'':<{LABEL}}controller step {first:g} … {last:g}", style="dim")

