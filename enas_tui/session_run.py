"""What every training run recorded as a session shares: the search's and the retrain's.

A run appends every event to the session log before any listener sees it (``Recorder``); stops
gracefully at a step boundary with a checkpoint; records a failure as far as the disk allows, so
status.json says "failed" even when the log can take no more; checkpoints at epoch ends and every
``train.checkpoint_every_s`` seconds; and resumes from the newest checkpoint that loads, or from the
start when none was written, continuing the same log. ``SessionRun`` holds that loop; a subclass
says how an epoch runs, what its session_start records and how it completes.

Running out of memory (on a GPU, or in the CPU's allocator) is a one-line failure that names the
settings to lower: a run keeps ``phase`` (what it is doing) and its ``PHASES`` say which settings
each phase's allocations grow with. A run that keeps work not yet recorded (values still on the
device) records it before every checkpoint and before a failure (``_record_pending``).
"""

from __future__ import annotations

import contextlib
import os
import platform
import re
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import numpy as np
import torch

from . import checkpoints
from .checkpoints import CheckpointError
from .events import Checkpoint, Error, Event, SessionEnd, SessionStart, Warning
from .session_log import LogError, LogWriter, read_first
from .sessions import RETRAIN, Session, SessionError, is_time, process_start_time

Listener = Callable[[Event], None]

# Writing the record failed (a full disk, a read-only folder): the run fails cleanly, not with a traceback.
RESOURCE_ERRORS = (OSError, LogError, CheckpointError, SessionError)
TIMED_CHECKPOINT = "timed.pt"
MAX_DAMAGE_WARNINGS = 5  # damaged spans of a resumed log listed one by one; the rest are counted


R = TypeVar("R")


@dataclass(frozen=True)
class Phase:
    """A part of a run, for an out-of-memory message: what it is called, and the settings that lower
    what it allocates on the device."""

    name: str
    lower: str


class TrainingFailed(Exception):
    """The run cannot go on (e.g. repeated non-finite losses); the last checkpoint is intact."""


class DeviceError(Exception):
    """A device that does not exist here (e.g. ``cuda`` without CUDA); one line for the user."""


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


class SessionRun(ABC):
    """A run from its position to its last epoch, recorded in ``session``.

    Subclasses set ``s`` (settings with ``train.epochs``, ``train.keep_checkpoints`` and
    ``train.checkpoint_every_s``), ``session``, ``record`` and ``pos`` (with ``epoch``), and
    implement ``_start_event``, ``_run_epoch``, ``_complete``, ``_end_fields`` and ``state_dict``.
    """

    s: Any
    session: Session
    record: Recorder
    device: torch.device
    pos: Any
    # phase -> what it is called and the settings that lower its allocations; "setup" is building the run
    PHASES: ClassVar[dict[str, Phase]] = {}

    def _init_run(self) -> None:
        self.phase = "setup"  # what the run is doing, for an out-of-memory message (a key of PHASES)
        self.stop_requested = False
        self.resumed_from: str | None = None
        self._last_checkpoint = time.monotonic()
        self._start_warnings: list[tuple[str, str]] = []  # (kind, message) recorded after session_start

    def request_stop(self) -> None:
        """Ask for a graceful stop at the next step boundary (Ctrl-C, SIGTERM, the dashboard)."""
        self.stop_requested = True

    # -- what a subclass says ---------------------------------------------------------------
    @abstractmethod
    def _start_event(self) -> SessionStart:
        """The session_start record of this process."""

    @abstractmethod
    def _run_epoch(self) -> bool:
        """One epoch from the current position; False when a stop was requested mid-way."""

    @abstractmethod
    def _complete(self) -> str:
        """After the last epoch: whatever the run does last, then ``_finish("finished", ...)``."""

    @abstractmethod
    def _end_fields(self) -> dict[str, Any]:
        """``best_ppl`` and ``best_arch`` for the session_end record and status.json."""

    @abstractmethod
    def state_dict(self) -> dict[str, Any]:
        """Everything a resume needs, for a checkpoint."""

    def _record_pending(self) -> None:
        """Record the work that ran but is not in the log yet (e.g. losses still on the device); called
        before every checkpoint, so the record reaches as far as the checkpoint does, and before a
        failure is recorded. Nothing by default."""

    # -- the loop ---------------------------------------------------------------------------
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
            return self._complete()
        except TrainingFailed as exc:
            self._fail(str(exc))
            raise
        except RESOURCE_ERRORS as exc:
            message = f"{one_line(exc)}; stopped with the last good checkpoint intact"
            self._fail(message)
            raise TrainingFailed(message) from None
        except Exception as exc:  # out of memory: one line; a bug or a dead device: a clear record, then loudly
            message = self._out_of_memory(exc)
            if message is None:
                self._fail(f"{type(exc).__name__}: {exc}".splitlines()[0])
                raise
            self._fail(message)
            raise TrainingFailed(message) from None
        finally:
            self.record.writer.close()

    def _out_of_memory(self, exc: BaseException) -> str | None:
        """The failure message when ``exc`` is an allocation failure (None when it is not)."""
        phase = self.PHASES.get(self.phase, Phase(self.phase, "model.hidden or model.batch_size"))
        message = out_of_memory_message(exc, phase, self.device)
        if message is None:
            return None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()  # room for the work still pending to be read back and recorded
        return message + "; stopped with the last checkpoint intact"

    def _start(self) -> None:
        self.session.write_status(status="running", pid=os.getpid(), pid_start=process_start_time(os.getpid()),
                                  host=socket.gethostname(), epoch=self.pos.epoch - 1, message="",
                                  **self._end_fields())
        self.record(self._start_event())
        for kind, message in self._start_warnings + log_warnings(self.record.writer):
            self.record(Warning(message=message, kind=kind, epoch=self.pos.epoch - 1))
        self._last_checkpoint = time.monotonic()

    def _finish(self, status: str, message: str, interrupt: bool = False, **status_fields: Any) -> str:
        """Record the end; ``epoch`` in the end record and status.json is the last epoch completed."""
        if interrupt:
            self._checkpoint("interrupt.pt", "interrupt", self.pos.epoch)
        completed, end = self.pos.epoch - 1, self._end_fields()
        self.record(SessionEnd(status=status, message=message, epoch=completed, **end))
        self.record.writer.sync()
        self.session.write_status(status=status, epoch=completed, message=message, **end, **status_fields)
        return status

    def _fail(self, message: str) -> None:
        """Record a failure as far as the disk allows: each write is tried even if one before failed,
        so status.json says "failed" even when the log can take no more."""
        # the work that ran before the failure is part of the record; if it cannot be read back or
        # written (a dead device, a full disk, the streak that failed the run), the failure at hand wins
        with contextlib.suppress(Exception):
            self._record_pending()
        completed, end = self.pos.epoch - 1, self._end_fields()
        record = SessionEnd(status="failed", message=message, epoch=completed, **end)
        for write in (lambda: self.record(Error(message=message, epoch=self.pos.epoch)),
                      lambda: self.record(record), self.record.writer.sync,
                      lambda: self.session.write_status(status="failed", epoch=completed, message=message, **end)):
            try:
                write()
            except RESOURCE_ERRORS:
                continue

    # -- checkpoints ------------------------------------------------------------------------
    def _checkpoint(self, name: str, kind: str, epoch: int) -> None:
        self._record_pending()  # the record reaches as far as the checkpoint does
        path = checkpoints.save(self.session, self.state_dict(), name, keep_epochs=self.s.train.keep_checkpoints)
        self.record.writer.sync()
        self.record(Checkpoint(epoch=epoch, path=str(path.relative_to(self.session.path)), kind=kind))
        self._last_checkpoint = time.monotonic()

    def _maybe_checkpoint(self, epoch: int) -> None:
        """A mid-epoch checkpoint every ``train.checkpoint_every_s`` seconds: a kill loses minutes, not an epoch."""
        every = self.s.train.checkpoint_every_s
        if every > 0 and time.monotonic() - self._last_checkpoint >= every:
            self._checkpoint(TIMED_CHECKPOINT, "timed", epoch)

    def _epoch_checkpoint(self, epoch: int) -> None:
        """The checkpoint of a completed epoch (it supersedes the epoch's timed one)."""
        self._checkpoint(f"epoch-{epoch:04d}.pt", "epoch", epoch)
        (self.session.checkpoint_dir / TIMED_CHECKPOINT).unlink(missing_ok=True)


def out_of_memory_message(exc: BaseException, phase: Phase, device: torch.device) -> str | None:
    """One line for an allocation failure in ``phase``, naming the settings that lower what it
    allocates; None when ``exc`` is not one. CUDA raises torch.OutOfMemoryError; the CPU allocator
    a plain RuntimeError that says it cannot allocate memory."""
    text = str(exc)
    if isinstance(exc, torch.OutOfMemoryError):
        found = re.search(r"[Tt]ried to allocate ([\d.]+ [KMGT]?i?B)", text)
        size = found.group(1) if found else None
    elif isinstance(exc, RuntimeError) and ("can't allocate memory" in text or "not enough memory" in text):
        found = re.search(r"tried to allocate (\d+) bytes", text)
        size = _bytes(int(found.group(1))) if found else None
    else:
        return None
    tried = f" (tried to allocate {size})" if size else ""
    return f"out of memory on {device} in {phase.name}{tried}: lower {phase.lower}"


def _bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} TiB"


def one_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def log_warnings(writer: LogWriter) -> list[tuple[str, str]]:
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


def versions() -> dict[str, str]:
    from . import __version__

    return {"enas_tui": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version()}


# -- starting and resuming sessions ---------------------------------------------------------------
def run_meta(settings: Any, command: list[str], started: float | None = None, **fields: Any) -> dict[str, Any]:
    """meta.json for a new session (create_session fills in its id): a search's or a retrain's
    ``settings``, plus ``fields`` (a search's controller; a retrain's kind and source)."""
    return {"preset": settings.preset, "seed": settings.seed, "settings": settings.to_dict(), "versions": versions(),
            "host": socket.gethostname(), "pid": os.getpid(),
            "started": time.time() if started is None else started, "command": command, **fields}


def start_fields(start: SessionStart) -> dict[str, Any]:
    """The meta.json fields a session_start record restates (for a session whose meta.json is lost)."""
    if start.kind == RETRAIN:
        return {"kind": RETRAIN, "controller": RETRAIN, "source": {"arch": start.arch, "session": start.source}}
    return {"controller": start.controller}


def build_run(make: Callable[[Recorder], R], writer: LogWriter, listeners: list[Listener], session: Session,
              device: torch.device, setup: Phase) -> R:
    """The run ``make`` builds on ``writer``'s log, the log closed again if it cannot be built;
    running out of memory while building it (its weights, its data on the device) is TrainingFailed
    with one line naming ``setup``'s settings, status "failed"."""
    try:
        return make(Recorder(writer, listeners))
    except BaseException as exc:
        writer.close()
        message = out_of_memory_message(exc, setup, device)
        if message is None:
            raise
        session.write_status(status="failed", message=message)
        raise TrainingFailed(message) from None


SettingsReader = Callable[[Any], Any]  # a settings dict -> validated settings (raises on bad input)


def recorded_settings(session: Session, read: SettingsReader) -> tuple[dict[str, Any], Any]:
    """(meta, settings) of a session: meta.json's, else the settings its log's session_start recorded."""
    try:
        meta = session.meta()
        settings = _checked_settings(read, meta.get("settings"), "meta.json")
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
    settings = _checked_settings(read, first.settings, "the log's session_start")
    meta = {**run_meta(settings, [], started=first.t, **start_fields(first)), "id": session.id}
    return meta, settings


def _checked_settings(read: SettingsReader, data: Any, where: str) -> Any:
    from .config import SettingsError

    try:
        return read(data)
    except (SettingsError, TypeError, AttributeError, ValueError) as exc:
        raise SessionError(f"the settings in {where} are unusable ({one_line(exc)})") from None


def resume_session(session: Session, read: SettingsReader, make: Callable[[Any, Any, Recorder, torch.device], Any],
                   corpus_loader: Callable[[Any], Any], listeners: list[Listener], epochs: int | None = None,
                   device: str | None = None, command: list[str] | None = None, *, setup: Phase) -> Any:
    """A run restored from the session's latest checkpoint; the log continues where it ends.

    ``read`` turns the recorded settings dict into validated settings; ``make(settings, corpus,
    record, device)`` builds the run (out of memory there: ``build_run`` with ``setup``). Warnings
    the restored state adds (e.g. a change of device) follow the resume's own. A session with no
    checkpoint (killed before its first) starts again from the beginning with the same settings and
    seed, appending to the same log (``resumed_from="start"``, a warning).
    """
    meta, settings = recorded_settings(session, read)
    if epochs is not None:
        settings.train.epochs = epochs
    if device is not None:
        settings.device = device
    torch_device = pick_device(settings.device)
    path, state, problems = latest_state(session)
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
    run = build_run(lambda record: make(settings, corpus, record, torch_device), writer, listeners, session,
                    torch_device, setup)
    warnings = [("checkpoint_unreadable", problem) for problem in problems]
    if state is not None:
        run.load_state_dict(state)
    else:
        warnings.append(("restarted", "no checkpoint to resume from: started again from the beginning "
                                      "with the same settings and seed"))
    run.resumed_from = resumed_from
    run._start_warnings = warnings + run._start_warnings  # the latter: what load_state_dict found
    return run


def latest_state(session: Session) -> tuple[Any, dict[str, Any] | None, list[str]]:
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
        last = problems[-1].removesuffix("; trying an older one")
        raise CheckpointError(f"session {session.id}: no checkpoint loads ({last})")
    return None, None, problems
