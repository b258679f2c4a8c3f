"""Panel 2: the controller's final hidden states for the probe architectures (the paper's Fig. 3).

One row per probe architecture, one column per hidden unit, on a diverging colour scale, two
pixels per character cell ('▀' with the upper row as foreground and the lower as background).
Larger probes are subsampled to fit: whole rows and columns are picked, never averaged, because
averaging rows would shrink their differences and make a healthy controller look collapsed.
Above it, the collapse index (scale-free: RMS distance of the rows to their mean over the RMS
row norm, 0 when every architecture gives the same state), with an alarm in words when it falls
under COLLAPSE_ALARM: the colours are never the only carrier. Without colour (NO_COLOR) the cells
are shaded by value instead, one row per line, and the legend shows every shade, the blank one
(the lowest values) included. Compare draws several heatmaps on one shared scale (``scale``).
"""

from __future__ import annotations

import numpy as np
from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.strip import Strip

from enas_tui.tui.layout import Need
from enas_tui.tui.panel import Panel
from enas_tui.tui.plot import PALETTE, SHADES, diverging, half_block_style, levels, shade
from enas_tui.tui.state import COLLAPSE_ALARM, DashboardState, probe_collapse

ALARM = Style(bold=True, reverse=True, color="red")
PLAIN = Style()


def pick(count: int, room: int) -> np.ndarray:
    """Indices of at most ``room`` of ``count`` items, evenly spread and including both ends."""
    if count <= room:
        return np.arange(count)
    return np.unique(np.linspace(0, count - 1, max(1, room)).round().astype(int))


class HeatmapPanel(Panel):
    TITLE = "hidden states"
    PARTS = ("probe", "spearman")
    SEARCH_ONLY = "the controller's hidden states"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._strips: list[Strip] = []
        self._key: tuple | None = None
        self.scale: float | None = None  # a shared colour scale (compare); None: this probe's max |h|
        self.scale_note = "own scale"

    def need(self, width: int) -> Need:
        probe = self.state.probe if self.state is not None else None
        rows = probe.hidden.shape[0] if probe is not None else 20
        per_line = 1 if self.is_attached and self.app.no_color else 2
        return Need(essential=4, full=2 + -(-rows // per_line), grow=2)

    # -- numbers ------------------------------------------------------------------------------
    @staticmethod
    def indices(state: DashboardState) -> dict[str, float]:
        """Collapse indices of the latest probe: its diagnostics' (when they are about this probe),
        else computed here from the probe."""
        probe, diag = state.probe, state.diagnostics
        if diag is not None and (diag.epoch, diag.step) == (probe.epoch, probe.step) and state.collapse:
            return dict(state.collapse)
        return probe_collapse(probe, state.decision_sizes)

    def info(self, state: DashboardState) -> list[tuple[str, Style | str]]:
        n, units = state.probe.hidden.shape
        index = self.indices(state)
        hidden = index.get("hidden")
        parts: list[tuple[str, Style | str]] = [(f"collapse {hidden:.4f}", "bold")]
        if "max_prob" in index:
            parts.append((f" · max-p {index['max_prob']:.4f}", ""))
        parts.append((f" · {n}×{units}", "dim"))
        if hidden is not None and hidden < COLLAPSE_ALARM:
            parts.insert(0, (f"⚠ COLLAPSED (<{COLLAPSE_ALARM:.2f}) ", ALARM))
        else:
            parts.append((f" · alarm <{COLLAPSE_ALARM:.2f}", "dim"))
        return parts

    def pixels(self, state: DashboardState, width: int, height: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(rows, cols, values) of the hidden matrix drawn in a ``width`` x ``height`` cell area."""
        hidden = np.asarray(state.probe.hidden, dtype=np.float64)
        per_line = 1 if self.app.no_color else 2
        rows = pick(hidden.shape[0], height * per_line)
        cols = pick(hidden.shape[1], width)
        return rows, cols, hidden[np.ix_(rows, cols)]

    # -- drawing ------------------------------------------------------------------------------
    def render_line(self, y: int) -> Strip:
        width = self.content_size.width
        note = self.search_only()
        if note is not None:  # a retrain: the note's lines, as render() gives them elsewhere
            lines = note.split()
            if y >= len(lines):
                return Strip.blank(width, PLAIN)
            lines[y].truncate(width, overflow="ellipsis")
            return Strip(list(lines[y].render(self.app.console, end=""))).adjust_cell_length(width, PLAIN)
        if self.state is None or self.state.probe is None:
            text = "waiting for events…" if self.state is None else "no probe yet"
            line = Strip([Segment(text, Style(dim=True))]) if y == 0 else Strip.blank(width, PLAIN)
            return line.adjust_cell_length(width, PLAIN)
        key = (self._stamp, self.content_size, self.app.no_color, self.scale)
        if key != self._key:
            self._strips, self._key = self.build(self.state, width, self.content_size.height), key
        line = self._strips[y] if y < len(self._strips) else Strip.blank(width, PLAIN)
        return line.adjust_cell_length(width, PLAIN)

    def render(self):  # pragma: no cover - render_line draws this panel
        return Text("")

    def build(self, state: DashboardState, width: int, height: int) -> list[Strip]:
        strips = [Strip([Segment(t, s if isinstance(s, Style) else Style.parse(s or "none"))
                         for t, s in self.info(state)]).crop(0, width)]
        area = height - 2
        if area < 1:
            return strips
        rows, cols, values = self.pixels(state, width, area)
        scale = self.scale or float(np.abs(state.probe.hidden).max()) or 1.0
        if self.app.no_color:
            strips += [Strip([Segment("".join(shade(v, -scale, scale) for v in row), PLAIN)]) for row in values]
        else:
            repeat = max(1, min(3, width // max(1, len(cols))))
            index = levels(values, scale)  # palette indices, computed for the whole matrix at once
            cell = "▀" * repeat
            for r in range(0, len(rows), 2):
                top = index[r].tolist()
                bottom = index[r + 1].tolist() if r + 1 < len(rows) else None
                segments = [Segment(cell, half_block_style(PALETTE[t], None if bottom is None else PALETTE[bottom[c]]))
                            for c, t in enumerate(top)]
                strips.append(Strip(Segment.simplify(segments)))
        strips += [Strip.blank(width, PLAIN)] * max(0, height - 1 - len(strips))
        strips.append(self.legend(scale, len(rows), state.probe.hidden.shape[0], width))
        return strips[:height]

    def legend(self, scale: float, shown: int, total: int, width: int) -> Strip:
        segments = [Segment(f"-{scale:.2f} ", Style(dim=True))]
        if self.app.no_color:
            segments.append(Segment(f"[{SHADES}]", PLAIN))  # the blank shade is the lowest level
        else:
            for v in (-1.0, -0.5, 0.0, 0.5, 1.0):
                rgb = diverging(v * scale, scale)
                segments.append(Segment("█", Style(color=f"rgb({rgb[0]},{rgb[1]},{rgb[2]})")))
        segments.append(Segment(f" +{scale:.2f} {self.scale_note}", Style(dim=True)))
        rows = f"archs ({shown}/{total})" if shown < total else "archs"
        segments.append(Segment(f"  rows: {rows}, cols: units", Style(dim=True)))
        return Strip(segments).crop(0, width)

    def text(self) -> str:
        note = self.search_only()
        if note is not None:
            return note.plain
        if self.state is None or self.state.probe is None:
            return ""
        return "".join(t for t, _ in self.info(self.state))
