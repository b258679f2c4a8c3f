"""Start a trainer as a detachable child process and receive its events over a pipe (the fast path).

The child is ``enas-tui train --headless --events-pipe ...`` (or ``retrain``) in a new process session, so closing
the dashboard, a Ctrl-C in its terminal or a dropped SSH connection does not kill it. It writes
each event as one JSON line to its stdout *without blocking*: when the reader falls behind and the
pipe is full, the line is dropped (the session log, written first, keeps everything). The reader
thread here decodes lines into events and hands them to a callback; it never imports torch.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import IO

from .events import Event, event_from_dict


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
