"""The ENAS search loop: shared-weight steps, controller steps, probes, derivation, checkpoints.

Each epoch: (1) the memory buffer's per-epoch update (supervised only); (2) shared-weight steps,
one sampled architecture per minibatch; (3) controller steps: REINFORCE on reward 80/ppl of each
sampled architecture on a validation minibatch, plus the buffer's supervised loss when it is on;
``random`` samples and scores the same way but never updates the controller; (4) validation of the
controller's most likely architecture, derivation every few epochs, a checkpoint. Every step is
recorded as an event; the trainer never waits for a viewer.

Nor does it wait for the device just to log. A shared step's loss and finite flag stay on the
device; they are read back in one transfer every ``SYNC_STEPS`` steps or ``SYNC_SECONDS`` (and
before anything else is recorded), and the steps' events are written then, in order, with the
exact per-step values and the tokens per second measured between two such reads, when the device
has really finished the work. Within a controller step one read fetches every logged value and
the finite check together. The reads that remain are the ones that decide what runs next: the
sampled architecture (the host lays out the cell) and the reward's perplexities.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
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
    Probe, SessionEnd, SessionStart, SharedStep, Validation, Warning,
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
# Shared steps whose losses are read back from the device (and recorded) together: at most this
# many, or this many seconds' worth. A read waits for the device's queue to drain, so it is kept
# off the per-step path; on the CPU, where nothing is queued, it only batches the bookkeeping.
SYNC_STEPS = 32
SYNC_SECONDS = 0.5
# What each phase of the run allocates on the device, so an out-of-memory error can name the
# settings that lower it.
MEMORY_SETTINGS = {
    "setup": "model.hidden (the shared weights are num_nodes*(num_nodes-1)/2 x hidden x 2*hidden)",
    "buffer": "buffer.add_per_epoch",
    "shared": "model.batch_size, model.bptt or model.hidden",
    "reward": "model.eval_batch_size or model.hidden",
    "supervised": "buffer.supervised_batch",
    "controller": "ctrl.batch_size",
    "probe": "train.probe_size (or model.eval_batch_size for its performance column)",
    "validation": "model.eval_batch_size or model.hidden",
    "derivation": "train.derive_samples or model.eval_batch_size",
}
PHASE_NAMES = {"setup": "setting up", "buffer": "the memory buffer's update", "shared": "a shared step",
               "reward": "a controller step's reward", "supervised": "the supervised loss",
               "controller": "a controller step", "probe": "a probe", "validation": "validation",
               "derivation": "derivation"}


@dataclass
class PendingStep:
    """A shared step run but not yet recorded: its loss and finite flag are still on the device."""

    epoch: int
    step: int
    arch: Architecture
    loss: torch.Tensor
    finite: torch.Tensor
    tokens: int
    lr: float


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
        self.phase = "setup"  # what the run is doing, for an out-of-memory message
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
        self._pending: list[PendingStep] = []  # shared steps run, not yet read back and recorded
        self._window_start = time.perf_counter()  # when the first pending step began
        self._epoch_losses: list[float] = []  # this epoch's shared losses since the run (re)started

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
        except (torch.OutOfMemoryError, RuntimeError) as exc:
            message = out_of_memory_message(exc, self.phase, self.device)
            if message is None:  # not an allocation failure: a bug or a dead device (below)
                self._fail(f"{type(exc).__name__}: {exc}".splitlines()[0])
                raise
            message += "; stopped with the last checkpoint intact"
            if self.device.type == "cuda":
                torch.cuda.empty_cache()  # room for the steps still pending to be read back
            self._fail(message)
            raise TrainingFailed(message) from None
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
        self._last_checkpoint = time.monotonic()

    def _run_epoch(self) -> bool:
        """One epoch from the current position; False when a stop was requested mid-way."""
        epoch, started = self.pos.epoch, time.perf_counter()
        if self.stop_requested:
            return False
        if not self.pos.begun and self.pos.shared_done == 0 and self.pos.ctrl_done == 0:
            self.record(EpochStart(epoch=epoch, epochs=self.s.train.epochs,
                                   shared_steps=self.shared_steps_per_epoch,
                                   controller_steps=self.ctrl_steps_per_epoch))
            self.phase = "buffer"
            self._update_buffer(epoch)
        self.pos.begun = True
        self._epoch_losses = []
        while self.pos.shared_done < self.shared_steps_per_epoch:
            if self.stop_requested:
                return False
            self._shared_step(epoch)
            self.pos.shared_done += 1
            self._maybe_checkpoint(epoch)
        self._record_shared_steps()
        losses = self._epoch_losses
        rewards, entropies = [], []
        while self.pos.ctrl_done < self.ctrl_steps_per_epoch:
            if self.stop_requested:
                return False
            reward, entropy = self._controller_step(epoch)
            rewards.append(reward)
            entropies.append(entropy)
            self.pos.ctrl_done += 1
            self._maybe_checkpoint(epoch)
        self.phase = "validation"
        valid_ppl = self._validate(epoch)
        if epoch % self.s.train.derive_every == 0 or epoch == self.s.train.epochs:
            self.phase = "derivation"
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
        try:  # the steps that ran before the failure are part of the record
            self._record_shared_steps()
        except Exception:  # noqa: BLE001 - a dead device, a full disk, a streak: the failure at hand wins
            self._pending.clear()
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

    def _shared_step(self, epoch: int) -> None:
        """Run one shared step; it is recorded later, with others (``_record_shared_steps``).

        A non-finite step skips its minibatch and starts the next from a zero state (the state may
        be what overflowed), decided on the device, so nothing here waits for it.
        """
        self.phase = "shared"
        bptt = self.s.model.bptt
        if not self._pending:
            self._window_start = time.perf_counter()
        if self.train_cursor + 2 > self.train_data.shape[0]:
            self.train_cursor, self.hidden = 0, self.net.init_hidden(self.s.model.batch_size)
        tokens, targets = get_batch(self.train_data, self.train_cursor, bptt)
        arch = self._sample(1)[0]
        self.net.train()
        loss, hidden, finite = train_step(self.net, self.shared_opt, tokens, targets, self.hidden,
                                          arch, self.s.model.grad_clip)
        self.shared_step += 1
        # bounded already when finite: the cell clips every step's state (model.max_hidden_norm)
        self.hidden = torch.where(finite, hidden, torch.zeros_like(hidden))
        self.train_cursor += tokens.shape[0]
        self._pending.append(PendingStep(epoch=epoch, step=self.shared_step, arch=arch, loss=loss,
                                         finite=finite, tokens=tokens.numel(),
                                         lr=self.shared_opt.param_groups[0]["lr"]))
        if len(self._pending) >= SYNC_STEPS or time.perf_counter() - self._window_start >= SYNC_SECONDS:
            self._record_shared_steps()

    def _record_shared_steps(self) -> None:
        """Read the pending steps' losses back in one transfer and record them in order; a
        non-finite one is a warning (and counts towards ``train.max_nonfinite`` in a row)."""
        if not self._pending:
            return
        pending, self._pending = self._pending, []
        values = torch.stack([torch.stack([p.loss.float() for p in pending]),
                              torch.stack([p.finite for p in pending]).float()]).tolist()  # waits for the device
        rate = sum(p.tokens for p in pending) / max(time.perf_counter() - self._window_start, 1e-9)
        for p, loss, finite in zip(pending, *values):
            if not self._check_finite(bool(finite), "shared", p.epoch, p.arch):
                self._epoch_losses.append(float("nan"))
                continue
            self._epoch_losses.append(loss)
            self.record(SharedStep(epoch=p.epoch, step=p.step, loss=loss, ppl=_safe_exp(loss), lr=p.lr,
                                   tokens_per_s=rate))

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
        self.phase = "controller"
        with torch.set_grad_enabled(train):
            out = self.ctrl.sample(c.batch_size, generator=self.sample_gen)
        archs = out.architectures()
        self.phase = "reward"
        # an architecture whose forward overflows is as bad as it gets: reward 0, not a skipped step
        ppls = np.nan_to_num(np.array([self._reward_ppl(arch) for arch in archs]), nan=np.inf)
        self.valid_cursor += self.s.model.bptt
        rewards = c.reward_c / ppls
        reward = float(rewards.mean())
        baseline = reward if self.baseline is None else self.baseline
        advantage = torch.tensor(rewards - baseline, dtype=torch.float32, device=self.device)
        entropy = out.entropies.sum(dim=1).mean()  # kept in the graph: the entropy bonus needs its gradient
        policy_loss = -(out.log_probs.sum(dim=1) * advantage).mean()
        loss = policy_loss - c.entropy_weight * entropy
        logged = [loss, entropy, policy_loss, advantage.mean()]
        if train and self.s.controller == "supervised" and self.buffer.supervised_active(epoch):
            self.phase = "supervised"
            sup = self.ctrl.supervised_loss(self.buffer.sample(self.s.buffer.supervised_batch).to(self.device),
                                            reduction=self.s.buffer.supervised_reduction)
            loss = loss + self.s.buffer.supervised_weight * sup
            logged[0] = loss
            logged.append(sup)
        self.phase = "controller"
        self.ctrl_step += 1
        # one read for the finite check and every logged value (each float() would be a device sync)
        loss_value, entropy_value, policy_value, advantage_value, *supervised = \
            torch.stack([x.detach() for x in logged]).tolist()
        if not self._check_finite(math.isfinite(loss_value), "controller", epoch, archs[0]):
            return float("nan"), entropy_value
        if train:
            self.ctrl_opt.zero_grad(set_to_none=True)
            loss.backward()
            self.ctrl_opt.step()
        self.baseline = c.baseline_decay * baseline + (1 - c.baseline_decay) * reward
        self.record(ControllerStep(
            epoch=epoch, step=self.ctrl_step, reward=reward, baseline=baseline, advantage=advantage_value,
            entropy=entropy_value, policy_loss=policy_value,
            supervised_loss=supervised[0] if supervised else None, sample_ppl=float(ppls.mean())))
        if self.ctrl_step % self.s.train.probe_every == 0:
            self.phase = "probe"
            self._probe(epoch)
        return reward, entropy_value

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
                    "probe": self.probe_gen.get_state(), "device": self.device.type,
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
        self.train_cursor, self.valid_cursor = state["cursor"]["train"], state["cursor"]["valid"]
        self.hidden = state["hidden"].to(self.device)
        counters = state["counters"]
        self.shared_step, self.ctrl_step, self.probes = counters["shared_step"], counters["ctrl_step"], counters["probes"]
        self.best_ppl, self.best_arch = state["best"]["ppl"], state["best"]["arch"]
        torch.set_rng_state(state["rng"]["torch"])
        moved = self._restore_device_rng(state["rng"])
        if moved is not None:
            self._start_warnings.append(("device_changed", moved))

    def _restore_device_rng(self, rng: dict[str, Any]) -> str | None:
        """Restore the sampling generators and the CUDA generators; None, or a warning when the
        checkpoint was written on another kind of device.

        A CPU generator's state (Mersenne Twister) and a CUDA one's (Philox seed and offset) cannot
        stand in for each other, so a run moved between the CPU and a GPU reseeds its samplers from
        its seed and position: it goes on as a different (still reproducible) draw. Its weights,
        optimiser state, position and carried state are restored exactly.
        """
        saved = rng.get("device")
        if saved in (None, self.device.type):  # None: written before devices were recorded
            try:
                self.sample_gen.set_state(rng["sample"])
                self.probe_gen.set_state(rng["probe"])
                if self.device.type == "cuda":
                    for index, cuda_state in enumerate(rng.get("cuda", [])[:torch.cuda.device_count()]):
                        torch.cuda.set_rng_state(cuda_state, index)
                return None
            except RuntimeError:  # a state of the wrong size: another kind of device after all
                pass
        position = (self.shared_step, self.ctrl_step, self.probes)
        self.sample_gen.manual_seed(stream_seed(self.s.seed, "sample", position))
        self.probe_gen.manual_seed(stream_seed(self.s.seed, "probe", position))
        return (f"checkpoint written on {saved or 'another kind of device'}, resumed on {self.device.type}: "
                f"the architecture sampling was reseeded, so the run goes on as a different draw")

    def _checkpoint(self, name: str, kind: str, epoch: int) -> None:
        self._record_shared_steps()  # the record reaches as far as the checkpoint does
        path = checkpoints.save(self.session, self.state_dict(), name, keep_epochs=self.s.train.keep_checkpoints)
        self.record.writer.sync()
        self.record(Checkpoint(epoch=epoch, path=str(path.relative_to(self.session.path)), kind=kind))
        self._last_checkpoint = time.monotonic()

    def _maybe_checkpoint(self, epoch: int) -> None:
        """A mid-epoch checkpoint every ``train.checkpoint_every_s`` seconds: a kill loses minutes, not an epoch."""
        every = self.s.train.checkpoint_every_s
        if every > 0 and time.monotonic() - self._last_checkpoint >= every:
            self._checkpoint(TIMED_CHECKPOINT, "timed", epoch)


def stream_seed(seed: int, stream: str, position: tuple[int, ...]) -> int:
    """A seed for a random stream restarted at ``position`` of run ``seed`` (stable across runs)."""
    digest = hashlib.sha256(f"{seed}/{stream}/{position}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def out_of_memory_message(exc: BaseException, phase: str, device: torch.device) -> str | None:
    """One line for an allocation failure, naming the settings that lower what ``phase`` allocates;
    None when ``exc`` is not one. CUDA raises torch.OutOfMemoryError; the CPU allocator a plain
    RuntimeError that says it cannot allocate memory."""
    text = str(exc)
    if isinstance(exc, torch.OutOfMemoryError):
        found = re.search(r"[Tt]ried to allocate ([\d.]+ [KMGT]?i?B)", text)
        size = found.group(1) if found else None
    elif "can't allocate memory" in text or "not enough memory" in text:
        found = re.search(r"tried to allocate (\d+) bytes", text)
        size = _bytes(int(found.group(1))) if found else None
    else:
        return None
    tried = f" (tried to allocate {size})" if size else ""
    return (f"out of memory on {device} in {PHASE_NAMES.get(phase, phase)}{tried}: "
            f"lower {MEMORY_SETTINGS.get(phase, 'model.hidden or model.batch_size')}")


def _bytes(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} TiB"


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
    return _build_trainer(settings, corpus, session, LogWriter(session.log_path), listeners, device)


def _build_trainer(settings: Settings, corpus: Corpus, session: Session, writer: LogWriter,
                   listeners: list[Listener], device: torch.device) -> Trainer:
    """The Trainer, its log closed again if it cannot be built; running out of memory while
    building it (the shared weights) is TrainingFailed with a one-line message, status "failed"."""
    try:
        return Trainer(settings, corpus, session, Recorder(writer, listeners), device)
    except BaseException as exc:
        writer.close()
        message = out_of_memory_message(exc, "setup", device) if isinstance(exc, RuntimeError) else None
        if message is None:
            raise
        session.write_status(status="failed", message=message)
        raise TrainingFailed(message) from None


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
    except BaseException:
        writer.close()
        raise
    trainer = _build_trainer(settings, corpus, session, writer, listeners, torch_device)
    warnings = [("checkpoint_unreadable", problem) for problem in problems]
    if state is not None:
        trainer.load_state_dict(state)
    else:
        warnings.append(("restarted", "no checkpoint to resume from: started again from the beginning "
                                      "with the same settings and seed"))
    trainer.resumed_from = resumed_from
    trainer._start_warnings = warnings + trainer._start_warnings  # the latter: a change of device
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
