"""Events schema 2: probes say how they were taken, diagnostics are keyed by measure, and version 1
records are translated as they are decoded."""

from __future__ import annotations

import json

import numpy as np

from enas_tui import events as ev
from enas_tui.session_log import HEADER, encode_frame, read_events


def schema1_payloads() -> list[bytes]:
    """A probe and a diagnostics record exactly as version 1 of the trainer wrote them."""
    probe = ev.Probe(epoch=1, step=20, archs=["tanh", "relu"], probs=np.full((2, 1, 4), 0.25, np.float32),
                     hidden=np.ones((2, 3), np.float32)).to_dict()
    del probe["mode"], probe["state"]
    diagnostics = {"type": "diagnostics", "seq": 5, "t": 1.0, "epoch": 1, "step": 20, "n": 2,
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
