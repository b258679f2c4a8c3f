"""The dashboard's source for a remote attach: the local attach's LogFollower, on the mirror.

Everything a local attach does (chunked catch-up, decoding, following, the crashed / stopped /
stale verdicts) is inherited; two answers come from the stream instead of this machine: the
trainer's status (only the box can check its pid) and the connection's state. ``caught_up`` keeps
its local meaning (the mirror is read to its end): while the network delivers the rest of a
catch-up the dashboard follows it like a growing log, instead of spinning on an empty one.
"""

from __future__ import annotations

from enas_tui.remote.pump import RemoteStream
from enas_tui.sources import LogFollower


class RemoteFollower(LogFollower):
    """A LogFollower over a remote session's mirror, with the box's word on its trainer."""

    remote = True

    def __init__(self, stream: RemoteStream, **follower_args):
        super().__init__(stream.mirror.session, **follower_args)
        self.stream = stream

    def poll(self):
        events = super().poll()
        error = self.stream.error
        if error is not None and self.error is None and self.caught_up_with_mirror():
            self.error = str(error)  # the stream gave up (e.g. a damaged remote log): say why
        return events

    def caught_up_with_mirror(self) -> bool:
        reader = self._reader
        try:
            return reader is not None and reader.offset >= self.session.log_path.stat().st_size
        except OSError:
            return False

    def live_status(self) -> str | None:
        status = self.stream.remote_status
        return None if status is None else status[0]

    @property
    def connection(self) -> str | None:
        return self.stream.connection

    def close(self) -> None:
        super().close()
        self.stream.close()
