"""The replay index: every record's offset and time, the epoch boundaries, and dashboard states.

One scan of a session log (``ReplayIndex.build``) records each record's offset and time, the epoch
boundaries, and a snapshot of the folded ``DashboardState`` every 500 records; seeking
(``ReplayCursor``) restores the nearest snapshot and folds forward at most 500 records. It stores
dashboard states, so it lives with the dashboard (replay and compare use it); the event sources in
``enas_tui.sources`` stay free of any dashboard import.
"""

from __future__ import annotations

import bisect
import os
import time
from array import array
from pathlib import Path

from enas_tui.events import Event
from enas_tui.session_log import CorruptLogError, LogError, LogReader, Record
from enas_tui.sources import CHUNK_SECONDS, SourceError, decode_records, peek
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
            except CorruptLogError as err:
                self.error, self.complete = str(err), True
                return True
            if not records:
                self.complete = True
                return True
            self._index(records)
            if deadline is not None and time.monotonic() >= deadline:
                return False

    def _index(self, records: list[Record]) -> None:
        events = decode_records(records, self.path)
        by_seq = {e.seq: e for e in events}
        last_t = self.times[-1] if self.times else 0.0
        for record in records:
            found = peek(record)
            if found is None:  # unusual layout: decode to learn the type and time
                event = record.event()
                found = (event.type, event.seq, event.t)
            kind, seq, t = found
            last_t = max(last_t, t)
            self.offsets.append(record.offset)
            self.times.append(last_t)
            if kind == "epoch_end":
                event = by_seq.get(seq) or record.event()
                self.epoch_ends[int(getattr(event, "epoch", 0))] = len(self.offsets)
        self._state.apply_all(events)
        self._end = records[-1].end
        if (self._count + len(records)) % self.every == 0:
            self.snapshots.append(self._state.copy())  # before the count exposes it
        self._count += len(records)

    def refresh(self) -> bool:
        """Index records appended since the last build (a replayed session still running)."""
        self.complete = False
        return self.build(max_seconds=CHUNK_SECONDS)

    # -- queries --------------------------------------------------------------------------
    def read_events(self, start: int, stop: int) -> list[Event]:
        """Events of positions [start, stop), skipping probes a later one in the range supersedes."""
        stop = min(stop, self._count)
        if start >= stop:
            return []
        out: list[Event] = []
        with LogReader(self.path, self.offsets[start]) as reader:
            remaining = stop - start
            while remaining > 0:
                records = reader.read_records(max_records=min(remaining, 10_000))
                if not records:
                    break
                remaining -= len(records)
                out += decode_records(records, self.path)
        return out

    def state_at(self, position: int) -> DashboardState:
        """A fresh state after the first ``position`` events (nearest snapshot, then fold forward)."""
        position = max(0, min(position, self._count))
        k = min(position // self.every, len(self.snapshots) - 1)
        state = self.snapshots[k].copy()
        state.apply_all(self.read_events(k * self.every, position))
        return state

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


class ReplayCursor:
    """A position in an indexed log and the state there; short forward moves fold in place."""

    def __init__(self, index: ReplayIndex, position: int = 0):
        self.index = index
        self.position = 0
        self.state = DashboardState()
        self.seek(position)

    def seek(self, position: int) -> DashboardState:
        position = max(0, min(position, len(self.index)))
        ahead = position - self.position
        if position == len(self.index) and ahead != 0:
            self.state = self.index.end_state()  # the scan's own state: no need to read the log again
        elif 0 <= ahead <= self.index.every:
            self.state.apply_all(self.index.read_events(self.position, position))
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
