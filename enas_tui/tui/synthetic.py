"""Synthetic sessions: deterministic event streams shaped like a real search, without torch.

``enas-tui demo`` shows the dashboard on them, for a first look in seconds without training; the
dashboard's tests, snapshots and benchmark use them for sessions with known contents (fixed
numbers, fixed timestamps) of any size. The stream follows the trainer's schedule (epoch start,
buffer update, shared steps, controller steps with probes and diagnostics, validation,
derivation, epoch end, checkpoint) and the paper's story: the unsupervised controller's hidden
states collapse, the supervised one's stay apart and depend on the architecture, and trained
controllers drift toward wide, shallow cells. A synthetic retrain (``SyntheticRetrain``) follows
the retrain loop's schedule instead: steps under the learning-rate schedule, a whole-split check
per epoch, the switch to averaged SGD, the test at the end. None of its numbers are measurements.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from enas_tui.config import resolve
from enas_tui.diagnostics import PAPER_TABLE1, collapse_index, max_action_probs
from enas_tui.events import (
    AsgdSwitch, BufferFill, Checkpoint, ControllerStep, Derived, Diagnostics, EpochEnd, EpochStart, Error, Event,
    Probe, RetrainResult, SessionEnd, SessionStart, SharedStep, UnknownEvent, UntrainedProbe, Validation, Warning,
    event_from_dict,
)
from enas_tui.search_space import Architecture, decision_sizes
from enas_tui.session_log import LogWriter
from enas_tui.sessions import Session, write_json_atomic

T0 = 1_700_000_000.0  # a fixed clock, so screens drawn from synthetic sessions never change


@dataclass
class SyntheticRun:
    """The shape of a synthetic session (small by default: a few hundred events)."""

    controller: str = "supervised"
    epochs: int = 3
    shared_steps: int = 20
    controller_steps: int = 40
    probe_every: int = 10
    probe_size: int = 20
    hidden: int = 32
    num_nodes: int = 12
    buffer_start: int = 2
    supervised_start: int = 3
    buffer_capacity: int = 1000
    buffer_add: int = 500
    derive_every: int = 2
    seed: int = 0
    dt: float = 0.05  # seconds between events
    end: str | None = "finished"  # SessionEnd status, or None for a trainer that died mid-run
    stop_after: int | None = None  # cut the stream after this many events (a crash mid-epoch)
    warn_epoch: int = 2  # epoch with a non-finite loss warning (0 for none)
    perf_every: int = 2  # probes with per-architecture perplexities (the |perf diff| column)
    schema: int = 2  # events schema: 1 writes the older Spearman keys and absolute collapse indices
    untrained_probe: bool = True  # Fig. 1's reference at the start (schema 2 only; older logs lack it)

    @property
    def events_per_epoch(self) -> int:
        probes = self.controller_steps // self.probe_every
        buffer = 1 if self.controller == "supervised" else 0
        return 1 + buffer + self.shared_steps + self.controller_steps + 2 * probes + 4


def synthetic_events(run: SyntheticRun | None = None) -> Iterator[Event]:
    """The events of a synthetic session, numbered (seq) and timed (t) as a writer would; for a
    schema-1 run, as a reader decodes an old log (its missing fields filled in, its keys renamed)."""
    run = run or SyntheticRun()
    for event in _numbered(run):
        yield event_from_dict(_as_schema1(event)) if run.schema < 2 else event


def _numbered(run: SyntheticRun) -> Iterator[Event]:
    stream = _Stream(run)
    for index, event in enumerate(stream.events()):
        if run.stop_after is not None and index >= run.stop_after:
            return
        event.seq, event.t = index, T0 + index * run.dt
        yield event


# Fields events schema 2 added: a schema-1 record has none of them.
SCHEMA2_FIELDS = {"probe": ("mode", "state"), "diagnostics": ("collapse", "ppl")}


def _as_schema1(event: Event) -> dict:
    """The record an old (schema-1) trainer would have written for ``event``."""
    data = event.to_dict()
    for name in SCHEMA2_FIELDS.get(data["type"], ()):
        data.pop(name, None)
    return data


def write_synthetic_session(root: Path, run: SyntheticRun | None = None, session_id: str | None = None,
                            status: str | None = None) -> Session:
    """A session folder (meta, status, events.log) holding a synthetic run.

    ``status`` is what status.json claims (default: the run's end status, or ``running`` with a
    pid that no longer exists when the stream has no end: a crashed trainer).
    """
    run = run or SyntheticRun()
    session = Session(Path(root) / (session_id or f"synthetic-{run.controller}"))
    (session.path / "checkpoints").mkdir(parents=True, exist_ok=True)
    settings = _settings(run)
    session.write_meta({"id": session.id, "controller": run.controller, "preset": "synthetic",
                        "seed": run.seed, "settings": settings, "started": T0, "pid": 0,
                        "host": "synthetic", "command": ["synthetic"]})
    last_epoch = 0
    with LogWriter(session.log_path) as writer:
        for event in _numbered(run):
            writer.append(UnknownEvent(raw=_as_schema1(event), seq=event.seq, t=event.t) if run.schema < 2 else event)
            last_epoch = getattr(event, "epoch", last_epoch)
    ended = run.end if run.stop_after is None else None
    final = status or ended or "running"
    write_json_atomic(session.status_path, {"status": final, "epoch": last_epoch, "pid": _dead_pid(),
                                            "host": None, "updated": T0})
    return session


def _dead_pid() -> int:
    """A pid no process has (pid_max is at most 2**22 on Linux)."""
    return 2**22 + 1


def _settings(run: SyntheticRun) -> dict:
    settings = resolve(run.controller, "cpu", seed=run.seed, epochs=run.epochs)
    settings.model.num_nodes = run.num_nodes
    settings.ctrl.hidden = run.hidden
    settings.ctrl.steps_per_epoch = run.controller_steps
    settings.train.shared_steps_per_epoch = run.shared_steps
    settings.train.probe_every = run.probe_every
    settings.train.probe_size = run.probe_size
    settings.train.derive_every = run.derive_every
    settings.buffer.start_epoch = run.buffer_start
    settings.buffer.supervised_start_epoch = run.supervised_start
    settings.buffer.capacity = run.buffer_capacity
    settings.buffer.add_per_epoch = run.buffer_add
    return settings.to_dict()


class _Stream:
    """Generates the events; all randomness comes from one seeded generator."""

    def __init__(self, run: SyntheticRun):
        self.run = run
        self.rng = np.random.default_rng(run.seed)
        self.sizes = decision_sizes(run.num_nodes)
        self.width = max(self.sizes)
        self.base_logits = self.rng.normal(size=(len(self.sizes), self.width))
        # Trained controllers drift toward early parents: wide, shallow cells (Shu et al.).
        self.base_logits[1::2] -= 0.35 * np.arange(self.width)[None, :]
        self.base_hidden = self.rng.normal(scale=0.8, size=run.hidden)
        # How the sampled decisions move the final hidden state: every decision a little (one-hot
        # decisions -> units), and a supervised controller's mostly through a few properties of
        # the cell (activation counts, depth, leaves), which gives its embedding map structure.
        self.arch_weights = self.rng.normal(scale=0.1, size=(len(self.sizes) * self.width, run.hidden))
        self.feature_weights = self.rng.normal(scale=0.25, size=(6, run.hidden))
        self.shared_step = self.ctrl_step = self.probes = 0
        self.baseline: float | None = None
        self.buffer_size = 0
        self.best: tuple[float, str] | None = None

    def progress(self, epoch: int, step: int = 0) -> float:
        """Fraction of the run done, 0..1."""
        return min(1.0, (epoch - 1 + step / max(1, self.run.controller_steps)) / max(1, self.run.epochs))

    def events(self) -> Iterator[Event]:
        run = self.run
        yield SessionStart(session_id=f"synthetic-{run.controller}", controller=run.controller, seed=run.seed,
                           settings=_settings(run), num_nodes=run.num_nodes, decision_sizes=self.sizes,
                           device="cpu", pid=0, host="synthetic", versions={"enas_tui": "synthetic"},
                           schema=run.schema)
        if run.untrained_probe and run.schema >= 2:
            yield self.untrained()
        for epoch in range(1, run.epochs + 1):
            yield from self.epoch(epoch)
        if run.end is not None:
            best_ppl, best_arch = self.best if self.best else (None, None)
            if run.end == "failed":
                yield Error(message="5 non-finite losses in a row; stopped", epoch=run.epochs)
            yield SessionEnd(status=run.end, message=f"search {run.end}", epoch=run.epochs,
                             best_ppl=best_ppl, best_arch=best_arch)

    def untrained(self) -> UntrainedProbe:
        """The random controller's probe (nearly uniform), from a generator of its own so the rest of
        the stream is the same with or without it."""
        rng = np.random.default_rng(self.run.seed + 4)
        logits = 0.3 * rng.normal(size=(self.run.probe_size, len(self.sizes), self.width))
        return UntrainedProbe(probs=self.softmax(logits), seed=self.run.seed + 4)

    def softmax(self, logits: np.ndarray) -> np.ndarray:
        """(n, D, K) probabilities from logits, zero past each step's option count."""
        valid = np.arange(self.width)[None, :] < np.asarray(self.sizes)[:, None]
        logits = np.where(valid[None], logits, -np.inf)
        probs = np.exp(logits - logits.max(axis=2, keepdims=True))
        return (probs / probs.sum(axis=2, keepdims=True)).astype(np.float32)

    def epoch(self, epoch: int) -> Iterator[Event]:
        run = self.run
        yield EpochStart(epoch=epoch, epochs=run.epochs, shared_steps=run.shared_steps,
                         controller_steps=run.controller_steps)
        if run.controller == "supervised":
            yield self.buffer(epoch)
        f = self.progress(epoch)
        losses = []
        for i in range(run.shared_steps):
            self.shared_step += 1
            loss = math.log(900.0 * math.exp(-2.0 * f - 0.3 * i / run.shared_steps) + 80) + self.rng.normal(0, 0.02)
            losses.append(loss)
            yield SharedStep(epoch=epoch, step=self.shared_step, loss=loss, ppl=math.exp(loss), lr=20.0,
                             tokens_per_s=4500.0 + 200.0 * self.rng.standard_normal())
        if epoch == run.warn_epoch:
            yield Warning(kind="nonfinite_loss", epoch=epoch,
                          message="non-finite shared loss on tanh,0:relu (1 in a row); step skipped")
        rewards = []
        for _ in range(run.controller_steps):
            self.ctrl_step += 1
            yield self.controller_step(epoch)
            rewards.append(self.last_reward)
            if self.ctrl_step % run.probe_every == 0:
                yield from self.probe(epoch)
        valid = math.exp(sum(losses) / len(losses)) * 0.95
        arch = self.greedy()
        self.note_best(valid, arch)
        yield Validation(epoch=epoch, ppl=valid, arch=arch)
        if epoch % run.derive_every == 0 or epoch == run.epochs:
            derived = valid * 0.98
            self.note_best(derived, arch)
            yield Derived(epoch=epoch, arch=arch, ppl=derived, candidates=100, best_ppl=self.best[0],
                          best_arch=self.best[1])
        yield EpochEnd(epoch=epoch, train_ppl=math.exp(sum(losses) / len(losses)), valid_ppl=valid,
                       reward=float(np.mean(rewards)), entropy=self.entropy(epoch),
                       elapsed_s=run.dt * run.events_per_epoch)
        yield Checkpoint(epoch=epoch, path=f"checkpoints/epoch-{epoch:04d}.pt", kind="epoch")

    def buffer(self, epoch: int) -> BufferFill:
        run = self.run
        added = replaced = 0
        if epoch < run.buffer_start:
            phase = "waiting"
        elif self.buffer_size + run.buffer_add <= run.buffer_capacity:
            added, phase = run.buffer_add, "filling"
            self.buffer_size += added
            phase = "full" if self.buffer_size >= run.buffer_capacity else "filling"
        else:
            replaced, phase = run.buffer_add // 10, "full"
            self.buffer_size = run.buffer_capacity
        return BufferFill(epoch=epoch, size=self.buffer_size, capacity=run.buffer_capacity, added=added,
                          replaced=replaced, phase=phase, supervised=epoch >= run.supervised_start)

    def entropy(self, epoch: int) -> float:
        if self.run.controller == "random":
            return 30.0
        return 30.0 * (1.0 - 0.6 * self.progress(epoch))

    def controller_step(self, epoch: int) -> ControllerStep:
        run = self.run
        f = self.progress(epoch, self.ctrl_step % max(1, run.controller_steps))
        sample_ppl = 700.0 * math.exp(-1.5 * f) + 90 + 20 * abs(self.rng.standard_normal())
        reward = 80.0 / sample_ppl
        baseline = reward if self.baseline is None else self.baseline
        self.baseline = 0.95 * baseline + 0.05 * reward
        self.last_reward = reward
        supervised = None
        if run.controller == "supervised" and epoch >= run.supervised_start:
            supervised = 2.5 - 1.5 * f + 0.05 * self.rng.standard_normal()
        return ControllerStep(epoch=epoch, step=self.ctrl_step, reward=reward, baseline=baseline,
                              advantage=reward - baseline, entropy=self.entropy(epoch) + 0.1 * self.rng.standard_normal(),
                              policy_loss=-(reward - baseline), supervised_loss=supervised, sample_ppl=sample_ppl)

    def probe(self, epoch: int) -> Iterator[Event]:
        run, rng = self.run, self.rng
        f = self.progress(epoch, self.ctrl_step % max(1, run.controller_steps))
        n, steps = run.probe_size, len(self.sizes)
        # sharpness of the policy, spread of the policy across archs, how much the hidden state
        # depends on the architecture, and noise: the paper's story per controller.
        sharp, spread, depends, noise = {
            "random": (0.0, 0.3, 0.5, 0.1),
            "unsupervised": (4.0 * f, 0.05, 0.5 * (1 - f) ** 3 + 0.002, 0.1 * (1 - f) ** 3 + 0.002),
            "supervised": (3.0 * f, 1.0, 0.3, 0.05),
        }.get(run.controller, (f, 0.5, 0.5, 0.2))
        probs = self.softmax(sharp * self.base_logits[None] + spread * rng.normal(size=(n, steps, self.width)))
        choices = self.sample_choices(probs)
        archs = [Architecture.from_decisions(row.tolist()) for row in choices]
        onehot = np.zeros((n, steps * self.width))
        onehot[np.arange(n)[:, None], np.arange(steps)[None, :] * self.width + choices] = 1.0
        drive = onehot @ self.arch_weights
        if run.controller == "supervised":
            features = np.array([[*np.bincount(a.activations, minlength=4), max(a.depths), len(a.leaves)]
                                 for a in archs], dtype=np.float64)
            features = (features - features.mean(axis=0)) / (features.std(axis=0) + 1e-9)
            drive += 0.9 * features @ self.feature_weights
        drive -= drive.mean(axis=0)
        hidden = np.tanh(self.base_hidden[None] + depends * drive + noise * rng.normal(size=(n, run.hidden)))
        hidden = hidden.astype(np.float32)
        self.probes += 1
        yield Probe(epoch=epoch, step=self.ctrl_step, archs=[a.to_text() for a in archs], probs=probs,
                    hidden=hidden)
        paper = PAPER_TABLE1.get(run.controller, PAPER_TABLE1["random"])
        measured = self.probes % run.perf_every == 0
        spearman = {}
        for column, rho in paper.items():
            if column == "abs_perf_diff" and not measured:
                spearman[column] = {"rho": None, "p": None}
                continue
            for name, shift in self.measures(column):
                value = float(np.clip(rho + shift + 0.05 * (1 - f) * rng.standard_normal(), -1, 1))
                spearman[name] = {"rho": value, "p": float(10 ** -(1 + 40 * abs(value)))}
        top = max_action_probs(probs, self.sizes)
        if run.schema >= 2:
            collapse = {"hidden": collapse_index(hidden), "max_prob": collapse_index(top)}
        else:  # the absolute index older logs recorded
            collapse = {name: float((m - m[0]).std(axis=0).mean()) for name, m in (("hidden", hidden), ("max_prob", top))}
        ppl = None
        if measured:
            depth = np.array([max(a.depths) for a in archs], dtype=np.float64)
            ppl = 120.0 * np.exp(-0.8 * f) + 8.0 * depth + rng.normal(0, 3.0, size=n)
        yield Diagnostics(epoch=epoch, step=self.ctrl_step, n=n, spearman=spearman, collapse_index=collapse,
                          ppl=ppl)

    def measures(self, column: str) -> list[tuple[str, float]]:
        """The measure names a column is recorded under, each with an offset from the paper's value."""
        if self.run.schema < 2 or column not in ("common_activations", "ged"):
            return [(column, 0.0)]
        return [(f"{column}_paper", 0.0), (f"{column}_aligned", 0.03)]

    def sample_choices(self, probs: np.ndarray) -> np.ndarray:
        """(n, D) decisions, one architecture per row of (n, D, K) probabilities (inverse CDF)."""
        cdf = np.cumsum(probs.astype(np.float64), axis=2)
        u = self.rng.random(probs.shape[:2]) * cdf[:, :, -1]
        choices = (cdf < u[:, :, None]).sum(axis=2)
        return np.minimum(choices, np.asarray(self.sizes) - 1)

    def greedy(self) -> str:
        choices = [int(np.argmax(self.base_logits[d, :size])) for d, size in enumerate(self.sizes)]
        return Architecture.from_decisions(choices).to_text()

    def note_best(self, ppl: float, arch: str) -> None:
        if self.best is None or ppl < self.best[0]:
            self.best = (ppl, arch)



# -- a retrain -------------------------------------------------------------------------------------
@dataclass
class SyntheticRetrain:
    """The shape of a synthetic retrain session: one cell trained from scratch."""

    arch: str = "tanh,0:relu,1:identity,1:sigmoid,0:tanh,2:relu,3:identity,3:tanh,5:sigmoid,1:relu,4:identity,10:tanh"
    source: str | None = "synthetic-unsupervised"  # the search session (None: a cell given with --arch)
    source_controller: str | None = "unsupervised"
    epochs: int = 8
    steps: int = 30
    lr: float = 20.0
    decay_after: int = 4
    lr_decay: float = 0.9
    nonmono: int = 2
    switch_epoch: int | None = 5  # the epoch whose check switches to averaged SGD (None: never)
    search_ppl: float = 451.9
    seed: int = 0
    dt: float = 0.05
    end: str | None = "finished"  # None: a retrainer that died mid-run
    stop_after: int | None = None

    @property
    def session_id(self) -> str:
        return "synthetic-retrain"

    def settings(self) -> dict:
        from enas_tui.retrain.settings import resolve as resolve_retrain

        overrides = [f"train.steps_per_epoch={self.steps}", f"model.lr={self.lr}", f"train.nonmono={self.nonmono}",
                     f"train.decay_after={self.decay_after}", f"train.lr_decay={self.lr_decay}"]
        settings = resolve_retrain(Architecture.parse(self.arch), "cpu", seed=self.seed, overrides=overrides,
                                   epochs=self.epochs, source=self.source)
        return settings.to_dict()


def synthetic_retrain_events(run: SyntheticRetrain | None = None) -> Iterator[Event]:
    """The events of a synthetic retrain, numbered and timed as a writer would."""
    run = run or SyntheticRetrain()
    for index, event in enumerate(_retrain_stream(run)):
        if run.stop_after is not None and index >= run.stop_after:
            return
        event.seq, event.t = index, T0 + index * run.dt
        yield event


def _retrain_stream(run: SyntheticRetrain) -> Iterator[Event]:
    rng = np.random.default_rng(run.seed)
    num_nodes = Architecture.parse(run.arch).num_nodes
    yield SessionStart(session_id=run.session_id, controller="retrain", seed=run.seed, settings=run.settings(),
                       num_nodes=num_nodes, decision_sizes=decision_sizes(num_nodes), device="cpu", pid=0,
                       host="synthetic", versions={"enas_tui": "synthetic"}, kind="retrain", arch=run.arch,
                       source=run.source)
    step, best, checks = 0, None, []
    for epoch in range(1, run.epochs + 1):
        yield EpochStart(epoch=epoch, epochs=run.epochs, shared_steps=run.steps, controller_steps=0)
        lr = run.lr * run.lr_decay ** max(0, epoch - run.decay_after)
        losses = []
        for i in range(run.steps):
            step += 1
            e = epoch - 1 + i / run.steps
            loss = math.log(900.0 * math.exp(-1.5 * e) + 140) + rng.normal(0, 0.03)
            losses.append(loss)
            yield SharedStep(epoch=epoch, step=step, loss=loss, ppl=math.exp(loss), lr=lr,
                             tokens_per_s=4000.0 + 150.0 * rng.standard_normal())
        averaged = run.switch_epoch is not None and epoch > run.switch_epoch
        # validation flattens out by the third epoch; averaging the weights then lowers it again
        valid = (150.0 + 600.0 * math.exp(-2.0 * epoch) + rng.normal(0, 0.3)) * (0.95 if averaged else 1.0)
        if run.switch_epoch is not None and epoch == run.switch_epoch:
            valid = min(checks[:-run.nonmono]) * 1.01  # stalled: worse than the best before the last checks
        yield Validation(epoch=epoch, ppl=valid, arch=run.arch, averaged=averaged)
        if best is None or valid < best[1]:
            best = (epoch, valid, averaged)
            yield Checkpoint(epoch=epoch, path="checkpoints/best.pt", kind="best")
        if run.switch_epoch is not None and epoch == run.switch_epoch:
            yield AsgdSwitch(epoch=epoch, step=step, valid_ppl=valid, reference_ppl=min(checks[:-run.nonmono]),
                             nonmono=run.nonmono)
        checks.append(valid)
        yield EpochEnd(epoch=epoch, train_ppl=math.exp(sum(losses) / len(losses)), valid_ppl=valid, reward=None,
                       entropy=None, elapsed_s=run.dt * (run.steps + 4))
        yield Checkpoint(epoch=epoch, path=f"checkpoints/epoch-{epoch:04d}.pt", kind="epoch")
    if run.end is None:
        return
    message = f"retrain {run.end}"
    if run.end == "finished":
        test = best[1] * 0.97
        yield RetrainResult(arch=run.arch, epoch=best[0], valid_ppl=best[1], test_ppl=test, averaged=best[2],
                            params=parameter_count(num_nodes), search_ppl=run.search_ppl)
        message += f": test ppl {test:.2f}"
    yield SessionEnd(status=run.end, message=message, epoch=run.epochs, best_ppl=best[1], best_arch=run.arch)


def parameter_count(num_nodes: int, hidden: int = 64, vocab: int = 10_000) -> int:
    """A standalone model's weights at the cpu preset's size (retrain.model.parameter_count, torch-free)."""
    return vocab * hidden + vocab + (2 + num_nodes - 1) * 2 * hidden * hidden


def write_synthetic_retrain(root: Path, run: SyntheticRetrain | None = None) -> Session:
    """A retrain session folder (meta, status, events.log) holding a synthetic retrain."""
    run = run or SyntheticRetrain()
    session = Session(Path(root) / run.session_id)
    (session.path / "checkpoints").mkdir(parents=True, exist_ok=True)
    source = {"arch": run.arch, "session": run.source, "controller": run.source_controller,
              "search_ppl": run.search_ppl}
    session.write_meta({"id": session.id, "kind": "retrain", "controller": "retrain", "preset": "synthetic",
                        "seed": run.seed, "settings": run.settings(), "started": T0, "pid": 0, "host": "synthetic",
                        "command": ["synthetic"], "source": source})
    status: dict = {"status": "running", "epoch": 0, "pid": _dead_pid(), "host": None, "updated": T0}
    with LogWriter(session.log_path) as writer:
        for event in synthetic_retrain_events(run):
            writer.append(event)
            status["epoch"] = getattr(event, "epoch", status["epoch"])
            if isinstance(event, RetrainResult):
                status.update(test_ppl=event.test_ppl, valid_ppl=event.valid_ppl, best_epoch=event.epoch)
            if isinstance(event, SessionEnd):
                status.update(status=event.status, best_ppl=event.best_ppl)
    write_json_atomic(session.status_path, status)
    return session


def demo_run(controller: str) -> SyntheticRun:
    """The synthetic run ``enas-tui demo`` shows: ten epochs, probes of 60 architectures."""
    return SyntheticRun(controller=controller, epochs=10, shared_steps=30, controller_steps=60, probe_every=10,
                        probe_size=60, hidden=48, buffer_start=3, supervised_start=5, buffer_capacity=2000,
                        buffer_add=500, derive_every=2, warn_epoch=4, dt=0.2)
