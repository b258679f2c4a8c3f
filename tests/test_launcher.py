"""The trainer side of the dashboard's fast path: a pipe sink that never blocks the trainer."""

from __future__ import annotations

import json
import os

import numpy as np

from enas_tui.events import Probe, SharedStep, event_from_dict
from enas_tui.launcher import PipeSink


def big_probe(i: int) -> Probe:
    return Probe(epoch=1, step=i, archs=["tanh"] * 100, probs=np.random.default_rng(i).random((100, 23, 11)),
                 hidden=np.zeros((100, 100), np.float32), seq=i)


def test_full_pipe_drops_events_without_blocking_or_tearing_lines():
    read_fd, write_fd = os.pipe()
    sink = PipeSink(write_fd)
    for i in range(50):  # ~10 MB of probes into a 64 KiB pipe nobody reads: must return at once
        sink(big_probe(i))
    assert sink.dropped > 0
    os.set_blocking(read_fd, False)
    data = b""
    for _ in range(400):  # drain; each later event first finishes the line left pending
        try:
            data += os.read(read_fd, 1 << 20)
        except BlockingIOError:
            if not sink.pending:
                break
            sink(SharedStep(epoch=1, step=0, loss=1.0, ppl=2.7, lr=1.0, tokens_per_s=1.0))
    assert not sink.pending
    lines = data.split(b"\n")
    complete = [line for line in lines[:-1] if line]
    assert complete, "at least the first event got through"
    for line in complete:  # every delivered line is a whole event
        assert event_from_dict(json.loads(line)).type in ("probe", "shared_step")
    os.close(read_fd)
    os.close(write_fd)


def test_closed_pipe_turns_the_sink_off():
    read_fd, write_fd = os.pipe()
    sink = PipeSink(write_fd)
    os.close(read_fd)  # the dashboard detached
    sink(SharedStep(epoch=1, step=1, loss=1.0, ppl=2.7, lr=1.0, tokens_per_s=1.0))
    assert sink.closed
    sink(SharedStep(epoch=1, step=2, loss=1.0, ppl=2.7, lr=1.0, tokens_per_s=1.0))  # and stays quiet
    os.close(write_fd)
