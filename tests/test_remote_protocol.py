"""Remote watching without a server: targets, hosts.toml, ssh errors, the stream protocol, the catch-up."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import zlib
from collections import deque
from pathlib import Path

import numpy as np
import pytest

from enas_tui.events import decode_event
from enas_tui.remote.catchup import KEEP_STEPS, RESUME_STEPS, plan
from enas_tui.remote.hosts import HostsError, endpoint
from enas_tui.remote.protocol import (
    TAG_ARCHS, TAG_CONTROL, TAG_RECORD, MessageReader, ProtocolError, check_hello, control_message, find_hello, hello,
    hello_line, record_message,
)
from enas_tui.remote.ssh import classify, ssh_argv
from enas_tui.remote.target import RemoteTarget, TargetError, parse_host, parse_target
from enas_tui.session_log import HEADER_SIZE, LogReader, LogWriter, Record, encode_frame
from enas_tui.sessions import Session, write_json_atomic
from enas_tui.sources import ProbeArchs
from enas_tui.tui.state import DashboardState, Series
from enas_tui.tui.synthetic import SyntheticRun, synthetic_events, write_synthetic_session


# -- targets and hosts ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text, expected", [
    ("gpu-box:20250101-000000-supervised-ab12",
     RemoteTarget("gpu-box", "20250101-000000-supervised-ab12")),
    ("me@gpu-box:abc", RemoteTarget("gpu-box", "abc", user="me")),
    ("gpu-box:", RemoteTarget("gpu-box", "")),
    ("ssh://me@10.0.0.5:2222/abc", RemoteTarget("10.0.0.5", "abc", user="me", port=2222)),
    ("ssh://gpu-box/", RemoteTarget("gpu-box", "")),
    ("[::1]:abc", RemoteTarget("::1", "abc")),
])
def test_targets(text, expected):
    assert parse_target(text) == expected


@pytest.mark.parametrize("text", ["noseparator", ":abc", "-oProxyCommand=x:abc", "host:a b", "a;b:c",
                                  "ssh://h:99999/x", "ssh://h/a/b"])
def test_bad_targets_are_refused(text):
    with pytest.raises(TargetError):
        parse_target(text)


def test_hosts_file_sets_command_and_folder_below_the_flags(tmp_path, monkeypatch):
    hosts = tmp_path / "hosts.toml"
    hosts.write_text('ssh = "ssh -F ~/cfg"\n[hosts."gpu-box"]\ncommand = "/opt/v/bin/enas-tui"\n'
                     'sessions_dir = "/scratch/s"\n')
    monkeypatch.setenv("ENAS_TUI_HOSTS", str(hosts))
    monkeypatch.delenv("ENAS_TUI_SSH", raising=False)
    ep = endpoint(parse_target("gpu-box:x"))
    assert ep.command == "/opt/v/bin/enas-tui" and ep.sessions_dir == "/scratch/s"
    assert ep.ssh == ("ssh", "-F", str(Path.home() / "cfg"))
    flagged = endpoint(parse_target("gpu-box:x"), remote_cmd="/other/enas-tui", sessions_dir="/d")
    assert (flagged.command, flagged.sessions_dir) == ("/other/enas-tui", "/d")
    other = endpoint(parse_host("ssh://me@elsewhere:2200"))
    assert (other.command, other.sessions_dir, other.command_from) == ("enas-tui", None, "default")
    argv = ssh_argv(other, "stream", ["my id", "--from", "8"])
    assert argv[:3] == ["ssh", "-F", str(Path.home() / "cfg")] and "BatchMode=yes" in argv
    assert argv[-5:-1] == ["-p", "2200", "--", "me@elsewhere"]
    assert argv[-1] == "enas-tui remote stream 'my id' --from 8"
    monkeypatch.setenv("ENAS_TUI_SSH", "ssh -F /x")
    assert endpoint(parse_target("gpu-box:x")).ssh == ("ssh", "-F", "/x")


@pytest.mark.parametrize("text, message", [
    ('[hosts."a"]\ncomand = "x"\n', "unknown key 'comand' in [hosts.\"a\"]"),
    ('[hosts."a"]\ncommand = 3\n', "'command' in [hosts.\"a\"] must be a non-empty string"),
    ("[hosts\n", "not valid TOML"),
    ('sshh = "x"\n', "unknown key 'sshh'"),
])
def test_bad_hosts_files_are_one_line_errors(tmp_path, monkeypatch, text, message):
    hosts = tmp_path / "hosts.toml"
    hosts.write_text(text)
    monkeypatch.setenv("ENAS_TUI_HOSTS", str(hosts))
    with pytest.raises(HostsError) as err:
        endpoint(parse_target("a:x"))
    assert message in str(err.value) and str(hosts) in str(err.value) and "\n" not in str(err.value)


# -- ssh failures ----------------------------------------------------------------------------------------
def test_a_closed_port_is_connection_refused(tmp_path, monkeypatch):
    """The real ssh client against a port nobody listens on."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("ENAS_TUI_HOSTS", str(tmp_path / "none.toml"))
    monkeypatch.setenv("ENAS_TUI_SSH", f"ssh -F /dev/null -o UserKnownHostsFile={tmp_path / 'kh'}")
    result = subprocess.run([sys.executable, "-m", "enas_tui", "sessions", "--host", f"ssh://127.0.0.1:{port}"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip() == ("enas-tui: error: cannot reach 127.0.0.1: connection refused: "
                                     "is sshd running there, on that port?")


@pytest.mark.parametrize("code, stderr, kind, words", [
    (255, "ssh: Could not resolve hostname gpu-box: Name or service not known", "unreachable", "does not resolve"),
    (255, "ssh: connect to host 10.1.1.1 port 22: Connection timed out", "unreachable", "timed out"),
    (255, "ssh: connect to host 10.1.1.1 port 22: No route to host", "unreachable", "no route"),
    (255, "me@gpu-box: Permission denied (publickey,password).", "auth", "ssh-add"),
    (255, "Host key verification failed.", "hostkey", "ssh gpu-box true"),
    (255, "Connection to gpu-box closed by remote host.", "closed", "closed"),
    (127, "bash: line 1: enas-tui: command not found", "missing", "--remote-cmd"),
    (127, "sh: 1: enas-tui: not found", "missing", '[hosts."gpu-box"] command = '),
    (2, "Usage: enas-tui [OPTIONS] COMMAND [ARGS]...\nError: No such command 'remote'.", "old", "too old"),
    (1, "enas-tui: error: no session 'x' in /home/me/sessions", "remote", "gpu-box: no session 'x'"),
])
def test_ssh_failures_are_classified(code, stderr, kind, words, tmp_path, monkeypatch):
    monkeypatch.setenv("ENAS_TUI_HOSTS", str(tmp_path / "none.toml"))
    error = classify(endpoint(parse_target("gpu-box:x")), code, stderr)
    assert error.kind == kind and words in str(error) and "\n" not in str(error)


# -- the protocol ----------------------------------------------------------------------------------------
def test_hello_is_found_after_a_login_scripts_chatter():
    data = b"Welcome to gpu-box!\nYou have mail.\n" + hello_line(x=1) + b"REST"
    found, end = find_hello(data)
    assert found["x"] == 1 and data[end:] == b"REST"
    assert find_hello(b"Welcome\n" + hello_line()[:20]) is None  # not all there yet
    with pytest.raises(ProtocolError, match="login script"):
        find_hello(b"y" * 70_000 + b"\n")


def test_hello_refuses_what_this_side_cannot_read():
    check_hello(hello(), "box")
    with pytest.raises(ProtocolError, match="install the same version on both"):
        check_hello({**hello(), "enas_tui_remote": 99}, "box")
    with pytest.raises(ProtocolError, match="session log format 2.*upgrade enas-tui here"):
        check_hello({**hello(), "log_format": 2}, "box")
    with pytest.raises(ProtocolError, match="events schema 9"):
        check_hello({**hello(), "schema": 9}, "box")


def test_messages_survive_any_split_and_damage_is_caught():
    frames = [encode_frame(b'{"type":"x","seq":%d,"t":0}' % i) for i in range(5)]
    stream = control_message("start", a=1) + b"".join(record_message(100 + 50 * i, f) for i, f in enumerate(frames))
    reader, got = MessageReader(), []
    for i in range(len(stream)):  # one byte at a time
        got += list(reader.feed(stream[i:i + 1]))
    assert [m.tag for m in got] == [TAG_CONTROL] + [TAG_RECORD] * 5
    assert got[0].control == {"kind": "start", "a": 1}
    assert [m.frame for m in got[1:]] == frames and [m.value for m in got[1:]] == [100, 150, 200, 250, 300]
    damaged = bytearray(stream)
    damaged[-6] ^= 1  # inside the last record's payload
    with pytest.raises(ProtocolError, match="damaged remote session log at byte offset 300"):
        list(MessageReader().feed(bytes(damaged)))


# -- the stream verb on its own (no ssh) -----------------------------------------------------------------
def stream_output(root: Path, *args: str) -> list:
    out = subprocess.run([sys.executable, "-m", "enas_tui", "remote", "stream", *args, "--sessions-dir", str(root)],
                         capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr
    _, end = find_hello(out.stdout)
    return list(MessageReader().feed(out.stdout[end:]))


def fold(events) -> DashboardState:
    """The dashboard's state after these events (payloads are decoded; ProbeArchs are taken as they are)."""
    state = DashboardState()
    state.apply_all(e if isinstance(e, ProbeArchs) else decode_event(e) for e in events)
    return state


def sent_events(messages) -> list:
    """What a remote attach folds from a stream, in order: the records' payloads and the left-out
    probes' architectures."""
    return [m.frame[12:-4] if m.tag == TAG_RECORD else m.probe_archs for m in messages
            if m.tag in (TAG_RECORD, TAG_ARCHS)]


NOT_SHOWN = {"ticks", "touched", "_summary", "_projection", "_properties",  # change tracking and caches
             "_untrained_summary"}


def comparable(value):
    if isinstance(value, Series):
        return list(value.points)
    if isinstance(value, np.ndarray):
        return (value.shape, value.tobytes())
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, deque)):
        return [comparable(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return (type(value).__name__, {f.name: comparable(getattr(value, f.name)) for f in dataclasses.fields(value)})
    return value


def view(state: DashboardState) -> dict:
    """Everything the panels can show, as comparable values (every field but change tracking)."""
    return {f.name: comparable(getattr(state, f.name)) for f in dataclasses.fields(state) if f.name not in NOT_SHOWN}


def test_a_late_attach_gets_what_the_panels_need_not_the_whole_log(tmp_path):
    # An epoch of more shared steps than the catch-up keeps, cut in its second epoch after 6,600 of them.
    run = SyntheticRun(epochs=2, shared_steps=7_000, controller_steps=300, probe_every=100, end=None)
    run.stop_after = run.events_per_epoch + 3 + 6_600  # + session_start, untrained_probe, epoch 2's start
    session = write_synthetic_session(tmp_path, run, status="finished")
    with LogReader(session.log_path) as reader:
        everything = reader.read_records()
    messages = stream_output(tmp_path, session.id, "--thin-over", "0")
    sent = [m.frame[12:-4] for m in messages if m.tag == TAG_RECORD]
    kinds = [m.control["kind"] for m in messages if m.tag == TAG_CONTROL]
    assert kinds == ["start", "caught_up", "end"]
    assert messages[-2].control["skipped"] == len(everything) - len(sent) > 7_000
    assert sum(b'"type":"probe"' in p[:30] for p in sent) == 1
    probes = sum(b'"type":"probe"' in r.payload[:30] for r in everything)
    assert sum(m.tag == TAG_ARCHS for m in messages) == probes - 1  # the others' architectures
    assert sum(b'"type":"shared_step"' in p[:30] for p in sent) == KEEP_STEPS + 2  # + the first of each epoch
    shown, full = view(fold(sent_events(messages))), view(fold(r.payload for r in everything))
    assert shown["shared_done"] == 6_600 and len(shown["shared_ppl"]) == 2_000
    assert len(shown["shape"]) == probes  # the cell shape over the search: every probe set
    assert shown == full  # the same dashboard


def test_a_late_attach_after_a_resume_keeps_what_the_rewind_leaves(tmp_path):
    """A trainer killed 500 steps into epoch 3 and resumed from its epoch-2 checkpoint re-runs them:
    the dashboard drops the repeated points and keeps more of epoch 2 instead, which lies further
    back than the last STEP_HISTORY records. The catch-up must reach back that far."""
    run = SyntheticRun(epochs=3, shared_steps=3_000, controller_steps=200, probe_every=100, end=None)
    events = list(synthetic_events(run))
    third = next(i for i, e in enumerate(events) if e.type == "epoch_start" and e.epoch == 3)
    crashed = events[:third + 2 + 500]  # epoch_start, buffer, 500 shared steps
    resumed = dataclasses.replace(events[0], resumed_from="epoch-0002.pt")
    redo = events[third:third + 2 + 1_000]
    session = Session(tmp_path / "resumed")
    session.path.mkdir()
    session.write_meta({"id": session.id})
    write_json_atomic(session.status_path, {"status": "stopped"})
    with LogWriter(session.log_path) as writer:
        for event in [*crashed, resumed, *redo]:
            writer.append(dataclasses.replace(event))
    with LogReader(session.log_path) as reader:
        everything = reader.read_records()
    full = view(fold(r.payload for r in everything))
    messages = stream_output(tmp_path, session.id, "--thin-over", "0")
    sent = [m.frame[12:-4] for m in messages if m.tag == TAG_RECORD]
    assert sum(b'"type":"shared_step"' in p[:30] for p in sent) == RESUME_STEPS + 4  # + four epoch starts
    shown = view(fold(sent_events(messages)))
    assert [x for x, _ in shown["shared_ppl"]][:1] == [5_001] and len(shown["shared_ppl"]) == 2_000
    assert shown == full
    with open(session.log_path, "rb") as f:  # without the wider window the dashboard would differ
        narrow = plan(f.fileno(), HEADER_SIZE, session.log_path.stat().st_size, resume_steps=KEEP_STEPS)
        data = session.log_path.read_bytes()
    assert view(fold(data[o + 12:o + n - 4] for o, n in narrow.records))["shared_ppl"] != full["shared_ppl"]


def test_a_stream_from_an_offset_sends_each_later_record_once(tmp_path):
    session = write_synthetic_session(tmp_path, SyntheticRun(epochs=2))
    with LogReader(session.log_path) as reader:
        everything = reader.read_records()
    start = everything[40].offset
    messages = [m for m in stream_output(tmp_path, session.id, "--from", str(start)) if m.tag == TAG_RECORD]
    assert [m.value for m in messages] == [r.offset for r in everything[40:]]
    assert [m.frame for m in messages] == [session.log_path.read_bytes()[r.offset:r.end] for r in everything[40:]]


# -- damage in the remote log --------------------------------------------------------------------------
def damaged_copy(session: Session) -> tuple[list, list]:
    """Damage a finished session's log in the ways a catch-up must see as a reader does; returns
    (the records before the damage, the offsets of records whose own bytes were damaged)."""
    with LogReader(session.log_path) as reader:
        records = reader.read_records()
    data = bytearray(session.log_path.read_bytes())
    kinds = [decode_event(r.payload).type for r in records]
    ends = [i for i, k in enumerate(kinds) if k == "epoch_end"]
    steps = [i for i, k in enumerate(kinds) if k == "shared_step"]
    probes = [i for i, k in enumerate(kinds) if k == "probe"]
    flip_header = records[ends[0]]  # a record every catch-up sends: a flipped bit in its length
    data[flip_header.offset + 2] ^= 0x10
    zeros = records[steps[40]]  # zeros over three steps a catch-up leaves out, from a header on
    data[zeros.offset:records[steps[40] + 3].offset] = bytes(records[steps[40] + 3].offset - zeros.offset)
    huge = records[steps[60]]  # a length within the file with a valid checksum: the payload check shows it
    raw = (huge.end - huge.offset + 5000).to_bytes(8, "little")
    data[huge.offset:huge.offset + 12] = raw + zlib.crc32(raw).to_bytes(4, "little")
    last_probe = records[probes[-1]]  # a flipped bit inside a payload the catch-up sends
    data[last_probe.offset + 500] ^= 0x01
    not_json = records[steps[-5]]  # a valid frame whose payload is no event
    frame = encode_frame(b"{" + b"x" * (not_json.end - not_json.offset - 17))
    data[not_json.offset:not_json.end] = frame
    twice = records[ends[1]]  # an old record again, after a later one
    session.log_path.write_bytes(bytes(data[:records[-1].offset]) + data[twice.offset:twice.end]
                                 + bytes(data[records[-1].offset:]))
    return records, [flip_header.offset, zeros.offset, huge.offset, last_probe.offset, not_json.offset]


def test_a_catch_up_reports_damage_as_a_reader_on_the_box_does(tmp_path):
    session = write_synthetic_session(tmp_path, SyntheticRun(epochs=3, shared_steps=300), session_id="hurt")
    _, damaged = damaged_copy(session)
    with LogReader(session.log_path) as reader:
        good = reader.read_records()
        expected = [dataclasses.asdict(d) for d in reader.damage]
    assert len(expected) == 6  # each damage above, and the repeated record
    messages = stream_output(tmp_path, session.id, "--thin-over", "0")
    reports = [m.control for m in messages if m.tag == TAG_CONTROL and m.control["kind"] == "damage"]
    assert reports[-1]["spans"] == expected  # the same spans, offsets, reasons and records skipped
    sent = {m.value: m.frame for m in messages if m.tag == TAG_RECORD}
    assert not set(sent) & set(damaged)  # nothing damaged is sent as a record
    by_offset = {r.offset: r for r in good}
    assert all(o in by_offset and frame == session.log_path.read_bytes()[o:by_offset[o].end]
               for o, frame in sent.items())  # every record sent is one a reader there returns
    # each report names the damage before the records after it (a local reader's order)
    order = [("record", m.value) if m.tag == TAG_RECORD else ("damage", len(m.control["spans"]))
             for m in messages if m.tag == TAG_RECORD or (m.tag == TAG_CONTROL and m.control["kind"] == "damage")]
    for i, (what, value) in enumerate(order):
        if what == "record":
            announced = max([n for w, n in order[:i] if w == "damage"], default=0)
            assert sum(d["start"] < value for d in expected) == announced


def test_a_stream_of_a_log_that_is_not_one_is_a_one_line_error(tmp_path):
    session = write_synthetic_session(tmp_path, SyntheticRun(epochs=1), session_id="nolog")
    data = bytearray(session.log_path.read_bytes())
    data[0] ^= 0x20
    session.log_path.write_bytes(bytes(data))
    for args in (("--thin-over", "0"), ()):
        out = subprocess.run([sys.executable, "-m", "enas_tui", "remote", "stream", session.id, *args,
                              "--sessions-dir", str(tmp_path)], capture_output=True, timeout=60)
        _, end = find_hello(out.stdout)
        controls = [m.control for m in MessageReader().feed(out.stdout[end:]) if m.tag == TAG_CONTROL]
        assert out.returncode == 1 and controls[-1]["kind"] == "error"
        assert "not an enas-tui session log" in controls[-1]["message"]


def test_the_first_catch_up_sends_the_cell_shape_history_after_its_records(tmp_path):
    """--archs after: every record the panels need, then (after caught_up) the left-out probes'
    architectures, which the dashboard folds in ahead of what it has: the same dashboard."""
    run = SyntheticRun(epochs=3, shared_steps=300, controller_steps=600, probe_every=50)
    session = write_synthetic_session(tmp_path, run)
    with LogReader(session.log_path) as reader:
        everything = reader.read_records()
    messages = stream_output(tmp_path, session.id, "--thin-over", "0", "--archs", "after")
    kinds = [m.control["kind"] if m.tag == TAG_CONTROL else m.tag for m in messages]
    caught_up, shapes, done = kinds.index("caught_up"), kinds.index("shapes"), kinds.index("shapes_done")
    assert TAG_ARCHS not in kinds[:caught_up] and caught_up < shapes < done
    probes = sum(b'"type":"probe"' in r.payload[:30] for r in everything)
    assert kinds[shapes + 1:done] == [TAG_ARCHS] * (probes - 1) and messages[shapes].control["count"] == probes - 1
    state = fold(m.frame[12:-4] for m in messages[:caught_up] if m.tag == TAG_RECORD)
    assert len(state.shape) == 1  # the first frame: the latest probe's shape only
    state.prepend_shapes(m.probe_archs for m in messages[shapes + 1:done])
    assert view(state) == view(fold(r.payload for r in everything))


@pytest.mark.parametrize("resumed", [False, True])
def test_the_shape_history_sent_is_what_the_dashboard_keeps(tmp_path, monkeypatch, resumed):
    """With a history of 7 probe sets: the last 7 (21 after a recent resume) and each earlier
    epoch's last, and the dashboard is the one a full read gives."""
    import enas_tui.tui.state as state_module
    from enas_tui.sources import probe_archs

    monkeypatch.setattr(state_module, "PROBE_HISTORY", 7)
    run = SyntheticRun(epochs=6, shared_steps=200, controller_steps=300, probe_every=50, end=None)
    events = list(synthetic_events(run))
    if resumed:  # killed after epoch 6's fifth probe, resumed from epoch 5's end, cut after two probes again:
        # the rewind drops five probe sets, so the seven kept reach back past the last seven records
        sixth = next(i for i, e in enumerate(events) if e.type == "epoch_start" and e.epoch == 6)
        probes = [i for i, e in enumerate(events) if e.type == "probe" and i > sixth]
        events = (events[:probes[4] + 1] + [dataclasses.replace(events[0], resumed_from="epoch-0005.pt")]
                  + events[sixth:probes[1] + 1])
    session = Session(tmp_path / "s")
    session.path.mkdir()
    with LogWriter(session.log_path) as writer:
        for event in events:
            writer.append(dataclasses.replace(event))
    with LogReader(session.log_path) as reader:
        everything = reader.read_records()
    with open(session.log_path, "rb") as f:
        chosen = plan(f.fileno(), HEADER_SIZE, session.log_path.stat().st_size, archs="after", keep_probes=7)
    data = session.log_path.read_bytes()
    probes = [r for r in everything if r.kind == "probe"]
    assert len(chosen.heads) < len(probes) - 1  # fewer than every probe
    state = fold(data[o + 12:o + n - 4] for o, n in chosen.records)
    state.prepend_shapes(probe_archs(Record(o, o + n, data[o + 12:o + n - 4])) for o, n in chosen.heads)
    full = fold(r.payload for r in everything)
    assert view(state)["shape"] == view(full)["shape"] and view(state)["shape_epoch"] == view(full)["shape_epoch"]
