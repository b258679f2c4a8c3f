"""The remote side: what ``enas-tui remote VERB`` does on the box, for an enas-tui on a laptop.

The laptop runs these over ssh (ssh.py); each writes the hello line first (protocol.py). They are
hidden commands: people use ``attach HOST:ID``, ``sessions --host``, ``stop`` and ``pull``.

- ``hello``: the versions, and the sessions folder as the box resolves it.
- ``sessions``: one JSON line per session, the summaries ``enas-tui sessions --json`` prints.
- ``stop ID``: a graceful stop (SIGTERM: the trainer checkpoints and records its end).
- ``stream ID --from OFFSET``: the session's records from a record boundary (a late attach gets the
  catch-up selection of catchup.py), then follows the log until the session ends as a local attach
  decides it (an end record, or no end record and the trainer gone), sending the box's verdict on
  the trainer (status.json and its pid, which only the box can check) whenever it changes.
- ``pull ID``: the session's files from the offsets the laptop already has.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from bisect import insort
from dataclasses import asdict, dataclass
from pathlib import Path

from enas_tui.remote.catchup import plan
from enas_tui.remote.protocol import (
    FRAME_HEAD_SIZE, Disconnected, MessageWriter, archs_message, control_message, data_message, hello_line,
    record_message,
)
from enas_tui.session_log import (
    HEADER_SIZE, Damage, LogError, LogFormatError, LogReader, Record, parse_frame,
)
from enas_tui.sessions import Session, SessionError, all_sessions, newest_running, open_session, summarize
from enas_tui.sources import peek, probe_archs, tail_line

POLL_S = 0.025  # how often a followed log is checked for new records
CHECK_S = 1.0  # how often status.json and the trainer's pid are checked
PING_S = 2.0  # an idle stream says so this often: a dead connection is noticed (EPIPE) and the verb exits
END_GRACE_S = 3.0  # after the end record, how long status.json may still say "running"
CHUNK = 1 << 20  # file bytes per data message (pull)
ARCHS_READ = 16 * 1024  # bytes read from a left-out probe for its architectures (more when they run on)


def session_for(root: Path, session_id: str) -> Session:
    """The session by id or unique prefix; '' is the newest running one."""
    if session_id:
        return open_session(root, session_id)
    session = newest_running(root)
    if session is None:
        raise SessionError(f"no running session in {root.resolve()}")
    return session


def write_line(fd: int, data: bytes) -> None:
    try:
        os.write(fd, data)
    except (BrokenPipeError, ConnectionResetError):
        raise Disconnected() from None


def verb_hello(root: Path, fd: int = 1) -> None:
    write_line(fd, hello_line(sessions_dir=str(root.resolve())))


def verb_sessions(root: Path, fd: int = 1) -> None:
    lines = [hello_line(sessions_dir=str(root.resolve()))]
    lines += [(json.dumps(vars(summarize(s))) + "\n").encode() for s in all_sessions(root)]
    write_line(fd, b"".join(lines))


def verb_stop(root: Path, session_id: str, wait: float, fd: int = 1) -> None:
    from enas_tui.launcher import stop_session

    session = session_for(root, session_id)
    write_line(fd, hello_line(sessions_dir=str(session.path.parent.resolve())))
    result = stop_session(session, wait)
    write_line(fd, (json.dumps(asdict(result)) + "\n").encode())


# -- stream -----------------------------------------------------------------------------------------
def verdict(session: Session, since: float | None = None) -> dict:
    """The box's word on the session: its status as ``enas-tui sessions`` decides it (Session.state,
    here where the trainer's pid can be checked), the reason, and the trainer's last output line
    (written since ``since``, the latest trainer start), as a local attach reads them."""
    try:
        state = session.state()
    except Exception as err:  # noqa: BLE001 - an unreadable session: say so, keep streaming
        return {"status": "error", "reason": str(err).splitlines()[0] if str(err) else type(err).__name__,
                "trainer_line": ""}
    return {"status": state.status, "reason": state.reason,
            "trainer_line": tail_line(session.path / "trainer.log", since)}


@dataclass
class StreamOptions:
    poll_s: float = POLL_S
    check_s: float = CHECK_S
    ping_s: float = PING_S
    end_grace_s: float = END_GRACE_S


class Streamer:
    """Sends one session's log: the catch-up, then live records, verdicts and pings, then its end.

    Damage is reported as the box's reader finds it (``damage`` controls: every span so far, in file
    order, sent before the records after the newest one), never sent as records.
    """

    def __init__(self, session: Session, out: MessageWriter, options: StreamOptions | None = None):
        self.session, self.out = session, out
        self.opt = options or StreamOptions()
        self.offset = HEADER_SIZE  # just past the last record sent (or skipped by the catch-up)
        self.ended = False  # an end record follows the latest start record
        self.started_t: float | None = None  # time of the latest session_start (a trainer's start)
        self.verdict: dict | None = None
        self.damage: list[Damage] = []  # spans the catch-up found (the live reader keeps its own)
        self._announced: tuple[Damage, ...] = ()
        self._last_out = time.monotonic()
        self._ended_at: float | None = None
        self._reader: LogReader | None = None  # follows the log from ``offset`` once the catch-up is done
        self._fd = -1

    def control(self, kind: str, **fields) -> None:
        self.out.raw(control_message(kind, **fields))
        self._last_out = time.monotonic()

    def run(self, start: int, thin_over: int | None, archs: str = "inline") -> int:
        """Stream from ``start``; thin the catch-up when more than ``thin_over`` bytes wait (None: never),
        with the left-out probes' architectures in place or after the catch-up (``archs``)."""
        session = self.session
        self.offset = max(HEADER_SIZE, start)
        size = _size(session.log_path)
        self.verdict = verdict(session)
        try:
            meta = session.meta()
        except SessionError:
            meta = {}
        self.control("start", session_id=session.id, meta=meta, size=size, start=self.offset,
                     sessions_dir=str(session.path.parent.resolve()), **self.verdict)
        try:
            skipped, later = 0, []
            if thin_over is not None and size - self.offset > thin_over:
                skipped, later = self._catch_up_thin(size, archs)
            else:
                self._send_new(until=size)
            self._announce()
            self.control("caught_up", offset=self.offset, skipped=skipped)
            self.out.flush()
            if later:
                self._send_shapes(later)
            return self._follow()
        except LogError as err:  # not a session log (e.g. its header was damaged): nothing to follow
            self.control("error", message=str(err))
            self.out.flush()
            return 1

    # -- damage ---------------------------------------------------------------------------------
    def known_damage(self) -> list[Damage]:
        """Every damaged span found so far, in file order."""
        return self.damage + (self._reader.damage if self._reader is not None else [])

    def _announce(self, before: int | None = None, known: list[Damage] | None = None) -> None:
        """Send the damage found before byte ``before`` (None: all of it) if the laptop has not seen it."""
        known = self.known_damage() if known is None else known
        shown = tuple(d for d in known if before is None or d.start < before)
        if shown != self._announced:
            self._announced = shown
            self.control("damage", spans=[dataclasses.asdict(d) for d in shown])

    # -- catch-up -------------------------------------------------------------------------------
    def _catch_up_thin(self, size: int, archs: str) -> tuple[int, list[tuple[int, int]]]:
        """The catch-up selection of [offset, size); returns how many records it left out, and the
        probes whose architectures are to follow the catch-up."""
        fd = os.open(self.session.log_path, os.O_RDONLY)

        def send(items: list[tuple[int, int]]) -> None:
            run: list[tuple[int, int]] = []  # adjacent records, read with one pread
            for offset, length in items:
                if run and (length < 0 or run[-1][0] + run[-1][1] != offset):
                    self._send_run(fd, run)
                    run = []
                if length < 0:  # a probe left out: its architectures, for the cell-shape history
                    self._send_archs(fd, offset, -length)
                else:
                    run.append((offset, length))
            if run:
                self._send_run(fd, run)
            self.out.flush()  # on its way while the scan goes on

        try:
            chosen = plan(fd, self.offset, size, emit=send, damage=self.damage, archs=archs)
            if chosen.ended is not None:
                self.ended, self._ended_at = chosen.ended, time.monotonic() if chosen.ended else None
            if chosen.started_t is not None:
                self.started_t = chosen.started_t
            self.offset = chosen.end
            return chosen.seen - len(chosen.records), [] if archs == "inline" else chosen.heads
        finally:
            os.close(fd)

    def _send_shapes(self, probes: list[tuple[int, int]]) -> None:
        """The architectures of probes the catch-up left out, for the cell shape over the search
        (between ``shapes`` and ``shapes_done``: the laptop folds them in ahead of what it has)."""
        self.control("shapes", count=len(probes))
        fd = os.open(self.session.log_path, os.O_RDONLY)
        try:
            for offset, size in probes:
                self._send_archs(fd, offset, size)
        finally:
            os.close(fd)
        self.control("shapes_done")
        self.out.flush()

    def _send_run(self, fd: int, run: list[tuple[int, int]]) -> None:
        """Records read with one pread, each checked (both CRCs) before it is sent."""
        base = run[0][0]
        data = os.pread(fd, run[-1][0] + run[-1][1] - base, base)
        for offset, size in run:
            if len(self._announced) < len(self.damage) and self.damage[len(self._announced)].start < offset:
                self._announce(offset, self.damage)
            found = parse_frame(data, offset - base, offset)
            if not isinstance(found, Record) or found.end != offset + size:
                insort(self.damage, Damage(offset, offset + size, 1, found if isinstance(found, str) else
                                           "record changed while it was read"), key=lambda d: d.start)
                continue
            self.out.raw(record_message(offset, data[offset - base:offset - base + size]))
        self._last_out = time.monotonic()

    def _send_archs(self, fd: int, offset: int, size: int) -> None:
        """The architectures of the probe at ``offset`` (read from the start of its payload only)."""
        want = min(size, ARCHS_READ)
        while True:
            head = os.pread(fd, want, offset)
            found = probe_archs(Record(offset, offset + size, head[FRAME_HEAD_SIZE:]))
            if found is not None or want >= size:
                break
            want = min(size, 4 * want)  # a long list of architectures: read further
        if found is not None:
            self.out.raw(archs_message(offset, found))

    # -- live -----------------------------------------------------------------------------------
    def _note_kind(self, record: Record) -> None:
        if record.kind == "session_start":
            found = peek(record)
            self.ended, self._ended_at = False, None
            self.started_t = found[2] if found else self.started_t
        elif record.kind == "session_end":
            self.ended, self._ended_at = True, time.monotonic()

    def _send_new(self, until: int | None = None) -> bool:
        """Send the records after ``offset`` (up to ``until``); True if there were any."""
        reader = self._open_reader()
        if reader is None:
            return False
        sent = False
        while until is None or self.offset < until:
            records = reader.read_records(max_records=2000)
            known = self.known_damage()
            if records:
                base = records[0].offset
                data = os.pread(self._fd, records[-1].end - base, base)
                pending = len(known) != len(self._announced) or tuple(known) != self._announced
                for record in records:
                    if pending:
                        self._announce(record.offset, known)
                    self._note_kind(record)
                    self.out.raw(record_message(record.offset, data[record.offset - base:record.end - base]))
                self.offset = records[-1].end
                self._last_out = time.monotonic()
                sent = True
            self._announce(known=known)
            if not records:
                break
        return sent

    def _open_reader(self) -> LogReader | None:
        if self._reader is None:
            path = self.session.log_path
            try:
                self._reader = LogReader(path, self.offset)
            except LogFormatError:
                raise
            except LogError:
                return None  # no log yet
            self._fd = os.open(path, os.O_RDONLY)
        return self._reader

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            os.close(self._fd)
            self._reader = None

    def _follow(self) -> int:
        """Live records until the session ends; pings while idle; exits 0 at the end."""
        opt = self.opt
        checked = -opt.check_s  # the first check at once: a session that is already over ends now
        while True:
            grew = self._send_new()
            if grew:
                self.out.flush()
                continue
            now = time.monotonic()
            if now - checked >= opt.check_s or self.ended:
                checked = now
                said = verdict(self.session, self.started_t)
                if said != self.verdict:
                    self.verdict = said
                    self.control("status", torn_tail=self._torn_tail(), **said)
                if self._over(said["status"], now):
                    if self._send_new():  # records written just before the verdict
                        continue
                    self.control("end", torn_tail=self._torn_tail(), **said)
                    self.out.flush()
                    return 0
            if now - self._last_out >= opt.ping_s:
                self.control("ping")
            self.out.flush()
            time.sleep(opt.poll_s)

    def _torn_tail(self) -> list[int] | None:
        torn = self._reader.torn_tail if self._reader is not None else None
        return list(torn) if torn is not None else None

    def _over(self, status: str, now: float) -> bool:
        """The session has ended as a local attach decides it: an end record and the trainer gone,
        or no end record and Session.state() says it is not running (crashed, stopped, ...). A
        session with no status.json yet is one a trainer is still setting up."""
        if self.ended:
            return status != "running" or now - (self._ended_at or now) >= self.opt.end_grace_s
        return status not in ("running", "error") and self.session.status_path.exists()


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def verb_stream(root: Path, session_id: str, start: int, thin_over: int | None, fd: int = 1,
                options: StreamOptions | None = None, archs: str = "inline") -> int:
    session = session_for(root, session_id)
    out = MessageWriter(fd)
    try:
        out.raw(hello_line())
        streamer = Streamer(session, out, options)
        try:
            return streamer.run(start, thin_over, archs)
        finally:
            streamer.close()
    except Disconnected:
        return 0  # the laptop went away: nothing to report to anyone


# -- pull -------------------------------------------------------------------------------------------
RESUMABLE = ("events.log", "trainer.log")  # append-only: a partial copy continues where it stopped


def pull_files(session: Session, checkpoints: bool) -> list[str]:
    """The files a pull copies, relative to the session folder; the log last but one, LATEST last."""
    names = [n for n in ("meta.json", "status.json", "trainer.log") if (session.path / n).is_file()]
    names.append("events.log")
    if checkpoints and session.checkpoint_dir.is_dir():
        names += sorted(f"checkpoints/{p.name}" for p in session.checkpoint_dir.glob("*.pt") if p.is_file())
        if (session.checkpoint_dir / "LATEST").is_file():
            names.append("checkpoints/LATEST")
    return names


def resumable(name: str) -> bool:
    """Whether a partial copy of this file can be continued: append-only or written once."""
    return name in RESUMABLE or (name.startswith("checkpoints/epoch-") and name.endswith(".pt"))


def verb_pull(root: Path, session_id: str, checkpoints: bool, rate: float | None = None, fd: int = 1,
              stdin: int = 0) -> int:
    """Lists the files (``start``: names and sizes), reads the laptop's ``{"have": {name: bytes}}``
    line, then sends each file as ``file`` (name, size, start), data messages, ``done``; then ``end``."""
    session = session_for(root, session_id)
    names = pull_files(session, checkpoints)
    out = MessageWriter(fd, rate=rate)
    try:
        out.raw(hello_line())
        files = [{"name": name, "size": _size(session.path / name)} for name in names]
        out.raw(control_message("start", session_id=session.id, files=files))
        out.flush()
        have = _read_have(stdin)
        if have is None:
            return 0  # the laptop went away before it answered
        for name in names:
            _send_file(out, session.path / name, name, have.get(name, 0) if resumable(name) else 0)
        out.raw(control_message("end"))
        out.flush()
        return 0
    except Disconnected:
        return 0


def _read_have(fd: int) -> dict[str, int] | None:
    line = b""
    while not line.endswith(b"\n"):
        chunk = os.read(fd, 65536)
        if not chunk:
            return None
        line += chunk
    try:
        have = json.loads(line)["have"]
        return {str(k): int(v) for k, v in have.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise SessionError("pull: the laptop's list of what it has is not valid") from None


def _send_file(out: MessageWriter, path: Path, name: str, start: int) -> None:
    try:
        f = open(path, "rb")
    except FileNotFoundError:
        out.raw(control_message("file", name=name, size=None, start=0))
        return
    with f:
        size = os.fstat(f.fileno()).st_size  # a growing log is copied up to here; pull again for more
        start = start if 0 <= start <= size else 0
        out.raw(control_message("file", name=name, size=size, start=start))
        f.seek(start)
        offset = start
        while offset < size:
            chunk = f.read(min(CHUNK, size - offset))
            if not chunk:
                break
            out.raw(data_message(offset, chunk))
            offset += len(chunk)
        out.raw(control_message("done", name=name, size=offset))
