"""Replay's timeline: play state, speed, cursor, and a scrub bar with the epoch boundaries.

The bar is drawn from the cursor and the index alone; a click on it seeks (the keyboard does
everything too: the bar's step is one twentieth of the session). It ends with how the recording
ended, in the status line's word. It sits above the key footer, never under it.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.events import Click
from textual.message import Message
from textual.widget import Widget

from enas_tui.tui.plot import duration
from enas_tui.tui.statusbar import STYLES


@dataclass
class TimelineView:
    """What the timeline shows; the app fills it at each repaint."""

    position: int = 0
    total: int = 0
    indexed: float = 1.0  # fraction of the log indexed so far
    playing: bool = False
    speed: str = "1x"
    epoch: int = 0
    epochs: int = 0
    elapsed: float | None = None  # session time at the cursor, from its first event
    boundaries: tuple[int, ...] = ()
    ending: str = ""  # how the recording ends: finished, stopped, failed, crashed, running (still written)


class Timeline(Widget):
    DEFAULT_CSS = """
    Timeline { height: 2; background: $panel; }
    """

    class Seek(Message):
        """The user clicked the bar at ``fraction`` of the session."""

        def __init__(self, fraction: float):
            super().__init__()
            self.fraction = fraction

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.view = TimelineView()
        self._cells = 0  # width of the drawn bar (for clicks)
        self._offset = 0  # column where the bar starts on its line

    def show(self, view: TimelineView) -> None:
        if view != self.view:
            self.view = view
            self.refresh()

    def render(self) -> Text:
        v, width = self.view, max(10, self.size.width)
        if self.size.height == 1:  # a short terminal: position and bar on one line
            line = Text(f" {'▶' if v.playing else '❚❚'} ", style="bold reverse" if v.playing else "bold")
            line.append(f" {v.speed} e{v.epoch}/{v.epochs or '?'} {v.position:,}/{v.total:,}")
            self._offset = line.cell_len
            return line + self.bar(width - line.cell_len)
        self._offset = 0
        state = "▶ playing" if v.playing else "❚❚ paused"
        line = Text(f" {state} ", style="bold reverse" if v.playing else "bold")
        line.append(f" {v.speed}  event {v.position:,}/{v.total:,}  epoch {v.epoch}/{v.epochs or '?'}")
        line.append(f"  t+{duration(v.elapsed)}")
        if v.indexed < 1.0:
            line.append(f"  indexing {v.indexed:.0%}", style="yellow")
        line.append("  space play · ←→ event · [ ] epoch · g go to · home/end · +/- speed", style="dim")
        line.truncate(width, overflow="ellipsis")
        return Text("\n").join([line, self.bar(width)])

    def bar(self, width: int) -> Text:
        v = self.view
        end = Text("")
        if v.ending:
            label, style = STYLES.get(v.ending, (v.ending, "bold"))
            end = Text(" ") + Text(f" {label} ", style=style)
        cells = self._cells = max(4, width - 2 - end.cell_len)
        total = max(1, v.total)
        cursor = min(cells - 1, int(v.position / total * cells)) if v.total else 0
        ticks = {min(cells - 1, int(b / total * cells)) for b in v.boundaries}
        bar = Text(" ")
        for i in range(cells):
            if i == cursor:
                bar.append("●", style="bold")
            elif i < cursor:
                bar.append("╋" if i in ticks else "━", style="cyan")
            else:
                bar.append("┼" if i in ticks else "─", style="dim")
        bar += end
        bar.truncate(width)
        return bar

    def on_click(self, event: Click) -> None:
        cells, x = self._cells, event.x - self._offset
        if event.y == self.size.height - 1 and cells > 0 and 1 <= x <= cells:
            self.post_message(self.Seek(max(0.0, min(1.0, (x - 1) / cells))))
