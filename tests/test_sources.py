"""Event sources: following a log, replay index and cursor, the live trainer source."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import pytest

from enas_tui.events import SessionEnd, encode_event
from enas_tui.session_log import LogReader, LogWriter, encode_frame
from enas_tui.sessions import Session
from enas_tui.sources import LogFollower, ProbeArchs, SourceError, TrainerSource, decode_records, peek
from enas_tui.tui.replay_index import ReplayCursor, ReplayIndex
from enas_tui.tui.state import DashboardState
from enas_tui.tui.synthetic import SyntheticRun, synthetic_events, write_synthetic_session

from helpers import FakeProcess


def view(state: DashboardState) -> tuple:
    """The parts of a state the panels show, comparable with ==."""
    return (
        state.status, state.epoch, state.shared_done, state.ctrl_done, state.seq,
        state.shared_ppl.points, state.reward.points, state.valid_ppl.points,
        None if state.probe is None else state.probe.seq,
        None if state.diagnostics is None else state.diagnostics.seq,
        None if state.buffer is None else state.buffer.seq,
        [line.text for line in state.log], state.best_arch, state.best_ppl,
        {k: s.points for k, s in state.spearman_history.items()},
        state.shape.points,
    )


def folded(events) -> DashboardState:
    state = DashboardState()
    state.apply_all(events)
    return state


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[Session, list]:
    run = SyntheticRun(epochs=3)
    session = write_synthetic_session(tmp_path_factory.mktemp("sessions"), run)
    return session, list(synthetic_events(run))


def test_peek_agrees_with_decoding(recorded):
    session, _ = recorded
    with LogReader(session.log_path) as reader:
        records = reader.read_records()
    for record in records:
        event = record.event()
        assert peek(record) == (event.type, event.seq, event.t)


def test_decode_records_decodes_only_the_last_probe(recorded):
    session, events = recorded
    with LogReader(session.log_path) as reader:
        records = reader.read_records()
    decoded = decode_records(records)
    probes = [e for e in decoded if e.type == "probe"]
    assert len(probes) == 1 and probes[0].seq == max(e.seq for e in events if e.type == "probe")
    # The others come as their architectures only, in place, without their arrays.
    light = [e for e in decoded if isinstance(e, ProbeArchs)]
    originals = [e for e in events if e.type == "probe"][:-1]
    assert [(e.seq, e.t, e.epoch, e.step, e.archs) for e in light] == \
        [(e.seq, e.t, e.epoch, e.step, e.archs) for e in originals]
    assert [e.seq for e in decoded] == [e.seq for e in events]
    assert view(folded(decoded)) == view(folded(events))


@pytest.mark.parametrize("every", [7, 50, 1000])
def test_replay_index_state_at_matches_folding(recorded, every):
    session, events = recorded
    index = ReplayIndex(session.log_path, snapshot_every=every)
    assert index.build() and index.complete and len(index) == len(events)
    for position in (0, 1, every, every + 3, len(events) // 2, len(events) - 1, len(events)):
        assert view(index.state_at(position)) == view(folded(events[:position])), position


def test_replay_index_builds_in_slices(recorded):
    session, events = recorded
    index = ReplayIndex(session.log_path, snapshot_every=10)
    slices = 0
    while not index.build(max_seconds=0.0):  # one chunk per call
        slices += 1
        assert len(index) <= len(events)
    assert slices > 5 and len(index) == len(events)
    assert view(index.state_at(len(events))) == view(folded(events))


def test_replay_index_epochs_and_times(recorded):
    session, events = recorded
    index = ReplayIndex(session.log_path, snapshot_every=25)
    index.build()
    for epoch in (1, 2, 3):
        position = index.epoch_position(epoch)
        end = next(i for i, e in enumerate(events) if e.type == "epoch_end" and e.epoch == epoch)
        assert position == end + 1
    assert index.epochs() == [1, 2, 3]
    assert list(index.times) == sorted(index.times) == [e.t for e in events]
    assert index.position_at_time(events[10].t) == 11


def test_replay_cursor_moves_like_folding(recorded):
    session, events = recorded
    index = ReplayIndex(session.log_path, snapshot_every=20)
    index.build()
    cursor = ReplayCursor(index)
    for position in (5, 6, 30, 29, 150, 0, len(events), len(events) + 10):
        cursor.seek(position)
        expected = min(position, len(events))
        assert cursor.position == expected
        assert view(cursor.state) == view(folded(events[:expected]))
    cursor.seek(0)
    cursor.next_epoch()
    assert cursor.position == index.epoch_position(1) and cursor.epoch == 1
    cursor.next_epoch()
    cursor.previous_epoch()
    assert cursor.position == index.epoch_position(1)


def test_replay_index_grows_with_the_log(tmp_path):
    run = SyntheticRun(epochs=2, end=None)
    events = list(synthetic_events(run))
    session = Session(tmp_path / "growing")
    session.path.mkdir()
    with LogWriter(session.log_path) as writer:
        for event in events[:100]:
            writer.append(event)
        index = ReplayIndex(session.log_path, snapshot_every=30)
        assert index.build() and len(index) == 100
        for event in events[100:]:
            writer.append(event)
    while not index.refresh():
        pass
    assert len(index) == len(events)
    assert view(index.state_at(len(events))) == view(folded(events))
    assert view(index.state_at(95)) == view(folded(events[:95]))


def test_replay_index_of_a_missing_log(tmp_path):
    with pytest.raises(SourceError, match="cannot open session log"):
        ReplayIndex(tmp_path / "nope.log")


def test_follower_reads_in_bounded_chunks(recorded):
    session, events = recorded
    follower = LogFollower(session, max_records=50)
    got, sizes = [], []
    while batch := follower.poll():
        sizes.append(follower.records)
        got += batch
    assert follower.records == len(events) and follower.caught_up and follower.ended
    assert sizes[0] == 50 and all(b - a <= 50 for a, b in zip(sizes, sizes[1:]))
    assert view(folded(got)) == view(folded(events))
    assert follower.trainer_status() is None  # it ended properly


def test_follower_waits_for_a_torn_tail(tmp_path):
    run = SyntheticRun(epochs=1, end=None)
    events = list(synthetic_events(run))
    session = Session(tmp_path / "s")
    session.path.mkdir()
    with LogWriter(session.log_path) as writer:
        for event in events[:-1]:
            writer.append(event)
    frame = encode_frame(encode_event(events[-1]))
    with open(session.log_path, "ab") as f:
        f.write(frame[:10])  # a write cut short
    follower = LogFollower(session)
    got = follower.poll()
    assert got[-1].seq == events[-2].seq and follower.records == len(events) - 1
    assert follower.caught_up and follower.poll() == []
    with open(session.log_path, "ab") as f:
        f.write(frame[10:])
    assert follower.poll()[0].seq == events[-1].seq


def test_follower_reports_a_crashed_trainer(tmp_path):
    run = SyntheticRun(epochs=1, end=None, stop_after=60)
    session = write_synthetic_session(tmp_path, run)  # status running, pid gone
    follower = LogFollower(session)
    while follower.poll():
        pass
    assert not follower.ended
    status, message = follower.trainer_status()
    assert status == "crashed" and "no end record" in message
    (session.path / "trainer.log").write_text("Traceback ...\nRuntimeError: CUDA error: device lost\n")
    follower._checked_at = None
    assert follower.trainer_status() == ("crashed", "RuntimeError: CUDA error: device lost")


def test_follower_reports_a_stopped_status_without_end_record(tmp_path):
    run = SyntheticRun(epochs=1, end=None, stop_after=40)
    session = write_synthetic_session(tmp_path, run, status="stopped")
    follower = LogFollower(session)
    while follower.poll():
        pass
    assert follower.trainer_status()[0] == "stopped"


def test_follower_of_a_session_still_being_set_up(tmp_path):
    session = Session(tmp_path / "new")
    session.path.mkdir()
    follower = LogFollower(session)
    assert follower.poll() == [] and follower.trainer_status() is None and follower.error is None


WRITER = textwrap.dedent("""
    import sys, time
    from enas_tui.session_log import LogWriter
    from enas_tui.tui.synthetic import SyntheticRun, synthetic_events
    events = list(synthetic_events(SyntheticRun(epochs=2)))
    with LogWriter(sys.argv[1]) as writer:
        for i, event in enumerate(events):
            writer.append(event)
            if i % 20 == 0:
                time.sleep(0.01)
""")


def test_follower_follows_a_log_another_process_writes(tmp_path):
    session = Session(tmp_path / "live")
    session.path.mkdir()
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(session.log_path)])
    follower, got, polls = LogFollower(session, max_records=30), [], 0
    deadline = time.monotonic() + 60
    while not follower.ended and time.monotonic() < deadline:
        batch = follower.poll()
        polls += 1
        got += batch
        if not batch:
            time.sleep(0.005)
    child.wait(10)
    assert follower.ended and polls > 2
    expected = list(synthetic_events(SyntheticRun(epochs=2)))
    assert [e.seq for e in got] == [e.seq for e in expected]  # superseded probes come as ProbeArchs
    assert view(folded(got)) == view(folded(expected))


def test_trainer_source_fills_pipe_drops_from_the_log(tmp_path):
    run = SyntheticRun(epochs=2)
    session = write_synthetic_session(tmp_path, run)
    events = list(synthetic_events(run))
    source = TrainerSource(tmp_path, max_records=40)
    source.process = FakeProcess(session.id)
    kept = [e for i, e in enumerate(events) if i % 7 not in (3, 4) and i != len(events) - 1]  # drops
    source.queue.extend(kept)
    got = []
    while batch := source.poll():
        got += batch
    assert source.filled > 0 and source.ended
    assert [e.seq for e in got] == [e.seq for e in events]
    assert view(folded(got)) == view(folded(events))
    assert source.trainer_status() is None


def test_trainer_source_reads_a_resumed_sessions_history_in_slices(tmp_path):
    run = SyntheticRun(epochs=2)
    session = write_synthetic_session(tmp_path, run)
    events = list(synthetic_events(run))
    source = TrainerSource(tmp_path, max_records=25)
    source.process = FakeProcess(session.id)
    source.process.alive = True  # still running: the pipe only carries what comes after a resume
    source.queue.extend(events[-10:])
    got, polls = [], 0
    while batch := source.poll():
        polls += 1
        got += batch
        assert len(batch) <= 26
    assert polls >= len(events) // 26 and source.caught_up
    assert [e.seq for e in got] == [e.seq for e in events]
    assert view(folded(got)) == view(folded(events))


def test_trainer_source_reports_a_crash_with_the_last_error(tmp_path):
    run = SyntheticRun(epochs=1, end="failed")
    events = [e for e in synthetic_events(run) if not isinstance(e, SessionEnd)]  # killed before the end
    session = Session(tmp_path / "crashed")
    session.path.mkdir()
    with LogWriter(session.log_path) as writer:
        for event in events:
            writer.append(event)
    source = TrainerSource(tmp_path)
    source.process = FakeProcess(session.id, returncode=-9)
    source.queue.extend(events)
    while source.poll():
        pass
    assert source.trainer_status() == ("crashed", "5 non-finite losses in a row; stopped")


def test_trainer_source_of_a_child_that_never_started(tmp_path):
    source = TrainerSource(tmp_path)
    source.process = FakeProcess(None, returncode=2, stderr="Usage: ...\nenas-tui: error: unknown preset 'x'\n")
    assert source.poll() == []
    assert source.trainer_status() == ("failed", "enas-tui: error: unknown preset 'x'")
    source.stop()
    source.detach()
    assert source.process.stopped and source.process.detached


def test_trainer_source_passes_the_sessions_dir(tmp_path):
    seen = {}

    def launch(args, on_event, command):
        seen["args"], seen["command"] = args, command
        return FakeProcess("x")

    TrainerSource(tmp_path).start(["--controller", "random"], launch=launch)
    assert seen == {"args": ["--controller", "random", "--sessions-dir", str(tmp_path)], "command": "train"}
    TrainerSource(tmp_path).start(["s1", "--epochs", "2"], launch=launch, command="retrain")
    assert seen == {"args": ["s1", "--epochs", "2", "--sessions-dir", str(tmp_path)], "command": "retrain"}


CHILD = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    from enas_tui.launcher import PipeSink
    from enas_tui.session_log import LogWriter
    from enas_tui.sessions import Session, write_json_atomic
    from enas_tui.tui.synthetic import SyntheticRun, synthetic_events
    root = Path(sys.argv[sys.argv.index("--sessions-dir") + 1])
    session = Session(root / "synthetic-supervised")
    session.path.mkdir(parents=True)
    write_json_atomic(session.status_path, {"status": "running", "pid": os.getpid()})
    sink = PipeSink(os.dup(1))
    with LogWriter(session.log_path) as writer:  # the log first, then the pipe, as the trainer does
        for event in synthetic_events(SyntheticRun(epochs=2)):
            sink(writer.append(event))
    write_json_atomic(session.status_path, {"status": "finished"})
""")


def test_trainer_source_reads_a_real_child_through_the_launcher(tmp_path, monkeypatch):
    from enas_tui import launcher

    monkeypatch.setattr(launcher, "train_command", lambda args, command: [sys.executable, "-c", CHILD, *args])
    source = TrainerSource(tmp_path).start(["--controller", "supervised"])
    got, deadline = [], time.monotonic() + 60
    while not (source.ended and source.pipe_done) and time.monotonic() < deadline:
        got += source.poll()
        time.sleep(0.01)
    got += source.poll()
    assert source.session is not None and source.session.id == "synthetic-supervised"
    expected = list(synthetic_events(SyntheticRun(epochs=2)))
    assert view(folded(got)) == view(folded(expected))
    assert source.trainer_status() is None and source.process.returncode == 0
