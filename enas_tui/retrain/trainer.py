"""The retrain loop: one cell trained from scratch, recorded as a session like any search.

Each epoch: SGD steps on the standalone model (learning rate from the schedule, gradients clipped,
every time step's state bounded by ``model.max_hidden_norm`` inside the cell, as in the search),
then a check on the whole validation split (with NT-ASGD's averaged weights once it has switched).
The weights that score best are kept in ``checkpoints/best.pt``; at the end they are evaluated on the
whole test split. Every step, check, switch and checkpoint is an event in the session log, so the
headless view, the dashboard and the reports read a retrain the way they read a search; stops,
failures, timed checkpoints and resumes are the search's (``session_run``).
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from .. import checkpoints
from ..checkpoints import CheckpointError
from ..config import Settings
from ..data import Corpus, batchify
from ..events import (
    AsgdSwitch, Checkpoint, EpochEnd, EpochStart, RetrainResult, SessionStart, SharedStep, Validation, Warning,
)
from ..search_space import Architecture, decision_sizes
from ..session_log import LogWriter
from ..session_run import (
    Listener, Phase, Recorder, SessionRun, TrainingFailed, build_run, pick_device, resume_session, run_meta,
    versions,
)
from ..sessions import Session
from ..supernet import SuperNet, get_batch, train_step
from .averaging import NTASGD
from .model import StandaloneModel, parameter_count
from .settings import KIND, RetrainSettings, learning_rate, read_settings
from .source import Source

BEST = "best.pt"


@dataclass
class Position:
    """Where the run is: the current epoch (from 1) and the steps already done in it."""

    epoch: int = 1
    steps_done: int = 0


@dataclass
class Best:
    """The best validation check so far; its weights are in checkpoints/best.pt."""

    epoch: int
    ppl: float
    averaged: bool


class Retrainer(SessionRun):
    """Trains one session's standalone model from a position to the last epoch, then tests it."""

    PHASES = {
        "setup": Phase("setting up", "model.hidden"),
        "step": Phase("a training step", "model.batch_size, model.bptt or model.hidden"),
        "validation": Phase("validation", "model.eval_batch_size or model.hidden"),
        "test": Phase("the test", "train.test_batch_size or model.hidden"),
    }

    def __init__(self, settings: RetrainSettings, corpus: Corpus, session: Session, record: Recorder,
                 device: torch.device, source: Source):
        self.s, self.session, self.record, self.device, self.source = settings, session, record, device, source
        if device.type == "cpu" and settings.train.threads > 0:
            torch.set_num_threads(settings.train.threads)
        torch.manual_seed(settings.seed)
        self.arch: Architecture = settings.architecture
        self.model = StandaloneModel(self.arch, corpus.vocab_size, settings.model).to(device)
        self.params = parameter_count(self.arch.num_nodes, settings.model.hidden, corpus.vocab_size)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=settings.model.lr,
                                         weight_decay=settings.train.weight_decay)
        self.asgd = NTASGD(list(self.model.parameters()), settings.train.nonmono)
        self.train_data = batchify(corpus.train, settings.model.batch_size).to(device)
        self.valid_data = batchify(corpus.valid, settings.model.eval_batch_size).to(device)
        self.test_data = batchify(corpus.test, settings.train.test_batch_size).to(device)
        self.pos = Position()
        self.cursor, self.step = 0, 0
        self.hidden = self.model.init_hidden(settings.model.batch_size)
        self.epoch_loss = [0.0, 0]  # sum and count of the current epoch's finite step losses
        self.best: Best | None = None
        self.nonfinite = 0
        self._init_run()

    @property
    def steps_per_epoch(self) -> int:
        chunks = max(1, (self.train_data.shape[0] - 1) // self.s.model.bptt)
        return self.s.train.steps_per_epoch or chunks

    # -- the run (SessionRun) -------------------------------------------------------------
    def _start_event(self) -> SessionStart:
        return SessionStart(
            session_id=self.session.id, controller=KIND, seed=self.s.seed, settings=self.s.to_dict(),
            num_nodes=self.arch.num_nodes, decision_sizes=decision_sizes(self.arch.num_nodes),
            device=str(self.device), pid=os.getpid(), host=socket.gethostname(), versions=versions(),
            resumed_from=self.resumed_from, kind=KIND, arch=self.s.arch, source=self.source.session)

    def _complete(self) -> str:
        self.phase = "test"
        result = self._test()
        return self._finish("finished", f"retrain finished: test ppl {result.test_ppl:.2f}",
                            test_ppl=_json_number(result.test_ppl), valid_ppl=_json_number(result.valid_ppl),
                            best_epoch=result.epoch)

    def _end_fields(self) -> dict[str, Any]:
        return {"best_ppl": self.best.ppl if self.best else None, "best_arch": self.s.arch}

    def _run_epoch(self) -> bool:
        """One epoch from the current position; False when a stop was requested mid-way."""
        epoch, started = self.pos.epoch, time.perf_counter()
        if self.stop_requested:
            return False
        if self.pos.steps_done == 0:
            self.record(EpochStart(epoch=epoch, epochs=self.s.train.epochs, shared_steps=self.steps_per_epoch,
                                   controller_steps=0))
            self.epoch_loss = [0.0, 0]
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.s, epoch)
        while self.pos.steps_done < self.steps_per_epoch:
            if self.stop_requested:
                return False
            self._step(epoch)
            self.pos.steps_done += 1
            self._maybe_checkpoint(epoch)
        self.phase = "validation"
        valid_ppl = self._validate(epoch)
        total, count = self.epoch_loss
        self.record(EpochEnd(epoch=epoch, train_ppl=_safe_exp(total / count) if count else float("nan"),
                             valid_ppl=valid_ppl, reward=None, entropy=None,
                             elapsed_s=time.perf_counter() - started))
        self.pos = Position(epoch + 1, 0)
        self._epoch_checkpoint(epoch)
        self.session.write_status(epoch=epoch, best_ppl=self.best.ppl if self.best else None)
        return True

    def _step(self, epoch: int) -> None:
        """One SGD step, read back and recorded at once (one read: the loss and the finite flag
        together). The retrain does not batch its reads as the search does: NT-ASGD folds only the
        applied steps into its mean, and with weight decay (the default) train_step decides a skip
        on the host anyway."""
        self.phase = "step"
        bptt, batch = self.s.model.bptt, self.s.model.batch_size
        if self.cursor + 2 > self.train_data.shape[0]:  # a new pass over the data starts from a zero state
            self.cursor, self.hidden = 0, self.model.init_hidden(batch)
        tokens, targets = get_batch(self.train_data, self.cursor, bptt)
        started = time.perf_counter()
        self.model.train()
        loss_t, hidden, finite_t = train_step(self.model, self.optimizer, tokens, targets, self.hidden, self.arch,
                                              self.s.model.grad_clip)
        loss, finite = torch.stack([loss_t.float(), finite_t.float()]).tolist()  # waits for the device
        elapsed = max(time.perf_counter() - started, 1e-9)
        self.step += 1
        self.cursor += tokens.shape[0]
        if not finite:
            self._nonfinite(epoch)
            self.hidden = self.model.init_hidden(batch)  # the state may be what overflowed
            return
        self.nonfinite = 0
        self.asgd.update()
        self.hidden = hidden  # bounded already: the cell clips every step's state (model.max_hidden_norm)
        self.epoch_loss[0] += loss
        self.epoch_loss[1] += 1
        self.record(SharedStep(epoch=epoch, step=self.step, loss=loss, ppl=_safe_exp(loss),
                               lr=self.optimizer.param_groups[0]["lr"], tokens_per_s=tokens.numel() / elapsed))

    def _nonfinite(self, epoch: int) -> None:
        """Record a skipped step; too many in a row end the run (the last checkpoint stays intact)."""
        self.nonfinite += 1
        self.record(Warning(kind="nonfinite_loss", epoch=epoch,
                            message=f"non-finite loss at step {self.step} ({self.nonfinite} in a row); step skipped"))
        if self.nonfinite >= self.s.train.max_nonfinite:
            raise TrainingFailed(f"{self.nonfinite} non-finite losses in a row at epoch {epoch}; "
                                 f"stopped with the last checkpoint intact")

    # -- evaluation -----------------------------------------------------------------------
    def _validate(self, epoch: int) -> float:
        """Whole-split validation (averaged weights once NT-ASGD is on); keeps the best weights."""
        averaged = self.asgd.active
        with self.asgd.averaged():
            ppl = self.model.perplexity(self.arch, self.valid_data, self.s.model.bptt)
            self.record(Validation(epoch=epoch, ppl=ppl, arch=self.s.arch, averaged=averaged))
            if math.isfinite(ppl) and (self.best is None or ppl < self.best.ppl):
                self.best = Best(epoch, ppl, averaged)
                self._save_best()
        reference = self.asgd.check(ppl)
        if reference is not None:
            self.record(AsgdSwitch(epoch=epoch, step=self.step, valid_ppl=ppl, reference_ppl=reference,
                                   nonmono=self.s.train.nonmono))
        return ppl

    def _save_best(self) -> None:
        best = self.best
        path = checkpoints.save(self.session, {"model": self.model.state_dict(), "epoch": best.epoch,
                                               "valid_ppl": best.ppl, "averaged": best.averaged},
                                BEST, latest=False)
        self.record(Checkpoint(epoch=best.epoch, path=str(path.relative_to(self.session.path)), kind="best"))

    def _test(self) -> RetrainResult:
        """The best validation weights (the current ones if no check was finite) on the test split.

        What best.pt says about itself is what is reported: after a kill between saving it and the
        next epoch checkpoint, it may be newer than the ``best`` a resume restored."""
        best = self.best
        if best is not None:
            state = checkpoints.load(self.session.checkpoint_dir / BEST, map_location=self.device)
            self.model.load_state_dict(state["model"])
            best = Best(state["epoch"], state["valid_ppl"], state["averaged"])
            test_ppl = self.model.perplexity(self.arch, self.test_data, self.s.model.bptt)
        else:
            with self.asgd.averaged():
                test_ppl = self.model.perplexity(self.arch, self.test_data, self.s.model.bptt)
        return self.record(RetrainResult(
            arch=self.s.arch, epoch=best.epoch if best else self.s.train.epochs,
            valid_ppl=best.ppl if best else float("nan"), test_ppl=test_ppl,
            averaged=best.averaged if best else self.asgd.active, params=self.params,
            search_ppl=self.source.search_ppl))

    # -- checkpoints ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "settings": self.s.to_dict(),
            "position": vars(self.pos).copy(),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "asgd": self.asgd.state_dict(),
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else []},
            "cursor": self.cursor,
            "step": self.step,
            "hidden": self.hidden.detach().cpu(),
            "epoch_loss": list(self.epoch_loss),
            "best": None if self.best is None else vars(self.best).copy(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.pos = Position(**state["position"])
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.asgd.load_state_dict(state["asgd"])
        torch.set_rng_state(state["rng"]["torch"])
        if state["rng"].get("cuda") and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(state["rng"]["cuda"])
        self.cursor, self.step = state["cursor"], state["step"]
        self.hidden = state["hidden"].to(self.device)
        self.epoch_loss = list(state["epoch_loss"])
        self.best = None if state["best"] is None else Best(**state["best"])


def _safe_exp(x: float) -> float:
    return math.exp(min(x, 700.0)) if math.isfinite(x) else float("nan")


def _json_number(x: float) -> float | None:
    """status.json holds strict JSON: a non-finite perplexity is written as null."""
    return x if math.isfinite(x) else None


# -- the search-phase perplexity of a cell ---------------------------------------------------
def search_phase_ppl(search: Session, arch: Architecture, corpus: Corpus, device: torch.device) -> float | None:
    """The supernet's perplexity of ``arch`` on the whole validation split, with the weights of the
    search's last epoch checkpoint (its end, for a finished search) and the search's own batch and
    BPTT: what the search believed this cell was worth. None when the search has no checkpoint that
    loads, or its vocabulary differs from ``corpus`` (the retrain reads another corpus)."""
    try:
        _, state = checkpoints.load_epoch(search, map_location="cpu")
    except CheckpointError:
        return None
    settings = Settings.from_dict(state["settings"])
    if state["supernet"]["encoder.weight"].shape[0] != corpus.vocab_size:
        return None
    net = SuperNet(corpus.vocab_size, settings.model)
    net.load_state_dict(state["supernet"])
    net = net.to(device)
    valid = batchify(corpus.valid, settings.model.eval_batch_size).to(device)
    return net.perplexity(arch, valid, settings.model.bptt)


# -- starting and resuming retrain sessions --------------------------------------------------
def retrain_meta(settings: RetrainSettings, source: Source, command: list[str]) -> dict[str, Any]:
    """meta.json for a new retrain session (create_session fills in its id)."""
    return run_meta(settings, command, kind=KIND, controller=KIND, source=source.to_dict())


def new_retrain(settings: RetrainSettings, session: Session, corpus: Corpus, listeners: list[Listener],
                source: Source, command: list[str] | None = None) -> Retrainer:
    """A retrainer for a fresh session folder, with its meta written and its log open."""
    device = pick_device(settings.device)
    if not session.meta_path.exists():  # create_session(meta=...) has written it already
        session.write_meta({**retrain_meta(settings, source, command or []), "id": session.id})
    return build_run(lambda record: Retrainer(settings, corpus, session, record, device, source),
                     LogWriter(session.log_path), listeners, session, device, Retrainer.PHASES["setup"])


def resume_retrain(session: Session, corpus_loader: Callable[[RetrainSettings], Corpus],
                   listeners: list[Listener], epochs: int | None = None, device: str | None = None,
                   command: list[str] | None = None) -> Retrainer:
    """A retrainer restored from the session's latest checkpoint; the log continues where it ends
    (from the start, with a warning, when it has none: session_run.resume_session)."""

    def make(settings: RetrainSettings, corpus: Corpus, record: Recorder, torch_device: torch.device) -> Retrainer:
        recorded = session.meta().get("source")  # meta.json as resume_session just rewrote it
        source = Source.from_dict({**recorded, "arch": settings.arch}) if isinstance(recorded, dict) else \
            Source(arch=settings.arch)
        return Retrainer(settings, corpus, session, record, torch_device, source)

    return resume_session(session, read_settings, make, corpus_loader, listeners, epochs, device, command,
                          setup=Retrainer.PHASES["setup"])
