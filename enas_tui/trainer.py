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
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from . import diagnostics
from .config import Settings, live_ged_readings, validate
from .controller import Controller
from .data import Corpus, batchify
from .events import (
    BufferFill, ControllerStep, Derived, Diagnostics, EpochEnd, EpochStart, Probe, SessionStart, SharedStep,
    UntrainedProbe, Validation, Warning,
)
from .memory_buffer import MemoryBuffer
from .search_space import Architecture
from .session_log import LogWriter
from .session_run import (  # noqa: F401 - DeviceError, Listener, TrainingFailed: this module's API too
    DeviceError, Listener, Phase, Recorder, SessionRun, TrainingFailed, build_run, pick_device, resume_session,
    run_meta, versions,
)
from .sessions import Session
from .supernet import SuperNet, get_batch, train_step

# Shared steps whose losses are read back from the device (and recorded) together: at most this
# many, or this many seconds' worth. A read waits for the device's queue to drain, so it is kept
# off the per-step path; on the CPU, where nothing is queued, it only batches the bookkeeping.
SYNC_STEPS = 32
SYNC_SECONDS = 0.5


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


class Trainer(SessionRun):
    """Runs one session's search from a position to the last epoch."""

    PHASES = {
        "setup": Phase("setting up", "model.hidden (the shared weights are num_nodes*(num_nodes-1)/2 x hidden "
                                     "x 2*hidden)"),
        "buffer": Phase("the memory buffer's update", "buffer.add_per_epoch"),
        "shared": Phase("a shared step", "model.batch_size, model.bptt or model.hidden"),
        "reward": Phase("a controller step's reward", "model.eval_batch_size or model.hidden"),
        "supervised": Phase("the supervised loss", "buffer.supervised_batch"),
        "controller": Phase("a controller step", "ctrl.batch_size"),
        "probe": Phase("a probe", "train.probe_size (or model.eval_batch_size for its performance column)"),
        "validation": Phase("validation", "model.eval_batch_size or model.hidden"),
        "derivation": Phase("derivation", "train.derive_samples or model.eval_batch_size"),
    }

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
        self._pending: list[PendingStep] = []  # shared steps run, not yet read back and recorded
        self._window_start = time.perf_counter()  # when the first pending step began
        self._epoch_losses: list[float] = []  # this epoch's shared losses since the run (re)started
        self._init_run()

    # -- schedule -------------------------------------------------------------------------
    @property
    def shared_steps_per_epoch(self) -> int:
        chunks = max(1, (self.train_data.shape[0] - 1) // self.s.model.bptt)
        return self.s.train.shared_steps_per_epoch or chunks

    @property
    def ctrl_steps_per_epoch(self) -> int:
        return self.s.ctrl.steps_per_epoch

    # -- the run (SessionRun) -------------------------------------------------------------
    def _start_event(self) -> SessionStart:
        return SessionStart(
            session_id=self.session.id, controller=self.s.controller, seed=self.s.seed,
            settings=self.s.to_dict(), num_nodes=self.s.model.num_nodes,
            decision_sizes=list(self.ctrl.sizes), device=str(self.device), pid=os.getpid(),
            host=socket.gethostname(), versions=versions(), resumed_from=self.resumed_from,
        )

    def _complete(self) -> str:
        return self._finish("finished", "search finished")

    def _end_fields(self) -> dict[str, Any]:
        return {"best_ppl": self.best_ppl, "best_arch": self.best_arch}

    def _start(self) -> None:
        super()._start()
        if self.ctrl_step == 0:  # no update yet (a new run, or one resumed before its first)
            self._probe_untrained()

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
        self._record_pending()
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
        self._epoch_checkpoint(epoch)
        self.session.write_status(epoch=epoch, best_ppl=self.best_ppl, best_arch=self.best_arch)
        return True

    # -- steps ----------------------------------------------------------------------------
    def _sample(self, n: int) -> list[Architecture]:
        with torch.no_grad():
            return self.ctrl.sample(n, generator=self.sample_gen).architectures()

    def _shared_step(self, epoch: int) -> None:
        """Run one shared step; it is recorded later, with others (``_record_pending``).

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
            self._record_pending()

    def _record_pending(self) -> None:
        """Read the pending shared steps' losses back in one transfer and record them in order; a
        non-finite one is a warning (and counts towards ``train.max_nonfinite`` in a row). Also
        before every checkpoint and failure (SessionRun)."""
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


def stream_seed(seed: int, stream: str, position: tuple[int, ...]) -> int:
    """A seed for a random stream restarted at ``position`` of run ``seed`` (stable across runs)."""
    digest = hashlib.sha256(f"{seed}/{stream}/{position}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def _finite_mean(values: list[float]) -> float | None:
    finite = [v for v in values if math.isfinite(v)]
    return float(np.mean(finite)) if finite else None


def _safe_exp(x: float) -> float:
    return math.exp(min(x, 700.0)) if math.isfinite(x) else float("nan")


# -- starting and resuming sessions ---------------------------------------------------------------
def session_meta(settings: Settings, command: list[str], started: float | None = None) -> dict[str, Any]:
    """meta.json for a new search session (create_session fills in its id)."""
    return run_meta(settings, command, started, controller=settings.controller)


def new_run(settings: Settings, session: Session, corpus: Corpus, listeners: list[Listener],
            command: list[str] | None = None) -> Trainer:
    """A trainer for a fresh session folder, with its meta written and its log open."""
    device = pick_device(settings.device)
    if not session.meta_path.exists():  # create_session(meta=...) has written it already
        session.write_meta({**session_meta(settings, command or []), "id": session.id})
    return build_run(lambda record: Trainer(settings, corpus, session, record, device), LogWriter(session.log_path),
                     listeners, session, device, Trainer.PHASES["setup"])


def read_settings(data: Any) -> Settings:
    """A search's recorded settings dict as validated Settings (SettingsError, TypeError... if unusable)."""
    settings = Settings.from_dict(data)
    validate(settings)
    return settings


def resume_run(session: Session, corpus_loader: Callable[[Settings], Corpus], listeners: list[Listener],
               epochs: int | None = None, device: str | None = None,
               command: list[str] | None = None) -> Trainer:
    """A trainer restored from the session's latest checkpoint; the log continues where it ends
    (from the start, with a warning, when it has none: session_run.resume_session)."""

    def make(settings: Settings, corpus: Corpus, record: Recorder, torch_device: torch.device) -> Trainer:
        return Trainer(settings, corpus, session, record, torch_device)

    return resume_session(session, read_settings, make, corpus_loader, listeners, epochs, device, command,
                          setup=Trainer.PHASES["setup"])
