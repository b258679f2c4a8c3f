"""The dashboard's view model: a session's events folded into what the panels show.

Live, attach, replay and compare all feed events into one ``DashboardState`` and the panels render
from it, so every mode shows the same thing for the same events. It is plain Python and numpy (no
Textual, no torch): unit tests drive it directly, and replay snapshots it cheaply to seek.

Resumed sessions repeat steps (a resume from an epoch checkpoint re-runs the steps after it). The
histories are keyed by their step or epoch and a key that goes backwards drops what came after it,
so the state always shows the latest run of each step, never a mix of the two.
"""

from __future__ import annotations

import copy
import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from enas_tui import cell_shape, embedding
from enas_tui.diagnostics import PAPER_TABLE1, READINGS, collapse_index, column_measure, max_action_probs
from enas_tui.events import (
    AsgdSwitch, BufferFill, Checkpoint, ControllerStep, Derived, Diagnostics, EpochEnd, EpochStart, Error, Event,
    Probe, RetrainResult, SessionEnd, SessionStart, SharedStep, UntrainedProbe, Validation, Warning,
)
from enas_tui.search_space import DEFAULT_NUM_NODES, decision_sizes
from enas_tui.sources import ProbeArchs

STEP_HISTORY = 2000  # points kept per step series (sparklines show the most recent ones)
EPOCH_HISTORY = 1000  # points kept per epoch series (the paper runs 150 epochs)
PROBE_HISTORY = 2000  # probe sets kept for the cell shape over the search
LOG_LINES = 500
# The heatmap's alarm: the collapse index (scale-free, in [0, 1]: RMS distance of the rows to
# their mean over the RMS row norm) under 5%. An untrained controller's rows differ by ~25%;
# a collapsed one's by under 1%.
COLLAPSE_ALARM = 0.05
SPEARMAN_COLUMNS: tuple[str, ...] = ("common_activations", "common_connections", "ged", "abs_perf_diff")
__all__ = ["READINGS", "column_measure"]  # Table 1's readings, as diagnostics defines them

# The parts of the state each panel draws; ``touched`` records when each last changed.
PARTS = ("status", "progress", "training", "probe", "buffer", "spearman", "arch", "log", "shape")
# A probe set's cell shape: depth then width, each (q25, median, q75), in one tuple per probe set
# (one history to copy at each replay snapshot, not six).
SHAPE_KEYS = tuple(f"{q}_{stat}" for q in cell_shape.QUANTITIES for stat in ("q25", "median", "q75"))


class Series:
    """A bounded history of (x, y) points with x increasing.

    Adding a point whose x is not past the last one drops every point at or after that x first:
    after a resume the repeated steps replace the ones that were lost, instead of doubling up.
    """

    __slots__ = ("points",)

    def __init__(self, maxlen: int = STEP_HISTORY, points: Iterable[tuple[float, float]] = ()):
        self.points: deque[tuple[float, float]] = deque(points, maxlen=maxlen)

    def add(self, x: float, y: float) -> None:
        points = self.points
        while points and points[-1][0] >= x:
            points.pop()
        points.append((x, y))

    def rewind(self, x: float) -> None:
        """Drop the points at or after x."""
        while self.points and self.points[-1][0] >= x:
            self.points.pop()

    @property
    def last(self) -> float | None:
        return self.points[-1][1] if self.points else None

    @property
    def last_x(self) -> float | None:
        return self.points[-1][0] if self.points else None

    def values(self) -> list[float]:
        return [y for _, y in self.points]

    def xs(self) -> list[float]:
        return [x for x, _ in self.points]

    def __len__(self) -> int:
        return len(self.points)

    def __copy__(self) -> Series:
        # The tuples are immutable, so a copy shares them and only copies the pointers.
        return Series(self.points.maxlen or STEP_HISTORY, self.points)


@dataclass(frozen=True, slots=True)
class LogLine:
    """One line of the event log panel; ``level`` is info, phase, warn or error."""

    seq: int
    epoch: int
    level: str
    text: str


@dataclass(frozen=True)
class ProbeSummary:
    """What the probabilities panel draws from one probe set (Fig. 1 and Fig. 4)."""

    mean: np.ndarray  # (D, K): the controller's distribution at each step, averaged over the probe
    max_min: np.ndarray  # (D,) the min / median / max over the probe architectures of
    max_median: np.ndarray  # (D,) the probability of the most likely action at each step
    max_max: np.ndarray  # (D,)
    sizes: tuple[int, ...]
    top: np.ndarray  # (n, D) the probability of the most likely action, per architecture and step


@dataclass(frozen=True)
class Fig1Gap:
    """Fig. 1 live: the latest probe's certainty against the untrained controller's, step by step.

    Per step, the mean over the probe architectures of the top action's probability (Fig. 1, as
    ``enas-tui paper`` computes claim (a)), for the trained and the untrained controller.
    """

    trained: np.ndarray  # (D,)
    untrained: np.ndarray  # (D,)
    untrained_median: np.ndarray  # (D,) the untrained median, drawn beside the probe's median

    @property
    def gap(self) -> float:
        """Mean over steps of trained - untrained."""
        return float(np.mean(self.trained - self.untrained))

    @property
    def above(self) -> int:
        """Steps at which the trained controller is the more certain."""
        return int(np.sum(self.trained > self.untrained))


def summarize_probe(probe: Probe | UntrainedProbe, sizes: list[int]) -> ProbeSummary:
    """Mean distribution per step, and the min/median/max of the top probability per step."""
    probs = np.asarray(probe.probs, dtype=np.float64)
    if len(sizes) != probs.shape[1]:  # a probe from another search space than SessionStart said
        sizes = [int(np.count_nonzero(probs[:, d].max(axis=0) > 0)) or 1 for d in range(probs.shape[1])]
    top = max_action_probs(probs, sizes)
    return ProbeSummary(
        mean=probs.mean(axis=0), max_min=top.min(axis=0), max_median=np.median(top, axis=0),
        max_max=top.max(axis=0), sizes=tuple(sizes), top=top,
    )


def probe_collapse(probe: Probe, sizes: list[int]) -> dict[str, float]:
    """The scale-free collapse indices of a probe set, computed from its arrays.

    Logs before events schema 2 recorded an absolute index (it scaled with the activations), so
    the dashboard recomputes these from the probe itself for them.
    """
    out = {"hidden": collapse_index(probe.hidden)}
    try:
        out["max_prob"] = collapse_index(summarize_probe(probe, sizes).top)
    except ValueError:
        pass
    return out


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


@dataclass
class DashboardState:
    """Everything the panels show, after the events folded so far."""

    # identity
    session_id: str = ""
    kind: str = "search"  # search | retrain (SessionStart.kind)
    cell: str | None = None  # a retrain's cell (SessionStart.arch)
    source: str | None = None  # a retrain's search session (None: a cell given with --arch)
    controller: str = ""
    device: str = ""
    num_nodes: int = DEFAULT_NUM_NODES
    decision_sizes: list[int] = field(default_factory=lambda: decision_sizes(DEFAULT_NUM_NODES))
    settings: dict[str, Any] = field(default_factory=dict)
    schema: int = 1  # events schema of the log (SessionStart.schema)
    started_t: float | None = None
    resumes: int = 0
    # what the log says about the run: waiting | running | finished | stopped | failed
    status: str = "waiting"
    message: str = ""
    last_error: str | None = None
    # what the source knows beyond the log (e.g. the trainer process is gone): crashed | stopped | ...
    trainer: str | None = None
    trainer_message: str = ""
    # damage the source found in the session log (spans skipped, records lost): the header's notice
    log_damage: str = ""
    # a remote attach's link trouble, e.g. "connection lost, reconnecting (2): ..." (None: fine)
    connection: str | None = None
    # progress
    seq: int = -1
    last_t: float | None = None
    epoch: int = 0
    epochs: int = 0
    shared_steps: int = 0
    controller_steps: int = 0
    shared_done: int = 0
    ctrl_done: int = 0
    _shared_base: int | None = field(default=None, repr=False)  # global step count before this epoch
    _ctrl_base: int | None = field(default=None, repr=False)
    epoch_t0: float | None = None
    epoch_seconds: Series = field(default_factory=lambda: Series(EPOCH_HISTORY))
    tokens_per_s: float | None = None
    lr: float | None = None
    lr_history: Series = field(default_factory=Series)  # x = the trainer's global step counter
    skipped: int | None = None  # non-finite shared steps skipped in the last epoch (EpochEnd.skipped_shared_steps)
    skipped_total: int = 0
    # step series (x = the trainer's global step counter)
    shared_ppl: Series = field(default_factory=Series)
    reward: Series = field(default_factory=Series)
    baseline: Series = field(default_factory=Series)
    entropy: Series = field(default_factory=Series)
    supervised_loss: Series = field(default_factory=Series)
    # epoch series (x = epoch)
    train_ppl: Series = field(default_factory=lambda: Series(EPOCH_HISTORY))
    valid_ppl: Series = field(default_factory=lambda: Series(EPOCH_HISTORY))
    epoch_reward: Series = field(default_factory=lambda: Series(EPOCH_HISTORY))
    epoch_collapse: Series = field(default_factory=lambda: Series(EPOCH_HISTORY))
    # the latest probe set and its diagnostics
    probe: Probe | None = None
    diagnostics: Diagnostics | None = None
    # the controller before its first update (Fig. 1's reference; absent in older logs)
    untrained: UntrainedProbe | None = None
    spearman: dict[str, dict] = field(default_factory=dict)  # the latest, keyed by measure name
    spearman_history: dict[str, Series] = field(default_factory=dict)  # measure -> rho per probe step
    probe_ppl: np.ndarray | None = None  # per-architecture valid ppl of ``probe``, when measured
    collapse: dict[str, float] = field(default_factory=dict)  # scale-free indices of the latest judged probe
    collapse_history: Series = field(default_factory=lambda: Series(EPOCH_HISTORY))
    collapsed: bool = False
    # cell shape per probe set (x = controller step, y = a tuple in SHAPE_KEYS order)
    shape: Series = field(default_factory=lambda: Series(PROBE_HISTORY))
    shape_epoch: dict[str, Series] = field(  # the last probe set's medians per epoch (x = epoch)
        default_factory=lambda: {q: Series(EPOCH_HISTORY) for q in cell_shape.QUANTITIES})
    shape_latest: cell_shape.ShapeSummary | None = None
    # memory buffer
    buffer: BufferFill | None = None
    # a retrain's averaged SGD and result
    averaged: bool = False  # the latest validation check used NT-ASGD's averaged weights
    asgd: AsgdSwitch | None = None
    result: RetrainResult | None = None
    # best architecture
    best_ppl: float | None = None
    best_arch: str | None = None
    best_epoch: int | None = None
    greedy_arch: str | None = None
    derived_arch: str | None = None
    derived_epoch: int | None = None
    # event log
    log: deque[LogLine] = field(default_factory=lambda: deque(maxlen=LOG_LINES))
    warnings: int = 0
    # change tracking: part -> value of ``ticks`` when it last changed
    ticks: int = 0
    touched: dict[str, int] = field(default_factory=lambda: dict.fromkeys(PARTS, 0))
    _summary: tuple[int, ProbeSummary] | None = field(default=None, repr=False)
    _untrained_summary: tuple[int, ProbeSummary] | None = field(default=None, repr=False)
    _projection: tuple[int, embedding.Projection] | None = field(default=None, repr=False)
    _properties: tuple[int, dict[str, np.ndarray]] | None = field(default=None, repr=False)

    # -- folding --------------------------------------------------------------------------
    def apply(self, event: Event) -> None:
        """Fold one event into the state (unknown event types are ignored)."""
        self.ticks += 1
        if event.seq >= 0:
            self.seq = event.seq
        if event.t:
            self.last_t = event.t if self.last_t is None else max(self.last_t, event.t)
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event)

    def apply_all(self, events: Iterable[Event]) -> None:
        for event in events:
            self.apply(event)

    def _touch(self, *parts: str) -> None:
        for part in parts:
            self.touched[part] = self.ticks

    def _log(self, event: Event, level: str, text: str, epoch: int | None = None) -> None:
        self.log.append(LogLine(event.seq, self.epoch if epoch is None else epoch, level, text))
        self._touch("log")

    def set_trainer(self, status: str | None, message: str = "") -> None:
        """Record what the source knows about the trainer process (e.g. ``crashed``), once."""
        if (status, message) == (self.trainer, self.trainer_message):
            return
        self.ticks += 1
        self.trainer, self.trainer_message = status, message
        if status is not None:
            level = "error" if status in ("crashed", "failed") else "phase"
            text = f"trainer {status}" + (f": {message}" if message else "")
            self.log.append(LogLine(self.seq, self.epoch, level, text))
            self._touch("log")
        self._touch("status")

    def set_connection(self, message: str | None) -> None:
        """Record the link's state (remote attach); the event log gets a line when it changes."""
        if message == self.connection:
            return
        self.ticks += 1
        before, self.connection = self.connection, message
        if message is not None and before is None:
            self.note("warn", message)
        elif message is None:
            self.note("phase", "reconnected")
        self._touch("status")

    def set_log_damage(self, summary: str) -> None:
        """The header's one-line notice of damage in the log ("" when it is whole)."""
        if summary != self.log_damage:
            self.ticks += 1
            self.log_damage = summary
            self._touch("status")

    def note(self, level: str, text: str) -> None:
        """A line in the event log from the dashboard itself (not from the session log)."""
        self.ticks += 1
        self.log.append(LogLine(self.seq, self.epoch, level, text))
        self._touch("log")

    @property
    def is_retrain(self) -> bool:
        return self.kind == "retrain"

    def _session_start(self, e: SessionStart) -> None:
        first = not self.session_id
        self.session_id, self.controller, self.device = e.session_id, e.controller, e.device
        self.kind, self.cell, self.source = e.kind, e.arch, e.source
        self.num_nodes, self.decision_sizes = e.num_nodes, list(e.decision_sizes)
        self.settings = e.settings
        self.schema = int(getattr(e, "schema", 1) or 1)
        self.epochs = int(e.settings.get("train", {}).get("epochs", self.epochs) or self.epochs)
        self.status, self.message, self.trainer, self.trainer_message = "running", "", None, ""
        if first:
            self.started_t = e.t
        if e.resumed_from:
            self.resumes += 1
            self._log(e, "phase", f"session resumed from {e.resumed_from} (pid {e.pid})")
        elif self.is_retrain:
            origin = f"session {e.source}'s derived cell" if e.source else "a cell given with --arch"
            self._log(e, "phase", f"retrain started: {origin}, from scratch on {e.device} (pid {e.pid})")
        else:
            self._log(e, "phase", f"session started: {e.controller} controller on {e.device} (pid {e.pid})")
        self._touch(*PARTS)  # a retrain's panels say what they show from the first event

    def _session_end(self, e: SessionEnd) -> None:
        self.status, self.message = e.status, e.message
        if e.best_ppl is not None and e.best_arch:
            self._set_best(e.best_ppl, e.best_arch, None)
        level = "phase" if e.status == "finished" else ("error" if e.status == "failed" else "warn")
        self._log(e, level, f"session {e.status}" + (f": {e.message}" if e.message else ""))
        self._touch("status", "progress")

    def _epoch_start(self, e: EpochStart) -> None:
        self.epoch, self.epochs = e.epoch, e.epochs
        self.shared_steps, self.controller_steps = e.shared_steps, e.controller_steps
        self.shared_done = self.ctrl_done = 0
        self._shared_base = self._ctrl_base = None
        self.epoch_t0 = e.t
        for series in (self.train_ppl, self.valid_ppl, self.epoch_reward, self.epoch_collapse,
                       self.epoch_seconds, *self.shape_epoch.values()):
            series.rewind(e.epoch)
        self._touch("progress", "training")

    def _epoch_end(self, e: EpochEnd) -> None:
        self.epoch = e.epoch
        self.shared_done, self.ctrl_done = self.shared_steps, self.controller_steps
        if _finite(e.train_ppl) is not None:
            self.train_ppl.add(e.epoch, e.train_ppl)
        if _finite(e.reward) is not None:
            self.epoch_reward.add(e.epoch, e.reward)
        self.epoch_seconds.add(e.epoch, e.elapsed_s)
        skipped = e.skipped_shared_steps  # 0 in logs that predate the count
        self.skipped = skipped
        self.skipped_total += skipped
        reward = "" if self.is_retrain else f", reward {fmt(e.reward, 3)}"
        averaged = " (averaged weights)" if self.is_retrain and self.averaged else ""
        text = (f"epoch {e.epoch} done: train ppl {fmt(e.train_ppl)}, valid ppl {fmt(e.valid_ppl)}{averaged}"
                f"{reward} ({e.elapsed_s:.1f} s)")
        if skipped:
            text += f", {skipped} non-finite shared steps skipped"
        self._log(e, "info", text)
        self._touch("progress", "training")

    def _shared_step(self, e: SharedStep) -> None:
        self.epoch = e.epoch
        if self._shared_base is None:
            self._shared_base = e.step - 1
        self.shared_done = max(0, e.step - self._shared_base)
        self.shared_ppl.add(e.step, e.ppl)
        self.lr_history.add(e.step, e.lr)
        self.tokens_per_s, self.lr = e.tokens_per_s, e.lr
        self._touch("progress", "training")

    def _controller_step(self, e: ControllerStep) -> None:
        self.epoch = e.epoch
        self.shared_done = self.shared_steps  # controller steps follow the shared pass
        if self._ctrl_base is None:
            self._ctrl_base = e.step - 1
        self.ctrl_done = max(0, e.step - self._ctrl_base)
        self.reward.add(e.step, e.reward)
        self.baseline.add(e.step, e.baseline)
        self.entropy.add(e.step, e.entropy)
        if e.supervised_loss is not None:
            self.supervised_loss.add(e.step, e.supervised_loss)
            self._touch("buffer")
        self._touch("progress", "training")

    def _probe(self, e: Probe) -> None:
        # Only the latest probe's arrays matter: readers may skip decoding probes a later one
        # supersedes (they arrive as ProbeArchs, for the cell shape).
        self.probe = e
        self.probe_ppl = None
        self._shape(e.epoch, e.step, e.archs)
        self._touch("probe")

    def _untrained_probe(self, e: UntrainedProbe) -> None:
        self.untrained = e
        top = self.untrained_summary()
        if top is not None:
            self._log(e, "info", f"untrained controller: top-action p {float(np.mean(top.top)):.3f} "
                                 f"on average over {len(top.sizes)} steps (n={len(top.top)}, {e.mode})")
        self._touch("probe")

    def _probe_archs(self, e: ProbeArchs) -> None:
        self._shape(e.epoch, e.step, e.archs, e.shape)

    def _shape(self, epoch: int, step: int, archs: list[str], summary: cell_shape.ShapeSummary | None = None) -> None:
        summary = summary or cell_shape.summarize(archs)
        if summary is None:
            return
        self.shape_latest = summary
        d, w = summary.depth, summary.width
        self.shape.add(step, (d.q25, d.median, d.q75, w.q25, w.median, w.q75))
        self.shape_epoch["depth"].add(epoch, d.median)
        self.shape_epoch["width"].add(epoch, w.median)
        self._touch("shape")

    def prepend_shapes(self, earlier: Iterable[ProbeArchs]) -> None:
        """Fold probe sets that came before every probe folded so far (a remote catch-up sends them
        after its first frame). The points folded since are added again on top, so a rewind among
        them drops the earlier points it would have dropped (every point kept is at or past the
        smallest x it added): the result is what folding them first gives, except that where the
        history was full and a rewind came later (a resume during the attach), up to that many more
        earlier points stay than a fold from the start would have kept."""
        current, epochs, latest = self.shape, self.shape_epoch, self.shape_latest
        self.shape = Series(PROBE_HISTORY)
        self.shape_epoch = {q: Series(EPOCH_HISTORY) for q in cell_shape.QUANTITIES}
        for e in earlier:
            self._shape(e.epoch, e.step, e.archs, e.shape)
        for x, y in current.points:
            self.shape.add(x, y)
        for q, series in epochs.items():
            for x, y in series.points:
                self.shape_epoch[q].add(x, y)
        self.shape_latest = latest or self.shape_latest
        self._touch("shape")

    def shape_series(self, key: str) -> list[float]:
        """One column of the cell-shape history (a SHAPE_KEYS name, e.g. ``depth_median``)."""
        column = SHAPE_KEYS.index(key)
        return [y[column] for y in self.shape.values()]

    def _diagnostics(self, e: Diagnostics) -> None:
        self.diagnostics = e
        self.spearman = dict(e.spearman)  # keyed by measure name (decoding renames schema-1 keys)
        x = e.step
        for name, values in self.spearman.items():
            rho = (values or {}).get("rho")
            series = self.spearman_history.get(name)
            if series is None:
                series = self.spearman_history[name] = Series(EPOCH_HISTORY)
            if rho is None:
                series.rewind(x)  # a resumed run's repeated probe replaces the earlier value
            else:
                series.add(x, rho)
        probe = self.probe
        same = probe is not None and (probe.epoch, probe.step) == (e.epoch, e.step)
        ppl = getattr(e, "ppl", None)  # per-architecture ppl, when measured (may be absent)
        if same and ppl is not None and len(ppl) == len(probe.archs):
            self.probe_ppl = np.asarray(ppl, dtype=np.float64)
        # Diagnostics.collapse says which index was recorded ("absolute" in schema-1 logs).
        scale_free = getattr(e, "collapse", "scale_free" if self.schema >= 2 else "absolute") == "scale_free"
        if scale_free and e.collapse_index.get("hidden") is not None:
            index = dict(e.collapse_index)
        elif same:  # schema 1: the recorded index was absolute; recompute it from the probe
            index = probe_collapse(probe, self.decision_sizes)
        else:
            index = None  # this probe's arrays were not decoded: keep the last verdict
        if index is not None:
            self.collapse = index
            self.collapse_history.add(x, index["hidden"])
            self.epoch_collapse.add(e.epoch, index["hidden"])
            self._alarm(e, index["hidden"])
        self._touch("spearman", "probe")

    def _alarm(self, e: Diagnostics, index: float) -> None:
        collapsed = index < COLLAPSE_ALARM
        if collapsed == self.collapsed:
            return
        self.collapsed = collapsed
        if collapsed:
            self._log(e, "warn", f"hidden states collapsed: collapse index {index:.3f} "
                                 f"(< {COLLAPSE_ALARM:.2f}): every architecture gives about the same state")
        else:
            self._log(e, "phase", f"hidden states apart again: collapse index {index:.3f}")

    def _buffer(self, e: BufferFill) -> None:
        before = self.buffer
        self.buffer = e
        if before is None or before.phase != e.phase:
            self._log(e, "phase", f"buffer {e.phase}: {e.size}/{e.capacity}", e.epoch)
        if e.supervised and (before is None or not before.supervised):
            self._log(e, "phase", "supervised buffer loss on", e.epoch)
        self._touch("buffer")

    def _validation(self, e: Validation) -> None:
        self.greedy_arch, self.averaged = e.arch, e.averaged
        if _finite(e.ppl) is not None:
            self.valid_ppl.add(e.epoch, e.ppl)
        which = ("averaged weights" if e.averaged else "the cell's weights") if self.is_retrain \
            else "most likely architecture"
        if self._set_best(e.ppl, e.arch, e.epoch):
            self._log(e, "info", f"new best valid ppl {fmt(e.ppl, 2)} ({which})", e.epoch)
        self._touch("training", "arch")

    def _asgd_switch(self, e: AsgdSwitch) -> None:
        self.asgd = e
        self._log(e, "phase", f"switched to averaged SGD after step {e.step}: valid ppl {fmt(e.valid_ppl, 2)} is "
                              f"worse than {fmt(e.reference_ppl, 2)}, the best before the last {e.nonmono} checks",
                  e.epoch)
        self._touch("training")

    def _retrain_result(self, e: RetrainResult) -> None:
        self.result = e
        weights = "averaged weights" if e.averaged else "weights"
        self._log(e, "phase", f"test ppl {fmt(e.test_ppl, 2)} ({weights} of epoch {e.epoch}, "
                              f"valid ppl {fmt(e.valid_ppl, 2)})")
        self._touch("training", "arch")

    def _derived(self, e: Derived) -> None:
        self._log(e, "info", f"derived: best of {e.candidates} sampled, valid ppl {fmt(e.ppl, 2)}", e.epoch)
        self.derived_arch, self.derived_epoch = e.arch, e.epoch
        self._touch("shape")
        self._set_best(e.ppl, e.arch, e.epoch)
        self._set_best(e.best_ppl, e.best_arch, None)
        self._touch("arch")

    def _set_best(self, ppl: float | None, arch: str | None, epoch: int | None) -> bool:
        if _finite(ppl) is None or not arch:
            return False
        if self.best_ppl is not None and ppl >= self.best_ppl:
            return False
        previous, self.best_ppl, self.best_arch = self.best_arch, ppl, arch
        if epoch is not None:
            self.best_epoch = epoch
        elif arch != previous:
            self.best_epoch = None
        self._touch("arch")
        return True

    def _checkpoint(self, e: Checkpoint) -> None:
        self._log(e, "info", f"checkpoint ({e.kind}) {e.path}", e.epoch)

    def _warning(self, e: Warning) -> None:
        self.warnings += 1
        self._log(e, "warn", e.message, e.epoch or None)

    def _error(self, e: Error) -> None:
        self.last_error = e.message
        self._log(e, "error", e.message, e.epoch or None)
        self._touch("status")

    # -- derived views --------------------------------------------------------------------
    @property
    def run_status(self) -> str:
        """The status to show: the source's word on the trainer when it has one, else the log's."""
        if self.trainer is not None and self.status in ("waiting", "running"):
            return self.trainer
        return self.status

    @property
    def run_message(self) -> str:
        if self.trainer is not None and self.status in ("waiting", "running"):
            return self.trainer_message or (self.last_error or "")
        return self.message

    @property
    def paper_row(self) -> dict[str, float] | None:
        """The paper's Table 1 row for this session's controller setting."""
        return PAPER_TABLE1.get(self.controller)

    def probe_summary(self) -> ProbeSummary | None:
        """Summary of the latest probe (cached: panels ask at every refresh)."""
        if self.probe is None:
            return None
        key = id(self.probe)
        if self._summary is None or self._summary[0] != key:
            self._summary = (key, summarize_probe(self.probe, self.decision_sizes))
        return self._summary[1]

    def untrained_summary(self) -> ProbeSummary | None:
        """Summary of the untrained controller's probe (None if the log has none or it is unusable)."""
        if self.untrained is None:
            return None
        key = id(self.untrained)
        if self._untrained_summary is None or self._untrained_summary[0] != key:
            try:
                summary = summarize_probe(self.untrained, self.decision_sizes)
            except ValueError:  # arrays that fit no search space (DiagnosticsError)
                return None
            self._untrained_summary = (key, summary)
        return self._untrained_summary[1]

    def fig1_gap(self) -> Fig1Gap | None:
        """The latest probe against the untrained controller, when both were read the same way."""
        summary, reference = self.probe_summary(), self.untrained_summary()
        if summary is None or reference is None or summary.sizes != reference.sizes:
            return None
        if (self.probe_mode, self.probe_state) != (self.untrained.mode, self.untrained.state):
            return None
        return Fig1Gap(trained=summary.top.mean(axis=0), untrained=reference.top.mean(axis=0),
                       untrained_median=reference.max_median)

    def projection(self) -> embedding.Projection | None:
        """The latest probe's hidden states in 2-D (cached: panels ask at every refresh)."""
        if self.probe is None:
            return None
        key = id(self.probe)
        if self._projection is None or self._projection[0] != key:
            self._projection = (key, embedding.project(self.probe.hidden))
        return self._projection[1]

    def probe_properties(self) -> dict[str, np.ndarray] | None:
        """Each probe architecture's properties for the embedding map (cached per probe)."""
        if self.probe is None:
            return None
        key = id(self.probe)
        if self._properties is None or self._properties[0] != key:
            self._properties = (key, embedding.properties(self.probe.archs))
        return self._properties[1]

    @property
    def probe_mode(self) -> str | None:
        """How the latest probe was taken: "derive" or "train" (Probe.mode; absent in older logs)."""
        return getattr(self.probe, "mode", None) if self.probe is not None else None

    @property
    def probe_state(self) -> str | None:
        """Which controller state the probe recorded: "emit_last" or "after_last" (Probe.state)."""
        return getattr(self.probe, "state", None) if self.probe is not None else None

    @property
    def epoch_fraction(self) -> float:
        total = self.shared_steps + self.controller_steps
        return 0.0 if total <= 0 else min(1.0, (self.shared_done + self.ctrl_done) / total)

    def eta_seconds(self) -> tuple[float | None, float | None]:
        """(rest of this epoch, rest of the run) from the recorded event times, or None."""
        if self.status != "running" or self.epoch_t0 is None or self.last_t is None:
            return None, None
        done = self.epoch_fraction
        elapsed = self.last_t - self.epoch_t0
        if done >= 1.0:
            epoch_rest = 0.0
        elif done <= 0.0 or elapsed <= 0:
            epoch_rest = None
        else:
            epoch_rest = elapsed * (1 - done) / done
        recent = self.epoch_seconds.values()[-5:]
        per_epoch = sum(recent) / len(recent) if recent else (elapsed / done if done > 0 else None)
        if epoch_rest is None or per_epoch is None:
            return epoch_rest, None
        return epoch_rest, epoch_rest + max(0, self.epochs - self.epoch) * per_epoch

    # -- copies ---------------------------------------------------------------------------
    def copy(self) -> DashboardState:
        """An independent copy to fold further into (events and arrays are shared, not copied)."""
        new = copy.copy(self)
        for name in ("epoch_seconds", "shared_ppl", "lr_history", "reward", "baseline", "entropy", "supervised_loss",
                     "train_ppl", "valid_ppl", "epoch_reward", "epoch_collapse", "collapse_history"):
            setattr(new, name, copy.copy(getattr(self, name)))
        new.spearman_history = {k: copy.copy(v) for k, v in self.spearman_history.items()}
        new.shape = copy.copy(self.shape)
        new.shape_epoch = {k: copy.copy(v) for k, v in self.shape_epoch.items()}
        new.decision_sizes = list(self.decision_sizes)
        new.log = deque(self.log, maxlen=self.log.maxlen)
        new.touched = dict(self.touched)
        return new


_HANDLERS = {
    SessionStart: DashboardState._session_start,
    SessionEnd: DashboardState._session_end,
    EpochStart: DashboardState._epoch_start,
    EpochEnd: DashboardState._epoch_end,
    SharedStep: DashboardState._shared_step,
    ControllerStep: DashboardState._controller_step,
    Probe: DashboardState._probe,
    UntrainedProbe: DashboardState._untrained_probe,
    ProbeArchs: DashboardState._probe_archs,
    Diagnostics: DashboardState._diagnostics,
    BufferFill: DashboardState._buffer,
    Validation: DashboardState._validation,
    AsgdSwitch: DashboardState._asgd_switch,
    RetrainResult: DashboardState._retrain_result,
    Derived: DashboardState._derived,
    Checkpoint: DashboardState._checkpoint,
    Warning: DashboardState._warning,
    Error: DashboardState._error,
}


def fmt(value: float | None, digits: int = 1) -> str:
    """A number for a panel: '-' when missing, 'nan'/'inf' spelled out, never an exception."""
    if value is None:
        return "-"
    if not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if abs(value) >= 1e6:
        return f"{value:.3g}"
    return f"{value:.{digits}f}"
