"""Panel 8: the embedding map (the paper's section 3.4, live).

The probe architectures' final controller hidden states projected on their first two principal
components (enas_tui.embedding), drawn as a Braille-dot scatter: one dot per architecture, each
character cell coloured by the mean of a property of the architectures in it (``c`` cycles:
number of each activation, depth, number of leaves, validation perplexity when measured). The
axes are in units of the RMS row norm and span at least ±0.2, so a collapsed controller is one
tight blob in the middle and a controller whose states reflect the architecture spreads out with
the colours in order. The header gives each component's share of the variance and the spread
(the collapse index). Without colour (NO_COLOR) each occupied cell shows its property level as a
digit, 0 (lowest) to 9 (highest).
"""

from __future__ import annotations

import numpy as np
from rich.style import Style
from rich.text import Text

from enas_tui import embedding
from enas_tui.tui.braille import Canvas
from enas_tui.tui.layout import Need
from enas_tui.tui.panel import Panel, lines_to_text
from enas_tui.tui.plot import SEQUENTIAL, rgb, runs, sequential_level
from enas_tui.tui.state import DashboardState

AXIS_STYLE = Style(color="grey37")
BOLD = Style(bold=True)
_STYLES = [Style(color=rgb(c), bold=True) for c in SEQUENTIAL]


class EmbeddingPanel(Panel):
    TITLE = "embedding map (PCA of hidden states)"
    PARTS = ("probe", "spearman")
    SEARCH_ONLY = "the map of the controller's hidden states"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.prop = embedding.PROPERTIES[1]  # relu: the activation the supervised controller learns most
        self.limit: float | None = None  # a shared axis half-width (compare), else each map's own

    def cycle_property(self) -> str:
        props = embedding.PROPERTIES
        self.prop = props[(props.index(self.prop) + 1) % len(props)]
        self._stamp = None
        self.refresh()
        return self.prop

    def need(self, width: int) -> Need:
        return Need(essential=5, full=None, grow=2)

    def values(self, state: DashboardState) -> np.ndarray | None:
        """The chosen property per probe architecture (None: not available for this probe)."""
        if self.prop == "valid ppl":
            return state.probe_ppl
        return state.probe_properties()[self.prop]

    def draw(self, state: DashboardState, width: int, height: int) -> Text:
        projection = state.projection()
        if projection is None:
            return Text("no probe yet: the map follows each probe set", style="dim")
        values = self.values(state)
        lines = [self.header(state, projection, width)]
        rows = height - 2
        if rows >= 1:
            lines += self.scatter(projection, values, width, rows)
        lines.append(self.legend(state, values, width))
        return lines_to_text(lines, height)

    def header(self, state: DashboardState, p: embedding.Projection, width: int) -> Text:
        ev = p.explained
        text = Text(f"PC1 {ev[0]:.0%} PC2 {ev[1]:.0%}", style="bold")
        text.append(f" · spread {p.spread:.3f}", style="bold")
        if width >= 52:
            text.append(" of RMS|h|")
        probe = state.probe
        text.append(f" · n={p.n} e{probe.epoch}:{probe.step}", style="dim")
        return text

    def scatter(self, p: embedding.Projection, values: np.ndarray | None, width: int, rows: int) -> list[Text]:
        limit = self.limit or embedding.map_limit([p])
        canvas = Canvas(width, rows)
        # One scale for both axes: a Braille dot is about as wide as it is tall.
        half = min(canvas.dots_x, canvas.dots_y) / 2
        cx, cy = canvas.dots_x / 2, canvas.dots_y / 2
        canvas.hline(int(cy), layer=1)
        for y in range(0, canvas.dots_y, 2):
            canvas.dot(int(cx), y, layer=1)
        xs = np.rint(cx + p.points[:, 0] / limit * half).astype(np.int64)
        ys = np.rint(cy - p.points[:, 1] / limit * half).astype(np.int64)
        colour = values is not None and np.isfinite(values).any()
        canvas.points(xs, ys, values if colour else None, layer=2)
        lo, hi = (float(np.nanmin(values)), float(np.nanmax(values))) if colour else (0.0, 1.0)
        mono = self.app.no_color if self.is_attached else False
        def cells(row):
            for cell in row:
                if cell.layer >= 2 and cell.value is not None:
                    level = sequential_level(cell.value, lo, hi)
                    yield (str(level) if mono else cell.char), _STYLES[level]
                elif cell.layer >= 2:
                    yield ("•" if mono else cell.char), BOLD
                else:
                    yield cell.char, AXIS_STYLE

        return [runs(cells(row)) for row in canvas.rows()]

    def legend(self, state: DashboardState, values: np.ndarray | None, width: int) -> Text:
        label = embedding.PROPERTY_LABELS[self.prop]
        if values is None or not np.isfinite(values).any():
            why = "not measured at this probe" if self.prop == "valid ppl" else "unavailable"
            return Text(f"colour (c): {label}: {why}", style="dim")
        lo, hi = float(np.nanmin(values)), float(np.nanmax(values))
        if width < 12 + len(label) + 24:
            label = f"#{self.prop}" if self.prop in embedding.PROPERTIES[:4] else self.prop
        text = Text("c: ", style="dim") + Text(f"{label} ")
        fmt = (lambda v: f"{v:.0f}") if self.prop == "valid ppl" or float(lo).is_integer() else (lambda v: f"{v:.2f}")
        text.append(fmt(lo) + " ")
        mono = self.app.no_color if self.is_attached else False
        for level, style in enumerate(_STYLES):
            text.append(str(level) if mono else "█", style=style)
        text.append(" " + fmt(hi))
        limit = self.limit or embedding.map_limit([state.projection()])
        if text.cell_len + 12 <= width:
            text.append(f"  axes ±{limit:.2f}", style="dim")
        return text
