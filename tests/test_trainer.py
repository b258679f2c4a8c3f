"""The search loop in-process on a tiny generated corpus."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from rich.console import Console

from enas_tui import checkpoints, config, supernet
from enas_tui import trainer as trainer_module
from enas_tui.controller import Controller, decisions_tensor
from enas_tui.diagnostics import CHEAP_MEASURES, collapse_index, max_action_probs
from enas_tui.search_space import Architecture
from enas_tui.data import Corpus, load_corpus
from enas_tui.headless import HeadlessView
from enas_tui.session_log import read_events
from enas_tui.sessions import create_session
from enas_tui.trainer import Position, TrainingFailed, new_run, resume_run

from helpers import TINY, comparable, count_reads, optimizer_steps


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    full = load_corpus(None)
    return Corpus(vocab=full.vocab, train=full.train[:6000], valid=full.valid[:2000],
                  test=full.test[:2000], source="generated corpus (test slice)")


def run(tmp_path, corpus, controller="supervised", epochs=3, extra=(), seed=0):
    settings = config.resolve(controller, "cpu", seed=seed, device="cpu", overrides=[*TINY, *extra], epochs=epochs)
    session = create_session(tmp_path, controller)
    trainer = new_run(settings, session, corpus, listeners=[])
    status = trainer.run()
    return trainer, session, status, read_events(session.log_path)


def by_type(events, kind):
    return [e for e in events if e.type == kind]


def test_supervised_run_records_every_phase(tmp_path, corpus):
    trainer, session, status, events = run(tmp_path, corpus)
    assert status == "finished"
    assert events[0].type == "session_start" and events[-1].type == "session_end"
    assert [e.seq for e in events] == list(range(len(events)))
    assert len(by_type(events, "shared_step")) == 3 * 4
    ctrl_steps = by_type(events, "controller_step")
    assert len(ctrl_steps) == 3 * 4
    # the supervised loss is off in epoch 1 and on from epoch 2 (buffer.supervised_start_epoch)
    assert all(e.supervised_loss is None for e in ctrl_steps if e.epoch == 1)
    assert all(e.supervised_loss is not None and math.isfinite(e.supervised_loss) for e in ctrl_steps if e.epoch >= 2)
    buffers = by_type(events, "buffer")
    assert [(b.size, b.added, b.replaced, b.phase) for b in buffers] == [
        (20, 20, 0, "filling"), (30, 10, 0, "full"), (30, 0, 5, "full")]
    probes = by_type(events, "probe")
    assert len(probes) == 6 and probes[0].probs.shape == (12, 23, 11) and probes[0].hidden.shape == (12, 16)
    assert all((p.mode, p.state) == ("derive", "emit_last") for p in probes)
    diags = by_type(events, "diagnostics")
    # TINY computes the performance column on every probe; the cpu preset leaves the GED searches out
    assert len(diags) == 6 and set(diags[0].spearman) == {*CHEAP_MEASURES, "abs_perf_diff"}
    assert all(d.collapse == "scale_free" for d in diags)
    assert diags[-1].collapse_index["hidden"] == collapse_index(probes[-1].hidden)
    assert diags[-1].collapse_index["max_prob"] == collapse_index(max_action_probs(probes[-1].probs, trainer.ctrl.sizes))
    assert len(by_type(events, "derived")) == 2  # epochs 2 and 3 (the last)
    assert len(by_type(events, "validation")) == 3
    assert session.status()["status"] == "finished"
    assert session.checkpoint_epochs() == [1, 2, 3]
    assert session.status()["best_ppl"] == pytest.approx(min(
        [e.ppl for e in by_type(events, "validation")] + [e.ppl for e in by_type(events, "derived")]))


def test_random_controller_is_never_updated(tmp_path, corpus):
    settings = config.resolve("random", "cpu", device="cpu", overrides=TINY, epochs=2)
    session = create_session(tmp_path, "random")
    trainer = new_run(settings, session, corpus, listeners=[])
    before = {k: v.clone() for k, v in trainer.ctrl.state_dict().items()}
    net_before = {k: v.clone() for k, v in trainer.net.state_dict().items()}
    assert trainer.run() == "finished"
    after = trainer.ctrl.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert any(not torch.equal(net_before[k], v) for k, v in trainer.net.state_dict().items())
    events = read_events(session.log_path)
    assert len(by_type(events, "controller_step")) == 8  # sampled and scored, never trained
    assert not by_type(events, "buffer") or all(b.size == 0 for b in by_type(events, "buffer"))


def test_unsupervised_controller_is_trained_without_supervised_loss(tmp_path, corpus):
    settings = config.resolve("unsupervised", "cpu", device="cpu", overrides=TINY, epochs=2)
    session = create_session(tmp_path, "unsupervised")
    trainer = new_run(settings, session, corpus, listeners=[])
    before = {k: v.clone() for k, v in trainer.ctrl.state_dict().items()}
    assert trainer.run() == "finished"
    assert any(not torch.equal(before[k], v) for k, v in trainer.ctrl.state_dict().items())
    events = read_events(session.log_path)
    assert all(e.supervised_loss is None for e in by_type(events, "controller_step"))
    assert not by_type(events, "buffer")


def test_same_seed_gives_the_same_record(tmp_path, corpus):
    _, _, _, first = run(tmp_path / "a", corpus, epochs=2)
    _, _, _, second = run(tmp_path / "b", corpus, epochs=2)
    assert [comparable(e) for e in first] == [comparable(e) for e in second]
    _, _, _, other = run(tmp_path / "c", corpus, epochs=2, seed=1)
    assert [comparable(e) for e in first] != [comparable(e) for e in other]


def test_resume_from_epoch_checkpoint_matches_uninterrupted_run(tmp_path, corpus):
    _, _, _, straight = run(tmp_path / "a", corpus, epochs=3)
    settings = config.resolve("supervised", "cpu", device="cpu", overrides=TINY, epochs=3)
    session = create_session(tmp_path / "b", "supervised")
    trainer = new_run(settings, session, corpus, listeners=[])
    trainer.s.train.epochs = 2  # stop after two epochs ...
    trainer.run()
    resumed = resume_run(session, lambda s: corpus, listeners=[], epochs=3)  # ... then continue to three
    assert resumed.pos.epoch == 3
    assert resumed.run() == "finished"
    events = read_events(session.log_path)
    steps = lambda evs, kind: [{**comparable(e), "seq": None} for e in evs if e.type == kind]  # noqa: E731
    for kind in ("shared_step", "controller_step", "probe", "validation", "buffer"):
        assert steps(events, kind) == steps(straight, kind), kind


@pytest.fixture(params=["host", "device"])
def step_path(request, monkeypatch) -> str:
    """Run the test with decisions read back on the host (the CPU's way) and taken on the device
    with masks (an accelerator's way)."""
    if request.param == "device":
        monkeypatch.setattr(supernet, "reads_on_host", lambda x: False)
    return request.param


def test_nonfinite_losses_stop_the_run_with_last_checkpoint_intact(tmp_path, corpus, step_path):
    settings = config.resolve("unsupervised", "cpu", device="cpu", overrides=TINY, epochs=3)
    session = create_session(tmp_path, "unsupervised")
    trainer = new_run(settings, session, corpus, listeners=[])
    trainer.s.train.epochs = 1
    assert trainer.run() == "finished"
    good = checkpoints.load(session.epoch_checkpoint(1))
    trainer = resume_run(session, lambda s: corpus, listeners=[], epochs=3)
    trainer.s.train.max_nonfinite = 3  # fewer than the 4 shared steps of an epoch: it fails mid-epoch
    for group in trainer.shared_opt.param_groups:
        group["lr"] = 1e30  # weights blow up: every later loss is inf/nan
    with pytest.raises(TrainingFailed, match="non-finite shared losses in a row"):
        trainer.run()
    events = read_events(session.log_path)
    warnings = [e for e in events if e.type == "warning" and e.kind == "nonfinite_loss"]
    assert len(warnings) == 3
    assert events[-1].type == "session_end" and events[-1].status == "failed"
    assert session.status()["status"] == "failed"
    assert session.latest_checkpoint() == session.epoch_checkpoint(1)
    again = checkpoints.load(session.epoch_checkpoint(1))
    assert all(torch.equal(good["supernet"][k], again["supernet"][k]) for k in good["supernet"])
    assert all(torch.isfinite(v).all() for v in again["supernet"].values())


def test_skipped_shared_steps_are_counted_and_left_out_of_the_train_ppl(tmp_path, corpus, monkeypatch, step_path):
    """Shared steps 2 and 3 get a real non-finite loss (an infinite decoder bias while they run);
    each skips its minibatch and leaves the weights as they were."""
    real_step, calls = trainer_module.train_step, []

    def poisoned(net, *args):
        calls.append(net)
        if len(calls) not in (2, 3):
            return real_step(net, *args)
        before = {k: v.clone() for k, v in net.state_dict().items()}
        with torch.no_grad():
            net.decoder_bias[3] = math.inf
        try:
            return real_step(net, *args)
        finally:
            with torch.no_grad():
                net.decoder_bias[3] = before["decoder_bias"][3]
            assert all(torch.equal(v, before[k]) for k, v in net.state_dict().items())

    monkeypatch.setattr(trainer_module, "train_step", poisoned)
    _, _, status, events = run(tmp_path, corpus, controller="random", epochs=2)
    assert status == "finished"
    ends = by_type(events, "epoch_end")
    assert [e.skipped_shared_steps for e in ends] == [2, 0]
    losses = [e.loss for e in by_type(events, "shared_step") if e.epoch == 1]
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    assert ends[0].train_ppl == pytest.approx(math.exp(np.mean(losses)))
    console = Console(file=io.StringIO(), width=200)
    with HeadlessView(console) as view:
        for event in events:
            view(event)
    lines = [line for line in console.file.getvalue().splitlines() if line.startswith("epoch ")]
    assert "| 2 skipped |" in lines[0] and "skipped" not in lines[1]


class Payload:
    """An object that runs code when unpickled: what a checkpoint must never bring back to life."""

    ran = False

    def __reduce__(self):
        return (_mark_ran, ())


def _mark_ran() -> str:
    Payload.ran = True
    return "ran"


def test_checkpoint_loader_refuses_a_pickled_object(tmp_path, corpus):
    _, session, _, _ = run(tmp_path, corpus, controller="random", epochs=1)
    state = checkpoints.load(session.epoch_checkpoint(1))
    assert state["position"] == {"epoch": 2, "shared_done": 0, "ctrl_done": 0, "begun": False}
    evil = tmp_path / "evil.pt"
    torch.save({**state, "extra": Payload()}, evil)  # a real checkpoint, plus one pickled object
    with pytest.raises(checkpoints.CheckpointError, match="unreadable"):
        checkpoints.load(evil)
    assert not Payload.ran
    torch.load(evil, weights_only=False)  # the file really carries code: a plain unpickler runs it
    assert Payload.ran
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(checkpoints.CheckpointError, match="unreadable"):
        checkpoints.load(bad)


def test_nan_rewards_count_as_zero(tmp_path, corpus, monkeypatch):
    settings = config.resolve("unsupervised", "cpu", device="cpu", overrides=TINY, epochs=1)
    session = create_session(tmp_path, "unsupervised")
    trainer = new_run(settings, session, corpus, listeners=[])
    calls = iter(range(10_000))
    # the first architecture of each batch of 2 overflows (nan ppl), the second scores ppl 100
    monkeypatch.setattr(trainer, "_reward_ppl", lambda arch: float("nan") if next(calls) % 2 == 0 else 100.0)
    assert trainer.run() == "finished"
    steps = by_type(read_events(session.log_path), "controller_step")
    assert len(steps) == 4 and all(e.reward == pytest.approx(0.4) for e in steps)  # mean(80/inf, 80/100)
    assert all(e.sample_ppl == float("inf") for e in steps)
    assert not [e for e in read_events(session.log_path) if e.type == "warning"]


def test_controller_nan_streak_is_counted_apart_from_shared_steps(tmp_path, corpus):
    """5 non-finite controller losses in a row fail the run even though finite shared steps come
    between them (4 controller steps per epoch: a streak shared with the shared steps never reaches 5)."""
    settings = config.resolve("unsupervised", "cpu", device="cpu", overrides=[*TINY, "train.max_nonfinite=5"],
                              epochs=3)
    session = create_session(tmp_path, "unsupervised")
    trainer = new_run(settings, session, corpus, listeners=[])
    trainer.s.ctrl.entropy_weight = float("nan")  # every controller loss is nan; shared losses are not
    with pytest.raises(TrainingFailed, match="5 non-finite controller losses in a row at epoch 2"):
        trainer.run()
    events = read_events(session.log_path)
    warnings = [e for e in events if e.type == "warning"]
    assert len(warnings) == 5 and all("non-finite controller loss" in w.message for w in warnings)
    assert [w.message.split("(")[-1] for w in warnings] == [f"{i} in a row); step skipped" for i in range(1, 6)]
    assert len(by_type(events, "shared_step")) == 8  # both epochs' shared steps ran and were finite
    assert events[-1].type == "session_end" and events[-1].status == "failed" and events[-1].epoch == 1
    assert session.status()["status"] == "failed" and session.status()["epoch"] == 1


def test_nan_in_diagnostics_is_recorded_not_fatal(tmp_path, corpus, monkeypatch):
    from enas_tui import diagnostics

    real = diagnostics.analyze_probe

    def with_nan(*args, **kwargs):
        out = real(*args, **kwargs)
        out.collapse_index["hidden"] = float("nan")
        out.spearman["ged"] = {"rho": float("nan"), "p": float("inf")}
        return out

    monkeypatch.setattr(diagnostics, "analyze_probe", with_nan)
    _, session, status, events = run(tmp_path, corpus, controller="random", epochs=1)
    assert status == "finished"
    diags = by_type(events, "diagnostics")
    assert diags and all(math.isnan(d.collapse_index["hidden"]) for d in diags)
    assert all(math.isnan(d.spearman["ged"]["rho"]) and d.spearman["ged"]["p"] == float("inf") for d in diags)


def test_resume_without_a_checkpoint_starts_again_from_the_start(tmp_path, corpus):
    _, _, _, straight = run(tmp_path / "a", corpus, epochs=2)
    settings = config.resolve("supervised", "cpu", device="cpu", overrides=TINY, epochs=2)
    session = create_session(tmp_path / "b", "supervised")
    first = new_run(settings, session, corpus, listeners=[])
    first._start()  # the session exists and its log has begun ...
    first.record.writer.close()  # ... when the trainer is killed, before its first checkpoint
    assert session.latest_checkpoint() is None
    trainer = resume_run(session, lambda s: corpus, listeners=[])
    assert trainer.resumed_from == "start" and trainer.pos == Position()
    assert trainer.run() == "finished"
    events = read_events(session.log_path)
    starts = by_type(events, "session_start")
    assert [s.resumed_from for s in starts] == [None, "start"] and starts[1].settings == starts[0].settings
    restart = events.index(starts[1])
    assert events[restart + 1].type == "warning" and events[restart + 1].kind == "restarted"
    assert [e.seq for e in events] == list(range(len(events)))  # appended to the same log
    again = events[restart:]
    for kind in ("shared_step", "controller_step", "probe", "validation", "buffer", "diagnostics"):
        assert [comparable(e) | {"seq": 0} for e in again if e.type == kind] == \
               [comparable(e) | {"seq": 0} for e in straight if e.type == kind], kind


def test_short_run_on_real_ptb_text(tmp_path, real_ptb_dir):
    corpus = load_corpus(str(real_ptb_dir))
    assert corpus.vocab_size > 5000  # the real PTB vocabulary, as far as valid+test reach
    small = Corpus(vocab=corpus.vocab, train=corpus.train[:8000], valid=corpus.valid[:3000],
                   test=corpus.test[:3000], source=corpus.source)
    _, session, status, events = run(tmp_path, small, epochs=2)
    assert status == "finished"
    ppls = [e.ppl for e in by_type(events, "shared_step")]
    assert all(np.isfinite(ppls)) and ppls[-1] < ppls[0]


def test_live_table1_runs_cheap_measures_every_probe_and_costly_geds_with_the_perf_column(tmp_path, corpus):
    _, _, _, events = run(tmp_path / "a", corpus, controller="random", epochs=1,
                          extra=["train.perf_every=2", "train.live_ged=paper,exact"])
    diags = by_type(events, "diagnostics")
    assert len(diags) == 2
    assert set(diags[0].spearman) == set(CHEAP_MEASURES)  # probe 1: cheap ones only
    assert set(diags[1].spearman) == {*CHEAP_MEASURES, "ged_paper", "ged_exact", "abs_perf_diff"}
    _, _, _, events = run(tmp_path / "b", corpus, controller="random", epochs=1, extra=["train.live_ged=paper"])
    assert all(set(d.spearman) == {*CHEAP_MEASURES, "ged_paper", "abs_perf_diff"} for d in by_type(events, "diagnostics"))
    assert config.Settings().train.live_ged == "paper"  # the paper preset; the cpu preset: none
    assert config.resolve("random", "cpu").train.live_ged == "none"


@pytest.mark.parametrize("mode, state", [("derive", "emit_last"), ("train", "after_last")])
def test_probes_read_the_controller_as_the_settings_say(tmp_path, corpus, mode, state):
    _, session, _, events = run(tmp_path, corpus, controller="unsupervised", epochs=1,
                                extra=[f"train.probe_mode={mode}", f"train.probe_state={state}"])
    probe = by_type(events, "probe")[-1]  # taken after the epoch's last controller update
    assert (probe.mode, probe.state) == (mode, state)
    state_dict = checkpoints.load(session.epoch_checkpoint(1))
    settings = config.Settings.from_dict(state_dict["settings"])
    ctrl = Controller(settings.model.num_nodes, settings.ctrl)
    ctrl.load_state_dict(state_dict["controller"])
    with torch.no_grad():
        again = ctrl.score(decisions_tensor([Architecture.parse(a) for a in probe.archs]), mode=mode, state=state)
    np.testing.assert_array_equal(probe.probs, again.probs().numpy().astype(np.float32))
    np.testing.assert_array_equal(probe.hidden, again.hidden.numpy().astype(np.float32))


def test_untrained_probe_is_the_controller_before_its_first_update_read_as_the_probes(tmp_path, corpus):
    from enas_tui.analysis import build_models

    extra = ["train.probe_mode=train", "train.probe_state=after_last"]
    trainer, session, _, events = run(tmp_path, corpus, controller="unsupervised", epochs=2, extra=extra)
    refs = by_type(events, "untrained_probe")
    assert len(refs) == 1 and events.index(refs[0]) < events.index(by_type(events, "controller_step")[0])
    ref = refs[0]
    assert (ref.mode, ref.state, ref.seed) == ("train", "after_last", 4) and ref.probs.shape == (12, 23, 11)
    # the random setting's controller (rebuilt from the seed as analyze does), read as recorded
    _, _, untrained = build_models(trainer.s, corpus.vocab_size)
    with torch.no_grad():
        again = untrained.sample(12, generator=torch.Generator().manual_seed(4), mode="train", state="after_last")
        later = trainer.ctrl.sample(12, generator=torch.Generator().manual_seed(4), mode="train", state="after_last")
    np.testing.assert_array_equal(ref.probs, again.probs().numpy().astype(np.float32))
    assert not np.allclose(ref.probs, later.probs().numpy(), atol=1e-4)  # the trained one has moved
    # a resume after updates has no untrained controller to read: still one reference
    assert resume_run(session, lambda s: corpus, listeners=[], epochs=3).run() == "finished"
    assert len(by_type(read_events(session.log_path), "untrained_probe")) == 1


def test_supervised_loss_reduction_is_recorded_and_scales_the_loss(tmp_path, corpus):
    _, mean_session, _, mean_events = run(tmp_path / "mean", corpus, epochs=2)
    _, _, _, sum_events = run(tmp_path / "sum", corpus, epochs=2, extra=["buffer.supervised_reduction=sum"])
    assert mean_session.meta()["settings"]["buffer"]["supervised_reduction"] == "mean"
    assert by_type(mean_events, "session_start")[0].settings["buffer"]["supervised_weight"] == 1.0
    # identical runs until the first supervised step: same buffer sample, same controller
    first = [next(e.supervised_loss for e in by_type(evs, "controller_step") if e.supervised_loss is not None)
             for evs in (mean_events, sum_events)]
    assert first[1] == pytest.approx(23 * first[0], rel=1e-5)  # sum over 23 decisions vs their mean
    assert first[0] == pytest.approx(1.5, abs=0.3)  # ~ the mean log of the option counts at the start


def test_bad_probe_and_loss_settings_are_one_line_errors():
    for item, fragment in [("train.probe_mode=greedy", "train.probe_mode must be one of derive, train"),
                           ("train.probe_state=last", "train.probe_state must be one of emit_last, after_last"),
                           ("buffer.supervised_reduction=max", "buffer.supervised_reduction must be one of mean, sum"),
                           ("train.live_ged=fast", "train.live_ged must be 'none' or"),
                           ("train.live_ged=", "train.live_ged must be 'none' or")]:
        with pytest.raises(config.SettingsError, match=fragment):
            config.resolve("supervised", "cpu", overrides=[item])
    assert config.live_ged_readings("exact, paper") == ("exact", "paper")
    assert config.live_ged_readings("none") == ()


def test_the_carried_state_is_saved_alone(tmp_path, corpus):
    """The state carried between minibatches has its own storage: a checkpoint of it holds one
    (batch, hidden) row block, not every step's states."""
    trainer, session, _, _ = run(tmp_path, corpus, controller="random", epochs=1)
    saved = torch.load(session.epoch_checkpoint(1), weights_only=True)["hidden"]
    assert saved.shape == (8, 16) and saved.untyped_storage().nbytes() == 8 * 16 * 4


# -- reading values back from the device ------------------------------------------------------------

def test_shared_steps_wait_for_the_device_once_per_batch_besides_the_architecture(tmp_path, corpus, monkeypatch):
    """As on a GPU (decisions on the device), a shared step reads nothing back but the sampled
    architecture (the host lays out its cell); the losses of SYNC_STEPS steps come back in one read."""
    monkeypatch.setattr(supernet, "reads_on_host", lambda x: False)
    monkeypatch.setattr(trainer_module, "SYNC_STEPS", 4)
    monkeypatch.setattr(trainer_module, "SYNC_SECONDS", 1e9)
    settings = config.resolve("supervised", "cpu", device="cpu", epochs=1,
                              overrides=[*TINY, "train.shared_steps_per_epoch=10"])
    trainer = new_run(settings, create_session(tmp_path, "supervised"), corpus, listeners=[])
    reads = count_reads(monkeypatch, phase=lambda: trainer.phase)
    assert trainer.run() == "finished"
    shared = [name for phase, name in reads if phase == "shared"]
    assert sorted(shared) == ["tolist"] * (10 + 3)  # 10 architectures; steps 1-4, 5-8, 9-10
    events = read_events(trainer.session.log_path)
    steps = by_type(events, "shared_step")
    assert [e.step for e in steps] == list(range(1, 11))
    # tokens/s is measured between two reads: one figure per batch of steps
    rates = [e.tokens_per_s for e in steps]
    assert len(set(rates[:4])) == len(set(rates[4:8])) == len(set(rates[8:])) == 1
    assert all(r > 0 for r in rates)


def test_a_controller_step_reads_its_logged_values_in_one_transfer(tmp_path, corpus, monkeypatch):
    """The architectures and their rewards must come back (the host scores them); the loss's finite
    check and every logged value then come back together, one read per step."""
    monkeypatch.setattr(supernet, "reads_on_host", lambda x: False)
    settings = config.resolve("supervised", "cpu", device="cpu", epochs=2,
                              overrides=[*TINY, "train.probe_every=100"])
    trainer = new_run(settings, create_session(tmp_path, "supervised"), corpus, listeners=[])
    reads = count_reads(monkeypatch, phase=lambda: trainer.phase, ignore=optimizer_steps(trainer.ctrl_opt))
    assert trainer.run() == "finished"
    steps, archs = 2 * 4, 2  # TINY: 4 controller steps an epoch, 2 architectures each
    assert sorted(name for phase, name in reads if phase == "controller") == ["tolist"] * (2 * steps)
    assert sorted(name for phase, name in reads if phase == "reward") == ["item"] * (archs * steps)
    assert [name for phase, name in reads if phase == "supervised"] == []
    ctrl = by_type(read_events(trainer.session.log_path), "controller_step")
    assert len(ctrl) == steps and all(e.supervised_loss is not None for e in ctrl if e.epoch == 2)


def test_losses_read_in_batches_are_recorded_as_step_by_step(tmp_path, corpus, monkeypatch):
    """The batched reads change when steps are recorded, never what: the same events, same values,
    same order as reading after every step."""
    monkeypatch.setattr(trainer_module, "SYNC_STEPS", 1)
    _, _, _, one_by_one = run(tmp_path / "a", corpus, epochs=2, extra=["train.shared_steps_per_epoch=7"])
    monkeypatch.setattr(trainer_module, "SYNC_STEPS", 3)
    monkeypatch.setattr(trainer_module, "SYNC_SECONDS", 1e9)
    _, _, _, batched = run(tmp_path / "b", corpus, epochs=2, extra=["train.shared_steps_per_epoch=7"])
    assert len(by_type(batched, "shared_step")) == 14
    assert [comparable(e) for e in batched] == [comparable(e) for e in one_by_one]


def test_the_run_taken_as_on_a_gpu_matches_the_cpu_run(tmp_path, corpus, monkeypatch):
    """Decisions on the device (masks, no reads) give the run the host-checked steps give, up to
    rounding (the clip's backward takes its general form at every step)."""
    _, _, _, host = run(tmp_path / "a", corpus, epochs=2)
    monkeypatch.setattr(supernet, "reads_on_host", lambda x: False)
    _, _, _, device = run(tmp_path / "b", corpus, epochs=2)
    assert [e.type for e in device] == [e.type for e in host]
    for kind, field in (("shared_step", "loss"), ("controller_step", "reward"), ("validation", "ppl")):
        np.testing.assert_allclose([getattr(e, field) for e in by_type(device, kind)],
                                   [getattr(e, field) for e in by_type(host, kind)], rtol=1e-5, err_msg=kind)
    assert [e.archs for e in by_type(device, "probe")] == [e.archs for e in by_type(host, "probe")]


def test_every_step_a_checkpoint_holds_is_recorded_before_it(tmp_path, corpus, monkeypatch):
    """A timed checkpoint after every step: the steps still waiting to be read back are recorded
    first, so the log never lags behind a checkpoint that a resume would continue from."""
    monkeypatch.setattr(trainer_module, "SYNC_SECONDS", 1e9)
    _, _, _, events = run(tmp_path, corpus, controller="random", epochs=1, extra=["train.checkpoint_every_s=1e-9"])
    kinds = [e.type for e in events if e.type in ("shared_step", "checkpoint")]
    assert kinds[:8] == ["shared_step", "checkpoint"] * 4
