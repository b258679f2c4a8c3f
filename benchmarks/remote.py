"""Remote watching benchmark: first frame over a slow link, ssh throughput, latency, reconnection.

    python benchmarks/remote.py                 # everything, as text
    python benchmarks/remote.py --json          # one JSON object
    python benchmarks/remote.py --only link     # one part: link, ssh, latency, reconnect

- ``link``: the first complete frame of a 150-epoch ``paper``-scale session (generated under /tmp,
  deleted after) attached through a throttled pipe: this script stands in for ssh (ENAS_TUI_SSH)
  and relays the remote verb's output, run as a local subprocess, at 10 MB/s with no burst credit.
  Target (issue 10): under 2 s. Also: when the cell shape over the search is complete (the left-out
  probes' architectures come after the first frame), bytes sent against the log's size, and the
  CPU seconds each side used (this process; the remote verb run alone), which depend less on other
  load.
- ``ssh``: events/s through a real ssh attach on loopback (tests/sshd.py) into the dashboard: a
  finished 50,000-event session streamed whole (no catch-up selection), read, decoded and folded.
- ``latency``: a writer appends an event every 50 ms on the "remote" side; the time from its
  timestamp to the dashboard's first repaint that includes it (median, p95), after a second of
  warm-up (the events written before the attach arrive with its catch-up).
- ``reconnect``: the sshd child serving the connection is killed; the time until the stream is
  connected again, and until the next new event is on screen.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO / "tests"))  # the loopback sshd harness


# -- the throttled pipe (this script as ENAS_TUI_SSH) -----------------------------------------------
def relay(rate: float, ssh_args: list[str]) -> int:
    """Run the remote command (the last ssh argument) locally; pass its output on at ``rate`` bytes/s."""
    child = subprocess.Popen(["sh", "-c", ssh_args[-1]], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    fd, free_at = child.stdout.fileno(), time.monotonic()
    while chunk := os.read(fd, 64 * 1024):
        now = time.monotonic()
        if free_at > now:
            time.sleep(free_at - now)
        view = memoryview(chunk)
        while view:
            view = view[os.write(1, view):]
        free_at = max(now, free_at) + len(chunk) / rate  # a link of ``rate`` bytes/s: no credit for idle time
    return child.wait()


# -- sessions -----------------------------------------------------------------------------------------
def paper_session(root: Path, epochs: int):
    """A synthetic session on the paper's per-epoch schedule (dashboard benchmark's shapes)."""
    from enas_tui.tui.synthetic import SyntheticRun, write_synthetic_session

    run = SyntheticRun(controller="supervised", epochs=epochs, shared_steps=400, controller_steps=2000,
                       probe_every=100, probe_size=100, hidden=100, buffer_start=5, supervised_start=10,
                       buffer_capacity=10_000, buffer_add=1000, derive_every=5, end=None)
    return write_synthetic_session(root, run, session_id="paper", status="running")


def scalar_session(root: Path, events: int):
    from enas_tui.tui.synthetic import SyntheticRun, write_synthetic_session

    run = SyntheticRun(epochs=events // 2000 + 1, shared_steps=800, controller_steps=1200, probe_every=400,
                       probe_size=20, stop_after=events, end=None)
    return write_synthetic_session(root, run, session_id="scalars", status="finished")


def _cpu(usage) -> float:
    return usage.ru_utime + usage.ru_stime


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, Python {platform.python_version()}"


def remote_cmd() -> str:
    return f"env PYTHONPATH={REPO} {sys.executable} -m enas_tui"


def stream_for(text: str, sessions_dir: Path | None = None, **kw):
    from enas_tui.remote.hosts import endpoint
    from enas_tui.remote.mirror import Mirror
    from enas_tui.remote.pump import RemoteStream
    from enas_tui.remote.target import parse_target

    target = parse_target(text)
    return RemoteStream(endpoint(target, remote_cmd(), sessions_dir), Mirror.temporary("bench"), **kw)


async def drawn(app) -> None:
    """Wait until the frame being painted now has reached the (virtual) screen."""
    done = asyncio.Event()
    app.call_after_refresh(done.set)
    await done.wait()


# -- link: first frame over 10 MB/s ---------------------------------------------------------------------
def bench_link(epochs: int, rate: float, keep: Path | None) -> dict:
    from enas_tui.remote.follower import RemoteFollower
    from enas_tui.tui.app import AttachApp

    root = keep or Path(tempfile.mkdtemp(prefix="enas-tui-bench-remote-"))
    try:
        t = time.perf_counter()
        session = paper_session(root, epochs) if not (root / "paper" / "events.log").exists() else None
        made = time.perf_counter() - t
        from enas_tui.sessions import Session

        session = session or Session(root / "paper")
        size = session.log_path.stat().st_size
        os.environ["ENAS_TUI_SSH"] = f"{sys.executable} {Path(__file__).resolve()} relay --rate {rate:g} --"
        os.environ["ENAS_TUI_HOSTS"] = str(root / "no-hosts.toml")
        stream = stream_for("box:paper", sessions_dir=root)

        async def main() -> dict:
            t0 = time.perf_counter()
            cpu0 = resource.getrusage(resource.RUSAGE_SELF)
            stream.start()
            await asyncio.to_thread(stream.wait_ready, 60)
            ready = time.perf_counter() - t0
            app = AttachApp(stream.mirror.session, source=RemoteFollower(stream))
            async with app.run_test(size=(160, 48)) as pilot:
                while not stream.caught_up:
                    await pilot.pause(0.005)
                arrived = time.perf_counter() - t0
                target = stream.mirror.session.log_path.stat().st_size
                while not (app.source._reader and app.source._reader.offset >= target and not app.catching_up):
                    await pilot.pause(0.005)
                app.paint(force=True)
                await drawn(app)
                frame = time.perf_counter() - t0
                local = _cpu(resource.getrusage(resource.RUSAGE_SELF)) - _cpu(cpu0)
                shown = app.state.epoch, app.state.probe is not None, len(app.state.shape)
                while not app.source._history_taken:  # the cell shape over the search, after the frame
                    await pilot.pause(0.005)
                app.paint(force=True)
                await drawn(app)
                history = time.perf_counter() - t0, len(app.state.shape)
            stream.close()
            return {"ready_s": ready, "caught_up_arrived_s": arrived, "first_frame_s": frame, "shown": shown,
                    "cpu_local_s": local, "history": history}

        result = asyncio.run(main())
        sent = stream.mirror.session.log_path.stat().st_size
        stream.mirror.remove()
        before = _cpu(resource.getrusage(resource.RUSAGE_CHILDREN))
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "enas_tui", "remote", "stream", "paper", "--thin-over", "0",
                        "--archs", "after", "--sessions-dir", str(root)], stdout=subprocess.DEVNULL, check=True, timeout=300,
                       env={**os.environ, "PYTHONPATH": str(REPO)})
        verb_wall = time.perf_counter() - t
        verb_cpu = _cpu(resource.getrusage(resource.RUSAGE_CHILDREN)) - before
        return {
            "session_epochs": epochs, "log_mb": round(size / 1e6, 1), "generate_s": round(made, 1),
            "link_mb_per_s": rate / 1e6, "sent_mb": round(sent / 1e6, 2), "records_skipped": stream.skipped,
            "first_message_s": round(result["ready_s"], 3),
            "catch_up_arrived_s": round(result["caught_up_arrived_s"], 3),
            "first_complete_frame_s": round(result["first_frame_s"], 3),
            "frame_shows_epoch": result["shown"][0], "frame_has_probe": result["shown"][1],
            "shape_history_s": round(result["history"][0], 3), "shape_history_points": result["history"][1],
            "cpu_local_s": round(result["cpu_local_s"], 2),
            "remote_verb_alone_s": round(verb_wall, 2), "remote_verb_cpu_s": round(verb_cpu, 2),
        }
    finally:
        if keep is None:
            shutil.rmtree(root, ignore_errors=True)


# -- ssh on loopback -----------------------------------------------------------------------------------
def with_sshd(folder: Path):
    from sshd import start_sshd

    server = start_sshd(folder, multiplex=False)  # a connection per call, as ssh does by default
    env = server.env()
    for key in ("ENAS_TUI_SSH", "ENAS_TUI_HOSTS"):
        os.environ[key] = env[key]
    os.environ.pop("SSH_AUTH_SOCK", None)
    return server


def bench_ssh(folder: Path, events: int) -> dict:
    from enas_tui.remote.follower import RemoteFollower
    from enas_tui.tui.app import AttachApp

    root = folder / "sessions"
    session = scalar_session(root, events)
    server = with_sshd(folder / "sshd")
    server.write_hosts(sessions_dir=root)
    try:
        stream = stream_for("box:scalars", thin_first=None)  # everything, as a reconnection would

        async def main() -> tuple[float, float, int]:
            t0 = time.perf_counter()
            stream.start()
            await asyncio.to_thread(stream.wait_ready, 60)
            ready = time.perf_counter() - t0
            app = AttachApp(stream.mirror.session, source=RemoteFollower(stream))
            async with app.run_test(size=(160, 48)) as pilot:
                while app.state.seq < events - 1:
                    await pilot.pause(0.005)
                done = time.perf_counter() - t0
            stream.close()
            return ready, done, stream.mirror.records

        ready, done, got = asyncio.run(main())
        stream.mirror.remove()
        return {"ssh_events": got, "ssh_connect_s": round(ready, 3), "ssh_total_s": round(done, 3),
                "ssh_events_per_s": round(events / (done - ready)),
                "ssh_mb_per_s": round(session.log_path.stat().st_size / 1e6 / (done - ready), 1)}
    finally:
        server.stop(connections=True)


WRITER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from enas_tui.events import ControllerStep, SessionStart
    from enas_tui.session_log import LogWriter
    from enas_tui.sessions import Session, process_start_time, write_json_atomic
    session = Session(Path(sys.argv[1])); session.path.mkdir(parents=True, exist_ok=True)
    session.write_meta({"id": session.id, "controller": "supervised", "started": time.time()})
    write_json_atomic(session.status_path, {"status": "running", "pid": os.getpid(),
                                            "pid_start": process_start_time(os.getpid())})
    period, count = float(sys.argv[2]), int(sys.argv[3])
    with LogWriter(session.log_path) as writer:
        writer.append(SessionStart(session_id=session.id, controller="supervised", seed=0,
                      settings={"train": {"epochs": 1}}, num_nodes=12, decision_sizes=[4] * 23,
                      device="cpu", pid=os.getpid(), host="bench"))
        next_t = time.monotonic()
        for step in range(1, count + 1):
            next_t += period
            time.sleep(max(0.0, next_t - time.monotonic()))
            writer.append(ControllerStep(epoch=1, step=step, reward=0.1, baseline=0.1, advantage=0.0,
                          entropy=30.0, policy_loss=0.0, supervised_loss=None, sample_ppl=800.0, t=time.time()))
""")


def bench_latency_and_reconnect(folder: Path, seconds: float, kills: int) -> dict:
    from enas_tui.remote.follower import RemoteFollower
    from enas_tui.tui.app import AttachApp

    root = folder / "sessions"
    server = with_sshd(folder / "sshd")
    server.write_hosts(sessions_dir=root)
    period = 0.05
    count = int((seconds + kills * 3 + 3) / period)
    writer = subprocess.Popen([sys.executable, "-c", WRITER, str(root / "live"), str(period), str(count)],
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        while not (root / "live" / "events.log").exists():
            time.sleep(0.01)
        stream = stream_for("box:live", backoff=(0.2, 0.5, 1.0))
        times: dict[int, float] = {}  # seq -> the event's timestamp (wall clock, like the writer's)
        latencies: list[float] = []
        reconnects: list[tuple[float, float]] = []

        async def main() -> None:
            stream.start()
            await asyncio.to_thread(stream.wait_ready, 60)
            app = AttachApp(stream.mirror.session, source=RemoteFollower(stream))
            poll, paint = app.source.poll, app.paint
            shown = [-1]

            def polled():
                events = poll()
                for e in events:
                    times[e.seq] = e.t
                return events

            warm = [float("inf")]  # events written before this (the catch-up of the attach) are not measured

            def painted(force: bool = False):
                before = app.frames
                paint(force)
                if app.frames > before and app.state.seq > shown[0]:
                    now = time.time()
                    for seq in range(shown[0] + 1, app.state.seq + 1):
                        if seq in times and times[seq] > warm[0]:
                            latencies.append(now - times[seq])
                    shown[0] = app.state.seq

            app.source.poll, app.paint = polled, painted
            async with app.run_test(size=(160, 48)) as pilot:
                await pilot.pause(1.0)
                warm[0] = time.time()
                await pilot.pause(seconds)
                measured = len(latencies)
                for _ in range(kills):
                    before = stream.connections
                    seq = app.state.seq
                    t0 = time.monotonic()
                    server.kill_connections()
                    while stream.connections == before:
                        await pilot.pause(0.002)
                    connected = time.monotonic() - t0
                    while app.state.seq <= seq + 1:
                        await pilot.pause(0.002)
                    reconnects.append((connected, time.monotonic() - t0))
                    await pilot.pause(1.0)
                del latencies[measured:]  # latency in steady state only
            stream.close()

        asyncio.run(main())
        stream.mirror.remove()
        latencies.sort()
        connect = sorted(r[0] for r in reconnects)
        screen = sorted(r[1] for r in reconnects)
        return {
            "latency_events": len(latencies), "latency_ms_median": round(1000 * statistics.median(latencies), 1),
            "latency_ms_p95": round(1000 * latencies[int(0.95 * len(latencies)) - 1], 1),
            "latency_ms_max": round(1000 * latencies[-1], 1),
            "reconnects": len(reconnects),
            "reconnect_s_median": round(statistics.median(connect), 3) if connect else None,
            "reconnect_s_max": round(connect[-1], 3) if connect else None,
            "reconnect_to_new_event_on_screen_s_median": round(statistics.median(screen), 3) if screen else None,
        }
    finally:
        writer.kill()
        writer.wait()
        server.stop(connections=True)


# -- main ---------------------------------------------------------------------------------------------
def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "relay":
        rate_at = sys.argv.index("--rate")
        sys.exit(relay(float(sys.argv[rate_at + 1]), sys.argv[sys.argv.index("--", rate_at) + 1:]))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--only", choices=("link", "ssh", "latency", "reconnect"), action="append")
    parser.add_argument("--epochs", type=int, default=150, help="epochs of the generated paper-scale session")
    parser.add_argument("--rate", type=float, default=10e6, help="bytes/s of the throttled link")
    parser.add_argument("--events", type=int, default=50_000, help="events streamed through ssh")
    parser.add_argument("--seconds", type=float, default=15.0, help="latency measured this long")
    parser.add_argument("--kills", type=int, default=5, help="connections killed")
    parser.add_argument("--keep", type=Path, default=None, help="reuse/keep the generated session in this folder")
    args = parser.parse_args()
    parts = set(args.only or ("link", "ssh", "latency", "reconnect"))
    out: dict = {"machine": machine()}
    folder = Path(tempfile.mkdtemp(prefix="enas-tui-bench-ssh-"))
    try:
        if "link" in parts:
            out.update(bench_link(args.epochs, args.rate, args.keep))
        if "ssh" in parts:
            out.update(bench_ssh(folder / "ssh", args.events))
        if parts & {"latency", "reconnect"}:
            out.update(bench_latency_and_reconnect(folder / "live", args.seconds,
                                                   args.kills if "reconnect" in parts else 0))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key:45s} {value}")


if __name__ == "__main__":
    main()
