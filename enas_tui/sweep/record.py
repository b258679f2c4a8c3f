"""A sweep's record, ``<sessions>/sweeps/<name>.json``: its grid, its sessions, where each ran.

The sessions themselves stay ordinary session folders beside every other session; the record only
says which of them belong to the sweep, with what the session cannot know about itself (the hosts
that ran its attempts, how many attempts Ray made, the error that ended the last one). Only the
sweep's driver writes it (atomically, under a lock held for the driver's lifetime), so trials on
other machines never race on it; ``sweep status``, ``watch`` and ``report`` read it. Next to it,
``sweeps/<name>/`` holds each run's trainer output and Ray Tune's scratch folder. No Ray, no torch.
"""

from __future__ import annotations

import json
import os
import socket
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..replication import SavedAnalysisError, read_saved
from ..sessions import Session, SessionError, write_json_atomic
from .grid import SweepSpec

RECORD_VERSION = 1
SWEEPS_DIR = "sweeps"


class SweepError(Exception):
    """A missing, damaged or conflicting sweep record; one line for the user."""


@dataclass
class RunRecord:
    """One point of the sweep and what happened to it."""

    session: str
    controller: str
    seed: int
    settings: dict[str, str] = field(default_factory=dict)  # the point's varied settings
    hosts: list[str] = field(default_factory=list)  # hosts that ran an attempt, oldest first
    attempts: int = 0  # times a trial started or resumed its trainer, across re-runs of the sweep
    error: str | None = None  # why the last attempt failed; cleared when a new attempt starts

    @property
    def host(self) -> str | None:
        return self.hosts[-1] if self.hosts else None

    def label(self) -> str:
        return " ".join(f"{k}={v}" for k, v in self.settings.items())


@dataclass
class SweepRecord:
    name: str
    spec: SweepSpec
    runs: list[RunRecord]
    created: float
    updated: float = 0.0
    invocations: list[dict[str, Any]] = field(default_factory=list)  # each run of the sweep command
    version: int = RECORD_VERSION

    def run(self, session_id: str) -> RunRecord:
        for run in self.runs:
            if run.session == session_id:
                return run
        raise KeyError(session_id)

    def to_dict(self) -> dict[str, Any]:
        return {"version": self.version, "name": self.name, "created": self.created, "updated": self.updated,
                "spec": self.spec.to_dict(), "runs": [asdict(r) for r in self.runs],
                "invocations": self.invocations}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SweepRecord":
        return cls(name=str(data["name"]), spec=SweepSpec.from_dict(data["spec"]),
                   runs=[RunRecord(**run) for run in data["runs"]], created=float(data["created"]),
                   updated=float(data.get("updated", 0.0)), invocations=list(data.get("invocations", [])),
                   version=int(data.get("version", RECORD_VERSION)))


def sweeps_dir(root: Path) -> Path:
    return Path(root) / SWEEPS_DIR


def record_path(root: Path, name: str) -> Path:
    return sweeps_dir(root) / f"{name}.json"


def work_dir(root: Path, name: str) -> Path:
    """``sweeps/<name>/``: trainer output per run (``logs/``), Tune's scratch (``tune/``), set-aside attempts."""
    return sweeps_dir(root) / name


def stop_file(root: Path, name: str) -> Path:
    """Created by the driver on Ctrl-C: trials see it within a poll and stop their trainers at once,
    without waiting for Tune to get round to each of them (Tune remains the fallback)."""
    return work_dir(root, name) / "stop"


def new_record(spec: SweepSpec) -> SweepRecord:
    runs = [RunRecord(session=spec.session_id(p), controller=p.controller, seed=p.seed, settings=dict(p.settings))
            for p in spec.points()]
    return SweepRecord(name=spec.name, spec=spec, runs=runs, created=time.time())


def load_record(root: Path, name: str) -> SweepRecord:
    path = record_path(root, name)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        known = ", ".join(sweep_names(root)) or "none"
        raise SweepError(f"no sweep {name!r} in {sweeps_dir(root)} (sweeps: {known})") from None
    except (OSError, ValueError) as exc:
        raise SweepError(f"sweep record {path} is unreadable ({exc})") from None
    try:
        return SweepRecord.from_dict(data)
    except (KeyError, TypeError, ValueError) as exc:
        raise SweepError(f"sweep record {path} is damaged ({type(exc).__name__}: {exc})") from None


def save_record(root: Path, record: SweepRecord) -> None:
    record.updated = time.time()
    sweeps_dir(root).mkdir(parents=True, exist_ok=True)
    write_json_atomic(record_path(root, record.name), record.to_dict())


def sweep_names(root: Path) -> list[str]:
    folder = sweeps_dir(root)
    return sorted(p.stem for p in folder.glob("*.json")) if folder.is_dir() else []


def merge(record: SweepRecord, spec: SweepSpec) -> list[str]:
    """Join a re-run of the sweep command to its record: same shared flags, new points appended.

    Returns the session ids of the points this command asks for (old and new). Resources and
    retries may change between runs; the flags every run shares (preset, data, epochs, device,
    single-valued ``--set``) may not, since finished runs would no longer match new ones.
    """
    old, new = record.spec.base(), spec.base()
    for key in new:
        if old[key] != new[key]:
            raise SweepError(f"sweep {record.name} was started with {key} {_show(old[key])}, not {_show(new[key])}: "
                             f"repeat its flags or choose another --name")
    known = {run.session for run in record.runs}
    wanted = []
    for point in spec.points():
        sid = spec.session_id(point)
        wanted.append(sid)
        if sid not in known:
            record.runs.append(RunRecord(session=sid, controller=point.controller, seed=point.seed,
                                         settings=dict(point.settings)))
            known.add(sid)
    record.spec = _union(record.spec, spec)
    return wanted


def _show(value: Any) -> str:
    if value is None:
        return "(default)"
    if isinstance(value, list):
        return " ".join(value) or "(none)"
    return str(value)


def _union(old: SweepSpec, new: SweepSpec) -> SweepSpec:
    """The spec covering both runs' points (grid values in order of first use), with the newest resources."""
    grid = {key: list(values) for key, values in old.grid}
    for key, values in new.grid:
        grid[key] = list(dict.fromkeys([*grid.get(key, []), *values]))
    return SweepSpec(name=old.name, controllers=list(dict.fromkeys([*old.controllers, *new.controllers])),
                     seeds=sorted({*old.seeds, *new.seeds}), grid=list(grid.items()), fixed=old.fixed,
                     preset=old.preset, data=old.data, epochs=old.epochs, device=old.device,
                     cpus_per_run=new.cpus_per_run, gpus_per_run=new.gpus_per_run, retries=new.retries, n=old.n)


# -- the runs as they are now ------------------------------------------------------------------
def analysis_path(root: Path, name: str, session_id: str) -> Path:
    """``sweeps/<name>/analyses/<session>.json``: the run's final analysis (analysis.save_analysis)."""
    return work_dir(root, name) / "analyses" / f"{session_id}.json"


def analysis_current(path: Path, epoch: int, n: int, seed: int) -> bool:
    """Whether ``path`` holds an analysis of the checkpoint at ``epoch`` with ``n`` architectures
    drawn with ``seed`` (an analysis of an earlier checkpoint or another sample is redone)."""
    try:
        saved = read_saved(path)["analysis"]
        return (int(saved["epoch"]), int(saved["n"]), int(saved["seed"])) == (epoch, n, seed)
    except (SavedAnalysisError, KeyError, TypeError, ValueError):
        return False


@dataclass
class RunState:
    """A run as ``sweep status`` and the overview show it: the record joined with its session."""

    run: RunRecord
    status: str  # pending (no session yet), or the session's status (Session.state)
    epoch: int = 0
    epochs: int = 0
    best_ppl: float | None = None
    host: str | None = None
    error: str | None = None
    analysed: bool = False  # its final analysis is saved (finished runs only)

    @property
    def done(self) -> bool:
        """Nothing left to do: trained to the end and analysed."""
        return self.status == "finished" and self.analysed

    @property
    def word(self) -> str:
        """The status as the sweep shows it: ``trained`` for a finished run not analysed yet."""
        return "trained" if self.status == "finished" and not self.analysed else self.status


def run_state(root: Path, run: RunRecord, spec: SweepSpec) -> RunState:
    path = Path(root) / run.session
    if not path.is_dir():
        return RunState(run, "pending", host=run.host, error=run.error)
    session = Session(path)
    state = session.state()  # never raises: damage is named in problems
    try:
        meta, status = session.meta(), session.status()
    except SessionError as exc:
        meta, status = {}, {}
        if state.status == "damaged":
            return RunState(run, "damaged", host=run.host, error=run.error or str(exc))
    error = run.error
    if state.status in ("failed", "crashed", "damaged") and not error:
        error = status.get("message") or state.reason or f"trainer {state.status}"
    epochs = int(meta.get("settings", {}).get("train", {}).get("epochs", 0) or 0)
    analysed = state.status == "finished" and analysis_current(
        analysis_path(root, spec.name, run.session), state.epoch, spec.n, run.seed)
    return RunState(run, state.status, epoch=state.epoch, epochs=epochs, best_ppl=state.best_ppl,
                    host=status.get("host") or run.host, error=error, analysed=analysed)


def run_states(root: Path, record: SweepRecord) -> list[RunState]:
    return [run_state(root, run, record.spec) for run in record.runs]


def this_host() -> str:
    return socket.gethostname()


def invocation(address: str | None, command: list[str]) -> dict[str, Any]:
    return {"at": time.time(), "host": this_host(), "pid": os.getpid(), "address": address or "local",
            "command": command, "outcome": "running"}
