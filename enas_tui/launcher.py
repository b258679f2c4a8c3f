"""Trainer processes outside the trainer itself: start one for the dashboard, start one detached,
ask one to stop.

- For the dashboard (``launch``): the child is ``enas-tui train --headless --events-pipe ...`` (or
  ``retrain``) in a new process session, so closing the dashboard, a Ctrl-C in its terminal or a
  dropped SSH connection does not kill it. It writes each event as one JSON line to its stdout *without
  blocking*: when the reader falls behind and the pipe is full, the line is dropped (the session
  log, written first, keeps everything). The reader thread here decodes lines into events and hands
  them to a callback; it never imports torch.
- Detached (``start_detached``, ``train --detach``): the child runs headless in its own process
  session with its output in the session's ``trainer.log``; it reports its session over a pipe
  once the folder exists, so the parent can print where it is and exit.
- Stopping (``stop_session``, ``enas-tui stop``): SIGTERM to the session's trainer, which stops at
  its next step, checkpoints and records its end.
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from .commands import stop_command
from .events import Event, event_from_dict
from .sessions import Session, SessionError, pid_alive


@dataclass
class TrainerProcess:
    """A running trainer child: its process, and the events read from its pipe so far."""

    process: subprocess.Popen
    on_event: Callable[[Event], None]
    stderr: IO[str] | None = None
    session_id: str | None = None
    received: int = 0
    _thread: threading.Thread | None = field(default=None, repr=False)

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                event = event_from_dict(json.loads(line))
            except ValueError:
                continue
            if self.session_id is None and event.type == "session_start":
                self.session_id = getattr(event, "session_id", None)
            self.received += 1
            self.on_event(event)

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def stop(self) -> None:
        """Ask for a graceful stop: the trainer checkpoints and records a session_end."""
        if self.alive:
            self.process.send_signal(signal.SIGTERM)

    def detach(self) -> None:
        """Stop listening and leave the trainer running; its log remains the record."""
        if self.process.stdout is not None:
            self.process.stdout.close()

    def wait(self, timeout: float | None = None) -> int:
        return self.process.wait(timeout)

    def error_text(self) -> str:
        """What the child printed to stderr before it had a session folder (e.g. a bad flag)."""
        if self.stderr is None:
            return ""
        self.stderr.seek(0)
        return self.stderr.read()


COMMANDS = ("train", "retrain")  # the CLI commands that run a session and can pipe its events


def train_command(args: list[str], command: str = "train") -> list[str]:
    """The child's command line: this interpreter running the CLI, headless, events to stdout."""
    if command not in COMMANDS:
        raise ValueError(f"no session runs with enas-tui {command!r} (choose from {', '.join(COMMANDS)})")
    return [sys.executable, "-m", "enas_tui", command, "--headless", "--events-pipe", *args]


def launch(args: list[str], on_event: Callable[[Event], None], cwd: str | None = None,
           command: str = "train") -> TrainerProcess:
    """Start ``enas-tui COMMAND`` (train or retrain) with ``args`` (e.g. ``["--controller", "random"]``)
    as a detached child."""
    stderr = tempfile.TemporaryFile(mode="w+")
    process = subprocess.Popen(
        train_command(args, command), stdout=subprocess.PIPE, stderr=stderr, stdin=subprocess.DEVNULL,
        cwd=cwd, start_new_session=True, text=True, bufsize=1, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    handle = TrainerProcess(process=process, on_event=on_event, stderr=stderr)
    handle._thread = threading.Thread(target=handle._pump, name="trainer-events", daemon=True)
    handle._thread.start()
    return handle


class PipeSink:
    """Trainer-side listener: one JSON line per event on a file descriptor, never blocking.

    A line the pipe cannot take whole stays pending and is finished on later calls before any new
    line (so the stream is never torn); events arriving meanwhile are dropped and counted. A closed
    pipe (the dashboard detached) turns the sink off. Either way the trainer carries on at full speed.
    """

    def __init__(self, fd: int = 1):
        self.fd = fd
        self.dropped = 0
        self.closed = False
        self.pending = b""
        os.set_blocking(fd, False)

    def __call__(self, event: Event) -> None:
        if self.closed:
            return
        if self.pending:
            self._flush()
            if self.pending:
                self.dropped += 1
                return
        self.pending = (json.dumps(event.to_dict(), separators=(",", ":")) + "\n").encode()
        self._flush()

    def _flush(self) -> None:
        try:
            written = os.write(self.fd, self.pending)
        except BlockingIOError:
            return
        except OSError:  # BrokenPipeError: nobody is listening any more
            self.closed, self.pending = True, b""
            return
        self.pending = self.pending[written:]


# -- detached runs --------------------------------------------------------------------------------
DETACH_HANDSHAKE_S = 600.0  # the child loads its corpus before it has a session folder


@dataclass(frozen=True)
class DetachedRun:
    """A trainer started in the background: its pid and its session folder."""

    pid: int
    session_id: str
    path: Path

    @property
    def output(self) -> Path:
        return self.path / "trainer.log"


class DetachError(Exception):
    """The detached trainer exited before it had a session; ``code`` is its exit status."""

    def __init__(self, message: str, code: int):
        super().__init__(message)
        self.code = code


def detached_command(args: list[str]) -> list[str]:
    return [sys.executable, "-m", "enas_tui", "train", "--headless", "--detached-child", *args]


def start_detached(args: list[str], cwd: str | None = None, timeout: float = DETACH_HANDSHAKE_S,
                   stopping: Callable[[], bool] = lambda: False) -> DetachedRun:
    """Start ``enas-tui train ARGS`` headless in its own process session and wait for its session.

    The child announces its session with one JSON line on the pipe, then moves its output to the
    session's trainer.log and closes the pipe; the parent may exit (an ssh logout included). Until
    then the child is this command's: when ``stopping()`` turns true (Ctrl-C, SIGTERM) or it stays
    silent past ``timeout``, it is asked to stop (SIGTERM: before its session exists it just exits).
    """
    stderr = tempfile.TemporaryFile(mode="w+")
    process = subprocess.Popen(
        detached_command(args), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=stderr, cwd=cwd,
        start_new_session=True, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert process.stdout is not None
    deadline, buf = time.monotonic() + timeout, b""
    while True:
        *lines, buf = buf.split(b"\n")
        for line in lines:  # anything the child printed before its session is ignored
            try:
                info = json.loads(line)
                run = DetachedRun(process.pid, info["session"], Path(info["path"]))
            except (ValueError, KeyError, TypeError):
                continue
            process.stdout.close()
            return run
        if stopping():
            process.stdout.close()
            _stop_child(process)
            raise DetachError("stopped before the trainer had a session; it was asked to stop", 130)
        ready, _, _ = select.select([process.stdout], [], [], max(0.0, min(0.2, deadline - time.monotonic())))
        if not ready:
            if time.monotonic() < deadline:
                continue
            process.stdout.close()
            _stop_child(process)
            raise DetachError(f"the trainer did not report its session within {timeout:.0f} s", 1)
        chunk = os.read(process.stdout.fileno(), 4096)
        if not chunk:
            break
        buf += chunk
    process.stdout.close()
    try:
        code = process.wait(5)
    except subprocess.TimeoutExpired:  # alive but silent: do not leave it running unseen
        _stop_child(process)
        raise DetachError("the trainer closed its output without reporting its session", 1) from None
    stderr.seek(0)
    lines = [ln.strip() for ln in stderr.read().splitlines() if ln.strip()]
    message = lines[-1] if lines else f"the trainer exited with code {code}"
    prefix = "enas-tui: error: "
    raise DetachError(message[len(prefix):] if message.startswith(prefix) else message, code or 1)


def _stop_child(process: subprocess.Popen, wait: float = 10.0) -> None:
    """SIGTERM (a graceful stop), then SIGKILL if it is still there after ``wait`` s."""
    process.terminate()
    try:
        process.wait(wait)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def announce_detached(session: Session) -> None:
    """In the detached child: tell the parent the session, then write all output to trainer.log."""
    log = os.open(session.path / "trainer.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    line = json.dumps({"session": session.id, "path": str(session.path.resolve())}) + "\n"
    os.write(1, line.encode())
    sys.stdout.flush()
    sys.stderr.flush()
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(log)


# -- stopping ---------------------------------------------------------------------------------------
@dataclass
class StopResult:
    """What ``stop_session`` saw: the session, its pid and its status when it stopped waiting."""

    session_id: str
    pid: int
    status: str
    waited_s: float


def stop_session(session: Session, wait: float = 30.0, poll: float = 0.2) -> StopResult:
    """SIGTERM to the session's trainer (it checkpoints and records its end); wait up to ``wait`` s.

    Refuses (SessionError) a session that is not running, or whose trainer runs on another host.
    """
    status = session.status()
    live = session.live_status()
    if live != "running":
        raise SessionError(f"session {session.id} is not running (status {live})")
    host = status.get("host")
    if host not in (None, socket.gethostname()):
        raise SessionError(f"session {session.id} runs on {host}, not here: {stop_command(session, host=host)}")
    pid = int(status.get("pid", -1))
    if pid <= 0 or not pid_alive(pid, status.get("pid_start")):
        raise SessionError(f"session {session.id}: its trainer (pid {pid}) is gone")
    os.kill(pid, signal.SIGTERM)
    started = time.monotonic()
    while time.monotonic() - started < wait and session.live_status() == "running":
        time.sleep(poll)
    return StopResult(session.id, pid, session.live_status(), round(time.monotonic() - started, 2))
