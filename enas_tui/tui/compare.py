"""``enas-tui compare``: two or three sessions side by side at the same epoch.

Each session gets a column with its hidden-state heatmap and its rolling Table 1 row (beside the
paper's), all at the end of the same epoch; below, curves of every session on a shared axis
(epochs across, one y range per metric) with the cursor marked. The paper's comparison (random,
unsupervised, supervised) is ``enas-tui compare R U S``.
"""

from __future__ import annotations

import math
import time

from rich.text import Text
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Static

from enas_tui.sessions import Session
from enas_tui.tui.replay_index import ReplayCursor, ReplayIndex
from enas_tui.tui.app import key_names
from enas_tui.tui.dialogs import HelpScreen
from enas_tui.tui.heatmap import HeatmapPanel
from enas_tui.tui.panel import Panel
from enas_tui.tui.plot import sparkline
from enas_tui.tui.spearman import SpearmanPanel
from enas_tui.tui.state import DashboardState, Series, fmt

METRICS = (  # label, epoch series, digits, log scale; the first ones stay when space is short
    ("collapse", "epoch_collapse", 4, False),
    ("valid ppl", "valid_ppl", 1, True),
    ("reward", "epoch_reward", 3, False),
)


class CompareError(ValueError):
    """A compare request that cannot be shown (wrong number of sessions); one line for the user."""


def epoch_values(series: Series, epochs: int, width: int) -> list[float]:
    """The series sampled at ``width`` columns spanning epochs 1..epochs (nan where missing)."""
    by_epoch = dict(series.points)
    out = []
    for c in range(width):
        epoch = 1 + (c * epochs) // max(1, width)
        out.append(by_epoch.get(epoch, math.nan))
    return out


class Curves(Panel):
    """Every session's per-epoch curves on one shared axis, with the cursor's epoch marked."""

    TITLE = "curves (shared axis: epochs 1 … last)"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.finals: list[tuple[str, DashboardState]] = []
        self.cursor_epoch = 0
        self.epochs = 1

    def set(self, finals: list[tuple[str, DashboardState]], cursor_epoch: int, epochs: int) -> None:
        self.finals, self.cursor_epoch, self.epochs = finals, cursor_epoch, max(1, epochs)
        self.state = finals[0][1] if finals else None
        self.refresh()

    def draw(self, state: DashboardState, width: int, height: int) -> Text:
        name_w = max(len(name) for name, _ in self.finals) if self.finals else 8
        name_w = min(name_w, 14)
        label_w, value_w = 10, 9
        room = max(4, width - label_w - name_w - value_w - 2)
        marker = min(room - 1, ((self.cursor_epoch - 1) * room) // self.epochs) if self.cursor_epoch else -1
        lines = []
        for label, attr, digits, log in METRICS:
            values = [v for _, s in self.finals for v in getattr(s, attr).values() if math.isfinite(v)]
            lo, hi = (min(values), max(values)) if values else (None, None)
            for i, (name, final) in enumerate(self.finals):
                series = getattr(final, attr)
                drawn = sparkline(epoch_values(series, self.epochs, room), room, lo=lo, hi=hi, log=log)
                line = Text(f"{label if i == 0 else '':<{label_w}}", style="bold" if i == 0 else "")
                line.append(f"{name[:name_w]:<{name_w}} ", style="dim")
                for c, ch in enumerate(drawn.ljust(room)):
                    line.append(ch, style="reverse" if c == marker else "yellow")
                at = dict(series.points).get(self.cursor_epoch)
                line.append(f" {fmt(at, digits):>{value_w}}")
                lines.append(line)
        lines.append(Text(f"{'':<{label_w + name_w + 1}}epoch 1{'':>{max(0, room - 7 - len(str(self.epochs)))}}"
                          f"{self.epochs}  (highlight: epoch {self.cursor_epoch})", style="dim"))
        text = Text("\n").join(lines[:height])
        return text


class SessionHeader(Widget):
    DEFAULT_CSS = "SessionHeader { height: 1; background: $panel; }"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.text = Text("")

    def set(self, text: Text) -> None:
        self.text = text
        self.refresh()

    def render(self) -> Text:
        return self.text


class CompareApp(App[int]):
    """2-3 sessions at one epoch cursor: heatmaps, Table 1 rows, shared-axis curves."""

    TITLE = "enas-tui compare"
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-normal")]
    CSS = """
    #columns { height: 1fr; }
    .column { width: 1fr; }
    .column HeatmapPanel { height: 1fr; min-height: 5; }
    .column SpearmanPanel { height: 8; }
    Curves { max-height: 40%; }
    .-short .column SpearmanPanel { height: 7; }
    #compare-status { height: 1; background: $panel; }
    """
    BINDINGS = [
        Binding("q,ctrl+q", "quit_compare", "Quit", priority=True),
        Binding("right,l,right_square_bracket", "move(1)", "Next epoch"),
        Binding("left,h,left_square_bracket", "move(-1)", "Previous epoch"),
        Binding("home", "edge(0)", "First epoch", show=False),
        Binding("end", "edge(1)", "Last epoch", show=False),
        Binding("question_mark,f1", "help", "Keys"),
        Binding("s", "screenshot", "Screenshot"),
    ]

    def __init__(self, sessions: list[Session]):
        super().__init__()
        if not 2 <= len(sessions) <= 3:
            raise CompareError(f"compare takes 2 or 3 sessions, got {len(sessions)}")
        self.sessions = sessions
        self.indexes = [ReplayIndex(s.log_path) for s in sessions]
        for index in self.indexes:
            index.build()
        self.cursors = [ReplayCursor(index, len(index)) for index in self.indexes]
        self.finals = [cursor.state for cursor in self.cursors]
        self.last_epoch = max((max(i.epochs(), default=0) for i in self.indexes), default=0)
        self.epoch = self.last_epoch

    def compose(self) -> ComposeResult:
        yield Static("", id="compare-status")
        with Horizontal(id="columns"):
            for i, _ in enumerate(self.sessions):
                with Vertical(classes="column"):
                    yield SessionHeader(id=f"header-{i}")
                    yield HeatmapPanel(id=f"heatmap-{i}")
                    yield SpearmanPanel(id=f"spearman-{i}")
        yield Curves(id="curves")
        yield Footer()

    def on_mount(self) -> None:
        # A line per metric and session, the axis line and the border.
        self.query_one(Curves).styles.height = len(METRICS) * len(self.sessions) + 3
        self.show_epoch()

    def names(self) -> list[str]:
        return [f.controller or s.id for s, f in zip(self.sessions, self.finals)]

    def show_epoch(self) -> None:
        names = self.names()
        for i, (cursor, index) in enumerate(zip(self.cursors, self.indexes)):
            position = index.epoch_position(self.epoch)
            cursor.seek(len(index) if position is None else position)
            state = cursor.state
            self.query_one(f"#header-{i}", SessionHeader).set(self.header(self.sessions[i], state, position))
            self.query_one(f"#heatmap-{i}", HeatmapPanel).show(state, generation=self.epoch * 10 + i)
            self.query_one(f"#spearman-{i}", SpearmanPanel).show(state, generation=self.epoch * 10 + i)
        self.query_one(Curves).set(list(zip(names, self.finals)), self.epoch, self.last_epoch)
        status = Text(" COMPARE ", style="bold reverse")
        status.append(f" {len(self.sessions)} sessions at the end of epoch {self.epoch}/{self.last_epoch}"
                      "  ←/→ epoch · home/end · ? keys")
        self.query_one("#compare-status", Static).update(status)

    def header(self, session: Session, state: DashboardState, position: int | None) -> Text:
        text = Text(f" {state.controller or '?'} ", style="bold reverse")
        text.append(f" {session.id}", style="bold")
        if position is None:
            text.append(f"  (no epoch {self.epoch}: shown at its end)", style="yellow")
        else:
            text.append(f"  valid ppl {fmt(state.valid_ppl.last, 1)}")
        return text

    def action_move(self, delta: int) -> None:
        self.epoch = max(1 if self.last_epoch else 0, min(self.last_epoch, self.epoch + delta))
        self.show_epoch()

    def action_edge(self, end: int) -> None:
        self.epoch = self.last_epoch if end else min(1, self.last_epoch)
        self.show_epoch()

    def action_help(self) -> None:
        keys = [(key_names(b.key), b.description) for b in self.BINDINGS if isinstance(b, Binding)]
        self.push_screen(HelpScreen([("compare keys", keys),
                                     ("everywhere", [("ctrl+p", "command palette")])]))

    def action_screenshot(self) -> None:
        folder = self.sessions[0].path
        path = self.save_screenshot(f"screenshot-compare-{time.strftime('%Y%m%d-%H%M%S')}.svg", str(folder))
        self.notify(f"saved {path}", title="screenshot")

    def action_quit_compare(self) -> None:
        self.exit(0, return_code=0)

    def get_system_commands(self, screen: Screen):
        yield from super().get_system_commands(screen)
        yield SystemCommand("Keys", "Show every key", self.action_help)
        yield SystemCommand("Screenshot", "Save an SVG screenshot", self.action_screenshot)

    def on_unmount(self) -> None:
        for index in self.indexes:
            index.close()
