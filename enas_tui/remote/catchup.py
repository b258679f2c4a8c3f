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
- the latest probe.

Folding that selection gives the dashboard the state it gets from the whole log, except for
the collapse alarm's verdicts on probes that were skipped (a local attach skips those too, when a
later probe arrives in the same batch). The selection is made in one pass that reads only record
headers and the first bytes of each payload, never the probe arrays it skips. ``enas-tui pull``
copies the whole log.
"""

from __future__ import annotations

import os
import zlib
from array import array
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass

from enas_tui.session_log import _FRAME_HEAD, _LEN, FRAME_OVERHEAD, MAX_PAYLOAD, CorruptLogError
from enas_tui.tui.state import STEP_HISTORY

STEP_KINDS = ("shared_step", "controller_step")
KEEP_STEPS = STEP_HISTORY  # records of each step kind a catch-up sends
RESUME_STEPS = 3 * STEP_HISTORY  # ... when a resume is among the last this many
_TYPE = b'{"type":"'  # events.encode_event writes the type first
_PEEK = len(_TYPE) + 32  # payload bytes read to learn a record's type
_CONTROLLER, _SHARED, _PROBE = b'controller_step"', b'shared_step"', b'probe"'
_CHUNK = 1 << 20


@dataclass
class Plan:
    """What to send from ``[start, end)`` of a log: ``records`` as (offset, size), in log order."""

    records: list[tuple[int, int]]
    seen: int  # complete records in the range
    end: int  # just past the last complete record (a torn tail after it is left for later)
    ended: bool | None  # whether an end record follows the range's last start record (None: neither)


def plan(fd: int, start: int, end: int, keep_steps: int = KEEP_STEPS, resume_steps: int = RESUME_STEPS,
         emit: Callable[[list[tuple[int, int]]], None] | None = None) -> Plan:
    """The catch-up selection (module docstring) of the complete records in ``[start, end)``.

    One pass over the record headers and the first bytes of each payload (probe arrays are jumped
    over, never read), cheap enough per record for the ~370,000 records of a paper-scale log: step
    offsets go into flat arrays, and only the last ``keep_steps`` (``resume_steps`` after a recent
    resume) of each kind are kept at the end.
    ``emit`` is handed the chosen records in order as soon as they are certain, so the sending
    overlaps the scan. A header whose checksum fails raises CorruptLogError (payload checksums are
    checked by the reader of the records sent: the laptop).
    """
    unpack, crc32 = _FRAME_HEAD.unpack_from, zlib.crc32
    head, peek = _FRAME_HEAD.size, _FRAME_HEAD.size + _PEEK
    steps = {kind: (array("q"), array("q")) for kind in STEP_KINDS}  # offsets, sizes
    controller, shared = steps["controller_step"], steps["shared_step"]
    kept: list[tuple[int, int]] = []  # every other record, and the first step of each kind in each epoch
    emitted = 0  # kept[:emitted] went to ``emit``
    first_of_epoch: set[str] = set()
    probe: tuple[int, int] | None = None
    ended: bool | None = None
    starts: list[int] = []  # offsets of session_start records (a resume, after the first)
    seen = 0
    buf, base, pos = b"", start, start
    while end - pos >= head:
        i = pos - base
        need = peek if end - pos > peek else end - pos
        if i + need > len(buf):
            if emit is not None:
                emitted = _emit_certain(kept, emitted, steps, probe, max(keep_steps, resume_steps), emit)
            buf, base, i = os.pread(fd, min(_CHUNK, end - pos), pos), pos, 0
            if len(buf) < need:
                break  # the file is shorter than ``end`` said (a torn tail cut meanwhile)
        length, length_crc = unpack(buf, i)
        if crc32(buf[i:i + _LEN.size]) != length_crc:
            raise CorruptLogError(pos, "length checksum mismatch")
        if length > MAX_PAYLOAD:
            raise CorruptLogError(pos, f"record length {length} exceeds {MAX_PAYLOAD} bytes")
        size = FRAME_OVERHEAD + length
        if pos + size > end:
            break  # a torn tail (or a record written after ``end`` was taken)
        seen += 1
        j = i + head + len(_TYPE)
        if buf.startswith(_CONTROLLER, j):
            kind, where = "controller_step", controller
        elif buf.startswith(_SHARED, j):
            kind, where = "shared_step", shared
        elif buf.startswith(_PROBE, j):
            probe, where = (pos, size), None
        else:
            kind, where = _kind(buf, i + head), None
            kept.append((pos, size))
            if kind == "epoch_start":
                first_of_epoch = set(STEP_KINDS)
            elif kind == "session_start":
                ended = False
                starts.append(pos)
            elif kind == "session_end":
                ended = True
        if where is not None:
            if kind in first_of_epoch:
                first_of_epoch.discard(kind)
                kept.append((pos, size))
            else:
                where[0].append(pos)
                where[1].append(size)
        pos += size
    rest = kept[emitted:]
    for offsets, sizes in steps.values():
        wide = offsets[-resume_steps] if len(offsets) >= resume_steps else (offsets[0] if offsets else 0)
        count = resume_steps if starts and starts[-1] > wide else keep_steps
        rest += zip(offsets[-count:], sizes[-count:])
    if probe is not None:
        rest.append(probe)
    rest.sort()
    if emit is not None and rest:
        emit(rest)
    return Plan(kept[:emitted] + rest, seen, pos, ended)


def _emit_certain(kept, emitted, steps, probe, keep_steps, emit) -> int:
    """Hand ``emit`` the kept records before the first undecided one; returns the new count sent.

    Undecided: the last ``keep_steps`` of each step kind (they may still fall out of the window)
    and the latest probe (a later one may replace it). Everything before both is certain.
    """
    boundary = probe[0] if probe is not None else None
    for offsets, _ in steps.values():
        if offsets:
            first_undecided = offsets[-keep_steps] if len(offsets) >= keep_steps else offsets[0]
            boundary = first_undecided if boundary is None else min(boundary, first_undecided)
    if boundary is None:
        return emitted
    stop = bisect_left(kept, (boundary, -1), emitted)
    if stop > emitted:
        emit(kept[emitted:stop])
    return stop


def _kind(buf: bytes, start: int) -> str | None:
    """The record's type from the first bytes of its payload."""
    if not buf.startswith(_TYPE, start):
        return None
    start += len(_TYPE)
    stop = buf.find(b'"', start, start + _PEEK - len(_TYPE))
    return buf[start:stop].decode("ascii", "replace") if stop > 0 else None
