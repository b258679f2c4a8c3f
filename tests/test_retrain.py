"""The retrain step in-process: the standalone model against the supernet, NT-ASGD, the loop."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest
import torch

from enas_tui import checkpoints, supernet
from enas_tui.config import ModelConfig
from enas_tui.data import Corpus, batchify, load_corpus
from enas_tui.retrain import settings as retrain_settings
from enas_tui.retrain import trainer as retrain_module
from enas_tui.retrain.averaging import NTASGD
from enas_tui.retrain.model import StandaloneModel, parameter_count
from enas_tui.retrain.source import Source
from enas_tui.retrain.trainer import BEST, new_retrain, resume_retrain
from enas_tui.search_space import Architecture, random_architecture
from enas_tui.session_log import read_events
from enas_tui.sessions import create_session
from enas_tui.supernet import CellLanguageModel, SuperNet, edge_index, num_edges

from helpers import count_reads

NO_DROPOUT = dict(dropout_emb=0.0, dropout_in=0.0, dropout_out=0.0, dropconnect=0.0)
# a retrain small enough for tests: hidden 16, 6 steps of 8 x 10 tokens per epoch
TINY = ["model.hidden=16", "model.batch_size=8", "model.bptt=10", "model.eval_batch_size=4",
        "train.steps_per_epoch=6", "train.test_batch_size=2", "train.threads=1"]


def supernet_and_copy(arch: Architecture, hidden: int = 6, vocab: int = 20, **cfg):
    """A float64 supernet with large random weights, and a standalone model holding its cell's."""
    cfg = ModelConfig(num_nodes=arch.num_nodes, hidden=hidden, **cfg)
    torch.manual_seed(0)
    net = SuperNet(vocab, cfg).double()
    with torch.no_grad():
        for p in net.parameters():
            p.uniform_(-0.6, 0.6)  # every activation is exercised beyond its linear range
    model = StandaloneModel(arch, vocab, cfg).double()
    model.copy_from_supernet(net)
    return net, model


def batch(vocab: int = 20, steps: int = 5, size: int = 3, hidden: int = 6):
    g = torch.Generator().manual_seed(1)
    tokens, targets = torch.randint(vocab, (steps, size), generator=g), torch.randint(vocab, (steps, size), generator=g)
    return tokens, targets, torch.randn(size, hidden, dtype=torch.float64, generator=g)


# -- one definition of the cell ---------------------------------------------------------------

def test_the_cell_has_one_definition():
    """The standalone model inherits the supernet's forward; only the choice of edge rows differs."""
    for name in ("features", "forward", "loss", "perplexity", "init_hidden"):
        assert getattr(StandaloneModel, name) is getattr(CellLanguageModel, name)
        assert getattr(SuperNet, name) is getattr(CellLanguageModel, name)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("max_norm", [0.0, 0.05])
def test_forward_equals_the_supernets_with_the_same_weights(seed, max_norm):
    arch = random_architecture(8, random.Random(seed))
    net, model = supernet_and_copy(arch, max_hidden_norm=max_norm)  # default dropouts: eval mode switches them off
    net.eval(), model.eval()
    tokens, _, h0 = batch()
    logits, hidden = model(tokens, h0, arch)
    expected_logits, expected_hidden = net(tokens, h0, arch)
    torch.testing.assert_close(logits, expected_logits, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(hidden, expected_hidden, rtol=1e-12, atol=1e-12)
    assert not torch.allclose(logits, net(tokens, h0, random_architecture(8, random.Random(99)))[0])
    if max_norm:  # the per-step clip of the shared cell is on in both: every state row within the bound
        assert hidden.norm(dim=1).max() <= max_norm * (1 + 1e-12)
        unclipped = StandaloneModel(arch, 20, ModelConfig(num_nodes=8, hidden=6, max_hidden_norm=0.0)).double()
        unclipped.load_state_dict(model.state_dict())
        unclipped.eval()
        assert not torch.allclose(unclipped(tokens, h0, arch)[0], logits)  # the bound was reached


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("max_norm", [0.0, 0.05])
def test_gradients_equal_the_supernets_on_the_used_edges(seed, max_norm):
    arch = random_architecture(8, random.Random(seed))
    net, model = supernet_and_copy(arch, max_hidden_norm=max_norm, **NO_DROPOUT)
    tokens, targets, h0 = batch()
    readout = torch.randn(3, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    for m in (net, model):
        loss, hidden = m.loss(tokens, targets, h0, arch)
        (loss + (hidden * readout).sum()).backward()  # the new state's gradient path too
    torch.testing.assert_close(model.loss(tokens, targets, h0, arch)[0], net.loss(tokens, targets, h0, arch)[0])
    for name in ("encoder.weight", "decoder_bias", "w_x", "w_h"):
        torch.testing.assert_close(model.get_parameter(name).grad, net.get_parameter(name).grad,
                                   rtol=1e-10, atol=1e-12)
    used = set()
    for node in range(1, arch.num_nodes):
        row = edge_index(arch.parents[node - 1], node)
        used.add(row)
        torch.testing.assert_close(model.edges.grad[model.edge_nodes.tolist().index(node)], net.edges.grad[row],
                                   rtol=1e-10, atol=1e-12)
        assert model.edges.grad[model.edge_nodes.tolist().index(node)].abs().sum() > 0
    unused = [r for r in range(num_edges(arch.num_nodes)) if r not in used]
    assert net.edges.grad[unused].abs().sum() == 0


@pytest.mark.parametrize("num_nodes, hidden, vocab", [(4, 8, 30), (12, 16, 100), (12, 64, 10000)])
def test_the_standalone_model_has_exactly_the_cells_edges(num_nodes, hidden, vocab):
    arch = random_architecture(num_nodes, random.Random(num_nodes))
    model = StandaloneModel(arch, vocab, ModelConfig(num_nodes=num_nodes, hidden=hidden))
    # tied embedding/decoder (V H), decoder bias (V), node 0's input and recurrent pairs, one pair per edge
    expected = vocab * hidden + vocab + 2 * (hidden * 2 * hidden) + (num_nodes - 1) * (hidden * 2 * hidden)
    assert sum(p.numel() for p in model.parameters()) == expected == parameter_count(num_nodes, hidden, vocab)
    assert model.edges.shape == (num_nodes - 1, hidden, 2 * hidden)
    assert sorted(model.edge_nodes.tolist()) == list(range(1, num_nodes))  # one pair into each node
    supernet = SuperNet(vocab, ModelConfig(num_nodes=num_nodes, hidden=hidden))
    assert supernet.edges.shape[0] == num_nodes * (num_nodes - 1) // 2


def test_a_checkpoint_for_another_layout_is_refused():
    arch = Architecture.parse("tanh,0:relu,0:sigmoid,1:tanh")
    model = StandaloneModel(arch, 10, ModelConfig(num_nodes=4, hidden=4))
    state = model.state_dict()
    state["edge_nodes"] = state["edge_nodes"].flip(0)
    with pytest.raises(ValueError, match="laid out for nodes"):
        model.load_state_dict(state)


# -- NT-ASGD ----------------------------------------------------------------------------------

def test_nt_asgd_switches_when_validation_stalls_as_awd_lstm_does():
    p = torch.nn.Parameter(torch.zeros(2))
    asgd = NTASGD([p], nonmono=2)
    # a check switches when it is worse than the best check before the last two, given more than two
    assert [asgd.check(v) for v in (10.0, 9.0, 8.0, 8.5)] == [None, None, None, None]  # 8.5 < min(10)
    assert not asgd.active
    assert asgd.check(9.5) == 9.0  # 9.5 > min(10, 9)
    assert asgd.active and asgd.check(100.0) is None  # once averaging, no more checks
    assert asgd.history == [10.0, 9.0, 8.0, 8.5, 9.5]


def test_nt_asgd_never_switches_with_nonmono_zero():
    asgd = NTASGD([torch.nn.Parameter(torch.zeros(1))], nonmono=0)
    assert all(asgd.check(v) is None for v in (1.0, 2.0, 3.0, 4.0, 5.0, 6.0))
    assert not asgd.active


def test_evaluation_uses_the_mean_of_the_weights_since_the_switch():
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0]))
    asgd = NTASGD([p], nonmono=1)
    for v in (5.0, 6.0, 7.0):
        asgd.check(v)
    assert asgd.active
    iterates = [torch.tensor([3.0, 0.0]), torch.tensor([5.0, 2.0]), torch.tensor([10.0, -5.0])]
    for value in iterates:  # three optimizer steps after the switch
        with torch.no_grad():
            p.copy_(value)
        asgd.update()
    with asgd.averaged():
        torch.testing.assert_close(p.detach(), torch.tensor([6.0, -1.0]))
    torch.testing.assert_close(p.detach(), torch.tensor([10.0, -5.0]))  # the raw weights are back
    restored = NTASGD([p], nonmono=1)
    restored.load_state_dict(asgd.state_dict())
    assert restored.count == 3 and restored.history == [5.0, 6.0, 7.0]
    torch.testing.assert_close(restored.mean[0], torch.tensor([6.0, -1.0]))


# -- the loop ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def corpus() -> Corpus:
    full = load_corpus(None)
    return Corpus(vocab=full.vocab, train=full.train[:4000], valid=full.valid[:800], test=full.test[:800],
                  source="generated corpus (test slice)")


def conflicting_corpus(vocab: int = 12) -> Corpus:
    """Training text counts up (t, t+1, ...), validation counts down: the better the model fits the
    training text, the worse it predicts validation, so validation stalls from the first check."""
    up = np.arange(3000) % vocab
    return Corpus(vocab=[f"w{i}" for i in range(vocab)], train=up, valid=up[::-1].copy(), test=up[:600].copy(),
                  source="counting corpus")


def retrain(tmp_path, corpus, arch="tanh,0:relu,1:identity,1:sigmoid", epochs=3, extra=()):
    cell = Architecture.parse(arch)
    settings = retrain_settings.resolve(cell, "cpu", device="cpu", overrides=[*TINY, *extra], epochs=epochs,
                                        num_nodes=cell.num_nodes)
    session = create_session(tmp_path, "retrain")
    retrainer = new_retrain(settings, session, corpus, [], Source(arch=settings.arch))
    status = retrainer.run()
    return retrainer, session, status, read_events(session.log_path)


def by_type(events, kind):
    return [e for e in events if e.type == kind]


def test_a_retrain_records_every_step_and_tests_its_best_weights(tmp_path, corpus):
    retrainer, session, status, events = retrain(tmp_path, corpus)
    assert status == "finished"
    assert events[0].type == "session_start" and events[0].kind == "retrain"
    assert [e.seq for e in events] == list(range(len(events)))
    steps = by_type(events, "shared_step")
    assert [s.step for s in steps] == list(range(1, 19))
    checks = by_type(events, "validation")
    assert len(checks) == 3 and all(c.arch == "tanh,0:relu,1:identity,1:sigmoid" for c in checks)
    result = by_type(events, "retrain_result")[0]
    best = min(checks, key=lambda c: c.ppl)
    assert (result.epoch, result.valid_ppl) == (best.epoch, best.ppl)
    assert math.isfinite(result.test_ppl) and 1 < result.test_ppl < len(corpus.vocab)
    # the reported test ppl is best.pt's weights on the whole test split at the test batch size
    saved = checkpoints.load(session.checkpoint_dir / BEST)
    model = StandaloneModel(retrainer.arch, len(corpus.vocab), retrainer.s.model)
    model.load_state_dict(saved["model"])
    test = batchify(corpus.test, 2)
    assert model.perplexity(retrainer.arch, test, 10) == pytest.approx(result.test_ppl, rel=1e-9)
    assert session.status()["test_ppl"] == result.test_ppl and session.status()["status"] == "finished"
    assert session.meta()["kind"] == "retrain" and session.checkpoint_epochs() == [1, 2, 3]
    assert events[-1].type == "session_end" and events[-1].best_ppl == best.ppl


def test_learning_rate_schedule_decays_after_decay_after(tmp_path, corpus):
    _, _, _, events = retrain(tmp_path, corpus, epochs=4, extra=["train.decay_after=2", "train.lr_decay=0.5",
                                                                 "model.lr=8"])
    lrs = {s.epoch: s.lr for s in by_type(events, "shared_step")}
    assert lrs == {1: 8.0, 2: 8.0, 3: 4.0, 4: 2.0}


def test_validation_stall_switches_to_averaged_weights(tmp_path):
    corpus = conflicting_corpus()
    retrainer, session, status, events = retrain(tmp_path, corpus, epochs=5, extra=["train.nonmono=1"])
    checks = [c.ppl for c in by_type(events, "validation")]
    assert checks[2] > checks[0]  # the corpus makes validation worse: the third check must switch
    switch = by_type(events, "asgd_switch")
    assert len(switch) == 1 and switch[0].epoch == 3 and switch[0].reference_ppl == checks[0]
    assert switch[0].step == 18 and switch[0].valid_ppl == checks[2]
    assert [c.averaged for c in by_type(events, "validation")] == [False, False, False, True, True]
    # the last check used the mean of the weights after steps 19..30, not the raw weights
    with retrainer.asgd.averaged():
        averaged_ppl = retrainer.model.perplexity(retrainer.arch, retrainer.valid_data, 10)
    assert retrainer.asgd.count == 12 and averaged_ppl == pytest.approx(checks[-1], rel=1e-12)
    raw = StandaloneModel(retrainer.arch, 12, retrainer.s.model)
    raw.load_state_dict(checkpoints.load(session.epoch_checkpoint(5))["model"])
    assert raw.perplexity(retrainer.arch, retrainer.valid_data, 10) != pytest.approx(checks[-1], rel=1e-6)


class Killed(Exception):
    """Stands in for a kill at a step: the process dies with the record as it is."""


def test_a_timed_checkpoint_resumes_mid_epoch_with_the_same_numbers(tmp_path, corpus):
    _, _, _, full = retrain(tmp_path / "full", corpus, epochs=2)
    cell = Architecture.parse("tanh,0:relu,1:identity,1:sigmoid")
    settings = retrain_settings.resolve(cell, "cpu", device="cpu", overrides=[*TINY, "train.checkpoint_every_s=1e-9"],
                                        epochs=2, num_nodes=4)
    session = create_session(tmp_path / "cut", "retrain")
    first = new_retrain(settings, session, corpus, [], Source(arch=settings.arch))

    def kill(event):
        if event.type == "shared_step" and event.step == 9:  # mid-epoch 2, after step 8's timed checkpoint
            raise Killed

    first.record.listeners.append(kill)
    with pytest.raises(Killed):
        first.run()
    assert session.latest_checkpoint().name == "timed.pt"
    second = resume_retrain(session, lambda s: corpus, [])
    assert second.resumed_from == "timed.pt" and (second.pos.epoch, second.pos.steps_done) == (2, 2)
    assert second.run() == "finished"
    events = read_events(session.log_path)
    restart = next(i for i, e in enumerate(events) if e.type == "session_start" and e.resumed_from)
    resumed = [(e.step, e.loss) for e in by_type(events[restart:], "shared_step")]
    assert resumed == [(e.step, e.loss) for e in by_type(full, "shared_step") if e.step >= 9]
    assert not by_type(events[restart:], "epoch_start")  # epoch 2 goes on, it does not start again
    assert by_type(events, "retrain_result")[0].test_ppl == by_type(full, "retrain_result")[0].test_ppl
    assert not (session.checkpoint_dir / "timed.pt").exists()  # superseded by the epoch checkpoint


def test_resume_continues_where_the_run_stopped(tmp_path, corpus):
    _, _, _, full = retrain(tmp_path / "full", corpus, epochs=3)
    cell = Architecture.parse("tanh,0:relu,1:identity,1:sigmoid")
    settings = retrain_settings.resolve(cell, "cpu", device="cpu", overrides=TINY, epochs=3, num_nodes=4)
    session = create_session(tmp_path / "cut", "retrain")
    first = new_retrain(settings, session, corpus, [], Source(arch=settings.arch))
    stop_after = 8  # mid-epoch 2

    def listener(event):
        if event.type == "shared_step" and event.step == stop_after:
            first.request_stop()

    first.record.listeners.append(listener)
    assert first.run() == "stopped"
    second = resume_retrain(session, lambda s: corpus, [])
    assert second.resumed_from == "interrupt.pt" and second.run() == "finished"
    events = read_events(session.log_path)
    steps = [e.step for e in by_type(events, "shared_step")]
    assert steps == list(range(1, 19))  # nothing repeated, nothing skipped
    # and the same numbers as the uninterrupted run
    values = [(e.step, e.loss) for e in by_type(events, "shared_step")]
    assert values == [(e.step, e.loss) for e in by_type(full, "shared_step")]
    assert by_type(events, "retrain_result")[0].test_ppl == by_type(full, "retrain_result")[0].test_ppl


# -- steps on a device ---------------------------------------------------------------------------

@pytest.mark.parametrize("as_on_a_gpu", [False, True])
def test_non_finite_steps_are_skipped_and_left_out_of_the_train_ppl(tmp_path, corpus, monkeypatch, as_on_a_gpu):
    """Steps 2 and 3 get a real non-finite loss (an infinite decoder bias while they run): each is a
    warning, changes no weight and is left out of the records and the epoch's train ppl; on the CPU
    (weight decay on: decided on the host) and as on a GPU without weight decay (a mask on the device)."""
    extra = []
    if as_on_a_gpu:
        monkeypatch.setattr(supernet, "reads_on_host", lambda x: False)
        extra = ["train.weight_decay=0"]
    real, calls = retrain_module.train_step, []

    def poisoned(model, *args):
        calls.append(model)
        if len(calls) not in (2, 3):
            return real(model, *args)
        before = {k: v.clone() for k, v in model.state_dict().items()}
        with torch.no_grad():
            model.decoder_bias[3] = math.inf
        try:
            return real(model, *args)
        finally:
            with torch.no_grad():
                model.decoder_bias[3] = before["decoder_bias"][3]
            assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())

    monkeypatch.setattr(retrain_module, "train_step", poisoned)
    _, _, status, events = retrain(tmp_path, corpus, epochs=1, extra=extra)
    assert status == "finished"
    assert [w.message for w in by_type(events, "warning") if w.kind == "nonfinite_loss"] == [
        "non-finite loss at step 2 (1 in a row); step skipped", "non-finite loss at step 3 (2 in a row); step skipped"]
    steps = by_type(events, "shared_step")
    assert [s.step for s in steps] == [1, 4, 5, 6] and all(math.isfinite(s.loss) for s in steps)
    end = by_type(events, "epoch_end")[0]
    assert end.train_ppl == pytest.approx(math.exp(np.mean([s.loss for s in steps])), rel=1e-12)


def test_a_retrain_step_waits_for_the_device_once(tmp_path, corpus, monkeypatch):
    """As on a GPU without weight decay (the skip decided on the device), a step reads back only its
    loss and finite flag, in one transfer."""
    monkeypatch.setattr(supernet, "reads_on_host", lambda x: False)
    cell = Architecture.parse("tanh,0:relu,1:identity,1:sigmoid")
    settings = retrain_settings.resolve(cell, "cpu", device="cpu", overrides=[*TINY, "train.weight_decay=0"],
                                        epochs=2, num_nodes=4)
    retrainer = new_retrain(settings, create_session(tmp_path, "retrain"), corpus, [], Source(arch=settings.arch))
    reads = count_reads(monkeypatch, phase=lambda: retrainer.phase)
    assert retrainer.run() == "finished"
    assert [name for phase, name in reads if phase == "step"] == ["tolist"] * 12  # 2 epochs of 6 steps
    assert len(by_type(read_events(retrainer.session.log_path), "shared_step")) == 12
