"""``enas-tui retrain`` as a user runs it: real subprocesses, Ctrl-C, kills, resumes, bad input."""

from __future__ import annotations

import json
import math
import signal
import time

import pytest

from enas_tui.cli import main
from enas_tui.config import Settings
from enas_tui.retrain.source import last_derived
from enas_tui.session_log import read_events
from enas_tui.sessions import Session, all_sessions, create_session

from helpers import TINY, cli, start, wait_for

SEARCH_SETS = [arg for item in TINY for arg in ("--set", item)]
RETRAIN_SETS = [arg for item in ("model.hidden=16", "model.batch_size=8", "model.bptt=10", "model.eval_batch_size=4",
                                 "train.steps_per_epoch=6", "train.test_batch_size=4")
                for arg in ("--set", item)]
# long enough epochs to stop one in the middle
SLOW = [*RETRAIN_SETS, "--set", "train.steps_per_epoch=150"]
CELL = "tanh,0:relu,1:identity,1:sigmoid,0:tanh,2:relu,3:identity,3:tanh,5:sigmoid,1:relu,4:identity,10:tanh"


def sessions_of(root, kind):
    return [s for s in all_sessions(root) if s.meta().get("kind", "search") == kind]


def steps(session: Session) -> list:
    return [e for e in read_events(session.log_path) if e.type == "shared_step"] if session.log_path.exists() else []


@pytest.fixture(scope="module")
def searched(tmp_path_factory):
    """A finished two-epoch search (it derives at its last epoch)."""
    root = tmp_path_factory.mktemp("sessions")
    out = cli("train", "--controller", "unsupervised", "--headless", "--epochs", "2", "--sessions-dir", str(root),
              *SEARCH_SETS)
    assert out.returncode == 0, out.stderr
    return root, all_sessions(root)[0]


def test_retrain_a_search_sessions_derived_cell(searched):
    root, search = searched
    derived = last_derived(search)
    out = cli("retrain", search.id, "--epochs", "2", "--sessions-dir", str(root), *RETRAIN_SETS)
    assert out.returncode == 0, out.stderr
    assert f"cell: {derived.best_arch} (from session {search.id} (derived at epoch 2))" in out.stdout
    assert "epoch   2 | train ppl" in out.stdout and "model.hidden = 16" in out.stdout
    retrain = sessions_of(root, "retrain")[-1]
    meta = retrain.meta()
    assert meta["source"]["session"] == search.id and meta["source"]["controller"] == "unsupervised"
    assert meta["settings"]["arch"] == derived.best_arch and meta["settings"]["source"] == search.id
    events = read_events(retrain.log_path)
    result = [e for e in events if e.type == "retrain_result"][0]
    assert math.isfinite(result.test_ppl) and result.test_ppl > 1
    assert math.isfinite(result.search_ppl) and result.search_ppl > 1
    assert f"test ppl {result.test_ppl:.2f}" in out.stdout
    assert f"search-phase ppl of this cell {result.search_ppl:.2f}" in out.stdout
    rows = [json.loads(line) for line in cli("sessions", "--sessions-dir", str(root), "--json").stdout.splitlines()]
    row = next(r for r in rows if r["id"] == retrain.id)
    assert (row["kind"], row["controller"], row["status"]) == ("retrain", "unsupervised", "finished")
    assert row["test_ppl"] == result.test_ppl and row["best_ppl"] == result.valid_ppl
    assert next(r for r in rows if r["id"] == search.id)["kind"] == "search"
    table = cli("sessions", "--sessions-dir", str(root)).stdout
    line = next(line for line in table.splitlines() if line.startswith(retrain.id))
    assert line.split()[1:4] == ["retrain", "unsupervised", "finished"] and f"{result.test_ppl:.2f}" in line


def test_report_adds_a_retrain_of_the_search_to_its_report(searched, tmp_path):
    root, search = searched
    out = cli("retrain", search.id, "--epochs", "2", "--headless", "--sessions-dir", str(root), *RETRAIN_SETS)
    assert out.returncode == 0, out.stderr
    retrain = [s for s in sessions_of(root, "retrain") if s.meta()["source"]["session"] == search.id][-1]
    report = cli("report", search.id, retrain.id, "--n", "8", "--out", str(tmp_path / "r"), "--sessions-dir", str(root))
    assert report.returncode == 0, report.stderr
    text = (tmp_path / "r" / "report.md").read_text()
    section = text.split("## Retrained cells\n", 1)[1].split("\n## ", 1)[0]
    row = next(line for line in section.splitlines() if retrain.id in line)
    status = retrain.status()
    assert row.startswith(f"| unsupervised | 0 | {retrain.id} | `{retrain.meta()['settings']['arch']}` |")
    assert f"| {status['valid_ppl']:.2f} | {status['test_ppl']:.2f} |" in row
    assert (tmp_path / "r" / "retrain.png").is_file()


def test_retrain_a_given_cell_on_a_data_folder(tmp_path):
    data = tmp_path / "ptb"
    data.mkdir()
    for split, n in (("train", 400), ("valid", 80), ("test", 80)):
        (data / f"ptb.{split}.txt").write_text("".join(f"the cat sat on mat number {i % 7}\n" for i in range(n)))
    out = cli("retrain", "--arch", CELL, "--data", str(data), "--epochs", "3", "--sessions-dir",
              str(tmp_path / "s"), *RETRAIN_SETS, "--set", "train.steps_per_epoch=30")
    assert out.returncode == 0, out.stderr
    retrain = all_sessions(tmp_path / "s")[0]
    assert retrain.meta()["settings"]["data"] == str(data) and retrain.meta()["source"]["session"] is None
    result = [e for e in read_events(retrain.log_path) if e.type == "retrain_result"][0]
    assert result.search_ppl is None and result.test_ppl < 13 / 2  # 13 words: learnt, well below uniform
    assert retrain.status()["test_ppl"] == result.test_ppl


def test_ctrl_c_stops_a_retrain_and_resume_repeats_no_step(tmp_path):
    proc = start("retrain", "--arch", CELL, "--epochs", "2", "--sessions-dir", str(tmp_path), *SLOW)
    wait_for(lambda: len(all_sessions(tmp_path)) == 1)
    session = all_sessions(tmp_path)[0]
    wait_for(lambda: any(e.step >= 20 for e in steps(session)))
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert f"enas-tui retrain --resume {session.id}" in err and "Traceback" not in err
    before = read_events(session.log_path)
    assert before[-1].type == "session_end" and before[-1].status == "stopped"
    assert any(e.type == "checkpoint" and e.kind == "interrupt" for e in before)
    assert session.status()["status"] == "stopped"
    done = max(e.step for e in before if e.type == "shared_step")
    assert done < 300
    out = cli("retrain", "--resume", session.id, "--sessions-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert [e.step for e in steps(session)] == list(range(1, 301))  # every step once, in order
    after = read_events(session.log_path)
    assert [e.seq for e in after] == list(range(len(after)))
    assert after[len(before)].type == "session_start" and after[len(before)].resumed_from == "interrupt.pt"
    assert [e.type for e in after[-2:]] == ["retrain_result", "session_end"]


def test_a_killed_retrain_resumes_from_its_last_epoch(tmp_path):
    proc = start("retrain", "--arch", CELL, "--epochs", "3", "--sessions-dir", str(tmp_path), *SLOW)
    wait_for(lambda: len(all_sessions(tmp_path)) == 1)
    session = all_sessions(tmp_path)[0]
    wait_for(lambda: any(e.epoch == 2 and e.step >= 170 for e in steps(session)))
    proc.kill()
    proc.wait(timeout=30)
    before = read_events(session.log_path)
    assert before[-1].type != "session_end"
    listing = cli("sessions", "--sessions-dir", str(tmp_path), "--json").stdout
    assert json.loads(listing)["status"] == "crashed"
    out = cli("retrain", "--resume", session.id, "--sessions-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    after = read_events(session.log_path)
    assert [e.to_dict() for e in after[:len(before)]] == [e.to_dict() for e in before]  # nothing recorded is lost
    restart = after[len(before)]
    assert restart.type == "session_start" and restart.resumed_from == "epoch-0001.pt"
    resumed_steps = [e.step for e in after[len(before):] if e.type == "shared_step"]
    assert resumed_steps == list(range(151, 451))  # the killed epoch is redone from its start
    assert session.status()["status"] == "finished" and session.checkpoint_epochs() == [1, 2, 3]
    again = cli("retrain", "--resume", session.id, "--sessions-dir", str(tmp_path))
    assert again.returncode == 1 and "already finished its 3 epochs" in again.stderr


@pytest.fixture
def bad_input_sessions(tmp_path):
    """A search with no derived cell yet, a search with one, and a retrain: real session folders."""
    bare = create_session(tmp_path, "unsupervised")
    bare.write_meta({"id": bare.id, "controller": "unsupervised", "settings": Settings().to_dict(),
                     "started": time.time()})
    done = create_session(tmp_path, "random")
    done.write_meta({"id": done.id, "controller": "random", "settings": Settings().to_dict(), "started": time.time()})
    done.write_status(status="finished", best_arch=CELL)
    retrained = create_session(tmp_path, "retrain")
    retrained.write_meta({"id": retrained.id, "kind": "retrain", "controller": "retrain",
                          "source": {"session": done.id}, "settings": {}, "started": time.time()})
    return {"BARE": bare.id, "DONE": done.id, "RETRAIN": retrained.id}


@pytest.mark.parametrize("args, code, fragment", [
    (["retrain", "nope"], 1, "no session 'nope'"),
    (["retrain", "BARE"], 1, "has no derived architecture yet"),
    (["retrain", "RETRAIN"], 1, "is a retrain, not a search; retrain its search session DONE instead"),
    (["retrain"], 2, "name a search session to retrain"),
    (["retrain", "--arch", "tanh,0:swish"], 2, "unknown activation 'swish'"),
    (["retrain", "--arch", "tanh,0:relu,5:tanh"], 2, "node 2's parent must be in 0..1"),
    (["retrain", "--arch", "tanh,0:relu"], 2, "the cell has 2 nodes but the search space has 12"),
    (["retrain", "DONE", "--arch", "tanh,0:relu"], 2, "has 2 nodes, but session DONE has cells of 12"),
    (["retrain", "--arch", CELL, "--set", "train.nonmono=-1"], 2, "train.nonmono must not be negative"),
    (["retrain", "--arch", CELL, "--set", "ctrl.hidden=3"], 2, "unknown section 'ctrl' (choose from model, train)"),
    (["retrain", "--arch", CELL, "--epochs", "0"], 2, "--epochs must be at least 1"),
    (["retrain", "--arch", CELL, "--preset", "huge"], 2, "unknown preset 'huge'"),
    (["retrain", "--arch", CELL, "--set", "model.lr=nan"], 2, "model.lr must be a finite number, not nan"),
    (["retrain", "--arch", CELL, "--set", "train.checkpoint_every_s=-1"], 2,
     "train.checkpoint_every_s must not be negative"),
    (["retrain", "--arch", CELL, "--device", "tpu"], 2, "--device: unknown device 'tpu'"),
    (["retrain", "--resume", "DONE"], 1, "is a search; continue it with: enas-tui train --resume DONE"),
    (["retrain", "--resume", "RETRAIN", "--arch", CELL], 2, "drop SESSION and --arch"),
    (["train", "--resume", "RETRAIN"], 1, "is a retrain; continue it with: enas-tui retrain --resume RETRAIN"),
    (["analyze", "RETRAIN"], 2, "is a retrain; analyze and report read search sessions"),
    (["report", "RETRAIN"], 2, "a report needs at least one search session (retrain sessions add their curves"),
    (["report", "DONE", "RETRAIN"], 1, "retrain RETRAIN has no result yet"),
    (["compare", "DONE", "RETRAIN"], 2, "session RETRAIN is a retrain; compare shows searches side by side"),
])
def test_bad_input_is_one_line_with_exit_code(tmp_path, capsys, monkeypatch, bad_input_sessions, args, code, fragment):
    monkeypatch.setenv("ENAS_TUI_SESSIONS", str(tmp_path))
    args = [bad_input_sessions.get(a, a) for a in args]
    for name, sid in bad_input_sessions.items():
        fragment = fragment.replace(name, sid)
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == code
    err = capsys.readouterr().err
    assert err.startswith("enas-tui: error:") and fragment in err, err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(bad_input_sessions.values())  # no new folder


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_cuda_is_one_line_and_leaves_no_session(tmp_path):
    out = cli("retrain", "--arch", CELL, "--device", "cuda", "--headless", "--sessions-dir", str(tmp_path),
              *RETRAIN_SETS)
    assert out.returncode == 2
    assert out.stderr == "enas-tui: error: --device: device 'cuda': CUDA is not available on this machine\n"
    assert not tmp_path.exists() or not list(tmp_path.iterdir())


def test_sigterm_stops_a_retrain_with_143_and_it_resumes(tmp_path):
    proc = start("retrain", "--arch", CELL, "--epochs", "2", "--headless", "--sessions-dir", str(tmp_path), *SLOW)
    wait_for(lambda: len(all_sessions(tmp_path)) == 1)
    session = all_sessions(tmp_path)[0]
    wait_for(lambda: any(e.step >= 5 for e in steps(session)))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143
    assert err == f"stopped; continue with: enas-tui retrain --resume {session.id} --sessions-dir {tmp_path}\n"
    assert session.status()["status"] == "stopped" and read_events(session.log_path)[-1].status == "stopped"
    out = cli("retrain", "--resume", session.id, "--sessions-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert [e.step for e in steps(session)] == list(range(1, 301))
    assert session.status()["status"] == "finished" and "test_ppl" in session.status()


def test_a_retrain_killed_before_its_first_checkpoint_starts_again(tmp_path):
    proc = start("retrain", "--arch", CELL, "--epochs", "1", "--headless", "--sessions-dir", str(tmp_path), *SLOW)
    wait_for(lambda: len(all_sessions(tmp_path)) == 1)
    session = all_sessions(tmp_path)[0]
    wait_for(lambda: bool(steps(session)))
    proc.kill()
    proc.wait(timeout=30)
    assert session.latest_checkpoint() is None
    out = cli("retrain", "--resume", session.id, "--sessions-dir", str(tmp_path))
    assert out.returncode == 0, out.stderr
    assert "no checkpoint to resume from: started again from the beginning" in out.stdout
    events = read_events(session.log_path)
    starts = [e for e in events if e.type == "session_start"]
    assert [s.resumed_from for s in starts] == [None, "start"] and starts[1].settings == starts[0].settings
    assert [e.type for e in events[-2:]] == ["retrain_result", "session_end"] and events[-1].status == "finished"


def test_the_listing_reads_a_retrain_whose_meta_json_is_damaged_from_its_log(tmp_path):
    out = cli("retrain", "--arch", CELL, "--epochs", "1", "--headless", "--sessions-dir", str(tmp_path),
              *RETRAIN_SETS)
    assert out.returncode == 0, out.stderr
    session = all_sessions(tmp_path)[0]
    result = next(e for e in read_events(session.log_path) if e.type == "retrain_result")
    session.meta_path.write_text("{not json")
    session.status_path.unlink()
    row = json.loads(cli("sessions", "--json", "--sessions-dir", str(tmp_path)).stdout)
    assert (row["kind"], row["status"], row["test_ppl"]) == ("retrain", "finished", result.test_ppl)
    assert "meta.json is unreadable" in row["damaged"]
