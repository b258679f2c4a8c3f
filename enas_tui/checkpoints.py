"""Checkpoints: everything needed to continue a run exactly, saved atomically, loaded without pickle.

A checkpoint is a dict of tensors and plain values (state dicts, optimizer and RNG states, the
memory buffer, the training position) written with torch.save to a temporary file and renamed, so
a kill mid-write leaves the previous checkpoint intact. Loading uses ``weights_only=True``: a
checkpoint file can never run code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .sessions import Session

FORMAT = 1


class CheckpointError(Exception):
    """A missing or unreadable checkpoint; one line for the user."""


def save(session: Session, state: dict[str, Any], name: str, keep_epochs: int = 0, latest: bool = True) -> Path:
    """Write ``checkpoints/<name>`` atomically, point LATEST at it (unless ``latest`` is False: a file
    kept beside the run, such as a retrain's best weights, that a resume must not start from),
    prune old epoch files.

    A failure (a full disk, say) removes the temporary files and leaves LATEST on the previous
    checkpoint, which stays intact; it raises CheckpointError with the OS's reason.
    """
    folder = session.checkpoint_dir
    path = folder / name
    tmp = folder / f".{name}.tmp"
    latest_tmp = folder / ".LATEST.tmp"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            torch.save({"format": FORMAT, **state}, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        if latest:
            latest_tmp.write_text(name + "\n")
            os.replace(latest_tmp, folder / "LATEST")
    except Exception as exc:  # torch wraps the OS error of a failed write in a RuntimeError
        for leftover in (tmp, latest_tmp):
            try:
                leftover.unlink(missing_ok=True)
            except OSError:
                pass
        raise CheckpointError(f"cannot save checkpoint {name}: {_reason(exc)}") from None
    if keep_epochs > 0:
        for old in sorted(folder.glob("epoch-*.pt"))[:-keep_epochs]:
            old.unlink(missing_ok=True)
    return path


def _reason(exc: BaseException) -> str:
    """The OS's words for a failed write (e.g. "No space left on device"), wherever torch put them."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        seen = seen.__cause__ or seen.__context__
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def load(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True``; bad files raise CheckpointError."""
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for truncated or foreign files
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"checkpoint {path} is unreadable: {first}") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"checkpoint {path} is not an enas-tui checkpoint (format {FORMAT})")
    return state


def load_latest(session: Session, map_location: str | torch.device = "cpu") -> tuple[Path, dict[str, Any]]:
    path = session.latest_checkpoint()
    if path is None:
        raise CheckpointError(f"session {session.id} has no checkpoint to resume from")
    return path, load(path, map_location)


def load_epoch(session: Session, epoch: int | None = None, map_location: str | torch.device = "cpu") -> tuple[Path, dict[str, Any]]:
    """The checkpoint at the end of ``epoch`` (default: the latest epoch checkpoint)."""
    epochs = session.checkpoint_epochs()
    if not epochs:
        raise CheckpointError(f"session {session.id} has no epoch checkpoint")
    if epoch is None:
        epoch = epochs[-1]
    if epoch not in epochs:
        have = ", ".join(str(e) for e in epochs)
        raise CheckpointError(f"session {session.id} has no checkpoint for epoch {epoch} (have: {have})")
    path = session.epoch_checkpoint(epoch)
    return path, load(path, map_location)
