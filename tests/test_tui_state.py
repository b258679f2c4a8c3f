"""DashboardState: folding events into what the panels show (no Textual involved)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from enas_tui.diagnostics import PAPER_TABLE1
from enas_tui.events import (
    ControllerStep, Diagnostics, EpochStart, Probe, SessionEnd, SessionStart, SharedStep, Validation,
)
from enas_tui.tui.state import COLLAPSE_ALARM, DashboardState, Series, fmt, summarize_probe
from enas_tui.tui.synthetic import SyntheticRun, synthetic_events


def folded(events) -> DashboardState:
    state = DashboardState()
    state.apply_all(events)
    return state


def test_series_drops_points_a_resume_repeats():
    s = Series(maxlen=10)
    for x in range(1, 6):
        s.add(x, x * 10.0)
    s.add(3, -1.0)  # a resumed run repeats step 3
    assert s.xs() == [1, 2, 3] and s.values() == [10.0, 20.0, -1.0]
    for x in range(4, 20):
        s.add(x, 0.0)
    assert len(s) == 10 and s.last_x == 19


def test_full_session_fold():
    run = SyntheticRun(controller="supervised", epochs=3)
    events = list(synthetic_events(run))
    state = folded(events)
    assert state.session_id == "synthetic-supervised" and state.controller == "supervised"
    assert state.status == "finished" and state.run_status == "finished"
    assert (state.epoch, state.epochs) == (3, 3)
    assert (state.shared_done, state.ctrl_done) == (run.shared_steps, run.controller_steps)
    assert state.epoch_fraction == 1.0
    shared = [e for e in events if isinstance(e, SharedStep)]
    assert state.shared_ppl.values() == [e.ppl for e in shared]
    ctrl = [e for e in events if isinstance(e, ControllerStep)]
    assert state.reward.values() == [e.reward for e in ctrl]
    assert state.supervised_loss.values() == [e.supervised_loss for e in ctrl if e.supervised_loss is not None]
    probes = [e for e in events if isinstance(e, Probe)]
    assert state.probe is probes[-1]
    diags = [e for e in events if isinstance(e, Diagnostics)]
    assert state.diagnostics is diags[-1]
    rhos = [d.spearman["ged"]["rho"] for d in diags]
    assert state.spearman_history["ged"].values() == rhos
    valids = [e for e in events if isinstance(e, Validation)]
    assert state.valid_ppl.values() == [e.ppl for e in valids]
    end = events[-1]
    assert isinstance(end, SessionEnd)
    assert state.best_arch == end.best_arch and state.best_ppl == end.best_ppl
    assert state.paper_row == PAPER_TABLE1["supervised"]
    assert state.buffer is not None and state.buffer.supervised


def test_event_log_lines():
    state = folded(synthetic_events(SyntheticRun(epochs=3, warn_epoch=2)))
    texts = [(line.level, line.text) for line in state.log]
    assert texts[0][0] == "phase" and texts[0][1].startswith("session started")
    assert any(level == "warn" and "non-finite" in text for level, text in texts)
    assert any("checkpoint" in text and "epoch-0002" in text for _, text in texts)
    assert any("supervised buffer loss on" in text for _, text in texts)
    assert texts[-1] == ("phase", "session finished: search finished")
    assert state.warnings == 1


def test_resume_shows_the_latest_run_of_repeated_steps():
    run = SyntheticRun(controller="unsupervised", epochs=3, warn_epoch=0)
    events = list(synthetic_events(run))
    start = next(e for e in events if isinstance(e, EpochStart) and e.epoch == 2)
    cut = events.index(start) + 30  # the first trainer dies 30 events into epoch 2
    second = events[events.index(start):]
    resumed = SessionStart(**{**vars(events[0]), "resumed_from": "epoch-0001.pt"})
    # The resumed run re-does epoch 2 with different numbers.
    redo = [replace(e, ppl=e.ppl + 1000.0) if isinstance(e, SharedStep) else e for e in second]
    state = folded(events[:cut] + [resumed] + redo)
    reference = folded(events[: events.index(start)] + redo)
    assert state.shared_ppl.points == reference.shared_ppl.points
    assert state.reward.points == reference.reward.points
    steps = state.shared_ppl.xs()
    assert steps == sorted(set(steps))
    assert state.resumes == 1 and state.status == "finished"
    assert any("resumed from epoch-0001.pt" in line.text for line in state.log)


def test_probe_summary_matches_direct_computation():
    rng = np.random.default_rng(1)
    sizes = [4, 1, 4, 2, 4]
    probs = np.zeros((6, 5, 4), dtype=np.float32)
    for d, k in enumerate(sizes):
        p = rng.random((6, k))
        probs[:, d, :k] = p / p.sum(axis=1, keepdims=True)
    probe = Probe(epoch=1, step=1, archs=["tanh"] * 6, probs=probs, hidden=np.zeros((6, 3), np.float32))
    summary = summarize_probe(probe, sizes)
    assert np.allclose(summary.mean, probs.mean(axis=0))
    top = np.array([[probs[i, d, :k].max() for d, k in enumerate(sizes)] for i in range(6)])
    assert np.allclose(summary.max_min, top.min(axis=0))
    assert np.allclose(summary.max_max, top.max(axis=0))
    assert np.allclose(summary.max_median, np.median(top, axis=0))
    assert summary.max_min[1] == pytest.approx(1.0)  # a single-option step is certain


def probe_and_diagnostics(step: int, spread: float) -> list:
    """A probe whose rows differ by ``spread`` around a shared vector, and its diagnostics."""
    rng = np.random.default_rng(step)
    hidden = (0.5 * np.sign(rng.normal(size=(1, 16))) + spread * rng.normal(size=(10, 16))).astype(np.float32)
    probs = np.full((10, 1, 1), 1.0, dtype=np.float32)
    probe = Probe(epoch=1, step=step, archs=["tanh"] * 10, probs=probs, hidden=hidden, seq=2 * step)
    index = float((hidden - hidden[0]).std(axis=0).mean())
    return [probe, Diagnostics(epoch=1, step=step, n=10, spearman={},
                               collapse_index={"hidden": index, "max_prob": 0.0}, seq=2 * step + 1)]


def test_collapse_alarm_is_relative_to_the_activations():
    state = DashboardState()
    state.apply_all(probe_and_diagnostics(1, 0.2))
    assert not state.collapsed and state.collapse_relative > COLLAPSE_ALARM
    state.apply_all(probe_and_diagnostics(2, 0.001))
    assert state.collapsed and state.collapse_relative < COLLAPSE_ALARM
    assert state.log[-1].level == "warn" and "collapsed" in state.log[-1].text
    state.apply_all(probe_and_diagnostics(3, 0.2))
    assert not state.collapsed and "apart again" in state.log[-1].text
    # Small activations with rows as different as above are not a collapse (an untrained controller).
    small = probe_and_diagnostics(4, 0.2)
    small[0].hidden *= 0.01
    small[1].collapse_index["hidden"] *= 0.01
    state.apply_all(small)
    assert not state.collapsed and small[1].collapse_index["hidden"] < 0.01


def test_collapse_alarm_skips_diagnostics_whose_probe_was_not_decoded():
    state = DashboardState()
    state.apply_all(probe_and_diagnostics(1, 0.001))
    assert state.collapsed
    state.apply(probe_and_diagnostics(2, 0.2)[1])  # its probe was superseded and never decoded
    assert state.collapsed and state.collapse_history.last_x == 2


def test_copy_is_independent():
    events = list(synthetic_events(SyntheticRun(epochs=2)))
    state = folded(events[:100])
    copy = state.copy()
    copy.apply_all(events[100:])
    assert len(state.reward) < len(copy.reward)
    assert len(state.log) < len(copy.log)
    assert state.status == "running" and copy.status == "finished"
    assert folded(events[:100]).reward.points == state.reward.points


def test_trainer_status_overrides_a_running_log_until_a_resume():
    events = list(synthetic_events(SyntheticRun(epochs=1, end=None)))
    state = folded(events)
    assert state.run_status == "running"
    state.set_trainer("crashed", "CUDA out of memory")
    assert state.run_status == "crashed" and state.run_message == "CUDA out of memory"
    assert state.log[-1].level == "error" and "CUDA out of memory" in state.log[-1].text
    state.apply(replace(events[0], resumed_from="epoch-0001.pt", seq=len(events)))
    assert state.run_status == "running"


def test_eta_from_event_times():
    run = SyntheticRun(epochs=4, shared_steps=20, controller_steps=40)
    events = list(synthetic_events(run))
    second = next(i for i, e in enumerate(events) if isinstance(e, EpochStart) and e.epoch == 2)
    state = folded(events[: second + 12])  # epoch start, buffer update, 10 shared steps
    done = state.epoch_fraction
    assert done == pytest.approx(10 / 60)
    epoch_rest, total_rest = state.eta_seconds()
    elapsed = state.last_t - state.epoch_t0
    assert epoch_rest == pytest.approx(elapsed * (1 - done) / done)
    per_epoch = state.epoch_seconds.values()[-1]
    assert total_rest == pytest.approx(epoch_rest + 2 * per_epoch)
    assert folded(events).eta_seconds() == (None, None)  # finished: nothing left


def test_fmt_never_fails():
    assert fmt(None) == "-" and fmt(float("nan")) == "nan" and fmt(float("inf")) == "inf"
    assert fmt(3.14159, 2) == "3.14" and fmt(2.5e7) == "2.5e+07"
    assert not math.isnan(float(fmt(1.0)))
