"""Snapshots of the main screen at 80x24 and 160x48 (fixed synthetic data: no clock, no paths).

Update them after an intended change of the layout with ``pytest --snapshot-update`` and look at
the SVGs in tests/__snapshots__/ before committing.
"""

from __future__ import annotations

import pytest

from enas_tui.tui.app import AttachApp
from enas_tui.tui.synthetic import SyntheticRun, write_synthetic_session


@pytest.fixture
def session(tmp_path):
    return write_synthetic_session(tmp_path, SyntheticRun(controller="unsupervised", epochs=4))


async def caught_up(pilot) -> None:
    app = pilot.app
    while not (app.source.caught_up and app.source.ended):
        await pilot.pause(0.02)
    await pilot.pause(0.2)


@pytest.mark.parametrize("size", [(80, 24), (160, 48)])
def test_main_screen(snap_compare, session, size):
    assert snap_compare(AttachApp(session), terminal_size=size, run_before=caught_up)
