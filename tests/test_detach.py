"""``train --detach``, progress lines without a terminal, and ``stop`` of a local session."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from enas_tui.events import ControllerStep, EpochEnd, EpochStart, SharedStep
from enas_tui.headless import ProgressLines
from enas_tui.sessions import Session, pid_alive

from helpers import TINY

SETS = [arg for item in TINY for arg in ("--set", item)]


def enas(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "enas_tui", *args], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def test_detached_run_survives_its_parent_reports_progress_and_stops_on_request(tmp_path):
    out = enas("train", "--controller", "supervised", "--detach", "--epochs", "200", "--progress-every", "0.3",
               "--sessions-dir", str(tmp_path), *SETS)
    assert out.returncode == 0, out.stderr
    found = re.search(r"session (\S+) running in the background \(pid (\d+)\)", out.stdout)
    assert found, out.stdout
    session_id, pid = found.group(1), int(found.group(2))
    session = Session(tmp_path / session_id)
    assert f"folder:   {session.path.resolve()}" in out.stdout
    assert f"enas-tui attach {os.uname().nodename}:{session_id} --sessions-dir {tmp_path.resolve()} " in out.stdout
    assert f"enas-tui attach {session_id} --sessions-dir {tmp_path.resolve()}\n" in out.stdout
    assert pid_alive(pid)  # the parent has exited; the trainer runs on in its own process session
    assert os.getsid(pid) == pid
    log = session.path / "trainer.log"
    deadline = time.monotonic() + 90
    line = re.compile(r"epoch \d+/200 \| step \d+/\d+ \| ppl [\d.]+ \| [\d,]+ tok/s \| reward [\d.]+ \| "
                      r"ETA epoch \d+:\d\d:\d\d, run \d+:\d\d:\d\d")
    while not (log.exists() and line.search(log.read_text())):
        assert time.monotonic() < deadline, log.read_text() if log.exists() else "no trainer.log"
        time.sleep(0.1)
    stopped = enas("stop", session_id, "--sessions-dir", str(tmp_path), "--wait", "60")
    assert stopped.returncode == 0, stopped.stderr
    assert f"session {session_id} stopped; continue it with: enas-tui train --resume {session_id}" in stopped.stdout
    deadline = time.monotonic() + 30
    while pid_alive(pid):
        assert time.monotonic() < deadline, "the trainer did not exit"
        time.sleep(0.05)
    assert session.status()["status"] == "stopped" and (session.checkpoint_dir / "interrupt.pt").exists()
    again = enas("stop", session_id, "--sessions-dir", str(tmp_path))
    assert again.returncode == 1 and again.stderr.strip() == (
        f"enas-tui: error: session {session_id} is not running (status stopped)")


def test_a_detached_run_that_cannot_start_says_why(tmp_path):
    out = enas("train", "--detach", "--preset", "huge", "--sessions-dir", str(tmp_path))
    assert out.returncode == 2, out.stderr
    assert out.stderr.strip().splitlines() == ["enas-tui: error: unknown preset 'huge' (choose from cpu, paper)"]
    assert not any(tmp_path.iterdir())


def test_progress_lines_say_where_the_run_is_and_when_it_ends():
    now = [0.0]
    lines = ProgressLines(every=5.0, clock=lambda: now[0])
    lines.track(EpochStart(epoch=3, epochs=10, shared_steps=60, controller_steps=40))
    for step in range(30):
        now[0] += 0.1
        lines.track(SharedStep(epoch=3, step=step, loss=5.0, ppl=148.4, lr=20.0, tokens_per_s=4512.0))
        assert lines.due() is None  # not before 5 s
    now[0] = 6.0
    text = lines.due()
    # 30 of 100 steps in 6 s: 14 s left in this epoch; 7 more epochs of 20 s each
    assert text == "epoch 3/10 | step 30/100 | ppl 148.4 | 4,512 tok/s | reward - | ETA epoch 0:00:14, run 0:02:34"
    assert lines.due() is None
    lines.track(ControllerStep(epoch=3, step=1, reward=0.25, baseline=0.2, advantage=0.05, entropy=30.0,
                               policy_loss=0.1, supervised_loss=None, sample_ppl=320.0))
    lines.track(EpochEnd(epoch=3, train_ppl=150.0, valid_ppl=140.0, reward=0.25, entropy=30.0, elapsed_s=10.0))
    now[0] = 11.0
    assert lines.due().endswith("reward 0.250 | ETA epoch 0:00:24, run 0:01:34")  # the last epochs' pace: 10 s


def test_bad_flags_fail_in_the_foreground_before_anything_is_detached(tmp_path):
    cases = [
        (("--device", "cuda:7"), 2, "--device"),
        (("--set", "model.hidden=nan"), 2, "model.hidden"),
        (("--data", str(tmp_path / "no-such-corpus")), 2, "no such folder"),
        (("--resume", "nope"), 1, "no session"),
        (("--progress-every", "0"), 2, "--progress-every"),
    ]
    for args, code, words in cases:
        out = enas("train", "--detach", "--sessions-dir", str(tmp_path), *args, *SETS)
        lines = out.stderr.strip().splitlines()
        assert out.returncode == code and len(lines) == 1 and lines[0].startswith("enas-tui: error: "), (args, out)
        assert words in lines[0], (args, lines)
        assert not out.stdout and not [p for p in tmp_path.iterdir() if p.name != "no-such-corpus"], args


def children(pid: int) -> list[int]:
    try:
        text = " ".join(p.read_text() for p in Path(f"/proc/{pid}/task").glob("*/children"))
    except OSError:
        return []
    return [int(x) for x in text.split()]


def test_a_stop_while_the_trainer_starts_stops_it_too(tmp_path):
    """SIGTERM to `train --detach` before the trainer has reported its session: the trainer is
    asked to stop too (never left running unseen), and the command exits 143 like any stopped run."""
    parent = subprocess.Popen([sys.executable, "-m", "enas_tui", "train", "--detach", "--epochs", "200",
                               "--sessions-dir", str(tmp_path), *SETS], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    deadline = time.monotonic() + 60
    while not children(parent.pid):
        assert parent.poll() is None and time.monotonic() < deadline, "no trainer child started"
        time.sleep(0.01)
    (child,) = children(parent.pid)
    parent.send_signal(signal.SIGTERM)
    out, err = parent.communicate(timeout=60)
    assert parent.returncode == 143, err
    assert err.strip().splitlines() == ["enas-tui: error: stopped before the trainer had a session; "
                                        "it was asked to stop"]
    assert not pid_alive(child)
    for path in tmp_path.iterdir():  # a session the child made meanwhile was stopped, not left running
        assert Session(path).state().status != "running"
