"""The top of the screen: session, controller, mode and the run's status in one word; under it,
notices (damage in the session log, what to do about a stopped or crashed run, what a demo is).

A dead trainer must never look like a quiet one, so a crashed or failed run turns the first line
into an alarm with the reason, and the command to continue gets a line of its own that is never
cut: it wraps between arguments at the screen's width. Each status has exactly one word, the one
``enas-tui sessions`` uses. Notices are a list of lines built by ``notices``; a mode adds its own
through ``StatusBar.extra_notices``. A remote attach that lost its link says so on the first notice
line ("connection lost, reconnecting (n)"), and its command to continue is the one to run on the
host (``resume_hint``).
"""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from enas_tui.commands import resume_command, wrap_command
from enas_tui.sessions import Session
from enas_tui.tui.state import DashboardState

STYLES = {
    "running": ("● running", "bold green"),
    "waiting": ("○ waiting", "yellow"),
    "finished": ("✔ finished", "bold cyan"),
    "stopped": ("■ stopped", "bold yellow"),
    "failed": ("✖ FAILED", "bold white on red"),
    "crashed": ("✖ CRASHED", "bold white on red"),
    "stale": ("? stale", "bold yellow"),
    "error": ("✖ ERROR", "bold white on red"),
    "stopping": ("■ stopping", "bold yellow"),
    "damaged": ("✖ DAMAGED", "bold white on red"),
}

ALARMS = ("failed", "crashed", "error", "damaged")
RESUMABLE = ("stopped", "crashed", "failed")


def local_resume_hint(session: Session) -> tuple[str, str]:
    """(lead, command) of the line that says how to continue a session on this machine."""
    return " continue with:", resume_command(session)


class StatusBar(Widget):
    DEFAULT_CSS = """
    StatusBar { height: auto; max-height: 6; dock: top; background: $panel; }
    """

    def __init__(self, mode: str, **kwargs):
        super().__init__(**kwargs)
        self.mode = mode
        self.state: DashboardState | None = None
        self.session: Session | None = None
        self.extra = ""  # e.g. "stopping": what the dashboard itself is doing
        self.override: tuple[str, str] | None = None  # (status, message) that replaces the state's (replay)
        self.extra_notices: list[Text] = []  # a mode's own lines (replay's recording, a demo)
        self.resume_hint = local_resume_hint  # a remote attach's says to continue on the host
        self._key: tuple | None = None

    def show(self, state: DashboardState, session: Session | None = None) -> None:
        """Take the state; repaint only when something these lines show has changed."""
        key = (state.session_id, state.controller, state.epoch, state.epochs, state.run_status,
               state.run_message, state.warnings, self.extra, self.override, session,
               tuple(t.plain for t in self.extra_notices), state.log_damage, state.connection)
        self.state, self.session = state, session
        if key != self._key:
            self._key = key
            self.refresh(layout=True)

    @property
    def status(self) -> str:
        if self.extra:
            return self.extra
        if self.override is not None:
            return self.override[0]
        return self.state.run_status if self.state is not None else "waiting"

    @property
    def message(self) -> str:
        if self.extra:
            return ""
        if self.override is not None:
            return self.override[1]
        return self.state.run_message if self.state is not None else ""

    def render(self) -> Text:
        width = max(1, self.size.width)
        lines = [self.headline(width), *self.notices(width)]
        return Text("\n").join(lines)

    def headline(self, width: int) -> Text:
        state = self.state
        line = Text(f" {self.mode.upper()} ", style="bold reverse")
        if state is None:
            return line
        status = self.status
        label, style = STYLES.get(status, (status, "bold"))
        message = self.message
        if status in ALARMS:  # the alarm and its reason first: they must fit in 80 columns
            line.append(f" {label} ", style=style)
            if message:
                line.append(f" {message}", style="bold red")
            line.append(f"  {state.session_id}", style="dim")
            line.truncate(width, overflow="ellipsis")
            return line
        line.append(f" {state.session_id or 'session'}", style="bold")
        if state.controller:
            line.append(f" · {state.controller}")
        if state.epochs:
            line.append(f" · epoch {state.epoch}/{state.epochs}")
        line.append("  ")
        line.append(f" {label} ", style=style)
        if status == "waiting":
            line.append(" for the trainer's first events", style="yellow")
        elif message and status not in ("running", "finished"):
            line.append(f" {message}")
        if state.warnings:
            line.append(f"  {state.warnings} warning{'s' if state.warnings > 1 else ''}", style="yellow")
        line.truncate(width, overflow="ellipsis")
        return line

    def notices(self, width: int) -> list[Text]:
        """Lines under the headline: a lost connection, damage in the log, the command to continue
        a run that ended early, and the mode's own."""
        out: list[Text] = []
        if self.state is not None and self.state.connection:
            out.append(Text(f" ⚠ {self.state.connection}", style="bold black on yellow"))
        if self.state is not None and self.state.log_damage:
            out.append(Text(f" ⚠ {self.state.log_damage}", style="bold yellow"))
        status = self.status
        if status == "stopping":
            out.append(Text(" stopping: checkpointing, then quitting; press q again to leave it running",
                            style="yellow"))
        elif status in RESUMABLE and self.session is not None:
            for line in wrap_command(*self.resume_hint(self.session), width):
                out.append(Text(line, style="bold"))
        for notice in self.extra_notices:
            out.append(notice.copy())
        for text in out:
            text.truncate(width, overflow="ellipsis")
        return out
