"""Panel 3: the memory buffer of the supervised controller (the paper's regularizer).

Fill against capacity as a gauge with its percentage, the phase (waiting for its first epoch,
filling, full and replacing), and whether the supervised reconstruction loss is on, with its
latest value and history. The gauge's colour is the phase's, printed beside it in the same
colour (cyan filling, green full), so the colour never says anything the words do not. Other
controller settings have no buffer and the panel says so.
"""

from __future__ import annotations

from rich.text import Text

from enas_tui.tui.layout import Need
from enas_tui.tui.panel import Panel, lines_to_text
from enas_tui.tui.plot import gauge, sparkline
from enas_tui.tui.state import DashboardState, fmt

PHASES = {"waiting": ("waiting", "dim"), "filling": ("filling", "cyan"), "full": ("full, replacing", "green")}


class BufferPanel(Panel):
    TITLE = "memory buffer"
    PARTS = ("buffer", "status")
    SEARCH_ONLY = "the controller's memory buffer"

    def need(self, width: int) -> Need:
        state = self.state
        if state is not None and state.controller and state.controller != "supervised":
            return Need(essential=1, full=1)
        return Need(essential=2, full=3)

    def draw(self, state: DashboardState, width: int, height: int) -> Text:
        buf = state.buffer
        settings = state.settings.get("buffer", {})
        if buf is None:
            if state.controller and state.controller != "supervised":
                return Text(f"no memory buffer: the {state.controller} controller has none", style="dim")
            start = settings.get("start_epoch")
            return Text(f"empty: filling starts at epoch {start}" if start else "no buffer update yet", style="dim")
        fraction = buf.size / buf.capacity if buf.capacity else 0.0
        phase, colour = PHASES.get(buf.phase, (buf.phase, "bold"))
        label = Text(f" {fraction:4.0%} {buf.size:,}/{buf.capacity:,} ") + Text(phase, style=f"bold {colour}")
        bar = gauge(fraction, max(4, min(30, width - label.cell_len)))
        lines = [Text(bar, style=colour) + label]
        lines.append(self.supervised(state, buf.supervised, settings, width))
        detail = f"+{buf.added:,} added, {buf.replaced:,} replaced at epoch {buf.epoch}"
        if buf.phase == "waiting" and settings.get("start_epoch"):
            detail = f"filling starts at epoch {settings['start_epoch']}"
        lines.append(Text(detail, style="dim"))
        return lines_to_text(lines, height)

    @staticmethod
    def supervised(state: DashboardState, on: bool, settings: dict, width: int) -> Text:
        if not on:
            start = settings.get("supervised_start_epoch")
            return Text("supervised loss off" + (f" (from epoch {start})" if start else ""), style="dim")
        value = state.supervised_loss.last
        line = Text("supervised loss ") + Text("ON", style="bold green") + Text(f" {fmt(value, 3)} ")
        room = width - line.cell_len
        if room >= 4:
            line.append(sparkline(state.supervised_loss.values(), room), style="green")
        return line
