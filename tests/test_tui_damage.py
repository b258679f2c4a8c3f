"""The dashboard shows damage in a session's log: a notice in the header, a line in the events panel
(where and how much was skipped), and the status ``enas-tui sessions`` gives, never a quiet partial run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from enas_tui.session_log import LogReader, encode_frame
from enas_tui.sessions import Session, summarize
from enas_tui.tui.app import AttachApp, ReplayApp
from enas_tui.tui.replay_index import ReplayCursor, ReplayIndex
from enas_tui.tui.state import DashboardState
from enas_tui.tui.synthetic import SyntheticRun, synthetic_events, write_synthetic_session

from helpers import sync

RUN = SyntheticRun(epochs=2)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Session:
    return write_synthetic_session(tmp_path_factory.mktemp("pristine"), RUN)


@pytest.fixture
def session(pristine: Session, tmp_path: Path) -> Session:
    copy = tmp_path / pristine.id
    shutil.copytree(pristine.path, copy)
    return Session(copy)


def records(session: Session):
    with LogReader(session.log_path) as reader:
        return reader.read_records()


def flip(session: Session, at: int) -> None:
    data = bytearray(session.log_path.read_bytes())
    data[at] ^= 0x40
    session.log_path.write_bytes(bytes(data))


def header(app) -> str:
    return app.status_bar.render().plain


@sync
async def test_replay_shows_a_damaged_record_in_the_header_and_the_events_panel(session):
    every = records(session)
    bad = every[40]
    flip(session, bad.offset + 30)
    line = f"log damaged: bytes {bad.offset}-{bad.end} ({bad.end - bad.offset:,} bytes): payload checksum mismatch; " \
           f"1 record skipped"
    app = ReplayApp(session)
    async with app.run_test(size=(200, 40)) as pilot:
        await pilot.pause()
        assert "⚠ log damaged: 1 span, 1 record skipped (first at byte" in header(app)  # from the first frame on
        await pilot.press("end")
        await pilot.pause(0.15)
        assert len(app.index) == len(every) - 1
        assert "✔ finished" in header(app) and f"(first at byte {bad.offset})" in header(app)
        app.panel("eventlog").back = 0
        assert line in [ln.text for ln in app.state.log]
        await pilot.press("home")
        await pilot.pause(0.15)
        assert line not in [ln.text for ln in app.state.log]  # it shows where it happened, not before
        await pilot.press(*["right"] * 45)
        await pilot.pause(0.15)
        assert line in [ln.text for ln in app.state.log]
        assert f"ERROR log damaged: bytes {bad.offset}-{bad.end}" in app.panel("eventlog").text()  # on screen


@sync
async def test_replay_of_a_truncated_log_says_crashed_like_sessions_does(session):
    every = records(session)
    cut = every[-20].offset + 7
    data = session.log_path.read_bytes()
    session.log_path.write_bytes(data[:cut])
    session.status_path.unlink()  # nothing else says how the run ended
    assert summarize(session).status == "damaged"  # its end is torn: how the run ended is unknown
    app = ReplayApp(session, start=None)
    async with app.run_test(size=(200, 40)) as pilot:
        await pilot.pause(0.15)
        assert app.recording[0] == "damaged"  # the status line's word for the recording
        assert "✖ DAMAGED" in header(app)
        assert f"log ends in an incomplete record (7 bytes at byte {every[-20].offset})" in header(app)


@sync
async def test_replay_of_a_log_cut_between_records_says_crashed(session):
    every = records(session)
    session.log_path.write_bytes(session.log_path.read_bytes()[: every[-20].offset])
    (session.path / "status.json").write_text('{"status": "running", "pid": 4194305}')  # the trainer is gone
    app = ReplayApp(session, start=None)
    async with app.run_test(size=(200, 40)) as pilot:
        await pilot.pause(0.15)
        assert summarize(session).status == app.recording[0] == "crashed"
        assert "✖ CRASHED" in header(app) and "⚠" not in header(app)


@sync
async def test_a_duplicated_old_record_at_the_end_is_not_folded(session):
    every = records(session)
    old = every[5]  # from epoch 1
    with open(session.log_path, "ab") as f:
        f.write(session.log_path.read_bytes()[old.offset : old.end])
    app = ReplayApp(session, start=None)
    async with app.run_test(size=(200, 40)) as pilot:
        await pilot.pause(0.15)
        assert app.state.epoch == 2 and app.state.run_status == "finished"
        assert "epoch 2/2" in app.panel("training").text()
        assert f"seq {old.seq if old.seq >= 0 else 5} after seq {len(every) - 1}" in "\n".join(
            ln.text for ln in app.state.log)


@sync
async def test_replay_of_a_record_with_a_wrong_field_type_does_not_crash(session):
    every = records(session)
    step = next(r for r in every if r.payload.startswith(b'{"type":"controller_step"'))
    bad = step.payload.replace(b'"reward":', b'"reward":"high","was":', 1)
    data = session.log_path.read_bytes()
    session.log_path.write_bytes(data[: step.offset] + encode_frame(bad) + data[step.end :])
    app = ReplayApp(session, start=None)
    async with app.run_test(size=(200, 40)) as pilot:
        await pilot.pause(0.15)
        assert app.state.run_status == "finished" and len(app.index) == len(every) - 1
        assert "⚠ log damaged: 1 span, 1 record skipped" in header(app)
        assert any(ln.text.endswith("record is not an event: controller_step: reward: expected a number, got str; "
                                    "1 record skipped") for ln in app.state.log)


@sync
async def test_attach_shows_damage_too(session):
    every = records(session)
    flip(session, every[10].offset + 3)  # the length field
    flip(session, every[11].offset + 3)
    app = AttachApp(session)
    async with app.run_test(size=(200, 40)) as pilot:
        for _ in range(100):
            await pilot.pause(0.05)
            if app.source.caught_up and app.source.ended:
                break
        await pilot.pause(0.2)
        assert [d.skipped for d in app.source.damage] == [2]
        assert "⚠ log damaged: 1 span, 2 records skipped" in header(app)
        assert any(ln.text.startswith(f"log damaged: bytes {every[10].offset}-{every[12].offset}")
                   for ln in app.state.log)


def test_replay_index_folds_damage_notes_at_their_position(session):
    every = records(session)
    events = list(synthetic_events(RUN))
    flip(session, every[33].offset + 40)
    index = ReplayIndex(session.log_path, snapshot_every=7)
    index.build()
    assert [(p, d.start) for p, d in index.damage] == [(33, every[33].offset)]

    def notes(state: DashboardState) -> int:
        return sum(ln.text.startswith("log damaged") for ln in state.log)

    assert [notes(index.state_at(p)) for p in (0, 32, 33, 34, 35, len(index))] == [0, 0, 1, 1, 1, 1]
    cursor = ReplayCursor(index, 30)
    for p in (31, 32, 33, 36, 80, 20, 40):  # short moves fold in place, long ones restore a snapshot
        cursor.seek(p)
        assert notes(cursor.state) == (1 if p >= 33 else 0), p
    assert index.state_at(len(index)).seq == events[-1].seq


def test_positions_never_shift_when_an_indexed_record_cannot_be_decoded_later(session):
    """A probe checked cheaply while superseded (its base64 not read) is indexed; decoding it later
    fails, and the positions after it must still show the events they were built from."""
    every = records(session)
    probes = [r for r in every if r.payload.startswith(b'{"type":"probe"')]
    victim = probes[1]
    data = json.loads(victim.payload)
    data["hidden"]["b64"] = "!" * len(data["hidden"]["b64"])
    raw = session.log_path.read_bytes()
    session.log_path.write_bytes(raw[: victim.offset] + encode_frame(json.dumps(data).encode()) + raw[victim.end :])
    index = ReplayIndex(session.log_path, snapshot_every=10_000)
    index.build()
    assert len(index) == len(every)  # indexed: superseded in its batch, so only checked
    position = next(i for i, r in enumerate(every) if r.offset == victim.offset)
    assert index.state_at(position + 1).seq == every[position - 1].seq  # the probe: nothing to fold
    for p in (position + 2, position + 30, len(every)):
        assert index.state_at(p).seq == every[p - 1].seq
