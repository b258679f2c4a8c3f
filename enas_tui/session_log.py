"""The session log: an append-only, crash-safe file of events, the record of a training session.

The trainer appends every event here; the headless view, the dashboard, replay, attach and the
offline analyses read it, possibly while it grows and possibly after the trainer was killed. So
every write reaches the OS at once (no user-space buffer), every record carries checksums, and a
reader tells a torn tail (a write cut short: retry later) from corruption (stop and say where).

On-disk format (version 1)
--------------------------
The file starts with an 8-byte header: the 7 magic bytes ``b"ENASLOG"`` then one byte, the format
version (``0x01``). Records follow back to back, each framed like a TFRecord::

    offset  size  field
    0       8     payload length n, unsigned, little-endian
    8       4     CRC-32 of the 8 length bytes, unsigned, little-endian
    12      n     payload: one event as UTF-8 JSON (events.encode_event)
    12+n    4     CRC-32 of the payload, unsigned, little-endian

CRC-32 is ``zlib.crc32`` (the ISO-HDLC / zip polynomial), stored plainly: unlike TFRecord the CRCs
are not masked, because payloads are JSON text and never embed CRCs of their own. A record's
"offset" is the byte offset of its length field; readers index records by it. Lengths above
MAX_PAYLOAD (256 MiB) are never written; one read back with a valid length CRC is corruption.

What a reader concludes about the bytes after the last complete record:

- fewer than 12 bytes, or a valid length header whose frame is not all there yet: a *torn tail*
  (a writer is mid-write, or was killed mid-write). Reading stops before it, without error.
- 12 header bytes whose length CRC fails, an absurd length, or a complete frame whose payload CRC
  fails: *corruption*. ``CorruptLogError`` names the record's byte offset.

A writer reopening a log truncates a torn tail (so its appends stay readable) and refuses a
corrupt log, so it never cuts off valid data. One writer per log at a time (an advisory
``flock``, where the OS has one) stops a second trainer from interleaving or truncating.

This module must not import torch or textual: the dashboard reads logs on machines without them.
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from .events import Event, decode_event, encode_event

try:  # advisory single-writer lock; not available on Windows
    import fcntl
except ImportError:  # pragma: no cover - platform dependent
    fcntl = None  # type: ignore[assignment]

MAGIC = b"ENASLOG"
FORMAT_VERSION = 1
HEADER = MAGIC + bytes([FORMAT_VERSION])
HEADER_SIZE = len(HEADER)  # 8
MAX_PAYLOAD = 256 * 1024 * 1024

_LEN = struct.Struct("<Q")
_CRC = struct.Struct("<I")
_FRAME_HEAD = struct.Struct("<QI")  # length, CRC of length
FRAME_OVERHEAD = _FRAME_HEAD.size + _CRC.size  # 16 bytes around each payload
_CHUNK = 1 << 20  # bytes per read syscall: reading is one syscall per MiB, not per record


class LogError(Exception):
    """Base of session-log errors; ``str()`` is one line fit to show the user."""


class LogFormatError(LogError):
    """Not a session log, or a format version this code cannot read."""


class CorruptLogError(LogError):
    """A record that fails its checksums or framing; ``offset`` is the record's byte offset."""

    def __init__(self, offset: int, reason: str, path: str | os.PathLike | None = None):
        super().__init__(offset, reason, path)  # args rebuild the error when pickled
        self.offset = offset
        self.reason = reason
        self.path = path

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path is not None else ""
        return f"{where}corrupt session log at byte offset {self.offset}: {self.reason}"


@dataclass(slots=True)
class Record:
    """One raw record: ``offset`` of its frame, ``end`` just past it, and the payload bytes."""

    offset: int
    end: int
    payload: bytes

    def event(self) -> Event:
        return _decode(self)


# -- framing --------------------------------------------------------------------------------
def encode_frame(payload: bytes) -> bytes:
    """The bytes of one record (length, its CRC, payload, payload CRC)."""
    if len(payload) > MAX_PAYLOAD:
        raise LogError(f"event of {len(payload)} bytes exceeds the {MAX_PAYLOAD}-byte record limit")
    length = _LEN.pack(len(payload))
    length_crc, payload_crc = _CRC.pack(zlib.crc32(length)), _CRC.pack(zlib.crc32(payload))
    return b"".join((length, length_crc, payload, payload_crc))


def _parse_frame(buf: bytes, pos: int, offset: int) -> Record | int:
    """The record at ``buf[pos:]`` (file offset ``offset``), or the byte count its frame needs.

    Returning a size means ``buf`` holds only a prefix of the frame (a torn tail unless more
    bytes arrive); a frame that can never become valid raises CorruptLogError.
    """
    avail = len(buf) - pos
    if avail < _FRAME_HEAD.size:
        return _FRAME_HEAD.size
    length, length_crc = _FRAME_HEAD.unpack_from(buf, pos)
    if zlib.crc32(buf[pos : pos + _LEN.size]) != length_crc:
        raise CorruptLogError(offset, "length checksum mismatch")
    if length > MAX_PAYLOAD:
        raise CorruptLogError(offset, f"record length {length} exceeds {MAX_PAYLOAD} bytes")
    size = FRAME_OVERHEAD + length
    if avail < size:
        return size
    start = pos + _FRAME_HEAD.size
    payload = buf[start : start + length]
    (crc,) = _CRC.unpack_from(buf, start + length)
    if zlib.crc32(payload) != crc:
        raise CorruptLogError(offset, "payload checksum mismatch")
    return Record(offset, offset + size, payload)


def _decode(record: Record, path: str | os.PathLike | None = None) -> Event:
    try:
        return decode_event(record.payload)
    except (ValueError, TypeError, AttributeError, KeyError) as err:  # valid frame, not an event
        reason = f"payload is not an event ({type(err).__name__})"
        raise CorruptLogError(record.offset, reason, path) from None


def _check_header(head: bytes, path: str | os.PathLike) -> bool:
    """True if ``head`` is a full valid header, False if a prefix of one; raises otherwise."""
    if len(head) < HEADER_SIZE:
        if HEADER.startswith(head):
            return False
        raise LogFormatError(f"{path}: not an enas-tui session log (bad magic bytes)")
    if head[: len(MAGIC)] != MAGIC:
        raise LogFormatError(f"{path}: not an enas-tui session log (bad magic bytes)")
    version = head[len(MAGIC)]
    if version > FORMAT_VERSION:
        raise LogFormatError(
            f"{path}: session log format version {version} is newer than this enas-tui reads "
            f"(up to {FORMAT_VERSION}); upgrade enas-tui"
        )
    if version < 1:
        raise LogFormatError(f"{path}: unsupported session log format version {version}")
    return True


def _open(path: str | os.PathLike, flags: int) -> int:
    try:
        flags |= getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
        return os.open(path, flags, 0o644)
    except OSError as err:
        raise LogError(f"cannot open session log {path}: {err.strerror}") from None


# -- reading --------------------------------------------------------------------------------
class LogReader:
    """Reads complete records from an offset on, and can be polled as the file grows.

    Each call reads in chunks of a MiB and is bounded by a record count and a time budget, so
    a live view can tail a log in small slices (W&B's terminal viewer: ~2000 records or 50 ms).
    """

    def __init__(self, path: str | os.PathLike, offset: int | None = None):
        if offset is not None and offset < HEADER_SIZE:
            raise LogError(f"offset {offset} lies inside the {HEADER_SIZE}-byte session log header")
        self.path = path
        self._fd = _open(path, os.O_RDONLY)
        self._offset = HEADER_SIZE if offset is None else offset
        self._header_ok = False
        try:
            self._ensure_header()
        except LogError:
            self.close()
            raise

    @property
    def offset(self) -> int:
        """Byte offset just past the last complete record read (where the next read starts)."""
        return self._offset

    def _ensure_header(self) -> bool:
        # A file shorter than its header is one a writer is creating: nothing to read yet.
        if not self._header_ok:
            self._header_ok = _check_header(os.pread(self._fd, HEADER_SIZE, 0), self.path)
        return self._header_ok

    def read_records(
        self, max_records: int | None = None, max_seconds: float | None = None
    ) -> list[Record]:
        """Complete records from ``offset`` on; stops quietly at a torn tail (retry later).

        Returns at least one record when one is complete. Corruption raises CorruptLogError,
        but only once the good records before it have been returned by an earlier call.
        """
        if self._fd < 0:
            raise LogError(f"{self.path}: reader is closed")
        if not self._ensure_header():
            return []
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        out: list[Record] = []
        # Start from a fresh buffer each call: bytes past ``offset`` seen earlier may have been a
        # torn tail that a restarted writer has since truncated and overwritten.
        buf, pos, base = b"", 0, self._offset
        retried = False
        while max_records is None or len(out) < max_records:
            try:
                item = _parse_frame(buf, pos, base + pos)
            except CorruptLogError as err:
                if out:
                    break  # hand over the good records; the next call raises
                if not retried:  # rule out a truncate-and-rewrite racing this read
                    buf, pos, base, retried = b"", 0, self._offset, True
                    continue
                raise CorruptLogError(err.offset, err.reason, self.path) from None
            if isinstance(item, int):
                more = os.pread(self._fd, max(_CHUNK, item - (len(buf) - pos)), base + len(buf))
                if not more:
                    break  # end of file: nothing, or a torn tail
                buf, base, pos = buf[pos:] + more, base + pos, 0
                continue
            out.append(item)
            pos = item.end - base
            self._offset = item.end
            if deadline is not None and time.monotonic() >= deadline:
                break
        return out

    def read(self, max_events: int | None = None, max_seconds: float | None = None) -> list[Event]:
        """Like read_records, decoded into events (a payload that is not an event is corrupt)."""
        events: list[Event] = []
        for record in self.read_records(max_events, max_seconds):
            try:
                events.append(_decode(record, self.path))
            except CorruptLogError:
                self._offset = record.offset  # stay on the bad record: the next call raises
                if events:
                    break
                raise
        return events

    def at_torn_tail(self) -> bool:
        """True when bytes after ``offset`` form an incomplete record (a write in progress or cut).

        False at a clean end, when a complete record waits, or when the bytes are corrupt
        (read_records reports that).
        """
        rest = os.fstat(self._fd).st_size - self._offset
        if rest <= 0 or not self._ensure_header():
            return False
        head = os.pread(self._fd, _FRAME_HEAD.size, self._offset)
        if len(head) < _FRAME_HEAD.size:
            return True
        length, length_crc = _FRAME_HEAD.unpack(head)
        if zlib.crc32(head[: _LEN.size]) != length_crc or length > MAX_PAYLOAD:
            return False
        return rest < FRAME_OVERHEAD + length

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> LogReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class _Scan:
    count: int
    valid_end: int
    size: int
    last: Record | None


def _scan(path: str | os.PathLike) -> _Scan:
    count, last = 0, None
    with LogReader(path) as reader:
        while records := reader.read_records(max_records=10_000):
            count += len(records)
            last = records[-1]
        return _Scan(count, reader.offset, os.fstat(reader._fd).st_size, last)


def scan(path: str | os.PathLike) -> tuple[int, int, int]:
    """(number of valid records, offset where they end, bytes of torn tail after them)."""
    result = _scan(path)
    return result.count, result.valid_end, max(0, result.size - result.valid_end)


def read_events(path: str | os.PathLike) -> list[Event]:
    """Every complete event in the log (a torn tail is left out); corruption raises."""
    events: list[Event] = []
    with LogReader(path) as reader:
        while batch := reader.read():  # a corrupt record ends one batch and raises in the next
            events += batch
    return events


def read_event_at(path: str | os.PathLike, offset: int) -> Event:
    """The event whose record starts at ``offset`` (an offset from Record.offset, for indexes)."""
    with LogReader(path, offset) as reader:
        records = reader.read_records(max_records=1)
        if not records:
            raise LogError(f"{path}: no complete record at byte offset {offset}")
        return _decode(records[0], path)


# -- writing --------------------------------------------------------------------------------
class LogWriter:
    """Appends events to a session log; reopening continues a log a killed writer left behind.

    Every frame goes out in one ``os.write`` on an O_APPEND descriptor: the OS holds it as soon
    as append returns, so it survives SIGKILL of this process and readers see it at once. Call
    sync() where it must also survive a power cut.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = path
        self._fd = _open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND)
        self._end = 0  # offset just past the last whole frame: where a failed write is cut back
        try:
            self._lock()
            self._end, self._next_seq = self._recover()
        except BaseException:
            os.close(self._fd)
            self._fd = -1
            raise

    def _lock(self) -> None:
        if fcntl is None:  # pragma: no cover - platform dependent
            return
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise LogError(f"{self.path}: another process is writing this session log") from None

    def _recover(self) -> tuple[int, int]:
        """Make the file end on a record boundary; return (end offset, next seq)."""
        head = os.pread(self._fd, HEADER_SIZE, 0)
        if not _check_header(head, self.path):  # missing, empty or a torn header
            os.ftruncate(self._fd, 0)
            self._write_all(HEADER)
            return HEADER_SIZE, 0
        found = _scan(self.path)
        if found.size > found.valid_end:  # torn tail of a killed writer
            os.ftruncate(self._fd, found.valid_end)
        next_seq = 0 if found.last is None else max(0, _decode(found.last, self.path).seq + 1)
        return found.valid_end, next_seq

    @property
    def next_seq(self) -> int:
        """The seq the next appended event gets."""
        return self._next_seq

    def append(self, event: Event) -> Event:
        """Number the event (``event.seq``; ``event.t`` is kept), write it, and return it."""
        if self._fd < 0:
            raise LogError(f"{self.path}: writer is closed")
        event.seq = self._next_seq
        frame = encode_frame(encode_event(event))
        self._write_all(frame)
        self._end += len(frame)
        self._next_seq += 1
        return event

    def _write_all(self, data: bytes) -> None:
        try:
            written = os.write(self._fd, data)
            while written < len(data):  # rare: short write (signal, nearly full disk)
                written += os.write(self._fd, data[written:])
        except OSError as err:
            # Cut off the partial frame so the next append does not land after garbage.
            try:
                os.ftruncate(self._fd, self._end)
            except OSError:
                pass
            raise LogError(f"cannot write session log {self.path}: {err.strerror}") from None

    def sync(self) -> None:
        """Flush to stable storage (survives power loss, not just a killed process)."""
        if self._fd >= 0:
            os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    @property
    def closed(self) -> bool:
        return self._fd < 0

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
