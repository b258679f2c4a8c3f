"""Modal screens: the key help, the live quit question, and jump-to-epoch.

All of them work from the keyboard alone (SSH without a mouse): every choice has a key, and the
key printed beside a choice is the key bound to it (both come from one table). The dialog box
sizes itself to its text (a text that is given no width is drawn as an empty box), and the help
flows into two columns when one does not fit the screen's height.
"""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.events import Resize
from textual.screen import ModalScreen
from textual.widgets import Input, Static

from enas_tui.commands import wrap_command

DIALOG_CSS = """
{name} {{ align: center middle; }}
{name} > VerticalScroll {{
    width: auto; max-width: 96%; height: auto; max-height: 96%;
    border: thick $accent; background: $surface; padding: 0 1;
}}
{name} Static {{ width: auto; max-width: 100%; height: auto; }}
"""


def help_columns(groups: list[tuple[str, list[tuple[str, str]]]], width: int, height: int) -> Text:
    """The key groups as text: one column, or two side by side when one is taller than ``height``."""
    single = [_group_lines(title, keys, width) for title, keys in groups if keys]
    lines = [line for block in single for line in block]
    footer = Text("escape, q or ? closes this help; ↑↓ scroll", style="dim")
    half = (width - 3) // 2
    if len(lines) + 1 <= height or half < 30 or len(single) < 2:
        return Text("\n").join([*lines, footer])
    blocks = [_group_lines(title, keys, half) for title, keys in groups if keys]
    # Two columns: whole groups, split where the two heights are closest.
    sizes = [len(b) for b in blocks]
    split = min(range(1, len(blocks)), key=lambda k: abs(sum(sizes[:k]) - sum(sizes[k:])))
    left = [line for block in blocks[:split] for line in block]
    right = [line for block in blocks[split:] for line in block]
    left_w = max(line.cell_len for line in left)
    rows = []
    for i in range(max(len(left), len(right))):
        row = left[i].copy() if i < len(left) else Text("")
        row.pad_right(left_w + 3 - row.cell_len)
        if i < len(right):
            row += right[i]
        rows.append(row)
    return Text("\n").join([*rows, footer])


def _group_lines(title: str, keys: list[tuple[str, str]], width: int) -> list[Text]:
    """A group's title and a line per key, long descriptions wrapped under themselves."""
    key_w = max(len(key) for key, _ in keys) + 1
    lines = [Text(title, style="bold underline")]
    room = max(10, width - key_w - 1)
    for key, description in keys:
        for i, part in enumerate(_wrap(description, room)):
            line = Text(f" {key if i == 0 else '':<{key_w}}", style="bold cyan")
            line.append(part)
            lines.append(line)
    lines.append(Text(""))
    return lines


def _wrap(text: str, width: int) -> list[str]:
    lines, line = [], ""
    for word in text.split(" "):
        if line and len(line) + 1 + len(word) > width:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}" if line else word
    return [*lines, line]


class HelpScreen(ModalScreen[None]):
    """Every key of the dashboard, grouped, generated from the bindings themselves."""

    DEFAULT_CSS = DIALOG_CSS.format(name="HelpScreen")
    BINDINGS = [Binding("escape,q,question_mark,f1", "dismiss", "Close")]

    def __init__(self, groups: list[tuple[str, list[tuple[str, str]]]]):
        super().__init__()
        self.groups = groups

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Static(self.text(), id="help-text")

    def text(self) -> Text:
        size = self.app.size
        return help_columns(self.groups, size.width - 8, size.height - 4)

    def on_resize(self, event: Resize) -> None:
        self.query_one("#help-text", Static).update(self.text())


# The quit question's choices: keys (the first is shown), the choice, what the dialog says.
QUIT_CHOICES: tuple[tuple[str, str | None, str], ...] = (
    ("s", "stop", "stop training: checkpoint, record the end, then quit"),
    ("b,l", "detach", "leave it running in the background and quit"),
    ("escape,c,n", None, "cancel: back to the dashboard"),
)


class QuitScreen(ModalScreen[str | None]):
    """Live mode's question: stop the training (gracefully) or leave it running?"""

    DEFAULT_CSS = DIALOG_CSS.format(name="QuitScreen")
    BINDINGS = [Binding(key, f"choose({choice!r})", text.split(":")[0]) for key, choice, text in QUIT_CHOICES]

    def __init__(self, attach: str | None):
        """``attach``: the command that reattaches to the session (shown as a reminder)."""
        super().__init__()
        self.attach = attach

    def compose(self) -> ComposeResult:
        # A path longer than the dialog is folded onto the next line rather than cut.
        text = Text("Quit the dashboard? The training is still running.\n\n", style="bold", overflow="fold")
        for keys, _, what in QUIT_CHOICES:
            key = keys.split(",")[0]
            text.append(f" {'esc' if key == 'escape' else key:^5}", style="bold reverse")
            text.append(f"  {what}\n")
        if self.attach:
            width = max(30, self.app.size.width - 10)
            text.append("\n" + "\n".join(wrap_command("Reattach later with:", self.attach, width)), style="dim")
        with VerticalScroll():
            yield Static(text, id="quit-text")

    def action_choose(self, choice: str | None) -> None:
        self.dismiss(choice)


class JumpScreen(ModalScreen[int | None]):
    """Ask for an epoch number to jump to."""

    DEFAULT_CSS = DIALOG_CSS.format(name="JumpScreen") + "JumpScreen Input { width: 30; }"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    AUTO_FOCUS = "#epoch"

    def __init__(self, epochs: list[int]):
        super().__init__()
        self.epochs = epochs

    def compose(self) -> ComposeResult:
        span = f"{self.epochs[0]}-{self.epochs[-1]}" if self.epochs else "none indexed yet"
        with VerticalScroll():
            yield Static(f"Jump to the end of epoch ({span}), then enter; escape cancels:", id="jump-text")
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
