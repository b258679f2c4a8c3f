"""Run a sweep on Ray Tune: one trial per point, each an ordinary session trained by a child process.

Without an address (or ``RAY_ADDRESS``) Ray starts on this machine and runs as many points at once
as its cores (``--cpus-per-run`` each) or GPUs (``--gpus-per-run``) allow; with one, the sweep joins
that cluster unchanged. Tune does the scheduling and the retries (``FailureConfig``): a trial whose
trainer was killed or failed is started again and resumes the session from its last checkpoint.
The sessions are the sweep's state, not Tune's experiment folder: running the same command again
starts a fresh Tune run whose trials find their sessions finished (nothing to do), stopped
(resumed) or missing (started). Ctrl-C (or SIGTERM) asks Tune to stop every trial; each trial
stops its trainer with SIGTERM, so every run ends with a checkpoint, and the driver waits for them.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import ray
from ray import tune

from ..sessions import Session, SessionError, pid_alive
from .grid import Point, SweepSpec
from .record import (
    RunState, SweepError, SweepRecord, invocation, load_record, merge, new_record, record_path, run_state,
    run_states, save_record, stop_file, this_host, work_dir,
)
from .trial import TrainerRun, TrialFailed, log_in_use

REPORT_S = 2.0  # longest a trial's step waits before reporting (a stop request waits at most this long)
STOP_WAIT_S = 8.0  # a trial's cleanup waits this long for its trainer (Tune gives actors about 10 s)
CHECKPOINT_WAIT_S = 180.0  # after Ctrl-C, how long the driver waits for every trainer's checkpoint


# -- the trial, on a worker ----------------------------------------------------------------------
class SweepTrial(tune.Trainable):
    """A Tune trial for one point: its trainer runs as a child process; steps report its progress."""

    def setup(self, config: dict[str, Any]) -> None:
        self.setup_at = time.time()
        point = config["point"]
        self.run = TrainerRun(Path(config["root"]), SweepSpec.from_dict(config["spec"]),
                              Point(point["controller"], int(point["seed"]), tuple(map(tuple, point["settings"]))))
        self.action = self.run.start()
        self.reported = False

    def step(self) -> dict[str, Any]:
        progress = self.run.wait(REPORT_S)
        result = {"session": self.run.session_id, "host": socket.gethostname(), "status": progress.status,
                  "epoch": progress.epoch, "epochs": progress.epochs, "best_ppl": progress.best_ppl,
                  "action": self.action, "first": not self.reported, "setup_at": self.setup_at,
                  "phase": progress.phase}
        self.reported = True
        if self.action == "finished already":
            result.update(done=True, outcome="finished")
        elif self.action == "skipped":
            result.update(done=True, outcome="skipped")
        elif progress.returncode is not None:
            outcome = self.run.outcome(progress)  # raises TrialFailed on a failure
            if outcome == "trained" and not self.run.stopping:
                self.run.start_analysis()  # the next steps wait for it
                result["outcome"] = "analysing"
            else:
                result.update(done=True, outcome=outcome)
        return result

    def cleanup(self) -> None:
        self.run.stop(STOP_WAIT_S)


def _trial_name(trial: Any) -> str:
    return trial.config["point"]["session"]


# -- the driver ------------------------------------------------------------------------------------
@dataclass
class SweepOutcome:
    """How a run of the sweep command ended, and where its time went."""

    record: SweepRecord
    states: list[RunState]
    interrupted: bool
    timings: dict[str, float] = field(default_factory=dict)  # ray_init_s, first_trial_s, total_s

    @property
    def failed(self) -> list[RunState]:
        return [s for s in self.states if s.status in ("failed", "crashed", "damaged") or (s.error and not s.done)]

    @property
    def exit_code(self) -> int:
        """0 when every run finished and was analysed, 130 after Ctrl-C, else 1."""
        if self.interrupted:
            return 130
        return 1 if self.failed or not all(s.done for s in self.states) else 0


class _Stop(tune.Stopper):
    """Stops every trial once Ctrl-C (or SIGTERM) arrived; trials are never stopped by a result."""

    def __init__(self, file: Path) -> None:
        self.requested = False  # a plain flag: Tune pickles its run config, and an Event cannot be pickled
        self.file = file  # the sweep's stop file (record.stop_file)

    def __call__(self, trial_id: str, result: dict[str, Any]) -> bool:
        return False

    def stop_all(self) -> bool:
        return self.requested


class _Progress(tune.Callback):
    """Keeps the record up to date (hosts, attempts, errors) and prints one line per event of a run."""

    def __init__(self, root: Path, record: SweepRecord, echo: Callable[[str], None]):
        self.root, self.record, self.echo = root, record, echo
        self.first_setup_at: float | None = None  # wall-clock time the first trial's setup began
        self.epochs: dict[str, int] = {}

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict[str, Any], **info: Any) -> None:
        sid = result["session"]
        if result["action"] == "skipped":  # set up after Ctrl-C: never started
            return
        if result["first"]:
            self._attempt_began(sid, result)
            if result["action"] == "finished already":
                return
        best = "-" if result["best_ppl"] is None else f"{result['best_ppl']:.2f}"
        if result["epoch"] > self.epochs.get(sid, 0):
            self.epochs[sid] = result["epoch"]
            self.echo(f"{sid}: epoch {result['epoch']}/{result['epochs']}, best ppl {best}")
        if result.get("outcome") == "analysing":
            self.echo(f"{sid}: trained, best ppl {best}; analysing its final checkpoint")
        if result.get("done"):
            self.echo(f"{sid}: " + ("stopped" if result["outcome"] == "stopped" else "finished and analysed"))

    def _attempt_began(self, sid: str, result: dict[str, Any]) -> None:
        if self.first_setup_at is None or result["setup_at"] < self.first_setup_at:
            self.first_setup_at = result["setup_at"]
        self.echo(f"{sid}: {result['action']} on {result['host']}")
        if result["action"] == "finished already":
            return
        run = self.record.run(sid)
        run.attempts += 1
        run.error = None
        if run.host != result["host"]:
            run.hosts.append(result["host"])
        save_record(self.root, self.record)
        self.epochs[sid] = result["epoch"]  # a resumed run's epoch is not news

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        sid, message = trial.config["point"]["session"], _error_of(trial)
        self.record.run(sid).error = message
        save_record(self.root, self.record)
        self.echo(f"{sid}: {message}; retrying from its last checkpoint")

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        sid, message = trial.config["point"]["session"], _error_of(trial)
        self.record.run(sid).error = message
        save_record(self.root, self.record)
        self.echo(f"{sid}: failed: {message}")


def _error_of(trial: Any) -> str:
    """The one-line reason a trial failed: the last line of the error text Ray wrote for it.

    A trainer's failure ends as our TrialFailed("<session>: <reason>"); anything else (a worker that
    could not import the package, a dead node) ends as Ray's own exception line, which says what
    went wrong just as plainly. (Ray's pickled copy of the error is never loaded.)
    """
    path = getattr(trial, "error_file", None)
    try:
        lines = [ln.strip() for ln in Path(path).read_text(errors="replace").splitlines() if ln.strip()] if path else []
    except OSError:
        lines = []
    if not lines:
        return "its Ray trial failed"
    last = lines[-1]
    name, sep, message = last.partition(": ")
    if name.endswith("TrialFailed") and sep:
        return message.split(": ", 1)[-1]  # drop the session id: every line the sweep prints starts with it
    return last


@contextlib.contextmanager
def _exclusive(root: Path, name: str) -> Iterator[None]:
    """Hold ``sweeps/<name>.lock`` so two drivers never run the same sweep at once."""
    path = record_path(root, name).with_suffix(".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise SweepError(f"sweep {name} is already running ({holder})") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {this_host()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)


@contextlib.contextmanager
def _graceful_interrupts(stop: _Stop, echo: Callable[[str], None]) -> Iterator[None]:
    """The first Ctrl-C/SIGTERM stops every run with a checkpoint; a second one interrupts at once."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def handler(signum: int, frame: Any) -> None:
        if stop.requested:
            raise KeyboardInterrupt
        stop.requested = True
        stop.file.parent.mkdir(parents=True, exist_ok=True)
        stop.file.write_text(f"stopped by pid {os.getpid()} on {this_host()} at {time.time()}\n")
        echo("stopping every run with a checkpoint (Ctrl-C again to stop at once)")

    for sig in previous:
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


# Tune's own terminal output and SIGINT handler would talk about Tune's experiment (its tables, its
# "Tuner.restore" advice); the sweep prints one line per run event and is resumed by running it again.
TUNE_QUIET = {"RAY_AIR_NEW_OUTPUT": "0", "TUNE_PRINT_ALL_TRIAL_ERRORS": "0", "TUNE_DISABLE_SIGINT_HANDLER": "1"}


@contextlib.contextmanager
def _quiet_tune() -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in TUNE_QUIET}
    logger = logging.getLogger("ray.tune")
    level = logger.level
    os.environ.update(TUNE_QUIET)
    logger.setLevel(logging.CRITICAL)  # "Trials did not complete" and the like: the sweep says it in its words
    try:
        yield
    finally:
        logger.setLevel(level)
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def start_ray(address: str | None) -> bool:
    """Join the cluster at ``address`` (or $RAY_ADDRESS), else start Ray here; True when this call started it."""
    if ray.is_initialized():
        return False
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                 configure_logging=True)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise SweepError(f"cannot {'join Ray at ' + address if address else 'start Ray'}: {first}") from None
    return True


def check_reachable(address: str | None, timeout: float = 5.0) -> None:
    """Fail in one line when a ``host:port`` (or ``ray://host:port``) address does not answer.

    ray.init keeps retrying an unreachable address for minutes, printing warnings; a plain TCP
    connection answers in seconds. ``auto`` and other forms are left to Ray.
    """
    if not address:
        return
    match = re.fullmatch(r"(?:ray://)?\[?([^\]/]+?)\]?:(\d+)", address.strip())
    if not match:
        return
    try:
        socket.create_connection((match[1], int(match[2])), timeout=timeout).close()
    except OSError as exc:
        raise SweepError(f"cannot reach the Ray cluster at {address}: {exc.strerror or exc}") from None


def run_sweep(spec: SweepSpec, root: Path, *, address: str | None = None, command: list[str] | None = None,
              echo: Callable[[str], None] = print) -> SweepOutcome:
    """Run (or resume) the sweep's points on Ray and return how each run stands afterwards.

    Points whose sessions already finished are not sent to Ray at all (a re-run of a finished
    sweep does not even start Ray). Timings: ``ray_init_s`` (starting or joining Ray),
    ``first_trial_s`` (from handing the grid to Tune to the first trial's setup on a worker),
    ``total_s``.
    """
    root = Path(root).resolve()
    started = time.monotonic()
    check_reachable(address or os.environ.get("RAY_ADDRESS"))
    with _exclusive(root, spec.name):
        record = _open_record(root, spec)
        wanted = merge(record, spec)
        record.invocations.append(invocation(address or os.environ.get("RAY_ADDRESS"), command or []))
        save_record(root, record)
        echo(f"sweep {spec.name}: {len(wanted)} runs, sessions in {root}")
        todo = []
        for sid in wanted:
            if run_state(root, record.run(sid), record.spec).done:
                echo(f"{sid}: finished and analysed already")
            else:
                todo.append(sid)
        stop, timings = _Stop(stop_file(root, spec.name)), {}
        stop.file.unlink(missing_ok=True)  # left by a driver that was killed mid-stop
        if todo:
            try:
                timings = _run_on_ray(spec, root, record, todo, stop, address, echo)
            except SweepError as exc:
                record.invocations[-1]["outcome"] = f"error: {exc}"
                save_record(root, record)
                raise
        timings["total_s"] = time.monotonic() - started
        stop.file.unlink(missing_ok=True)
        states = [s for s in run_states(root, record) if s.run.session in set(wanted)]
        outcome = SweepOutcome(record, states, stop.requested, timings)
        record.invocations[-1].update(outcome="interrupted" if outcome.interrupted
                                      else "failed" if outcome.exit_code else "finished",
                                      timings={k: round(v, 3) for k, v in timings.items()})
        save_record(root, record)
        return outcome


def _run_on_ray(spec: SweepSpec, root: Path, record: SweepRecord, todo: list[str], stop: _Stop,
                address: str | None, echo: Callable[[str], None]) -> dict[str, float]:
    began = time.monotonic()
    started_ray = start_ray(address)
    timings = {"ray_init_s": time.monotonic() - began}
    try:
        resources = ray.cluster_resources()
        where = "started here" if started_ray else f"joined {address or os.environ.get('RAY_ADDRESS') or 'the running instance'}"
        gpu = f" and {spec.gpus_per_run:g} GPU" if spec.gpus_per_run else ""
        echo(f"ray {where}: {resources.get('CPU', 0):g} CPUs, {resources.get('GPU', 0):g} GPUs; "
             f"each run takes {spec.cpus_per_run:g} CPU{gpu}")
        progress = _Progress(root, record, echo)
        with _graceful_interrupts(stop, echo), _quiet_tune():
            fit_at = time.time()
            _fit(spec, root, record, todo, stop, progress)
            if stop.requested:
                _wait_for_checkpoints(root, todo, echo)
        if progress.first_setup_at is not None:
            timings["first_trial_s"] = progress.first_setup_at - fit_at
    finally:
        if started_ray:
            ray.shutdown()
    return timings


def _open_record(root: Path, spec: SweepSpec) -> SweepRecord:
    if record_path(root, spec.name).exists():
        return load_record(root, spec.name)
    return new_record(spec)


def _fit(spec: SweepSpec, root: Path, record: SweepRecord, wanted: list[str], stop: _Stop, progress: _Progress) -> None:
    points = [{"session": run.session, "controller": run.controller, "seed": run.seed,
               "settings": [[k, v] for k, v in run.settings.items()]}
              for run in (record.run(sid) for sid in wanted)]
    resources = {"cpu": spec.cpus_per_run, "gpu": spec.gpus_per_run}
    tuner = tune.Tuner(
        tune.with_resources(SweepTrial, resources),
        param_space={"point": tune.grid_search(points), "spec": spec.to_dict(), "root": str(root)},
        tune_config=tune.TuneConfig(reuse_actors=False, trial_name_creator=_trial_name,
                                    trial_dirname_creator=_trial_name),
        run_config=tune.RunConfig(
            name="tune", storage_path=str(work_dir(root, spec.name)), verbose=0, stop=stop,
            callbacks=[progress], failure_config=tune.FailureConfig(max_failures=spec.retries),
            checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False)),
    )
    tuner.fit()


def _wait_for_checkpoints(root: Path, wanted: list[str], echo: Callable[[str], None]) -> None:
    """After a stop, wait until no trainer of the sweep is still writing (each ends with a checkpoint)."""
    deadline = time.monotonic() + CHECKPOINT_WAIT_S
    announced = False
    while True:
        busy = [sid for sid in wanted if _still_running(root / sid)]
        if not busy:
            return
        if not announced:
            echo(f"waiting for {len(busy)} run(s) to write their checkpoints")
            announced = True
        if time.monotonic() > deadline:
            echo(f"gave up waiting for: {', '.join(busy)}")
            return
        time.sleep(0.2)


def _still_running(path: Path) -> bool:
    if not (path / "meta.json").exists():
        return False
    session = Session(path)
    try:
        status = session.status()
    except SessionError:
        return False
    if status.get("status") != "running":
        return False
    if status.get("host") in (None, this_host()):
        return pid_alive(int(status.get("pid", -1)), status.get("pid_start"))
    return log_in_use(session.log_path)
