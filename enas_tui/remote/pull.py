"""``enas-tui pull HOST:ID``: copy a remote session for offline replay, analysis and reports.

One ssh connection per pull. The box lists the session's files with their sizes; this side answers
with what it already has; the box sends the rest. So an interrupted pull resumes where it stopped,
and pulling a running session again copies only what was written since:

- ``events.log`` is copied byte for byte and read back as it lands by the same reader that reads
  it on the box (session_log.LogReader): every record's checksums and seq are checked, damage in
  the box's log is found and reported as a reader there reports it (where, why, how many records),
  and the records after it are kept, so the copy holds exactly what the box's log holds, damage
  included, at the same offsets. A pull that resumes first cuts the copy back to its last valid
  record (a tail that was torn or damaged when it was copied may have been completed or set aside
  on the box since);
- append-only or write-once files (``trainer.log``, ``checkpoints/epoch-*.pt``) continue from a
  ``.part`` file; the rest (meta.json, status.json, LATEST, interrupt.pt) are copied whole, and every
  file but the log is renamed into place only once complete.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from enas_tui.remote.hosts import Endpoint
from enas_tui.remote.protocol import (
    TAG_CONTROL, TAG_DATA, MessageReader, ProtocolError, check_hello, find_hello,
)
from enas_tui.remote.ssh import RemoteError, classify, no_ssh, ssh_argv
from enas_tui.remote.verbs import resumable
from enas_tui.session_log import HEADER_SIZE, Damage, LogError, LogFormatError, LogReader
from enas_tui.sessions import Session
from enas_tui.sources import describe_damage


@dataclass
class PullResult:
    """What a pull copied: bytes per file this time, the log's records in the local copy, and the
    damage in it (the box's log's, at the same offsets)."""

    session: Session
    copied: dict[str, int] = field(default_factory=dict)
    records: int = 0  # in the local copy of the log, after this pull
    new_records: int = 0  # of which this pull copied
    damage: list[Damage] = field(default_factory=list)

    def damage_summary(self) -> str:
        """One line: how many damaged spans and records skipped, and where the first one is."""
        return describe_damage(self.damage)


@dataclass
class LocalLog:
    """What a local copy of a log already holds: records, where the last valid one ends, its last
    seq, and the damage before that point."""

    records: int = 0
    end: int = 0
    last_seq: int = -1
    damage: list[Damage] = field(default_factory=list)

    @classmethod
    def read(cls, path: Path) -> LocalLog:
        try:
            with LogReader(path) as reader:
                count = 0
                while batch := reader.read_records(max_records=10_000):
                    count += len(batch)
                if reader.offset < HEADER_SIZE or reader.last_seq is None:
                    return cls()
                return cls(count, reader.offset, reader.last_seq, [d for d in reader.damage if not d.at_end])
        except LogError:  # not a log (a damaged header, say): copy it again from the start
            return cls()


class LogCopy:
    """Appends the log's bytes to the local copy and reads them back as they land (LogReader)."""

    def __init__(self, path: Path, have: LocalLog, host: str):
        self.path, self.host, self.have = path, host, have
        self.records = 0  # new records this pull
        self._reader: LogReader | None = None
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if have.end == 0 else 0)
        self._fd = os.open(path, flags, 0o644)

    def feed(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as err:
            raise LogError(f"cannot write {self.path}: {err.strerror}") from None
        self._check()

    def _check(self) -> None:
        if self._reader is None:
            if self.path.stat().st_size < HEADER_SIZE:
                return
            try:
                self._reader = LogReader(self.path, None if self.have.end == 0 else self.have.end)
            except LogFormatError as err:
                raise LogError(f"{self.host}: events.log is not a session log this enas-tui reads ({err})") from None
            if self.have.end:
                self._reader.last_seq = self.have.last_seq  # seqs run on across the resumed copy
        while batch := self._reader.read_records(max_records=10_000):
            self.records += len(batch)

    @property
    def damage(self) -> list[Damage]:
        return self.have.damage + (self._reader.damage if self._reader is not None else [])

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class FileCopy:
    """Any other file: into ``.NAME.part``, renamed into place when complete.

    Continuing (``start`` > 0) appends to the ``.part`` left by an interrupted pull, or to the
    complete copy of an earlier pull (moved back to ``.part`` first) of a file that has grown.
    """

    def __init__(self, path: Path, start: int):
        self.path = path
        self.part = path.with_name(f".{path.name}.part")
        if start and not self.part.exists() and path.exists():
            os.replace(path, self.part)
        self._f = open(self.part, "ab" if start else "wb")
        self._f.truncate(start)

    def feed(self, data: bytes) -> None:
        self._f.write(data)

    def finish(self) -> None:
        self._f.close()
        os.replace(self.part, self.path)

    def close(self) -> None:
        self._f.close()


def _local_have(folder: Path, files: list[dict]) -> tuple[dict[str, int], LocalLog]:
    """What the local copy already holds, per file the box listed (resumable files only); the log
    is cut back to its last valid record first."""
    have: dict[str, int] = {}
    log = LocalLog()
    for item in files:
        name, size = item["name"], item.get("size") or 0
        path = folder / name
        if name == "events.log" and path.exists():
            log = LocalLog.read(path)
            if log.end:
                if path.stat().st_size > log.end:
                    with open(path, "r+b") as f:
                        f.truncate(log.end)
                have[name] = log.end
        elif resumable(name):
            part = path.with_name(f".{path.name}.part")
            if part.exists():
                have[name] = min(size, part.stat().st_size)
            elif path.exists() and path.stat().st_size <= size:
                have[name] = path.stat().st_size
    return have, log


def pull(endpoint: Endpoint, dest_root: Path, checkpoints: bool = False, rate: float | None = None,
         progress: Callable[[str, int, int], None] | None = None) -> PullResult:
    """Copy ``endpoint``'s session into ``dest_root/<id>/``; RemoteError / LogError with one line."""
    host = endpoint.target.destination
    args = [endpoint.target.session_id] + (["--checkpoints"] if checkpoints else [])
    if rate:
        args += ["--rate", str(int(rate))]
    stderr = tempfile.TemporaryFile()
    try:
        proc = subprocess.Popen(ssh_argv(endpoint, "pull", args), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=stderr, start_new_session=True)
    except FileNotFoundError:
        raise no_ssh(endpoint) from None
    puller = _Puller(endpoint, proc, dest_root, progress)
    try:
        puller.run()
    except ProtocolError as err:
        raise RemoteError(f"{host}: {err}", "protocol") from None
    finally:
        puller.close()
        if proc.poll() is None:
            proc.kill()
        code = proc.wait()
    if puller.ended:
        return puller.result
    stderr.seek(0)
    text = stderr.read().decode("utf-8", "replace")
    if code == 0 and puller.hello is not None:
        raise RemoteError(f"{host}: the copy stopped before it was complete; run pull again to resume", "closed")
    error = classify(endpoint, code, text, puller.hello is not None)
    if puller.result is not None and error.transient:
        raise RemoteError(f"{error}; what arrived is kept: run pull again to resume", error.kind)
    raise error


class _Puller:
    def __init__(self, endpoint: Endpoint, proc: subprocess.Popen, dest_root: Path, progress):
        self.endpoint, self.proc, self.dest_root, self.progress = endpoint, proc, dest_root, progress
        self.hello: dict | None = None
        self.ended = False
        self.result: PullResult | None = None
        self.sizes: dict[str, int] = {}
        self._file: LogCopy | FileCopy | None = None
        self._name = ""
        self._got = 0
        self._log = LocalLog()  # what the local log held before this pull

    def run(self) -> None:
        fd = self.proc.stdout.fileno()
        head, reader = bytearray(), MessageReader()
        while not self.ended:
            data = os.read(fd, 1 << 20)
            if not data:
                return
            if self.hello is None:
                head += data
                found = find_hello(head)
                if found is None:
                    continue
                self.hello, end = found
                check_hello(self.hello, self.endpoint.target.destination)
                data = bytes(head[end:])
            for message in reader.feed(data):
                self._message(message)
                if self.ended:
                    break

    def _message(self, message) -> None:
        if message.tag == TAG_DATA:
            if self._file is None:
                raise ProtocolError("file data outside a file")
            self._data(message.payload)
            return
        if message.tag != TAG_CONTROL:
            raise ProtocolError(f"unexpected message {message.tag!r} in a pull")
        control = message.control
        kind = control["kind"]
        if kind == "start":
            self._start(control)
        elif kind == "file":
            self._open_file(control)
        elif kind == "done":
            if isinstance(self._file, FileCopy):
                self._file.finish()
            elif isinstance(self._file, LogCopy):
                self._count(self._file)
                self._file.close()
            self._file = None
        elif kind == "end":
            self.ended = True

    def _start(self, control: dict) -> None:
        session_id = str(control["session_id"])
        folder = self.dest_root / session_id
        (folder / "checkpoints").mkdir(parents=True, exist_ok=True)
        self.result = PullResult(Session(folder))
        files = [f for f in control.get("files", []) if isinstance(f, dict) and "name" in f]
        self.sizes = {f["name"]: f.get("size") or 0 for f in files}
        have, self._log = _local_have(folder, files)
        if "events.log" not in have:
            self._log = LocalLog()
        try:
            self.proc.stdin.write((json.dumps({"have": have}) + "\n").encode())
            self.proc.stdin.close()
        except BrokenPipeError:
            pass  # the connection is gone: the read loop sees its end and says why

    def _open_file(self, control: dict) -> None:
        name, start, size = str(control["name"]), int(control.get("start") or 0), control.get("size")
        if size is None or ".." in Path(name).parts or Path(name).is_absolute():
            return  # gone on the box since it was listed (or a name this side will not write)
        path = self.result.session.path / name
        self._name, self._got = name, start
        if name == "events.log":
            if start == 0:  # the box's log is shorter than the copy (not the same log): copy it anew
                self._log = LocalLog()
            elif start != self._log.end:
                raise ProtocolError(f"the log is sent from byte {start}, not where the copy ends ({self._log.end})")
            self._file = LogCopy(path, self._log, self.endpoint.target.destination)
        else:
            self._file = FileCopy(path, start)
        self.result.copied[name] = 0

    def _data(self, data: bytes) -> None:
        self._file.feed(data)
        self._got += len(data)
        self.result.copied[self._name] += len(data)
        if self.progress is not None:
            self.progress(self._name, self._got, self.sizes.get(self._name, 0))

    def _count(self, copy: LogCopy) -> None:
        self.result.new_records = copy.records
        self.result.records = self._log.records + copy.records
        self.result.damage = copy.damage

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self.proc.stdin and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except BrokenPipeError:
                pass


def cache_root() -> Path:
    """Where remote sessions are pulled for compare and replay: $XDG_CACHE_HOME/enas-tui/pulled."""
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "enas-tui" / "pulled"


def cached_copy(endpoint: Endpoint) -> PullResult:
    """The session pulled into the cache (only what is new since the last time), for compare/replay."""
    target = endpoint.target
    folder = "".join(c if c.isalnum() or c in "-_.@" else "_" for c in
                     target.destination + (f"_{target.port}" if target.port else ""))
    return pull(endpoint, cache_root() / folder)
