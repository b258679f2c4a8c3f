"""Event payloads: schema 2 (probes say how they were taken, diagnostics keyed by measure, version 1
records translated as they are decoded), non-finite floats at any depth, payloads that are not events."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from enas_tui import events as ev
from enas_tui.events import EventError, check_event, decode_event, encode_event
from enas_tui.session_log import HEADER, encode_frame, read_events


def schema1_payloads() -> list[bytes]:
    """A probe and a diagnostics record exactly as version 1 of the trainer wrote them."""
    probe = ev.Probe(epoch=1, step=20, archs=["tanh", "relu"], probs=np.full((2, 1, 4), 0.25, np.float32),
                     hidden=np.ones((2, 3), np.float32), seq=0).to_dict()
    del probe["mode"], probe["state"]
    diagnostics = {"type": "diagnostics", "seq": 1, "t": 1.0, "epoch": 1, "step": 20, "n": 2,
                   "spearman": {"common_activations": {"rho": -0.2, "p": 0.01},
                                "common_connections": {"rho": -0.1, "p": 0.2},
                                "ged": {"rho": 0.3, "p": 0.001}, "abs_perf_diff": {"rho": None, "p": None}},
                   "collapse_index": {"hidden": 0.009, "max_prob": 0.02}}
    return [json.dumps(probe).encode(), json.dumps(diagnostics).encode()]


def test_schema_version_is_2_and_new_sessions_say_so():
    assert ev.SCHEMA_VERSION == 2
    start = ev.SessionStart(session_id="s", controller="random", seed=0, settings={}, num_nodes=2,
                            decision_sizes=[4, 1, 4], device="cpu", pid=1, host="h")
    assert ev.decode_event(ev.encode_event(start)).schema == 2


def test_schema1_probe_decodes_as_train_mode_emit_last():
    probe = ev.decode_event(schema1_payloads()[0])
    assert isinstance(probe, ev.Probe)
    assert (probe.mode, probe.state) == ("train", "emit_last")  # how version 1 probes were taken


def test_schema1_diagnostics_decode_with_measure_names_and_absolute_collapse():
    diag = ev.decode_event(schema1_payloads()[1])
    assert isinstance(diag, ev.Diagnostics)
    assert diag.spearman == {"common_activations_aligned": {"rho": -0.2, "p": 0.01},
                             "common_connections": {"rho": -0.1, "p": 0.2},
                             "ged_aligned": {"rho": 0.3, "p": 0.001},
                             "abs_perf_diff": {"rho": None, "p": None}}
    assert diag.collapse == "absolute" and diag.collapse_index == {"hidden": 0.009, "max_prob": 0.02}


def test_schema2_events_round_trip_unchanged():
    probe = ev.Probe(epoch=3, step=7, archs=["tanh"], probs=np.zeros((1, 1, 4), np.float32),
                     hidden=np.zeros((1, 2), np.float32), mode="train", state="after_last")
    again = ev.decode_event(ev.encode_event(probe))
    assert (again.mode, again.state) == ("train", "after_last")
    spearman = {"common_activations_paper": {"rho": -0.4, "p": 1e-9}, "ged_paper": {"rho": 0.1, "p": 0.02},
                "ged_exact": {"rho": 0.05, "p": 0.3}}
    diag = ev.decode_event(ev.encode_event(ev.Diagnostics(epoch=3, step=7, n=1, spearman=spearman,
                                                          collapse_index={"hidden": 0.4, "max_prob": 0.1})))
    assert diag.spearman == spearman and diag.collapse == "scale_free"
    defaults = ev.Probe(epoch=0, step=0, archs=[], probs=np.zeros((0, 1, 4)), hidden=np.zeros((0, 2)))
    assert (defaults.mode, defaults.state) == ("derive", "emit_last")  # the settings' defaults


def test_a_schema1_log_reads_translated(tmp_path):
    path = tmp_path / "events.log"  # the payloads framed exactly as version 1 wrote them
    path.write_bytes(HEADER + b"".join(encode_frame(payload) for payload in schema1_payloads()))
    probe, diag = read_events(path)
    assert probe.mode == "train" and "ged_aligned" in diag.spearman and "ged" not in diag.spearman


def test_only_version1_records_are_translated():
    # a version 2 record is decoded as written, whatever its keys: translation needs the version 1 shape
    diag = ev.Diagnostics(epoch=1, step=1, n=3, spearman={"ged": {"rho": 0.2, "p": 0.5}},
                          collapse_index={"hidden": 0.1, "max_prob": 0.0})
    again = ev.decode_event(ev.encode_event(diag))
    assert again.spearman == diag.spearman and again.collapse == "scale_free"


def payload(**fields) -> bytes:
    base = {"type": "shared_step", "seq": 3, "t": 1.5, "epoch": 1, "step": 2, "loss": 1.0, "ppl": 2.0,
            "lr": 20.0, "tokens_per_s": 100.0}
    return json.dumps({**base, **fields}).encode()


def test_nonfinite_floats_round_trip_at_any_depth():
    diag = ev.Diagnostics(epoch=1, step=2, n=3,
                          spearman={"ged_paper": {"rho": float("nan"), "p": float("inf")},
                                    "common_connections": {"rho": -0.5, "p": None}},
                          collapse_index={"hidden": float("nan"), "max_prob": np.float32(0.25)})
    raw = encode_event(diag)
    data = json.loads(raw)  # plain JSON: no NaN literal anywhere
    assert data["spearman"]["ged_paper"] == {"rho": "nan", "p": "inf"}
    assert data["collapse_index"] == {"hidden": "nan", "max_prob": 0.25}
    back = decode_event(raw)
    assert math.isnan(back.spearman["ged_paper"]["rho"]) and back.spearman["ged_paper"]["p"] == math.inf
    assert back.spearman["common_connections"] == {"rho": -0.5, "p": None}
    assert math.isnan(back.collapse_index["hidden"]) and back.collapse_index["max_prob"] == 0.25
    end = ev.EpochEnd(epoch=1, train_ppl=float("-inf"), valid_ppl=None, reward=np.float64("nan"),
                      entropy=1.0, elapsed_s=2)
    back = decode_event(encode_event(end))
    assert back.train_ppl == -math.inf and back.valid_ppl is None and math.isnan(back.reward)
    assert isinstance(back.elapsed_s, float) and back.elapsed_s == 2.0


def test_strings_are_not_mistaken_for_floats_where_the_type_says_string():
    start = ev.Warning(message="nan", kind="inf")
    back = decode_event(encode_event(start))
    assert back.message == "nan" and back.kind == "inf"


@pytest.mark.parametrize("raw, reason", [
    (b"\xff\xfe", "payload is not JSON"),
    (b"[1, 2]", "payload is a JSON list, not an object"),
    (b'{"type": 5, "seq": 1, "t": 1.0}', "event type is int, not a string"),
    (payload(seq="3"), "shared_step: seq: expected an integer, got str"),
    (payload(seq=True), "shared_step: seq: expected an integer, got bool"),
    (payload(t=None), "shared_step: t: expected a number, got null"),
    (payload(epoch=1.5), "shared_step: epoch: expected an integer, got float"),
    (payload(loss="lots"), "shared_step: loss: expected a number, got str"),
    (payload(loss=[1.0]), "shared_step: loss: expected a number, got list"),
    (payload(loss=10**400), "shared_step: loss: integer too large for a number"),
    (b'{"type": "shared_step", "seq": 1, "t": 1.0, "epoch": 1}', "shared_step: missing fields loss, lr, ppl, step, tokens_per_s"),
    (b'{"type": "validation", "seq": 1, "t": 1.0, "epoch": 1, "ppl": 2.0, "arch": 7}', "validation: arch: expected str, got int"),
    (b'{"type": "diagnostics", "seq": 1, "t": 1.0, "epoch": 1, "step": 1, "n": 3, "spearman": [], "collapse_index": {}}',
     "diagnostics: spearman: expected an object, got list"),
    (b'{"type": "diagnostics", "seq": 1, "t": 1.0, "epoch": 1, "step": 1, "n": 3, "spearman": {"ged": {"rho": "x"}},'
     b' "collapse_index": {}}', "diagnostics: spearman.ged.rho: expected a number, got str"),
    (b"[" * 100_000 + b"]" * 100_000, "payload nests too deeply"),
])
def test_payloads_that_are_not_events_raise_one_line_event_errors(raw, reason):
    with pytest.raises(EventError) as info:
        decode_event(raw)
    assert str(info.value).startswith(reason) and "\n" not in str(info.value)
    with pytest.raises(EventError):
        check_event(raw)


def probe_payload(**changes) -> dict:
    probe = ev.Probe(epoch=1, step=2, archs=["tanh", "relu"], probs=np.ones((2, 3, 4), np.float32),
                     hidden=np.zeros((2, 5), np.float32))
    data = probe.to_dict()
    data.update(changes)
    return data


@pytest.mark.parametrize("change, reason", [
    ({"probs": "abc"}, "probe: probs: expected an array object, got str"),
    ({"probs": {"dtype": "|O", "shape": [1], "b64": "AAAAAAAAAAA="}}, "probe: probs: array dtype '|O' is not numeric"),
    ({"probs": {"dtype": "<f4", "shape": [2, 3, 5], "b64": probe_payload()["probs"]["b64"]}},
     "probe: probs: array data does not match shape [2, 3, 5] of <f4"),
    ({"archs": ["tanh"]}, "probe: 1 architectures but arrays of 2 and 2 rows"),
    ({"probs": {"dtype": "<f4", "shape": [2, 12], "b64": probe_payload()["probs"]["b64"]}},
     "probe: probs must be 3-D and hidden 2-D"),
])
def test_damaged_probe_arrays_are_caught_with_or_without_decoding_them(change, reason):
    raw = json.dumps(probe_payload(**change)).encode()
    for check in (decode_event, check_event):
        with pytest.raises(EventError, match="^" + reason.replace("[", r"\[").replace("]", r"\]").replace("|", r"\|")):
            check(raw)


def test_base64_characters_are_read_only_when_the_array_is_decoded():
    raw = json.dumps(probe_payload(hidden={"dtype": "<f4", "shape": [2, 5], "b64": "!" * 56})).encode()
    check_event(raw)  # a superseded probe is checked cheaply: dtype, shape, data length
    with pytest.raises(EventError, match="^probe: hidden: array data is not base64$"):
        decode_event(raw)


def test_unknown_types_are_kept_but_still_need_seq_and_time():
    event = decode_event(b'{"type": "from_the_future", "seq": 4, "t": 2.0, "x": [1]}')
    assert isinstance(event, ev.UnknownEvent) and event.seq == 4 and event.raw["x"] == [1]
    with pytest.raises(EventError, match="from_the_future: seq"):
        decode_event(b'{"type": "from_the_future", "t": 2.0}')


def test_peek_and_payload_seq():
    raw = encode_event(ev.Warning(message="m", seq=12, t=3.5))
    assert ev.peek(raw) == ("warning", 12, 3.5)
    odd = b'{"t": 3.5, "seq": 12, "type": "warning", "message": "m"}'  # another writer's key order
    assert ev.peek(odd) is None and ev.payload_seq(odd) == ("warning", 12)
    with pytest.raises(EventError, match="no integer seq"):
        ev.payload_seq(b'{"type": "warning"}')
