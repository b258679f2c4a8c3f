"""Dashboard benchmark: ingest rate, replay seek time, first frame, CPU while following a live log.

Replay opens at the end of a session: ``first_frame_s`` is the time to the first drawn frame (the
state after the first ~50 ms of indexing), ``replay_at_end_s`` the time until the frame shows the
session's last event (the index complete and the cursor at its end).

    python benchmarks/dashboard.py            # figures as text
    python benchmarks/dashboard.py --json     # one JSON object

Targets (issue 4): ingest >= 20,000 events/s; seek < 100 ms in a 100,000-event session; first
frame < 1 s; under 15% of one core while following a live log at the default refresh; with
``--trainer-epochs N``, the trainer keeps >= 95% of its headless throughput under the dashboard.

The sessions are synthetic (enas_tui/tui/synthetic.py) with the trainer's paper-scale schedule:
400 shared and 2,000 controller steps per epoch, a probe of 100 architectures (100 hidden units)
every 100 controller steps, so about 1 event in 60 is a 190 kB probe.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy loads its BLAS (as the dashboard does)
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import asyncio
import json
import random
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

from enas_tui.session_log import LogReader
from enas_tui.sources import LogFollower
from enas_tui.tui.replay_index import ReplayCursor, ReplayIndex
from enas_tui.tui.state import DashboardState
from enas_tui.tui.synthetic import SyntheticRun, write_synthetic_session


def paper_run(events: int, **changes) -> SyntheticRun:
    """A synthetic run of about ``events`` events on the paper's per-epoch schedule."""
    run = SyntheticRun(controller="supervised", shared_steps=400, controller_steps=2000, probe_every=100,
                       probe_size=100, hidden=100, buffer_start=5, supervised_start=10,
                       buffer_capacity=10_000, buffer_add=1000, derive_every=5, **changes)
    run.epochs = -(-events // run.events_per_epoch) + 1  # enough epochs; the stream is cut at ``events``
    run.stop_after = events
    return run


def ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


# -- ingest ---------------------------------------------------------------------------------------
def bench_fold(session) -> dict:
    """Events/s folded by DashboardState alone, and read + decoded + folded from the log."""
    with LogReader(session.log_path) as reader:
        records = []
        while batch := reader.read_records(max_records=10_000):
            records += batch
    events = [r.event() for r in records]
    state = DashboardState()
    t = time.perf_counter()
    state.apply_all(events)
    fold = time.perf_counter() - t

    follower = LogFollower(session)
    t = time.perf_counter()
    state = DashboardState()
    while batch := follower.poll():
        state.apply_all(batch)
    from_log = time.perf_counter() - t
    follower.close()
    return {"events": len(records), "fold_events_per_s": round(len(events) / fold),
            "log_to_state_events_per_s": round(len(events) / from_log), "log_to_state_s": round(from_log, 3)}


def bench_app_ingest(session, events: int) -> dict:
    """Events/s through the attach dashboard (read, decode, fold, panels) catching up on the log."""
    from enas_tui.tui.app import AttachApp

    async def main() -> dict:
        app = AttachApp(session)
        t = time.perf_counter()
        async with app.run_test(size=(160, 48)) as pilot:
            while app.frames < 1:
                await pilot.pause(0.001)
            first, shown = time.perf_counter(), app.state.seq + 1
            while not (app.source.caught_up and app.source.records >= events):
                await pilot.pause(0.01)
            done = time.perf_counter()
            return {"app_ingest_events_per_s": round((events - shown) / (done - first)),
                    "app_catch_up_s": round(done - t, 3), "app_frames": app.frames}

    return asyncio.run(main())


async def first_frame(app, size=(160, 48)) -> float:
    """Seconds from now until the app's first frame has been drawn to its (virtual) screen."""
    t = time.perf_counter()
    drawn: list[float] = []
    async with app.run_test(size=size) as pilot:
        while app.frames < 1:
            await pilot.pause(0.001)
        app.call_after_refresh(lambda: drawn.append(time.perf_counter() - t))
        while not drawn:
            await asyncio.sleep(0.001)
    return drawn[0]


# -- replay ---------------------------------------------------------------------------------------
def bench_seek(session, seeks: int) -> dict:
    t = time.perf_counter()
    index = ReplayIndex(session.log_path)
    index.build()
    build = time.perf_counter() - t
    n = len(index)
    rng = random.Random(0)
    times = []
    for _ in range(seeks):
        position = rng.randrange(n + 1)
        t = time.perf_counter()
        index.state_at(position)
        times.append(time.perf_counter() - t)
    cursor = ReplayCursor(index)
    steps = []
    for _ in range(200):
        t = time.perf_counter()
        cursor.step(1)
        steps.append(time.perf_counter() - t)
    epochs = []
    for epoch in index.epochs()[:20]:
        t = time.perf_counter()
        cursor.seek(index.epoch_position(epoch))
        epochs.append(time.perf_counter() - t)
    times.sort()
    return {
        "index_records": n, "index_build_s": round(build, 3),
        "seek_ms_median": ms(statistics.median(times)), "seek_ms_p95": ms(times[int(0.95 * len(times)) - 1]),
        "seek_ms_max": ms(times[-1]), "step_event_ms_median": ms(statistics.median(steps)),
        "jump_epoch_ms_max": ms(max(epochs)) if epochs else None,
    }


async def at_end(app, size=(160, 48)) -> float:
    """Seconds from now until replay shows the session's last event."""
    t = time.perf_counter()
    async with app.run_test(size=size) as pilot:
        # The slice that completes the index moves the cursor there and paints in the same call.
        while not (app.index.complete and app.cursor.position == len(app.index) and app.frames >= 1):
            await pilot.pause(0.005)
        return time.perf_counter() - t


def bench_first_frame(session) -> dict:
    """Time to the first drawn frame of replay: in this process, and from a cold process start;
    and to the frame at the end of the session (where replay opens)."""
    from enas_tui.tui.app import ReplayApp

    warm = asyncio.run(first_frame(ReplayApp(session)))
    end = asyncio.run(at_end(ReplayApp(session)))
    code = textwrap.dedent(f"""
        import time
        t0 = time.perf_counter()
        import asyncio, sys
        from pathlib import Path
        from enas_tui.sessions import Session
        from enas_tui.tui.app import ReplayApp
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from dashboard import first_frame
        t1 = time.perf_counter()
        frame = asyncio.run(first_frame(ReplayApp(Session(Path({str(session.path)!r})))))
        print(t1 - t0, t1 - t0 + frame, 'torch' in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    if out.returncode != 0:
        return {"first_frame_s": round(warm, 3), "replay_at_end_s": round(end, 3),
                "cold_error": out.stderr.strip().splitlines()[-1]}
    imports, total, torch = out.stdout.split()
    return {"first_frame_s": round(warm, 3), "replay_at_end_s": round(end, 3),
            "cold_import_s": round(float(imports), 3), "cold_first_frame_s": round(float(total), 3),
            "cold_imported_torch": torch == "True"}


# -- live -----------------------------------------------------------------------------------------
WRITER = textwrap.dedent("""
    import sys, time
    from enas_tui.session_log import LogWriter
    from enas_tui.sessions import Session, write_json_atomic
    from enas_tui.tui.synthetic import SyntheticRun, synthetic_events
    import os, pathlib
    session = Session(pathlib.Path(sys.argv[1]))
    rate, seconds = float(sys.argv[2]), float(sys.argv[3])
    write_json_atomic(session.status_path, {"status": "running", "pid": os.getpid()})
    run = SyntheticRun(shared_steps=400, controller_steps=2000, probe_every=100, probe_size=100, hidden=100,
                       epochs=100, end=None, stop_after=int(rate * seconds))
    start = time.monotonic()
    with LogWriter(session.log_path) as writer:
        for i, event in enumerate(synthetic_events(run)):
            delay = start + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            writer.append(event)
    write_json_atomic(session.status_path, {"status": "finished"})
""")


def bench_live_cpu(root: Path, rate: float, seconds: float) -> dict:
    """CPU share of one core used by the attach dashboard while another process writes the log."""
    from enas_tui.sessions import Session
    from enas_tui.tui.app import AttachApp

    session = Session(root / "live")
    session.path.mkdir(parents=True)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(session.path), str(rate), str(seconds)])

    async def main() -> dict:
        app = AttachApp(session)
        start = time.perf_counter()
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause(1.0)  # past start-up and the first events
            cpu, wall, folded = time.process_time(), time.perf_counter(), app.state.seq
            await pilot.pause(seconds - 2.0)
            used, took = time.process_time() - cpu, time.perf_counter() - wall
            followed = app.state.seq - folded
            return {"live_cpu_percent": round(100 * used / took, 1), "live_writer_rate": rate,
                    "live_events_followed_per_s": round(followed / took), "live_window_s": round(took, 1),
                    "live_frames_per_s": round(app.frames / (time.perf_counter() - start), 1)}

    try:
        return asyncio.run(main())
    finally:
        writer.wait(60)


# -- the trainer's throughput with the dashboard open -------------------------------------------
def training_seconds(session) -> float:
    """Seconds the trainer spent in its epochs (from its EpochEnd records)."""
    from enas_tui.session_log import read_events

    return sum(e.elapsed_s for e in read_events(session.log_path) if e.type == "epoch_end")


def bench_trainer(root: Path, epochs: int) -> dict:
    """A real cpu-preset search, headless and then under the live dashboard (needs torch)."""
    from enas_tui.sessions import all_sessions
    from enas_tui.sources import TrainerSource
    from enas_tui.tui.app import LiveApp

    args = ["--preset", "cpu", "--epochs", str(epochs), "--controller", "supervised", "--seed", "0"]
    headless_root = root / "headless"
    subprocess.run([sys.executable, "-m", "enas_tui", "train", "--headless", *args,
                    "--sessions-dir", str(headless_root)], check=True, capture_output=True, timeout=3600)
    headless = training_seconds(all_sessions(headless_root)[-1])

    source = TrainerSource(root / "dashboard").start(args)

    async def main() -> int:
        app = LiveApp(source)
        async with app.run_test(size=(160, 48)) as pilot:
            while not (source.ended and source.pipe_done):
                await pilot.pause(0.2)
            await pilot.pause(0.3)
            return app.frames

    frames = asyncio.run(main())
    live = training_seconds(source.session)
    return {"trainer_epochs": epochs, "trainer_headless_s": round(headless, 1),
            "trainer_with_dashboard_s": round(live, 1), "trainer_throughput_kept": round(headless / live, 3),
            "trainer_dashboard_frames": frames}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="size of the replay/ingest session")
    parser.add_argument("--seeks", type=int, default=200)
    parser.add_argument("--live-rates", default="50,200",
                        help="events/s the live writer appends, comma-separated (a trainer at paper scale "
                             "on a GPU writes ~5/s, the cpu preset ~20/s; 200 is a stress test)")
    parser.add_argument("--live-seconds", type=float, default=10.0)
    parser.add_argument("--trainer-epochs", type=int, default=0,
                        help="also time a real cpu-preset search of this many epochs, headless and under the "
                             "live dashboard (needs torch; minutes); 0 skips it")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        t = time.perf_counter()
        session = write_synthetic_session(root, paper_run(args.events))
        result: dict = {"session_events": args.events, "session_mb": round(session.log_path.stat().st_size / 2**20, 1),
                        "session_write_s": round(time.perf_counter() - t, 1)}
        result |= bench_fold(session)
        result |= bench_app_ingest(session, result["events"])
        result |= bench_seek(session, args.seeks)
        result |= bench_first_frame(session)
        for rate in (float(r) for r in args.live_rates.split(",")):
            live = bench_live_cpu(root / f"live-{rate:g}", rate, args.live_seconds)
            result |= {f"{key}@{rate:g}": value for key, value in live.items() if key != "live_writer_rate"}
        if args.trainer_epochs:
            result |= bench_trainer(root, args.trainer_epochs)
    if args.json:
        print(json.dumps(result))
        return 0
    width = max(len(k) for k in result)
    for key, value in result.items():
        shown = f"{value:,}" if isinstance(value, (int, float)) and not isinstance(value, bool) else value
        print(f"{key:<{width}}  {shown}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
