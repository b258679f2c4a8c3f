"""What ``enas-tui watch`` and the dashboard's sweep overview show: every run of a sweep, and the
aggregates over seeds, kept up to date as runs progress and finish.

A run's Table 1 row and collapse index come from one of two places:

- ``final``: the saved analysis of the run's final checkpoint (the trial's ``analyze --save``):
  n architectures drawn with the run's seed, scored on the run's weights, every reading: what
  ``paper`` and ``report`` use. Only finished runs have one.
- ``live``: the trainer's last live probe (the log's last ``diagnostics`` event), for a run not
  analysed yet: a smaller sample taken during training, in which the costly GEDs and |perf diff|
  are computed only on some probes (a missing one shows as ``-``).

The aggregates are ``replication.aggregate`` over the final analyses only (their SeedResults),
one summary per group of runs that share the varied settings, with ``replication.claims``: a
live probe never enters them, and they change exactly when a run's analysis lands. No torch, no
Textual (the dashboard draws this; ``sweep status`` could print it).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import diagnostics
from ..events import Diagnostics
from ..replication import Claim, SavedAnalysisError, SeedResult, Table1Summary, aggregate, claims, read_seed_result
from ..session_log import LogError, read_last
from .record import RunState, SweepError, SweepRecord, analysis_path, load_record, record_path, run_states, this_host


@dataclass
class RunRow:
    """One run as the overview shows it: its state and, when it has any, its numbers."""

    state: RunState
    source: str = ""  # "final", "live" or "" (no numbers yet)
    at_epoch: int | None = None  # the epoch the numbers describe
    spearman: dict[str, float | None] = field(default_factory=dict)  # rho by measure name
    collapse: float | None = None  # scale-free collapse index of the final hidden state
    result: SeedResult | None = None  # the run's contribution to the aggregates (final only)

    @property
    def session(self) -> str:
        return self.state.run.session

    @property
    def group(self) -> str:
        return self.state.run.label()

    def rho(self, column: str, shown: dict[str, str]) -> float | None:
        """Table 1's ``column`` under the readings ``shown`` (diagnostics.resolve_readings)."""
        return self.spearman.get(shown[column])

    @property
    def remote(self) -> bool:
        """Whether the run's last attempt ran on another machine than this one."""
        return self.state.host not in (None, this_host())


@dataclass
class GroupSummary:
    """Table 1 over seeds for the runs that share one combination of the varied settings."""

    label: str  # ``key=value`` words ("" when the sweep varies nothing but controller and seed)
    runs: int
    analysed: int
    summary: Table1Summary | None  # None until a run of the group is analysed
    claims: list[Claim] = field(default_factory=list)


# Sort keys of the run table: each maps a row to a value (None sorts last in either direction).
def _sorts(shown: dict[str, str]) -> dict[str, Callable[[RunRow], Any]]:
    order = {name: i for i, name in enumerate(("running", "trained", "finished", "stopped", "crashed", "failed",
                                                 "damaged", "pending"))}
    sorts: dict[str, Callable[[RunRow], Any]] = {
        "controller": lambda r: r.state.run.controller,
        "seed": lambda r: r.state.run.seed,
        "settings": lambda r: r.group,
        "host": lambda r: r.state.host,
        "status": lambda r: order.get(r.state.word, len(order)),
        "epoch": lambda r: r.state.epoch,
        "best ppl": lambda r: r.state.best_ppl,
        "collapse": lambda r: r.collapse,
    }
    for column in diagnostics.TABLE1_COLUMNS:
        sorts[column] = lambda r, c=column: r.rho(c, shown)
    return sorts


SORT_KEYS: tuple[str, ...] = ("run", "controller", "seed", "settings", "host", "status", "epoch", "best ppl",
                              "collapse", *diagnostics.TABLE1_COLUMNS)


def sort_rows(rows: list[RunRow], key: str, descending: bool, shown: dict[str, str]) -> list[RunRow]:
    """The rows ordered by ``key`` (SORT_KEYS), rows without a value last; ties keep the sweep's order."""
    if key == "run":
        return list(reversed(rows)) if descending else list(rows)
    get = _sorts(shown)[key]
    present = [r for r in rows if get(r) is not None]
    missing = [r for r in rows if get(r) is None]
    return sorted(present, key=get, reverse=descending) + missing


class SweepOverview:
    """A sweep's runs and aggregates, re-read by ``refresh`` (cheaply: the record when it changed,
    each session's status from its log's end, a log's last live probe only when the log grew, a
    saved analysis only when its file changed)."""

    def __init__(self, root: Path, name: str, readings: dict[str, str | None] | None = None):
        self.root, self.name = Path(root), name
        self.readings: dict[str, str | None] = dict(readings or {})
        self.record: SweepRecord | None = None
        self.rows: list[RunRow] = []
        self.groups: list[GroupSummary] = []
        self.error: str | None = None  # why the record cannot be read now (the last rows stay)
        self.refreshed = 0.0
        self._record_key: tuple[int, int] | None = None
        self._live: dict[str, tuple[int, Diagnostics | None]] = {}  # session -> (log size, last diagnostics)
        self._final: dict[str, tuple[tuple[int, int], SeedResult | None]] = {}  # session -> (file key, result)

    @property
    def shown(self) -> dict[str, str]:
        """Table 1's columns -> the measures shown (the readings chosen, else the paper's)."""
        return diagnostics.resolve_readings(self.readings)

    def set_reading(self, column: str, reading: str) -> None:
        self.readings[column] = reading
        self._aggregate()

    def refresh(self) -> None:
        """Re-read the record (if it changed), every run's state and numbers, and the aggregates.

        Raises SweepError only when the record has never been read (a bad NAME); later trouble
        (the record being replaced, a network filesystem hiccup) is kept in ``error``.
        """
        try:
            self._load_record()
        except SweepError as exc:
            if self.record is None:
                raise
            self.error = str(exc)
        else:
            self.error = None
        assert self.record is not None
        # New lists replace the old ones whole: a reader on another thread sees the old or the new
        self.rows = [self._row(state) for state in run_states(self.root, self.record)]
        self._aggregate()
        self.refreshed = time.time()

    def _load_record(self) -> None:
        path = record_path(self.root, self.name)
        try:
            stat = path.stat()
            key = (stat.st_mtime_ns, stat.st_size)
        except OSError:
            key = None
        if self.record is not None and key == self._record_key:
            return
        self.record = load_record(self.root, self.name)
        self._record_key = key

    def _row(self, state: RunState) -> RunRow:
        sid = state.run.session
        if state.analysed:
            result = self._final_result(sid)
            if result is not None:
                return RunRow(state, "final", state.epoch, dict(result.spearman), result.collapse.get("hidden"),
                              result)
        live = self._live_probe(sid)
        if live is None:
            return RunRow(state)
        rho = {measure: values.get("rho") for measure, values in live.spearman.items()}
        collapse = live.collapse_index.get("hidden") if live.collapse == "scale_free" else None
        return RunRow(state, "live", live.epoch, rho, collapse)

    def _final_result(self, sid: str) -> SeedResult | None:
        path = analysis_path(self.root, self.name, sid)
        try:
            stat = path.stat()
        except OSError:
            return None
        key = (stat.st_mtime_ns, stat.st_size)
        cached = self._final.get(sid)
        if cached is None or cached[0] != key:
            try:
                result: SeedResult | None = read_seed_result(path)
            except SavedAnalysisError:
                result = None
            cached = (key, result)
            self._final[sid] = cached
        return cached[1]

    def _live_probe(self, sid: str) -> Diagnostics | None:
        log = self.root / sid / "events.log"
        try:
            size = os.stat(log).st_size
        except OSError:
            return None
        cached = self._live.get(sid)
        if cached is None or cached[0] != size:
            try:
                event = read_last(log, "diagnostics")
            except (LogError, OSError):
                event = None
            cached = (size, event if isinstance(event, Diagnostics) else None)
            self._live[sid] = cached
        return cached[1]

    def _aggregate(self) -> None:
        """One Table 1 over seeds per group of varied settings, from the final analyses only."""
        groups: dict[str, list[RunRow]] = {}
        for row in self.rows:
            groups.setdefault(row.group, []).append(row)
        out = []
        for label, rows in groups.items():
            results = [r.result for r in rows if r.result is not None]
            summary = aggregate(results, readings=self.readings) if results else None
            out.append(GroupSummary(label, len(rows), len(results), summary,
                                    claims(summary) if summary is not None else []))
        self.groups = out

    def counts(self) -> dict[str, int]:
        """Runs by the status the sweep shows (RunState.word)."""
        tally: dict[str, int] = {}
        for row in self.rows:
            tally[row.state.word] = tally.get(row.state.word, 0) + 1
        return tally


def find_sweep(root: Path, session_id: str) -> str | None:
    """The name of the sweep in ``root`` that ``session_id`` belongs to, or None.

    A sweep's session ids start with its name, so only records whose name prefixes the id are read.
    """
    folder = Path(root) / "sweeps"
    try:
        names = sorted(p.stem for p in folder.glob("*.json"))
    except OSError:
        return None
    for name in sorted((n for n in names if session_id.startswith(n + "-")), key=len, reverse=True):
        try:
            record = load_record(root, name)
        except SweepError:
            continue
        if any(run.session == session_id for run in record.runs):
            return name
    return None
