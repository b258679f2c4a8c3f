"""Replay opens where the user wants to be (the end) and tells the recording's status as
``enas-tui sessions`` does; attach after a killed trainer says one clear word and how to go on."""

from __future__ import annotations

import os
import shlex

import pytest

from enas_tui.events import SessionEnd
from enas_tui.sessions import summarize
from enas_tui.tui.app import AttachApp, ReplayApp
from enas_tui.tui.synthetic import SyntheticRun, synthetic_events, write_synthetic_session

from helpers import screen_lines, sync


def continue_command(lines: list[str]) -> list[str]:
    """The command after "continue with:" on screen, its continuation lines (ending " \\") joined."""
    start = next(i for i, line in enumerate(lines) if "continue with:" in line)
    text = ""
    for line in lines[start:]:
        assert len(line) <= 80
        text += line.split("continue with:")[-1].rstrip().removesuffix("\\") + " "
        if not line.rstrip().endswith("\\"):
            break
    return shlex.split(text)


async def indexed(pilot) -> None:
    for _ in range(1000):
        if pilot.app.index.complete:
            break
        await pilot.pause(0.02)
    await pilot.pause(0.2)


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    run = SyntheticRun(controller="supervised", epochs=3)
    return write_synthetic_session(tmp_path_factory.mktemp("sessions"), run), list(synthetic_events(run))


@sync
async def test_replay_opens_at_the_end_and_home_goes_to_the_start(recorded):
    session, events = recorded
    app = ReplayApp(session)
    async with app.run_test(size=(120, 36)) as pilot:
        await indexed(pilot)
        assert app.cursor.position == len(events)
        end = events[-1]
        assert isinstance(end, SessionEnd)
        screen = "\n".join(screen_lines(app))
        assert "epoch 3/3" in screen and "waiting" not in screen
        assert f"valid ppl {end.best_ppl:.2f}" in app.panel("architecture").text()
        assert "session finished" in app.panel("eventlog").text()
        await pilot.press("home")
        await pilot.pause(0.2)
        assert app.cursor.position == 0 and app.state.status == "waiting"
        await pilot.press("end")
        assert app.cursor.position == len(events)


@sync
async def test_a_long_replay_shows_its_first_frame_then_follows_the_index_to_the_end(tmp_path):
    run = SyntheticRun(epochs=15, shared_steps=100, controller_steps=200)
    session = write_synthetic_session(tmp_path, run)
    total = sum(1 for _ in synthetic_events(run))
    app = ReplayApp(session)
    async with app.run_test(size=(120, 36)) as pilot:
        while app.frames < 1:
            await pilot.pause(0.001)
        assert not app.index.complete and len(app.index) < total  # drawn before the log was read
        for _ in range(1000):
            if app.index.complete:
                break
            await pilot.pause(0.02)
        await pilot.pause(0.2)
        assert app.index.complete and app.cursor.position == total and app.state.status == "finished"


@sync
async def test_moving_during_indexing_stops_following_the_end(tmp_path):
    run = SyntheticRun(epochs=15, shared_steps=100, controller_steps=200)
    app = ReplayApp(write_synthetic_session(tmp_path, run))
    async with app.run_test(size=(120, 36)) as pilot:
        while app.frames < 1:
            await pilot.pause(0.001)
        await pilot.press("home")
        for _ in range(1000):
            if app.index.complete:
                break
            await pilot.pause(0.02)
        assert app.cursor.position == 0


@sync
async def test_replay_of_a_killed_session_says_crashed_like_sessions_does(tmp_path):
    run = SyntheticRun(epochs=2, end=None, stop_after=150)  # the trainer was killed mid-run
    session = write_synthetic_session(tmp_path, run)
    assert summarize(session).status == "crashed"
    app = ReplayApp(session)
    async with app.run_test(size=(120, 36)) as pilot:
        await indexed(pilot)
        lines = screen_lines(app)
        assert "✖ CRASHED" in lines[0] and "running" not in lines[0]
        assert lines[-2].rstrip().endswith("✖ CRASHED")  # the timeline ends the same way
        await pilot.press("home")  # at any cursor position the header describes the recording
        await pilot.pause(0.2)
        assert "✖ CRASHED" in screen_lines(app)[0]
        assert continue_command(screen_lines(app))[:4] == ["enas-tui", "train", "--resume", session.id]


@sync
async def test_attach_after_a_kill_says_crashed_and_how_to_continue(tmp_path):
    run = SyntheticRun(epochs=2, end=None, stop_after=150)
    root = tmp_path / "my runs"
    session = write_synthetic_session(root, run)
    # What a previous graceful stop left in trainer.log, before this (killed) run started.
    log = session.path / "trainer.log"
    log.write_text(f"stopped; continue with: enas-tui train --resume {session.id}\n")
    os.utime(log, (1_600_000_000, 1_600_000_000))
    app = AttachApp(session)
    async with app.run_test(size=(80, 24)) as pilot:
        for _ in range(300):
            if app.state.run_status == "crashed":
                break
            await pilot.pause(0.02)
        await pilot.pause(0.2)
        lines = screen_lines(app)
        head = lines[0]
        assert "✖ CRASHED" in head and "stopped" not in head and "TRAINER" not in head
        # The command to continue is whole, within 80 columns, and names the sessions folder.
        assert continue_command(lines) == ["enas-tui", "train", "--resume", session.id, "--sessions-dir", str(root)]


@sync
async def test_demo_says_what_it_is_and_opens_at_the_end(tmp_path):
    from enas_tui.tui.app import DemoApp
    from enas_tui.tui.synthetic import demo_run

    run = demo_run("supervised")
    session = write_synthetic_session(tmp_path, run)
    app = DemoApp(session)
    async with app.run_test(size=(120, 36)) as pilot:
        await indexed(pilot)
        screen = "\n".join(screen_lines(app))
        assert "DEMO" in screen_lines(app)[0] and "synthetic session" in screen and "no training" in screen
        assert app.cursor.position == sum(1 for _ in synthetic_events(run))
        assert "epoch 10/10" in screen
