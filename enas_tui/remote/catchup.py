"""What a dashboard that attaches late needs from a long log, so attaching never replays it all.

A ``paper`` session's log grows to hundreds of megabytes, almost all of it probe arrays (about
190 KB a probe, 20 an epoch, 150 epochs) and step records (about 2,400 an epoch). The dashboard
keeps only the latest probe and the last ``STEP_HISTORY`` points of each step series, and folds
every other record (epochs, validation, diagnostics, buffer, warnings, checkpoints, the end).
So a catch-up sends, in log order:

- every record that is neither a probe nor a step (the scalar histories and the event log);
- the last ``STEP_HISTORY`` records of each step kind: what the dashboard keeps. Where a resumed
  trainer started within the last ``3 x STEP_HISTORY`` of them, that many: a resume re-runs the
  steps after its checkpoint and the dashboard drops the points it repeats, so the points it keeps
  may reach back past the last ``STEP_HISTORY`` records (by up to an epoch's steps, at most two
  histories here: 2,000 controller steps an epoch in the paper's setting);
- the first step of each kind after every ``epoch_start`` (the dashboard counts an epoch's progress
  from it);
- the latest probe, and of earlier ones their architectures alone (a few KB compressed, not
  ~190 KB of arrays): the cell shape over the search folds every probe set, as a local reader
  reads a superseded probe (``sources.ProbeArchs``). Either every left-out probe's, in place
  (``archs="inline"``), or, after the catch-up (``archs="after"``, so they cost the first frame
  nothing), those the dashboard keeps: the last ``PROBE_HISTORY`` (three times that after a recent
  resume, as for steps) and the last of each epoch before them (the per-epoch medians).

Folding that selection gives the dashboard the state it gets from the whole log, except for
the collapse alarm's verdicts on probes that were skipped (a local attach skips those too, when a
later probe arrives in the same batch). The selection is made in one pass that reads only record
headers and the first bytes of each payload, never the probe arrays it skips. ``enas-tui pull``
copies the whole log.

Damage is found as a reader finds it (session_log.py): a header that fails its checksum or bound
starts a damaged span that ends at the next valid frame; a record whose seq repeats or goes back
is damage; a jump in the seqs is records missing; the seqs on either side of a span say how many
records it cost. So the box reports the same spans for a catch-up as for a full read, with two
exceptions, both in records a thinned catch-up leaves out: a payload checksum is verified only
for the records sent (the box checks those before sending them), and a payload that is framed
and numbered as an event but whose fields are not valid is found only by the reader of the
records sent (the laptop). What follows the last valid frame (a torn or damaged tail) is left to
the box's reader, which follows the log after the catch-up.
"""

from __future__ import annotations

import dataclasses
import os
import re
import struct
import zlib
from array import array
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field

from enas_tui.events import EventError, payload_seq, peek
from enas_tui.session_log import (
    FRAME_OVERHEAD, HEADER_SIZE, MAX_FRAME, MAX_PAYLOAD, Damage, Record, next_frame, parse_frame,
)
from enas_tui.tui.state import PROBE_HISTORY, STEP_HISTORY

STEP_KINDS = ("shared_step", "controller_step")
KEEP_STEPS = STEP_HISTORY  # records of each step kind a catch-up sends
RESUME_STEPS = 3 * STEP_HISTORY  # ... when a resume is among the last this many
# A frame starts with its payload's length (8 bytes) and the CRC-32 of those 8 bytes (session_log.py).
_HEAD = struct.Struct("<QI")
_PEEK = 200  # payload bytes read to learn a record's type, seq and time (events.peek reads no more)
# events.encode_event writes "type" and "seq" first (events.peek reads them so too): matched in the
# read buffer itself, not a copy, as this runs once per record of a long log
_TYPE_SEQ = re.compile(rb'\{"type":"([a-z_]+)","seq":(-?\d+)[,}]')
_EPOCH = re.compile(rb'"epoch":(-?\d+)')  # a probe's, after its type, seq and time
_STEPS = tuple(kind.encode() for kind in STEP_KINDS)
_CHUNK = 1 << 20


@dataclass
class Plan:
    """What to send from ``[start, end)`` of a log: ``records`` as (offset, size), in log order."""

    records: list[tuple[int, int]]
    seen: int  # valid records in the range
    end: int  # just past the last valid frame (a torn or damaged tail after it is left for later)
    ended: bool | None  # whether an end record follows the range's last start record (None: neither)
    damage: list[Damage] = field(default_factory=list)  # damaged spans in the range, in file order
    started_t: float | None = None  # time of the range's last session_start
    heads: list[tuple[int, int]] = field(default_factory=list)  # probes sent as their architectures (offset, size)


class SeqCheck:
    """The session-log reader's rules for seqs (session_log.LogReader), on record headers alone.

    Seqs count up by one; a record whose seq repeats or goes back is damage (left out), a jump is
    records missing, and a damaged span's cost is settled by the seqs on either side of it.
    """

    def __init__(self, damage: list[Damage], start: int, from_start: bool):
        self.damage = damage
        self.last: int | None = -1 if from_start else None  # unknown when reading from an offset
        self.last_end = start  # end of the last valid frame
        self._open: list[int] = []  # indexes of spans waiting for the next seq
        self._unknown = 0  # frames since the last good record whose seq could not be read

    def span(self, start: int, end: int, reason: str) -> None:
        """A span of bytes that holds no valid frame (what it cost is settled by the next seq)."""
        self.damage.append(Damage(start, end, None, reason))
        self._open.append(len(self.damage) - 1)

    def unreadable(self, start: int, end: int, reason: str) -> None:
        """A valid frame whose payload has no readable seq."""
        self.damage.append(Damage(start, end, 1, f"record is not an event: {reason}"))
        self._unknown += 1
        self.last_end = end

    def accept(self, start: int, end: int, seq: int) -> bool:
        """A valid frame with this seq: False (and damage noted) when readers must not use it."""
        last = self.last
        if last is not None and seq == last + 1 and not self._open and not self._unknown:
            self.last, self.last_end = seq, end
            return True
        if last is not None and seq <= last:
            self.damage.append(Damage(start, end, 1, f"seq {seq} after seq {last}: a repeated or out-of-order record"))
            self.last_end = end
            return False
        missing = None if last is None else seq - last - 1 - self._unknown
        if len(self._open) == 1 and missing is not None and missing >= 0:
            i = self._open[0]
            self.damage[i] = dataclasses.replace(self.damage[i], skipped=missing)
        elif not self._open and missing:
            self.damage.append(Damage(self.last_end, start, missing, f"seq jumps from {last} to {seq}: records missing"))
        self._open.clear()
        self._unknown = 0
        self.last, self.last_end = seq, end
        return True


def plan(fd: int, start: int, end: int, keep_steps: int = KEEP_STEPS, resume_steps: int = RESUME_STEPS,
         emit: Callable[[list[tuple[int, int]]], None] | None = None, from_start: bool | None = None,
         damage: list[Damage] | None = None, archs: str = "inline", keep_probes: int = PROBE_HISTORY) -> Plan:
    """The catch-up selection (module docstring) of the valid records in ``[start, end)``.

    One pass over the record headers and the first bytes of each payload (probe arrays are jumped
    over, never read), cheap enough per record for the ~370,000 records of a paper-scale log: step
    offsets go into flat arrays, and only the last ``keep_steps`` (``resume_steps`` after a recent
    resume) of each kind are kept at the end.
    ``emit`` is handed the chosen records in order as soon as they are certain, so the sending
    overlaps the scan (a probe sent as its architectures has a negative size); damage is appended
    to ``damage`` as it is found, before the records after it are emitted. ``from_start``:
    ``start`` is the log's first record, so the first seq must be 0 (default: when ``start`` is
    just past the header). ``archs``: where left-out probes' architectures go (module docstring).
    """
    scan = _Scan(fd, start, end, keep_steps, resume_steps, emit,
                 start == HEADER_SIZE if from_start is None else from_start, [] if damage is None else damage,
                 archs == "inline", keep_probes)
    return scan.run()


class _Scan:
    """One pass of ``plan``. A frame is taken as a record once the header after it verifies (or
    it ends the range): when that header fails, this frame's own length may be the damage (a
    rewritten length field with a valid checksum), which its payload checksum then shows, as a
    reader that checks every payload would see."""

    def __init__(self, fd, start, end, keep_steps, resume_steps, emit, from_start, damage, inline, keep_probes):
        self.fd, self.start, self.end, self.emit = fd, start, end, emit
        self.keep_steps, self.resume_steps = keep_steps, resume_steps
        self.inline, self.keep_probes = inline, keep_probes
        self.probes = (array("q"), array("q"), array("q"))  # offsets, sizes, epochs (after the catch-up)
        self.seqs = SeqCheck(damage, start, from_start)
        self.steps = {kind: (array("q"), array("q")) for kind in _STEPS}  # offsets, sizes
        self.kept: list[tuple[int, int]] = []  # the other records, and each epoch's first steps
        self.emitted = 0  # kept[:emitted] went to ``emit``
        self.first_of_epoch: set[bytes] = set()
        self.probe: tuple[int, int] | None = None  # the latest
        self.ended: bool | None = None
        self.started_t: float | None = None
        self.starts: list[int] = []  # offsets of session_start records (a resume, after the first)
        self.seen = 0

    def run(self) -> Plan:
        """The scan. A frame is held as ``pending`` (offset, size, type, seq, epoch) until the header
        after it verifies; type and seq are None when its payload is not laid out as usual."""
        fd, end, head, peek_end = self.fd, self.end, _HEAD.size, _HEAD.size + _PEEK
        buf, base, pos = b"", self.start, self.start
        pending: tuple | None = None
        while end - pos >= head:
            i = pos - base
            need = peek_end if end - pos > peek_end else end - pos
            if i + need > len(buf):
                self._emit_certain()
                buf, base, i = os.pread(fd, min(_CHUNK, end - pos), pos), pos, 0
                if len(buf) < need:
                    break  # the file is shorter than ``end`` said (a torn tail cut meanwhile)
            length, length_crc = _HEAD.unpack_from(buf, i)
            bad = ("length checksum mismatch" if zlib.crc32(buf[i:i + 8]) != length_crc else
                   f"record length {length} exceeds {MAX_PAYLOAD} bytes" if length > MAX_PAYLOAD else None)
            if bad is not None or pos + FRAME_OVERHEAD + length > end:
                if pending is not None and not self._payload_ok(pending[0], pending[1]):
                    pos, pending = pending[0], None  # that frame's length was the damage
                    bad = "payload checksum mismatch"
                elif pending is not None:
                    self._take(*pending)
                    pending = None
                found = next_frame(fd, pos + 1, end)
                if found is None:
                    break  # a torn or damaged tail: the reader that follows the catch-up judges it
                self.seqs.span(pos, found, bad or f"record claims {length:,} bytes but a valid record "
                                                    f"starts at byte {found}")
                pos, buf = found, b""
                continue
            if pending is not None:
                self._take(*pending)
            start = i + head
            stop = start + (length if length < _PEEK else _PEEK)
            found = _TYPE_SEQ.match(buf, start, stop)
            if found is None:
                pending = (pos, FRAME_OVERHEAD + length, None, None, None)
            else:
                kind, seq = found.groups()
                epoch = _EPOCH.search(buf, found.end() - 1, stop) if kind == b"probe" else None
                pending = (pos, FRAME_OVERHEAD + length, kind, int(seq), epoch and int(epoch.group(1)))
            pos += FRAME_OVERHEAD + length
        if pending is not None:
            self._take(*pending)
            pos = max(pos, pending[0] + pending[1])
        return self._finish(pos)

    def _payload_ok(self, offset: int, size: int) -> bool:
        return isinstance(parse_frame(os.pread(self.fd, size, offset), 0, offset), Record)

    def _take(self, pos: int, size: int, kind: bytes | None, seq: int | None, epoch: int | None) -> None:
        """A frame as a record: its seq checked, then kept, counted or set aside by its type."""
        if kind is None:  # not laid out as encode_event writes it: read the payload to say
            try:
                name, seq = payload_seq(os.pread(self.fd, size - FRAME_OVERHEAD, pos + _HEAD.size))
            except EventError as err:
                self.seqs.unreadable(pos, pos + size, str(err))
                return
            kind = (name or "").encode()
        if not self.seqs.accept(pos, pos + size, seq):
            return
        self.seen += 1
        where = self.steps.get(kind)
        if kind == b"probe":  # its architectures (inline: a negative size), unless it is the last
            self.probe = (pos, size)
            if self.inline:
                self.kept.append((pos, -size))
            else:
                for column, value in zip(self.probes, (pos, size, -len(self.probes[0]) - 1 if epoch is None
                                                       else epoch)):
                    column.append(value)
        elif where is None:
            self.kept.append((pos, size))
            if kind == b"epoch_start":
                self.first_of_epoch = set(_STEPS)
            elif kind == b"session_start":
                found = peek(os.pread(self.fd, min(size - FRAME_OVERHEAD, _PEEK), pos + _HEAD.size))
                self.ended, self.started_t = False, found[2] if found else None
                self.starts.append(pos)
            elif kind == b"session_end":
                self.ended = True
        elif kind in self.first_of_epoch:
            self.first_of_epoch.discard(kind)
            self.kept.append((pos, size))
        else:
            where[0].append(pos)
            where[1].append(size)

    def _emit_certain(self) -> None:
        """Hand ``emit`` the kept records before the first undecided one.

        Undecided: the last ``keep_steps`` (``resume_steps``) of each step kind, which may still
        fall out of the window, and the latest probe, sent whole unless a later one comes.
        """
        if self.emit is None:
            return
        window = max(self.keep_steps, self.resume_steps)
        boundary = self.probe[0] if self.probe is not None else None
        for offsets, _ in self.steps.values():
            if offsets:
                first_undecided = offsets[-window] if len(offsets) >= window else offsets[0]
                boundary = first_undecided if boundary is None else min(boundary, first_undecided)
        if boundary is None:
            return
        stop = bisect_left(self.kept, (boundary, -MAX_FRAME), self.emitted)  # the latest probe's entry stays
        if stop > self.emitted:
            self.emit(self.kept[self.emitted:stop])
            self.emitted = stop

    def _finish(self, pos: int) -> Plan:
        rest = self.kept[self.emitted:]
        if self.probe is not None and self.inline:  # the latest probe is sent whole (its entry was never emitted)
            rest[bisect_left(rest, (self.probe[0], -self.probe[1]))] = self.probe
        elif self.probe is not None:
            rest.append(self.probe)
        for offsets, sizes in self.steps.values():
            wide = offsets[-self.resume_steps] if len(offsets) >= self.resume_steps else (offsets[0] if offsets else 0)
            count = self.resume_steps if self.starts and self.starts[-1] > wide else self.keep_steps
            rest += zip(offsets[-count:], sizes[-count:])
        rest.sort()
        if self.emit is not None and rest:
            self.emit(rest)
        chosen = self.kept[:self.emitted] + rest
        heads = [(o, -n) for o, n in chosen if n < 0] if self.inline else self._heads_after()
        return Plan([r for r in chosen if r[1] > 0], self.seen, pos, self.ended, self.seqs.damage, self.started_t,
                    heads)

    def _heads_after(self) -> list[tuple[int, int]]:
        """The left-out probes the dashboard keeps: the window (as for steps), and each earlier
        epoch's last (an unknown epoch counts as an epoch of its own)."""
        offsets, sizes, epochs = self.probes
        n = len(offsets) - 1  # the last is sent whole
        if n <= 0:
            return []
        wide = offsets[-3 * self.keep_probes] if len(offsets) >= 3 * self.keep_probes else offsets[0]
        window = 3 * self.keep_probes if self.starts and self.starts[-1] > wide else self.keep_probes
        first = max(0, len(offsets) - window)
        chosen = [i for i in range(first) if epochs[i] != epochs[i + 1]] + list(range(first, n))
        return [(offsets[i], sizes[i]) for i in chosen]
