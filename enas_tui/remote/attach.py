"""``enas-tui attach HOST:ID``: the attach dashboard on a session that runs on another machine."""

from __future__ import annotations

import os

from enas_tui.remote.follower import RemoteFollower
from enas_tui.remote.hosts import endpoint
from enas_tui.remote.mirror import Mirror
from enas_tui.remote.pump import READY_TIMEOUT_S, RemoteStream
from enas_tui.remote.target import parse_target


def attach_remote(text: str, remote_cmd: str | None = None, sessions_dir: str | os.PathLike | None = None,
                  ready_timeout: float = READY_TIMEOUT_S) -> int:
    """Connect, check everything that can fail before the dashboard takes the screen, then show it.

    The dashboard is the local attach's, on a mirror of the remote log; the trainer is left alone
    when it quits. Failures before the dashboard raise RemoteError (one line).
    """
    from enas_tui.tui import run_attach

    target = parse_target(text)
    stream = RemoteStream(endpoint(target, remote_cmd, sessions_dir), Mirror.temporary(target.label()))
    try:
        stream.start().wait_ready(ready_timeout)
        return run_attach(stream.mirror.session, source=RemoteFollower(stream))
    finally:
        stream.close()
        stream.mirror.remove()
