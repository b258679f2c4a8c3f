"""Modal screens: the key help, the live quit question, and jump-to-epoch.

All of them work from the keyboard alone (SSH without a mouse): every choice has a key.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Static

DIALOG_CSS = """
{name} {{ align: center middle; }}
{name} > Vertical {{
    width: auto; max-width: 90%; height: auto; max-height: 90%;
    border: thick $accent; background: $surface; padding: 1 2;
}}
"""


class HelpScreen(ModalScreen[None]):
    """Every key of the dashboard, grouped, generated from the bindings themselves."""

    DEFAULT_CSS = DIALOG_CSS.format(name="HelpScreen")
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "Close")]

    def __init__(self, groups: list[tuple[str, list[tuple[str, str]]]]):
        super().__init__()
        self.groups = groups

    def compose(self) -> ComposeResult:
        text = Text()
        for title, keys in self.groups:
            if not keys:
                continue
            text.append(f"{title}\n", style="bold underline")
            for key, description in keys:
                text.append(f"  {key:<18}", style="bold cyan")
                text.append(f"{description}\n")
            text.append("\n")
        text.append("escape, q or ? closes this help", style="dim")
        with Vertical():
            yield Static(text, id="help-text")


class QuitScreen(ModalScreen[str | None]):
    """Live mode's question: stop the training (gracefully) or leave it running?"""

    DEFAULT_CSS = DIALOG_CSS.format(name="QuitScreen")
    BINDINGS = [
        Binding("s", "choose('stop')", "Stop training"),
        Binding("b,l", "choose('detach')", "Leave running"),
        Binding("escape,c,n", "choose(None)", "Cancel"),
    ]

    def __init__(self, session_id: str | None):
        super().__init__()
        self.session_id = session_id

    def compose(self) -> ComposeResult:
        text = Text("Quit the dashboard?\n\n", style="bold")
        text.append("  s  ", style="bold reverse")
        text.append("  stop training: checkpoint, record the end, then quit\n")
        text.append("  b  ", style="bold reverse")
        text.append("  leave it running in the background and quit\n")
        text.append("  esc", style="bold reverse")
        text.append("  cancel\n\n")
        if self.session_id:
            text.append(f"Reattach later with: enas-tui attach {self.session_id}", style="dim")
        with Vertical():
            yield Static(text, id="quit-text")

    def action_choose(self, choice: str | None) -> None:
        self.dismiss(choice)


class JumpScreen(ModalScreen[int | None]):
    """Ask for an epoch number to jump to."""

    DEFAULT_CSS = DIALOG_CSS.format(name="JumpScreen") + "JumpScreen Input { width: 30; }"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, epochs: list[int]):
        super().__init__()
        self.epochs = epochs

    def compose(self) -> ComposeResult:
        span = f"{self.epochs[0]}-{self.epochs[-1]}" if self.epochs else "none indexed yet"
        with Vertical():
            yield Static(f"Jump to the end of epoch ({span}), then enter:")
            yield Input(placeholder="epoch", type="integer", id="epoch")
            yield Static("", id="jump-error")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        try:
            epoch = int(event.value)
        except ValueError:
            epoch = -1
        if epoch not in self.epochs:
            self.query_one("#jump-error", Static).update(Text(f"no completed epoch {event.value!r}", style="red"))
            return
        self.dismiss(epoch)

    def action_cancel(self) -> None:
        self.dismiss(None)
