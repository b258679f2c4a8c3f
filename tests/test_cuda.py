"""CUDA against the CPU: the same architecture, weights and batch give the same results on both;
checkpoints move between them; a training step never waits for the device; running out of GPU
memory is a one-line error. Skipped without a GPU: run ``python -m pytest -q tests/test_cuda.py``
on one (tests/test_device.py proves on the CPU what can be proven there).

Every test sets the fp32 matmul precision itself (cuBLAS may otherwise use TF32 where a process
allowed it). Tolerances are norm-wise relative errors, ||cuda - cpu|| / ||cpu||:

- ``ieee`` (full fp32): loss and new state 1e-5, gradients 1e-4. Two fp32 implementations (cuBLAS
  and the CPU's BLAS) sum in different orders: about 1e-7 per operation, compounded over 12 steps
  of a 12-node cell and its backward.
- ``tf32`` matmuls (10-bit mantissa, each product rounded to about 5e-4): loss 1e-3, new state 1e-2,
  gradients 5e-2.
"""

from __future__ import annotations

import copy
import dataclasses
import gc
import random

import pytest
import torch

from enas_tui import checkpoints, config
from enas_tui.cli import main
from enas_tui.config import ControllerConfig, ModelConfig
from enas_tui.controller import Controller
from enas_tui.data import Corpus, load_corpus
from enas_tui.search_space import Architecture, random_architecture
from enas_tui.session_log import read_events
from enas_tui.sessions import create_session
from enas_tui.supernet import SuperNet, train_step
from enas_tui.trainer import DeviceError, TrainingFailed, new_run, pick_device, resume_run

from helpers import TINY

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")

NO_DROPOUT = dict(dropout_emb=0.0, dropout_in=0.0, dropout_out=0.0, dropconnect=0.0)
TOLERANCE = {"ieee": {"loss": 1e-5, "state": 1e-5, "grad": 1e-4},
             "tf32": {"loss": 1e-3, "state": 1e-2, "grad": 5e-2}}
ARCHS = ("relu,0:tanh,1:sigmoid,2:identity,3:tanh,4:relu,5:tanh,6:relu,7:sigmoid,8:identity,9:tanh",  # chain
         "sigmoid,0:tanh,0:relu,0:identity,0:tanh,0:sigmoid,0:relu,0:tanh,0:identity,0:sigmoid,0:relu",  # star
         "tanh,0:relu,0:relu,1:relu,2:relu,1:relu,3:tanh,3:sigmoid,4:identity,6:tanh,6:relu")  # gathered


@pytest.fixture(params=["ieee", "tf32"])
def precision(request):
    """The fp32 matmul precision of the test, set explicitly (new API only: torch refuses to read
    the legacy allow_tf32 flag once the new one was set), restored after."""
    saved = torch.backends.cuda.matmul.fp32_precision
    torch.backends.cuda.matmul.fp32_precision = request.param
    yield request.param
    torch.backends.cuda.matmul.fp32_precision = saved


@pytest.fixture
def ieee():
    saved = torch.backends.cuda.matmul.fp32_precision
    torch.backends.cuda.matmul.fp32_precision = "ieee"
    yield
    torch.backends.cuda.matmul.fp32_precision = saved


@pytest.fixture(scope="module")
def corpus() -> Corpus:
    full = load_corpus(None)
    return Corpus(vocab=full.vocab, train=full.train[:6000], valid=full.valid[:2000],
                  test=full.test[:2000], source="generated corpus (test slice)")


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    """||a - b|| / ||b||, on the CPU in float64."""
    a, b = a.detach().cpu().double(), b.detach().cpu().double()
    return ((a - b).norm() / b.norm().clamp_min(1e-30)).item()


def cpu_and_cuda_nets(hidden: int = 64, max_hidden_norm: float = 0.0, **cfg) -> tuple[SuperNet, SuperNet]:
    torch.manual_seed(0)
    net = SuperNet(200, ModelConfig(num_nodes=12, hidden=hidden, max_hidden_norm=max_hidden_norm,
                                    **{**NO_DROPOUT, **cfg}))
    with torch.no_grad():
        for p in net.parameters():  # large enough that every activation is exercised non-linearly
            p.uniform_(-0.2, 0.2)
    return net, copy.deepcopy(net).cuda()


def forward_backward(net: SuperNet, tokens, targets, h0, readout, arch):
    net.zero_grad()
    loss, h = net.loss(tokens, targets, h0, arch)
    (loss + (h * readout).sum()).backward()
    return loss, h, {name: p.grad.clone() for name, p in net.named_parameters()}


@pytest.mark.parametrize("clip", [False, True])
def test_loss_state_and_gradients_match_the_cpu(precision, clip):
    g = torch.Generator().manual_seed(1)
    tokens, targets = torch.randint(200, (12, 8), generator=g), torch.randint(200, (12, 8), generator=g)
    h0, readout = torch.randn(8, 64, generator=g), torch.randn(8, 64, generator=g)
    net, cuda_net = cpu_and_cuda_nets()
    archs = [Architecture.parse(a) for a in ARCHS] + [random_architecture(12, random.Random(s)) for s in range(3)]
    for arch in archs:
        for model in (net, cuda_net):
            model.cfg = dataclasses.replace(model.cfg, max_hidden_norm=0.0)
        if clip:  # about half the rows clipped: the clip's backward runs its general form on CUDA
            with torch.no_grad():
                norms = net.loss(tokens, targets, h0, arch)[1].norm(dim=-1)
            for model in (net, cuda_net):
                model.cfg = dataclasses.replace(model.cfg, max_hidden_norm=norms.median().item())
        ref = forward_backward(net, tokens, targets, h0, readout, arch)
        got = forward_backward(cuda_net, tokens.cuda(), targets.cuda(), h0.cuda(), readout.cuda(), arch)
        tol = TOLERANCE[precision]
        assert rel(got[0], ref[0]) <= tol["loss"], arch.to_text()
        assert rel(got[1], ref[1]) <= tol["state"], arch.to_text()
        for name, grad in ref[2].items():
            assert rel(got[2][name], grad) <= tol["grad"], (arch.to_text(), name)
        with torch.no_grad():  # the evaluation path, which keeps nothing for a backward
            assert rel(cuda_net.loss(tokens.cuda(), targets.cuda(), h0.cuda(), arch)[0],
                       net.loss(tokens, targets, h0, arch)[0]) <= tol["loss"]
        valid = torch.randint(200, (40, 4), generator=g)
        assert abs(cuda_net.perplexity(arch, valid.cuda(), 10) / net.perplexity(arch, valid, 10) - 1) <= 10 * tol["loss"]


def test_a_training_step_never_waits_for_the_device(ieee):
    """CUDA's sync debug mode turns any synchronising call (.item(), a copy to the host, ...) into an
    error: a finite step and a non-finite one (skipped by masks, weights exactly unchanged) run
    without one, and a finite step moves the weights as the same step on the CPU does."""
    torch.manual_seed(0)
    net = SuperNet(200, ModelConfig(num_nodes=12, hidden=64, max_hidden_norm=1.0))  # dropouts on; rows clip
    cpu_net = copy.deepcopy(net)
    net = net.cuda()
    arch = random_architecture(12, random.Random(0))
    tokens = torch.randint(200, (13, 8), generator=torch.Generator().manual_seed(2))
    opt, cpu_opt = torch.optim.SGD(net.parameters(), lr=1.0), torch.optim.SGD(cpu_net.parameters(), lr=1.0)
    x, y, h0 = tokens[:-1].cuda(), tokens[1:].cuda(), net.init_hidden(8)
    net.plan(arch)  # a new architecture's layout is copied to the device once, before the step
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        loss, hidden, finite = train_step(net, opt, x, y, h0, arch, 0.25)
        with torch.no_grad():
            net.decoder_bias[3] = float("inf")
        before = copy.deepcopy(net.state_dict())
        bad_loss, _, bad_finite = train_step(net, opt, x, y, hidden, arch, 0.25)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert bool(finite) and not bool(bad_finite) and not torch.isfinite(bad_loss)
    for name, value in net.state_dict().items():
        assert torch.equal(value, before[name]), name
    # the finite step against the CPU: dropout masks differ between devices, so compare without them
    for model in (net, cpu_net):
        model.cfg = dataclasses.replace(model.cfg, **NO_DROPOUT)
    with torch.no_grad():
        for p, q in zip(net.parameters(), cpu_net.parameters()):
            p.copy_(q)
    train_step(net, opt, x, y, h0, arch, 0.25)
    train_step(cpu_net, cpu_opt, tokens[:-1], tokens[1:], cpu_net.init_hidden(8), arch, 0.25)
    for (name, p), q in zip(net.named_parameters(), cpu_net.parameters()):
        assert rel(p, q) <= 1e-5, name


# -- the controller ------------------------------------------------------------------------------------

def cpu_and_cuda_controllers() -> tuple[Controller, Controller]:
    torch.manual_seed(0)
    ctrl = Controller(12, ControllerConfig())
    return ctrl, copy.deepcopy(ctrl).cuda()


@pytest.mark.parametrize("mode, state", [("train", "emit_last"), ("derive", "after_last")])
def test_controller_scores_the_same_decisions_as_on_the_cpu(ieee, mode, state):
    """Random streams differ between devices, so the CPU samples and both devices score."""
    ctrl, cuda_ctrl = cpu_and_cuda_controllers()
    with torch.no_grad():
        decisions = ctrl.sample(64, generator=torch.Generator().manual_seed(3)).decisions
    ref, got = ctrl.score(decisions, mode=mode, state=state), cuda_ctrl.score(decisions.cuda(), mode=mode, state=state)
    assert torch.equal(got.decisions.cpu(), decisions)
    for name in ("log_probs", "entropies", "hidden"):
        assert rel(getattr(got, name), getattr(ref, name)) <= 1e-5, name
    for a, b in zip(got.logits, ref.logits):
        assert rel(a, b) <= 1e-5
    assert rel(got.probs(), ref.probs()) <= 1e-5


def test_controller_supervised_loss_and_its_gradients_match_the_cpu(ieee):
    ctrl, cuda_ctrl = cpu_and_cuda_controllers()
    with torch.no_grad():
        decisions = ctrl.sample(100, generator=torch.Generator().manual_seed(4)).decisions
    for reduction in ("mean", "sum"):
        ctrl.zero_grad(), cuda_ctrl.zero_grad()
        ref, got = ctrl.supervised_loss(decisions, reduction), cuda_ctrl.supervised_loss(decisions.cuda(), reduction)
        ref.backward(), got.backward()
        assert rel(got, ref) <= 1e-5
        for (name, p), q in zip(cuda_ctrl.named_parameters(), ctrl.parameters()):
            assert rel(p.grad, q.grad) <= 1e-4, (reduction, name)


def test_controller_sampling_on_cuda_is_reproducible_and_valid(ieee):
    _, cuda_ctrl = cpu_and_cuda_controllers()
    with torch.no_grad():
        first = cuda_ctrl.sample(50, generator=torch.Generator("cuda").manual_seed(5))
        second = cuda_ctrl.sample(50, generator=torch.Generator("cuda").manual_seed(5))
    assert torch.equal(first.decisions, second.decisions)
    archs = first.architectures()  # from_decisions validates every decision
    assert len({a.to_text() for a in archs}) > 1
    scored = cuda_ctrl.score(first.decisions)
    assert torch.equal(scored.log_probs, first.log_probs)  # one code path: bit-identical on one device
    assert cuda_ctrl.greedy() == cpu_and_cuda_controllers()[0].greedy()


# -- devices, checkpoints, memory --------------------------------------------------------------------

def test_device_names():
    count = torch.cuda.device_count()
    assert pick_device("auto").type == "cuda" and pick_device(f"cuda:{count - 1}").index == count - 1
    with pytest.raises(DeviceError, match=f"this machine has {count} CUDA device"):
        pick_device(f"cuda:{count}")


def test_a_missing_gpu_index_is_one_line(tmp_path, capsys):
    count = torch.cuda.device_count()
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--device", f"cuda:{count}", "--headless", "--sessions-dir", str(tmp_path)])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (f"enas-tui: error: --device: device 'cuda:{count}': "
                                       f"this machine has {count} CUDA device(s)\n")


def run_epochs(tmp_path, corpus, device: str, epochs: int, name: str = "s"):
    settings = config.resolve("supervised", "cpu", device=device, overrides=TINY, epochs=epochs)
    session = create_session(tmp_path / name, "supervised")
    trainer = new_run(settings, session, corpus, listeners=[])
    assert trainer.run() == "finished"
    return session, trainer


def test_a_search_on_cuda_records_finite_steps(tmp_path, corpus, ieee):
    session, trainer = run_epochs(tmp_path, corpus, "cuda", 2)
    events = read_events(session.log_path)
    assert events[0].device == "cuda"
    steps = [e for e in events if e.type == "shared_step"]
    assert len(steps) == 8 and all(e.loss == e.loss and e.tokens_per_s > 0 for e in steps)
    assert not [e for e in events if e.type == "warning"]
    assert all(p.device.type == "cuda" for p in trainer.net.parameters())


@pytest.mark.parametrize("written, resumed", [("cuda", "cpu"), ("cpu", "cuda")])
def test_a_checkpoint_moves_between_the_cpu_and_the_gpu(tmp_path, corpus, ieee, written, resumed):
    session, _ = run_epochs(tmp_path, corpus, written, 1)
    state = checkpoints.load(session.epoch_checkpoint(1))  # weights_only=True, map_location="cpu"
    assert state["rng"]["device"] == written
    trainer = resume_run(session, lambda s: corpus, listeners=[], epochs=2, device=resumed)
    assert trainer.device.type == resumed
    for key, value in trainer.net.state_dict().items():
        assert value.device.type == resumed and torch.equal(value.cpu(), state["supernet"][key]), key
    assert torch.equal(trainer.hidden.cpu(), state["hidden"])
    assert trainer.run() == "finished"
    warnings = [e for e in read_events(session.log_path) if e.type == "warning"]
    assert [w.kind for w in warnings] == ["device_changed"]
    assert warnings[0].message.startswith(f"checkpoint written on {written}, resumed on {resumed}")


def test_out_of_gpu_memory_is_one_line_naming_the_settings_with_the_checkpoint_intact(tmp_path, corpus, ieee):
    """A real CUDA out-of-memory error: the allocator is capped just above what the model holds
    after it is built, so the first backward (the edges' gradient) cannot be allocated."""
    overrides = [*TINY, "model.hidden=512"]
    settings = config.resolve("random", "cpu", device="cuda", overrides=overrides, epochs=1)
    session = create_session(tmp_path, "random")
    assert new_run(settings, session, corpus, listeners=[]).run() == "finished"
    good = checkpoints.load(session.epoch_checkpoint(1))
    gc.collect()
    torch.cuda.empty_cache()
    trainer = resume_run(session, lambda s: corpus, listeners=[], epochs=2)
    total = torch.cuda.get_device_properties(0).total_memory
    try:
        torch.cuda.set_per_process_memory_fraction((torch.cuda.memory_reserved() + (32 << 20)) / total)
        with pytest.raises(TrainingFailed) as failed:
            trainer.run()
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0)
        del trainer
        gc.collect()
        torch.cuda.empty_cache()
    message = str(failed.value)
    assert message.startswith("out of memory on cuda in a shared step (tried to allocate ")
    assert message.endswith("): lower model.batch_size, model.bptt or model.hidden; "
                            "stopped with the last checkpoint intact")
    assert session.status()["status"] == "failed" and session.status()["message"] == message
    assert session.latest_checkpoint() == session.epoch_checkpoint(1)
    again = checkpoints.load(session.epoch_checkpoint(1))
    assert all(torch.equal(again["supernet"][k], v) for k, v in good["supernet"].items())
