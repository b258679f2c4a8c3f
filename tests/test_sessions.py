"""Session folders: the status a user sees (the log first), damaged files, listing, atomic creation."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from enas_tui.session_log import LogReader
from enas_tui.sessions import (
    Session, SessionError, all_sessions, create_session, open_session, summarize, write_json_atomic,
)
from enas_tui.tui.synthetic import T0, SyntheticRun, write_synthetic_session

ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def make(root: Path, name: str, **run) -> Session:
    return write_synthetic_session(root, SyntheticRun(epochs=2, **run), session_id=name)


def records(session: Session):
    with LogReader(session.log_path) as reader:
        return reader.read_records()


def set_status(session: Session, **fields) -> None:
    write_json_atomic(session.status_path, {**json.loads(session.status_path.read_text()), **fields})


def test_a_finished_log_is_finished_whatever_status_json_says(tmp_path):
    session = make(tmp_path, "s")
    assert session.state().status == "finished" and session.state().problems == []
    set_status(session, status="running")  # a trainer killed after its end record, before status.json
    assert session.state().status == "finished"
    session.status_path.unlink()
    state = session.state()
    assert (state.status, state.epoch, state.problems) == ("finished", 2, ["status.json is missing"])


def test_without_an_end_record(tmp_path):
    session = make(tmp_path, "s", end=None)  # status.json: running, pid dead
    state = session.state()
    assert (state.status, state.reason) == ("crashed", "the trainer process is gone and the log has no end record")
    set_status(session, status="failed")  # the disk filled: status.json written, the log's end record not
    assert session.state().status == "failed"
    assert session.state().reason == "the log has no end record; status from status.json"
    set_status(session, status="running", pid=os.getpid(), pid_start=None)  # a live trainer
    assert session.state().status == "running"
    session.status_path.unlink()
    assert session.state().status == "crashed"  # the log ends cleanly: the trainer died without ending
    with open(session.log_path, "ab") as f:
        f.write(bytes(100))  # ... but with a damaged end nothing says how the run ended
    state = session.state()
    assert state.status == "damaged" and "how the run ended is unknown" in state.reason


def test_a_duplicated_record_at_the_end_does_not_change_the_status(tmp_path):
    session = make(tmp_path, "s")
    every = records(session)
    copy = session.log_path.read_bytes()[every[1].offset : every[1].end]
    end = session.log_path.stat().st_size
    with open(session.log_path, "ab") as f:
        f.write(copy)
    state = session.state()
    assert state.status == "finished" and state.epoch == 2
    assert state.problems == [f"events.log: damaged bytes {end}-{end + len(copy)} ({len(copy):,} bytes): seq 1 "
                              f"after seq {every[-1].seq}: a repeated or out-of-order record; 1 record skipped"]


def test_summaries_name_damaged_files_and_fall_back_to_the_log(tmp_path):
    make(tmp_path, "a-good")
    meta = make(tmp_path, "b-meta")
    meta.meta_path.write_text(json.dumps({"controller": 5, "started": "yesterday", "settings": []}))
    status = make(tmp_path, "c-status")
    set_status(status, epoch="two", best_ppl=True)
    gone = make(tmp_path, "d-nometa")
    gone.meta_path.unlink()
    broken = make(tmp_path, "e-notjson")
    broken.status_path.write_text("{not json")
    nolog = make(tmp_path, "f-nolog", end=None)
    nolog.log_path.unlink()
    nolog.status_path.unlink()
    rows = {s.id: summarize(s) for s in all_sessions(tmp_path)}
    assert set(rows) == {"a-good", "b-meta", "c-status", "d-nometa", "e-notjson", "f-nolog"}  # none vanishes
    assert vars(rows["a-good"]) == {"id": "a-good", "kind": "search", "controller": "supervised",
                                    "status": "finished", "epoch": 2, "epochs": 2, "best_ppl": rows["a-good"].best_ppl,
                                    "started": T0, "reason": "", "damaged": None, "test_ppl": None}
    assert (rows["b-meta"].controller, rows["b-meta"].epochs, rows["b-meta"].started) == ("supervised", 2, T0)
    assert rows["b-meta"].damaged == ('meta.json: controller is 5; meta.json: started is "yesterday", not a time; '
                                      "meta.json: settings.train.epochs is not a positive integer")
    assert (rows["c-status"].status, rows["c-status"].epoch) == ("finished", 2)
    assert rows["c-status"].damaged == 'status.json: epoch is "two"; status.json: best_ppl is true'
    assert (rows["d-nometa"].status, rows["d-nometa"].controller, rows["d-nometa"].damaged) == \
        ("finished", "supervised", "meta.json is missing")
    assert rows["e-notjson"].status == "finished"
    assert rows["e-notjson"].damaged.startswith("status.json is unreadable (Expecting property name")
    assert rows["f-nolog"].status == "damaged"
    assert rows["f-nolog"].damaged == "status.json is missing; events.log is missing"


def test_sessions_command_lists_every_session_and_never_a_traceback(tmp_path):
    make(tmp_path, "a-good")
    bad = make(tmp_path, "b-bad")
    bad.meta_path.write_text("[1, 2, 3]")
    bad.status_path.write_text(json.dumps({"status": 7, "epoch": -1, "pid": "x"}))
    out = subprocess.run([sys.executable, "-m", "enas_tui", "sessions", "--sessions-dir", str(tmp_path)],
                         capture_output=True, text=True, env=ENV, timeout=60)
    assert out.returncode == 0 and out.stderr == ""
    lines = out.stdout.splitlines()
    assert lines[1].split()[:5] == ["a-good", "search", "supervised", "finished", "2/2"]
    assert lines[2].split()[:5] == ["b-bad", "search", "supervised", "finished", "2/2"]  # from the log's records
    assert lines[2].endswith('damaged: meta.json is not a JSON object; status.json: status is 7; '
                             'status.json: epoch is -1; status.json: pid is "x"')
    listing = subprocess.run([sys.executable, "-m", "enas_tui", "sessions", "--json", "--sessions-dir", str(tmp_path)],
                             capture_output=True, text=True, env=ENV, timeout=60)
    rows = [json.loads(line) for line in listing.stdout.splitlines()]
    assert [(r["id"], r["status"]) for r in rows] == [("a-good", "finished"), ("b-bad", "finished")]


def test_a_sessions_folder_that_is_a_file_is_one_line(tmp_path):
    root = tmp_path / "file"
    root.write_text("x")
    for call in (lambda: all_sessions(root), lambda: create_session(root, "random"),
                 lambda: open_session(root, "x")):
        with pytest.raises(SessionError, match=f"^sessions folder {root} is not a folder$"):
            call()


def test_create_session_appears_whole(tmp_path):
    session = create_session(tmp_path, "random", meta={"controller": "random", "started": T0})
    assert session.meta() == {"controller": "random", "started": T0, "id": session.id}
    status = session.status()
    assert status["status"] == "running" and status["pid"] == os.getpid() and status["epoch"] == 0
    assert session.checkpoint_dir.is_dir()
    assert [p.name for p in tmp_path.iterdir()] == [session.id]  # no hidden half-made folder left
    assert session.state().status == "running"


def test_write_json_atomic_falls_back_to_rewriting_in_place_when_the_disk_is_full(tmp_path, monkeypatch):
    path = tmp_path / "status.json"
    write_json_atomic(path, {"status": "running", "message": "x" * 50})

    def full(self, data):  # the temporary file cannot be written
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(Path, "write_bytes", full)
    write_json_atomic(path, {"status": "failed"})
    assert json.loads(path.read_text()) == {"status": "failed"}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]
    with pytest.raises(SessionError, match="No space left on device"):
        write_json_atomic(path, {"status": "failed", "message": "y" * 500})  # longer: no room in place
