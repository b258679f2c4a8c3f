"""The dashboard driven the way a person uses it (Textual's Pilot): what the panels show, the keys."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from enas_tui.events import BufferFill, Diagnostics, Probe, SessionEnd
from enas_tui.search_space import decision_labels
from enas_tui.sessions import Session
from enas_tui.sources import TrainerSource
from enas_tui.tui.app import SPEEDS, AttachApp, LiveApp, ReplayApp
from enas_tui.tui.dialogs import HelpScreen, JumpScreen, QuitScreen
from enas_tui.tui.heatmap import pick
from enas_tui.tui.plot import diverging
from enas_tui.tui.state import DashboardState, summarize_probe
from enas_tui.tui.synthetic import SyntheticRun, synthetic_events, write_synthetic_session

from helpers import FakeProcess, sync

RUN = SyntheticRun(epochs=3)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[Session, list]:
    session = write_synthetic_session(tmp_path_factory.mktemp("sessions"), RUN)
    return session, list(synthetic_events(RUN))


async def until(pilot, condition, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the dashboard"
        await pilot.pause(0.02)
    await pilot.pause(0.15)  # one more refresh period, so the panels show it


def last(events, cls):
    return [e for e in events if isinstance(e, cls)][-1]


def caught_up(app) -> bool:
    return app.source.caught_up and app.source.ended


@sync
async def test_panels_show_the_session(recorded):
    session, events = recorded
    app = AttachApp(session)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: caught_up(app))
        probe, diag, buf, end = (last(events, c) for c in (Probe, Diagnostics, BufferFill, SessionEnd))
        # 1: per decision, the median probability of the most likely action
        text = app.panel("probabilities").text()
        summary = summarize_probe(probe, probe_sizes(events))
        for label, median in zip(decision_labels(12), summary.max_median):
            assert f"{label:<9} " in text and f" {median:.2f}" in text
        # 2: the collapse index of the latest probe
        assert f"collapse {diag.collapse_index['hidden']:.4f}" in app.panel("heatmap").text()
        # 3: the gauge's percentage and counts
        assert f"{buf.size / buf.capacity:4.0%} {buf.size:,}/{buf.capacity:,}" in app.panel("buffer").text()
        # 4: the default (paper) reading of each Spearman column, next to the paper's value
        spearman = app.panel("spearman").text()
        for measure in ("common_activations_paper", "common_connections", "ged_paper", "abs_perf_diff"):
            assert f"{diag.spearman[measure]['rho']:+6.3f}" in spearman
        assert f"{diag.spearman['ged_aligned']['rho']:+6.3f}" not in spearman
        assert "-0.404" in spearman  # the paper's supervised "common activations"
        # 5, 6, 7
        assert "epoch 3/3" in app.panel("training").text()
        arch = app.panel("architecture").text()
        assert end.best_arch.split(",")[0] in arch and f"valid ppl {end.best_ppl:.2f}" in arch
        assert "session finished" in app.panel("eventlog").text()
        assert app.state.run_status == "finished"


def probe_sizes(events) -> list[int]:
    return list(events[0].decision_sizes)


@sync
async def test_heatmap_rows_are_the_probe_rows(recorded):
    session, events = recorded
    probe = last(events, Probe)
    app = AttachApp(session)
    async with app.run_test(size=(160, 48)) as pilot:
        await until(pilot, lambda: caught_up(app))
        heatmap = app.panel("heatmap")
        area = heatmap.content_size.height - 2
        rows = pick(probe.hidden.shape[0], 2 * area)
        scale = float(np.abs(probe.hidden).max())
        strip = heatmap.render_line(1)  # first line of pixels: probe rows rows[0] (top) and rows[1]
        first = next(seg for seg in strip if seg.text.startswith("▀"))
        top, bottom = diverging(probe.hidden[rows[0], 0], scale), diverging(probe.hidden[rows[1], 0], scale)
        assert first.style.color.triplet == top and first.style.bgcolor.triplet == bottom
        drawn = sum(1 for y in range(1, area + 1) if any(s.text.startswith("▀") for s in heatmap.render_line(y)))
        assert drawn == (len(rows) + 1) // 2


@sync
async def test_zoom_help_screenshot_and_quit(recorded):
    session, _ = recorded
    for old in session.path.glob("screenshot-*.svg"):
        old.unlink()
    app = AttachApp(session)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: caught_up(app))
        await pilot.press("2")
        assert app.screen.maximized is app.panel("heatmap")
        await pilot.press("escape")
        assert app.screen.maximized is None
        await pilot.press("1")
        await pilot.pause()
        probs = app.panel("probabilities")
        assert app.screen.maximized is probs and "parent 11" in probs.text()  # the full table
        await pilot.press("1")
        assert app.screen.maximized is None
        await pilot.press("7", "up", "up")  # the event log, zoomed and focused, scrolled back
        log = app.panel("eventlog")
        assert log.back == 2 and "2 newer lines" in log.text() and "session finished" not in log.text()
        await pilot.press("down", "down", "7")
        assert log.back == 0 and "session finished" in log.text()
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        help_text = str(app.screen.query_one("#help-text").render())
        for key in ("zoom a panel", "9 cell shape", "Screenshot", "Quit", "command palette"):
            assert key in help_text
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
        await pilot.press("s")
        await pilot.pause()
        shots = list(session.path.glob("screenshot-attach-*.svg"))
        assert len(shots) == 1 and shots[0].read_text().lstrip().startswith("<svg")
        await pilot.press("q")
    assert app.return_code == 0


@sync
async def test_replay_keys_move_the_cursor(recorded):
    session, events = recorded
    app = ReplayApp(session, start=0)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        assert app.cursor.position == 0 and app.index.complete
        await pilot.press("right", "right", "right")
        assert app.cursor.position == 3
        await pilot.press("left")
        assert app.cursor.position == 2
        await pilot.press("right_square_bracket")
        first_end = app.index.epoch_position(1)
        assert app.cursor.position == first_end
        await pilot.pause(0.15)
        # The panels show the state at the cursor: the last diagnostics before it.
        diag = [e for e in events[:first_end] if isinstance(e, Diagnostics)][-1]
        rho = diag.spearman["common_activations_paper"]["rho"]
        assert f"{rho:+6.3f}" in app.panel("spearman").text()
        assert "epoch 1/3" in app.panel("training").text()
        assert "1 warning" not in str(app.query_one("#status").render())  # the warning comes in epoch 2
        await pilot.press("g")
        assert isinstance(app.screen, JumpScreen)
        await pilot.press("2", "enter")
        assert app.cursor.position == app.index.epoch_position(2)
        await pilot.press("left_square_bracket")
        assert app.cursor.position == first_end
        await pilot.press("end")
        assert app.cursor.position == len(events)
        await pilot.press("home")
        assert app.cursor.position == 0
        await pilot.press("pagedown")
        assert app.cursor.position == int(len(events) * app.SCRUB)


@sync
async def test_replay_plays_and_pauses(recorded):
    session, events = recorded
    app = ReplayApp(session)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.pause()
        for _ in SPEEDS:
            await pilot.press("plus")
        assert app.speed == float("inf")
        await pilot.press("space")
        assert app.playing
        await until(pilot, lambda: app.cursor.position == len(events))
        assert not app.playing and app.state.status == "finished"
        await pilot.press(*["minus"] * 7)
        assert app.speed == 10  # the session's 11 s in about a second
        await pilot.press("home", "space")
        assert app.playing
        await pilot.pause(0.4)
        await pilot.press("space")
        assert not app.playing
        moved = app.cursor.position
        assert 0 < moved < len(events)
        await pilot.pause(0.3)
        assert app.cursor.position == moved


WRITER = textwrap.dedent("""
    import sys, time
    from enas_tui.session_log import LogWriter
    from enas_tui.sessions import Session, write_json_atomic
    from enas_tui.tui.synthetic import SyntheticRun, synthetic_events
    session = Session(__import__("pathlib").Path(sys.argv[1]))
    write_json_atomic(session.status_path, {"status": "running", "pid": __import__("os").getpid()})
    go = session.path / "go"
    with LogWriter(session.log_path) as writer:
        for i, event in enumerate(synthetic_events(SyntheticRun(epochs=2))):
            writer.append(event)
            if event.type == "epoch_end" and event.epoch == 1:  # wait until the viewer has shown epoch 1
                deadline = time.monotonic() + 60
                while not go.exists() and time.monotonic() < deadline:
                    time.sleep(0.02)
            if i % 10 == 0:
                time.sleep(0.02)
    write_json_atomic(session.status_path, {"status": "finished"})
""")


@sync
async def test_attach_follows_a_log_another_process_writes(tmp_path):
    session = Session(tmp_path / "growing")
    session.path.mkdir()
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(session.path)])
    try:
        app = AttachApp(session)
        async with app.run_test(size=(80, 24)) as pilot:
            seen = set()
            deadline = time.monotonic() + 60
            while not app.source.ended and time.monotonic() < deadline:
                seen.add(app.state.epoch)
                if app.state.epoch == 1:
                    (session.path / "go").touch()  # the writer goes on only once epoch 1 was on screen
                await pilot.pause(0.05)
            await pilot.pause(0.2)
            assert app.source.ended and app.state.run_status == "finished"
            assert len(seen) >= 2  # it showed the run while it was being written
            expected = DashboardState()
            expected.apply_all(synthetic_events(SyntheticRun(epochs=2)))
            assert app.state.reward.points == expected.reward.points
            assert "epoch 2/2" in app.panel("training").text()
    finally:
        child.wait(30)


@sync
async def test_attach_shows_a_crashed_trainer(tmp_path):
    run = SyntheticRun(epochs=2, end=None, stop_after=100)
    session = write_synthetic_session(tmp_path, run)  # status "running", its pid gone
    (session.path / "trainer.log").write_text("RuntimeError: CUDA error: an illegal memory access\n")
    app = AttachApp(session)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.state.run_status == "crashed")
        status = str(app.query_one("#status").render())
        assert "✖ CRASHED" in status and "illegal memory access" in status
        assert "trainer crashed" in app.panel("eventlog").text()


@sync
async def test_no_color_keeps_every_number(recorded, monkeypatch):
    session, events = recorded
    monkeypatch.setenv("NO_COLOR", "1")
    app = AttachApp(session)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: caught_up(app))
        assert app.no_color
        diag = last(events, Diagnostics)
        assert f"collapse {diag.collapse_index['hidden']:.4f}" in app.panel("heatmap").text()
        line = "".join(s.text for s in app.panel("heatmap").render_line(1))
        assert "▀" not in line and set(line.strip()) <= set(" ░▒▓█")


# -- live ---------------------------------------------------------------------------------------
def live_source(root: Path, session: Session | None, alive: bool = True, **kw) -> TrainerSource:
    source = TrainerSource(root)
    kw.setdefault("returncode", None)
    source.process = FakeProcess(session.id if session else None, alive=alive, **kw)
    return source


@sync
async def test_live_quit_can_leave_the_trainer_running(tmp_path):
    session = write_synthetic_session(tmp_path, SyntheticRun(epochs=1, end=None))
    source = live_source(tmp_path, session)
    source.queue.extend(synthetic_events(SyntheticRun(epochs=1, end=None)))
    app = LiveApp(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: not source.queue)
        await pilot.press("q")
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, QuitScreen) and app.is_running
        await pilot.press("q", "b")
    assert source.process.detached and not source.process.stopped and app.outcome == "detached"


@sync
async def test_live_quit_can_stop_the_training(tmp_path):
    run = SyntheticRun(epochs=1, end="stopped")
    events = list(synthetic_events(run))
    session = write_synthetic_session(tmp_path, run)
    source = live_source(tmp_path, session)
    source.queue.extend(events[:-1])
    app = LiveApp(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: not source.queue)
        await pilot.press("q", "s")
        assert source.process.stopped and app.outcome == "stopping"
        await pilot.pause(0.15)
        assert "stopping" in str(app.query_one("#status").render())
        source.queue.append(events[-1])  # the trainer checkpoints and records its end
        source.process.alive, source.process.returncode = False, 0
        await until(pilot, lambda: not app.is_running, timeout=10)
    assert app.outcome == "stopped" and app.return_code == 0


@sync
async def test_live_trainer_that_dies_shows_its_last_error(tmp_path):
    events = [e for e in synthetic_events(SyntheticRun(epochs=1, end="failed")) if not isinstance(e, SessionEnd)]
    run = SyntheticRun(epochs=1, end="failed", stop_after=len(events))  # killed before its end record
    session = write_synthetic_session(tmp_path, run)
    source = live_source(tmp_path, session, alive=False, returncode=-9)
    source.queue.extend(events)
    app = LiveApp(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: app.state.run_status == "crashed")
        assert "5 non-finite losses" in str(app.query_one("#status").render())
        await pilot.press("q")  # nothing left to stop: q just quits
    assert app.return_code == 1  # it quit at once: no question when nothing runs


@sync
async def test_live_trainer_that_never_started(tmp_path):
    source = live_source(tmp_path, None, alive=False, returncode=2,
                         stderr="enas-tui: error: unknown preset 'huge'\n")
    app = LiveApp(source)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: not app.is_running, timeout=10)
    assert app.return_code == 2 and app.outcome == "start-failed" and "unknown preset" in app.message


def test_dashboard_imports_no_torch():
    code = ("import sys\n"
            "import enas_tui.tui, enas_tui.tui.app, enas_tui.tui.compare, enas_tui.sources\n"
            "from enas_tui.tui import run_attach, run_compare, run_live, run_replay\n"
            "assert 'torch' not in sys.modules, 'the dashboard imported torch'\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


@sync
async def test_command_palette_runs_dashboard_commands(recorded):
    session, _ = recorded
    app = AttachApp(session)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: caught_up(app))
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"zoom hidden states")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert app.screen.maximized is app.panel("heatmap")
