"""The replay index: every record's offset and time, the epoch boundaries, and dashboard states.

One scan of a session log (``ReplayIndex.build``) records each record's offset and time, the epoch
boundaries, and a snapshot of the folded ``DashboardState`` every 500 records; seeking
(``ReplayCursor``) restores the nearest snapshot and folds forward at most 500 records. It stores
dashboard states, so it lives with the dashboard (replay and compare use it); the event sources in
``enas_tui.sources`` stay free of any dashboard import.

Damage in the log (framing, out-of-order seqs, payloads that are not events) is skipped by the
reader and never indexed; each damaged span is kept with the position it lies before, and folded
into the state there as a line in the events panel, so seeking past it shows where and how much.
"""

from __future__ import annotations

import bisect
import os
import time
from array import array
from collections import defaultdict
from pathlib import Path

from enas_tui.events import Event
from enas_tui.session_log import Damage, LogError, LogReader, Record
from enas_tui.sources import (
    CHUNK_SECONDS, SourceError, damage_line, decode_indexed, describe_damage, merged,
)
from enas_tui.tui.state import DashboardState

SNAPSHOT_EVERY = 500


class ReplayIndex:
    """Offsets, times and epoch boundaries of every record, and state snapshots for fast seeking.

    Built by one scan (``build``), which can run in a worker thread while the dashboard already
    shows the first frame: positions up to ``len(index)`` can be sought while it runs. A position
    is a count of records: position p shows the state after the first p events.
    """

    def __init__(self, path: str | os.PathLike, snapshot_every: int = SNAPSHOT_EVERY):
        self.path = Path(path)
        self.every = snapshot_every
        self.offsets = array("q")
        self.times = array("d")  # non-decreasing event times (for playback at 1x)
        self.epoch_ends: dict[int, int] = {}  # epoch -> position just after its (latest) epoch_end
        self.snapshots: list[DashboardState] = [DashboardState()]
        self.complete = False
        self.error: str | None = None
        self.damage: list[tuple[int, Damage]] = []  # (position the span lies before, span), in order
        self.torn_tail: tuple[int, int] | None = None  # (offset, bytes) once the end is reached
        self._notes: dict[int, list[Damage]] = defaultdict(list)
        self._noted: set[tuple[int, int, str]] = set()
        self._applied: set[tuple[int, Damage]] = set()
        self._decode_damage: list[Damage] = []
        self._count = 0
        self._state = DashboardState()
        self._end = 0  # offset just past the last indexed record
        try:
            self._reader = LogReader(self.path)
        except LogError as err:
            raise SourceError(str(err)) from None

    def __len__(self) -> int:
        return self._count

    def build(self, max_seconds: float | None = None) -> bool:
        """Index more of the log (all of it, or for about ``max_seconds``); True once at its end."""
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        while True:  # at least one chunk per call, however small the budget
            want = self.every - self._count % self.every
            try:
                records = self._reader.read_records(max_records=want)
            except LogError as err:  # the file vanished or cannot be read any more
                self.error, self.complete = str(err), True
                return True
            if not records:
                self._note_new_damage(None)
                self._state_at_count()
                self.torn_tail = self._reader.torn_tail
                self.complete = True
                return True
            self._index(records)
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def _index(self, records: list[Record]) -> None:
        entries = decode_indexed(records, self._decode_damage)
        base = self._count
        last_t = self.times[-1] if self.times else 0.0
        for i, event in entries:
            record = records[i]
            if event is None:  # a superseded probe (checked, not decoded): only its time is needed
                event = _ProbeStamp(record)
            last_t = max(last_t, event.t)
            self.offsets.append(record.offset)
            self.times.append(last_t)
            if event.type == "epoch_end":
                self.epoch_ends[int(getattr(event, "epoch", 0))] = len(self.offsets)
        self._note_new_damage(records[-1].end)
        for j, (_, event) in enumerate(entries):
            self._state_at_count(base + j)
            if event is not None:
                self._state.apply(event)
        if entries:
            self._end = records[entries[-1][0]].end
        self._count = base + len(entries)

    def _state_at_count(self, position: int | None = None) -> None:
        """Fold the damage notes at ``position`` (default: the count) and take a due snapshot."""
        position = self._count if position is None else position
        for span in self._notes.get(position, ()):
            if (position, span) not in self._applied:
                self._state.note("error", damage_line(span))
                self._applied.add((position, span))
        if position and position % self.every == 0 and len(self.snapshots) == position // self.every:
            self.snapshots.append(self._state.copy())

    def _note_new_damage(self, before: int | None) -> None:
        """Give each newly found damaged span its position (the count of records before it)."""
        spans = merged(self._reader.damage, self._decode_damage)
        for span in spans:
            key = (span.start, span.end, span.reason)
            if key in self._noted or (before is not None and span.start >= before):
                continue
            self._noted.add(key)
            position = bisect.bisect_left(self.offsets, span.start)
            self.damage.append((position, span))
            self._notes[position].append(span)

    @property
    def summary(self) -> str:
        """The header's line about the whole log's damage ("" when it is whole)."""
        return describe_damage([span for _, span in self.damage], self.torn_tail)

    def refresh(self) -> bool:
        """Index records appended since the last build (a replayed session still running)."""
        self.complete = False
        return self.build(max_seconds=CHUNK_SECONDS)

    # -- queries --------------------------------------------------------------------------
    def _entries(self, start: int, stop: int):
        """(position, event or None) for positions [start, stop), read from the log.

        Records are matched to positions by offset, so one the index left out (damage) never
        shifts the positions after it.
        """
        stop = min(stop, self._count)
        if start >= stop:
            return
        position, offsets = start, self.offsets
        with LogReader(self.path, offsets[start]) as reader:
            while position < stop:
                records = reader.read_records(max_records=min(stop - position, 10_000))
                if not records:
                    break
                for i, event in decode_indexed(records):
                    offset = records[i].offset
                    while position < stop and offsets[position] < offset:
                        position += 1  # indexed but unreadable now: nothing to fold there
                    if position >= stop:
                        return
                    if offsets[position] == offset:
                        yield position, event
                        position += 1

    def read_events(self, start: int, stop: int) -> list[Event]:
        """Events of positions [start, stop), skipping probes a later one in the range supersedes."""
        return [event for _, event in self._entries(start, stop) if event is not None]

    def fold(self, state: DashboardState, start: int, stop: int) -> DashboardState:
        """Fold positions [start, stop) into ``state`` (the state at ``start``), damage notes included."""
        stop = min(stop, self._count)
        for position, event in self._entries(start, stop):
            if event is not None:
                state.apply(event)
            for span in self._notes.get(position + 1, ()):
                state.note("error", damage_line(span))
        return state

    def state_at(self, position: int) -> DashboardState:
        """A fresh state after the first ``position`` events (nearest snapshot, then fold forward)."""
        position = max(0, min(position, self._count))
        k = min(position // self.every, len(self.snapshots) - 1)
        state = self.snapshots[k].copy()
        if k == 0:  # the empty state: notes before the first record are not in it
            for span in self._notes.get(0, ()):
                state.note("error", damage_line(span))
        return self.fold(state, k * self.every, position)

    def end_state(self) -> DashboardState:
        """A fresh state after every indexed event (a copy of the one the scan folded)."""
        return self._state.copy()

    def epochs(self) -> list[int]:
        return sorted(self.epoch_ends)

    def epoch_position(self, epoch: int) -> int | None:
        """The position just after ``epoch``'s end record (None if it never ended)."""
        return self.epoch_ends.get(epoch)

    def boundaries(self) -> list[int]:
        """Epoch-end positions in order (for stepping by epoch)."""
        return sorted(set(self.epoch_ends.values()))

    def position_at_time(self, t: float) -> int:
        """How many events happened at or before time t."""
        return bisect.bisect_right(self.times, t, 0, self._count)

    def close(self) -> None:
        self._reader.close()


class _ProbeStamp:
    """Type and time of a probe that was checked but not decoded (what the index needs of it)."""

    type = "probe"

    def __init__(self, record: Record):
        from enas_tui.events import peek

        found = peek(record.payload)
        self.t = found[2] if found else 0.0


class ReplayCursor:
    """A position in an indexed log and the state there; short forward moves fold in place."""

    def __init__(self, index: ReplayIndex, position: int = 0):
        self.index = index
        self.position = 0
        self.state = index.state_at(0)  # damage before the first record is noted even here
        self.seek(position)

    def seek(self, position: int) -> DashboardState:
        position = max(0, min(position, len(self.index)))
        ahead = position - self.position
        if position == len(self.index) and ahead != 0:
            self.state = self.index.end_state()  # the scan's own state: no need to read the log again
        elif 0 <= ahead <= self.index.every:
            self.index.fold(self.state, self.position, position)
        else:
            self.state = self.index.state_at(position)
        self.position = position
        return self.state

    def step(self, delta: int) -> DashboardState:
        return self.seek(self.position + delta)

    def next_epoch(self) -> DashboardState:
        later = [p for p in self.index.boundaries() if p > self.position]
        return self.seek(later[0] if later else len(self.index))

    def previous_epoch(self) -> DashboardState:
        earlier = [p for p in self.index.boundaries() if p < self.position]
        return self.seek(earlier[-1] if earlier else 0)

    @property
    def epoch(self) -> int:
        """The last epoch completed at the cursor (0 before the first one ends)."""
        done = [e for e, p in self.index.epoch_ends.items() if p <= self.position]
        return max(done, default=0)
