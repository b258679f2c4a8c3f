"""Shared fixtures: where the project's shared data lives (absent on a user's fresh clone)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# One intra-op thread for torch in tests and in the trainer subprocesses they start: several
# processes share CI's 2 cores, and oversubscribed OpenMP threads spin (one test measured 80x slower).
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")  # numpy's BLAS too, as the dashboard runs it


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The ``shared`` folder beside the repository (override with ENAS_TUI_SHARED); skips when absent."""
    path = Path(os.environ.get("ENAS_TUI_SHARED") or Path(__file__).resolve().parents[2] / "shared")
    if not path.is_dir():
        pytest.skip(f"shared data folder {path} not found (set ENAS_TUI_SHARED to use real PTB text)")
    return path


@pytest.fixture(scope="session")
def real_ptb_dir(shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small PTB folder from the real text: train = ptb.valid.txt, valid/test = halves of ptb.test.txt."""
    ptb = shared_dir / "data" / "ptb"
    if not (ptb / "ptb.valid.txt").is_file() or not (ptb / "ptb.test.txt").is_file():
        pytest.skip(f"{ptb} lacks ptb.valid.txt or ptb.test.txt")
    out = tmp_path_factory.mktemp("real_ptb")
    shutil.copyfile(ptb / "ptb.valid.txt", out / "ptb.train.txt")
    lines = (ptb / "ptb.test.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    half = len(lines) // 2
    (out / "ptb.valid.txt").write_text("".join(lines[:half]), encoding="utf-8")
    (out / "ptb.test.txt").write_text("".join(lines[half:]), encoding="utf-8")
    return out
