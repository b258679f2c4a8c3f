"""The dashboard's source for a remote attach: the local attach's LogFollower, on the mirror.

Everything a local attach does (chunked catch-up, decoding, following, the crashed / stopped /
stale verdicts, damage notices) is inherited; what only the box can say comes from the stream:

- the session's status and its reason: ``Session.state()`` on the box, the rule a local attach
  applies to a local session (only the box can check the trainer's pid);
- damage: what the box's reader found, at remote byte offsets, noted where a local reader would
  note it (once the records before it are read), plus any payload that does not decode here; the
  mirror's own reader sees gaps where a catch-up left records out, which are not damage;
- the probes a catch-up left out, as ``ProbeArchs`` (as a local reader gives superseded probes):
  the first catch-up's come after it, for the dashboard to fold in ahead of what it has (so they
  cost the first frame nothing), a later catch-up's between the records they came between;
- the connection's state, and the command to continue a stopped run (on the host).

``caught_up`` keeps its local meaning (the mirror is read to its end): while the network delivers
the rest of a catch-up the dashboard follows it like a growing log, instead of spinning on an
empty one.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from enas_tui.commands import resume_command
from enas_tui.events import Event
from enas_tui.remote.pump import RemoteStream
from enas_tui.session_log import HEADER_SIZE, Damage, Record
from enas_tui.sessions import Session, SessionState
from enas_tui.sources import LogFollower, ProbeArchs, decode_indexed, merged


class RemoteFollower(LogFollower):
    """A LogFollower over a remote session's mirror, with the box's word on the session."""

    remote = True

    def __init__(self, stream: RemoteStream, **follower_args):
        super().__init__(stream.mirror.session, **follower_args)
        self.stream = stream
        self._history_taken = False

    def poll(self) -> list[Event]:
        events = super().poll()
        error = self.stream.error
        if error is not None and self.error is None and self.caught_up_with_mirror():
            self.error = str(error)  # the stream gave up (e.g. not a session log there): say why
        return events

    def decode(self, records: Sequence[Record]) -> list[Event]:
        """The records' events, with the left-out probes that came before each record (and those
        that came after the last record read so far)."""
        waiting = self.stream.probe_archs
        out: list[Event] = []
        for i, event in decode_indexed(records, self._decode_damage):
            while waiting and waiting[0][0] <= records[i].offset:
                out.append(waiting.popleft()[1])
            if event is not None:
                out.append(event)
        read = self._reader.offset if self._reader is not None else HEADER_SIZE
        while waiting and waiting[0][0] <= read:
            out.append(waiting.popleft()[1])
        return out

    def take_shape_history(self) -> list[ProbeArchs]:
        """The probes the first catch-up left out, once all have come (then never again): the
        dashboard folds their cell shapes in ahead of what it has folded."""
        if not self.stream.shape_history_done or self._history_taken:
            return []
        self._history_taken = True
        return self.stream.shape_history

    def caught_up_with_mirror(self) -> bool:
        return self._reader is not None and self._reader.offset >= self.stream.mirror.size

    def session_state(self) -> SessionState | None:
        said = self.stream.remote_status
        if said is None:
            return None
        return SessionState(said["status"], said["trainer_line"] or said["reason"])

    @property
    def damage(self) -> list[Damage]:
        read = self._reader.offset if self._reader is not None else HEADER_SIZE
        at = self.stream.damage_at
        box = [d for d in self.stream.damage if at.get((d.start, d.reason), HEADER_SIZE) <= read]
        mirror = self.stream.mirror
        here = [dataclasses.replace(d, start=mirror.remote_offset(d.start), end=mirror.remote_offset(d.end - 1) + 1)
                for d in self._decode_damage]
        return merged(box, here)

    @property
    def torn_tail(self) -> tuple[int, int] | None:
        return self.stream.torn_tail

    @property
    def connection(self) -> str | None:
        return self.stream.connection

    def resume_hint(self, session: Session) -> tuple[str, str]:
        """The status bar's command to continue a run that ended early: on the host, in its folder."""
        stream = self.stream
        there = Session(Path(stream.sessions_dir or ".") / stream.session_id)
        command = resume_command(there, always_folder=stream.sessions_dir is not None)
        return f" continue on {stream.endpoint.target.destination} with:", command

    def close(self) -> None:
        super().close()
        self.stream.close()
