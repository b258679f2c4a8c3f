"""The top line: session, controller, mode and the run's status in words.

A dead trainer must never look like a quiet one, so a crashed or failed run turns this line into
an alarm that names the status and the last error.
"""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from enas_tui.tui.state import DashboardState

STYLES = {
    "running": ("● running", "bold green"),
    "waiting": ("○ waiting for the trainer", "yellow"),
    "finished": ("✔ finished", "bold cyan"),
    "stopped": ("■ stopped", "bold yellow"),
    "failed": ("✖ FAILED", "bold white on red"),
    "crashed": ("✖ TRAINER CRASHED", "bold white on red"),
    "stale": ("? no new events", "bold yellow"),
    "error": ("✖ LOG ERROR", "bold white on red"),
    "stopping": ("■ stopping (checkpointing)…", "bold yellow"),
    "damaged": ("✖ DAMAGED", "bold white on red"),
}

ALARMS = ("failed", "crashed", "error", "damaged")


class StatusBar(Widget):
    DEFAULT_CSS = """
    StatusBar { height: 1; dock: top; background: $panel; }
    """

    def __init__(self, mode: str, **kwargs):
        super().__init__(**kwargs)
        self.mode = mode
        self.state: DashboardState | None = None
        self.extra = ""  # e.g. "stopping": what the dashboard itself is doing
        self._key: tuple | None = None

    def show(self, state: DashboardState) -> None:
        """Take the state; repaint only when something this line shows has changed."""
        key = (state.session_id, state.controller, state.epoch, state.epochs, state.run_status,
               state.run_message, state.warnings, self.extra, state.log_damage)
        self.state = state
        if key != self._key:
            self._key = key
            self.refresh()

    def render(self) -> Text:
        state = self.state
        line = Text(f" {self.mode.upper()} ", style="bold reverse")
        if state is None:
            return line
        status = self.extra or state.run_status
        label, style = STYLES.get(status, (status, "bold"))
        message = state.run_message if not self.extra else ""
        if status in ALARMS or state.log_damage:  # the alarm and its reason first: they must fit in 80 columns
            line.append(f" {label} ", style=style)
            if state.log_damage:
                line.append(f" ⚠ {state.log_damage}", style="bold yellow")
            if message and status in ALARMS:
                line.append(f" {message}", style="bold red")
            line.append(f"  {state.session_id}", style="dim")
            line.truncate(max(1, self.size.width), overflow="ellipsis")
            return line
        line.append(f" {state.session_id or 'session'}", style="bold")
        if state.controller:
            line.append(f" · {state.controller}")
        if state.epochs:
            line.append(f" · epoch {state.epoch}/{state.epochs}")
        line.append("  ")
        line.append(f" {label} ", style=style)
        if message and status not in ("running", "finished"):
            line.append(f" {message}")
        if state.warnings:
            line.append(f"  {state.warnings} warning{'s' if state.warnings > 1 else ''}", style="yellow")
        line.truncate(max(1, self.size.width), overflow="ellipsis")
        return line
