"""Sessions on disk: ``<sessions-dir>/<id>/`` with meta.json, status.json, events.log, checkpoints/.

- meta.json: what the run is (controller, preset, seed, resolved settings, versions, host, pid,
  start time, command). Rewritten only when a trainer (re)starts the session.
- status.json: a small summary (status, epoch, best ppl) rewritten atomically by the trainer at
  epoch ends and on exit, so ``enas-tui sessions`` never has to read large logs.
- events.log: the append-only record (session_log.py); the source of truth for everything else.
- checkpoints/: torch state files (checkpoints.py) and LATEST, the name of the newest one.

A session whose status says ``running`` but whose trainer process is gone is reported ``crashed``.
This module must not import torch: listing and attaching run without it.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_SESSIONS_DIR = "ENAS_TUI_SESSIONS"
DEFAULT_SESSIONS_DIR = "sessions"
STATUSES = ("running", "finished", "stopped", "crashed", "failed")


class SessionError(Exception):
    """A missing or unreadable session; the message is one line for the user."""


def sessions_root(arg: str | os.PathLike | None = None) -> Path:
    """The sessions folder: the flag, else $ENAS_TUI_SESSIONS, else ./sessions."""
    return Path(arg or os.environ.get(ENV_SESSIONS_DIR) or DEFAULT_SESSIONS_DIR)


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write JSON so a reader (or a crash) never sees a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n")
    os.replace(tmp, path)


def process_start_time(pid: int) -> int | None:
    """The kernel's start time of a process (Linux), so a reused pid is not mistaken for the trainer."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def pid_alive(pid: int, start_time: int | None = None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if start_time is not None:
        now = process_start_time(pid)
        if now is not None and now != start_time:
            return False
    if Path(f"/proc/{pid}/stat").exists():  # a zombie is dead for our purposes
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        if state == "Z":
            return False
    return True


@dataclass
class Session:
    """One session folder."""

    path: Path

    @property
    def id(self) -> str:
        return self.path.name

    @property
    def meta_path(self) -> Path:
        return self.path / "meta.json"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def log_path(self) -> Path:
        return self.path / "events.log"

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    def meta(self) -> dict[str, Any]:
        return _read_json(self.meta_path, "meta.json", self.id)

    def status(self) -> dict[str, Any]:
        if not self.status_path.exists():
            return {}
        return _read_json(self.status_path, "status.json", self.id)

    def write_meta(self, meta: dict[str, Any]) -> None:
        write_json_atomic(self.meta_path, meta)

    def write_status(self, **fields: Any) -> None:
        status = self.status()
        status.update(fields, updated=time.time())
        write_json_atomic(self.status_path, status)

    def live_status(self) -> str:
        """The status a user should see: ``running`` only while the trainer process is alive."""
        status = self.status()
        state = status.get("status", "crashed")
        if state == "running":
            same_host = status.get("host") in (None, socket.gethostname())
            if same_host and not pid_alive(int(status.get("pid", -1)), status.get("pid_start")):
                return "crashed"
        return state

    def latest_checkpoint(self) -> Path | None:
        latest = self.checkpoint_dir / "LATEST"
        if not latest.exists():
            return None
        path = self.checkpoint_dir / latest.read_text().strip()
        return path if path.exists() else None

    def epoch_checkpoint(self, epoch: int) -> Path:
        return self.checkpoint_dir / f"epoch-{epoch:04d}.pt"

    def checkpoint_epochs(self) -> list[int]:
        return sorted(int(p.stem.split("-")[1]) for p in self.checkpoint_dir.glob("epoch-*.pt"))


def _read_json(path: Path, what: str, session_id: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SessionError(f"session {session_id}: {what} is missing") from None
    except (OSError, ValueError) as exc:
        raise SessionError(f"session {session_id}: {what} is unreadable ({exc})") from None
    if not isinstance(data, dict):
        raise SessionError(f"session {session_id}: {what} is not a JSON object")
    return data


def new_session_id(controller: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{controller}-{secrets.token_hex(2)}"


SESSION_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


def create_session(root: Path, controller: str, session_id: str | None = None) -> Session:
    """A new, empty session folder: named ``session_id`` (which must not exist yet), else a fresh time-stamped id."""
    root.mkdir(parents=True, exist_ok=True)
    if session_id is not None:
        if not SESSION_ID_PATTERN.fullmatch(session_id):
            raise SessionError(f"bad session id {session_id!r}: use letters, digits, '.', '_' and '-'")
        path = root / session_id
        try:
            path.mkdir()
        except FileExistsError:
            raise SessionError(f"session {session_id} already exists in {root}; "
                               f"continue it with: enas-tui train --resume {session_id}") from None
        (path / "checkpoints").mkdir()
        return Session(path)
    for _ in range(10):
        path = root / new_session_id(controller)
        try:
            path.mkdir()
        except FileExistsError:
            continue
        (path / "checkpoints").mkdir()
        return Session(path)
    raise SessionError(f"could not create a new session folder in {root}")


def open_session(root: Path, session_id: str) -> Session:
    """A session by id, or by a unique prefix of its id."""
    if not root.is_dir():
        raise SessionError(f"no sessions folder at {root}")
    path = root / session_id
    if session_id and "/" not in session_id and path.is_dir() and (path / "meta.json").exists():
        return Session(path)
    matches = [p for p in root.iterdir() if p.is_dir() and p.name.startswith(session_id) and (p / "meta.json").exists()]
    if len(matches) == 1 and session_id:
        return Session(matches[0])
    if len(matches) > 1:
        raise SessionError(f"session id {session_id!r} is ambiguous: {', '.join(sorted(p.name for p in matches))}")
    raise SessionError(f"no session {session_id!r} in {root}")


def all_sessions(root: Path) -> list[Session]:
    """Every session in root, oldest first."""
    if not root.is_dir():
        return []
    found = [Session(p) for p in root.iterdir() if p.is_dir() and (p / "meta.json").exists()]
    return sorted(found, key=lambda s: (s.meta().get("started", 0), s.id))


@dataclass
class SessionSummary:
    id: str
    controller: str
    status: str
    epoch: int
    epochs: int
    best_ppl: float | None
    started: float


def summarize(session: Session) -> SessionSummary:
    meta, status = session.meta(), session.status()
    return SessionSummary(
        id=session.id,
        controller=str(meta.get("controller", "?")),
        status=session.live_status(),
        epoch=int(status.get("epoch", 0)),
        epochs=int(meta.get("settings", {}).get("train", {}).get("epochs", 0)),
        best_ppl=status.get("best_ppl"),
        started=float(meta.get("started", 0.0)),
    )


def newest_running(root: Path) -> Session | None:
    running = [s for s in all_sessions(root) if s.live_status() == "running"]
    return running[-1] if running else None
