"""The dashboard: seven panels over one DashboardState, in live, attach and replay modes.

Events are folded into the state as they come (in batches, within a time budget per tick) and the
panels repaint at most ``refresh_hz`` times a second, never once per event, so a fast trainer or a
long catch-up never floods the screen. The modes differ only in where events come from and what
``q`` means:

- live (``LiveApp``): a trainer child's pipe; ``q`` asks whether to stop training or leave it
  running in the background.
- attach (``AttachApp``): a session log followed as it grows; ``q`` quits, the trainer runs on.
- replay (``ReplayApp``): a recorded log with a timeline; the panels show the state at the cursor.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Container
from textual.keys import format_key
from textual.screen import Screen
from textual.widgets import Footer

from enas_tui.sessions import TERMINAL, Session
from enas_tui.sources import LogFollower, TrainerSource, damage_line, describe_damage
from enas_tui.tui.replay_index import ReplayCursor, ReplayIndex
from enas_tui.tui.architecture import ArchitecturePanel
from enas_tui.tui.buffer import BufferPanel
from enas_tui.tui.dialogs import HelpScreen, JumpScreen, QuitScreen
from enas_tui.tui.eventlog import EventLogPanel
from enas_tui.tui.heatmap import HeatmapPanel
from enas_tui.tui.panel import Panel
from enas_tui.tui.probabilities import ProbabilitiesPanel
from enas_tui.tui.spearman import SpearmanPanel
from enas_tui.tui.state import DashboardState
from enas_tui.tui.statusbar import StatusBar
from enas_tui.tui.timeline import Timeline, TimelineView
from enas_tui.tui.training import TrainingPanel

REFRESH_HZ = 10.0
INGEST_BUDGET_S = 0.05  # time per tick spent folding events
CATCH_UP_BUDGET_S = 0.1  # ... while catching up on a long log (keys are still handled between slices)
CATCH_UP_PAINT_S = 0.25  # repaint interval while catching up: the frames in between nobody reads

PANELS: tuple[tuple[str, type[Panel]], ...] = (
    ("probabilities", ProbabilitiesPanel),
    ("heatmap", HeatmapPanel),
    ("buffer", BufferPanel),
    ("spearman", SpearmanPanel),
    ("training", TrainingPanel),
    ("architecture", ArchitecturePanel),
    ("eventlog", EventLogPanel),
)

CSS = """
#panels { layout: grid; grid-size: 2 4; grid-rows: 2fr 5 4 1fr; grid-columns: 1fr 1fr; grid-gutter: 0; }
#eventlog { column-span: 2; }
.-short Panel { border: none; border-top: round $primary-darken-1; padding: 0 1 0 0; }
.-short Panel:focus { border: none; border-top: round $accent; }
.-short #panels { grid-rows: 1fr 6 5 4; }
.-tall #panels { grid-rows: 2fr 7 5 1fr; }
.-wide #panels { grid-size: 3 3; grid-columns: 52 1fr 1fr; grid-rows: 3fr 2fr 3fr; }
.-wide #probabilities { row-span: 3; }
.-wide #eventlog { column-span: 1; }
.-wide.-short #panels { grid-rows: 1fr 6 5; }
"""


def key_names(keys: str) -> str:
    """'question_mark,f1' -> '?, f1' for the help screen."""
    shown = []
    for key in keys.split(","):
        *mods, name = key.split("+")
        shown.append("+".join([*mods, format_key(name)]))
    return ", ".join(shown)


class DashboardApp(App[int]):
    """The panels, the keys they share, and the refresh loop; subclasses feed the state."""

    TITLE = "enas-tui"
    MODE = "dashboard"
    CSS = CSS
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (140, "-wide")]
    VERTICAL_BREAKPOINTS = [(0, "-short"), (32, "-normal"), (44, "-tall")]
    ALLOW_IN_MAXIMIZED_VIEW = "StatusBar, Footer, Timeline"
    BINDINGS = [
        Binding("q", "request_quit", "Quit"),
        Binding("ctrl+q", "request_quit", "Quit", show=False, priority=True),
        Binding("question_mark,f1", "help", "Keys"),
        Binding("s", "screenshot", "Screenshot"),
        Binding("z,enter", "zoom_focused", "Zoom", show=False),
        Binding("escape", "unzoom", "Unzoom", show=False),
        *(Binding(str(n), f"zoom({n})", f"Zoom panel {n} ({name})", show=False)
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

    # -- layout -----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield StatusBar(self.MODE, id="status")
        with Container(id="panels"):
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
        self.status_bar = self.query_one(StatusBar)
        self.start()
        self.paint(force=True)
        self.set_interval(1.0 / self.refresh_hz, self.tick)

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
        interval = CATCH_UP_PAINT_S if self.catching_up else 0.8 / self.refresh_hz
        if not force and (stamp == self._painted or now - self._last_paint < interval):
            return
        self._painted, self._last_paint = stamp, now
        self.frames += 1
        with self.batch_update():
            self.status_bar.show(self.state)
            for panel in self.panels:
                panel.show(self.state, self.generation)
            self.paint_extra()

    def paint_extra(self) -> None:
        """Repaint mode-specific widgets (subclasses)."""

    # -- keys shared by every mode -----------------------------------------------------------
    def action_zoom(self, number: int) -> None:
        panel = self.panels[number - 1]
        if self.screen is not panel.screen:
            return  # a dialog is open
        if self.screen.maximized is panel:
            self.screen.minimize()
            return
        panel.focus()
        self.screen.maximize(panel, container=False)

    def action_zoom_focused(self) -> None:
        focused = self.screen.focused
        if isinstance(focused, Panel):
            if self.screen.maximized is focused:
                self.screen.minimize()
            else:
                self.screen.maximize(focused, container=False)

    def action_unzoom(self) -> None:
        self.screen.minimize()

    def action_help(self) -> None:
        self.push_screen(HelpScreen(self.key_groups()))

    def key_groups(self) -> list[tuple[str, list[tuple[str, str]]]]:
        """Every key, from the bindings themselves (so the help never drifts from them)."""
        seen: dict[str, str] = {}
        for cls in reversed(type(self).__mro__):
            for binding in cls.__dict__.get("BINDINGS", []):
                if isinstance(binding, Binding) and binding.description:
                    seen[key_names(binding.key)] = binding.description
        groups = [(f"{self.MODE} keys", list(seen.items()))]
        groups.append(("events panel (when focused)",
                       [(key_names(b.key), b.description) for b in EventLogPanel.BINDINGS]))
        groups.append(("everywhere", [("tab, shift+tab", "focus the next / previous panel"),
                                      ("ctrl+p", "command palette (every action by name)")]))
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
        yield from super().get_system_commands(screen)
        yield SystemCommand("Keys", "Show every key of the dashboard", self.action_help)
        yield SystemCommand("Screenshot", "Save an SVG screenshot into the session folder",
                            self.action_screenshot)
        for number, (name, _) in enumerate(PANELS, start=1):
            yield SystemCommand(f"Zoom {name}", f"Show panel {number} ({name}) full screen (toggle)",
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

    def __init__(self, session: Session, refresh_hz: float = REFRESH_HZ, **follower_args):
        super().__init__(LogFollower(session, **follower_args), refresh_hz)
        self._session = session

    @property
    def session(self) -> Session | None:
        return self._session

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
        self.push_screen(QuitScreen(session.id if session else None), self._quit_choice)

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
    """``enas-tui replay``: a recorded session with a timeline; the panels show the cursor's state."""

    MODE = "replay"
    BINDINGS = [
        Binding("space", "toggle_play", "Play/pause"),
        Binding("right,l", "step(1)", "Next event"),
        Binding("left,h", "step(-1)", "Previous event"),
        Binding("right_square_bracket,n", "epoch(1)", "Next epoch"),
        Binding("left_square_bracket,p", "epoch(-1)", "Previous epoch"),
        Binding("pagedown,shift+right", "scrub(1)", "Scrub forward 5%", show=False),
        Binding("pageup,shift+left", "scrub(-1)", "Scrub back 5%", show=False),
        Binding("home", "seek_fraction(0)", "Start", show=False),
        Binding("end", "seek_fraction(1)", "End", show=False),
        Binding("plus,equals_sign", "speed(1)", "Faster"),
        Binding("minus", "speed(-1)", "Slower"),
        Binding("g", "jump", "Go to epoch"),
    ]
    SCRUB = 0.05
    FIRST_BUILD_S = 0.05  # index this long before the first frame; the rest in slices after it
    INDEX_SLICE_S = 0.025  # about half of the interface thread's time until the index is complete
    INDEX_EVERY_S = 0.05
    GROW_EVERY_S = 2.0

    def __init__(self, session: Session, refresh_hz: float = REFRESH_HZ, snapshot_every: int | None = None,
                 start: int | None = 0):
        super().__init__(refresh_hz)
        self._session = session
        self.index = ReplayIndex(session.log_path, **({"snapshot_every": snapshot_every} if snapshot_every else {}))
        self.cursor: ReplayCursor | None = None
        self.start_at = start  # position to open at (None: the end)
        self.playing = False
        self.speed_index = 0
        self.play_t: float | None = None
        self._last_advance = time.monotonic()
        self._max_step = 500
        self._slicing = False  # indexing the log in slices between frames
        self._final: tuple[str, str] | None = None  # the session's status once the index is complete

    @property
    def session(self) -> Session | None:
        return self._session

    def compose_extra(self) -> ComposeResult:
        yield Timeline(id="timeline")

    def start(self) -> None:
        self.timeline = self.query_one(Timeline)
        if not self.index.build(max_seconds=self.FIRST_BUILD_S):
            # The rest in slices between frames and key presses, on this thread: a worker thread
            # would hold the GIL for most of each switch interval and slow the interface down.
            self.call_after_refresh(self._start_indexing)  # after the first frame is on screen
        if self.start_at is None:  # open at the end: wait for the index, then go there
            while not self.index.build(max_seconds=1.0):
                pass
        position = len(self.index) if self.start_at is None else self.start_at
        self.cursor = ReplayCursor(self.index, position)
        self.replace_state(self.cursor.state)
        self._decorate()
        self.set_interval(self.GROW_EVERY_S, self._grow)

    def _decorate(self) -> None:
        """What the log alone cannot say: its damage (always), and at its end how the run ended, as
        ``enas-tui sessions`` says it (e.g. crashed: the log has no end record)."""
        self.state.set_log_damage(self.index.summary)
        if self.index.complete and self.cursor.position >= len(self.index):
            final = self._final_status()
            if final is not None and self.state.status in ("waiting", "running"):
                self.state.set_trainer(*final)

    def _final_status(self) -> tuple[str, str] | None:
        if self._final is None:
            try:
                state = self._session.state()
                self._final = (state.status, state.reason)
            except Exception as err:  # noqa: BLE001 - an unreadable session: say so, keep the replay
                self._final = ("error", str(err).splitlines()[0])
        return None if self._final[0] == "running" else self._final

    def _grow(self) -> None:
        """A session still being written: index what was appended since (the timeline grows)."""
        if not self._slicing and not self.index.error:
            if self.index.refresh():
                self._final = None  # the session may have ended since
                self._decorate()

    def _start_indexing(self) -> None:
        self._slicing = True
        self._indexing = self.set_interval(self.INDEX_EVERY_S, self._index_slice)

    def _index_slice(self) -> None:
        if self.index.build(max_seconds=self.INDEX_SLICE_S):
            self._indexing.stop()
            self._slicing = False
        self._decorate()

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

    def seek(self, position: int, keep_clock: bool = False) -> None:
        self.cursor.seek(position)
        self.replace_state(self.cursor.state)
        self._decorate()
        if not keep_clock:
            p = self.cursor.position
            self.play_t = self.index.times[p - 1] if p > 0 else None

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
            elapsed=elapsed, boundaries=tuple(index.boundaries()),
        ))

    def paint(self, force: bool = False) -> None:
        super().paint(force)
        if not force:  # the timeline changes with the index and play state, not only the state
            self.paint_extra()

    # -- keys -------------------------------------------------------------------------------
    def action_toggle_play(self) -> None:
        if not self.playing and self.cursor.position >= len(self.index) and self.index.complete:
            self.seek(0)  # play again from the start
        self.playing = not self.playing
        self._last_advance = time.monotonic()
        self.paint(force=True)

    def action_step(self, delta: int) -> None:
        self.playing = False
        self.seek(self.cursor.position + delta)
        self.paint(force=True)

    def action_epoch(self, delta: int) -> None:
        self.playing = False
        (self.cursor.next_epoch if delta > 0 else self.cursor.previous_epoch)()
        self.seek(self.cursor.position)
        self.paint(force=True)

    def action_scrub(self, direction: int) -> None:
        step = max(1, int(len(self.index) * self.SCRUB))
        self.seek(self.cursor.position + direction * step)
        self.paint(force=True)

    def action_seek_fraction(self, fraction: float) -> None:
        self.seek(int(round(len(self.index) * fraction)))
        self.paint(force=True)

    def action_speed(self, delta: int) -> None:
        self.speed_index = max(0, min(len(SPEEDS) - 1, self.speed_index + delta))
        self.paint(force=True)

    def action_jump(self) -> None:
        self.playing = False

        def done(epoch: int | None) -> None:
            if epoch is not None:
                self.seek(self.index.epoch_position(epoch))
                self.paint(force=True)

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
