"""The dashboard: nine panels over one DashboardState, in live, attach and replay modes.

Events are folded into the state as they come (in batches, within a time budget per tick) and the
panels repaint at most ``refresh_hz`` times a second, never once per event, so a fast trainer or a
long catch-up never floods the screen. The panels are placed by ``layout.plan`` from what each
needs at the terminal's size. The modes differ only in where events come from and what ``q``
means:

- live (``LiveApp``): a trainer child's pipe; ``q`` asks whether to stop training or leave it
  running in the background.
- attach (``AttachApp``): a session log followed as it grows; ``q`` quits, the trainer runs on.
- replay (``ReplayApp``): a recorded log with a timeline, opened at its end; the panels show the
  state at the cursor. ``enas-tui demo`` is replay on a synthetic session.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from rich.text import Text
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Container
from textual.events import Resize
from textual.keys import format_key
from textual.screen import Screen
from textual.widgets import Footer

from enas_tui.commands import attach_command
from enas_tui.sessions import TERMINAL, Session
from enas_tui.sources import LogFollower, TrainerSource, damage_line, describe_damage
from enas_tui.tui.replay_index import ReplayCursor, ReplayIndex
from enas_tui.tui.architecture import ArchitecturePanel
from enas_tui.tui.buffer import BufferPanel
from enas_tui.tui.dialogs import HelpScreen, JumpScreen, QuitScreen
from enas_tui.tui.embedding_map import EmbeddingPanel
from enas_tui.tui.eventlog import EventLogPanel
from enas_tui.tui.heatmap import HeatmapPanel
from enas_tui.tui.layout import Placement, plan
from enas_tui.tui.panel import Panel
from enas_tui.tui.probabilities import ProbabilitiesPanel
from enas_tui.tui.shape import ShapePanel
from enas_tui.tui.spearman import SpearmanPanel
from enas_tui.tui.state import DashboardState
from enas_tui.tui.statusbar import StatusBar
from enas_tui.tui.timeline import Timeline, TimelineView
from enas_tui.tui.training import TrainingPanel

REFRESH_HZ = 10.0
INGEST_BUDGET_S = 0.05  # time per tick spent folding events
CATCH_UP_BUDGET_S = 0.1  # ... while catching up on a long log (keys are still handled between slices)
CATCH_UP_PAINT_S = 0.25  # repaint interval while catching up: the frames in between nobody reads
BOXED_FROM = 40  # panel-area lines from which panels get a full border (below: a title line only)

PANELS: tuple[tuple[str, type[Panel]], ...] = (
    ("probabilities", ProbabilitiesPanel),
    ("heatmap", HeatmapPanel),
    ("buffer", BufferPanel),
    ("spearman", SpearmanPanel),
    ("training", TrainingPanel),
    ("architecture", ArchitecturePanel),
    ("eventlog", EventLogPanel),
    ("embedding", EmbeddingPanel),
    ("shape", ShapePanel),
)
PANEL_NAMES = {
    "probabilities": "action probabilities", "heatmap": "hidden states", "buffer": "memory buffer",
    "spearman": "Table 1", "training": "training", "architecture": "best architecture",
    "eventlog": "events", "embedding": "embedding map", "shape": "cell shape",
}

CSS = """
#panels { height: 1fr; }
#panels > Panel { position: absolute; }
#panels > Panel.-maximized { position: relative; }
#panels.-compact > Panel { border: none; border-top: round $primary-darken-1; padding: 0 1 0 0; }
#panels.-compact > Panel:focus { border: none; border-top: round $accent; }
"""


def key_names(keys: str) -> str:
    """'question_mark,f1' -> '?, f1' for the help screen."""
    shown = []
    for key in keys.split(","):
        *mods, name = key.split("+")
        shown.append("+".join([*mods, format_key(name)]))
    return ", ".join(shown)


def paired(bindings: list[Binding]) -> list[tuple[str, str]]:
    """(keys, description) per binding, a binding whose action is the opposite of the one before
    it (``step(1)`` / ``step(-1)``) joined to it: ``→, l / ←, h  Next event / previous event``."""
    out: list[tuple[str, str]] = []
    previous: Binding | None = None
    for binding in bindings:
        base, _, arg = binding.action.partition("(")
        prev_base, _, prev_arg = previous.action.partition("(") if previous is not None else ("", "", "")
        if previous is not None and base == prev_base and arg.rstrip(")").lstrip("-") == prev_arg.rstrip(")").lstrip("-"):
            out.pop()
            first = key_names(previous.key.split(",")[0])
            out.append((f"{first} / {key_names(binding.key.split(',')[0])}",
                        f"{previous.description} / {binding.description[0].lower()}{binding.description[1:]}"))
            previous = None
            continue
        out.append((key_names(binding.key), binding.description))
        previous = binding
    return out


class PanelArea(Container):
    """The area the panels are placed in; lays them out again whenever its size changes."""

    def on_resize(self, event: Resize) -> None:
        self.app.relayout()


class DashboardApp(App[int]):
    """The panels, the keys they share, and the refresh loop; subclasses feed the state."""

    TITLE = "enas-tui"
    MODE = "dashboard"
    CSS = CSS
    CATCH_UP_PAINT_S = CATCH_UP_PAINT_S
    ALLOW_IN_MAXIMIZED_VIEW = "StatusBar, Footer, Timeline"
    ESCAPE_TO_MINIMIZE = False  # escape is our unzoom, which also puts the panel back in its place
    BINDINGS = [
        Binding("q", "request_quit", "Quit"),
        Binding("ctrl+q", "request_quit", "Quit", show=False, priority=True),
        Binding("question_mark,f1", "help", "Keys"),
        Binding("s", "screenshot", "Screenshot"),
        Binding("z,enter", "zoom_focused", "Zoom the focused panel", show=False),
        Binding("escape", "unzoom", "Back from a zoomed panel", show=False),
        Binding("a", "reading('common_activations')", "Table 1: next common-activations reading", show=False),
        Binding("r", "reading('ged')", "Table 1: next GED reading", show=False),
        Binding("c", "colour_by", "embedding map: colour by the next property", show=False),
        *(Binding(str(n), f"zoom({n})", f"Zoom panel {n} ({PANEL_NAMES[name]})", show=False)
          for n, (name, _) in enumerate(PANELS, start=1)),
    ]

    def __init__(self, refresh_hz: float = REFRESH_HZ):
        super().__init__()
        self.refresh_hz = refresh_hz
        self.state = DashboardState()
        self.generation = 0  # bumped whenever self.state is replaced by another object
        self._painted: tuple[int, int] | None = None
        self._last_paint = 0.0
        self.frames = 0  # repaints pushed to the panels (for tests and the benchmark)
        self.catching_up = False
        self.placements: dict[str, Placement] = {}
        self._layout_key: tuple | None = None

    # -- layout -----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield StatusBar(self.MODE, id="status")
        with PanelArea(id="panels"):
            for number, (name, cls) in enumerate(PANELS, start=1):
                yield cls(number, id=name)
        yield from self.compose_extra()
        yield Footer()

    def compose_extra(self) -> ComposeResult:
        return iter(())

    @property
    def panels(self) -> list[Panel]:
        return self._panels

    def panel(self, name: str) -> Panel:
        return next(p for p in self._panels if p.id == name)

    def on_mount(self) -> None:
        # Keep the widgets: while a dialog is open, queries would search the dialog's screen.
        self._panels: list[Panel] = list(self.query(Panel))
        self.area = self.query_one(PanelArea)
        self.status_bar = self.query_one(StatusBar)
        self.start()
        self.paint(force=True)
        self.set_interval(1.0 / self.refresh_hz, self.tick)

    def relayout(self, force: bool = False) -> None:
        """Place the panels for the area's size and what they need now (when either changed)."""
        size = self.area.size
        state = self.state
        key = (size, state.controller, state.kind, state.num_nodes,
               state.probe is not None and state.probe.hidden.shape[0], bool(state.best_arch), self.no_color)
        if (key == self._layout_key and not force) or size.width <= 0 or size.height <= 0:
            return
        self._layout_key = key
        boxed = size.height >= BOXED_FROM
        self.area.set_class(not boxed, "-compact")
        chrome, pad = (2, 4) if boxed else (1, 1)
        panels = {p.id: p for p in self._panels}
        placements = plan(size.width, size.height, lambda name, width: panels[name].layout_need(width), chrome,
                          lambda outer: max(1, outer - pad))
        self.placements = {p.name: p for p in placements}
        zoomed = self.screen.maximized if self.screen is self.area.screen else None
        for p in placements:
            panel = panels[p.name]
            if panel is zoomed:
                continue
            panel.styles.offset = (p.x, p.y)
            panel.styles.width = p.width
            panel.styles.height = p.height
            panel.display = p.visible
        self.note_hidden()

    def note_hidden(self) -> None:
        """Say which panels the screen is too small for, and how to see them."""
        hidden = [(n, name) for n, (name, _) in enumerate(PANELS, start=1)
                  if name in self.placements and not self.placements[name].visible]
        notes = [Text(" too small for: " + ", ".join(f"{n} {PANEL_NAMES[name]}" for n, name in hidden)
                      + " (press its number)", style="yellow")] if hidden else []
        if [t.plain for t in notes] != [t.plain for t in self.status_bar.extra_notices if "too small" in t.plain]:
            self.status_bar.extra_notices = [t for t in self.status_bar.extra_notices
                                             if "too small" not in t.plain] + notes
            self.status_bar.refresh(layout=True)

    def start(self) -> None:
        """Open the source (subclasses)."""

    # -- the loop ---------------------------------------------------------------------------
    def tick(self) -> None:
        self.ingest()
        self.paint()

    def ingest(self) -> None:
        """Fold what arrived since the last tick (subclasses)."""

    def replace_state(self, state: DashboardState) -> None:
        if state is not self.state:
            self.state = state
            self.generation += 1

    def paint(self, force: bool = False) -> None:
        """Hand the state to the panels, at most refresh_hz times a second and only if it changed."""
        now = time.monotonic()
        stamp = (self.generation, self.state.ticks)
        interval = self.CATCH_UP_PAINT_S if self.catching_up else 0.8 / self.refresh_hz
        if not force and (stamp == self._painted or now - self._last_paint < interval):
            return
        self._painted, self._last_paint = stamp, now
        self.frames += 1
        with self.batch_update():
            self.status_bar.show(self.state, self.session)
            for panel in self.panels:
                panel.show(self.state, self.generation)
            self.relayout()
            self.paint_extra()

    def paint_extra(self) -> None:
        """Repaint mode-specific widgets (subclasses)."""

    # -- keys shared by every mode -----------------------------------------------------------
    def action_zoom(self, number: int) -> None:
        panel = self.panels[number - 1]
        if self.screen is not panel.screen:
            return  # a dialog is open
        if self.screen.maximized is panel:
            self.action_unzoom()
            return
        self.zoom(panel)

    def zoom(self, panel: Panel) -> None:
        """Show ``panel`` alone, full screen (a panel the grid has no room for, too)."""
        if self.screen.maximized is not None:
            self.action_unzoom()
        panel.display = True
        panel.styles.width = "1fr"
        panel.styles.height = "1fr"
        panel.styles.offset = (0, 0)
        panel.focus()
        self.screen.maximize(panel, container=False)

    def action_zoom_focused(self) -> None:
        focused = self.screen.focused
        if isinstance(focused, Panel):
            if self.screen.maximized is focused:
                self.action_unzoom()
            else:
                self.zoom(focused)

    def action_unzoom(self) -> None:
        if self.screen.maximized is None:
            return
        self.screen.minimize()
        self._layout_key = None  # the area is re-arranged after this: place the panels again then
        self.call_after_refresh(self.relayout, True)

    def action_reading(self, column: str) -> None:
        reading = ""
        for panel in self.query(SpearmanPanel):
            reading = panel.cycle_reading(column)
        self.notify(f"Table 1 {'common activations' if column != 'ged' else 'GED'}: {reading} reading",
                    timeout=2)

    def action_colour_by(self) -> None:
        prop = ""
        for panel in self.query(EmbeddingPanel):
            prop = panel.cycle_property()
        self.notify(f"embedding map coloured by: {prop}", timeout=2)

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.key_groups()))

    def key_groups(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """Every key, from the bindings themselves (so the help never drifts from them); a key and
        its opposite (next / previous) share a line."""
        groups = []
        for cls in reversed(type(self).__mro__):
            bindings = [b for b in cls.__dict__.get("BINDINGS", []) if isinstance(b, Binding) and b.description
                        and not b.key.startswith("ctrl+q") and not b.description.startswith("Zoom panel")]
            if bindings:
                title = "keys" if cls is DashboardApp else f"{cls.MODE} keys"
                groups.append((title, paired(bindings)))
        names = ", ".join(f"{n} {PANEL_NAMES[name]}" for n, (name, _) in enumerate(PANELS, start=1))
        groups.append(("panels", [(f"1-{len(PANELS)}", f"zoom a panel (again or esc: back): {names}")]))
        groups.append(("events panel (when focused)",
                       [(key_names(b.key), b.description) for b in EventLogPanel.BINDINGS]))
        groups.append(("everywhere", [("tab, shift+tab", "focus the next / previous panel"),
                                      ("ctrl+p", "command palette (every action by name)"),
                                      ("ctrl+q", "quit (as q)")]))
        return groups

    def screenshot_dir(self) -> Path:
        session = self.session
        return session.path if session is not None and session.path.is_dir() else Path.cwd()

    @property
    def session(self) -> Session | None:
        return None

    def action_screenshot(self) -> None:
        name = f"screenshot-{self.MODE}-{time.strftime('%Y%m%d-%H%M%S')}.svg"
        path = self.save_screenshot(name, str(self.screenshot_dir()))
        self.notify(f"saved {path}", title="screenshot")

    def action_request_quit(self) -> None:
        self.finish(0)

    def finish(self, code: int) -> None:
        """Quit with ``code`` as both the run() result and the app's return code."""
        self.exit(code, return_code=code)

    def get_system_commands(self, screen: Screen):
        """The command palette: the dashboard's own actions, each once. Textual's own "Quit"
        (which would end a live run without asking) and its "Keys" and "Screenshot" are replaced
        by ours."""
        yield SystemCommand("Quit", "Quit the dashboard (a live run asks: stop training or leave it running)",
                            self.action_request_quit)
        yield SystemCommand("Keys", "Show every key of the dashboard", self.action_help)
        yield SystemCommand("Screenshot", "Save an SVG screenshot into the session folder",
                            self.action_screenshot)
        yield SystemCommand("Theme", "Change the colour theme", self.action_change_theme)
        yield SystemCommand("Table 1: activations reading", "Cycle common activations: paper / aligned",
                            lambda: self.action_reading("common_activations"))
        yield SystemCommand("Table 1: GED reading", "Cycle GED: paper / aligned / exact",
                            lambda: self.action_reading("ged"))
        yield SystemCommand("Embedding map: colour by", "Colour the map by the next property",
                            self.action_colour_by)
        for number, (name, _) in enumerate(PANELS, start=1):
            yield SystemCommand(f"Zoom {PANEL_NAMES[name]}", f"Show panel {number} full screen (toggle)",
                                lambda n=number: self.action_zoom(n))


# -- following a log or a trainer ---------------------------------------------------------------
class FollowApp(DashboardApp):
    """Folds events from a source that grows (a log being written, a trainer's pipe)."""

    def __init__(self, source, refresh_hz: float = REFRESH_HZ):
        super().__init__(refresh_hz)
        self.source = source
        self._chasing = False
        self._damage_seen: set[tuple[int, int, str]] = set()

    def ingest(self) -> None:
        budget = CATCH_UP_BUDGET_S if self.catching_up else INGEST_BUDGET_S
        deadline = time.perf_counter() + budget
        while True:
            events = self.source.poll()
            self.state.apply_all(events)
            if not events or self.source.caught_up or time.perf_counter() >= deadline:
                break
        status = self.source.trainer_status()
        self.state.set_trainer(*(status if status else (None, "")))
        self.state.set_connection(getattr(self.source, "connection", None))
        history = getattr(self.source, "take_shape_history", None)  # a remote catch-up's, after its first frame
        if history is not None and (earlier := history()):
            self.state.prepend_shapes(earlier)
        self._show_damage()
        self.catching_up = not self.source.caught_up
        if self.catching_up and not self._chasing:  # go on at once, not at the next tick
            self._chasing = True
            self.set_timer(0.001, self._chase)

    def _show_damage(self) -> None:
        """A line in the events panel per damaged span the source skipped, and the header's notice."""
        damage = self.source.damage
        for span in damage:
            key = (span.start, span.end, span.reason)
            if key not in self._damage_seen:
                self._damage_seen.add(key)
                self.state.note("error", damage_line(span))
        gone = self.state.trainer is not None or self.state.status in TERMINAL
        torn = getattr(self.source, "torn_tail", None) if gone else None  # a live write is not damage
        self.state.set_log_damage(describe_damage(damage, torn))

    def _chase(self) -> None:
        self._chasing = False
        self.tick()


class AttachApp(FollowApp):
    """``enas-tui attach``: follow a session's log; quitting leaves the trainer alone."""

    MODE = "attach"

    def __init__(self, session: Session, refresh_hz: float = REFRESH_HZ, source: LogFollower | None = None,
                 **follower_args):
        """``source``: a follower of ``session`` other than the default (a remote attach's)."""
        super().__init__(source or LogFollower(session, **follower_args), refresh_hz)
        self._session = session

    @property
    def session(self) -> Session | None:
        return self._session

    def start(self) -> None:
        hint = getattr(self.source, "resume_hint", None)  # a remote session continues on its host
        if hint is not None:
            self.status_bar.resume_hint = hint

    def screenshot_dir(self) -> Path:
        # A remote attach follows a temporary mirror of the log: keep screenshots where the user is.
        return Path.cwd() if getattr(self.source, "remote", False) else super().screenshot_dir()

    def on_unmount(self) -> None:
        self.source.close()


class LiveApp(FollowApp):
    """``enas-tui train``: the trainer runs as a child; ``q`` asks to stop it or leave it running."""

    MODE = "live"

    def __init__(self, source: TrainerSource, refresh_hz: float = REFRESH_HZ):
        super().__init__(source, refresh_hz)
        self.outcome = "running"  # then: stopped | detached | finished | crashed | failed | start-failed
        self.message = ""

    @property
    def session(self) -> Session | None:
        return self.source.session

    def ingest(self) -> None:
        super().ingest()
        status = self.state.run_status
        if self.outcome == "start-failed":
            return
        if self.source.session is None and status == "failed":  # the child died before its session
            self.outcome, self.message = "start-failed", self.state.run_message
            self.finish(self._child_code())
        elif self.outcome == "stopping" and (self.source.ended or self.source.pipe_done):
            self.outcome = "stopped"
            self.finish(0)

    def _child_code(self) -> int:
        code = getattr(self.source.process, "returncode", None)
        return code if isinstance(code, int) and code > 0 else 1

    def action_request_quit(self) -> None:
        if self.outcome == "stopping":
            self.outcome = "detached"  # a second q: do not wait for the checkpoint
            self.source.detach()
            self.finish(0)
            return
        if self.source.ended or self.source.pipe_done:
            self.outcome = self.state.run_status
            self.finish(0 if self.outcome in ("finished", "stopped") else 1)
            return
        session = self.source.session
        self.push_screen(QuitScreen(attach_command(session) if session else None), self._quit_choice)

    def _quit_choice(self, choice: str | None) -> None:
        if choice == "stop":
            self.outcome = "stopping"
            self.status_bar.extra = "stopping"
            self.source.stop()
            self.paint(force=True)
        elif choice == "detach":
            self.outcome = "detached"
            self.source.detach()
            self.finish(0)


# -- replay -----------------------------------------------------------------------------------
SPEEDS: tuple[float, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, math.inf)
MAX_GAP_S = 2.0  # at any speed, idle stretches longer than this (in wall time) are skipped


def speed_label(speed: float) -> str:
    return "max" if math.isinf(speed) else f"{speed:g}x"


class ReplayApp(DashboardApp):
    """``enas-tui replay``: a recorded session with a timeline; the panels show the cursor's state.

    It opens at the end of the recording (what the user came to see): the first frame comes after
    a twentieth of a second of indexing and the cursor follows the index to the end, a few
    seconds for the longest logs, while keys already work (``Home`` goes to the start). The
    status line describes the recording as ``enas-tui sessions`` does (a killed trainer's session
    is "crashed", not "running"); the timeline places the cursor in it.
    """

    MODE = "replay"
    BINDINGS = [
        Binding("space", "toggle_play", "Play/pause"),
        Binding("right,l", "step(1)", "Next event"),
        Binding("left,h", "step(-1)", "Previous event"),
        Binding("right_square_bracket,n", "epoch(1)", "Next epoch"),
        Binding("left_square_bracket,p", "epoch(-1)", "Previous epoch"),
        Binding("pagedown,shift+right", "scrub(1)", "Scrub forward 5%", show=False),
        Binding("pageup,shift+left", "scrub(-1)", "Scrub back 5%", show=False),
        Binding("home", "seek_fraction(0)", "Start of the session", show=False),
        Binding("end", "seek_fraction(1)", "End of the session", show=False),
        Binding("plus,equals_sign", "speed(1)", "Faster"),
        Binding("minus", "speed(-1)", "Slower"),
        Binding("g", "jump", "Go to epoch"),
    ]
    SCRUB = 0.05
    CATCH_UP_PAINT_S = 1.0  # while following the index to the end: the timeline shows the progress
    FIRST_BUILD_S = 0.05  # index this long before the first frame; the rest in slices after it
    INDEX_SLICE_S = 0.025  # about half of the interface thread's time until the index is complete,
    INDEX_EVERY_S = 0.05
    FOLLOW_SLICE_S = 0.08  # ... or most of it while the user waits for the end (keys within 0.08 s)
    GROW_EVERY_S = 2.0

    def __init__(self, session: Session, refresh_hz: float = REFRESH_HZ, snapshot_every: int | None = None,
                 start: int | None = None):
        super().__init__(refresh_hz)
        self._session = session
        self.index = ReplayIndex(session.log_path, **({"snapshot_every": snapshot_every} if snapshot_every else {}))
        self.cursor: ReplayCursor | None = None
        self.start_at = start  # position to open at (None: the end)
        self.follow_end = start is None  # the cursor follows the index to the end until a key moves it
        self.playing = False
        self.speed_index = 0
        self.play_t: float | None = None
        self._last_advance = time.monotonic()
        self._max_step = 500
        self._slicing = False  # indexing the log in slices between frames
        self.recording: tuple[str, str] = ("waiting", "")  # the session's status, as `sessions` says

    @property
    def session(self) -> Session | None:
        return self._session

    def compose_extra(self) -> ComposeResult:
        yield Timeline(id="timeline")

    def on_resize(self, event: Resize) -> None:
        """Under 30 lines the timeline takes one line (position and bar), leaving the panels room."""
        self.query_one(Timeline).styles.height = 1 if event.size.height < 30 else 2

    def start(self) -> None:
        self.timeline = self.query_one(Timeline)
        done = self.index.build(max_seconds=self.FIRST_BUILD_S)
        position = len(self.index) if self.start_at is None else self.start_at
        self.cursor = ReplayCursor(self.index, position)
        self.replace_state(self.cursor.state)
        self.note_recording()
        if not done:
            # The rest in slices between frames and key presses, on this thread: a worker thread
            # would hold the GIL for most of each switch interval and slow the interface down.
            self.catching_up = self.follow_end
            self.call_after_refresh(self._start_indexing)  # after the first frame is on screen
        self.set_interval(self.GROW_EVERY_S, self._grow)

    def note_recording(self) -> None:
        """The recording's status for the status line: its end record's, else what
        ``enas-tui sessions`` says (running only while its trainer lives; else crashed)."""
        end = self.index.end_state() if self.index.complete else None
        if end is not None and end.status in ("finished", "stopped", "failed"):
            status, message = end.status, end.message
        else:
            try:
                found = self._session.state()
            except Exception as err:  # noqa: BLE001 - an unreadable session: say so, keep the replay
                status, message = "error", str(err).splitlines()[0]
            else:
                status, message = found.status, ""
                if status in ("crashed", "damaged"):
                    last = end.last_error if end is not None else None
                    message = last or found.reason or "the trainer is gone and the log has no end record"
                elif status == "running":
                    message = "still being recorded: the timeline grows"
        self.recording = (status, message)
        self.status_bar.override = self.recording
        self.state.set_log_damage(self.index.summary)

    def replace_state(self, state: DashboardState) -> None:
        """The cursor's state, with the log's damage notice (it belongs to the whole recording)."""
        super().replace_state(state)
        state.set_log_damage(self.index.summary)

    def _grow(self) -> None:
        """A session still being written: index what was appended since (the timeline grows)."""
        if not self._slicing and not self.index.error:
            at_end = self.follow_end or self.cursor.position >= len(self.index)
            self.index.refresh()
            if at_end and self.cursor.position < len(self.index):
                self.seek(len(self.index))
            self.note_recording()

    def _start_indexing(self) -> None:
        self._slicing = True
        self._index_slice()

    def _index_slice(self) -> None:
        """Index a slice, then schedule the next: at once while the user waits for the end (keys
        and frames are handled between slices), else after a pause that leaves the interface half
        of the thread's time."""
        following = self.follow_end
        done = self.index.build(max_seconds=self.FOLLOW_SLICE_S if following else self.INDEX_SLICE_S)
        if following:
            self.seek(len(self.index))
        if done:
            self._slicing = False
            self.catching_up = False
            self.note_recording()
            self.paint(force=True)
            return
        self.set_timer(0.001 if following else self.INDEX_EVERY_S - self.INDEX_SLICE_S, self._index_slice)

    @property
    def speed(self) -> float:
        return SPEEDS[self.speed_index]

    def ingest(self) -> None:
        if self.playing:
            self.advance()

    def advance(self) -> None:
        now = time.monotonic()
        dt, self._last_advance = now - self._last_advance, now
        cursor, index = self.cursor, self.index
        position, total = cursor.position, len(index)
        if position >= total:
            if index.complete:
                self.playing = False
            return
        if math.isinf(self.speed):
            started = time.perf_counter()
            self.seek(position + self._max_step)
            took = time.perf_counter() - started
            budget = 0.6 / self.refresh_hz
            self._max_step = int(min(50_000, max(50, self._max_step * (1.5 if took < budget / 2 else 0.7))))
            return
        upcoming = index.times[position]
        if self.play_t is None or (upcoming - self.play_t) / self.speed > MAX_GAP_S:
            self.play_t = upcoming  # skip an idle stretch (or start)
        else:
            self.play_t += dt * self.speed
        self.seek(max(position + 1 if self.play_t >= upcoming else position,
                      index.position_at_time(self.play_t)), keep_clock=True)

    def paint_extra(self) -> None:
        cursor, index = self.cursor, self.index
        times = index.times
        p = cursor.position
        elapsed = times[p - 1] - times[0] if p > 0 and len(times) else None
        try:
            size = self.session.log_path.stat().st_size
            indexed = 1.0 if index.complete else min(1.0, index._end / max(1, size))
        except OSError:
            indexed = 1.0
        self.timeline.show(TimelineView(
            position=p, total=len(index), indexed=indexed, playing=self.playing,
            speed=speed_label(self.speed), epoch=cursor.epoch, epochs=self.state.epochs,
            elapsed=elapsed, boundaries=tuple(index.boundaries()), ending=self.recording[0],
        ))

    def paint(self, force: bool = False) -> None:
        super().paint(force)
        if not force:  # the timeline changes with the index and play state, not only the state
            self.paint_extra()

    # -- keys -------------------------------------------------------------------------------
    def seek(self, position: int, keep_clock: bool = False) -> None:
        self.cursor.seek(position)
        self.replace_state(self.cursor.state)
        if not keep_clock:
            p = self.cursor.position
            self.play_t = self.index.times[p - 1] if p > 0 else None

    def move(self, position: int) -> None:
        """A user's move: the cursor stops following the end of the index (End resumes it)."""
        self.follow_end = position >= len(self.index) and not self.index.complete
        self.catching_up = self.follow_end
        self.seek(position)
        self.paint(force=True)

    def action_toggle_play(self) -> None:
        self.follow_end = False
        if not self.playing and self.cursor.position >= len(self.index) and self.index.complete:
            self.seek(0)  # play again from the start
        self.playing = not self.playing
        self._last_advance = time.monotonic()
        self.paint(force=True)

    def action_step(self, delta: int) -> None:
        self.playing = False
        self.move(self.cursor.position + delta)

    def action_epoch(self, delta: int) -> None:
        self.playing = False
        self.follow_end = False
        (self.cursor.next_epoch if delta > 0 else self.cursor.previous_epoch)()
        self.move(self.cursor.position)

    def action_scrub(self, direction: int) -> None:
        step = max(1, int(len(self.index) * self.SCRUB))
        self.move(self.cursor.position + direction * step)

    def action_seek_fraction(self, fraction: float) -> None:
        self.move(int(round(len(self.index) * fraction)))

    def action_speed(self, delta: int) -> None:
        self.speed_index = max(0, min(len(SPEEDS) - 1, self.speed_index + delta))
        self.paint(force=True)

    def action_jump(self) -> None:
        self.playing = False

        def done(epoch: int | None) -> None:
            if epoch is not None:
                self.move(self.index.epoch_position(epoch))

        self.push_screen(JumpScreen(self.index.epochs()), done)

    def on_timeline_seek(self, message: Timeline.Seek) -> None:
        self.action_seek_fraction(message.fraction)

    def get_system_commands(self, screen: Screen):
        yield from super().get_system_commands(screen)
        yield SystemCommand("Play / pause", "Start or stop playback", self.action_toggle_play)
        yield SystemCommand("Go to epoch", "Jump to the end of an epoch", self.action_jump)
        yield SystemCommand("Go to start", "Jump to the first event", lambda: self.action_seek_fraction(0))
        yield SystemCommand("Go to end", "Jump to the last event", lambda: self.action_seek_fraction(1))

    def on_unmount(self) -> None:
        self.playing = False


class DemoApp(ReplayApp):
    """``enas-tui demo``: replay of a synthetic session, saying on screen that it is one."""

    MODE = "demo"

    def start(self) -> None:
        from enas_tui.tui import DEMO_NOTE

        super().start()
        self.status_bar.extra_notices.append(Text(" " + DEMO_NOTE, style="bold magenta"))
        self.status_bar.refresh(layout=True)

    def screenshot_dir(self) -> Path:
        return Path.cwd()  # the session folder is deleted on quit
