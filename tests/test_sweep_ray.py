"""Real sweeps on an embedded local Ray (one Ray start for the module): every point finishes as an
ordinary session and is analysed, a killed trainer is retried from its checkpoint, the overview
shows the runs and its aggregate is the per-session analyses aggregated directly, a re-run resumes
instead of duplicating, Ctrl-C stops every run with a checkpoint, and ``paper --ray`` runs its
searches as sweep trials."""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import threading
import time
from pathlib import Path

import pytest

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install -e '.[sweep]')")

from enas_tui.cli import main  # noqa: E402
from enas_tui.session_log import read_events  # noqa: E402
from enas_tui.sessions import Session, pid_alive  # noqa: E402
from enas_tui.sweep.record import load_record  # noqa: E402

from helpers import TINY  # noqa: E402

SETS = [arg for item in TINY for arg in ("--set", item)]
EPOCHS = 3
SMALL = ["--controllers", "random,supervised", "--seeds", "0-1", "--epochs", str(EPOCHS), "--name", "small", "--n", "8",
         *SETS]
# epochs long enough that a stop request lands in the middle of the run
LONGER = [item for item in TINY if not item.startswith("train.shared_steps_per_epoch=")]
SLOW = ["--controllers", "unsupervised", "--seeds", "0-1", "--epochs", "3", "--name", "slow", "--n", "8",
        *[arg for item in [*LONGER, "train.shared_steps_per_epoch=30"] for arg in ("--set", item)]]


@pytest.fixture(scope="module")
def local_ray():
    """One embedded Ray for every test here (its start-up is several seconds on two cores)."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("sweeps")


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A small PTB-layout folder: loads in milliseconds where the generated corpus takes a second per run."""
    folder = tmp_path_factory.mktemp("corpus")
    rng = random.Random(0)
    words = [f"w{i}" for i in range(200)]
    for name, lines in (("train", 800), ("valid", 300), ("test", 300)):
        text = "\n".join(" ".join(rng.choices(words, k=12)) for _ in range(lines))
        (folder / f"ptb.{name}.txt").write_text(text + "\n")
    return folder


def sweep(args: list[str], root: Path, capsys, corpus: Path) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", *args, "--data", str(corpus), "--sessions-dir", str(root)])
    out = capsys.readouterr()
    return exit_info.value.code, out.out + out.err


def in_background(target, *args):
    thread = threading.Thread(target=target, args=args, daemon=True)
    thread.start()
    return thread


def kill_after_first_checkpoint(session: Path, deadline_s: float, killed: list) -> None:
    """SIGKILL the session's trainer once it has an epoch checkpoint and more epochs to go."""
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        try:
            status = Session(session).status()
        except Exception:
            status = {}
        if status.get("status") == "running" and 1 <= int(status.get("epoch", 0)) < EPOCHS:
            os.kill(int(status["pid"]), signal.SIGKILL)
            killed.append(int(status["epoch"]))
            return
        time.sleep(0.02)


@pytest.mark.timeout(240)
def test_a_small_sweep_finishes_every_run_and_retries_a_killed_one_from_its_checkpoint(local_ray, root, capsys, corpus):
    victim, killed = root / "small-random-s0", []
    watcher = in_background(kill_after_first_checkpoint, victim, 180.0, killed)
    code, out = sweep(SMALL, root, capsys, corpus)
    watcher.join(5)
    assert code == 0, out
    assert killed, "the trainer was never caught mid-run"
    names = ["small-random-s0", "small-random-s1", "small-supervised-s0", "small-supervised-s1"]
    for name in names:  # ordinary sessions: what `train` makes, finished
        session = Session(root / name)
        meta, status = session.meta(), session.status()
        assert (meta["controller"], meta["seed"]) == (name.split("-")[1], int(name[-1]))
        assert meta["settings"]["model"]["hidden"] == 16 and meta["settings"]["train"]["epochs"] == EPOCHS
        assert status["status"] == "finished" and status["epoch"] == EPOCHS
        assert session.checkpoint_epochs() == list(range(1, EPOCHS + 1))
    events = read_events(victim / "events.log")
    assert [e.seq for e in events] == list(range(len(events)))  # one continuous log across the kill
    starts = [e for e in events if e.type == "session_start"]
    assert [s.resumed_from for s in starts] == [None, f"epoch-{killed[0]:04d}.pt"]  # resumed, not restarted
    ends = [e.epoch for e in events if e.type == "epoch_end"]
    assert ends[-(EPOCHS - killed[0]):] == list(range(killed[0] + 1, EPOCHS + 1)) and ends[0] == 1
    record = load_record(root, "small")
    assert [r.session for r in record.runs] == names
    assert {r.session: r.attempts for r in record.runs} == {names[0]: 2, names[1]: 1, names[2]: 1, names[3]: 1}
    assert all(r.hosts == [socket.gethostname()] for r in record.runs) and all(r.error is None for r in record.runs)
    assert "small-random-s0: trainer killed by SIGKILL" in out and "retrying from its last checkpoint" in out
    assert "small-random-s0: resumed on" in out
    assert out.count("analysing its final checkpoint") == 4 and out.count(": finished and analysed") == 4


@pytest.mark.timeout(120)
def test_the_overview_shows_the_runs_and_its_aggregate_is_the_analyses_aggregated_directly(local_ray, root):
    from enas_tui.analysis import analyze_session
    from enas_tui.replication import aggregate
    from enas_tui.sweep.overview import SweepOverview
    from enas_tui.tui.sweep_overview import WatchApp

    from helpers import screen_lines, sync

    names = ["small-random-s0", "small-random-s1", "small-supervised-s0", "small-supervised-s1"]
    assert all((root / name).is_dir() for name in names), "needs the small sweep of the test above"
    view = SweepOverview(root, "small")
    view.refresh()
    assert [r.state.word for r in view.rows] == ["finished"] * 4 and [r.source for r in view.rows] == ["final"] * 4
    direct = aggregate([analyze_session(Session(root / name), n=8, seed=int(name[-1])) for name in names])
    [group] = view.groups
    assert group.analysed == 4 and list(group.summary.controllers) == list(direct.controllers)
    for controller, cell in direct.controllers.items():
        mine = group.summary.controllers[controller]
        assert mine.seeds == cell.seeds == [0, 1]
        for measure, value in cell.spearman.items():
            assert mine.spearman[measure].mean == pytest.approx(value.mean, abs=1e-9)
            assert mine.spearman[measure].half_width == pytest.approx(value.half_width, abs=1e-9)
        assert mine.collapse["hidden"].mean == pytest.approx(cell.collapse["hidden"].mean, rel=1e-6)

    @sync
    async def watch() -> list[str]:
        app = WatchApp(view)
        async with app.run_test(size=(120, 36)) as pilot:
            await pilot.pause(0.5)
            return screen_lines(app)

    lines = watch()
    rows = [line.split() for line in lines if line.split()[:1] in (["random"], ["supervised"])]
    assert [(r[0], r[1], r[4], r[5]) for r in rows[:4]] == [
        ("random", "0", "finished", f"{EPOCHS}/{EPOCHS}"), ("random", "1", "finished", f"{EPOCHS}/{EPOCHS}"),
        ("supervised", "0", "finished", f"{EPOCHS}/{EPOCHS}"), ("supervised", "1", "finished", f"{EPOCHS}/{EPOCHS}")]
    assert any("4 of 4 runs analysed" in line for line in lines)


@pytest.mark.timeout(60)
def test_running_the_same_command_again_resumes_rather_than_duplicates(local_ray, root, capsys, corpus):
    before = {p.name: p.joinpath("events.log").stat().st_size for p in root.iterdir() if p.name.startswith("small-")}
    assert len(before) == 4, "needs the small sweep of the test above"
    code, out = sweep(SMALL, root, capsys, corpus)
    assert code == 0, out
    after = {p.name: p.joinpath("events.log").stat().st_size for p in root.iterdir() if p.name.startswith("small-")}
    assert after == before  # no new session, no trainer started
    assert out.count(": finished and analysed already") == 4 and "ray " not in out  # Ray is not even asked
    record = load_record(root, "small")
    assert len(record.runs) == 4 and [i["outcome"] for i in record.invocations] == ["finished", "finished"]


@pytest.mark.timeout(240)
def test_ctrl_c_stops_every_run_with_a_checkpoint_and_the_same_command_resumes_them(local_ray, root, capsys, corpus):
    sessions = [root / "slow-unsupervised-s0", root / "slow-unsupervised-s1"]

    def interrupt_when_both_have_an_epoch() -> None:
        """Both runs training, one with an epoch done: on a loaded machine Ray may start the second
        so late that waiting for its first epoch lets the first run finish all of its own."""
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                statuses = [Session(s).status() for s in sessions]
                if (all(st.get("status") == "running" and len(read_events(s / "events.log")) > 5
                        for st, s in zip(statuses, sessions))
                        and max(st.get("epoch", 0) for st in statuses) >= 1):
                    os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C in the sweep's terminal delivers
                    return
            except Exception:
                pass
            time.sleep(0.05)

    watcher = in_background(interrupt_when_both_have_an_epoch)
    code, out = sweep(SLOW, root, capsys, corpus)
    watcher.join(5)
    assert code == 130, out
    assert "stopping every run with a checkpoint" in out and "run the same command again to resume" in out
    assert not (root / "sweeps" / "slow" / "stop").exists()  # the next run is not stopped by a stale request
    stopped_at = {}
    for path in sessions:
        session = Session(path)
        status = session.status()
        assert status["status"] == "stopped", out
        assert session.latest_checkpoint().name == "interrupt.pt"
        assert not pid_alive(int(status["pid"]), status.get("pid_start"))  # no trainer left behind
        stopped_at[path.name] = len(read_events(session.log_path))
    code, out = sweep(SLOW, root, capsys, corpus)
    assert code == 0, out
    for path in sessions:
        events = read_events(path / "events.log")
        starts = [e for e in events if e.type == "session_start"]
        assert [s.resumed_from for s in starts] == [None, "interrupt.pt"]
        assert [e.seq for e in events] == list(range(len(events)))
        assert Session(path).status()["status"] == "finished" and len(events) > stopped_at[path.name]
    assert out.count(": resumed on") == 2


@pytest.mark.timeout(240)
def test_paper_ray_runs_its_searches_as_sweep_trials_and_reports(local_ray, root, capsys, corpus):
    with pytest.raises(SystemExit) as exit_info:
        main(["paper", "--ray", "--epochs", "1", "--n", "8", "--seed", "4", "--data", str(corpus), "--name", "pp",
              "--sessions-dir", str(root), "--out", str(root / "pp-report"), *SETS])
    out = capsys.readouterr()
    assert exit_info.value.code == 0, out.out + out.err
    record = load_record(root, "pp")
    assert [r.session for r in record.runs] == ["pp-random-s4", "pp-unsupervised-s4", "pp-supervised-s4"]
    for run in record.runs:  # trained and analysed by their trials, with the paper's probe sample
        assert Session(root / run.session).status()["status"] == "finished"
        assert (root / "sweeps" / "pp" / "analyses" / f"{run.session}.json").exists()
    assert "paper comparison: preset cpu, seed 4, 1 epochs" in out.out and "-0.315" in out.out
    assert "pp-supervised-s4: analysing on" not in out.out  # analysed within the trial that trained it
    assert (root / "pp-report" / "report.md").exists()


@pytest.mark.timeout(60)
def test_an_unreachable_cluster_is_one_line_in_seconds(tmp_path, capsys):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    started = time.monotonic()
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "--seeds", "0", "--address", f"127.0.0.1:{port}", "--sessions-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and time.monotonic() - started < 30
    assert err == f"enas-tui: error: cannot reach the Ray cluster at 127.0.0.1:{port}: Connection refused\n"
