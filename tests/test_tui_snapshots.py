"""Snapshots of every screen at 80x24 and 120x36 (fixed synthetic data: no clock, no paths).

The main screen (attach and replay), the help, the live quit question, jump-to-epoch, compare,
the embedding map, the cell shape and the action probabilities zoomed, and a retrain session's main
screen. Update them after an intended change of the layout with ``pytest --snapshot-update`` and
look at the SVGs in tests/__snapshots__/ (as PNG) before committing: a blank dialog that matches
its snapshot is still a bug.
"""

from __future__ import annotations

import pytest

from enas_tui.sources import TrainerSource
from enas_tui.tui.app import AttachApp, LiveApp, ReplayApp
from enas_tui.tui.compare import CompareApp
from enas_tui.tui.synthetic import SyntheticRun, synthetic_events, write_synthetic_retrain, write_synthetic_session

from helpers import FakeProcess

SIZES = [(80, 24), (120, 36)]
ids = [f"{w}x{h}" for w, h in SIZES]


@pytest.fixture
def here(tmp_path, monkeypatch):
    """Sessions in ./sessions, so no temporary path ends up on screen."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ENAS_TUI_SESSIONS", raising=False)
    return tmp_path


@pytest.fixture
def session(here):
    from pathlib import Path

    return write_synthetic_session(Path("sessions"), SyntheticRun(controller="unsupervised", epochs=4))


async def caught_up(pilot) -> None:
    app = pilot.app
    while not (app.source.caught_up and app.source.ended):
        await pilot.pause(0.02)
    await pilot.pause(0.3)


def pressing(*keys: str):
    async def run_before(pilot) -> None:
        await pilot.pause(0.3)
        for key in keys:
            await pilot.press(key)
        await pilot.pause(0.3)
    return run_before


@pytest.mark.parametrize("size", SIZES, ids=ids)
def test_main_screen(snap_compare, session, size):
    assert snap_compare(AttachApp(session), terminal_size=size, run_before=caught_up)


@pytest.mark.parametrize("size", SIZES, ids=ids)
def test_replay_screen(snap_compare, session, size):
    assert snap_compare(ReplayApp(session), terminal_size=size, run_before=pressing())


@pytest.mark.parametrize("size", SIZES, ids=ids)
def test_help(snap_compare, session, size):
    assert snap_compare(ReplayApp(session), terminal_size=size, run_before=pressing("question_mark"))


@pytest.mark.parametrize("size", SIZES, ids=ids)
def test_quit_dialog(snap_compare, here, size):
    from pathlib import Path

    run = SyntheticRun(controller="supervised", epochs=2, end=None)
    session = write_synthetic_session(Path("sessions"), run)
    source = TrainerSource(Path("sessions"))
    source.process = FakeProcess(session.id, alive=True, returncode=None)
    source.queue.extend(synthetic_events(run))

    async def run_before(pilot) -> None:
        while source.queue:
            await pilot.pause(0.02)
        await pilot.pause(0.3)
        await pilot.press("q")
        await pilot.pause(0.3)

    assert snap_compare(LiveApp(source), terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES, ids=ids)
def test_jump_dialog(snap_compare, session, size):
    assert snap_compare(ReplayApp(session), terminal_size=size, run_before=pressing("g", "2"))


@pytest.fixture
def three(here):
    from pathlib import Path

    return [write_synthetic_session(Path("sessions"), SyntheticRun(controller=c, epochs=e))
            for c, e in (("random", 3), ("unsupervised", 4), ("supervised", 4))]


@pytest.mark.parametrize("size", SIZES, ids=ids)
def test_compare(snap_compare, three, size):
    assert snap_compare(CompareApp(three), terminal_size=size, run_before=pressing())


@pytest.mark.parametrize("size", SIZES, ids=ids)
def test_compare_embedding_maps(snap_compare, three, size):
    assert snap_compare(CompareApp(three), terminal_size=size, run_before=pressing("3"))


@pytest.mark.parametrize("size", SIZES, ids=ids)
def test_embedding_map_zoomed(snap_compare, here, size):
    from pathlib import Path

    session = write_synthetic_session(Path("sessions"), SyntheticRun(controller="supervised", epochs=4, probe_size=60))
    assert snap_compare(ReplayApp(session), terminal_size=size, run_before=pressing("8"))


@pytest.mark.parametrize("size", SIZES, ids=ids)
def test_cell_shape_zoomed(snap_compare, session, size):
    assert snap_compare(ReplayApp(session), terminal_size=size, run_before=pressing("9"))


@pytest.mark.parametrize("size", SIZES, ids=ids)
def test_retrain_screen(snap_compare, here, size):
    from pathlib import Path

    session = write_synthetic_retrain(Path("sessions"))
    assert snap_compare(AttachApp(session), terminal_size=size, run_before=caught_up)


@pytest.mark.parametrize("size", SIZES, ids=ids)
def test_probabilities_zoomed(snap_compare, session, size):
    """The table, with the random controller's median beside the trained one at every step."""
    assert snap_compare(ReplayApp(session), terminal_size=size, run_before=pressing("1"))
