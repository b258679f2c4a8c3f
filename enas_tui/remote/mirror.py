"""The local mirror of a remote session: a session folder the dashboard follows like a local one.

What arrives over ssh is written here as it arrives: the remote log's records byte for byte
(after the session-log header) into ``events.log``, and ``meta.json``. ``LogFollower`` and
``AttachApp`` then follow it exactly as they follow a local log, so panels, catch-up chunking and
end-of-run states have one code path for local and remote attach. What only the box can say
comes from the stream instead (follower.py): the session's status (only the box can check the
trainer's pid), the damage its reader found, and the architectures of the probes a catch-up left
out. The mirror's records are a selection of the remote log's, so the mirror keeps where each run
of them lies in the remote log: damage is reported at remote offsets, as a reader there says it.

A mirror belongs to one attach: it is a temporary folder, removed when the attach ends.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from array import array
from bisect import bisect_right
from pathlib import Path
from typing import Any

from enas_tui.session_log import HEADER, HEADER_SIZE, LogError
from enas_tui.sessions import Session, write_json_atomic


class Mirror:
    """A session folder whose log is appended from verified remote frames."""

    def __init__(self, path: Path):
        path.mkdir(parents=True, exist_ok=True)
        (path / "checkpoints").mkdir(exist_ok=True)
        self.session = Session(path)
        self.records = 0
        self.size = 0  # bytes in the mirror's log
        # runs of records contiguous in both logs: where each starts here and in the remote log
        self._runs_here, self._runs_there = array("q", [HEADER_SIZE]), array("q", [HEADER_SIZE])
        self._there_end = HEADER_SIZE  # just past the last record appended, in the remote log
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

    def append(self, records: list[tuple[int, bytes]]) -> None:
        """Append whole records (verified frames, each with its offset in the remote log) in one write."""
        if not records:
            return
        here = self.size
        for offset, frame in records:
            if offset != self._there_end:  # a gap (records left out, or damage skipped there): a new run
                self._runs_here.append(here)
                self._runs_there.append(offset)
            here += len(frame)
            self._there_end = offset + len(frame)
        self._write(b"".join(frame for _, frame in records))
        self.records += len(records)

    def remote_offset(self, offset: int) -> int:
        """Where a byte of the mirror's log lies in the remote log."""
        i = bisect_right(self._runs_here, offset) - 1
        return self._runs_there[i] + offset - self._runs_here[i]

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                written = os.write(self._fd, view)
                self.size += written
                view = view[written:]
        except OSError as err:
            raise LogError(f"cannot write the local copy of the remote log ({self.session.log_path}): "
                           f"{err.strerror}") from None

    def write_meta(self, meta: dict[str, Any]) -> None:
        write_json_atomic(self.session.meta_path, meta)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def remove(self) -> None:
        self.close()
        shutil.rmtree(self.path, ignore_errors=True)
