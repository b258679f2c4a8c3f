"""``enas-tui sessions`` on hundreds of sessions with 200 MB logs: it reads each log's end, not the log.

    python benchmarks/sessions_list.py                 # 300 sessions, ~200 MB logs
    python benchmarks/sessions_list.py --sessions 100 --events 20000 --json

One synthetic paper-scale log (benchmarks/dashboard.py's schedule: a 190 kB probe every ~60 events)
is written once and hard-linked into every session folder, so the disk holds it once; each session
has its own meta.json and status.json. Half the sessions lost their status.json (the status then
comes from the log's end record). Figures: the whole command as a user runs it (a fresh process),
the time per session in-process, and for comparison one full read of a log, which is what a
listing that read whole logs would pay per session. The page cache is warm (one file, read
before): a cold cache adds the reads of each log's last window (256 kB, doubled when it holds
fewer than 3 records).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from dashboard import paper_run  # noqa: E402

from enas_tui.session_log import read_log  # noqa: E402
from enas_tui.sessions import Session, all_sessions, summarize  # noqa: E402
from enas_tui.tui.synthetic import write_synthetic_session  # noqa: E402


def build(root: Path, sessions: int, events: int) -> Path:
    """``sessions`` folders sharing one log of about ``events`` events (hard links)."""
    run = paper_run(events)
    run.epochs, run.stop_after = max(1, events // run.events_per_epoch), None  # whole epochs, an end record
    base = write_synthetic_session(root / "_base", run, session_id="base")
    for i in range(sessions):
        folder = root / "sessions" / f"s{i:04d}"
        folder.mkdir(parents=True)
        os.link(base.log_path, folder / "events.log")
        for name in ("meta.json", "status.json"):
            if name == "status.json" and i % 2:
                continue  # no status.json: the log's last records say how the run ended
            (folder / name).write_bytes((base.path / name).read_bytes())
    return root / "sessions"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=300)
    parser.add_argument("--events", type=int, default=110_000, help="events per log (~1.8 kB each on average)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = build(Path(tmp), args.sessions, args.events)
        log_bytes = (root / "s0000" / "events.log").stat().st_size
        read_log(root / "s0000" / "events.log")  # warm the page cache once
        t = time.perf_counter()
        rows = [summarize(s) for s in all_sessions(root)]
        in_process = time.perf_counter() - t
        assert len(rows) == args.sessions and {r.status for r in rows} == {"finished"}, rows[:2]
        t = time.perf_counter()
        out = subprocess.run([sys.executable, "-m", "enas_tui", "sessions", "--sessions-dir", str(root)],
                             capture_output=True, text=True, timeout=600)
        command = time.perf_counter() - t
        assert out.returncode == 0 and len(out.stdout.splitlines()) == args.sessions + 1, out.stderr
        t = time.perf_counter()
        read_log(Session(root / "s0000").log_path)
        full = time.perf_counter() - t
    figures = {
        "sessions": args.sessions, "log_mb": round(log_bytes / 1e6, 1),
        "command_s": round(command, 2), "per_session_ms": round(in_process / args.sessions * 1000, 2),
        "full_log_read_s": round(full, 2),
        "full_reads_would_take_s": round(full * args.sessions, 1),
    }
    if args.json:
        print(json.dumps(figures))
        return
    print(f"{figures['sessions']} sessions, each with a {figures['log_mb']} MB log (half without status.json)")
    print(f"enas-tui sessions (fresh process): {figures['command_s']} s")
    print(f"per session, in process: {figures['per_session_ms']} ms")
    print(f"one full read of a log: {figures['full_log_read_s']} s "
          f"(x {figures['sessions']} = {figures['full_reads_would_take_s']} s for a listing that read whole logs)")


if __name__ == "__main__":
    main()
