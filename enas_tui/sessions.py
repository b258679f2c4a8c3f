"""Sessions on disk: ``<sessions-dir>/<id>/`` with meta.json, status.json, events.log, checkpoints/.

- meta.json: what the run is (controller, preset, seed, resolved settings, versions, host, pid,
  start time, command). Rewritten only when a trainer (re)starts the session.
- status.json: a small summary (status, epoch, best ppl) rewritten atomically by the trainer at
  epoch ends and on exit, so ``enas-tui sessions`` never has to read large logs.
- events.log: the append-only record (session_log.py); the source of truth for everything else.
- checkpoints/: torch state files (checkpoints.py) and LATEST, the name of the newest one.

A session folder appears whole (created under a hidden name and renamed, with meta.json and a
``running`` status.json already in it), so a trainer killed at any moment leaves a session that
can be listed and resumed. What a session's status is (``Session.state``) is decided from the
log's last records first (read cheaply from the end), then status.json, then whether the trainer
process is alive; a damaged or missing file never hides a session, it is named in ``problems``.
This module must not import torch: listing and attaching run without it.
"""

from __future__ import annotations

import errno
import json
import math
import os
import secrets
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .events import Event, EpochEnd, RetrainResult, SessionEnd, SessionStart
from .session_log import LogError, LogTail, read_first, read_tail

ENV_SESSIONS_DIR = "ENAS_TUI_SESSIONS"
DEFAULT_SESSIONS_DIR = "sessions"
KINDS = ("search", "retrain")  # meta.json "kind": what the session runs
RETRAIN = "retrain"
STATUSES = ("running", "finished", "stopped", "crashed", "failed")
TERMINAL = ("finished", "stopped", "failed")  # what a trainer records when it ends on its own
STATUS_RESERVE = 4096  # status.json's size on disk: one block, room to be rewritten in place on a full disk
# Times a meta.json may hold: after 2001 and before 2286 (a bad clock or a damaged file otherwise).
_TIME_RANGE = (1e9, 1e10)


class SessionError(Exception):
    """A missing or unreadable session; the message is one line for the user."""


def sessions_root(arg: str | os.PathLike | None = None) -> Path:
    """The sessions folder: the flag, else $ENAS_TUI_SESSIONS, else ./sessions."""
    return Path(arg or os.environ.get(ENV_SESSIONS_DIR) or DEFAULT_SESSIONS_DIR)


def write_json_atomic(path: Path, data: dict[str, Any], reserve: int = 0) -> None:
    """Write JSON so a reader (or a crash) never sees a half-written file.

    On a full disk the temporary file is removed and the file is rewritten in place instead, where
    the new text fits in the old file: ``reserve`` pads the file with spaces (valid JSON) to that
    many bytes, so a status file always has room to say "failed".
    """
    try:
        text = (json.dumps(data, indent=2, sort_keys=True, allow_nan=False) + "\n").encode()
    except ValueError as err:  # a NaN that came from a damaged file
        raise SessionError(f"cannot write {path}: {err}") from None
    text += b" " * max(0, reserve - len(text))
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(text)
        os.replace(tmp, path)
    except OSError as err:
        _unlink_quietly(tmp)
        if err.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG) and _rewrite_in_place(path, text):
            return
        raise SessionError(f"cannot write {path}: {err.strerror}") from None


def _rewrite_in_place(path: Path, text: bytes) -> bool:
    """Overwrite an existing file's bytes (no new blocks needed when text is no longer); padding
    with spaces keeps it valid JSON."""
    try:
        old_size = path.stat().st_size
        if len(text) > old_size:
            return False
        fd = os.open(path, os.O_WRONLY)
        try:
            os.pwrite(fd, text + b" " * (old_size - len(text)), 0)
        finally:
            os.close(fd)
        return True
    except OSError:
        return False


def _unlink_quietly(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError:
        pass


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
class SessionState:
    """What a session is, as ``enas-tui sessions``, replay and attach all show it.

    ``status`` is one of STATUSES, or ``damaged`` when neither the log nor status.json can say;
    ``reason`` says why when it is not plain (e.g. the log has no end record); ``problems`` names
    every damaged or missing file, one line each.
    """

    status: str
    reason: str = ""
    epoch: int = 0
    best_ppl: float | None = None
    problems: list[str] = field(default_factory=list)
    tail: LogTail | None = field(default=None, repr=False)
    test_ppl: float | None = None  # a finished retrain's test perplexity (retrain_result)


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
        try:
            status = self.status()
        except SessionError:  # a damaged status file is replaced, not a reason to stop training
            status = {}
        status.update(fields, updated=time.time())
        write_json_atomic(self.status_path, status, reserve=STATUS_RESERVE)

    def state(self) -> SessionState:
        """The session's status, epoch and best ppl, from its log's end, status.json and its pid."""
        problems: list[str] = []
        status = _checked_status(self, problems)
        tail = None
        if self.log_path.exists():
            try:
                tail = read_tail(self.log_path)
            except (LogError, OSError) as err:
                problems.append(f"events.log: {_one_line(err)}")
        else:
            problems.append("events.log is missing")
        if tail is not None:
            problems += [f"events.log: damaged {d.describe()}" for d in tail.damage]
        word, reason = _resolve(status, tail, problems)
        if tail is not None and tail.torn_tail is not None and word != "running":  # not a write in progress
            at, size = tail.torn_tail
            problems.append(f"events.log ends in an incomplete record ({size:,} bytes at byte {at})")
        end = tail.last if tail is not None and isinstance(tail.last, SessionEnd) else None
        return SessionState(word, reason, _epoch(end, status, tail), _best(end, status), problems, tail,
                            _test_ppl(status, tail))

    def live_status(self) -> str:
        """The status a user should see: ``running`` only while the trainer process is alive."""
        return self.state().status

    def latest_checkpoint(self) -> Path | None:
        latest = self.checkpoint_dir / "LATEST"
        try:
            name = latest.read_text().strip()
        except (OSError, UnicodeDecodeError):
            return None
        if not name or "/" in name or name.startswith("."):
            return None
        path = self.checkpoint_dir / name
        return path if path.is_file() else None

    def epoch_checkpoint(self, epoch: int) -> Path:
        return self.checkpoint_dir / f"epoch-{epoch:04d}.pt"

    def checkpoint_epochs(self) -> list[int]:
        epochs = []
        for p in self.checkpoint_dir.glob("epoch-*.pt"):
            try:
                epochs.append(int(p.stem.split("-")[1]))
            except ValueError:
                continue
        return sorted(epochs)


def _one_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _checked_status(session: Session, problems: list[str]) -> dict[str, Any] | None:
    """status.json with its fields checked (a bad field is dropped and named), or None if unusable."""
    if not session.status_path.exists():
        problems.append("status.json is missing")
        return None
    try:
        data = session.status()
    except SessionError as err:
        problems.append(str(err).removeprefix(f"session {session.id}: "))
        return None
    checks = {"status": lambda v: v in STATUSES, "epoch": _is_count, "pid": _is_count,
              "pid_start": lambda v: v is None or _is_count(v), "host": lambda v: v is None or isinstance(v, str),
              "best_ppl": lambda v: v is None or _is_number(v), "test_ppl": lambda v: v is None or _is_number(v),
              "updated": is_time}
    for key, ok in checks.items():
        if key in data and not ok(data[key]):
            problems.append(f"status.json: {key} is {_show(data[key])}")
            del data[key]
    if "status" not in data:
        if not any(p.startswith("status.json: status") for p in problems):
            problems.append("status.json has no status")
        return None
    return data


def _checked_meta(session: Session, problems: list[str]) -> dict[str, Any]:
    """meta.json with the fields the listing shows checked; bad or missing ones are named and dropped."""
    if not session.meta_path.exists():
        problems.append("meta.json is missing")
        return {}
    try:
        data = session.meta()
    except SessionError as err:
        problems.append(str(err).removeprefix(f"session {session.id}: "))
        return {}
    out: dict[str, Any] = {}
    missing = [key for key in ("controller", "started", "settings") if key not in data]
    if missing:
        problems.append(f"meta.json has no {', '.join(missing)}")
    if isinstance(data.get("controller"), str):
        out["controller"] = data["controller"]
    elif "controller" in data:
        problems.append(f"meta.json: controller is {_show(data['controller'])}")
    started = data.get("started")
    if is_time(started):
        out["started"] = float(started)
    elif "started" in data:
        problems.append(f"meta.json: started is {_show(started)}, not a time")
    kind = data.get("kind", "search")  # sessions from before retrains existed are searches
    if kind in KINDS:
        out["kind"] = kind
    else:
        problems.append(f"meta.json: kind is {_show(kind)}")
    source = data.get("source")
    if isinstance(source, dict) and isinstance(source.get("controller"), str):
        out["source_controller"] = source["controller"]
    epochs = _settings_epochs(data.get("settings"))
    if epochs is not None:
        out["epochs"] = epochs
    elif "settings" in data:
        problems.append("meta.json: settings.train.epochs is not a positive integer")
    return out


def _settings_epochs(settings: Any) -> int | None:
    train = settings.get("train") if isinstance(settings, dict) else None
    epochs = train.get("epochs") if isinstance(train, dict) else None
    return epochs if _is_count(epochs) and epochs >= 1 else None


def _is_count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def is_time(value: Any) -> bool:
    """A plausible Unix time (a number between 2001 and 2286): not NaN, not a string, not 1e300."""
    return _is_number(value) and _TIME_RANGE[0] <= value <= _TIME_RANGE[1]


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) or math.isfinite(value) else str(value)
    return text if len(text) <= 30 else text[:27] + "..."


def _trainer_alive(status: dict[str, Any]) -> bool:
    """A ``running`` status whose trainer is alive (or on another host, where it cannot be checked)."""
    if status.get("status") != "running":
        return False
    if status.get("host") not in (None, socket.gethostname()):
        return True
    return "pid" in status and pid_alive(status["pid"], status.get("pid_start"))


def _resolve(status: dict[str, Any] | None, tail: LogTail | None, problems: list[str]) -> tuple[str, str]:
    """(status word, reason): a live trainer first, then the log's end record, then status.json.

    The log is the record: where it ends with an end record, that is the status, whatever
    status.json says. Where it has none, status.json's own ending (written after the log's last
    append, e.g. "failed" when the disk filled up) is taken; otherwise the trainer died without
    ending (crashed), unless the log's end is damaged and nothing says how the run ended.
    """
    if status is not None and _trainer_alive(status):
        return "running", ""
    last = tail.last if tail is not None else None
    if isinstance(last, SessionEnd) and last.status in TERMINAL:
        return last.status, ""
    said = status.get("status") if status is not None else None
    if said in TERMINAL:
        return said, "the log has no end record; status from status.json"
    if tail is None and status is None:
        return "damaged", "; ".join(problems) or "no readable log or status"
    if tail is not None and not tail.clean and status is None:
        return "damaged", "the log ends in damage and status.json is unusable: how the run ended is unknown"
    if tail is not None and not tail.events and not tail.damage and tail.torn_tail is None:
        return "crashed", "the trainer stopped before recording anything"
    return "crashed", "the trainer process is gone and the log has no end record"


def _epoch(end: SessionEnd | None, status: dict[str, Any] | None, tail: LogTail | None) -> int:
    """Epochs completed: the end record's, else status.json's, else the log's last epoch_end."""
    if end is not None and end.epoch >= 0:
        return end.epoch
    if status is not None and "epoch" in status:
        return status["epoch"]
    ends = [e.epoch for e in (tail.events if tail is not None else []) if isinstance(e, EpochEnd)]
    return max(ends, default=0)


def _best(end: SessionEnd | None, status: dict[str, Any] | None) -> float | None:
    if end is not None and end.best_ppl is not None and math.isfinite(end.best_ppl):
        return end.best_ppl
    value = status.get("best_ppl") if status is not None else None
    return float(value) if _is_number(value) else None


def _test_ppl(status: dict[str, Any] | None, tail: LogTail | None) -> float | None:
    """A retrain's test perplexity: its log's retrain_result, else status.json's (None: not tested)."""
    results = [e for e in (tail.events if tail is not None else []) if isinstance(e, RetrainResult)]
    if results and _is_number(results[-1].test_ppl):
        return results[-1].test_ppl
    value = status.get("test_ppl") if status is not None else None
    return float(value) if _is_number(value) else None


def _read_json(path: Path, what: str, session_id: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise SessionError(f"session {session_id}: {what} is missing") from None
    except (OSError, ValueError) as exc:
        raise SessionError(f"session {session_id}: {what} is unreadable ({_one_line(exc)})") from None
    except RecursionError:
        raise SessionError(f"session {session_id}: {what} is unreadable (nested too deeply)") from None
    if not isinstance(data, dict):
        raise SessionError(f"session {session_id}: {what} is not a JSON object")
    return data


def new_session_id(controller: str) -> str:
    return f"{time.strftime('%Y%m%d-%H%M%S')}-{controller}-{secrets.token_hex(2)}"


def _check_root(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise SessionError(f"sessions folder {root} is not a folder")


def create_session(root: Path, controller: str, meta: dict[str, Any] | None = None) -> Session:
    """A new session folder, made whole under a hidden name and renamed into place.

    With ``meta`` (its ``id`` is filled in) the folder appears with meta.json and a ``running``
    status.json naming this process, so a kill at any later moment leaves a resumable session.
    """
    _check_root(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise SessionError(f"cannot create the sessions folder {root}: {err.strerror}") from None
    for _ in range(10):
        session_id = new_session_id(controller)
        final = root / session_id
        if final.exists():
            continue
        temp = root / f".new-{session_id}"
        try:
            temp.mkdir()
            (temp / "checkpoints").mkdir()
            staged = Session(temp)
            if meta is not None:
                staged.write_meta({**meta, "id": session_id})
                staged.write_status(status="running", pid=os.getpid(), pid_start=process_start_time(os.getpid()),
                                    host=socket.gethostname(), epoch=0, best_ppl=None, best_arch=None)
            os.rename(temp, final)
        except FileExistsError:
            continue
        except (OSError, SessionError) as err:
            _remove_tree(temp)
            reason = err.strerror if isinstance(err, OSError) else str(err)
            raise SessionError(f"cannot create a session in {root}: {reason}") from None
        return Session(final)
    raise SessionError(f"could not create a new session folder in {root}")


def _remove_tree(path: Path) -> None:
    """Remove a half-made session folder (only ever our own hidden one)."""
    if not path.exists():
        return
    for child in sorted(path.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        try:
            child.rmdir() if child.is_dir() else child.unlink()
        except OSError:
            pass
    try:
        path.rmdir()
    except OSError:
        pass


_SESSION_FILES = ("meta.json", "events.log", "status.json")


def _is_session_dir(path: Path) -> bool:
    return (not path.name.startswith(".") and path.is_dir()
            and any((path / name).exists() for name in _SESSION_FILES))


def open_session(root: Path, session_id: str) -> Session:
    """A session by id, or by a unique prefix of its id."""
    _check_root(root)
    if not root.is_dir():
        raise SessionError(f"no sessions folder at {root}")
    path = root / session_id
    if session_id and "/" not in session_id and _is_session_dir(path):
        return Session(path)
    try:
        matches = [p for p in root.iterdir() if p.name.startswith(session_id) and _is_session_dir(p)]
    except OSError as err:
        raise SessionError(f"cannot read the sessions folder {root}: {err.strerror}") from None
    if len(matches) == 1 and session_id:
        return Session(matches[0])
    if len(matches) > 1:
        raise SessionError(f"session id {session_id!r} is ambiguous: {', '.join(sorted(p.name for p in matches))}")
    raise SessionError(f"no session {session_id!r} in {root}")


def all_sessions(root: Path) -> list[Session]:
    """Every session in root (a folder with any of its files), oldest first."""
    _check_root(root)
    if not root.is_dir():
        return []
    try:
        found = [Session(p) for p in root.iterdir() if _is_session_dir(p)]
    except OSError as err:
        raise SessionError(f"cannot read the sessions folder {root}: {err.strerror}") from None
    return sorted(found, key=lambda s: (started_at(s), s.id))


def started_at(session: Session) -> float:
    """When the session started: meta.json's time, else its first event's, else the folder's."""
    try:
        started = session.meta().get("started")
        if is_time(started):
            return float(started)
    except SessionError:
        pass
    first = _first_event(session)
    if first is not None and is_time(first.t):
        return first.t
    try:
        return session.path.stat().st_mtime
    except OSError:
        return 0.0


def _first_event(session: Session) -> Event | None:
    try:
        return read_first(session.log_path) if session.log_path.exists() else None
    except (LogError, OSError):
        return None


@dataclass
class SessionSummary:
    """One row of ``enas-tui sessions``; ``damaged`` names damaged or missing files (None: none)."""

    id: str
    kind: str  # search | retrain
    controller: str  # a retrain's: the controller of the search its cell came from ("-": given by hand)
    status: str
    epoch: int
    epochs: int
    best_ppl: float | None  # best validation perplexity (a search's: the shared-weight model's)
    started: float | None
    reason: str = ""
    damaged: str | None = None
    test_ppl: float | None = None  # a finished retrain's test perplexity


def summarize(session: Session) -> SessionSummary:
    """A session's row, read on its own: whatever is damaged is named, never raised."""
    try:
        return _summarize(session)
    except Exception as err:  # noqa: BLE001 - one bad session must never hide the others
        return SessionSummary(session.id, "?", "?", "damaged", 0, 0, None, None, _one_line(err), _one_line(err))


def _summarize(session: Session) -> SessionSummary:
    state = session.state()
    problems: list[str] = []
    meta = _checked_meta(session, problems)
    problems += state.problems
    first = None
    if not {"controller", "epochs", "started", "kind"} <= meta.keys():
        first = _first_event(session)  # a damaged meta.json: the log's session_start says it too
    start = first if isinstance(first, SessionStart) else None
    kind = meta.get("kind") or (start.kind if start else "search")
    controller = meta.get("controller") or (start.controller if start else "?")
    if kind == RETRAIN:  # the controller of the search the cell came from
        controller = meta.get("source_controller") or "-"
    epochs = meta.get("epochs") or (_settings_epochs(start.settings) if start else None) or 0
    started = meta.get("started") or (start.t if start and is_time(start.t) else None)
    return SessionSummary(
        id=session.id, kind=kind, controller=controller, status=state.status, epoch=state.epoch, epochs=epochs,
        best_ppl=state.best_ppl, started=started, reason=state.reason,
        damaged="; ".join(problems) or None, test_ppl=state.test_ppl if kind == RETRAIN else None,
    )


def kind_of(session: Session) -> str:
    """What the session runs ("search" or "retrain"): meta.json's kind, else its log's session_start's."""
    problems: list[str] = []
    kind = _checked_meta(session, problems).get("kind")
    if kind is None:
        first = _first_event(session)
        kind = first.kind if isinstance(first, SessionStart) else "search"
    return kind


def newest_running(root: Path) -> Session | None:
    running = [s for s in all_sessions(root) if summarize(s).status == "running"]
    return running[-1] if running else None
