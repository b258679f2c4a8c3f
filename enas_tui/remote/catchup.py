"""What a dashboard that attaches late needs from a long log, so attaching never replays it all.

A ``paper`` session's log grows to hundreds of megabytes, almost all of it probe arrays (about
190 KB a probe, 20 an epoch, 150 epochs) and step records (about 2,400 an epoch). The dashboard
keeps only the latest probe and the last ``STEP_HISTORY`` points of each step series, and folds
every other record (epochs, validation, diagnostics, buffer, warnings, checkpoints, the end).
So a catch-up sends, in log order:

- every record that is neither a probe nor a step (the scalar histories and the event log);
- the last ``keep_steps`` records of each step kind (3x what the dashboard keeps, so a resume that
  re-ran up to two histories' worth of steps still leaves it full), plus the first step of each
  kind after every ``epoch_start`` (the dashboard counts an epoch's progress from it);
- the latest probe.

Folding that selection gives the dashboard the state it gets from the whole log, except for
the collapse alarm's verdicts on probes that were skipped (a local attach skips those too, when a
later probe arrives in the same batch). The selection is made in one streaming pass that reads
only record headers and the first bytes of each payload, so it starts sending before the scan
ends and never reads the probe arrays it skips. ``enas-tui pull`` copies the whole log.
"""

from __future__ import annotations

import os
import zlib
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from enas_tui.session_log import _FRAME_HEAD, _LEN, FRAME_OVERHEAD, MAX_PAYLOAD, CorruptLogError
from enas_tui.tui.state import STEP_HISTORY

STEP_KINDS = ("shared_step", "controller_step")
KEEP_STEPS = 3 * STEP_HISTORY
_TYPE = b'{"type":"'  # events.encode_event writes the type first
_PEEK = len(_TYPE) + 32  # payload bytes read to learn a record's type
_CHUNK = 1 << 20


@dataclass(slots=True)
class Entry:
    """A record seen by the scan: where it is, its frame size, its type; ``keep`` once decided."""

    offset: int
    size: int
    kind: str | None
    keep: bool | None = None

    @property
    def end(self) -> int:
        return self.offset + self.size


def scan(fd: int, start: int, end: int) -> Iterator[Entry]:
    """The records in ``[start, end)`` of a log, from their headers; stops at a torn tail.

    A header whose checksum fails raises CorruptLogError (payload checksums are left to the
    reader of the records that are sent: the laptop checks them).
    """
    buf, base, pos = b"", start, start
    head = _FRAME_HEAD.size
    while end - pos >= head:
        i = pos - base
        need = min(head + _PEEK, end - pos)
        if i < 0 or i + need > len(buf):
            buf, base, i = os.pread(fd, min(_CHUNK, end - pos), pos), pos, 0
            if len(buf) < need:
                return  # the file is shorter than ``end`` said (a torn tail cut meanwhile)
        length, length_crc = _FRAME_HEAD.unpack_from(buf, i)
        if zlib.crc32(buf[i:i + _LEN.size]) != length_crc:
            raise CorruptLogError(pos, "length checksum mismatch")
        if length > MAX_PAYLOAD:
            raise CorruptLogError(pos, f"record length {length} exceeds {MAX_PAYLOAD} bytes")
        size = FRAME_OVERHEAD + length
        if pos + size > end:
            return  # a torn tail (or a record written after ``end`` was taken)
        yield Entry(pos, size, _kind(buf, i + head, min(length, _PEEK)))
        pos += size


def _kind(buf: bytes, start: int, length: int) -> str | None:
    if buf[start:start + len(_TYPE)] != _TYPE:
        return None
    stop = buf.find(b'"', start + len(_TYPE), start + length)
    return buf[start + len(_TYPE):stop].decode("ascii", "replace") if stop > 0 else None


def select(entries: Iterable[Entry], keep_steps: int = KEEP_STEPS) -> Iterator[Entry]:
    """The entries a fresh dashboard needs (module docstring), in order, as soon as each is decided."""
    pending: deque[Entry] = deque()  # seen, not yet yielded or dropped; the head may be undecided
    window = {kind: deque() for kind in STEP_KINDS}  # undecided steps: the newest keep_steps stay
    first_of_epoch: set[str] = set()
    probe: Entry | None = None
    for entry in entries:
        kind = entry.kind
        if kind in window:
            if kind in first_of_epoch:
                first_of_epoch.discard(kind)
                entry.keep = True
            else:
                steps = window[kind]
                steps.append(entry)
                if len(steps) > keep_steps:
                    steps.popleft().keep = False
        elif kind == "probe":
            if probe is not None:
                probe.keep = False
            probe = entry
        else:
            entry.keep = True
            if kind == "epoch_start":
                first_of_epoch = set(STEP_KINDS)
        pending.append(entry)
        while pending and pending[0].keep is not None:
            done = pending.popleft()
            if done.keep:
                yield done
    for entry in pending:  # the end: every step still in its window, and the last probe
        if entry.keep is not False:
            yield entry
