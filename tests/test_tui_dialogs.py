"""Dialogs and the command palette as a person meets them: the text is on screen and readable, and
the key a dialog shows does what its label says."""

from __future__ import annotations

import pytest
from textual.command import CommandPalette

from enas_tui.tui.app import AttachApp, LiveApp, ReplayApp
from enas_tui.tui.compare import CompareApp
from enas_tui.tui.dialogs import HelpScreen, JumpScreen, QuitScreen
from enas_tui.sources import TrainerSource
from enas_tui.tui.synthetic import SyntheticRun, synthetic_events, write_synthetic_session

from helpers import FakeProcess, screen_lines, sync

SIZES = [(80, 24), (120, 36)]
ids = [f"{w}x{h}" for w, h in SIZES]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    return write_synthetic_session(tmp_path_factory.mktemp("sessions"), SyntheticRun(epochs=3))


def live_app(root, run=SyntheticRun(epochs=1, end=None)) -> tuple[LiveApp, TrainerSource]:
    session = write_synthetic_session(root, run)
    source = TrainerSource(root)
    source.process = FakeProcess(session.id, alive=True, returncode=None)
    source.queue.extend(synthetic_events(run))
    return LiveApp(source), source


async def settle(pilot, app) -> None:
    for _ in range(200):
        source = getattr(app, "source", None)
        if source is None or (not source.queue if isinstance(source, TrainerSource) else source.caught_up):
            break
        await pilot.pause(0.02)
    await pilot.pause(0.2)


def shown(app) -> str:
    return "\n".join(screen_lines(app))


@pytest.mark.parametrize("size", SIZES, ids=ids)
@sync
async def test_help_is_readable_and_lists_the_keys(recorded, size):
    app = ReplayApp(recorded)
    async with app.run_test(size=size) as pilot:
        await settle(pilot, app)
        await pilot.press("question_mark")
        await pilot.pause(0.2)
        assert isinstance(app.screen, HelpScreen)
        text = shown(app)
        for words in ("keys", "Quit", "Screenshot", "Zoom the focused panel", "Play/pause", "zoom a panel"):
            assert words in text, words
        box = app.screen.query_one("#help-text")
        assert box.region.width > 40 and box.region.height > 10  # not an empty box
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


@pytest.mark.parametrize("size", SIZES, ids=ids)
@sync
async def test_quit_choices_are_readable_and_do_what_they_say(tmp_path, size):
    app, source = live_app(tmp_path / "my sessions")
    async with app.run_test(size=size) as pilot:
        await settle(pilot, app)
        await pilot.press("q")
        await pilot.pause(0.2)
        assert isinstance(app.screen, QuitScreen)
        lines = screen_lines(app)
        text = "\n".join(lines)
        assert "Quit the dashboard?" in text and "Reattach later with:" in text
        box = app.screen.query_one("#quit-text").region  # the dialog's own lines, as shown, joined
        dialog = " ".join(line[box.x: box.right].strip() for line in lines[box.y: box.bottom])
        dialog = " ".join(dialog.replace("\\", " ").split())
        command = f"enas-tui attach {source.session.id} --sessions-dir '{tmp_path / 'my sessions'}'"
        assert command.replace(" ", "") in dialog.replace(" ", "")  # wrapped or folded, never cut
        keys = {}
        for line in lines:
            for label in ("stop training", "leave it running", "cancel"):
                if label in line:
                    keys[label] = line[: line.index(label)].split()[-1]
        assert keys == {"stop training": "s", "leave it running": "b", "cancel": "esc"}
        await pilot.press("escape")  # what "esc" says: back to the dashboard, nothing stopped
        assert not isinstance(app.screen, QuitScreen) and app.is_running and not source.process.stopped
        await pilot.press("q", keys["stop training"])
        assert source.process.stopped and app.outcome == "stopping"


@pytest.mark.parametrize("size", SIZES, ids=ids)
@sync
async def test_jump_asks_for_an_epoch_on_screen(recorded, size):
    app = ReplayApp(recorded)
    async with app.run_test(size=size) as pilot:
        await settle(pilot, app)
        await pilot.press("g")
        await pilot.pause(0.2)
        assert isinstance(app.screen, JumpScreen)
        assert "Jump to the end of epoch (1-3)" in shown(app)
        await pilot.press("7", "enter")
        await pilot.pause(0.1)
        assert "no completed epoch '7'" in shown(app)
        await pilot.press("backspace", "2", "enter")
        assert app.cursor.position == app.index.epoch_position(2)


# -- the command palette ------------------------------------------------------------------------
@sync
async def test_palette_lists_each_command_once(recorded):
    for app in (AttachApp(recorded), ReplayApp(recorded), CompareApp([recorded, recorded])):
        async with app.run_test(size=(100, 30)):
            titles = [c.title for c in app.get_system_commands(app.screen)]
            assert len(titles) == len(set(titles)), titles
            assert titles.count("Keys") == 1 and titles.count("Screenshot") == 1 and titles.count("Quit") == 1
            helps = " ".join(c.help for c in app.get_system_commands(app.screen))
            assert "as soon as possible" not in helps


@sync
async def test_palette_quit_in_a_live_run_asks_first(tmp_path):
    app, source = live_app(tmp_path)
    async with app.run_test(size=(100, 30)) as pilot:
        await settle(pilot, app)
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        assert isinstance(app.screen, CommandPalette)
        await pilot.press(*"quit")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await pilot.pause(0.3)
        assert isinstance(app.screen, QuitScreen) and app.is_running  # the same stop-or-leave choice
        await pilot.press("b")
    assert source.process.detached and not source.process.stopped
