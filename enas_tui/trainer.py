"""The ENAS search loop: shared-weight steps, controller steps, probes, derivation, checkpoints.

Each epoch: (1) the memory buffer's per-epoch update (supervised only); (2) shared-weight steps,
one sampled architecture per minibatch; (3) controller steps: REINFORCE on reward 80/ppl of each
sampled architecture on a validation minibatch, plus the buffer's supervised loss when it is on;
``random`` samples and scores the same way but never updates the controller; (4) validation of the
controller's most likely architecture, derivation every few epochs, a checkpoint. Every step is
recorded as an event; the trainer never waits for a viewer.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import checkpoints, diagnostics
from .checkpoints import CheckpointError
from .config import Settings, live_ged_readings
from .controller import Controller
from .data import Corpus, batchify
from .events import (
    BufferFill, Checkpoint, ControllerStep, Derived, Diagnostics, EpochEnd, EpochStart, Error, Event,
    Probe, SessionEnd, SessionStart, SharedStep, UntrainedProbe, Validation, Warning,
)
from .memory_buffer import MemoryBuffer
from .search_space import Architecture
from .session_log import LogError, LogWriter, read_first
from .sessions import Session, SessionError, is_time, process_start_time
from .supernet import SuperNet, get_batch, train_step

Listener = Callable[[Event], None]


class TrainingFailed(Exception):
    """The run cannot go on (e.g. repeated non-finite losses); the last checkpoint is intact."""


class DeviceError(Exception):
    """A device that does not exist here (e.g. ``cuda`` without CUDA); one line for the user."""


# Writing the record failed (a full disk, a read-only folder): the run fails cleanly, not with a traceback.
RESOURCE_ERRORS = (OSError, LogError, CheckpointError, SessionError)
TIMED_CHECKPOINT = "timed.pt"
MAX_DAMAGE_WARNINGS = 5  # damaged spans of a resumed log listed one by one; the rest are counted


@dataclass
class Position:
    """Where the run is: the current epoch (from 1), the steps already done in it, and whether
    its start (epoch_start record, buffer update) is done, so a resume never repeats it."""

    epoch: int = 1
    shared_done: int = 0
    ctrl_done: int = 0
    begun: bool = False


class Recorder:
    """Appends every event to the session log, then hands it to the live listeners."""

    def __init__(self, writer: LogWriter, listeners: list[Listener] | None = None):
        self.writer = writer
        self.listeners = list(listeners or [])

    def __call__(self, event: Event) -> Event:
        self.writer.append(event)
        for listener in self.listeners:
            listener(event)
        return event


def pick_device(requested: str | None) -> torch.device:
    """``auto`` (or None) means CUDA when available; a device this machine lacks is a DeviceError."""
    if requested in (None, "", "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except (RuntimeError, TypeError):
        raise DeviceError(f"unknown device {requested!r} (use auto, cpu, cuda or cuda:N)") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {requested!r}: CUDA is not available on this machine")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"device {requested!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device.type != "cpu":
        try:
            torch.empty(1, device=device)
        except Exception as exc:  # noqa: BLE001 - each backend fails in its own way
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DeviceError(f"device {requested!r} is not usable here: {first}") from None
    return device


class Trainer:
    """Runs one session's search from a position to the last epoch."""

    def __init__(self, settings: Settings, corpus: Corpus, session: Session, record: Recorder,
                 device: torch.device):
        self.s, self.session, self.record, self.device = settings, session, record, device
        if device.type == "cpu" and settings.train.threads > 0:
            torch.set_num_threads(settings.train.threads)
        torch.manual_seed(settings.seed)
        self.net = SuperNet(corpus.vocab_size, settings.model).to(device)
        self.ctrl = Controller(settings.model.num_nodes, settings.ctrl).to(device)
        self.shared_opt = torch.optim.SGD(self.net.parameters(), lr=settings.model.lr)
        self.ctrl_opt = torch.optim.Adam(self.ctrl.parameters(), lr=settings.ctrl.lr)
        self.buffer = MemoryBuffer(settings.buffer, self.ctrl.num_decisions, seed=settings.seed + 3)
        self.sample_gen = torch.Generator(device).manual_seed(settings.seed + 1)
        self.probe_gen = torch.Generator(device).manual_seed(settings.seed + 2)
        self.train_data = batchify(corpus.train, settings.model.batch_size).to(device)
        self.valid_data = batchify(corpus.valid, settings.model.eval_batch_size).to(device)
        self.pos = Position()
        self.baseline: float | None = None
        self.train_cursor, self.valid_cursor = 0, 0
        self.hidden = self.net.init_hidden(settings.model.batch_size)
        self.shared_step, self.ctrl_step, self.probes = 0, 0, 0
        self.best_ppl: float | None = None
        self.best_arch: str | None = None
        self.nonfinite = {"shared": 0, "controller": 0}  # non-finite losses in a row, per kind of step
        self.stop_requested = False
        self.resumed_from: str | None = None
        self._last_checkpoint = time.monotonic()
        self._start_warnings: list[tuple[str, str]] = []  # (kind, message) recorded after session_start

    # -- schedule -------------------------------------------------------------------------
    @property
    def shared_steps_per_epoch(self) -> int:
        chunks = max(1, (self.train_data.shape[0] - 1) // self.s.model.bptt)
        return self.s.train.shared_steps_per_epoch or chunks

    @property
    def ctrl_steps_per_epoch(self) -> int:
        return self.s.ctrl.steps_per_epoch

    def request_stop(self) -> None:
        """Ask for a graceful stop at the next step boundary (Ctrl-C, SIGTERM, the dashboard)."""
        self.stop_requested = True

    # -- main loop ------------------------------------------------------------------------
    def run(self) -> str:
        """Train to the last epoch; returns the final status (finished / stopped / failed).

        A run that cannot write its record (a full disk) fails cleanly: temporary files removed,
        the last good checkpoint kept, status "failed", and TrainingFailed with the OS's reason.
        """
        try:
            self._start()
            while self.pos.epoch <= self.s.train.epochs:
                if not self._run_epoch():
                    return self._finish("stopped", "stopped by request; resume with --resume", interrupt=True)
            return self._finish("finished", "search finished")
        except TrainingFailed as exc:
            self._fail(str(exc))
            raise
        except RESOURCE_ERRORS as exc:
            message = f"{_one_line(exc)}; stopped with the last good checkpoint intact"
            self._fail(message)
            raise TrainingFailed(message) from None
        except Exception as exc:  # a bug or a dead device: leave a clear record, then fail loudly
            message = f"{type(exc).__name__}: {exc}".splitlines()[0]
            self._fail(message)
            raise
        finally:
            self.record.writer.close()

    def _start(self) -> None:
        self.session.write_status(status="running", pid=os.getpid(), pid_start=process_start_time(os.getpid()),
                                  host=socket.gethostname(), epoch=self.pos.epoch - 1,
                                  best_ppl=self.best_ppl, best_arch=self.best_arch, message="")
        self.record(SessionStart(
            session_id=self.session.id, controller=self.s.controller, seed=self.s.seed,
            settings=self.s.to_dict(), num_nodes=self.s.model.num_nodes,
            decision_sizes=list(self.ctrl.sizes), device=str(self.device), pid=os.getpid(),
            host=socket.gethostname(), versions=versions(), resumed_from=self.resumed_from,
        ))
        for kind, message in self._start_warnings + _log_warnings(self.record.writer):
            self.record(Warning(message=message, kind=kind, epoch=self.pos.epoch - 1))
        if self.ctrl_step == 0:  # no update yet (a new run, or one resumed before its first)
            self._probe_untrained()
        self._last_checkpoint = time.monotonic()

    def _probe_untrained(self) -> None:
        """Fig. 1's reference: the controller before any update, read as the probes read it.

        A generator of its own (seed + 4) leaves the sampling and probe streams as they were.
        """
        t, seed = self.s.train, self.s.seed + 4
        with torch.no_grad():
            out = self.ctrl.sample(t.probe_size, generator=torch.Generator(self.device).manual_seed(seed),
                                   mode=t.probe_mode, state=t.probe_state)
        self.record(UntrainedProbe(probs=out.probs().cpu().numpy().astype(np.float32), mode=t.probe_mode,
                                   state=t.probe_state, seed=seed))

    def _run_epoch(self) -> bool:
        """One epoch from the current position; False when a stop was requested mid-way."""
        epoch, started = self.pos.epoch, time.perf_counter()
        if self.stop_requested:
            return False
        if not self.pos.begun and self.pos.shared_done == 0 and self.pos.ctrl_done == 0:
            self.record(EpochStart(epoch=epoch, epochs=self.s.train.epochs,
                                   shared_steps=self.shared_steps_per_epoch,
                                   controller_steps=self.ctrl_steps_per_epoch))
            self._update_buffer(epoch)
        self.pos.begun = True
        losses: list[float] = []
        while self.pos.shared_done < self.shared_steps_per_epoch:
            if self.stop_requested:
                return False
            losses.append(self._shared_step(epoch))
            self.pos.shared_done += 1
            self._maybe_checkpoint(epoch)
        rewards, entropies = [], []
        while self.pos.ctrl_done < self.ctrl_steps_per_epoch:
            if self.stop_requested:
                return False
            reward, entropy = self._controller_step(epoch)
            rewards.append(reward)
            entropies.append(entropy)
            self.pos.ctrl_done += 1
            self._maybe_checkpoint(epoch)
        valid_ppl = self._validate(epoch)
        if epoch % self.s.train.derive_every == 0 or epoch == self.s.train.epochs:
            self._derive(epoch)
        finite = [x for x in losses if math.isfinite(x)]  # skipped (non-finite) steps count apart
        self.record(EpochEnd(
            epoch=epoch, train_ppl=_safe_exp(float(np.mean(finite))) if finite else float("nan"),
            valid_ppl=valid_ppl, reward=_finite_mean(rewards), entropy=_finite_mean(entropies),
            elapsed_s=time.perf_counter() - started, skipped_shared_steps=len(losses) - len(finite)))
        self.pos = Position(epoch + 1, 0, 0)
        self._checkpoint(f"epoch-{epoch:04d}.pt", "epoch", epoch)
        (self.session.checkpoint_dir / TIMED_CHECKPOINT).unlink(missing_ok=True)  # superseded
        self.session.write_status(epoch=epoch, best_ppl=self.best_ppl, best_arch=self.best_arch)
        return True

    def _finish(self, status: str, message: str, interrupt: bool = False) -> str:
        """Record the end; ``epoch`` in the end record and status.json is the last epoch completed."""
        if interrupt:
            self._checkpoint("interrupt.pt", "interrupt", self.pos.epoch)
        completed = self.pos.epoch - 1
        self.record(SessionEnd(status=status, message=message, epoch=completed,
                               best_ppl=self.best_ppl, best_arch=self.best_arch))
        self.record.writer.sync()
        self.session.write_status(status=status, epoch=completed, best_ppl=self.best_ppl,
                                  best_arch=self.best_arch, message=message)
        return status

    def _fail(self, message: str) -> None:
        """Record a failure as far as the disk allows: each write is tried even if one before failed,
        so status.json says "failed" even when the log can take no more."""
        completed = self.pos.epoch - 1
        end = SessionEnd(status="failed", message=message, epoch=completed,
                         best_ppl=self.best_ppl, best_arch=self.best_arch)
        for write in (lambda: self.record(Error(message=message, epoch=self.pos.epoch)),
                      lambda: self.record(end), self.record.writer.sync,
                      lambda: self.session.write_status(status="failed", epoch=completed, best_ppl=self.best_ppl,
                                                        best_arch=self.best_arch, message=message)):
            try:
                write()
            except RESOURCE_ERRORS:
                continue

    # -- steps ----------------------------------------------------------------------------
    def _sample(self, n: int) -> list[Architecture]:
        with torch.no_grad():
            return self.ctrl.sample(n, generator=self.sample_gen).architectures()

    def _shared_step(self, epoch: int) -> float:
        bptt = self.s.model.bptt
        if self.train_cursor + 2 > self.train_data.shape[0]:
            self.train_cursor, self.hidden = 0, self.net.init_hidden(self.s.model.batch_size)
        tokens, targets = get_batch(self.train_data, self.train_cursor, bptt)
        arch = self._sample(1)[0]
        started = time.perf_counter()
        self.net.train()
        loss, hidden, finite = train_step(self.net, self.shared_opt, tokens, targets, self.hidden,
                                          arch, self.s.model.grad_clip)
        elapsed = max(time.perf_counter() - started, 1e-9)
        self.shared_step += 1
        if not self._check_finite(finite, "shared", epoch, arch):
            self.hidden = self.net.init_hidden(self.s.model.batch_size)  # the state may be what overflowed
            return float("nan")
        self.hidden = hidden  # bounded already: the cell clips every step's state (model.max_hidden_norm)
        self.train_cursor += tokens.shape[0]
        self.record(SharedStep(epoch=epoch, step=self.shared_step, loss=loss, ppl=_safe_exp(loss),
                               lr=self.shared_opt.param_groups[0]["lr"],
                               tokens_per_s=tokens.numel() / elapsed))
        return loss

    def _reward_ppl(self, arch: Architecture) -> float:
        """Perplexity on one validation minibatch, cycling through the validation data."""
        if self.valid_cursor + 2 > self.valid_data.shape[0]:
            self.valid_cursor = 0
        ppl = self.net.perplexity(arch, self.valid_data, self.s.model.bptt, max_batches=1,
                                  start=self.valid_cursor)
        return ppl

    def _controller_step(self, epoch: int) -> tuple[float, float]:
        c = self.s.ctrl
        train = self.s.controller != "random"
        with torch.set_grad_enabled(train):
            out = self.ctrl.sample(c.batch_size, generator=self.sample_gen)
        archs = out.architectures()
        # an architecture whose forward overflows is as bad as it gets: reward 0, not a skipped step
        ppls = np.nan_to_num(np.array([self._reward_ppl(arch) for arch in archs]), nan=np.inf)
        self.valid_cursor += self.s.model.bptt
        rewards = c.reward_c / ppls
        reward = float(rewards.mean())
        baseline = reward if self.baseline is None else self.baseline
        advantage = torch.tensor(rewards - baseline, dtype=torch.float32, device=self.device)
        entropy = out.entropies.sum(dim=1).mean()  # kept in the graph: the entropy bonus needs its gradient
        policy_loss = -(out.log_probs.sum(dim=1) * advantage).mean()
        supervised = None
        loss = policy_loss - c.entropy_weight * entropy
        if train and self.s.controller == "supervised" and self.buffer.supervised_active(epoch):
            sup = self.ctrl.supervised_loss(self.buffer.sample(self.s.buffer.supervised_batch).to(self.device),
                                            reduction=self.s.buffer.supervised_reduction)
            supervised = float(sup.detach())
            loss = loss + self.s.buffer.supervised_weight * sup
        self.ctrl_step += 1
        finite = math.isfinite(float(loss.detach()))
        if not self._check_finite(finite, "controller", epoch, archs[0]):
            return float("nan"), float(entropy.detach())
        if train:
            self.ctrl_opt.zero_grad(set_to_none=True)
            loss.backward()
            self.ctrl_opt.step()
        self.baseline = c.baseline_decay * baseline + (1 - c.baseline_decay) * reward
        self.record(ControllerStep(
            epoch=epoch, step=self.ctrl_step, reward=reward, baseline=baseline,
            advantage=float(advantage.mean()), entropy=float(entropy.detach()),
            policy_loss=float(policy_loss.detach()),
            supervised_loss=supervised, sample_ppl=float(ppls.mean())))
        if self.ctrl_step % self.s.train.probe_every == 0:
            self._probe(epoch)
        return reward, float(entropy.detach())

    def _update_buffer(self, epoch: int) -> None:
        """The memory buffer's per-epoch update (supervised only), sampling with the current controller."""
        if self.s.controller != "supervised":
            return

        def sample(k: int) -> torch.Tensor:
            with torch.no_grad():
                return self.ctrl.sample(k, generator=self.sample_gen).decisions

        added, replaced = self.buffer.update(epoch, sample)
        self.record(BufferFill(epoch=epoch, size=self.buffer.size, capacity=self.buffer.capacity,
                               added=added, replaced=replaced, phase=self.buffer.phase(epoch),
                               supervised=self.buffer.supervised_active(epoch)))

    def _check_finite(self, finite: bool, where: str, epoch: int, arch: Architecture) -> bool:
        """Record a non-finite loss and skip the step; too many in a row (of one kind) end the run."""
        if finite:
            self.nonfinite[where] = 0
            return True
        self.nonfinite[where] += 1
        count = self.nonfinite[where]
        self.record(Warning(kind="nonfinite_loss", epoch=epoch,
                            message=f"non-finite {where} loss on {arch.to_text()} ({count} in a row); step skipped"))
        if count >= self.s.train.max_nonfinite:
            raise TrainingFailed(f"{count} non-finite {where} losses in a row at epoch {epoch}; "
                                 f"stopped with the last checkpoint intact")
        return False

    # -- probes, validation, derivation ---------------------------------------------------
    def _probe(self, epoch: int) -> None:
        """A fresh probe set: the data behind the live Fig. 1/3/4 and the rolling Table 1.

        The cheap measures run on every probe; every ``perf_every``-th probe also scores each
        architecture (the performance column) and computes the costly GEDs of ``live_ged``.
        """
        t = self.s.train
        self.probes += 1
        with torch.no_grad():
            out = self.ctrl.sample(t.probe_size, generator=self.probe_gen, mode=t.probe_mode, state=t.probe_state)
        archs = out.architectures()
        probs = out.probs().cpu().numpy().astype(np.float32)
        hidden = out.hidden.cpu().numpy().astype(np.float32)
        self.record(Probe(epoch=epoch, step=self.ctrl_step, archs=[a.to_text() for a in archs],
                          probs=probs, hidden=hidden, mode=t.probe_mode, state=t.probe_state))
        ppl, measures = None, diagnostics.CHEAP_MEASURES
        if self.probes % t.perf_every == 0:
            ppl = np.array([self.net.perplexity(a, self.valid_data, self.s.model.bptt,
                                                max_batches=t.perf_batches) for a in archs])
            measures += tuple(f"ged_{reading}" for reading in live_ged_readings(t.live_ged))
        analysis = diagnostics.analyze_probe(archs, probs, hidden, self.ctrl.sizes, ppl=ppl, measures=measures)
        self.record(Diagnostics(epoch=epoch, step=self.ctrl_step, n=analysis.n,
                                spearman=analysis.spearman, collapse_index=analysis.collapse_index,
                                ppl=None if ppl is None else ppl.astype(np.float64)))

    def _validate(self, epoch: int) -> float:
        arch = self.ctrl.greedy()
        ppl = self._valid_ppl(arch)
        self._note_best(ppl, arch)
        self.record(Validation(epoch=epoch, ppl=ppl, arch=arch.to_text()))
        return ppl

    def _derive(self, epoch: int) -> None:
        """Sample candidates, score each on a few validation minibatches, keep the best."""
        t = self.s.train
        candidates = self._sample(t.derive_samples)
        scores = [self.net.perplexity(a, self.valid_data, self.s.model.bptt, max_batches=t.derive_batches)
                  for a in candidates]
        best = candidates[int(np.nanargmin(scores))] if np.isfinite(scores).any() else candidates[0]
        ppl = self._valid_ppl(best)
        self._note_best(ppl, best)
        self.record(Derived(epoch=epoch, arch=best.to_text(), ppl=ppl, candidates=len(candidates),
                            best_ppl=self.best_ppl if self.best_ppl is not None else ppl,
                            best_arch=self.best_arch or best.to_text()))

    def _valid_ppl(self, arch: Architecture) -> float:
        """Perplexity on the validation set (its first ``train.valid_batches`` minibatches if set)."""
        return self.net.perplexity(arch, self.valid_data, self.s.model.bptt,
                                   max_batches=self.s.train.valid_batches or None)

    def _note_best(self, ppl: float, arch: Architecture) -> None:
        if math.isfinite(ppl) and (self.best_ppl is None or ppl < self.best_ppl):
            self.best_ppl, self.best_arch = ppl, arch.to_text()

    # -- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "settings": self.s.to_dict(),
            "position": vars(self.pos).copy(),
            "supernet": self.net.state_dict(),
            "controller": self.ctrl.state_dict(),
            "shared_opt": self.shared_opt.state_dict(),
            "ctrl_opt": self.ctrl_opt.state_dict(),
            "buffer": self.buffer.state_dict(),
            "baseline": self.baseline,
            "rng": {"torch": torch.get_rng_state(), "sample": self.sample_gen.get_state(),
                    "probe": self.probe_gen.get_state(),
                    "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else []},
            "cursor": {"train": self.train_cursor, "valid": self.valid_cursor},
            "hidden": self.hidden.detach().cpu(),
            "counters": {"shared_step": self.shared_step, "ctrl_step": self.ctrl_step, "probes": self.probes},
            "best": {"ppl": self.best_ppl, "arch": self.best_arch},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pos = Position(**state["position"])
        self.net.load_state_dict(state["supernet"])
        self.ctrl.load_state_dict(state["controller"])
        self.shared_opt.load_state_dict(state["shared_opt"])
        self.ctrl_opt.load_state_dict(state["ctrl_opt"])
        self.buffer.load_state_dict(state["buffer"])
        self.baseline = state["baseline"]
        rng = state["rng"]
        torch.set_rng_state(rng["torch"])
        self.sample_gen.set_state(rng["sample"])
        self.probe_gen.set_state(rng["probe"])
        if rng.get("cuda") and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(rng["cuda"])
        self.train_cursor, self.valid_cursor = state["cursor"]["train"], state["cursor"]["valid"]
        self.hidden = state["hidden"].to(self.device)
        counters = state["counters"]
        self.shared_step, self.ctrl_step, self.probes = counters["shared_step"], counters["ctrl_step"], counters["probes"]
        self.best_ppl, self.best_arch = state["best"]["ppl"], state["best"]["arch"]

    def _checkpoint(self, name: str, kind: str, epoch: int) -> None:
        path = checkpoints.save(self.session, self.state_dict(), name, keep_epochs=self.s.train.keep_checkpoints)
        self.record.writer.sync()
        self.record(Checkpoint(epoch=epoch, path=str(path.relative_to(self.session.path)), kind=kind))
        self._last_checkpoint = time.monotonic()

    def _maybe_checkpoint(self, epoch: int) -> None:
        """A mid-epoch checkpoint every ``train.checkpoint_every_s`` seconds: a kill loses minutes, not an epoch."""
        every = self.s.train.checkpoint_every_s
        if every > 0 and time.monotonic() - self._last_checkpoint >= every:
            self._checkpoint(TIMED_CHECKPOINT, "timed", epoch)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _log_warnings(writer: LogWriter) -> list[tuple[str, str]]:
    """What a reopened log's writer found: the tail it set aside and the damage left in place."""
    out = []
    if writer.set_aside is not None:
        out.append(f"events.log: {writer.set_aside.describe()}")
    spans = writer.damage
    for span in spans[:MAX_DAMAGE_WARNINGS]:
        out.append(f"events.log: damaged {span.describe()}; left in place (readers skip it)")
    if len(spans) > MAX_DAMAGE_WARNINGS:
        out.append(f"events.log: {len(spans) - MAX_DAMAGE_WARNINGS} more damaged spans left in place")
    return [("log_damaged", message) for message in out]


def _finite_mean(values: list[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def _safe_exp(x: float) -> float:
    return math.exp(min(x, 700.0)) if math.isfinite(x) else float("nan")


def versions() -> dict[str, str]:
    import platform

    from . import __version__

    return {"enas_tui": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


# -- starting and resuming sessions ---------------------------------------------------------------
def session_meta(settings: Settings, command: list[str], started: float | None = None) -> dict[str, Any]:
    """meta.json for a new session (create_session fills in its id)."""
    return {"controller": settings.controller, "preset": settings.preset,
            "seed": settings.seed, "settings": settings.to_dict(), "versions": versions(),
            "host": socket.gethostname(), "pid": os.getpid(),
            "started": time.time() if started is None else started, "command": command}


def new_run(settings: Settings, session: Session, corpus: Corpus, listeners: list[Listener],
            command: list[str] | None = None) -> Trainer:
    """A trainer for a fresh session folder, with its meta written and its log open."""
    device = pick_device(settings.device)
    if not session.meta_path.exists():  # create_session(meta=...) has written it already
        session.write_meta({**session_meta(settings, command or []), "id": session.id})
    trainer = Trainer(settings, corpus, session, Recorder(LogWriter(session.log_path), listeners), device)
    return trainer


def recorded_settings(session: Session) -> tuple[dict[str, Any], Settings]:
    """(meta, settings) of a session: meta.json's, else the settings its log's session_start recorded."""
    try:
        meta = session.meta()
        settings = _checked_settings(meta.get("settings"), "meta.json")
        if not is_time(meta.get("started")):  # e.g. NaN: the rewritten meta.json must be valid JSON
            first = read_first(session.log_path) if session.log_path.exists() else None
            meta["started"] = first.t if first is not None and is_time(first.t) else time.time()
        return meta, settings
    except SessionError as exc:
        problem = str(exc).removeprefix(f"session {session.id}: ")
    first = read_first(session.log_path) if session.log_path.exists() else None
    if not isinstance(first, SessionStart):
        raise SessionError(f"session {session.id}: {problem}, and its log has no session_start to "
                           f"recover the settings from")
    settings = _checked_settings(first.settings, "the log's session_start")
    meta = {**session_meta(settings, [], started=first.t), "id": session.id}
    return meta, settings


def _checked_settings(data: Any, where: str) -> Settings:
    from .config import SettingsError, validate

    try:
        settings = Settings.from_dict(data)
        validate(settings)
    except (SettingsError, TypeError, AttributeError, ValueError) as exc:
        raise SessionError(f"the settings in {where} are unusable ({_one_line(exc)})") from None
    return settings


def resume_run(session: Session, corpus_loader: Callable[[Settings], Corpus], listeners: list[Listener],
               epochs: int | None = None, device: str | None = None,
               command: list[str] | None = None) -> Trainer:
    """A trainer restored from the session's latest checkpoint; the log continues where it ends.

    A session with no checkpoint (killed before its first) starts again from the beginning with
    the same settings and seed, appending to the same log (``resumed_from="start"``, a warning).
    """
    meta, settings = recorded_settings(session)
    if epochs is not None:
        settings.train.epochs = epochs
    if device is not None:
        settings.device = device
    torch_device = pick_device(settings.device)
    path, state, problems = _latest_state(session)
    corpus = corpus_loader(settings)
    resumed_from = path.name if path is not None else "start"
    meta.update(pid=os.getpid(), host=socket.gethostname(), settings=settings.to_dict(),
                resumed=[*meta.get("resumed", []), {"at": time.time(), "checkpoint": resumed_from,
                                                     "command": command or []}])
    writer = LogWriter(session.log_path)  # a log that cannot be continued fails before meta.json changes
    try:
        session.write_meta(meta)
        trainer = Trainer(settings, corpus, session, Recorder(writer, listeners), torch_device)
    except BaseException:
        writer.close()
        raise
    warnings = [("checkpoint_unreadable", problem) for problem in problems]
    if state is not None:
        trainer.load_state_dict(state)
    else:
        warnings.append(("restarted", "no checkpoint to resume from: started again from the beginning "
                                      "with the same settings and seed"))
    trainer.resumed_from = resumed_from
    trainer._start_warnings = warnings
    return trainer


def _latest_state(session: Session) -> tuple[Any, dict[str, Any] | None, list[str]]:
    """(path, state, problems) of the newest checkpoint that loads: LATEST, else the newest epoch one."""
    problems: list[str] = []
    candidates = [session.latest_checkpoint()]
    candidates += [session.epoch_checkpoint(e) for e in reversed(session.checkpoint_epochs())]
    seen = set()
    for path in candidates:
        if path is None or path in seen:
            continue
        seen.add(path)
        try:
            return path, checkpoints.load(path, map_location="cpu"), problems
        except CheckpointError as exc:
            problems.append(f"{exc}; trying an older one")
    if seen:
        raise CheckpointError(f"session {session.id}: no checkpoint loads ({problems[-1].removesuffix('; trying an older one')})")
    return None, None, problems
