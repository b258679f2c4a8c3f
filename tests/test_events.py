"""Event payloads: non-finite floats at any depth, and payloads that are not events."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from enas_tui import events as ev
from enas_tui.events import EventError, check_event, decode_event, encode_event


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
