"""The session log: an append-only, crash-safe file of events, the record of a training session.

The trainer appends every event here; the headless view, the dashboard, replay, attach and the
offline analyses read it, possibly while it grows and possibly after the trainer was killed, the
machine lost power or the disk was damaged. So every write reaches the OS at once (no user-space
buffer), every record carries checksums, and a reader never gives up on a file: it skips what is
damaged, says where and how much, and keeps everything after it.

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
MAX_PAYLOAD (256 MiB) are never written; one read back is damage.

What a reader makes of the bytes
--------------------------------
- A *record*: a frame whose two checksums verify, whose payload has a seq above every seq before
  it (seqs count up from 0 across the whole session, resumes included).
- *Damage* (``Damage``): a frame that fails its checksums or bounds, a payload that is not an
  event, a seq that repeats or goes back, or a seq that jumps (records missing). The reader
  resynchronises by scanning forward for the next offset where a whole frame verifies (length
  CRC, length bound and payload CRC), reports the span with its byte range and the number of
  records skipped (from the seqs on either side), and goes on. A false resync needs two CRC-32
  matches on bytes that are not a frame: about 2^-64 per offset scanned.
- A *torn tail*: an incomplete last frame with a valid prefix and nothing valid after it: a write
  in progress, or one a killed writer left. Not damage: a reader waits there and resumes from the
  same offset when the file grows.
- A *damaged tail*: damage that runs to the end of the file (e.g. the zeros a power cut leaves).
  Provisional while a writer may still replace it; ``Damage.at_end`` marks it.

A writer reopening a log (a resumed run) copies whatever follows the last valid frame, torn or
damaged, to a side file (``events.log.damaged-<offset>`` or ``.torn-<offset>``) before cutting it,
so its appends stay readable and no byte is ever silently dropped; damage in the middle stays where
it is. One writer per log at a time (an advisory ``flock``, where the OS has one).

This module must not import torch or textual: the dashboard reads logs on machines without them.
"""

from __future__ import annotations

import dataclasses
import os
import re
import struct
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

from .events import Event, EventError, check_event, decode_event, encode_event, payload_seq

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
MAX_FRAME = FRAME_OVERHEAD + MAX_PAYLOAD
_CHUNK = 1 << 20  # bytes per read syscall: reading is one syscall per MiB, not per record
# A frame's length is at most 2^28, so bytes 4-7 of its header are zero: scanning for a frame
# only checks offsets where four zero bytes follow, found at C speed (JSON text has no zero byte).
_ZERO4 = b"\0\0\0\0"
_ZERO_HEAD = bytes(_FRAME_HEAD.size)  # never a valid header: crc32 of 8 zero bytes is not 0
_NONZERO = re.compile(rb"[^\x00]")


class LogError(Exception):
    """Base of session-log errors; ``str()`` is one line fit to show the user."""


class LogFormatError(LogError):
    """Not a session log, or a format version this code cannot read."""


class CorruptLogError(LogError):
    """No valid record where one was asked for (read_event_at); ``offset`` is its byte offset."""

    def __init__(self, offset: int, reason: str, path: str | os.PathLike | None = None):
        super().__init__(offset, reason, path)  # args rebuild the error when pickled
        self.offset = offset
        self.reason = reason
        self.path = path

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path is not None else ""
        return f"{where}damaged session log at byte offset {self.offset}: {self.reason}"


@dataclass(frozen=True)
class Damage:
    """A damaged span of a log: bytes [start, end) hold no record a reader could use.

    ``skipped`` is how many records the span cost, from the seqs on either side (``None`` when
    that cannot be known, e.g. at the end of the file); ``at_end`` marks a span running to the
    end of the file (a damaged tail, which a resumed writer sets aside).
    """

    start: int
    end: int
    skipped: int | None
    reason: str
    at_end: bool = False

    @property
    def size(self) -> int:
        return self.end - self.start

    def describe(self) -> str:
        """One line: where, how big, why, and how many records were skipped."""
        where = (f"at byte {self.start}" if self.size == 0
                 else f"bytes {self.start}-{self.end} ({self.size:,} bytes)")
        if self.skipped is None:
            lost = "records skipped: unknown"
        else:
            lost = f"{self.skipped} record{'s' if self.skipped != 1 else ''} skipped"
        tail = " at the end of the log" if self.at_end else ""
        return f"{where}{tail}: {self.reason}; {lost}"


@dataclass(slots=True)
class Record:
    """One raw record: ``offset`` of its frame, ``end`` just past it, the payload, and its seq and
    event type as the reader read them from the payload's start (type None: laid out otherwise)."""

    offset: int
    end: int
    payload: bytes
    seq: int = -1
    kind: str | None = None

    def event(self) -> Event:
        """The decoded event; a payload that is not one raises CorruptLogError."""
        try:
            return decode_event(self.payload)
        except EventError as err:
            raise CorruptLogError(self.offset, f"record is not an event: {err}") from None


def payload_damage(record: Record, err: Exception) -> Damage:
    """The damage report for a record whose frame verifies but whose payload is not an event."""
    reason = err.reason if isinstance(err, CorruptLogError) else f"record is not an event: {err}"
    return Damage(record.offset, record.end, 1, reason)


# -- framing --------------------------------------------------------------------------------
def encode_frame(payload: bytes) -> bytes:
    """The bytes of one record (length, its CRC, payload, payload CRC)."""
    if len(payload) > MAX_PAYLOAD:
        raise LogError(f"event of {len(payload)} bytes exceeds the {MAX_PAYLOAD}-byte record limit")
    length = _LEN.pack(len(payload))
    length_crc, payload_crc = _CRC.pack(zlib.crc32(length)), _CRC.pack(zlib.crc32(payload))
    return b"".join((length, length_crc, payload, payload_crc))


def parse_frame(buf: bytes, pos: int, offset: int) -> Record | int | str:
    """The record at ``buf[pos:]`` (file offset ``offset``), the byte count its frame needs, or why
    it can never be valid.

    A size means ``buf`` holds only a prefix of the frame (more bytes may yet arrive). Public for
    readers of frames that arrive in a byte stream rather than from a file (the remote protocol).
    """
    avail = len(buf) - pos
    if avail < _FRAME_HEAD.size:
        return _FRAME_HEAD.size
    length, length_crc = _FRAME_HEAD.unpack_from(buf, pos)
    if zlib.crc32(buf[pos : pos + _LEN.size]) != length_crc:
        return "length checksum mismatch"
    if length > MAX_PAYLOAD:
        return f"record length {length} exceeds {MAX_PAYLOAD} bytes"
    size = FRAME_OVERHEAD + length
    if avail < size:
        return size
    start = pos + _FRAME_HEAD.size
    payload = buf[start : start + length]
    (crc,) = _CRC.unpack_from(buf, start + length)
    if zlib.crc32(payload) != crc:
        return "payload checksum mismatch"
    return Record(offset, offset + size, payload)


def _valid_frame_at(fd: int, buf: bytes, o: int, base: int, size: int) -> bool:
    """Whether a whole frame whose checksums verify starts at ``buf[o]`` (file offset base + o)."""
    length, length_crc = _FRAME_HEAD.unpack_from(buf, o)
    if length > MAX_PAYLOAD or zlib.crc32(buf[o : o + _LEN.size]) != length_crc:
        return False
    end = base + o + FRAME_OVERHEAD + length
    if end > size:
        return False  # not all there: not a frame (yet)
    if o + FRAME_OVERHEAD + length <= len(buf):
        frame = buf[o : o + FRAME_OVERHEAD + length]
    else:
        frame = os.pread(fd, FRAME_OVERHEAD + length, base + o)
    return isinstance(parse_frame(frame, 0, base + o), Record)


def next_frame(fd: int, start: int, size: int) -> int | None:
    """The offset of the first valid frame at or after ``start`` (before ``size``), or None.

    Candidates are offsets followed by four zero bytes (a length's high bytes); runs of zeros are
    skipped to where a non-zero byte could begin a header, so a megabyte of zeros or JSON costs a
    few C-level scans, not a million checksum tries.
    """
    pos = start
    while pos + FRAME_OVERHEAD <= size:
        buf = os.pread(fd, _CHUNK + _FRAME_HEAD.size - 1, pos)
        limit = min(_CHUNK, len(buf) - _FRAME_HEAD.size + 1)  # candidates whose header is in buf
        o = 0
        while o < limit:
            i = buf.find(_ZERO4, o + 4)
            if i < 0:
                break
            o = i - 4
            if o >= limit:
                break
            if buf[o : o + _FRAME_HEAD.size] == _ZERO_HEAD:  # inside a run of zeros
                found = _NONZERO.search(buf, o)
                o = max(o + 1, (found.start() if found else len(buf)) - _FRAME_HEAD.size + 1)
                continue
            if _valid_frame_at(fd, buf, o, pos, size):
                return pos + o
            o += 1
        pos += _CHUNK
    return None


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
    """Reads records from an offset on, skipping and reporting damage; can be polled as the file grows.

    Each call reads in chunks of a MiB and is bounded by a record count and a time budget, so
    a live view can tail a log in small slices (W&B's terminal viewer: ~2000 records or 50 ms).
    Damage never raises: it is listed in ``damage`` (in file order) and reading goes on after it.
    ``last_seq`` is the seq of the last record returned (-1 before any, when reading from the
    start; None when started at an offset, where the seqs before are unknown).
    """

    def __init__(self, path: str | os.PathLike, offset: int | None = None):
        if offset is not None and offset < HEADER_SIZE:
            raise LogError(f"offset {offset} lies inside the {HEADER_SIZE}-byte session log header")
        self.path = path
        self._fd = _open(path, os.O_RDONLY)
        self._offset = HEADER_SIZE if offset is None else offset
        self.last_seq: int | None = -1 if offset is None else None
        self._spans: list[Damage] = []  # damage behind the reader, in file order
        self._open_spans: list[int] = []  # indexes of framing spans waiting for the next seq
        self._unknown_seqs = 0  # records since the last good one whose seq could not be read
        self._last_end = self._offset  # end of the last valid frame (where a seq gap is placed)
        self._tail: Damage | None = None  # damage from offset to the end of the file, if any
        self._torn: tuple[int, int] | None = None  # (offset, bytes) of an incomplete last frame
        self._tail_key: tuple[int, int] | None = None  # (offset, file size) the tail was judged at
        self._header_ok = False
        try:
            self._ensure_header()
        except LogError:
            self.close()
            raise

    @property
    def offset(self) -> int:
        """Byte offset just past the last valid frame or damaged span read (where the next read starts)."""
        return self._offset

    @property
    def damage(self) -> list[Damage]:
        """Every damaged span found so far, in file order; a damaged tail (``at_end``) comes last."""
        spans = sorted(self._spans, key=lambda d: (d.start, d.end))
        return spans + ([self._tail] if self._tail is not None else [])

    @property
    def torn_tail(self) -> tuple[int, int] | None:
        """(offset, size) of an incomplete last record after ``offset``, as of the last read."""
        return self._torn

    def note(self, damage: Damage) -> None:
        """Add damage found by a caller (a payload that did not decode) to this reader's report."""
        self._spans.append(damage)

    def _ensure_header(self) -> bool:
        # A file shorter than its header is one a writer is creating: nothing to read yet.
        if not self._header_ok:
            self._header_ok = _check_header(os.pread(self._fd, HEADER_SIZE, 0), self.path)
        return self._header_ok

    def read_records(
        self, max_records: int | None = None, max_seconds: float | None = None
    ) -> list[Record]:
        """Records from ``offset`` on, damage skipped (and reported); stops quietly at a torn tail.

        Returns at least one record when one is complete.
        """
        if self._fd < 0:
            raise LogError(f"{self.path}: reader is closed")
        if not self._ensure_header():
            return []
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        out: list[Record] = []
        # Start from a fresh buffer each call: bytes past ``offset`` seen earlier may have been a
        # tail that a resumed writer has since set aside and overwritten.
        buf, pos, base = b"", 0, self._offset
        rechecked = -1  # offset of a bad frame already re-read from disk once
        while max_records is None or len(out) < max_records:
            item = parse_frame(buf, pos, base + pos)
            if isinstance(item, int):
                more = os.pread(self._fd, max(_CHUNK, item - (len(buf) - pos)), base + len(buf))
                if more:
                    buf, base, pos = buf[pos:] + more, base + pos, 0
                    continue
                if not self._at_end(base + pos, len(buf) - pos):
                    break  # a torn tail, or a damaged one: wait for the file to change
                buf, pos, base = b"", 0, self._offset  # damage skipped: go on after it
                continue
            if isinstance(item, str):
                at = base + pos
                if rechecked != at:  # rule out a writer replacing a tail while this read ran
                    rechecked, buf, pos, base = at, b"", 0, at
                    continue
                if not self._skip_damage(at, item):
                    break
                buf, pos, base = b"", 0, self._offset
                continue
            pos = item.end - base
            self._offset = item.end
            self._tail = self._torn = None
            if self._accept(item):
                out.append(item)
            self._last_end = item.end
            if deadline is not None and time.monotonic() >= deadline:
                break
        return out

    def _accept(self, record: Record) -> bool:
        """Check a verified frame's seq; False (and damage noted) for one readers must not use."""
        try:
            kind, seq = payload_seq(record.payload)
        except EventError as err:
            self._spans.append(payload_damage(record, err))
            self._unknown_seqs += 1
            return False
        last = self.last_seq
        if last is not None and seq == last + 1 and not self._open_spans and not self._unknown_seqs:
            record.seq, record.kind, self.last_seq = seq, kind, seq  # the usual case: the next record
            return True
        if last is not None and seq <= last:
            self._spans.append(Damage(record.offset, record.end, 1,
                                      f"seq {seq} after seq {last}: a repeated or out-of-order record"))
            return False
        record.seq, record.kind = seq, kind
        self._settle(seq, record.offset)
        self.last_seq = seq
        return True

    def _settle(self, seq: int, offset: int) -> None:
        """The records lost between the previous good record and this one, now that seq is known."""
        last = self.last_seq
        missing = None if last is None else seq - last - 1 - self._unknown_seqs
        if len(self._open_spans) == 1 and missing is not None and missing >= 0:
            i = self._open_spans[0]
            self._spans[i] = dataclasses.replace(self._spans[i], skipped=missing)
        elif not self._open_spans and missing:
            self._spans.append(Damage(self._last_end, offset, missing,
                                      f"seq jumps from {last} to {seq}: records missing"))
        self._open_spans.clear()
        self._unknown_seqs = 0

    def _skip_damage(self, at: int, reason: str) -> bool:
        """A frame at ``at`` that can never be valid: skip to the next valid frame, if there is one."""
        size = os.fstat(self._fd).st_size
        if self._tail is not None and (self._tail.start, self._tail.end) == (at, size):
            return False  # judged before and the file has not changed: no rescan while polling
        found = next_frame(self._fd, at + 1, size)
        if found is None:
            self._tail = Damage(at, size, None, reason, at_end=True)
            self._torn = None
            return False
        self._open_span(at, found, reason)
        return True

    def _at_end(self, at: int, avail: int) -> bool:
        """At the end of the file with ``avail`` bytes of an incomplete frame at ``at``.

        Torn (a write in progress, or cut short) unless a valid frame follows: a real torn frame
        is always the last thing in an append-only file, so one followed by a record is damage,
        e.g. a length field rewritten to a large value. True when damage was skipped.
        """
        self._tail = None
        if avail == 0:
            self._torn = None
            return False
        size = at + avail
        if self._tail_key == (at, size):  # judged before and the file has not changed
            self._torn = (at, avail)
            return False
        found = next_frame(self._fd, at + 1, size) if avail >= _FRAME_HEAD.size else None
        if found is None:
            self._tail_key, self._torn = (at, size), (at, avail)
            return False
        head = os.pread(self._fd, _LEN.size, at)
        (length,) = _LEN.unpack(head)
        self._open_span(at, found, f"record claims {length:,} bytes but a valid record starts at byte {found}")
        return True

    def _open_span(self, start: int, end: int, reason: str) -> None:
        self._spans.append(Damage(start, end, None, reason))
        self._open_spans.append(len(self._spans) - 1)
        self._offset = end
        self._tail = self._torn = None

    def read(self, max_events: int | None = None, max_seconds: float | None = None) -> list[Event]:
        """Like read_records, decoded into events; a payload that is not an event is damage."""
        events: list[Event] = []
        for record in self.read_records(max_events, max_seconds):
            try:
                events.append(decode_event(record.payload))
            except EventError as err:
                self.note(payload_damage(record, err))
        return events

    def at_torn_tail(self) -> bool:
        """True when bytes after ``offset`` form an incomplete record (a write in progress or cut).

        False at a clean end, when a complete record waits, or when the bytes are damaged.
        """
        size = os.fstat(self._fd).st_size
        rest = size - self._offset
        if rest <= 0 or not self._ensure_header():
            return False
        head = os.pread(self._fd, _FRAME_HEAD.size, self._offset)
        if len(head) < _FRAME_HEAD.size:
            return True
        length, length_crc = _FRAME_HEAD.unpack(head)
        if zlib.crc32(head[: _LEN.size]) != length_crc or length > MAX_PAYLOAD:
            return False
        if rest >= FRAME_OVERHEAD + length:
            return False
        if self._tail_key == (self._offset, size):
            return True
        return next_frame(self._fd, self._offset + 1, size) is None

    def at_end(self) -> bool:
        """Nothing more to read for now: the end of the file, a torn tail or a damaged tail."""
        size = os.fstat(self._fd).st_size
        return self._offset >= size or self.at_torn_tail() or (
            self._tail is not None and self._tail.start == self._offset and self._tail.end == size)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> LogReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class LogContents:
    """A whole log read back: its events, the damage skipped, and a torn tail if any."""

    events: list[Event]
    damage: list[Damage]
    torn_tail: tuple[int, int] | None
    size: int


def read_log(path: str | os.PathLike) -> LogContents:
    """Every event in the log with the damage report (never raises for damage, only for a non-log)."""
    events: list[Event] = []
    with LogReader(path) as reader:
        while batch := reader.read_records(max_records=10_000):
            for record in batch:
                try:
                    events.append(decode_event(record.payload))
                except EventError as err:
                    reader.note(payload_damage(record, err))
        return LogContents(events, reader.damage, reader.torn_tail, os.fstat(reader._fd).st_size)


def read_events(path: str | os.PathLike) -> list[Event]:
    """Every good event in the log (damage and a torn tail are left out; read_log reports them)."""
    return read_log(path).events


def scan(path: str | os.PathLike) -> tuple[int, int, int]:
    """(number of records, offset just past the last valid frame, bytes after it)."""
    count = 0
    with LogReader(path) as reader:
        while records := reader.read_records(max_records=10_000):
            count += len(records)
        size = os.fstat(reader._fd).st_size
        return count, reader.offset, max(0, size - reader.offset)


def read_event_at(path: str | os.PathLike, offset: int) -> Event:
    """The event whose record starts at ``offset`` (an offset from Record.offset, for indexes)."""
    with LogReader(path, offset) as reader:
        records = reader.read_records(max_records=1)
        if not records or records[0].offset != offset:
            raise CorruptLogError(offset, "no complete record at this offset", path)
        return records[0].event()


@dataclass
class LogTail:
    """The end of a log, read cheaply: its last records' events and the state of its last bytes."""

    events: list[Event]  # the decoded events of the last records (oldest first; see read_tail)
    damage: list[Damage]  # damage found in the part read (a damaged tail is at_end)
    torn_tail: tuple[int, int] | None
    size: int
    records: int = 0  # records read

    @property
    def clean(self) -> bool:
        """The log ends on a whole record (no torn or damaged bytes after its last record)."""
        return self.torn_tail is None and not any(d.at_end for d in self.damage)

    @property
    def last(self) -> Event | None:
        return self.events[-1] if self.events else None


# Event types read_tail decodes (the status, the epoch, the start of a run, a retrain's result);
# others are framed, seq-checked and counted but not decoded, so listing hundreds of sessions stays cheap.
TAIL_TYPES = frozenset({"session_start", "session_end", "epoch_end", "retrain_result"})


def read_tail(path: str | os.PathLike, window: int = 256 * 1024, min_records: int = 3) -> LogTail:
    """The last records of a log without reading it all: ``enas-tui sessions`` lists hundreds.

    Reads the last ``window`` bytes (doubling until ``min_records`` records start in them), finds
    the first valid frame there by the same scan readers resynchronise with, and reads forward to
    the end. The seqs before the window are unknown, so a repeated record at the very start of it
    is taken as read; later ones are judged as a full read would judge them. Only the last record
    and those of TAIL_TYPES are decoded (a payload damaged elsewhere is found by a full read).
    """
    with LogReader(path) as probe:
        if not probe._ensure_header():
            return LogTail([], [], None, os.fstat(probe._fd).st_size, 0)
        fd, size = probe._fd, os.fstat(probe._fd).st_size
        start = max(HEADER_SIZE, size - window)
        while True:
            found = HEADER_SIZE if start == HEADER_SIZE else next_frame(fd, start, size)
            if found is not None:
                tail = _read_from(path, found)
                if tail.records + len(tail.damage) >= min_records or found == HEADER_SIZE:
                    return tail
            start = max(HEADER_SIZE, size - 2 * (size - start))


def _read_from(path: str | os.PathLike, offset: int) -> LogTail:
    records: list[Record] = []
    with LogReader(path, None if offset == HEADER_SIZE else offset) as reader:
        while batch := reader.read_records(max_records=10_000):
            records += batch

        def decode(record: Record) -> Event | None:
            try:
                return decode_event(record.payload)
            except EventError as err:
                reader.note(payload_damage(record, err))
                return None

        events = []
        for record in records[:-1]:
            if record.kind is None or record.kind in TAIL_TYPES:
                if (event := decode(record)) is not None:
                    events.append(event)
        if records and (last := decode(records[-1])) is None:  # the log's last word: the last good record
            last = next((e for r in reversed(records[:-1]) if (e := _quiet_decode(r)) is not None), None)
        if records and last is not None and (not events or events[-1].seq < last.seq):
            events.append(last)
        return LogTail(events, reader.damage, reader.torn_tail, os.fstat(reader._fd).st_size, len(records))


def _quiet_decode(record: Record) -> Event | None:
    try:
        return decode_event(record.payload)
    except EventError:
        return None


def read_first(path: str | os.PathLike, kind: str | None = "session_start", limit: int = 1000) -> Event | None:
    """The first good event of a log of type ``kind`` (any type: None) among its first ``limit``
    records, or None: the session_start says what a session is when its meta.json is damaged."""
    with LogReader(path) as reader:
        while limit > 0 and (records := reader.read_records(max_records=min(limit, 100))):
            limit -= len(records)
            for record in records:
                if kind is not None and record.kind is not None and record.kind != kind:
                    continue
                try:
                    event = decode_event(record.payload)
                except EventError:
                    continue
                if kind is None or event.type == kind:
                    return event
    return None


# -- writing --------------------------------------------------------------------------------
@dataclass(frozen=True)
class SetAside:
    """Bytes a reopening writer moved out of the log's tail into a side file before cutting them."""

    offset: int
    size: int
    path: Path
    reason: str

    def describe(self) -> str:
        return (f"{self.size:,} bytes at the end of the log (from byte {self.offset}: {self.reason}) "
                f"set aside in {self.path.name}")


class LogWriter:
    """Appends events to a session log; reopening continues a log a killed writer left behind.

    Every frame goes out in one ``os.write`` on an O_APPEND descriptor: the OS holds it as soon
    as append returns, so it survives SIGKILL of this process and readers see it at once. Call
    sync() where it must also survive a power cut.

    On reopening, ``damage`` lists the damaged spans left in place (readers skip them) and
    ``set_aside`` says where a torn or damaged tail went, for the caller to record.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.damage: list[Damage] = []
        self.set_aside: SetAside | None = None
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
        if not _check_header(head, self.path):  # missing, empty or a torn header: nothing to keep
            self._truncate(0)
            self._write_all(HEADER)
            return HEADER_SIZE, 0
        with LogReader(self.path) as reader:
            while reader.read_records(max_records=10_000):
                pass
            end, last_seq = reader.offset, reader.last_seq
            size = os.fstat(reader._fd).st_size
            tail = next((d for d in reader.damage if d.at_end), None)
            self.damage = [d for d in reader.damage if not d.at_end]
        if size > end:
            torn = tail is None
            reason = "an incomplete last record (a write cut short)" if torn else tail.reason
            self.set_aside = self._set_aside(end, size, reason, "torn" if torn else "damaged")
            self._truncate(end)
        return end, (last_seq if last_seq is not None else -1) + 1

    def _set_aside(self, offset: int, size: int, reason: str, kind: str) -> SetAside:
        """Copy bytes [offset, size) to a side file (synced) before the log is cut there."""
        side = self.path.with_name(f"{self.path.name}.{kind}-{offset}")
        n = 1
        while side.exists():
            n += 1
            side = self.path.with_name(f"{self.path.name}.{kind}-{offset}.{n}")
        try:
            with open(side, "xb") as out:
                at = offset
                while at < size:
                    chunk = os.pread(self._fd, min(_CHUNK, size - at), at)
                    if not chunk:
                        break
                    out.write(chunk)
                    at += len(chunk)
                out.flush()
                os.fsync(out.fileno())
        except OSError as err:
            side.unlink(missing_ok=True)
            raise LogError(f"cannot set aside the damaged end of {self.path} in {side.name}: "
                           f"{err.strerror}; the log was left as it is") from None
        return SetAside(offset, size - offset, side, reason)

    def _truncate(self, size: int) -> None:
        try:
            os.ftruncate(self._fd, size)
        except OSError as err:
            raise LogError(f"cannot cut the tail of {self.path}: {err.strerror}") from None

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
            try:
                os.fsync(self._fd)
            except OSError as err:
                raise LogError(f"cannot sync session log {self.path}: {err.strerror}") from None

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


__all__ = [
    "FORMAT_VERSION", "FRAME_OVERHEAD", "HEADER", "HEADER_SIZE", "MAGIC", "MAX_FRAME", "MAX_PAYLOAD",
    "CorruptLogError", "Damage", "LogContents", "LogError", "LogFormatError", "LogReader", "LogTail",
    "LogWriter", "Record", "SetAside", "check_event", "encode_frame", "next_frame", "parse_frame",
    "payload_damage",
    "read_event_at", "read_events", "read_first", "read_log", "read_tail", "scan",
]
