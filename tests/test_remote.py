"""Remote watching against a real OpenSSH server on loopback (tests/sshd.py): no transport mocks.

The "remote" sessions are written by tests/remote_writer.py (a synthetic trainer) or by
write_synthetic_session; the remote side is this checkout's enas-tui, run by sshd's shell.
"""

from __future__ import annotations

import contextlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from enas_tui.cli import main
from enas_tui.remote.follower import RemoteFollower
from enas_tui.remote.hosts import endpoint
from enas_tui.remote.mirror import Mirror
from enas_tui.remote.pull import cached_copy
from enas_tui.remote.pump import RemoteStream
from enas_tui.remote.target import parse_target
from enas_tui.session_log import LogReader, read_log, scan
from enas_tui.sessions import Session
from enas_tui.tui.app import AttachApp
from enas_tui.tui.compare import CompareApp
from enas_tui.tui.state import DashboardState
from enas_tui.tui.synthetic import SyntheticRun, synthetic_events, write_synthetic_session

from helpers import sync
from sshd import SshUnavailable, start_sshd

WRITER = Path(__file__).with_name("remote_writer.py")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    try:
        srv = start_sshd(tmp_path_factory.mktemp("sshd"))
    except SshUnavailable as err:
        pytest.skip(f"no OpenSSH server to test against: {err}")
    yield srv
    srv.stop()


@pytest.fixture
def remote(server, tmp_path, monkeypatch):
    """A sessions folder "on the box", reachable as box:ID from this process and from CLI children."""
    root = tmp_path / "remote-sessions"
    root.mkdir()
    server.write_hosts(sessions_dir=root)
    for key, value in server.env().items():
        if key in ("ENAS_TUI_SSH", "ENAS_TUI_HOSTS", "XDG_CACHE_HOME"):
            monkeypatch.setenv(key, value)
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    return root


def cli(server, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    """The command in a process of its own, as a user runs it (exit code, stdout, stderr)."""
    return subprocess.run([sys.executable, "-m", "enas_tui", *args], capture_output=True, text=True,
                          env=server.env(), timeout=timeout, stdin=subprocess.DEVNULL)


def run(*args: str) -> subprocess.CompletedProcess:
    """The command in this process (quicker; the ``remote`` fixture's environment)."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exit:
            code = exit.code
    return subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())


def start_writer(folder: Path, *args: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, str(WRITER), str(folder), *args], env=env)


def wait_for(condition, timeout: float = 30.0, what: str = "a condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


async def until(pilot, condition, timeout: float = 30.0, what: str = "the dashboard") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await pilot.pause(0.02)
    await pilot.pause(0.15)  # one more refresh period, so the panels show it


def records(path: Path) -> list[bytes]:
    with LogReader(path) as reader:
        out = []
        while batch := reader.read_records(max_records=10_000):
            out += [r.payload for r in batch]
        return out


def record_count(path: Path) -> int:
    try:
        return scan(path)[0]
    except Exception:
        return 0


def open_stream(text: str, **kw) -> RemoteStream:
    target = parse_target(text)
    return RemoteStream(endpoint(target), Mirror.temporary(target.label()), **kw).start()


def status_line(app) -> str:
    return str(app.query_one("#status").render())


def gate_before_epoch(epoch: int, run: SyntheticRun) -> int:
    return next(i for i, e in enumerate(synthetic_events(run)) if e.type == "epoch_start" and e.epoch == epoch)


# -- attach ------------------------------------------------------------------------------------------
@sync
async def test_attach_over_ssh_follows_a_run_that_is_still_writing(remote):
    run = SyntheticRun(epochs=2)
    gate = gate_before_epoch(2, run)
    writer = start_writer(remote / "run-a", "--epochs", "2", "--gate", str(gate), "--delay", "0.002")
    stream = open_stream("box:run-a")
    try:
        stream.wait_ready(30)
        app = AttachApp(stream.mirror.session, source=RemoteFollower(stream))
        async with app.run_test(size=(100, 30)) as pilot:
            events = list(synthetic_events(run))[:gate]
            last_diag = [e for e in events if e.type == "diagnostics"][-1]
            await until(pilot, lambda: app.state.seq == gate - 1, what="epoch 1 over ssh")
            assert "running" in status_line(app) and "epoch 1/2" in status_line(app)
            assert f"collapse {last_diag.collapse_index['hidden']:.4f}" in app.panel("heatmap").text()
            assert app.state.run_status == "running"
            (remote / "run-a" / f"gate-{gate}").touch()  # the run goes on: the panels must follow
            await until(pilot, lambda: app.state.run_status == "finished", what="the end of the run")
            assert "epoch 2/2" in app.panel("training").text()
            assert "session finished" in app.panel("eventlog").text()
            expected = DashboardState()
            expected.apply_all(synthetic_events(run))
            assert app.state.reward.points == expected.reward.points
            assert app.state.best_ppl == expected.best_ppl
            # the cell shape over the search: the probes the catch-up left out came after it
            assert stream.shape_history and app.state.shape.points == expected.shape.points
    finally:
        stream.close()
        stream.mirror.remove()
        writer.wait(30)
    assert stream.state == "ended"


@sync
async def test_a_dropped_connection_resumes_with_every_event_exactly_once(server, remote):
    folder = remote / "run-b"
    writer = start_writer(folder, "--epochs", "3", "--delay", "0.01", "--gate", "20", "--gate", "150")
    wait_for(lambda: record_count(folder / "events.log") >= 20, what="the writer's first records")
    stream = open_stream("box:run-b", backoff=(0.1, 0.2, 0.4))
    try:
        stream.wait_ready(30)
        app = AttachApp(stream.mirror.session, source=RemoteFollower(stream))
        mirror_log = stream.mirror.session.log_path
        async with app.run_test(size=(100, 30)) as pilot:
            (folder / "gate-20").touch()
            await until(pilot, lambda: stream.mirror.records >= 60, what="records streaming")
            assert server.kill_connections() >= 1  # the link drops mid-stream
            await until(pilot, lambda: stream.connections == 2, what="the first reconnection")
            await until(pilot, lambda: stream.mirror.records == 150, what="the records before the second gate")
            server.stop(connections=True)  # the box's sshd goes away, and its connections with it
            await until(pilot, lambda: "connection refused" in status_line(app), what="the reconnecting notice")
            assert "connection lost, reconnecting (" in status_line(app)
            server.restart()
            (folder / "gate-150").touch()
            await until(pilot, lambda: app.state.run_status == "finished", timeout=40, what="the end of the run")
            log = [line.text for line in app.state.log]  # the event log panel's lines
            assert sum(t.startswith("connection lost, reconnecting (1)") for t in log) == 2
            assert log.count("reconnected") == 2
            assert "connection" not in status_line(app)
        writer.wait(30)
        assert records(mirror_log) == records(folder / "events.log")  # each record once, in order
        expected = DashboardState()
        expected.apply_all(synthetic_events(SyntheticRun(epochs=3)))
        assert app.state.reward.points == expected.reward.points
    finally:
        stream.close()
        stream.mirror.remove()
        if writer.poll() is None:
            writer.kill()


@sync
async def test_a_run_that_crashes_while_watched_remotely_shows_crashed(remote):
    writer = start_writer(remote / "run-c", "--epochs", "2", "--crash-after", "90", "--delay", "0.002")
    stream = open_stream("box:run-c")
    try:
        stream.wait_ready(30)
        app = AttachApp(stream.mirror.session, source=RemoteFollower(stream))
        async with app.run_test(size=(100, 30)) as pilot:
            await until(pilot, lambda: app.state.run_status == "crashed", what="the crash")
            status = status_line(app)
            assert "✖ CRASHED" in status and "illegal memory access" in status  # the one status word
            assert app.state.seq == 89  # every record written before the crash is shown
            # the command to continue it is the one to run on the host, in its sessions folder
            hint = " ".join(line.rstrip("\\").strip() for line in status.splitlines()[1:])
            assert hint == f"continue on box with: enas-tui train --resume run-c --sessions-dir {remote.resolve()}"
    finally:
        stream.close()
        stream.mirror.remove()
        writer.wait(30)


def test_attach_errors_are_one_line_before_the_dashboard(server, remote):
    write_synthetic_session(remote, SyntheticRun(epochs=1), session_id="done")
    cases = [
        (("attach", "box-wrong-key:done"), "authentication refused", "ssh-add"),
        (("attach", "box:done", "--remote-cmd", "/nonexistent/venv/bin/enas-tui"), "enas-tui was not found on box",
         "hosts.toml"),
        (("attach", "box:nope"), "box: no session 'nope'", str(remote)),
        (("attach", f"ssh://127.0.0.1:{free_port()}/done"), "connection refused", "cannot reach 127.0.0.1"),
        (("attach", "box:done", "--remote-cmd", OTHER_VERSION), "enas-tui 9.0 on box speaks remote protocol 99",
         "install the same version on both"),
    ]
    for args, *words in cases:
        out = cli(server, *args)
        assert out.returncode == 1, (args, out.stderr)
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("enas-tui: error: "), (args, out.stderr)
        assert all(word in lines[0] for word in words), (args, lines[0])


# A remote "enas-tui" of another protocol version: it answers the hello line and nothing else.
OTHER_VERSION = ("printf '%s\\n' '{\"enas_tui_remote\": 99, \"enas_tui\": \"9.0\", \"log_format\": 1, "
                 "\"schema\": 1}'; true")


def test_a_chatty_login_script_does_not_break_the_stream(server, remote):
    write_synthetic_session(remote, SyntheticRun(epochs=1), session_id="chat")
    out = run("sessions", "--host", "box", "--remote-cmd",
              f"echo 'Welcome to box!'; echo 'You have new mail.'; {server.remote_cmd}")
    assert out.returncode == 0 and "chat" in out.stdout, out.stderr


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- sessions, stop, pull -------------------------------------------------------------------------------
def test_sessions_on_a_host_are_the_hosts_own_listing(server, remote):
    write_synthetic_session(remote, SyntheticRun(controller="random", epochs=1), session_id="r1")
    write_synthetic_session(remote, SyntheticRun(epochs=1, end=None, stop_after=40), session_id="s1")
    here = run("sessions", "--json", "--sessions-dir", str(remote))
    there = run("sessions", "--host", "box", "--json")
    assert there.returncode == 0, there.stderr
    assert there.stdout == here.stdout and there.stdout.count("\n") == 2
    table = run("sessions", "--host", "box")
    assert "r1" in table.stdout and "crashed" in table.stdout and "finished" in table.stdout
    empty = run("sessions", "--host", "box", "--sessions-dir", str(remote / "none"))
    assert empty.returncode == 0 and f"no sessions in {remote / 'none'} on box" in empty.stdout


def test_stop_asks_a_remote_trainer_to_stop_gracefully(server, remote):
    writer = start_writer(remote / "run-s", "--sigterm", "--gate", "30")
    wait_for(lambda: record_count(remote / "run-s" / "events.log") >= 30, what="the trainer's first records")
    out = cli(server, "stop", "box:run-s", "--wait", "20")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ("session run-s stopped on box; continue it there with: enas-tui train --resume "
                                  f"run-s --sessions-dir {remote.resolve()}")
    assert writer.wait(10) == 0
    assert Session(remote / "run-s").status()["status"] == "stopped"
    assert b'"status":"stopped"' in records(remote / "run-s" / "events.log")[-1]
    again = run("stop", "box:run-s")
    assert again.returncode == 1 and "is not running (status stopped)" in again.stderr


def test_pull_is_resumable_and_verifies_the_log(server, remote, tmp_path):
    session = write_synthetic_session(remote, SyntheticRun(epochs=4, probe_size=100, hidden=100), session_id="big")
    (session.checkpoint_dir / "epoch-0001.pt").write_bytes(os.urandom(300_000))
    (session.checkpoint_dir / "LATEST").write_text("epoch-0001.pt\n")
    local = tmp_path / "local"
    args = [sys.executable, "-m", "enas_tui", "pull", "box:big", "--to", str(local)]
    first = subprocess.Popen([*args, "--bwlimit", "400"], env=server.env(), stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    copy = local / "big" / "events.log"
    wait_for(lambda: copy.exists() and copy.stat().st_size > 400_000, what="part of the log")
    first.send_signal(signal.SIGKILL)  # interrupted
    first.wait(10)
    prefix = copy.read_bytes()
    assert prefix == session.log_path.read_bytes()[:len(prefix)]  # byte for byte what the box holds, so far
    count, end, torn = scan(copy)  # the next pull continues from the end of the last valid record
    size = session.log_path.stat().st_size
    assert 0 < count and end < size and end + torn == len(prefix)
    done = run("pull", "box:big", "--to", str(local), "--checkpoints")
    assert done.returncode == 0, done.stderr
    assert copy.read_bytes() == session.log_path.read_bytes()
    others = sum((session.path / name).stat().st_size
                 for name in ("meta.json", "status.json", "checkpoints/epoch-0001.pt", "checkpoints/LATEST"))
    total = scan(copy)[0]
    assert f"{total:,} log records ({total - count:,} new), {(size - end + others) / 1e6:.1f} MB copied" in done.stdout
    for name in ("meta.json", "status.json", "checkpoints/epoch-0001.pt", "checkpoints/LATEST"):
        assert (local / "big" / name).read_bytes() == (session.path / name).read_bytes(), name
    again = run("pull", "box:big", "--to", str(local))
    assert f"{total:,} log records (0 new), 0.0 MB copied" in again.stdout
    assert "replay it with: enas-tui replay big --sessions-dir" in again.stdout


def test_pull_keeps_the_records_after_damage_and_says_where_it_is(server, remote, tmp_path):
    session = write_synthetic_session(remote, SyntheticRun(epochs=1), session_id="hurt")
    with LogReader(session.log_path) as reader:
        everything = reader.read_records()
    middle = everything[50]
    data = bytearray(session.log_path.read_bytes())
    data[middle.offset + 20] ^= 0xFF  # a flipped bit inside record 50's payload
    session.log_path.write_bytes(bytes(data))
    out = cli(server, "pull", "box:hurt", "--to", str(tmp_path))
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert lines == [f"enas-tui: error: box: log damaged: 1 span, 1 record skipped (first at byte {middle.offset}): "
                     "the copy keeps every record a reader there finds, and the damage where it is"]
    assert f"{len(everything) - 1:,} log records" in out.stdout
    copy = tmp_path / "hurt" / "events.log"
    assert copy.read_bytes() == session.log_path.read_bytes()  # the damage where it is on the box
    here, there = read_log(copy), read_log(session.log_path)
    assert here.damage == there.damage and len(here.events) == len(everything) - 1  # reported the same way
    again = run("pull", "box:hurt", "--to", str(tmp_path))  # nothing new: the same report, nothing copied
    assert again.returncode == 1 and "0 new" in again.stdout and copy.read_bytes() == session.log_path.read_bytes()


@sync
async def test_compare_takes_remote_sessions_through_the_cache(server, remote):
    runs = (SyntheticRun(controller="random", epochs=3), SyntheticRun(controller="supervised", epochs=2))
    for run in runs:
        write_synthetic_session(remote, run)
    copies = [cached_copy(endpoint(parse_target(f"box:synthetic-{run.controller}"))) for run in runs]
    for copy, run in zip(copies, runs):
        assert copy.session.path.is_relative_to(Path(os.environ["XDG_CACHE_HOME"]))
        assert records(copy.session.log_path) == records(remote / f"synthetic-{run.controller}" / "events.log")
    again = cached_copy(endpoint(parse_target("box:synthetic-random")))
    assert again.copied["events.log"] == 0  # only what is new is copied
    app = CompareApp([c.session for c in copies])
    async with app.run_test(size=(160, 48)) as pilot:
        await pilot.pause()
        assert app.epoch == 3
        curves = app.query_one("#curves").text()
        assert "random" in curves and "supervised" in curves


# -- the laptop needs no torch ----------------------------------------------------------------------------
NO_TORCH = '''
import sys
class NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, NoTorch())
'''

WATCHING = NO_TORCH + '''
import asyncio, contextlib, io
from pathlib import Path
from enas_tui.cli import main

def run(*args):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exit:
            code = exit.code
    return code, out.getvalue(), err.getvalue()

local = sys.argv[1]
code, out, err = run("sessions", "--host", "box")
assert code == 0 and "w1" in out, (code, out, err)
code, out, err = run("pull", "box:w1", "--to", local)
assert code == 0 and "pulled w1" in out, (code, out, err)
code, out, err = run("stop", "box:w1")
assert code == 1 and "is not running" in err, (code, out, err)
code, out, err = run("train", "--controller", "random", "--headless")
assert code == 1 and "pip install 'enas-tui[train]'" in err and len(err.strip().splitlines()) == 1, (code, err)

from enas_tui.cli import main
from enas_tui.remote.follower import RemoteFollower
from enas_tui.remote.hosts import endpoint
from enas_tui.remote.mirror import Mirror
from enas_tui.remote.pump import RemoteStream
from enas_tui.remote.target import parse_target
from enas_tui.sessions import Session
from enas_tui.tui.app import AttachApp, ReplayApp
from enas_tui.tui.compare import CompareApp

async def dashboards():
    stream = RemoteStream(endpoint(parse_target("box:w1")), Mirror.temporary("w1")).start()
    stream.wait_ready(30)
    app = AttachApp(stream.mirror.session, source=RemoteFollower(stream))
    async with app.run_test(size=(80, 24)) as pilot:
        while app.state.run_status != "finished":
            await pilot.pause(0.05)
    stream.close()
    stream.mirror.remove()
    pulled = Session(Path(local) / "w1")
    async with ReplayApp(pulled).run_test(size=(80, 24)) as pilot:
        await pilot.press("end")
    async with CompareApp([pulled, pulled]).run_test(size=(80, 24)) as pilot:
        await pilot.pause()

asyncio.run(asyncio.wait_for(dashboards(), 60))
assert "torch" not in sys.modules, "a watching command imported torch"
print("ok")
'''


def test_the_watching_commands_work_without_torch(server, remote, tmp_path):
    write_synthetic_session(remote, SyntheticRun(epochs=1), session_id="w1")
    out = subprocess.run([sys.executable, "-c", WATCHING, str(tmp_path / "local")], capture_output=True, text=True,
                         env=server.env(), timeout=120)
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]
