"""Where the dashboard's events come from: a log being written, a recorded log, a trainer child.

- ``LogFollower`` (attach): reads a session log in chunks bounded by count and time (~2000
  records / 50 ms, as W&B's terminal viewer does) so catching up on a long log never freezes the
  screen, then polls it as it grows; when the log stops without an end record and the trainer
  process is gone it says so ("crashed" / "stopped") instead of showing a frozen screen.
- ``TrainerSource`` (live): a trainer child started by ``launcher.launch``. Its events arrive
  over the pipe (the fast path); the pipe drops events when the dashboard falls behind, and the
  gaps (seen as jumps in ``seq``) are filled from the session log, which has everything.

Probe events are big (a probe set's probabilities and hidden states); a batch of records decodes
only the last probe in it, since a later probe replaces an earlier one in every view. The earlier
ones are still checked (without decoding their arrays, so a damaged one is reported) and become
``ProbeArchs`` (their architectures only), so views that follow every probe set (the cell shape
over the search) see each one whichever way the log was read.

Both sources expose ``damage``: every damaged span of the log they skipped (session_log.Damage),
for the dashboard to show where and how much.

No torch, no Textual and no dashboard state here: the sources are tested and benchmarked on their
own (the replay index, which stores folded dashboard states, is the dashboard's: tui/replay_index.py).
"""

from __future__ import annotations

import json
import os
import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

from enas_tui import cell_shape, events
from enas_tui.events import Event, EventError, SessionEnd, SessionStart
from enas_tui.session_log import Damage, LogError, LogReader, Record, payload_damage
from enas_tui.sessions import Session, SessionState, sessions_root

CHUNK_RECORDS = 2000
CHUNK_SECONDS = 0.05
STALE_AFTER_S = 600.0  # W&B calls a run crashed after 10 minutes without writes

# A probe's epoch, step and architectures come before its arrays (events.encode_event's layout).
_PROBE_HEAD = re.compile(rb'"epoch":(-?\d+),"step":(-?\d+),"archs":\[')


@dataclass(kw_only=True)
class ProbeArchs(Event):
    """A probe set superseded within a batch of records: where it was taken and its architectures.

    Not a log event: readers make it instead of decoding a probe's arrays that a later probe
    replaces anyway.
    """

    type: ClassVar[str] = "probe_archs"
    epoch: int
    step: int
    archs: list[str] = field(default_factory=list)
    # their cell shape, when a reader computed it already (a remote attach does, off the UI thread)
    shape: cell_shape.ShapeSummary | None = field(default=None, repr=False, compare=False)


class SourceError(Exception):
    """A session that cannot be shown (no log, an unreadable log); one line for the user."""


def peek(record: Record) -> tuple[str, int, float] | None:
    """(type, seq, t) of a record without decoding it, or None if its payload is not laid out as usual."""
    return events.peek(record.payload)


def _kind(record: Record) -> str | None:
    return record.kind if record.kind is not None else (peek(record) or (None,))[0]


def probe_archs(record: Record) -> ProbeArchs | None:
    """A probe record's epoch, step and architectures without decoding its arrays (None if the
    payload is not laid out as events.encode_event writes it)."""
    found = peek(record)
    match = _PROBE_HEAD.search(record.payload, 0, 4096)
    if found is None or match is None:
        return None
    start = match.end() - 1
    end = record.payload.find(b"]", start)
    try:
        archs = json.loads(record.payload[start: end + 1])
    except ValueError:
        return None
    if not isinstance(archs, list):
        return None
    return ProbeArchs(epoch=int(match.group(1)), step=int(match.group(2)), archs=archs, seq=found[1], t=found[2])


def decode_indexed(records: Sequence[Record], damage: list[Damage] | None = None) -> list[tuple[int, Event | None]]:
    """(index in records, event) for every record that is a valid event, in order.

    A probe that a later probe in the same batch supersedes is checked (its arrays are not
    decoded) and given as ``ProbeArchs`` (None if its layout is unusual). A record whose payload is
    not a valid event is left out and reported in ``damage``.
    """
    kinds = [_kind(r) for r in records]
    last_probe = max((i for i, k in enumerate(kinds) if k == "probe"), default=-1)
    out: list[tuple[int, Event | None]] = []
    for i, record in enumerate(records):
        try:
            if kinds[i] == "probe" and i != last_probe:
                events.check_event(record.payload)
                out.append((i, probe_archs(record)))
            else:
                out.append((i, events.decode_event(record.payload)))
        except EventError as err:
            if damage is not None:
                damage.append(payload_damage(record, err))
    return out


def decode_records(records: Sequence[Record], damage: list[Damage] | None = None) -> list[Event]:
    """The records' events, leaving out probes that a later probe in the same batch supersedes
    and records that are not valid events (reported in ``damage``)."""
    return [event for _, event in decode_indexed(records, damage) if event is not None]


def describe_damage(damage: Sequence[Damage], torn_tail: tuple[int, int] | None = None) -> str:
    """One line for a header: how many damaged spans and records skipped ("" when the log is whole)."""
    parts = []
    if damage:
        known = [d.skipped for d in damage if d.skipped is not None]
        unknown = len(known) < len(damage)
        count = sum(known)
        lost = f"{count}{'+' if unknown else ''} record{'s' if count != 1 or unknown else ''} skipped"
        parts.append(f"log damaged: {len(damage)} span{'s' if len(damage) != 1 else ''}, {lost} "
                     f"(first at byte {damage[0].start})")
    if torn_tail is not None:
        parts.append(f"log ends in an incomplete record ({torn_tail[1]:,} bytes at byte {torn_tail[0]})")
    return "; ".join(parts)


def damage_line(damage: Damage) -> str:
    """The events panel's line for one damaged span: where, why and how much was skipped."""
    return f"log damaged: {damage.describe()}"


def merged(*lists: Sequence[Damage]) -> list[Damage]:
    """Damage reports from several places in file order, each span once."""
    seen = {(d.start, d.end, d.reason): d for found in lists for d in found}
    return sorted(seen.values(), key=lambda d: (d.start, d.end))


# Lines the CLI itself prints on a normal stop: advice for the user, never a crash's cause.
_HINTS = ("stopped; continue with:", "training continues in the background")


def tail_line(path: Path, since: float | None = None, limit: int = 4096) -> str:
    """The last non-empty line of a text file (e.g. trainer.log), or ''.

    A file last written before ``since`` (the latest trainer start) belongs to an earlier run and
    says nothing about this one; the CLI's own stop hints are skipped.
    """
    try:
        if since is not None and os.path.getmtime(path) < since:
            return ""
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            lines = [ln.strip() for ln in f.read().decode("utf-8", "replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    lines = [ln for ln in lines if not ln.startswith(_HINTS)]
    return lines[-1] if lines else ""


# -- attach ---------------------------------------------------------------------------------------
def _note_lifecycle(source: "LogFollower | TrainerSource", event: Event) -> None:
    """Track whether the run has ended and its last error: what a source needs to call it dead."""
    if isinstance(event, SessionStart):
        source.ended = False
        source.started_t = event.t
    elif isinstance(event, SessionEnd):
        source.ended = True
    elif event.type == "error":
        source.last_error = getattr(event, "message", None)


class LogFollower:
    """Follows a session's log: bounded chunks while catching up, then polling as it grows."""

    connection: str | None = None  # a remote source's link trouble, for the status bar (None: fine)

    def __init__(self, session: Session, max_records: int = CHUNK_RECORDS, max_seconds: float = CHUNK_SECONDS,
                 check_every: float = 1.0, stale_after: float = STALE_AFTER_S,
                 clock: Callable[[], float] = time.monotonic):
        self.session = session
        self.max_records, self.max_seconds = max_records, max_seconds
        self.check_every, self.stale_after, self.clock = check_every, stale_after, clock
        self._reader: LogReader | None = None
        self.caught_up = False
        self.ended = False  # an end record follows the latest start record
        self.records = 0
        self.error: str | None = None  # a log that cannot be read at all (not a session log)
        self._decode_damage: list[Damage] = []
        self.last_error: str | None = None
        self.started_t: float | None = None  # time of the latest session_start (a trainer's start)
        self._last_growth = clock()
        self._checked_at: float | None = None
        self._status: tuple[str, str] | None = None

    def _open(self) -> LogReader | None:
        if self._reader is None:
            try:
                self._reader = LogReader(self.session.log_path)
            except LogError as err:
                if self.session.log_path.exists():
                    self.error = str(err)
                return None  # the trainer has not created its log yet
        return self._reader

    def poll(self) -> list[Event]:
        """The next chunk of events (empty when nothing new is complete yet)."""
        if self.error is not None:
            return []
        reader = self._open()
        if reader is None:
            return []
        records = reader.read_records(self.max_records, self.max_seconds)
        events = self.decode(records)
        if records:
            self.records += len(records)
            self._last_growth = self.clock()
        self.caught_up = reader.at_end()
        for event in events:
            _note_lifecycle(self, event)
        return events

    def decode(self, records: Sequence[Record]) -> list[Event]:
        """The events of records just read (a remote source adds what the box sent beside them)."""
        return decode_records(records, self._decode_damage)

    @property
    def damage(self) -> list[Damage]:
        """Every damaged span skipped so far, in file order (a damaged tail last, ``at_end``)."""
        return merged(self._reader.damage if self._reader is not None else [], self._decode_damage)

    @property
    def torn_tail(self) -> tuple[int, int] | None:
        """(offset, bytes) of an incomplete last record: a write in progress, or one a dead trainer cut."""
        return self._reader.torn_tail if self._reader is not None else None

    def trainer_status(self) -> tuple[str, str] | None:
        """What the log cannot say: ``crashed`` / ``stopped`` / ``stale`` / ``error``, or None if fine."""
        if self.error is not None:
            return "error", self.error
        if self.ended or not self.caught_up:
            return None
        now = self.clock()
        if self._checked_at is not None and now - self._checked_at < self.check_every:
            return self._status
        self._checked_at = now
        self._status = self._check(now)
        return self._status

    def session_state(self) -> SessionState | None:
        """The session's status as ``enas-tui sessions`` decides it (sessions.Session.state), None
        while nobody has said yet. A remote source asks the box instead: only it sees the trainer."""
        return self.session.state()

    def _check(self, now: float) -> tuple[str, str] | None:
        try:
            state = self.session_state()
        except Exception as err:  # noqa: BLE001 - an unreadable session: say so, keep showing the log
            return "error", str(err).splitlines()[0]
        if state is None:
            return None
        if state.status == "running":
            idle = now - self._last_growth
            if idle >= self.stale_after:
                return "stale", f"no new events for {idle / 60:.0f} min (trainer on another host?)"
            return None
        reason = self.last_error or tail_line(self.session.path / "trainer.log", self.started_t) or state.reason
        return state.status, reason

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None


# -- live -----------------------------------------------------------------------------------------
class TrainerSource:
    """Events from a trainer child (launcher.launch), with pipe drops filled in from its log."""

    def __init__(self, sessions_dir: str | os.PathLike | None = None, max_records: int = CHUNK_RECORDS,
                 queue_limit: int = 200_000):
        self.root = sessions_root(sessions_dir)
        self.max_records = max_records
        self.queue: deque[Event] = deque(maxlen=queue_limit)  # a full queue drops the oldest: a gap
        self.process = None  # launcher.TrainerProcess once started
        self.next_seq = 0
        self.ended = False
        self.last_error: str | None = None
        self.started_t: float | None = None  # time of the latest session_start (a trainer's start)
        self.filled = 0  # events taken from the log because the pipe dropped them
        self._decode_damage: list[Damage] = []
        self._log: LogReader | None = None
        self._pending: deque[Record] = deque()
        self._finished = False

    def start(self, args: list[str], launch: Callable | None = None, command: str = "train") -> TrainerSource:
        """Launch ``enas-tui COMMAND`` (train or retrain) with ``args`` (plus --sessions-dir) as a
        detached child."""
        if launch is None:
            from enas_tui.launcher import launch
        if "--sessions-dir" not in args:
            args = [*args, "--sessions-dir", str(self.root)]
        self.process = launch(args, self.queue.append, command=command)
        return self

    @property
    def session(self) -> Session | None:
        session_id = getattr(self.process, "session_id", None)
        return None if session_id is None else Session(self.root / session_id)

    @property
    def pipe_done(self) -> bool:
        """The child exited and everything it sent has been read."""
        if self.process is None or self.process.alive:
            return False
        thread = getattr(self.process, "_thread", None)
        return thread is None or not thread.is_alive()

    @property
    def caught_up(self) -> bool:
        """Nothing waiting: no pipe events, and no gap being filled from the log."""
        return not self.queue

    def poll(self) -> list[Event]:
        """The next events in order: from the pipe, and from the log where the pipe left a gap.

        At most about ``max_records`` records are handled per call, so a long gap (the history
        of a resumed session, say) is read in slices and the interface stays responsive.
        """
        out: list[Event] = []
        budget = self.max_records
        while budget > 0 and self.queue:
            event = self.queue[0]
            if 0 <= event.seq < self.next_seq:
                self.queue.popleft()  # already taken from the log
                continue
            if event.seq > self.next_seq:
                filled, done, used = self._from_log(self.next_seq, event.seq, budget)
                out += filled
                budget -= used
                if not done:
                    break  # the rest of the gap next time
            self.queue.popleft()
            out.append(event)
            self.next_seq = max(self.next_seq, event.seq + 1)
            budget -= 1
        if not self.queue and self.pipe_done and not self._finished and budget > 0:
            filled, self._finished, _ = self._from_log(self.next_seq, None, budget)  # the pipe's last drops
            out += filled
        for event in out:
            self._note(event)
        return out

    def _from_log(self, lo: int, hi: int | None, limit: int) -> tuple[list[Event], bool, int]:
        """Events with lo <= seq < hi (hi None: to the end of the log), looking at most at
        ``limit`` records; returns (events, whether the range is done, records looked at)."""
        reader = self._log_reader()
        if reader is None:
            return [], True, 0
        found: list[Record] = []
        looked, done = 0, False
        while looked < limit:
            if not self._pending:
                try:
                    self._pending.extend(reader.read_records(max_records=min(CHUNK_RECORDS, limit)))
                except LogError:
                    done = True
                    break
                if not self._pending:
                    done = True  # nothing more in the log: accept the gap
                    break
            record = self._pending[0]
            seq = record.seq  # the reader has checked it (records out of order are damage)
            if hi is not None and seq >= hi:
                done = True
                break
            self._pending.popleft()
            looked += 1
            if seq >= lo:
                found.append(record)
        events = decode_records(found, self._decode_damage)
        self.filled += len(events)
        if events:
            self.next_seq = max(self.next_seq, events[-1].seq + 1)
        return events, done, max(1, looked)

    @property
    def damage(self) -> list[Damage]:
        """Damaged spans of the session log met while filling the pipe's gaps (in file order)."""
        return merged(self._log.damage if self._log is not None else [], self._decode_damage)

    def _log_reader(self) -> LogReader | None:
        if self._log is None and self.session is not None:
            try:
                self._log = LogReader(self.session.log_path)
            except LogError:
                return None
        return self._log

    def _note(self, event: Event) -> None:
        _note_lifecycle(self, event)

    def trainer_status(self) -> tuple[str, str] | None:
        """``crashed`` (with its last error) when the child is gone without an end record."""
        if self.process is None or self.ended or not self.pipe_done or not self._finished:
            return None
        if self.session is None:
            return "failed", self.start_error() or f"the trainer exited with code {self.process.returncode}"
        reason = self.last_error or tail_line(self.session.path / "trainer.log", self.started_t)
        return "crashed", reason or f"the trainer exited with code {self.process.returncode}"

    def start_error(self) -> str:
        """What the child printed before it had a session (e.g. a bad flag), last line first."""
        text = self.process.error_text() if self.process is not None else ""
        lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
        return lines[-1] if lines else ""

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def detach(self) -> None:
        if self.process is not None:
            self.process.detach()

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


__all__ = [
    "CHUNK_RECORDS", "CHUNK_SECONDS", "LogFollower", "ProbeArchs", "SourceError", "TrainerSource",
    "damage_line", "decode_indexed", "decode_records", "describe_damage", "merged", "peek", "probe_archs",
    "tail_line",
]
