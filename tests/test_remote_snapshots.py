"""The attach screen of a remote session (80x24 and 120x36): one whose connection dropped, and one
whose trainer crashed on the host.

The source is the real RemoteFollower on a RemoteStream that is never started: its mirror is
filled from a synthetic session and the box's word (status, connection) is set by hand, so the
picture never depends on ssh or timing. Update with ``pytest --snapshot-update`` after an intended
change and look at the SVGs in tests/__snapshots__/ (as PNG).
"""

from __future__ import annotations

import pytest

from enas_tui.remote.follower import RemoteFollower
from enas_tui.remote.hosts import endpoint
from enas_tui.remote.mirror import Mirror
from enas_tui.remote.pump import RemoteStream
from enas_tui.remote.target import parse_target
from enas_tui.session_log import LogReader
from enas_tui.tui.app import AttachApp
from enas_tui.tui.synthetic import SyntheticRun, write_synthetic_session

SIZES = [(80, 24), (120, 36)]
ids = [f"{w}x{h}" for w, h in SIZES]
PROBLEM = "cannot reach gpu-box: connection refused: is sshd running there, on that port?"
CRASH = "RuntimeError: CUDA error: an illegal memory access was encountered"


def remote_stream(tmp_path, monkeypatch, status: str, trainer_line: str = "") -> RemoteStream:
    """A stream whose mirror holds a synthetic session cut in its third epoch, as the box sent it."""
    monkeypatch.setenv("ENAS_TUI_HOSTS", str(tmp_path / "no-hosts.toml"))
    box = write_synthetic_session(tmp_path / "box", SyntheticRun(epochs=3, end=None, stop_after=151))
    data = box.log_path.read_bytes()
    mirror = Mirror(tmp_path / "mirror")
    with LogReader(box.log_path) as reader:
        mirror.append([(r.offset, data[r.offset:r.end]) for r in reader.read_records()])
    mirror.write_meta(box.meta())
    stream = RemoteStream(endpoint(parse_target(f"gpu-box:{box.id}")), mirror)
    stream.remote_status = {"status": status, "reason": "", "trainer_line": trainer_line}
    stream.sessions_dir, stream.session_id = "/home/me/sessions", box.id
    return stream


async def caught_up(pilot) -> None:
    app = pilot.app
    while not (app.source.caught_up and app.state.seq >= 150 and app.state.run_status != "waiting"):
        await pilot.pause(0.02)
    await pilot.pause(0.3)


@pytest.mark.parametrize("size", SIZES, ids=ids)
def test_connection_lost(snap_compare, tmp_path, monkeypatch, size):
    stream = remote_stream(tmp_path, monkeypatch, "running")
    stream.state, stream.attempts, stream.problem = "lost", 3, PROBLEM
    app = AttachApp(stream.mirror.session, source=RemoteFollower(stream, stale_after=1e9))
    assert snap_compare(app, terminal_size=size, run_before=caught_up)


@pytest.mark.parametrize("size", SIZES, ids=ids)
def test_remote_crash(snap_compare, tmp_path, monkeypatch, size):
    stream = remote_stream(tmp_path, monkeypatch, "crashed", CRASH)
    stream.state = "ended"
    app = AttachApp(stream.mirror.session, source=RemoteFollower(stream))
    assert snap_compare(app, terminal_size=size, run_before=caught_up)
