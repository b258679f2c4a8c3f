"""The local mirror of a remote session: a session folder the dashboard follows like a local one.

What arrives over ssh is written here as it arrives: the remote log's records byte for byte
(after the session-log header) into ``events.log``, and ``meta.json``. ``LogFollower`` and
``AttachApp`` then follow it exactly as they follow a local log, so panels, catch-up chunking and
end-of-run states have one code path for local and remote attach. Two things differ, and the
remote source (follower.py) supplies them: the trainer's status comes from the box (a local pid
check means nothing here), written to ``status.json`` for the record, and the trainer's last
output line, written to ``trainer.log`` where the follower looks for a crash's reason.

A mirror belongs to one attach: it is a temporary folder, removed when the attach ends.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from enas_tui.session_log import HEADER, LogError
from enas_tui.sessions import Session, write_json_atomic


class Mirror:
    """A session folder whose log is appended from verified remote frames."""

    def __init__(self, path: Path):
        path.mkdir(parents=True, exist_ok=True)
        (path / "checkpoints").mkdir(exist_ok=True)
        self.session = Session(path)
        self.records = 0
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND | getattr(os, "O_CLOEXEC", 0)
        self._fd = os.open(self.session.log_path, flags, 0o644)
        self._write(HEADER)

    @classmethod
    def temporary(cls, label: str) -> Mirror:
        """A fresh mirror in the temporary folder, named after the target for whoever looks."""
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in label)[:80]
        return cls(Path(tempfile.mkdtemp(prefix=f"enas-tui-attach-{safe}-")))

    @property
    def path(self) -> Path:
        return self.session.path

    def append(self, frames: list[bytes]) -> None:
        """Append whole records (verified frames) in one write."""
        if frames:
            self._write(b"".join(frames))
            self.records += len(frames)

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as err:
            raise LogError(f"cannot write the local copy of the remote log ({self.session.log_path}): "
                           f"{err.strerror}") from None

    def write_meta(self, meta: dict[str, Any]) -> None:
        write_json_atomic(self.session.meta_path, meta)

    def write_status(self, status: str | None, reason: str, remote: str) -> None:
        """The box's verdict on the trainer, and its last output line (the follower reads both)."""
        tmp = self.path / ".trainer.log.tmp"
        tmp.write_text(reason + "\n" if reason else "", encoding="utf-8")
        os.replace(tmp, self.path / "trainer.log")
        if status is not None:  # "host" is the target (it has a ':'), so no local pid check applies
            write_json_atomic(self.session.status_path, {"status": status, "host": remote, "updated": time.time()})

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def remove(self) -> None:
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)
