"""DashboardState: folding events into what the panels show (no Textual involved)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from enas_tui.diagnostics import PAPER_TABLE1
from enas_tui.diagnostics import max_action_probs
from enas_tui.events import (
    ControllerStep, Diagnostics, EpochEnd, EpochStart, Probe, SessionEnd, SessionStart, SharedStep, UntrainedProbe,
    Validation,
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
    rhos = [d.spearman["ged_paper"]["rho"] for d in diags]
    assert state.spearman_history["ged_paper"].values() == rhos
    assert state.spearman == diags[-1].spearman  # schema 2: keyed by measure name already
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


def probe_and_diagnostics(step: int, spread: float, schema_index: bool = False) -> list:
    """A probe whose rows differ by ``spread`` around a shared vector, and its diagnostics (with the
    absolute index schema-1 logs recorded, or the scale-free one when ``schema_index``)."""
    rng = np.random.default_rng(step)
    hidden = (0.5 * np.sign(rng.normal(size=(1, 16))) + spread * rng.normal(size=(10, 16))).astype(np.float32)
    probs = np.full((10, 1, 1), 1.0, dtype=np.float32)
    probe = Probe(epoch=1, step=step, archs=["tanh"] * 10, probs=probs, hidden=hidden, seq=2 * step)
    absolute = float((hidden - hidden[0]).std(axis=0).mean())
    index = scale_free(hidden) if schema_index else absolute
    return [probe, Diagnostics(epoch=1, step=step, n=10, spearman={}, seq=2 * step + 1,
                               collapse_index={"hidden": index, "max_prob": 0.0},
                               collapse="scale_free" if schema_index else "absolute")]


def scale_free(hidden) -> float:
    """BRIEF decision 3, written out: RMS distance of the rows to their mean over the RMS row norm."""
    h = np.asarray(hidden, dtype=np.float64)
    return float(np.sqrt(((h - h.mean(axis=0)) ** 2).sum(axis=1).mean() / (h ** 2).sum(axis=1).mean()))


def test_collapse_alarm_uses_the_scale_free_index():
    state = DashboardState()
    state.apply_all(probe_and_diagnostics(1, 0.2))
    assert not state.collapsed and state.collapse["hidden"] > COLLAPSE_ALARM
    state.apply_all(probe_and_diagnostics(2, 0.001))
    assert state.collapsed and state.collapse["hidden"] < COLLAPSE_ALARM
    assert state.log[-1].level == "warn" and "collapsed" in state.log[-1].text
    state.apply_all(probe_and_diagnostics(3, 0.2))
    assert not state.collapsed and "apart again" in state.log[-1].text
    # Small activations with rows as different as above are not a collapse (an untrained controller):
    # the schema-1 log's absolute index is tiny, the recomputed one is not.
    small = probe_and_diagnostics(4, 0.2)
    small[0].hidden *= 0.01
    small[1].collapse_index["hidden"] *= 0.01
    state.apply_all(small)
    assert not state.collapsed and small[1].collapse_index["hidden"] < 0.01
    assert state.collapse["hidden"] == pytest.approx(scale_free(small[0].hidden))


def test_schema_2_collapse_index_is_taken_as_recorded():
    state = DashboardState()
    state.apply(SessionStart(session_id="s", controller="supervised", seed=0, settings={}, num_nodes=1,
                             decision_sizes=[1], device="cpu", pid=1, host="h", schema=2))
    events = probe_and_diagnostics(1, 0.2, schema_index=True)
    events[1].collapse_index["hidden"] = 0.01234  # what the trainer recorded is what is shown
    state.apply_all(events)
    assert state.collapse["hidden"] == 0.01234 and state.collapsed


def test_collapse_alarm_skips_diagnostics_whose_probe_was_not_decoded():
    state = DashboardState()
    state.apply_all(probe_and_diagnostics(1, 0.001))
    assert state.collapsed
    state.apply(probe_and_diagnostics(2, 0.2)[1])  # its probe was superseded and never decoded
    assert state.collapsed and state.collapse_history.last_x == 1


def test_schema_1_logs_show_their_keys_as_the_aligned_readings(tmp_path):
    from enas_tui.session_log import LogReader
    from enas_tui.tui.replay_index import ReplayIndex
    from enas_tui.tui.synthetic import write_synthetic_session

    session = write_synthetic_session(tmp_path, SyntheticRun(controller="supervised", epochs=2, schema=1))
    with LogReader(session.log_path) as reader:
        raw = [r.payload for r in reader.read_records()]
    assert any(b'"ged":{' in p for p in raw) and not any(b'"ged_aligned"' in p for p in raw)  # as old logs are
    index = ReplayIndex(session.log_path)
    index.build()
    state = index.end_state()
    assert state.schema == 1 and "ged_aligned" in state.spearman and "common_activations_aligned" in state.spearman
    assert "ged_paper" not in state.spearman and "ged" not in state.spearman
    assert state.probe_mode == "train"  # old probes were taken with the tanh constant


def test_cell_shape_follows_every_probe_set_even_undecoded_ones():
    from enas_tui.sources import ProbeArchs

    from enas_tui import cell_shape

    events = list(synthetic_events(SyntheticRun(epochs=2)))
    probes = [e for e in events if isinstance(e, Probe)]
    light = [ProbeArchs(epoch=e.epoch, step=e.step, archs=e.archs, seq=e.seq, t=e.t) if isinstance(e, Probe)
             and e is not probes[-1] else e for e in events]
    full, partial = folded(events), folded(light)
    assert full.shape.points == partial.shape.points
    assert len(full.shape) == len(probes)
    first = cell_shape.summarize(probes[0].archs)
    assert full.shape.xs()[0] == probes[0].step and full.shape_series("depth_median")[0] == first.depth.median
    assert full.shape_series("width_q75")[0] == first.width.q75
    assert full.shape_epoch["width"].xs() == [1, 2]
    assert partial.probe is probes[-1]  # the arrays come from the last full probe only


def test_optional_fields_of_newer_logs_are_shown_and_their_absence_tolerated():
    events = list(synthetic_events(SyntheticRun(epochs=1)))
    assert folded(events).skipped == 0  # logs that predate the count decode it as 0
    end = next(e for e in events if isinstance(e, EpochEnd))
    end.skipped_shared_steps = 3
    probe = [e for e in events if isinstance(e, Probe)][-1]
    probe.mode, probe.state = "derive", "emit_last"
    state = folded(events)
    assert state.skipped == 3 and state.skipped_total == 3
    assert state.probe_mode == "derive" and state.probe_state == "emit_last"
    assert "3 non-finite shared steps skipped" in " ".join(line.text for line in state.log)


def test_per_architecture_ppl_follows_its_probe():
    events = list(synthetic_events(SyntheticRun(epochs=1, perf_every=1)))
    diag = [e for e in events if isinstance(e, Diagnostics)][-1]
    state = folded(events)
    assert np.array_equal(state.probe_ppl, diag.ppl)
    state.apply(replace([e for e in events if isinstance(e, Probe)][-1], step=999))
    assert state.probe_ppl is None  # a newer probe set: its perplexities are not known yet


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


def test_fig1_gap_is_the_latest_probe_against_the_untrained_controller():
    events = list(synthetic_events(SyntheticRun(controller="unsupervised", epochs=2)))
    state = folded(events)
    sizes = events[0].decision_sizes
    ref = next(e for e in events if isinstance(e, UntrainedProbe))
    probe = [e for e in events if isinstance(e, Probe)][-1]
    trained, untrained = (max_action_probs(e.probs, sizes).mean(axis=0) for e in (probe, ref))
    gap = state.fig1_gap()
    np.testing.assert_allclose(gap.trained, trained)
    np.testing.assert_allclose(gap.untrained, untrained)
    np.testing.assert_allclose(gap.untrained_median, np.median(max_action_probs(ref.probs, sizes), axis=0))
    assert gap.gap == pytest.approx(float(np.mean(trained - untrained)))
    assert gap.above == int(np.sum(trained > untrained)) and gap.above >= 20 and gap.gap > 0.2
    assert any(line.text.startswith("untrained controller: top-action p") for line in state.log)
    # a reference read another way than the probes (derive vs train) is not compared with them
    state.apply(replace(ref, mode="train", seq=ref.seq))
    assert state.untrained.mode == "train" and state.fig1_gap() is None
    # logs without a reference (older sessions, schema 1): no gap, nothing to fail on
    for run in (SyntheticRun(controller="unsupervised", epochs=2, untrained_probe=False),
                SyntheticRun(controller="unsupervised", epochs=2, schema=1)):
        old = folded(synthetic_events(run))
        assert old.untrained is None and old.fig1_gap() is None and old.probe_summary() is not None


def test_untrained_probe_that_fits_no_search_space_is_ignored():
    events = list(synthetic_events(SyntheticRun(controller="unsupervised", epochs=1)))
    state = folded(events)
    state.apply(UntrainedProbe(probs=np.full((3, 5, 4), 0.25, dtype=np.float32)))  # 5 steps, not 23
    assert state.fig1_gap() is None and state.probe_summary() is not None
