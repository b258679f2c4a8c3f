"""``enas-tui pull HOST:ID``: copy a remote session for offline replay, analysis and reports.

One ssh connection per pull. The box lists the session's files with their sizes; this side answers
with what it already has; the box sends the rest. So an interrupted pull resumes where it stopped,
and pulling a running session again copies only what was written since:

- ``events.log`` is appended record by record, each frame checked (both CRCs) as it arrives: the
  local copy always ends on a record boundary, and damage in the remote log stops the copy there
  with the byte offset (the records before it are kept);
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
from enas_tui.session_log import (
    FORMAT_VERSION, HEADER_SIZE, MAGIC, CorruptLogError, LogError, Record, _parse_frame, scan,
)
from enas_tui.sessions import Session


@dataclass
class PullResult:
    """What a pull copied: bytes per file this time, and the log's records in the local copy."""

    session: Session
    copied: dict[str, int] = field(default_factory=dict)
    records: int = 0  # in the local copy of the log, after this pull
    new_records: int = 0  # of which this pull copied
    damage: str | None = None  # where the remote log is damaged (the copy stops before it)


class LogAppender:
    """Appends a log's bytes to a local copy, whole verified records only."""

    def __init__(self, path: Path, start: int, host: str):
        self.path, self.host = path, host
        self._buf = bytearray()
        self._offset = start  # remote offset of _buf[0]
        self._header_done = start >= HEADER_SIZE
        self.records = 0
        flags = os.O_WRONLY | os.O_CREAT | os.O_APPEND | (os.O_TRUNC if start == 0 else 0)
        self._fd = os.open(path, flags, 0o644)

    def feed(self, data: bytes) -> None:
        self._buf += data
        if not self._header_done:
            if len(self._buf) < HEADER_SIZE:
                return
            head = bytes(self._buf[:HEADER_SIZE])
            if head[:len(MAGIC)] != MAGIC or head[len(MAGIC)] > FORMAT_VERSION:
                raise LogError(f"{self.host}: events.log is not a session log this enas-tui reads")
            self._write(head)
            del self._buf[:HEADER_SIZE]
            self._offset, self._header_done = HEADER_SIZE, True
        pos = 0
        try:
            while True:
                item = _parse_frame(self._buf, pos, self._offset + pos)
                if not isinstance(item, Record):
                    break
                pos += item.end - item.offset
                self.records += 1
        finally:
            if pos:
                self._write(bytes(self._buf[:pos]))
                del self._buf[:pos]
                self._offset += pos

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as err:
            raise LogError(f"cannot write {self.path}: {err.strerror}") from None

    def close(self) -> None:
        os.close(self._fd)


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


def _local_have(folder: Path, files: list[dict]) -> tuple[dict[str, int], int]:
    """What the local copy already holds, per file the box listed (resumable files only), and
    how many records its log has."""
    have: dict[str, int] = {}
    records = 0
    for item in files:
        name, size = item["name"], item.get("size") or 0
        path = folder / name
        if name == "events.log" and path.exists():
            try:
                records, valid_end, torn = scan(path)
            except LogError:  # a damaged local copy: copy the log again from the start
                continue
            if torn:
                with open(path, "r+b") as f:
                    f.truncate(valid_end)
            have[name] = valid_end
        elif resumable(name):
            part = path.with_name(f".{path.name}.part")
            if part.exists():
                have[name] = min(size, part.stat().st_size)
            elif path.exists() and path.stat().st_size <= size:
                have[name] = path.stat().st_size
    return have, records


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
        self._file: LogAppender | FileCopy | None = None
        self._name = ""
        self._got = 0
        self._had = 0  # records in the local log before this pull

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
            elif isinstance(self._file, LogAppender):
                self._count(self._file.records)
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
        have, self._had = _local_have(folder, files)
        if "events.log" not in have:
            self._had = 0
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
            self._file = LogAppender(path, start, self.endpoint.target.destination)
        else:
            self._file = FileCopy(path, start)
        self.result.copied[name] = 0

    def _data(self, data: bytes) -> None:
        try:
            self._file.feed(data)
        except CorruptLogError as err:
            self._count(self._file.records)
            self._file.close()
            self._file = None
            self.result.damage = (f"the log on {self.endpoint.target.destination} is damaged at byte {err.offset} "
                                  f"({err.reason})")
            self.ended = True
            return
        self._got += len(data)
        self.result.copied[self._name] += len(data)
        if self.progress is not None:
            self.progress(self._name, self._got, self.sizes.get(self._name, 0))

    def _count(self, new: int) -> None:
        self.result.new_records = new
        self.result.records = self._had + new

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
