"""Sweeps without Ray: the grid, stable session ids, the record, ``sweep status``, bad flags, no Ray installed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from enas_tui.cli import main
from enas_tui.session_log import LogWriter
from enas_tui.sessions import Session, create_session
from enas_tui.sweep.grid import GridError, Point, build_spec, parse_seeds, parse_sets
from enas_tui.sweep.record import (
    SweepError, analysis_path, load_record, merge, new_record, record_path, run_states, save_record, sweep_names,
)
from enas_tui.sweep.trial import TrainerRun, TrialFailed

from helpers import TINY
from sweep_fixtures import seed_result, write_saved_analysis

pytestmark = pytest.mark.timeout(120)


def test_the_grid_is_controllers_times_seeds_times_every_set_list():
    spec = build_spec("random,supervised", "0-2,7", ["ctrl.entropy_weight=1e-4,1e-3", "model.hidden=32",
                                                      "train.derive_every=2,3,4"], name="g")
    points = spec.points()
    assert len(points) == 2 * 4 * 2 * 3
    assert spec.fixed == ["model.hidden=32"]
    assert points[0] == Point("random", 0, (("ctrl.entropy_weight", "1e-4"), ("train.derive_every", "2")))
    assert points[-1] == Point("supervised", 7, (("ctrl.entropy_weight", "1e-3"), ("train.derive_every", "4")))
    ids = [spec.session_id(p) for p in points]
    assert len(set(ids)) == len(ids)
    assert ids[0].startswith("g-random-s0-") and len(ids[0]) == len("g-random-s0-") + 6


def test_session_ids_and_the_default_name_depend_only_on_the_command():
    one = build_spec("random", "0-1", ["ctrl.entropy_weight=1e-4,1e-3"])
    two = build_spec("random", "0-1", ["ctrl.entropy_weight=1e-4,1e-3"])
    other = build_spec("random", "0-1", ["ctrl.entropy_weight=1e-4,1e-2"])
    assert one.name == two.name != other.name and one.name.startswith("sweep-")
    assert [one.session_id(p) for p in one.points()] == [two.session_id(p) for p in two.points()]
    plain = build_spec("unsupervised", "3", [], name="n")
    assert [plain.session_id(p) for p in plain.points()] == ["n-unsupervised-s3"]


def test_seed_lists():
    assert parse_seeds("0-3") == [0, 1, 2, 3]
    assert parse_seeds("5,1,1-2") == [1, 2, 5]
    for bad in ("", "a", "3-1", "1-", "-2"):
        with pytest.raises(GridError):
            parse_seeds(bad)


def test_a_setting_named_twice_or_empty_is_refused():
    with pytest.raises(GridError, match="given twice"):
        parse_sets(["model.hidden=8", "model.hidden=16"])
    with pytest.raises(GridError, match="empty value"):
        parse_sets(["model.hidden=8,"])


@pytest.mark.parametrize("args, fragment", [
    (["--seeds", "0-1", "--controllers", "random,greedy"], "unknown controller 'greedy'"),
    (["--seeds", "4-2"], "runs backwards"),
    (["--controllers", "random"], "sweep needs --seeds"),
    (["--seeds", "0", "--set", "model.hiden=3,4"], "model has no setting 'hiden'"),
    (["--seeds", "0", "--set", "model.hidden=8,big"], "'big' is not a valid int"),
    (["--seeds", "0", "--name", "../x"], "--name '../x'"),
    (["--seeds", "0", "--preset", "huge"], "unknown preset 'huge'"),
    (["--seeds", "0", "--epochs", "0"], "--epochs must be at least 1"),
    (["--seeds", "0", "--data", "/no/such/folder"], "no such folder"),
])
def test_bad_sweep_flags_are_one_line_with_exit_code_2(tmp_path, capsys, args, fragment):
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", *args, "--sessions-dir", str(tmp_path)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("enas-tui: error:") and fragment in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not (tmp_path / "sweeps").exists()  # nothing recorded for a command that never ran


def test_without_ray_the_sweep_says_how_to_install_it(tmp_path):
    fake = tmp_path / "noray"  # a `ray` package that fails to import, as on a machine without the extra
    (fake / "ray").mkdir(parents=True)
    (fake / "ray" / "__init__.py").write_text("raise ImportError('No module named ray')\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(fake), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-m", "enas_tui", "sweep", "--seeds", "0-1", "--sessions-dir",
                          str(tmp_path / "s")], capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and 'pip install "enas-tui[sweep]"' in out.stderr
    status = subprocess.run([sys.executable, "-m", "enas_tui", "sweep", "status", "--sessions-dir",
                             str(tmp_path / "s")], capture_output=True, text=True, env=env, timeout=60)
    assert status.returncode == 0 and "no sweeps in" in status.stdout  # status needs no Ray


def test_a_rerun_joins_its_record_adds_new_points_and_refuses_other_shared_flags(tmp_path):
    first = build_spec("random", "0-1", ["model.hidden=16"], name="r", epochs=3)
    record = new_record(first)
    save_record(tmp_path, record)
    again = build_spec("random,supervised", "1-2", ["model.hidden=16"], name="r", epochs=3, retries=5)
    record = load_record(tmp_path, "r")
    wanted = merge(record, again)
    assert wanted == ["r-random-s1", "r-random-s2", "r-supervised-s1", "r-supervised-s2"]
    assert [r.session for r in record.runs] == ["r-random-s0", "r-random-s1", "r-random-s2",
                                                "r-supervised-s1", "r-supervised-s2"]
    assert record.spec.seeds == [0, 1, 2] and record.spec.controllers == ["random", "supervised"]
    assert record.spec.retries == 5
    with pytest.raises(SweepError, match="epochs 3, not 4"):
        merge(record, build_spec("random", "0", ["model.hidden=16"], name="r", epochs=4))
    with pytest.raises(SweepError, match="fixed model.hidden=16, not model.hidden=32"):
        merge(record, build_spec("random", "0", ["model.hidden=32"], name="r", epochs=3))


def test_sweep_status_lists_sweeps_and_shows_each_run(tmp_path, capsys):
    spec = build_spec("random,supervised", "0", ["ctrl.entropy_weight=1e-4,1e-3"], name="st", epochs=2)
    record = new_record(spec)
    record.runs[1].hosts, record.runs[1].attempts = ["nodeA"], 3
    record.runs[1].error = "trainer killed by SIGKILL (epoch 1)"
    save_record(tmp_path, record)
    session = create_session(tmp_path, "random", session_id=record.runs[0].session)  # a run whose trainer has begun
    session.write_meta({"controller": "random", "settings": {"train": {"epochs": 2}}, "started": 0})
    session.write_status(status="finished", epoch=2, best_ppl=812.5, host="nodeB")
    main_ok(["sweep", "status", "--sessions-dir", str(tmp_path)])
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["sweep", "runs", "status", "created"]
    assert out[1].split()[:5] == ["st", "4", "1", "trained,", "3"]  # trained, its analysis not saved yet
    result = seed_result("random", 0, session.id)
    write_saved_analysis(analysis_path(tmp_path, "st", session.id), result, epoch=1, n=100)
    assert run_states(tmp_path, record)[0].word == "trained"  # an analysis of another epoch is not the final one
    write_saved_analysis(analysis_path(tmp_path, "st", session.id), result, epoch=2, n=100)
    main_ok(["sweep", "status", "--sessions-dir", str(tmp_path)])
    assert capsys.readouterr().out.splitlines()[1].split()[:5] == ["st", "4", "1", "finished,", "3"]
    main_ok(["sweep", "status", "st", "--sessions-dir", str(tmp_path)])
    lines = capsys.readouterr().out.splitlines()
    assert "4 runs (1 finished, 3 pending)" in lines[0]
    assert lines[2].split() == [record.runs[0].session, "random", "0", "ctrl.entropy_weight=1e-4", "nodeB",
                                "finished", "2/2", "812.50", "0"]
    assert lines[3].split()[4:] == ["nodeA", "pending", "-", "-", "3", "trainer", "killed", "by", "SIGKILL",
                                    "(epoch", "1)"]
    # under the runs, Table 1 over seeds per group of settings, from the final analyses saved so far
    text = "\n".join(lines)
    assert "sweep st, ctrl.entropy_weight=1e-4: 1 of 2 runs analysed" in text
    assert text.count("runs analysed") == 1  # the other group (1e-3) has no analysis yet: no table
    random_row = next(line for line in lines if line.startswith("│ random") and "ours (1 seeds)" in line)
    assert "-0.090 (n=1)" in random_row  # the saved analysis's common activations
    main_ok(["sweep", "status", "st", "--json", "--sessions-dir", str(tmp_path)])
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["status"] for r in rows] == ["finished", "pending", "pending", "pending"]
    assert rows[0]["best_ppl"] == 812.5 and rows[1]["hosts"] == ["nodeA"]


def test_sweep_status_of_an_unknown_or_damaged_sweep_is_one_line(tmp_path, capsys):
    save_record(tmp_path, new_record(build_spec("random", "0", [], name="good")))
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "status", "nope", "--sessions-dir", str(tmp_path)])
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "no sweep 'nope'" in err and "sweeps: good" in err and err.count("\n") == 1
    record_path(tmp_path, "bad").write_text('{"name": "bad", "runs": [')
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", "status", "bad", "--sessions-dir", str(tmp_path)])
    assert exit_info.value.code == 1 and "unreadable" in capsys.readouterr().err
    assert sweep_names(tmp_path) == ["bad", "good"]


def test_train_session_id_names_the_folder_once(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--headless", "--session-id", "bad/id", "--sessions-dir", str(tmp_path), "--epochs", "1",
              *[a for item in TINY for a in ("--set", item)]])
    assert exit_info.value.code == 1 and "bad session id 'bad/id'" in capsys.readouterr().err
    create_session(tmp_path, "random", session_id="taken")
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--headless", "--session-id", "taken", "--sessions-dir", str(tmp_path), "--epochs", "1",
              *[a for item in TINY for a in ("--set", item)]])
    assert exit_info.value.code == 1 and "continue it with: enas-tui train --resume taken" in capsys.readouterr().err


def test_a_trial_whose_trainer_fails_reports_the_trainers_one_line_error(tmp_path):
    data = tmp_path / "broken"
    data.mkdir()
    (data / "ptb.train.txt").write_text("a b c\n")  # no valid/test files: the trainer refuses to start
    spec = build_spec("random", "0", TINY, name="f", data=str(data), epochs=1)
    run = TrainerRun(tmp_path / "s", spec, spec.points()[0])
    assert run.start() == "started"
    progress = run.wait(60)
    assert progress.returncode == 1
    with pytest.raises(TrialFailed) as failure:
        run.outcome(progress)
    assert str(failure.value).startswith("f-random-s0: trainer exited with code 1: ")
    assert "ptb.valid.txt" in str(failure.value)


def test_run_states_of_a_record_without_sessions_are_pending(tmp_path):
    record = new_record(build_spec("random", "0-2", [], name="p"))
    assert [s.status for s in run_states(tmp_path, record)] == ["pending"] * 3


def main_ok(args: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 0


def test_a_run_killed_before_its_first_checkpoint_is_set_aside_and_started_again(tmp_path):
    spec = build_spec("random", "0", TINY, name="a", epochs=1)
    root = tmp_path / "s"
    lost = create_session(root, "random", session_id="a-random-s0")  # meta and a partial log, no checkpoint
    lost.write_meta({"controller": "random", "settings": {}, "started": 0})
    lost.write_status(status="running", pid=2 ** 22 + 7, host=None)
    (lost.path / "events.log").write_bytes(b"ENASLOG\x01partial")
    run = TrainerRun(root, spec, spec.points()[0])
    try:
        assert run.start() == "started"
        aside = list((root / "sweeps" / "a" / "set-aside").iterdir())
        assert [p.name.startswith("a-random-s0-") for p in aside] == [True]
        assert (aside[0] / "events.log").read_bytes() == b"ENASLOG\x01partial"  # kept, not deleted
    finally:
        run.stop(60)


def _remote_session(root: Path, sid: str) -> Session:
    """A session whose status says a trainer on another host is running it, with a checkpoint to resume."""
    session = create_session(root, "random", session_id=sid)
    session.write_meta({"controller": "random", "settings": {}, "started": 0})
    session.write_status(status="running", pid=4242, host="node-elsewhere")
    (session.checkpoint_dir / "epoch-0001.pt").write_bytes(b"not really")
    (session.checkpoint_dir / "LATEST").write_text("epoch-0001.pt\n")
    return session


def test_a_run_whose_host_died_is_marked_crashed_and_resumed_elsewhere(tmp_path):
    spec = build_spec("random", "0", TINY, name="h", epochs=1)
    session = _remote_session(tmp_path, "h-random-s0")
    LogWriter(session.log_path).close()  # a log nobody holds: the trainer on node-elsewhere is gone
    run = TrainerRun(tmp_path, spec, spec.points()[0])
    try:
        assert run.start() == "resumed"
        status = session.status()
        assert status["status"] == "crashed" and "trainer on node-elsewhere lost" in status["message"]
    finally:
        run.stop(60)


def test_a_run_still_written_by_a_trainer_on_another_host_is_not_taken_over(tmp_path):
    spec = build_spec("random", "0", TINY, name="w", epochs=1)
    session = _remote_session(tmp_path, "w-random-s0")
    writer = LogWriter(session.log_path)  # holds the log's lock, as a live trainer does
    run = TrainerRun(tmp_path, spec, spec.points()[0])
    run.lock_wait_s = 0.3
    try:
        with pytest.raises(TrialFailed, match="still being written by a trainer on node-elsewhere"):
            run.start()
        assert run.process is None and session.status()["status"] == "running"
    finally:
        writer.close()


# -- the final analysis of each run ---------------------------------------------------------------
def finish(run: TrainerRun, timeout: float = 120) -> str:
    """Wait for the trial's current child; its outcome (the analysis is started after training)."""
    deadline = time.monotonic() + timeout
    while (progress := run.wait(5)).returncode is None:
        assert time.monotonic() < deadline, "the child did not finish in time"
    return run.outcome(progress)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    """A small PTB-layout folder (loads in milliseconds)."""
    import random

    folder = tmp_path_factory.mktemp("corpus")
    rng = random.Random(0)
    words = [f"w{i}" for i in range(200)]
    for name, lines in (("train", 800), ("valid", 300), ("test", 300)):
        (folder / f"ptb.{name}.txt").write_text("\n".join(" ".join(rng.choices(words, k=12)) for _ in range(lines)) + "\n")
    return folder


@pytest.mark.timeout(240)
def test_a_trial_trains_then_saves_the_analysis_paper_would_make(tmp_path, corpus):
    from enas_tui.analysis import analyze_session, load_analysis
    from enas_tui.replication import SeedResult, read_seed_result

    spec = build_spec("supervised", "3", TINY, name="t", data=str(corpus), epochs=1, n=8)
    run = TrainerRun(tmp_path, spec, spec.points()[0])
    assert run.start() == "started"
    assert finish(run) == "trained" and not run.analysis.exists()
    run.start_analysis()
    assert finish(run) == "finished"
    saved = read_seed_result(run.analysis)  # what watch aggregates, read without torch
    direct = analyze_session(Session(tmp_path / "t-supervised-s3"), n=8, seed=3)  # as paper analyses a run
    expected = SeedResult.from_analysis(direct)
    assert (saved.controller, saved.run_seed, saved.session) == ("supervised", 3, "t-supervised-s3")
    assert saved.spearman == pytest.approx(expected.spearman) and saved.collapse == pytest.approx(expected.collapse)
    assert saved.fig1 == pytest.approx(expected.fig1) and saved.fig2_iqr == pytest.approx(expected.fig2_iqr)
    assert load_analysis(run.analysis).trained.archs == direct.trained.archs
    assert run_states(tmp_path, new_record(spec))[0].done
    again = TrainerRun(tmp_path, spec, spec.points()[0])
    assert again.start() == "finished already" and again.process is None
    # trained already, the analysis gone: only the analysis is redone; here it fails (a checkpoint
    # that cannot be read), in one line that names the analysis
    Session(tmp_path / "t-supervised-s3").latest_checkpoint().write_bytes(b"not a checkpoint")
    run.analysis.unlink()
    broken = TrainerRun(tmp_path, spec, spec.points()[0])
    assert broken.start() == "analysing"
    with pytest.raises(TrialFailed, match=r"^t-supervised-s3: analysis of the final checkpoint exited with code 1: "):
        finish(broken)


# -- report --sweep ------------------------------------------------------------------------------
@pytest.mark.timeout(300)
def test_report_on_a_sweep_has_table_1_over_seeds_the_claims_and_figures_per_controller(tmp_path, corpus, capsys):
    from enas_tui.analysis import load_analysis, pair_fig2
    from enas_tui.replication import aggregate
    from enas_tui.sweep_results import sweep_analyses

    spec = build_spec("random,supervised", "0-1", TINY, name="rep", data=str(corpus), epochs=1, n=8)
    save_record(tmp_path, new_record(spec))
    for point in spec.points()[:3]:  # supervised seed 1 never runs: left out
        main_ok(["train", "--headless", "--session-id", spec.session_id(point), "--controller", point.controller,
                 "--seed", str(point.seed), "--data", str(corpus), "--epochs", "1", "--sessions-dir", str(tmp_path),
                 *[a for item in TINY for a in ("--set", item)]])
    capsys.readouterr()
    out_dir = tmp_path / "report"
    main_ok(["report", "rep", "--out", str(out_dir), "--sessions-dir", str(tmp_path)])  # a sweep's name
    out = capsys.readouterr().out
    assert "analysed now (their trials had not): rep-random-s0, rep-random-s1, rep-supervised-s0" in out
    assert "left out (not finished): 1 run(s)" in out and "Table 1 over seeds" in out
    assert sum(line.split()[:1] in (["PASS"], ["FAIL"], ["UNDECIDED"]) for line in out.splitlines()) == 5
    summary = json.loads((out_dir / "summary.json").read_text())
    saved = [load_analysis(analysis_path(tmp_path, "rep", sid))  # each as analyze_session made it (test above)
             for sid in ("rep-random-s0", "rep-random-s1", "rep-supervised-s0")]
    assert [(a.n, a.seed) for a in saved] == [(8, 0), (8, 1), (8, 0)]  # the sweep's n, each run's seed
    direct = aggregate(pair_fig2(saved))
    for name, c in direct.controllers.items():
        mine = summary["controllers"][name]
        assert mine["seeds"] == c.seeds
        for measure, cell in c.spearman.items():
            assert mine["spearman"][measure]["mean"] == pytest.approx(cell.mean)
            assert mine["spearman"][measure]["half_width"] == pytest.approx(cell.half_width)
    md = (out_dir / "report.md").read_text()
    assert "rep-supervised-s1: pending" in md and "](random/report.md) (seeds 0, 1)" in md
    for controller in ("random", "supervised"):
        assert (out_dir / controller / "fig1.png").exists() and (out_dir / controller / "report.md").exists()
        assert "The paper's claims" not in (out_dir / controller / "report.md").read_text()
    assert (out_dir / "table1_seeds.png").exists()
    again = sweep_analyses(tmp_path, "rep")
    assert again.analysed_now == [] and [len(g.analyses) for g in again.groups] == [3]  # read, not redone


@pytest.mark.parametrize("args, code, fragment", [
    (["report", "--sweep", "nope"], 1, "no sweep 'nope'"),
    (["report", "--sweep", "w", "--n", "20"], 2, "--n, --seed, --probe-mode and --probe-state do not apply"),
    (["report", "--sweep", "w", "some-session"], 2, "takes no sessions"),
    (["report", "--sweep", "w"], 1, "sweep w has no finished run yet (2 pending)"),
    (["report"], 2, "report needs a session (or several), or --sweep NAME"),
    (["watch", "nope"], 1, "no sweep 'nope'"),
    (["watch", "w"], 1, "watch is a dashboard: run it in a terminal (enas-tui sweep status w prints the runs)"),
    (["paper", "--ray", "--name", "../x"], 2, "--name '../x'"),
])
def test_watch_report_and_paper_ray_errors_are_one_line(tmp_path, capsys, args, code, fragment):
    save_record(tmp_path, new_record(build_spec("random", "0-1", [], name="w")))
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--sessions-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert exit_info.value.code == code, err
    assert fragment in err and err.count("\n") == 1 and "Traceback" not in err
