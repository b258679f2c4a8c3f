"""The command line as a user runs it: real subprocesses, kills, resumes, bad input."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from enas_tui.cli import main
from enas_tui.session_log import LogReader, read_events
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
    proc = start("train", "--controller", "unsupervised", "--headless", "--epochs", "2",
                 "--sessions-dir", str(tmp_path), *SLOW)
    wait_for(lambda: len(all_sessions(tmp_path)) == 1)
    session = only_session(tmp_path)
    wait_for(lambda: any(e.type == "shared_step" and e.step >= 10 for e in events_of(session)))
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert f"enas-tui train --resume {session.id}" in err and "Traceback" not in err
    events = read_events(session.log_path)
    assert events[-1].type == "session_end" and events[-1].status == "stopped"
    assert any(e.type == "checkpoint" and e.kind == "interrupt" for e in events)
    assert session.status()["status"] == "stopped"
    done_steps = max(e.step for e in events if e.type == "shared_step")
    out = cli("train", "--resume", session.id, "--sessions-dir", str(tmp_path))
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
    (["train", "--data", "/no/such/folder"], 2, "no such folder"),
    (["train", "--resume", "nope"], 1, "no session 'nope'"),
    (["data", "download", "wikitext", "--dir", "x"], 2, "unknown corpus 'wikitext'"),
    (["arch", "distance", "tanh,0:relu", "tanh,0:swish"], 1, "unknown activation 'swish'"),
    (["arch", "distance", "tanh", "tanh,0:relu"], 1, "cannot compare"),
])
def test_bad_input_is_one_line_with_exit_code(tmp_path, capsys, monkeypatch, args, code, fragment):
    monkeypatch.setenv("ENAS_TUI_SESSIONS", str(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == code
    err = capsys.readouterr().err
    assert err.startswith("enas-tui: error:") and fragment in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_data_folder_problems_are_one_line(tmp_path):
    (tmp_path / "ptb.train.txt").write_text("a b c\n")
    out = cli("train", "--data", str(tmp_path), "--headless", "--sessions-dir", str(tmp_path / "s"))
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "ptb.valid.txt" in out.stderr and "Traceback" not in out.stderr


def test_corrupt_log_and_missing_meta_are_reported(tmp_path):
    out = cli("train", "--controller", "random", "--headless", "--epochs", "1", "--sessions-dir", str(tmp_path), *SETS)
    assert out.returncode == 0
    session = only_session(tmp_path)
    data = bytearray(session.log_path.read_bytes())
    data[40] ^= 0xFF  # damage the first record
    session.log_path.write_bytes(bytes(data))
    again = cli("train", "--resume", session.id, "--epochs", "2", "--sessions-dir", str(tmp_path))
    assert again.returncode == 1 and "offset" in again.stderr and again.stderr.count("\n") == 1
    assert session.log_path.read_bytes() == bytes(data)  # nothing recorded is lost or rewritten
    session.meta_path.unlink()
    listing = cli("sessions", "--sessions-dir", str(tmp_path))
    assert listing.returncode == 0 and session.id not in listing.stdout


def test_arch_distance_json():
    out = cli("arch", "distance", "tanh,0:relu,1:identity,0:sigmoid", "tanh,0:relu,0:identity,2:tanh", "--json")
    assert out.returncode == 0
    # same activations at nodes 0-2 (3); same parent only at node 1 (1);
    # GED = 1 activation + 2 x 2 parent changes + leaves {2,3} vs {1,3}: 2  ->  7
    assert json.loads(out.stdout) == {"common_activations": 3, "common_connections": 1, "ged": 7}


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
