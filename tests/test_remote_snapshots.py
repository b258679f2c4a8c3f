"""The attach screen of a remote session whose connection dropped (80x24 and 120x36).

The notice comes from the source's ``connection`` (remote/follower.py); here a local follower
carries a fixed one, so the picture never depends on timing. Update with ``pytest
--snapshot-update`` after an intended change and look at the SVGs in tests/__snapshots__/.
"""

from __future__ import annotations

import pytest

from enas_tui.sources import LogFollower
from enas_tui.tui.app import AttachApp
from enas_tui.tui.synthetic import SyntheticRun, write_synthetic_session

NOTICE = "connection lost, reconnecting (3): cannot reach gpu-box: connection refused: is sshd running there, on that port?"


async def caught_up(pilot) -> None:
    app = pilot.app
    while not (app.source.caught_up and app.state.seq >= 150):
        await pilot.pause(0.02)
    await pilot.pause(0.3)


@pytest.mark.parametrize("size", [(80, 24), (120, 36)])
def test_connection_lost(snap_compare, tmp_path, size):
    session = write_synthetic_session(tmp_path, SyntheticRun(epochs=3, end=None, stop_after=151),
                                      status="running")
    follower = LogFollower(session, stale_after=1e9)
    follower.live_status = lambda: "running"  # the box's word: a remote source's trainer is not checked here
    follower.connection = NOTICE
    assert snap_compare(AttachApp(session, source=follower), terminal_size=size, run_before=caught_up)
