"""One attempt at one point of a sweep: start or resume ``enas-tui train --headless`` and watch it.

The trainer is the same command a user runs, as a child process, so a sweep's session is exactly
the session a user's own ``train`` makes, and its exit code says how the attempt ended: 0 finished,
130 or 143 stopped on request (checkpointed), anything else failed (Ray then retries the point,
and the retry resumes from the last checkpoint). The child runs in its own process session (a Ctrl-C in
the sweep's terminal reaches it only through the sweep, which stops it with SIGTERM, so it saves a
checkpoint) and, on Linux, gets SIGTERM when the process that started it dies. No Ray, no torch.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from ..sessions import Session, SessionError, pid_alive
from .grid import Point, SweepSpec
from .record import analysis_current, analysis_path, stop_file, this_host, work_dir

# train's exit codes for a run stopped with a checkpoint: 128 + the signal (SIGINT 130, SIGTERM 143)
STOPPED_CODES = (130, 143)


class TrialFailed(Exception):
    """An attempt failed; one line for the user (Ray retries the point from its checkpoint)."""


@dataclass
class Progress:
    """What the attempt's session says now."""

    status: str  # the session's status (running, finished, stopped, failed, ...), "starting" before it has one
    epoch: int = 0
    epochs: int = 0
    best_ppl: float | None = None
    returncode: int | None = None  # set once the current child (trainer or analysis) has exited
    phase: str = "train"  # which child runs: train, then analyse


class TrainerRun:
    """One point's attempt: its trainer (fresh, or resumed from the last checkpoint), then the
    analysis of its final checkpoint (``enas-tui analyze --save``), each a child process; nothing
    when both are done already."""

    lock_wait_s = 120.0  # how long a retry waits for a lost trainer's log lock (an NFS lease) to lapse

    def __init__(self, root: Path, spec: SweepSpec, point: Point):
        self.root, self.spec, self.point = Path(root).resolve(), spec, point
        self.session_id = spec.session_id(point)
        self.path = self.root / self.session_id
        self.output = work_dir(self.root, spec.name) / "logs" / f"{self.session_id}.txt"
        self.analysis = analysis_path(self.root, spec.name, self.session_id)
        self.stop_file = stop_file(self.root, spec.name)
        self.process: subprocess.Popen | None = None
        self.phase = "train"
        self.action = ""
        self.stopping = False

    # -- starting ---------------------------------------------------------------------------
    def start(self) -> str:
        """Start what the point needs; returns what that is: ``started``, ``resumed``, ``analysing``
        (trained already), ``finished already`` or ``skipped`` (the sweep is stopping)."""
        if self.stop_file.exists():
            self.action = "skipped"
            return self.action
        args = self._plan()
        if args is None:
            if self._analysed():
                self.action = "finished already"
            else:
                self.action = "analysing"
                self.start_analysis()
            return self.action
        self._spawn(args, self.action)
        return self.action

    def start_analysis(self) -> None:
        """Analyse the final checkpoint as ``paper`` does: n architectures drawn with the run's seed."""
        self.phase = "analyse"
        self._spawn(["analyze", self.session_id, "--sessions-dir", str(self.root), "--n", str(self.spec.n),
                     "--seed", str(self.point.seed), "--device", self.spec.device, "--save", str(self.analysis)],
                    "analysing the final checkpoint")

    def _spawn(self, args: list[str], what: str) -> None:
        self.output.parent.mkdir(parents=True, exist_ok=True)
        with open(self.output, "ab") as out:
            out.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} on {this_host()}: {what}\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-m", "enas_tui", *args], stdout=out, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})

    def _analysed(self) -> bool:
        state = Session(self.path).state()
        return analysis_current(self.analysis, state.epoch, self.spec.n, self.point.seed)

    def _plan(self) -> list[str] | None:
        """train's arguments for this attempt; None when the session already finished."""
        common = ["train", "--headless", "--sessions-dir", str(self.root)]
        if self.path.is_dir() and any((self.path / name).exists() for name in ("meta.json", "events.log")):
            session = Session(self.path)
            try:
                status = self._settle(session)
            except SessionError as exc:
                raise TrialFailed(str(exc)) from None
            if status == "finished":
                return None
            if session.latest_checkpoint() is not None:
                self.action = "resumed"
                return [*common, "--resume", self.session_id]
        if self.path.exists():  # the first attempt died before its first checkpoint: keep it aside, start again
            self._set_aside()
        self.action = "started"
        spec, point = self.spec, self.point
        args = [*common, "--session-id", self.session_id, "--controller", point.controller, "--seed", str(point.seed),
                "--preset", spec.preset, "--device", spec.device]
        if spec.data:
            args += ["--data", spec.data]
        if spec.epochs is not None:
            args += ["--epochs", str(spec.epochs)]
        for item in [*spec.fixed, *point.overrides()]:
            args += ["--set", item]
        return args

    def _settle(self, session: Session) -> str:
        """The session's status once no earlier trainer of it is left running.

        An earlier attempt's trainer can outlive its trial (a Ray worker killed hard): on this host
        it is stopped gracefully (it checkpoints); on another host its log lock tells whether it is
        alive, and a trainer whose host died is marked crashed so that ``--resume`` takes over.
        """
        state = session.state()
        if state.status != "running":
            return state.status
        status = session.status()
        host, pid = status.get("host"), int(status.get("pid", -1))
        if host in (None, this_host()):
            _stop_pid(pid, timeout=120.0)
            return session.state().status
        deadline = time.monotonic() + self.lock_wait_s
        while log_in_use(session.log_path):
            if time.monotonic() > deadline:
                raise TrialFailed(f"session {session.id} is still being written by a trainer on {host}")
            time.sleep(min(2.0, self.lock_wait_s / 10))
        session.write_status(status="crashed", message=f"trainer on {host} lost (pid {pid})")
        return "crashed"

    def _set_aside(self) -> None:
        aside = work_dir(self.root, self.spec.name) / "set-aside" / f"{self.session_id}-{time.strftime('%Y%m%d-%H%M%S')}"
        aside.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(self.path), str(aside))

    # -- watching ---------------------------------------------------------------------------
    def progress(self) -> Progress:
        returncode = None if self.process is None else self.process.poll()
        if not (self.path / "meta.json").exists():
            return Progress("starting", returncode=returncode, phase=self.phase)
        session = Session(self.path)
        try:
            meta, status = session.meta(), session.status()
        except SessionError:  # caught mid-replace on a filesystem without atomic rename: next time
            return Progress("running", returncode=returncode, phase=self.phase)
        return Progress(status=str(status.get("status", "starting")), epoch=int(status.get("epoch", 0) or 0),
                        epochs=int(meta.get("settings", {}).get("train", {}).get("epochs", 0) or 0),
                        best_ppl=status.get("best_ppl"), returncode=returncode, phase=self.phase)

    def wait(self, timeout: float, poll_s: float = 0.2) -> Progress:
        """Wait up to ``timeout`` for the child to exit or the trainer to finish an epoch."""
        before = self.progress()
        if self.process is None:
            return before
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.stopping and self.stop_file.exists():
                self.stopping = True
                self.stop(timeout=0)
            now = self.progress()
            if now.returncode is not None or (now.epoch, now.status) != (before.epoch, before.status):
                return now
            time.sleep(poll_s)
        return self.progress()

    def outcome(self, progress: Progress) -> str:
        """For an exited child: ``trained`` (the analysis comes next), ``finished`` (analysed) or
        ``stopped``; raises TrialFailed for any other end."""
        code = progress.returncode
        if progress.phase == "analyse":
            if code == 0 and self.analysis.exists():
                return "finished"
            if self.stopping:
                return "stopped"
            raise TrialFailed(f"{self.session_id}: {self._failure(code, progress)}")
        if code == 0 and progress.status == "finished":
            return "trained"
        if code in STOPPED_CODES:
            return "stopped"
        raise TrialFailed(f"{self.session_id}: {self._failure(code, progress)}")

    def _failure(self, code: int | None, progress: Progress) -> str:
        what = "trainer" if progress.phase == "train" else "analysis of the final checkpoint"
        if code is not None and code < 0:
            where = f" (epoch {progress.epoch})" if progress.phase == "train" else ""
            return f"{what} killed by {signal.Signals(-code).name}{where}"
        last = self.last_output_line()
        return f"{what} exited with code {code}" + (f": {last}" if last else "")

    def last_output_line(self) -> str:
        """The child's last line of output (its one-line error, when it failed)."""
        try:
            with open(self.output, "rb") as fh:
                fh.seek(max(0, fh.seek(0, os.SEEK_END) - 4096))
                lines = [ln.strip() for ln in fh.read().decode(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        lines = [ln for ln in lines if not ln.startswith("--- ")]
        return lines[-1].removeprefix("enas-tui: error: ") if lines else ""

    def stop(self, timeout: float) -> None:
        """Ask the child to stop (SIGTERM: a trainer checkpoints) and wait up to ``timeout`` for it."""
        if self.process is None or self.process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.process.send_signal(signal.SIGTERM)
        if timeout > 0:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout)


def log_in_use(path: Path) -> bool:
    """Whether a trainer holds the session log's writer lock (works across hosts on shared storage with locks)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def _stop_pid(pid: int, timeout: float) -> None:
    """SIGTERM a trainer left over from an earlier attempt and wait for it to checkpoint and exit."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    if pid_alive(pid):
        raise TrialFailed(f"an earlier trainer (pid {pid}) did not stop within {timeout:.0f} s")


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM (a graceful stop) when the trial's process dies; signals unblocked."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
