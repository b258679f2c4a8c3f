"""The command line as a user runs it: real subprocesses, kills, resumes, bad input."""

from __future__ import annotations

import json
import random
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from enas_tui.cli import main
from enas_tui.search_space import random_architecture
from enas_tui.session_log import LogReader, read_events, read_log
from enas_tui.sessions import all_sessions

from helpers import ENV, TINY, cli, start, wait_for

SETS = [arg for item in TINY for arg in ("--set", item)]
# a short run whose epochs are long enough to kill it in the middle of one
SLOW = [*SETS, "--set", "train.shared_steps_per_epoch=40", "--set", "ctrl.steps_per_epoch=10"]


def only_session(root: Path):
    sessions = all_sessions(root)
    assert len(sessions) == 1
    return sessions[0]


def events_of(session):
    return read_events(session.log_path) if session.log_path.exists() else []


def test_headless_train_then_list(tmp_path):
    out = cli("train", "--controller", "supervised", "--headless", "--epochs", "2", "--sessions-dir", str(tmp_path), *SETS)
    assert out.returncode == 0, out.stderr
    assert "epoch   1 |" in out.stdout and "epoch   2 |" in out.stdout
    assert "model.hidden = 16" in out.stdout  # the resolved settings are printed
    session = only_session(tmp_path)
    assert session.meta()["settings"]["model"]["hidden"] == 16
    listing = cli("sessions", "--sessions-dir", str(tmp_path), "--json")
    row = json.loads(listing.stdout.splitlines()[0])
    assert row["id"] == session.id and row["controller"] == "supervised"
    assert row["status"] == "finished" and row["epoch"] == 2 and row["best_ppl"] > 1
    table = cli("sessions", "--sessions-dir", str(tmp_path))
    assert session.id in table.stdout and "finished" in table.stdout


def test_sessions_dir_from_environment(tmp_path):
    env = {**ENV, "ENAS_TUI_SESSIONS": str(tmp_path)}
    out = subprocess.run([sys.executable, "-m", "enas_tui", "train", "--controller", "random", "--headless",
                          "--epochs", "1", *SETS], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0, out.stderr
    listed = subprocess.run([sys.executable, "-m", "enas_tui", "sessions"], capture_output=True, text=True,
                            env=env, timeout=60)
    assert only_session(tmp_path).id in listed.stdout


def test_sigkill_mid_epoch_then_resume_keeps_every_event(tmp_path):
    proc = start("train", "--controller", "supervised", "--headless", "--epochs", "3",
                 "--sessions-dir", str(tmp_path), *SLOW)
    wait_for(lambda: len(all_sessions(tmp_path)) == 1)
    session = only_session(tmp_path)
    # kill in the middle of epoch 2, after its first checkpoint
    wait_for(lambda: any(e.type == "shared_step" and e.epoch == 2 and e.step >= 50 for e in events_of(session)))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    before = read_events(session.log_path)
    assert before[-1].type != "session_end"
    assert cli("sessions", "--sessions-dir", str(tmp_path), "--json").stdout.count('"crashed"') == 1
    out = cli("train", "--resume", session.id[:12], "--sessions-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    after = read_events(session.log_path)
    assert [e.to_dict() for e in after[:len(before)]] == [e.to_dict() for e in before]
    assert [e.seq for e in after] == list(range(len(after)))
    restart = after[len(before)]
    assert restart.type == "session_start" and restart.resumed_from == "epoch-0001.pt"
    assert after[-1].type == "session_end" and after[-1].status == "finished"
    assert session.status()["status"] == "finished"
    assert session.checkpoint_epochs() == [1, 2, 3]


def test_ctrl_c_stops_with_checkpoint_and_resumes_mid_epoch(tmp_path):
    root = tmp_path / "my sessions"  # a folder a shell would split: the printed command quotes it
    proc = start("train", "--controller", "unsupervised", "--headless", "--epochs", "2",
                 "--sessions-dir", str(root), *SLOW)
    wait_for(lambda: len(all_sessions(root)) == 1)
    session = only_session(root)
    wait_for(lambda: any(e.type == "shared_step" and e.step >= 10 for e in events_of(session)))
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err
    printed = err.split("stopped; continue with: ")[1].splitlines()[0]
    assert shlex.split(printed) == ["enas-tui", "train", "--resume", session.id, "--sessions-dir", str(root)]
    events = read_events(session.log_path)
    assert events[-1].type == "session_end" and events[-1].status == "stopped"
    assert any(e.type == "checkpoint" and e.kind == "interrupt" for e in events)
    assert session.status()["status"] == "stopped"
    done_steps = max(e.step for e in events if e.type == "shared_step")
    out = cli(*shlex.split(printed)[1:])  # the printed command, pasted (enas-tui is this interpreter's -m)
    assert out.returncode == 0, out.stderr
    resumed = read_events(session.log_path)[len(events):]
    first_step = next(e for e in resumed if e.type == "shared_step")
    assert first_step.step == done_steps + 1  # continued mid-epoch, nothing repeated


def test_resume_refuses_a_running_or_finished_session(tmp_path):
    out = cli("train", "--controller", "random", "--headless", "--epochs", "1", "--sessions-dir", str(tmp_path), *SETS)
    assert out.returncode == 0, out.stderr
    session = only_session(tmp_path)
    again = cli("train", "--resume", session.id, "--sessions-dir", str(tmp_path))
    assert again.returncode == 1
    assert again.stderr.strip() == (f"enas-tui: error: session {session.id} already finished its 1 epochs; "
                                    "pass --epochs N to extend it")
    extended = cli("train", "--resume", session.id, "--epochs", "2", "--sessions-dir", str(tmp_path))
    assert extended.returncode == 0, extended.stderr
    assert session.status()["epoch"] == 2


@pytest.mark.parametrize("args, code, fragment", [
    (["train", "--bogus"], 2, "No such option: --bogus"),
    (["train", "--controller", "greedy"], 2, "unknown controller 'greedy'"),
    (["train", "--preset", "huge"], 2, "unknown preset 'huge'"),
    (["train", "--epochs", "0"], 2, "--epochs must be at least 1"),
    (["train", "--seed", "abc"], 2, "--seed"),
    (["train", "--set", "model.hiden=3"], 2, "model has no setting 'hiden'"),
    (["train", "--set", "model.hidden=big"], 2, "'big' is not a valid int"),
    (["train", "--set", "nonsense"], 2, "expected section.field=value"),
    (["train", "--set", "ctrl.lr=nan"], 2, "ctrl.lr must be a finite number, not nan"),
    (["train", "--set", "model.dropout_in=inf"], 2, "model.dropout_in must be a finite number, not inf"),
    (["train", "--set", "train.checkpoint_every_s=-1"], 2, "train.checkpoint_every_s must not be negative"),
    (["train", "--device", "bogus"], 2, "--device: unknown device 'bogus'"),
    (["train", "--set", "model.max_hidden_norm=-1"], 2, "model.max_hidden_norm must not be negative"),
    (["train", "--data", "/no/such/folder"], 2, "no such folder"),
    (["train", "--resume", "nope"], 1, "no session 'nope'"),
    (["data", "download", "wikitext", "--dir", "x"], 2, "unknown corpus 'wikitext'"),
    (["arch", "distance", "tanh,0:relu", "tanh,0:swish"], 1, "unknown activation 'swish'"),
    (["arch", "distance", "tanh", "tanh,0:relu"], 1, "cannot compare"),
    (["arch", "distance", "tanh", "relu", "--ged-timeout", "0"], 2, "--ged-timeout must be positive"),
    (["arch", "distance", "tanh", "relu", "--ged-timeout", "soon"], 2, "--ged-timeout"),
    (["arch", "distance", "tanh", "relu", "--exact-timeout", "-1"], 2, "--exact-timeout must be positive"),
    (["arch", "distance", "tanh" + ",0:tanh" * 61, "relu" + ",0:tanh" * 61], 1, "up to 64 nodes"),
])
def test_bad_input_is_one_line_with_exit_code(tmp_path, capsys, monkeypatch, args, code, fragment):
    monkeypatch.setenv("ENAS_TUI_SESSIONS", str(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == code
    err = capsys.readouterr().err
    assert err.startswith("enas-tui: error:") and fragment in err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert not list(tmp_path.iterdir())  # validated before any session folder exists


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_one_line_and_leaves_no_session(tmp_path):
    out = cli("train", "--device", "cuda", "--headless", "--sessions-dir", str(tmp_path), *SETS)
    assert out.returncode == 2
    assert out.stderr == "enas-tui: error: --device: device 'cuda': CUDA is not available on this machine\n"
    assert not list(tmp_path.iterdir())


def test_data_folder_problems_are_one_line(tmp_path):
    (tmp_path / "ptb.train.txt").write_text("a b c\n")
    out = cli("train", "--data", str(tmp_path), "--headless", "--sessions-dir", str(tmp_path / "s"))
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "ptb.valid.txt" in out.stderr and "Traceback" not in out.stderr


def test_damaged_first_record_is_reported_at_its_exact_offset_and_resume_goes_on(tmp_path):
    out = cli("train", "--controller", "random", "--headless", "--epochs", "1", "--sessions-dir", str(tmp_path), *SETS)
    assert out.returncode == 0
    session = only_session(tmp_path)
    with LogReader(session.log_path) as reader:
        first = reader.read_records(max_records=1)[0]
    data = bytearray(session.log_path.read_bytes())
    data[40] ^= 0xFF  # damage the first record (the session_start)
    session.log_path.write_bytes(bytes(data))
    again = cli("train", "--resume", session.id, "--epochs", "2", "--sessions-dir", str(tmp_path))
    assert again.returncode == 0, again.stderr
    span = (f"events.log: damaged bytes 8-{first.end} ({first.end - 8:,} bytes): payload checksum mismatch; "
            f"1 record skipped; left in place (readers skip it)")
    assert f"warning: {span}" in again.stdout and "Traceback" not in again.stderr
    assert session.log_path.read_bytes().startswith(bytes(data))  # nothing recorded is lost or rewritten
    events = read_events(session.log_path)
    assert [e.message for e in events if e.type == "warning"] == [span]
    assert events[-1].type == "session_end" and events[-1].status == "finished"
    session.meta_path.unlink()  # a missing meta.json must not hide the session
    listing = cli("sessions", "--json", "--sessions-dir", str(tmp_path))
    row = json.loads(listing.stdout)
    assert (row["id"], row["controller"], row["status"], row["epoch"]) == (session.id, "random", "finished", 2)
    assert row["damaged"] == (f"meta.json is missing; events.log: damaged bytes 8-{first.end} ({first.end - 8:,} "
                              f"bytes): payload checksum mismatch; 1 record skipped")  # a small log is read whole


def test_trailing_zeros_are_set_aside_and_resume_goes_on(tmp_path):
    out = cli("train", "--controller", "random", "--headless", "--epochs", "1", "--sessions-dir", str(tmp_path), *SETS)
    assert out.returncode == 0
    session = only_session(tmp_path)
    good = session.log_path.read_bytes()
    with open(session.log_path, "ab") as fh:
        fh.write(bytes(4096))  # what a power cut leaves
    again = cli("train", "--resume", session.id, "--epochs", "2", "--sessions-dir", str(tmp_path))
    assert again.returncode == 0, again.stderr
    side = session.path / f"events.log.damaged-{len(good)}"
    assert side.read_bytes() == bytes(4096)
    assert session.log_path.read_bytes().startswith(good)
    warning = next(e for e in read_events(session.log_path) if e.type == "warning")
    assert warning.kind == "log_damaged" and warning.message == (
        f"events.log: 4,096 bytes at the end of the log (from byte {len(good)}: length checksum mismatch) "
        f"set aside in {side.name}")
    assert read_log(session.log_path).damage == []


ARCH_A, ARCH_B = "tanh,0:relu,1:identity,0:sigmoid", "tanh,0:relu,0:identity,2:tanh"


def test_arch_distance_json():
    import networkx as nx

    from enas_tui.search_space import Architecture
    from enas_tui.similarity import paper_graph

    out = cli("arch", "distance", ARCH_A, ARCH_B, "--json")
    assert out.returncode == 0, out.stderr
    first = next(nx.optimize_graph_edit_distance(*(paper_graph(Architecture.parse(t)) for t in (ARCH_A, ARCH_B))))
    assert json.loads(out.stdout) == {
        # same activation at nodes 0-2
        "common_activations_aligned": 3,
        # node 0 (tanh), node 1 (parent 0, relu), and leaf 3 of both
        "common_activations_paper": 3,
        # same parent only at node 1
        "common_connections": 1,
        # 1 activation + 2 x 2 parent changes + leaves {2,3} vs {1,3}: 2
        "ged_aligned": 7,
        # the shapes are isomorphic (a's chain 1 -> 2 and leaf 3 are b's 2 -> 3 and leaf 1):
        # three relabels, and anything else loses at least two edges and one relabel
        "ged_exact": 3,
        "ged_paper": first,
        "ged_paper_fell_back": False,
        "table1_default": {"common_activations": "common_activations_paper", "ged": "ged_paper"},
    }
    assert first == 6  # networkx's first path misses the isomorphism (exact structure-only GED: 0)


def test_arch_distance_names_every_measure_and_the_default_reading():
    out = cli("arch", "distance", ARCH_A, ARCH_B)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    rows = {line.split()[0]: line.split()[1:] for line in lines[:6]}
    assert list(rows) == ["common_activations_paper", "common_activations_aligned", "common_connections",
                          "ged_paper", "ged_aligned", "ged_exact"]
    assert [r[0] for r in rows.values()] == ["3", "3", "1", "6", "7", "3"]
    assert "(Table 1 default)" in lines[0] and "(Table 1 default)" in lines[3]
    assert "default" not in lines[1] + lines[2] + lines[4] + lines[5]
    assert "reading 'paper'" in lines[6]
    capped = cli("arch", "distance", ARCH_A, ARCH_B, "--ged-timeout", "1e-9", "--json")
    assert json.loads(capped.stdout)["ged_paper_fell_back"] is True
    assert json.loads(capped.stdout)["ged_paper"] == 6  # the aligned bound: 2 x 2 rewired + 2 leaves
    capped_text = cli("arch", "distance", ARCH_A, ARCH_B, "--ged-timeout", "1e-9").stdout.splitlines()
    assert "no networkx value within 1e-09 s" in capped_text[3] and "no networkx" not in out.stdout


def test_arch_distance_of_large_cells_stops_the_exact_search_at_its_limit():
    rng = random.Random(0)
    big = [random_architecture(40, rng).to_text() for _ in range(2)]
    out = cli("arch", "distance", *big, "--exact-timeout", "0.2", "--ged-timeout", "0.2")
    assert out.returncode == 0, out.stderr
    exact_line = out.stdout.splitlines()[5]
    assert exact_line.split()[:2] == ["ged_exact", "-"] and "not proven within 0.2 s" in exact_line
    capped = json.loads(cli("arch", "distance", *big, "--exact-timeout", "0.2", "--ged-timeout", "0.2",
                            "--json").stdout)
    assert capped["ged_exact"] is None and capped["ged_aligned"] > 0


def test_torn_tail_left_by_a_kill_is_cut_on_resume(tmp_path):
    out = cli("train", "--controller", "random", "--headless", "--epochs", "1", "--sessions-dir", str(tmp_path), *SETS)
    assert out.returncode == 0
    session = only_session(tmp_path)
    good = session.log_path.read_bytes()
    with open(session.log_path, "ab") as fh:
        fh.write(b"\x40\x00\x00")  # the start of a record that never finished
    reader = LogReader(session.log_path)
    complete = reader.read()
    assert reader.at_torn_tail() and len(complete) == len(read_events(session.log_path))
    assert cli("train", "--resume", session.id, "--epochs", "2", "--sessions-dir", str(tmp_path)).returncode == 0
    assert session.log_path.read_bytes().startswith(good)
    assert read_events(session.log_path)[-1].type == "session_end"


def test_train_without_a_terminal_runs_headless(tmp_path):
    out = cli("train", "--controller", "random", "--epochs", "1", "--sessions-dir", str(tmp_path), *SETS)
    assert out.returncode == 0, out.stderr
    assert "epoch   1 |" in out.stdout


def test_resume_refuses_a_session_whose_trainer_is_alive(tmp_path):
    proc = start("train", "--controller", "random", "--headless", "--epochs", "3", "--sessions-dir", str(tmp_path), *SLOW)
    try:
        wait_for(lambda: len(all_sessions(tmp_path)) == 1 and only_session(tmp_path).status().get("status") == "running")
        session = only_session(tmp_path)
        out = cli("train", "--resume", session.id, "--sessions-dir", str(tmp_path))
        assert out.returncode == 1 and "is still running" in out.stderr and out.stderr.count("\n") == 1
    finally:
        proc.kill()
        proc.wait(timeout=30)


def test_sigterm_stops_with_143_a_checkpoint_and_resumes(tmp_path):
    proc = start("train", "--controller", "random", "--headless", "--epochs", "2",
                 "--sessions-dir", str(tmp_path), *SLOW)
    wait_for(lambda: len(all_sessions(tmp_path)) == 1)
    session = only_session(tmp_path)
    wait_for(lambda: any(e.type == "shared_step" and e.step >= 5 for e in events_of(session)))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert err == f"stopped; continue with: enas-tui train --resume {session.id} --sessions-dir {tmp_path}\n"
    events = read_events(session.log_path)
    end = events[-1]
    assert end.type == "session_end" and end.status == "stopped"
    assert any(e.type == "checkpoint" and e.kind == "interrupt" for e in events)
    assert session.status()["status"] == "stopped" and session.status()["epoch"] == end.epoch == 0
    out = cli("train", "--resume", session.id, "--sessions-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert read_events(session.log_path)[-1].status == "finished" and session.status()["epoch"] == 2


def test_sigterm_during_start_up_leaves_a_stopped_resumable_session(tmp_path):
    proc = start("train", "--controller", "random", "--headless", "--epochs", "1",
                 "--sessions-dir", str(tmp_path), *SETS)
    wait_for(lambda: tmp_path.exists() and any(not p.name.startswith(".") for p in tmp_path.iterdir()), timeout=60)
    proc.send_signal(signal.SIGTERM)  # the session folder has just appeared: training has not begun
    _, err = proc.communicate(timeout=60)
    session = only_session(tmp_path)
    assert proc.returncode == 143 and "Traceback" not in err
    assert session.status()["status"] == "stopped"
    events = read_events(session.log_path)
    assert events[0].type == "session_start" and events[-1].type == "session_end" and events[-1].status == "stopped"
    assert not [e for e in events if e.type == "shared_step"]
    listing = json.loads(cli("sessions", "--json", "--sessions-dir", str(tmp_path)).stdout)
    assert (listing["status"], listing["epoch"], listing["damaged"]) == ("stopped", 0, None)
    out = cli("train", "--resume", session.id, "--sessions-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert session.status()["status"] == "finished"


def test_kill_before_the_first_checkpoint_resumes_from_the_start(tmp_path):
    proc = start("train", "--controller", "random", "--headless", "--epochs", "1",
                 "--sessions-dir", str(tmp_path), *SLOW)
    wait_for(lambda: len(all_sessions(tmp_path)) == 1)
    session = only_session(tmp_path)
    wait_for(lambda: any(e.type == "shared_step" for e in events_of(session)))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert session.latest_checkpoint() is None
    assert json.loads(cli("sessions", "--json", "--sessions-dir", str(tmp_path)).stdout)["status"] == "crashed"
    out = cli("train", "--resume", session.id, "--sessions-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "warning: no checkpoint to resume from: started again from the beginning with the same settings and seed" \
        in out.stdout
    events = read_events(session.log_path)
    starts = [e for e in events if e.type == "session_start"]
    assert [s.resumed_from for s in starts] == [None, "start"]
    assert starts[1].settings == starts[0].settings and starts[1].seed == starts[0].seed
    assert [e.seq for e in events] == list(range(len(events)))
    assert events[-1].type == "session_end" and events[-1].status == "finished"


def test_timed_checkpoint_lets_a_kill_lose_minutes_not_an_epoch(tmp_path):
    import torch

    proc = start("train", "--controller", "random", "--headless", "--epochs", "1", "--sessions-dir", str(tmp_path),
                 *SLOW, "--set", "train.checkpoint_every_s=0.5")
    wait_for(lambda: len(all_sessions(tmp_path)) == 1)
    session = only_session(tmp_path)
    wait_for(lambda: any(e.type == "checkpoint" and e.kind == "timed" for e in events_of(session)))
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    state = torch.load(session.checkpoint_dir / "timed.pt", weights_only=True)
    assert state["position"]["epoch"] == 1 and state["position"]["shared_done"] + state["position"]["ctrl_done"] > 0
    out = cli("train", "--resume", session.id, "--sessions-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    events = read_events(session.log_path)
    restart = next(i for i, e in enumerate(events) if e.type == "session_start" and e.resumed_from)
    assert events[restart].resumed_from == "timed.pt"
    resumed = events[restart:]
    if state["position"]["shared_done"] < 40:  # continued mid-epoch where the checkpoint was: no step repeated
        first = next(e for e in resumed if e.type == "shared_step")
        assert first.step == state["counters"]["shared_step"] + 1
    else:
        first = next(e for e in resumed if e.type == "controller_step")
        assert first.step == state["counters"]["ctrl_step"] + 1
    assert not [e for e in resumed if e.type == "epoch_start"]
    assert not (session.checkpoint_dir / "timed.pt").exists()  # superseded by the epoch checkpoint


@pytest.mark.timeout(240)
def test_dashboard_pipe_of_a_real_trainer_child(tmp_path):
    from enas_tui.sources import TrainerSource

    source = TrainerSource(tmp_path).start(["--controller", "random", "--epochs", "1", *SETS])
    got = []
    deadline = time.monotonic() + 240
    while not (source.ended and source.pipe_done) and time.monotonic() < deadline:
        got += source.poll()
        time.sleep(0.02)
    got += source.poll()
    source.close()
    assert source.process.returncode == 0
    logged = read_events(source.session.log_path)
    assert [e.seq for e in got] == list(range(len(logged)))  # every event, in order, none twice
    assert [e.to_dict() for e in got] == [e.to_dict() for e in logged]
    assert source.process.received >= len(logged) - source.filled > 0  # most came over the pipe
