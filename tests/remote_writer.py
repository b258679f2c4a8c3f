"""A stand-in trainer for the remote tests: writes a synthetic session's log as a trainer would.

    python remote_writer.py FOLDER [--epochs N] [--delay S] [--gate I ...] [--crash-after N] [--sigterm]

It writes meta.json and status.json ("running", its own pid), then the events of a synthetic run
one by one (``--delay`` seconds apart). Before event I of each ``--gate I`` it waits until the file
``FOLDER/gate-I`` exists, so a test can hold the run at a known point. It ends like a trainer:
an end record and status "finished"; with ``--crash-after N`` it dies after N events with no end
record, its last words in trainer.log; with ``--sigterm`` a SIGTERM makes it record "stopped" and
exit, as the real trainer does when asked to stop.
"""

from __future__ import annotations

import argparse
import os
import signal
import time
from pathlib import Path

from enas_tui.events import SessionEnd
from enas_tui.session_log import LogWriter
from enas_tui.sessions import Session, process_start_time, write_json_atomic
from enas_tui.tui.synthetic import SyntheticRun, synthetic_events

CRASH_LINE = "RuntimeError: CUDA error: an illegal memory access was encountered"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("folder", type=Path)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--gate", type=int, action="append", default=[])
    parser.add_argument("--crash-after", type=int, default=None)
    parser.add_argument("--sigterm", action="store_true")
    args = parser.parse_args()
    session = Session(args.folder)
    (session.path / "checkpoints").mkdir(parents=True, exist_ok=True)
    session.write_meta({"id": session.id, "controller": "supervised", "started": time.time(), "pid": os.getpid(),
                        "settings": {"train": {"epochs": args.epochs}}})
    pid = os.getpid()
    write_json_atomic(session.status_path, {"status": "running", "pid": pid, "pid_start": process_start_time(pid),
                                            "epoch": 0})
    stop = []
    if args.sigterm:
        signal.signal(signal.SIGTERM, lambda *_: stop.append(True))
    run = SyntheticRun(epochs=args.epochs)
    with LogWriter(session.log_path) as writer:
        for index, event in enumerate(synthetic_events(run)):
            if index in args.gate:
                gate = session.path / f"gate-{index}"
                deadline = time.monotonic() + 120
                while not gate.exists() and time.monotonic() < deadline and not stop:
                    time.sleep(0.01)
            if stop:
                writer.append(SessionEnd(status="stopped", message="stopped by request", epoch=1))
                session.write_status(status="stopped")
                return
            if args.crash_after is not None and index >= args.crash_after:
                (session.path / "trainer.log").write_text(f"Traceback (most recent call last):\n{CRASH_LINE}\n")
                os._exit(1)
            event.t = time.time()
            writer.append(event)
            time.sleep(args.delay)
    session.write_status(status="finished", epoch=args.epochs)


if __name__ == "__main__":
    main()
