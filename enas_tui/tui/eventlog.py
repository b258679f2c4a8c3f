"""Panel 7: the event log: session start and end, epoch summaries, buffer phase changes,
checkpoints, new best architectures, warnings (non-finite losses), errors and collapse alarms.

The level is spelled out (WARN, ERROR) as well as coloured. Newest lines are at the bottom;
up/down and page keys scroll back while the panel has focus.
"""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding

from enas_tui.tui.panel import Panel, lines_to_text
from enas_tui.tui.state import DashboardState, LogLine

LEVELS = {"info": ("", ""), "phase": ("", "cyan"), "warn": ("WARN ", "yellow"), "error": ("ERROR ", "bold red")}


def line_text(line: LogLine, width: int) -> Text:
    tag, style = LEVELS.get(line.level, ("", ""))
    text = Text(f"e{line.epoch:<3} ", style="dim")
    text.append(tag, style=style)
    body = line.text
    room = width - text.cell_len
    if len(body) > room:
        body = body[: max(0, room - 1)] + "…"
    text.append(body, style=style if line.level in ("warn", "error") else "")
    return text


class EventLogPanel(Panel):
    TITLE = "events"
    PARTS = ("log",)
    BINDINGS = [
        Binding("up", "scroll_log(1)", "Older", show=False),
        Binding("down", "scroll_log(-1)", "Newer", show=False),
        Binding("pageup", "scroll_log(10)", "Older page", show=False),
        Binding("pagedown", "scroll_log(-10)", "Newer page", show=False),
    ]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.back = 0  # lines scrolled back from the newest

    def action_scroll_log(self, lines: int) -> None:
        total = len(self.state.log) if self.state is not None else 0
        self.back = max(0, min(total - 1, self.back + lines))
        self.refresh()

    def draw(self, state: DashboardState, width: int, height: int) -> Text:
        lines = list(state.log)
        if not lines:
            return Text("no events yet", style="dim")
        back = min(self.back, max(0, len(lines) - 1))
        end = len(lines) - back
        shown = lines[max(0, end - height): end]
        out = [line_text(line, width) for line in shown]
        if back:
            out[-1] = Text(f"… {back} newer lines (down/pagedown)", style="dim")
        return lines_to_text(out, height)
