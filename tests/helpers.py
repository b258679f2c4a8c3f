"""Small shared helpers for the trainer and CLI tests."""

from __future__ import annotations

import os
import subprocess
import sys
import time

TINY = [
    "model.hidden=16", "model.batch_size=8", "model.bptt=10", "model.eval_batch_size=4",
    "ctrl.hidden=16", "ctrl.steps_per_epoch=4", "ctrl.batch_size=2",
    "buffer.start_epoch=1", "buffer.add_per_epoch=20", "buffer.capacity=30", "buffer.replace_per_epoch=5",
    "buffer.supervised_start_epoch=2", "buffer.supervised_batch=8",
    "train.shared_steps_per_epoch=4", "train.probe_every=2", "train.probe_size=12", "train.perf_every=1",
    "train.derive_every=2", "train.valid_batches=10", "train.derive_samples=5", "train.derive_batches=1",
]

# A retrain small enough for tests (with TINY's model.* settings, which paper passes on to its
# retrains): 4 steps an epoch, and the whole-split evaluations in few, wide batches.
RETRAIN_TINY = ["train.steps_per_epoch=4", "train.test_batch_size=16", "model.eval_batch_size=16", "train.threads=1"]

VOLATILE = {"t", "tokens_per_s", "elapsed_s", "session_id", "pid", "host", "resumed_from", "path"}


def comparable(event) -> dict:
    """An event's recorded values without wall-clock, process and path fields."""
    import numpy as np

    out = {}
    for key, value in event.to_dict().items():
        if key in VOLATILE:
            continue
        if key == "settings":
            value = {k: v for k, v in value.items() if k != "data"}
        out[key] = value.tolist() if isinstance(value, np.ndarray) else value
    return out


def sync(test):
    """Run an async Pilot test with asyncio (no pytest plugin needed)."""
    import asyncio
    import functools

    @functools.wraps(test)
    def run(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return run


class FakeProcess:
    """Stands in for launcher.TrainerProcess: a child that exited (default) or still runs."""

    def __init__(self, session_id: str | None, alive: bool = False, returncode: int | None = 0, stderr: str = ""):
        self.session_id, self.alive, self.returncode, self._thread = session_id, alive, returncode, None
        self.stderr, self.stopped, self.detached = stderr, False, False

    def error_text(self) -> str:
        return self.stderr

    def stop(self) -> None:
        self.stopped = True

    def detach(self) -> None:
        self.detached = True


# -- the command line as a subprocess ---------------------------------------------------------------
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "COLUMNS": "120"}


def cli(*args: str, **kw) -> subprocess.CompletedProcess:
    """Run ``enas-tui ARGS`` to completion (a deadline of 300 s)."""
    return subprocess.run([sys.executable, "-m", "enas_tui", *args], capture_output=True, text=True,
                          env=ENV, timeout=300, **kw)


def start(*args: str) -> subprocess.Popen:
    """Start ``enas-tui ARGS`` without waiting (to signal or kill it)."""
    return subprocess.Popen([sys.executable, "-m", "enas_tui", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)


def wait_for(predicate, timeout=120.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    raise AssertionError("timed out waiting")


def screen_lines(app) -> list[str]:
    """What the app's screen shows, as plain text lines (from its SVG screenshot, a public API)."""
    import html
    import re

    svg = app.export_screenshot()
    width, height = app.size
    rows = [[" "] * width for _ in range(height)]
    char_w = line_h = None
    texts = re.findall(r'<text class="[^"]+" x="([0-9.]+)" y="([0-9.]+)"[^>]*>([^<]*)</text>', svg)
    ys = sorted({float(y) for _, y, _ in texts})
    line_h = (ys[-1] - ys[0]) / max(1, len(ys) - 1) if len(ys) > 1 else 24.4
    char_w = 12.2  # Rich's SVG export: 0.61 of the 20 px font size per cell
    line_h = 24.4
    for x, y, text in texts:
        col, row = round(float(x) / char_w), round((float(y) - ys[0]) / line_h) if ys else 0
        row += round(ys[0] / line_h) - 1 if ys and ys[0] > line_h else 0
        for i, ch in enumerate(html.unescape(text).replace("\xa0", " ")):
            if 0 <= row < height and 0 <= col + i < width:
                rows[row][col + i] = ch
    return ["".join(r).rstrip() for r in rows]


# Tensor methods that copy a value to the host: on an accelerator each one waits for the device.
READS = ("item", "tolist", "__bool__", "__float__", "__int__", "__index__", "numpy")


def count_reads(monkeypatch, phase=lambda: None, ignore=lambda tensor: False) -> list:
    """Record every host read of a tensor value from here on, as (phase(), method name): the CPU
    stand-in for CUDA's sync debug mode (``phase`` says what the code under test was doing;
    ``ignore`` names tensors that live on the host even on a GPU run)."""
    import torch

    reads: list = []
    for name in READS:
        real = getattr(torch.Tensor, name)

        def read(self, *args, _real=real, _name=name, **kwargs):
            if not ignore(self):
                reads.append((phase(), _name))
            return _real(self, *args, **kwargs)

        monkeypatch.setattr(torch.Tensor, name, read)
    return reads


def optimizer_steps(optimizer):
    """``ignore`` for count_reads: Adam's step counters, kept on the CPU unless ``capturable``."""
    return lambda tensor: any(tensor is state.get("step") for state in optimizer.state.values())
