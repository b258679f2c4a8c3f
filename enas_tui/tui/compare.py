"""``enas-tui compare``: two or three sessions side by side at the same epoch.

Each session gets a column: a header saying which epoch the column shows (a session that ended
earlier shows its last epoch, and says so), its hidden-state heatmap, its rolling Table 1 beside
the paper's values, its embedding map and its cell shape; below, curves of every session on a
shared axis (epochs across, one y range per metric) with the cursor's epoch marked. The heatmaps
share one colour scale and the maps one pair of axes, both stated on screen, so columns compare
directly. Keys 1-5 show one row of panels (all sessions) on the whole screen. The paper's
comparison (random, unsupervised, supervised) is ``enas-tui compare R U S``.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
from rich.text import Text
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Static

from enas_tui import embedding
from enas_tui.sessions import Session
from enas_tui.tui.app import PanelArea, key_names
from enas_tui.tui.dialogs import HelpScreen
from enas_tui.tui.embedding_map import EmbeddingPanel
from enas_tui.tui.heatmap import HeatmapPanel
from enas_tui.tui.layout import Need, column_heights
from enas_tui.tui.panel import Panel
from enas_tui.tui.plot import CLIP_HIGH, runs, spark, ticks
from enas_tui.tui.replay_index import ReplayCursor, ReplayIndex
from enas_tui.tui.shape import ShapePanel
from enas_tui.tui.spearman import SpearmanPanel
from enas_tui.tui.state import DashboardState, Series, fmt

METRICS = (  # label, epoch series (attribute or shape quantity), digits, log scale; in order of importance
    ("collapse", "epoch_collapse", 3, True),
    ("valid ppl", "valid_ppl", 1, True),
    ("reward", "epoch_reward", 3, False),
    ("depth", "shape:depth", 1, False),
    ("width", "shape:width", 1, False),
)
ROWS: tuple[tuple[str, type[Panel]], ...] = (
    ("heatmap", HeatmapPanel), ("spearman", SpearmanPanel), ("embedding", EmbeddingPanel), ("shape", ShapePanel),
)
ROW_NAMES = {"heatmap": "hidden states", "spearman": "Table 1", "embedding": "embedding maps",
             "shape": "cell shapes", "curves": "curves"}
DROP_ORDER = ("shape", "embedding", "curves", "heatmap", "spearman")
CHROME = 1  # every panel here has a title line and no side borders

CSS = """
#panels { height: 1fr; }
#panels > * { position: absolute; }
#panels > Panel { border: none; border-top: round $primary-darken-1; padding: 0 1 0 0; }
#panels > Panel:focus { border: none; border-top: round $accent; }
#compare-status { height: 1; background: $panel; }
#compare-notice { height: auto; max-height: 3; background: $panel; }
SessionHeader { height: 1; background: $panel; }
"""


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


def metric_series(state: DashboardState, attr: str) -> Series:
    if attr.startswith("shape:"):
        return state.shape_epoch[attr.split(":", 1)[1]]
    return getattr(state, attr)


class Curves(Panel):
    """Every session's per-epoch curves on one shared axis, with the cursor's epoch marked."""

    TITLE = "curves (shared axis and range per metric)"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.finals: list[tuple[str, DashboardState]] = []
        self.cursor_epoch = 0
        self.epochs = 1

    def set(self, finals: list[tuple[str, DashboardState]], cursor_epoch: int, epochs: int) -> None:
        self.finals, self.cursor_epoch, self.epochs = finals, cursor_epoch, max(1, epochs)
        self.state = finals[0][1] if finals else None
        self.refresh()

    def need(self, width: int) -> Need:
        k = max(1, len(self.finals))
        return Need(essential=k + 1, full=len(METRICS) * k + 1, grow=1)

    def draw(self, state: DashboardState, width: int, height: int) -> Text:
        k = max(1, len(self.finals))
        name_w = min(max((len(name) for name, _ in self.finals), default=8), 12)
        label_w, value_w = 10, 10
        room = max(4, width - label_w - name_w - value_w - 2)
        marker = min(room - 1, ((self.cursor_epoch - 1) * room) // self.epochs) if self.cursor_epoch else -1
        fits = max(1, (height - 1) // k)
        lines = []
        for label, attr, digits, log in METRICS[:fits]:
            values = [v for _, s in self.finals for v in metric_series(s, attr).values() if math.isfinite(v)]
            if log:
                values = [v for v in values if v > 0]
            lo, hi = (min(values), max(values)) if values else (None, None)
            for i, (name, final) in enumerate(self.finals):
                series = metric_series(final, attr)
                drawn = spark(epoch_values(series, self.epochs, room), room, lo=lo, hi=hi, log=log, robust=False)
                head = label if i == 0 else ("log scale" if log and i == 1 else "")
                line = Text(f"{head:<{label_w}}", style="bold" if i == 0 else "dim")
                line.append(f"{name[:name_w]:<{name_w}} ", style="dim")
                line += runs((ch, "reverse" if c == marker else ("bold red" if ch == CLIP_HIGH else "yellow"))
                             for c, ch in enumerate(drawn.text.ljust(room)))
                line.append(self.value_at(series, digits, value_w))
                lines.append(line)
        axis = Text(f"{'epoch':<{label_w + name_w + 1}}", style="dim")
        cell = max(1, room // self.epochs)
        axis.append(ticks(self.epochs, cell, room, first=1) if cell * self.epochs <= room + cell else
                    f"1{'':>{max(0, room - 1 - len(str(self.epochs)))}}{self.epochs}", style="dim")
        hidden = len(METRICS) - min(fits, len(METRICS))
        note = f"  ▮ epoch {self.cursor_epoch}" + (f"  +{hidden} metrics: zoom (5)" if hidden else "")
        axis.append(note, style="bold yellow" if hidden else "dim")
        lines.append(axis)
        return Text("\n").join(lines[:max(1, height)])

    def value_at(self, series: Series, digits: int, width: int) -> Text:
        """The value at the cursor's epoch; for a session without that epoch, its last one, saying which."""
        points = dict(series.points)
        if self.cursor_epoch in points:
            return Text(f" {fmt(points[self.cursor_epoch], digits):>{width}}")
        if not points:
            return Text(f" {'none':>{width}}", style="dim")
        epoch = max(e for e in points if e <= self.cursor_epoch) if any(e <= self.cursor_epoch for e in points) \
            else min(points)
        shown = f"{fmt(points[epoch], digits)}@e{epoch:g}"
        return Text(f" {shown:>{width}}", style="yellow")


class SessionHeader(Widget):
    """A column's first line: the session, and which epoch the column shows."""

    DEFAULT_CSS = "SessionHeader { height: 1; background: $panel; }"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.fields: tuple = ("?", 0, 0, 0, None, "")

    def set(self, controller: str, shown: int, last: int, cursor: int, ppl: float | None, session_id: str) -> None:
        self.fields = (controller, shown, last, cursor, ppl, session_id)
        self.refresh()

    def render(self) -> Text:
        controller, shown, last, cursor, ppl, session_id = self.fields
        width = max(1, self.size.width)
        text = Text(f" {controller} ", style="bold reverse")
        if shown != cursor:  # this session has no such epoch: it shows its last one, and says so
            long = f" epoch {shown}: its last (no epoch {cursor})"
            text.append(long if text.cell_len + len(long) <= width else f" e{shown}: its last", style="bold yellow")
        else:
            text.append(f" epoch {shown} of {last}", style="bold")
        text.append(f"  valid ppl {fmt(ppl, 1)}")
        text.append(f"  {session_id}", style="dim")
        text.truncate(width, overflow="ellipsis")
        return text


class CompareApp(App[int]):
    """2-3 sessions at one epoch cursor: heatmaps, Table 1, embedding maps, cell shapes, curves."""

    TITLE = "enas-tui compare"
    CSS = CSS
    BINDINGS = [
        Binding("q,ctrl+q", "quit_compare", "Quit", priority=True),
        Binding("right,l,right_square_bracket", "move(1)", "Next epoch"),
        Binding("left,h,left_square_bracket", "move(-1)", "Previous epoch"),
        Binding("home", "edge(0)", "First epoch", show=False),
        Binding("end", "edge(1)", "Last epoch", show=False),
        Binding("question_mark,f1", "help", "Keys"),
        Binding("s", "screenshot", "Screenshot"),
        Binding("a", "reading('common_activations')", "Table 1: common activations reading", show=False),
        Binding("r", "reading('ged')", "Table 1: GED reading", show=False),
        Binding("c", "colour_by", "Embedding maps: colour by the next property", show=False),
        Binding("escape", "unzoom", "Back from a zoomed row", show=False),
        *(Binding(str(n), f"zoom({n})", f"Zoom row {n} ({ROW_NAMES[name]})", show=False)
          for n, name in enumerate([*(r for r, _ in ROWS), "curves"], start=1)),
    ]

    def __init__(self, sessions: list[Session], notice: str = ""):
        super().__init__()
        self.notice = notice  # a line above the columns (the demo says what it is)
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
        self.zoomed: str | None = None
        self.hidden: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static("", id="compare-status")
        if self.notice:
            yield Static(Text(" " + self.notice, style="bold magenta"), id="compare-notice")
        with PanelArea(id="panels"):
            for i, _ in enumerate(self.sessions):
                yield SessionHeader(id=f"header-{i}")
                for name, cls in ROWS:
                    yield cls(id=f"{name}-{i}")
            yield Curves(id="curves")
        yield Footer()

    def on_mount(self) -> None:
        self.area = self.query_one(PanelArea)
        self.show_epoch()

    def names(self) -> list[str]:
        return [f.controller or s.id for s, f in zip(self.sessions, self.finals)]

    # -- layout ---------------------------------------------------------------------------------
    def relayout(self) -> None:
        """Columns of equal width; the rows of panels as high as the tallest column needs."""
        size = self.area.size
        if size.width <= 0 or size.height <= 0:
            return
        k = len(self.sessions)
        widths = [size.width // k + (1 if i < size.width % k else 0) for i in range(k)]
        rows = [name for name, _ in ROWS] + ["curves"]
        curves = self.query_one(Curves)

        def need(name: str) -> Need:
            if name == "curves":
                return curves.need(size.width)
            found = [self.query_one(f"#{name}-{i}", Panel).need(max(1, w - 1)) for i, w in enumerate(widths)]
            full = None if any(n.full is None for n in found) else max(n.full for n in found)
            return Need(max(n.essential for n in found), full, max(n.grow for n in found))

        needs = {name: need(name) for name in rows}
        if self.zoomed is not None:
            heights = {name: (size.height - 1 if name == self.zoomed else 0) for name in rows}
        else:
            heights = column_heights(rows, needs, size.height - 1, CHROME, DROP_ORDER)
        self.hidden = [name for name in rows if not heights.get(name)] if self.zoomed is None else []
        x = 0
        for i, w in enumerate(widths):
            self.place(self.query_one(f"#header-{i}"), x, 0, w, 1, True)
            y = 1
            for name, _ in ROWS:
                h = heights.get(name, 0)
                self.place(self.query_one(f"#{name}-{i}"), x, y, w, h, h > 0)
                y += h
            x += w
        h = heights.get("curves", 0)
        self.place(curves, 0, size.height - h, size.width, h, h > 0)
        self.status()

    @staticmethod
    def place(widget: Widget, x: int, y: int, width: int, height: int, visible: bool) -> None:
        widget.styles.offset = (x, y)
        widget.styles.width = width
        widget.styles.height = max(1, height)
        widget.display = visible

    # -- the cursor -----------------------------------------------------------------------------
    def show_epoch(self) -> None:
        names = self.names()
        states = []
        for i, (cursor, index) in enumerate(zip(self.cursors, self.indexes)):
            position = index.epoch_position(self.epoch)
            cursor.seek(len(index) if position is None else position)
            states.append(cursor.state)
        self.shared_scales(states)
        for i, state in enumerate(states):
            self.header(i, state)
            for name, _ in ROWS:
                self.query_one(f"#{name}-{i}", Panel).show(state, generation=self.epoch * 10 + i)
        self.query_one(Curves).set(list(zip(names, self.finals)), self.epoch, self.last_epoch)
        self.relayout()

    def shared_scales(self, states: list[DashboardState]) -> None:
        """One colour scale for the heatmaps and one pair of axes for the maps, over the columns."""
        probes = [s.probe for s in states if s.probe is not None]
        scale = max((float(np.abs(p.hidden).max()) for p in probes), default=0.0) or None
        limit = embedding.map_limit([s.projection() for s in states if s.probe is not None])
        for i, _ in enumerate(states):
            heatmap = self.query_one(f"#heatmap-{i}", HeatmapPanel)
            heatmap.scale, heatmap.scale_note = scale, "shared scale"
            self.query_one(f"#embedding-{i}", EmbeddingPanel).limit = limit

    def status(self) -> None:
        status = Text(" COMPARE ", style="bold reverse")
        status.append(f" cursor: end of epoch {self.epoch}/{self.last_epoch}", style="bold")
        if self.hidden:
            numbers = [[*(r for r, _ in ROWS), "curves"].index(n) + 1 for n in self.hidden]
            status.append("  too small: " + ", ".join(f"{k} {ROW_NAMES[n]}" for k, n in zip(numbers, self.hidden))
                          + f" (press {'/'.join(map(str, numbers))})", style="yellow")
        status.append("  ←/→ epoch · 1-5 zoom a row · ? keys", style="dim")
        self.query_one("#compare-status", Static).update(status)

    def header(self, i: int, state: DashboardState) -> None:
        """Which session, and which epoch this column shows (its last, for one that ended earlier)."""
        index = self.indexes[i]
        last = max(index.epochs(), default=0)
        shown = self.epoch if index.epoch_position(self.epoch) is not None else last
        self.query_one(f"#header-{i}", SessionHeader).set(state.controller or "?", shown, last, self.epoch,
                                                          state.valid_ppl.last, self.sessions[i].id)

    # -- keys -----------------------------------------------------------------------------------
    def action_move(self, delta: int) -> None:
        self.epoch = max(1 if self.last_epoch else 0, min(self.last_epoch, self.epoch + delta))
        self.show_epoch()

    def action_edge(self, end: int) -> None:
        self.epoch = self.last_epoch if end else min(1, self.last_epoch)
        self.show_epoch()

    def action_zoom(self, number: int) -> None:
        name = [*(r for r, _ in ROWS), "curves"][number - 1]
        self.zoomed = None if self.zoomed == name else name
        self.relayout()

    def action_unzoom(self) -> None:
        self.zoomed = None
        self.relayout()

    def action_reading(self, column: str) -> None:
        for panel in self.query(SpearmanPanel):
            panel.cycle_reading(column)

    def action_colour_by(self) -> None:
        for panel in self.query(EmbeddingPanel):
            panel.cycle_property()

    def action_help(self) -> None:
        keys = [(key_names(b.key), b.description) for b in self.BINDINGS if isinstance(b, Binding)]
        self.push_screen(HelpScreen([("compare keys", keys),
                                     ("everywhere", [("ctrl+p", "command palette")])]))

    def action_screenshot(self) -> None:
        folder = Path.cwd() if self.notice else self.sessions[0].path  # a demo's folder is deleted on quit
        path = self.save_screenshot(f"screenshot-compare-{time.strftime('%Y%m%d-%H%M%S')}.svg", str(folder))
        self.notify(f"saved {path}", title="screenshot")

    def action_quit_compare(self) -> None:
        self.exit(0, return_code=0)

    def get_system_commands(self, screen: Screen):
        """Each command once (Textual's own Keys and Screenshot are replaced by these)."""
        yield SystemCommand("Quit", "Quit compare", self.action_quit_compare)
        yield SystemCommand("Keys", "Show every key", self.action_help)
        yield SystemCommand("Screenshot", "Save an SVG screenshot", self.action_screenshot)
        yield SystemCommand("Theme", "Change the colour theme", self.action_change_theme)
        for n, name in enumerate([*(r for r, _ in ROWS), "curves"], start=1):
            yield SystemCommand(f"Zoom {ROW_NAMES[name]}", f"Show row {n} on the whole screen (toggle)",
                                lambda n=n: self.action_zoom(n))

    def on_unmount(self) -> None:
        for index in self.indexes:
            index.close()
