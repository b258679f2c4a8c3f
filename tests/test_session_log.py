"""Tests for the session log: round trips, torn tails, corruption, reopening, live tailing."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from enas_tui import events as ev
from enas_tui import session_log as sl
from enas_tui.session_log import (
    CorruptLogError,
    LogError,
    LogFormatError,
    LogReader,
    LogWriter,
    read_event_at,
    read_events,
    scan,
)

REPO = Path(__file__).resolve().parents[1]


def sample_events() -> dict[str, ev.Event]:
    """One populated instance of every registered event type, keyed by schema name."""
    rng = np.random.default_rng(0)
    return {
        "session_start": ev.SessionStart(
            session_id="s1", controller="supervised", seed=7, settings={"model": {"hidden": 64}},
            num_nodes=12, decision_sizes=[4, 1, 4], device="cpu", pid=123, host="box",
            versions={"numpy": "2"}, resumed_from="s0", kind="retrain", arch="tanh,0:relu", source="s0",
        ),
        "session_end": ev.SessionEnd(status="stopped", message="ctrl-c", epoch=3, best_ppl=91.5,
                                     best_arch="tanh,0:relu"),
        "epoch_start": ev.EpochStart(epoch=1, epochs=10, shared_steps=100, controller_steps=50),
        "epoch_end": ev.EpochEnd(epoch=1, train_ppl=300.5, valid_ppl=None, reward=0.3,
                                 entropy=20.1, elapsed_s=12.5, skipped_shared_steps=2),
        "shared_step": ev.SharedStep(epoch=1, step=9, loss=5.5, ppl=244.7, lr=20.0,
                                     tokens_per_s=4600.0),
        "controller_step": ev.ControllerStep(epoch=1, step=3, reward=0.4, baseline=0.35,
                                             advantage=0.05, entropy=19.0, policy_loss=-0.1,
                                             supervised_loss=None, sample_ppl=200.0),
        "probe": ev.Probe(epoch=2, step=4, archs=["tanh", "relu,0:tanh"],
                          probs=rng.random((2, 23, 11)).astype(np.float32),
                          hidden=rng.standard_normal((2, 100))),
        "untrained_probe": ev.UntrainedProbe(probs=rng.random((3, 23, 11)).astype(np.float32), mode="train",
                                             state="after_last", seed=4),
        "buffer": ev.BufferFill(epoch=5, size=1000, capacity=10000, added=1000, replaced=0,
                                phase="filling", supervised=False),
        "validation": ev.Validation(epoch=2, ppl=150.25, arch="tanh,0:relu", averaged=True),
        "derived": ev.Derived(epoch=2, arch="tanh,0:relu", ppl=140.0, candidates=100,
                              best_ppl=139.0, best_arch="relu,0:tanh"),
        "diagnostics": ev.Diagnostics(epoch=2, step=4, n=100,
                                      spearman={"ged_aligned": {"rho": 0.1, "p": None}},
                                      collapse_index={"hidden": 0.8}),
        "checkpoint": ev.Checkpoint(epoch=2, path="ckpt/e2.pt", kind="epoch"),
        "warning": ev.Warning(message="loss is nan", kind="nonfinite_loss", epoch=2),
        "error": ev.Error(message="boom", epoch=2),
        "asgd_switch": ev.AsgdSwitch(epoch=7, step=700, valid_ppl=120.5, reference_ppl=118.25, nonmono=5),
        "retrain_result": ev.RetrainResult(arch="tanh,0:relu", epoch=9, valid_ppl=101.5, test_ppl=98.25,
                                           averaged=True, params=24_000_000, search_ppl=float("inf")),
    }


def assert_same_event(got: ev.Event, want: ev.Event) -> None:
    assert type(got) is type(want)
    for f in dataclasses.fields(want):
        a, b = getattr(got, f.name), getattr(want, f.name)
        if isinstance(b, np.ndarray):
            assert isinstance(a, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
            np.testing.assert_array_equal(a, b)
        else:
            assert a == b, f.name


def step(i: int) -> ev.SharedStep:
    return ev.SharedStep(epoch=0, step=i, loss=1.0 + i, ppl=2.0, lr=20.0, tokens_per_s=1.0)


def write_steps(path: Path, n: int) -> list[sl.Record]:
    with LogWriter(path) as writer:
        for i in range(n):
            writer.append(step(i))
    with LogReader(path) as reader:
        return reader.read_records()


@pytest.fixture
def log(tmp_path: Path) -> Path:
    return tmp_path / "events.log"


# -- format and round trip ------------------------------------------------------------------
def test_new_log_has_header_and_no_events(log: Path) -> None:
    LogWriter(log).close()
    assert log.read_bytes() == b"ENASLOG\x01"
    assert read_events(log) == []
    assert scan(log) == (0, sl.HEADER_SIZE, 0)


def test_frame_layout_matches_documented_format(log: Path) -> None:
    with LogWriter(log) as writer:
        writer.append(step(0))
    data = log.read_bytes()[sl.HEADER_SIZE :]
    length = int.from_bytes(data[:8], "little")
    payload = data[12 : 12 + length]
    assert len(data) == 12 + length + 4
    assert int.from_bytes(data[8:12], "little") == sl.zlib.crc32(data[:8])
    assert int.from_bytes(data[12 + length :], "little") == sl.zlib.crc32(payload)
    assert ev.decode_event(payload).step == 0


def test_round_trip_every_event_type(log: Path) -> None:
    samples = sample_events()
    assert set(samples) == set(ev.event_types()), "add a sample for each new event type"
    stamps = [e.t for e in samples.values()]
    with LogWriter(log) as writer:
        written = [writer.append(e) for e in samples.values()]
    assert [e.seq for e in written] == list(range(len(samples)))
    assert [e.t for e in written] == stamps
    got = read_events(log)
    assert len(got) == len(written)
    for a, b in zip(got, written):
        assert_same_event(a, b)


def test_epoch_end_from_an_older_log_decodes_with_no_skipped_steps() -> None:
    old = {"type": "epoch_end", "seq": 9, "t": 1.0, "epoch": 1, "train_ppl": 300.5, "valid_ppl": None,
           "reward": 0.3, "entropy": 20.1, "elapsed_s": 12.5}  # written before skipped_shared_steps existed
    event = ev.decode_event(json.dumps(old).encode())
    assert isinstance(event, ev.EpochEnd) and event.skipped_shared_steps == 0 and event.train_ppl == 300.5


def test_read_event_at_record_offsets(log: Path) -> None:
    records = write_steps(log, 5)
    for i, rec in enumerate(records):
        assert read_event_at(log, rec.offset).step == i
    assert records[0].offset == sl.HEADER_SIZE
    assert all(a.end == b.offset for a, b in zip(records, records[1:]))
    with pytest.raises(CorruptLogError, match=f"byte offset {records[-1].end}: no complete record"):
        read_event_at(log, records[-1].end)


def test_large_record_read_with_tiny_chunks(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    big = ev.Probe(epoch=0, step=0, archs=["tanh"] * 100,
                   probs=np.arange(33_000.0).reshape(100, 30, 11),
                   hidden=np.ones((100, 100), np.float32))
    with LogWriter(log) as writer:
        writer.append(step(0))
        writer.append(big)
        writer.append(step(2))
    monkeypatch.setattr(sl, "_CHUNK", 7)  # frames straddle every read
    got = read_events(log)
    assert [e.seq for e in got] == [0, 1, 2]
    assert_same_event(got[1], big)


# -- reopening and seq ------------------------------------------------------------------------
def test_seq_continues_after_reopen(log: Path) -> None:
    write_steps(log, 3)
    with LogWriter(log) as writer:
        assert writer.next_seq == 3
        assert writer.append(step(3)).seq == 3
        assert writer.next_seq == 4
    assert [e.seq for e in read_events(log)] == [0, 1, 2, 3]


def test_second_writer_is_refused_while_first_is_open(log: Path) -> None:
    with LogWriter(log) as writer:
        writer.append(step(0))
        with pytest.raises(LogError, match="another process"):
            LogWriter(log)
    LogWriter(log).close()  # lock released on close


def test_append_after_close_raises(log: Path) -> None:
    writer = LogWriter(log)
    writer.close()
    with pytest.raises(LogError, match="closed"):
        writer.append(step(0))


# -- torn tails -------------------------------------------------------------------------------
def test_torn_tail_at_every_byte_of_last_record(log: Path) -> None:
    records = write_steps(log, 3)
    data = log.read_bytes()
    last = records[-1]
    for cut in range(last.offset, last.end):
        log.write_bytes(data[:cut])
        with LogReader(log) as reader:
            assert [e.step for e in reader.read()] == [0, 1]
            assert reader.offset == last.offset
            assert reader.read() == []  # polling again is still quiet
            assert reader.at_torn_tail() == (cut > last.offset)
            assert scan(log) == (2, last.offset, cut - last.offset)
            with log.open("ab") as f:  # the writer finishes its frame
                f.write(data[cut:])
            got = reader.read()
            assert [e.step for e in got] == [2] and reader.offset == last.end
            assert not reader.at_torn_tail()


def test_torn_header_counts_as_empty(log: Path) -> None:
    log.write_bytes(b"ENAS")
    with LogReader(log) as reader:
        assert reader.read() == []
        with log.open("ab") as f:
            f.write(b"LOG\x01")
        assert reader.read() == []
    with LogWriter(log) as writer:  # a writer completes a torn header
        writer.append(step(0))
    assert [e.step for e in read_events(log)] == [0]


@pytest.mark.parametrize("into", [1, 11, 12, 13, -1])
def test_writer_reopen_truncates_torn_tail(log: Path, into: int) -> None:
    records = write_steps(log, 3)
    last = records[-1]
    cut = (last.end if into < 0 else last.offset) + into
    log.write_bytes(log.read_bytes()[:cut])
    with LogWriter(log) as writer:
        assert log.stat().st_size == last.offset
        assert writer.next_seq == 2
        writer.append(step(7))
    got = read_events(log)
    assert [(e.seq, e.step) for e in got] == [(0, 0), (1, 1), (2, 7)]
    assert scan(log)[2] == 0


def test_tail_rewritten_by_a_new_writer_mid_read_is_not_corruption(
    log: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A reader holding a torn tail's first bytes while a restarted writer replaces it."""
    first = write_steps(log, 2)[0]
    data = log.read_bytes()
    log.write_bytes(data[: first.end + 30])  # record 1 torn after 30 bytes
    replacement = ev.Warning(message="x" * 200)

    class RacingOs:
        """os, except that the first pread is followed by a new writer taking over."""

        calls = 0

        def __getattr__(self, name: str) -> object:
            return getattr(os, name)

        def pread(self, fd: int, n: int, at: int) -> bytes:
            got = os.pread(fd, n, at)
            RacingOs.calls += 1
            if RacingOs.calls == 1:
                with LogWriter(log) as writer:  # truncates the torn tail, appends its own
                    writer.append(replacement)
            return got

    with LogReader(log, offset=first.end) as reader:
        monkeypatch.setattr(sl, "_CHUNK", 16)
        monkeypatch.setattr(sl, "os", RacingOs())
        got = reader.read()
    assert RacingOs.calls > 2
    assert [(type(e), e.seq) for e in got] == [(ev.Warning, 1)]


# -- damage -----------------------------------------------------------------------------------
def flip(path: Path, at: int) -> None:
    data = bytearray(path.read_bytes())
    data[at] ^= 0x40
    path.write_bytes(bytes(data))


def frame_head(length: int) -> bytes:
    """A frame header claiming ``length`` bytes, with a valid length checksum."""
    raw = length.to_bytes(8, "little")
    return raw + sl.zlib.crc32(raw).to_bytes(4, "little")


@pytest.mark.parametrize("where, reason", [("payload", "payload checksum mismatch"),
                                           ("length", "length checksum mismatch"),
                                           ("length_crc", "length checksum mismatch"),
                                           ("payload_crc", "payload checksum mismatch")])
def test_one_flipped_byte_loses_one_record_and_names_it(log: Path, where: str, reason: str) -> None:
    records = write_steps(log, 5)
    bad = records[1]
    at = {"payload": bad.offset + 20, "length": bad.offset + 1, "length_crc": bad.offset + 9,
          "payload_crc": bad.end - 2}[where]
    flip(log, at)
    before = log.read_bytes()
    with LogReader(log) as reader:
        assert [e.step for e in reader.read()] == [0, 2, 3, 4]  # resynchronised: everything after kept
        assert reader.damage == [sl.Damage(bad.offset, bad.end, 1, reason)]
        assert reader.offset == records[-1].end and not reader.at_torn_tail()
    assert reader.damage[0].describe() == f"bytes {bad.offset}-{bad.end} ({bad.end - bad.offset} bytes): {reason}; 1 record skipped"
    assert scan(log) == (4, records[-1].end, 0)
    with LogWriter(log) as writer:  # a resumed writer leaves damage in the middle where it is
        assert writer.damage == [sl.Damage(bad.offset, bad.end, 1, reason)] and writer.set_aside is None
        assert writer.next_seq == 5
        writer.append(step(5))
    assert log.read_bytes().startswith(before)
    assert [e.seq for e in read_events(log)] == [0, 2, 3, 4, 5]


def test_zeroed_span_across_records_counts_them_from_the_seqs(log: Path) -> None:
    records = write_steps(log, 8)
    data = bytearray(log.read_bytes())
    start, end = records[2].offset + 5, records[5].offset + 3  # records 2, 3, 4 and 5 touched
    data[start:end] = bytes(end - start)
    log.write_bytes(bytes(data))
    got = sl.read_log(log)
    assert [e.step for e in got.events] == [0, 1, 6, 7]
    assert got.damage == [sl.Damage(records[2].offset, records[6].offset, 4, "length checksum mismatch")]


def test_damage_at_the_start_counts_from_seq_zero(log: Path) -> None:
    records = write_steps(log, 4)
    flip(log, records[0].offset + 30)
    got = sl.read_log(log)
    assert [e.step for e in got.events] == [1, 2, 3] and got.damage[0].skipped == 1


def test_trailing_zeros_are_a_damaged_tail_set_aside_on_reopen(log: Path) -> None:
    records = write_steps(log, 3)
    good = log.read_bytes()
    log.write_bytes(good + bytes(4096))  # what a power cut can leave
    with LogReader(log) as reader:
        assert [e.step for e in reader.read()] == [0, 1, 2]
        tail = sl.Damage(records[-1].end, len(good) + 4096, None, "length checksum mismatch", at_end=True)
        assert reader.damage == [tail] and not reader.at_torn_tail() and reader.at_end()
        assert reader.read() == [] and reader.damage == [tail]  # polling again finds the same
    assert tail.describe().endswith("at the end of the log: length checksum mismatch; records skipped: unknown")
    with LogWriter(log) as writer:
        side = log.with_name(f"events.log.damaged-{len(good)}")
        assert writer.set_aside == sl.SetAside(len(good), 4096, side, "length checksum mismatch")
        assert side.read_bytes() == bytes(4096)  # copied before the cut: nothing silently dropped
        assert log.read_bytes() == good and writer.next_seq == 3
        writer.append(step(3))
    assert [e.step for e in read_events(log)] == [0, 1, 2, 3]


def test_absurd_length_with_valid_crc_is_damage(log: Path) -> None:
    records = write_steps(log, 2)
    with log.open("ab") as f:
        f.write(frame_head(sl.MAX_PAYLOAD + 1) + b"x" * 100)
    with LogReader(log) as reader:
        assert len(reader.read()) == 2
        assert not reader.at_torn_tail()
        assert [(d.start, d.at_end) for d in reader.damage] == [(records[-1].end, True)]
        assert "exceeds" in reader.damage[0].reason


def test_large_length_field_followed_by_records_is_damage_not_a_torn_tail(log: Path) -> None:
    """A length rewritten to 200 MB (valid checksum) must not make a writer cut the records after it."""
    records = write_steps(log, 50)
    data = bytearray(log.read_bytes())
    bad = records[10]
    data[bad.offset : bad.offset + 12] = frame_head(200 * 1024 * 1024)
    log.write_bytes(bytes(data))
    got = sl.read_log(log)
    assert [e.step for e in got.events] == [i for i in range(50) if i != 10]
    assert got.damage == [sl.Damage(bad.offset, bad.end, 1, f"record claims 209,715,200 bytes but a valid "
                                                             f"record starts at byte {bad.end}")]
    with LogWriter(log) as writer:
        assert writer.set_aside is None and writer.next_seq == 50
    assert log.read_bytes() == bytes(data)  # not one byte cut


def test_large_length_field_on_the_last_record_is_a_torn_tail_set_aside(log: Path) -> None:
    records = write_steps(log, 3)
    data = bytearray(log.read_bytes())
    data[records[2].offset : records[2].offset + 12] = frame_head(200 * 1024 * 1024)
    log.write_bytes(bytes(data))
    with LogReader(log) as reader:
        assert [e.step for e in reader.read()] == [0, 1] and reader.at_torn_tail()
        assert reader.torn_tail == (records[2].offset, records[2].end - records[2].offset)
    with LogWriter(log) as writer:
        side = log.with_name(f"events.log.torn-{records[2].offset}")
        assert writer.set_aside is not None and writer.set_aside.path == side
        assert side.read_bytes() == bytes(data[records[2].offset :])
    assert log.stat().st_size == records[2].offset


def test_valid_frame_with_non_event_payload_is_damage(log: Path) -> None:
    first = write_steps(log, 1)[0]
    with log.open("ab") as f:
        f.write(sl.encode_frame(b"\xffnot json"))
        bad_type = b'{"type":"shared_step","seq":2,"t":1.0,"epoch":"one","step":2,"loss":1.0,"ppl":2.0,' \
                   b'"lr":1.0,"tokens_per_s":1.0}'
        f.write(sl.encode_frame(bad_type))
        f.write(sl.encode_frame(ev.encode_event(dataclasses.replace(step(3), seq=3))))
    with LogReader(log) as reader:
        assert [(e.seq, e.step) for e in reader.read()] == [(0, 0), (3, 3)]
        reasons = [(d.start, d.skipped, d.reason) for d in reader.damage]
    second = first.end + 16 + 9
    assert reasons[0][:2] == (first.end, 1) and reasons[0][2].startswith("record is not an event: payload is not JSON")
    assert reasons[1] == (second, 1, "record is not an event: shared_step: epoch: expected an integer, got str")


def test_repeated_or_backward_seqs_are_damage(log: Path) -> None:
    records = write_steps(log, 5)
    data = log.read_bytes()
    copy = data[records[1].offset : records[1].end]
    log.write_bytes(data + copy)  # a record duplicated at the end
    got = sl.read_log(log)
    assert [e.seq for e in got.events] == [0, 1, 2, 3, 4]
    assert got.damage == [sl.Damage(records[-1].end, records[-1].end + len(copy), 1,
                                    "seq 1 after seq 4: a repeated or out-of-order record")]
    tail = sl.read_tail(log)  # the cheap end-of-log read agrees
    assert tail.last.seq == 4 and tail.damage == got.damage


def test_a_seq_gap_between_whole_records_is_reported(log: Path) -> None:
    records = write_steps(log, 6)
    data = log.read_bytes()
    log.write_bytes(data[: records[2].offset] + data[records[4].offset :])  # two records cut out cleanly
    got = sl.read_log(log)
    assert [e.seq for e in got.events] == [0, 1, 4, 5]
    assert got.damage == [sl.Damage(records[2].offset, records[2].offset, 2, "seq jumps from 1 to 4: records missing")]
    assert got.damage[0].describe() == f"at byte {records[2].offset}: seq jumps from 1 to 4: records missing; 2 records skipped"


def test_no_false_resync_in_a_megabyte_of_random_bytes(log: Path) -> None:
    records = write_steps(log, 4)
    data = log.read_bytes()
    noise = np.random.default_rng(7).integers(0, 256, 1 << 20, dtype=np.uint8).tobytes()
    log.write_bytes(data[: records[2].offset] + noise + data[records[2].offset :])
    got = sl.read_log(log)
    assert [e.step for e in got.events] == [0, 1, 2, 3]
    assert [(d.start, d.end) for d in got.damage] == [(records[2].offset, records[2].offset + len(noise))]
    assert got.damage[0].skipped == 0


def test_next_frame_skips_zero_runs_and_finds_a_frame_after_them(log: Path) -> None:
    records = write_steps(log, 2)
    data = log.read_bytes()
    zeros = bytes(3 * (1 << 20) + 5)  # across several scan chunks
    log.write_bytes(data[: records[1].offset] + zeros + data[records[1].offset :])
    with open(log, "rb") as f:
        found = sl.next_frame(f.fileno(), records[1].offset, log.stat().st_size)
    assert found == records[1].offset + len(zeros)


def test_read_tail_reads_only_the_end(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_steps(log, 20_000)
    read = []
    real = os.pread

    def counting(fd: int, n: int, at: int) -> bytes:
        got = real(fd, n, at)
        read.append(len(got))
        return got

    monkeypatch.setattr(sl.os, "pread", counting)
    tail = sl.read_tail(log, window=4096)
    assert tail.last.seq == 19_999 and tail.clean and 3 <= tail.records < 100
    assert sum(read) < 64 * 1024 < log.stat().st_size / 40  # the last few KB of a 3 MB log


def diag(epoch: int) -> ev.Diagnostics:
    return ev.Diagnostics(epoch=epoch, step=0, n=3, spearman={"ged_aligned": {"rho": 0.1 * epoch, "p": None}},
                          collapse_index={"hidden": 0.5, "max_prob": 0.1})


def test_read_last_finds_the_last_event_of_a_kind_from_the_end(log: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with LogWriter(log) as writer:
        writer.append(diag(1))
        for i in range(5_000):
            writer.append(step(i))
        writer.append(diag(2))  # about a fifth of the way back from the end
        for i in range(20):
            writer.append(step(i))
        writer.append(diag(3))
        for i in range(20_000):
            writer.append(step(i))
    read = []
    real = os.pread

    def counting(fd: int, n: int, at: int) -> bytes:
        got = real(fd, n, at)
        read.append(len(got))
        return got

    monkeypatch.setattr(sl.os, "pread", counting)
    found = sl.read_last(log, "diagnostics", window=4096)  # the window doubles back to it
    assert isinstance(found, ev.Diagnostics) and found.epoch == 3
    every = [e for e in read_events(log) if e.type == "diagnostics"]
    assert found.seq == every[-1].seq
    read.clear()
    assert sl.read_last(log, "epoch_end", window=4096) is None  # none at all: the whole log, once
    assert sl.read_last(log, "shared_step", window=4096).seq == every[-1].seq + 20_000


def test_read_last_skips_a_damaged_record(log: Path) -> None:
    with LogWriter(log) as writer:
        writer.append(diag(1))
        writer.append(diag(2))
        writer.append(step(0))
    records = LogReader(log).read_records()
    with open(log, "r+b") as f:  # damage the payload of diag(2)
        f.seek(records[1].offset + 20)
        f.write(b"\xff\xff")
    assert sl.read_last(log, "diagnostics").epoch == 1


def test_corrupt_error_survives_pickling() -> None:
    import pickle

    original = CorruptLogError(42, "payload checksum mismatch", "a.log")
    err = pickle.loads(pickle.dumps(original))
    assert isinstance(err, CorruptLogError) and err.offset == 42 and str(err) == str(original)


# -- not a log --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "content, match",
    [(b"TFRECORD" + b"\0" * 20, "not an enas-tui session log"),
     (b"hello", "not an enas-tui session log"),
     (b"ENASLOG\x02", "newer"),
     (b"ENASLOG\x00", "unsupported")],
)
def test_bad_header_raises_format_error(log: Path, content: bytes, match: str) -> None:
    log.write_bytes(content)
    for call in (LogReader, read_events, scan, LogWriter, sl.read_tail):
        with pytest.raises(LogFormatError, match=match):
            call(log)
    assert log.read_bytes() == content


def test_missing_file_is_a_log_error(tmp_path: Path) -> None:
    with pytest.raises(LogError, match="cannot open"):
        LogReader(tmp_path / "nope.log")


# -- chunked reads ----------------------------------------------------------------------------
def test_max_records_resumes_where_it_stopped(log: Path) -> None:
    write_steps(log, 10)
    with LogReader(log) as reader:
        batches = [reader.read_records(max_records=3) for _ in range(5)]
        assert [len(b) for b in batches] == [3, 3, 3, 1, 0]
        assert [r.event().step for b in batches for r in b] == list(range(10))
        assert reader.offset == batches[3][-1].end == log.stat().st_size
    with LogReader(log) as reader:
        first = reader.read_records(max_records=3)
        assert reader.offset == first[-1].end
        assert not reader.at_torn_tail()  # a complete record waits: not torn


def test_zero_time_budget_still_makes_progress(log: Path) -> None:
    write_steps(log, 4)
    with LogReader(log) as reader:
        got = [e for _ in range(5) for e in reader.read(max_seconds=0.0)]
    assert [e.step for e in got] == [0, 1, 2, 3]


def test_reader_from_saved_offset(log: Path) -> None:
    records = write_steps(log, 4)
    with LogReader(log, offset=records[2].offset) as reader:
        assert [e.step for e in reader.read()] == [2, 3]
    with pytest.raises(LogError, match="header"):
        LogReader(log, offset=3)


# -- other processes --------------------------------------------------------------------------
WRITER_SCRIPT = textwrap.dedent(
    """
    import sys, time
    from enas_tui.events import SharedStep
    from enas_tui.session_log import LogWriter
    path, n, hang = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "hang"
    with LogWriter(path) as w:
        for i in range(n):
            w.append(SharedStep(epoch=0, step=i, loss=float(i), ppl=1.0, lr=1.0, tokens_per_s=1.0))
            if i % 25 == 0:
                time.sleep(0.002)
        if hang:
            print("ready", flush=True)
            time.sleep(60)
    """
)


def spawn_writer(path: Path, n: int, hang: bool) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-c", WRITER_SCRIPT, str(path), str(n), "hang" if hang else "done"],
        env=env, stdout=subprocess.PIPE, text=True,
    )


@pytest.mark.timeout(60)
def test_reader_follows_a_writer_in_another_process(log: Path) -> None:
    n = 400
    LogWriter(log).close()  # exists before the follower opens it
    proc = spawn_writer(log, n, hang=False)
    got: list[ev.Event] = []
    deadline = time.monotonic() + 30
    with LogReader(log) as reader:
        while len(got) < n and time.monotonic() < deadline:
            batch = reader.read(max_events=50, max_seconds=0.05)
            got += batch
            if not batch:
                time.sleep(0.002)
    assert proc.wait(timeout=30) == 0
    assert [(e.seq, e.step) for e in got] == [(i, i) for i in range(n)]


@pytest.mark.timeout(60)
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_events_survive_sigkill_of_the_writer(log: Path) -> None:
    proc = spawn_writer(log, 60, hang=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    finally:
        proc.kill()
        proc.wait(timeout=30)
    assert [e.seq for e in read_events(log)] == list(range(60))
    with LogWriter(log) as writer:  # the killed writer's lock is gone
        assert writer.next_seq == 60
