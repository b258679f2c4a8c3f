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

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from enas_tui.remote.catchup import plan
from enas_tui.remote.protocol import (
    Disconnected, MessageWriter, control_message, data_message, hello_line, record_message,
)
from enas_tui.session_log import HEADER_SIZE, CorruptLogError, LogError, LogReader
from enas_tui.sessions import Session, SessionError, all_sessions, newest_running, open_session, summarize
from enas_tui.sources import _tail_line, peek

POLL_S = 0.025  # how often a followed log is checked for new records
CHECK_S = 1.0  # how often status.json and the trainer's pid are checked
PING_S = 2.0  # an idle stream says so this often: a dead connection is noticed (EPIPE) and the verb exits
END_GRACE_S = 3.0  # after the end record, how long status.json may still say "running"
CHUNK = 1 << 20  # file bytes per data message (pull)


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
    write_line(fd, hello_line())
    result = stop_session(session, wait)
    write_line(fd, (json.dumps(asdict(result)) + "\n").encode())


# -- stream -----------------------------------------------------------------------------------------
def trainer_verdict(session: Session) -> tuple[str | None, str]:
    """(status as this box sees it, the trainer's last output line); None before status.json exists."""
    if not session.status_path.exists():
        return None, ""
    try:
        live = session.live_status()
    except SessionError as err:
        return "error", str(err)
    return live, _tail_line(session.path / "trainer.log")


@dataclass
class StreamOptions:
    poll_s: float = POLL_S
    check_s: float = CHECK_S
    ping_s: float = PING_S
    end_grace_s: float = END_GRACE_S


class Streamer:
    """Sends one session's log: the catch-up, then live records, verdicts and pings, then its end."""

    def __init__(self, session: Session, out: MessageWriter, options: StreamOptions | None = None):
        self.session, self.out = session, out
        self.opt = options or StreamOptions()
        self.offset = HEADER_SIZE  # just past the last record sent (or skipped by the catch-up)
        self.ended = False  # an end record follows the latest start record
        self.verdict: tuple[str | None, str] | None = None
        self._last_out = time.monotonic()
        self._ended_at: float | None = None
        self._reader: LogReader | None = None  # follows the log from ``offset`` once the catch-up is done
        self._fd = -1

    def control(self, kind: str, **fields) -> None:
        self.out.raw(control_message(kind, **fields))
        self._last_out = time.monotonic()

    def run(self, start: int, thin_over: int | None) -> int:
        """Stream from ``start``; thin the catch-up when more than ``thin_over`` bytes wait (None: never)."""
        session = self.session
        self.offset = max(HEADER_SIZE, start)
        size = _size(session.log_path)
        verdict = trainer_verdict(session)
        try:
            meta = session.meta()
        except SessionError:
            meta = {}
        self.control("start", session_id=session.id, meta=meta, size=size, start=self.offset,
                     status=verdict[0], reason=verdict[1])
        self.verdict = verdict
        try:
            skipped = 0
            if thin_over is not None and size - self.offset > thin_over:
                skipped = self._catch_up_thin(size)
            else:
                self._send_new(until=size)
            self.control("caught_up", offset=self.offset, skipped=skipped)
            self.out.flush()
            return self._follow()
        except CorruptLogError as err:
            self.control("error", message=str(CorruptLogError(err.offset, err.reason, session.log_path)))
            self.out.flush()
            return 1

    def _catch_up_thin(self, size: int) -> int:
        """The catch-up selection of [offset, size); returns how many records it left out."""
        fd = os.open(self.session.log_path, os.O_RDONLY)

        def send(records: list[tuple[int, int]]) -> None:
            run: list[tuple[int, int]] = []  # adjacent records, read with one pread
            for record in records:
                if run and run[-1][0] + run[-1][1] != record[0]:
                    self._send_run(fd, run)
                    run = []
                run.append(record)
            if run:
                self._send_run(fd, run)
            self.out.flush()  # on its way while the scan goes on

        try:
            chosen = plan(fd, self.offset, size, emit=send)
            if chosen.ended is not None:
                self.ended, self._ended_at = chosen.ended, time.monotonic() if chosen.ended else None
            self.offset = chosen.end
            return chosen.seen - len(chosen.records)
        finally:
            os.close(fd)

    def _send_run(self, fd: int, run: list[tuple[int, int]]) -> None:
        base = run[0][0]
        data = os.pread(fd, run[-1][0] + run[-1][1] - base, base)
        for offset, size in run:
            self.out.raw(record_message(offset, data[offset - base:offset - base + size]))
        self._last_out = time.monotonic()

    def _note_kind(self, kind: str | None) -> None:
        if kind == "session_start":
            self.ended, self._ended_at = False, None
        elif kind == "session_end":
            self.ended, self._ended_at = True, time.monotonic()

    def _send_new(self, until: int | None = None) -> bool:
        """Send the complete records after ``offset`` (up to ``until``); True if there were any."""
        reader = self._open_reader()
        if reader is None:
            return False
        sent = False
        while until is None or self.offset < until:
            records = reader.read_records(max_records=2000)
            if not records:
                break
            base = records[0].offset
            data = os.pread(self._fd, records[-1].end - base, base)
            for record in records:
                found = peek(record)
                self._note_kind(found[0] if found else None)
                self.out.raw(record_message(record.offset, data[record.offset - base:record.end - base]))
            self.offset = records[-1].end
            self._last_out = time.monotonic()
            sent = True
        return sent

    def _open_reader(self) -> LogReader | None:
        if self._reader is None:
            path = self.session.log_path
            try:
                self._reader = LogReader(path, self.offset)
            except LogError:
                return None  # no log yet, or a header still being written
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
                verdict = trainer_verdict(self.session)
                if verdict != self.verdict:
                    self.verdict = verdict
                    self.control("status", status=verdict[0], reason=verdict[1])
                if self._over(verdict[0], now):
                    if self._send_new():  # records written just before the verdict
                        continue
                    self.control("end", status=verdict[0], reason=verdict[1])
                    self.out.flush()
                    return 0
            if now - self._last_out >= opt.ping_s:
                self.control("ping")
            self.out.flush()
            time.sleep(opt.poll_s)

    def _over(self, status: str | None, now: float) -> bool:
        """The session has ended as a local attach decides it: end record and trainer gone, or
        no end record and the trainer gone (crashed or stopped)."""
        if self.ended:
            return status != "running" or now - (self._ended_at or now) >= self.opt.end_grace_s
        return status not in (None, "running", "error")


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def verb_stream(root: Path, session_id: str, start: int, thin_over: int | None, fd: int = 1,
                options: StreamOptions | None = None) -> int:
    session = session_for(root, session_id)
    out = MessageWriter(fd)
    try:
        out.raw(hello_line())
        streamer = Streamer(session, out, options)
        try:
            return streamer.run(start, thin_over)
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
