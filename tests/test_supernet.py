"""The shared model: the batched cell and its hand-written backward against plain references."""

from __future__ import annotations

import copy
import gc
import dataclasses
import math
import random

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from enas_tui import supernet
from enas_tui.config import ModelConfig
from enas_tui.search_space import Architecture, ArchitectureError, random_architecture
from enas_tui.supernet import (
    SuperNet, count_flops_per_token, edge_index, get_batch, linear_cross_entropy, make_plan, run_cell,
    train_step,
)

from helpers import count_reads

NO_DROPOUT = dict(dropout_emb=0.0, dropout_in=0.0, dropout_out=0.0, dropconnect=0.0)
ACTS = (torch.tanh, torch.relu, lambda z: z, torch.sigmoid)


def make_net(num_nodes: int, hidden: int, vocab: int = 20, seed: int = 0, scale: float = 0.6,
             **cfg) -> SuperNet:
    """A float64 model with weights large enough that every activation is exercised non-linearly."""
    torch.manual_seed(seed)
    net = SuperNet(vocab, ModelConfig(num_nodes=num_nodes, hidden=hidden, **{**NO_DROPOUT, **cfg})).double()
    with torch.no_grad():
        for p in net.parameters():
            p.uniform_(-scale, scale)
    return net


def per_node_values(net: SuperNet, x: torch.Tensor, h: torch.Tensor,
                    arch: Architecture) -> list[torch.Tensor]:
    """One time step, one node at a time, straight from the cell's equations."""
    H = net.cfg.hidden
    z = x @ net.w_x + h @ net.w_h
    c = torch.sigmoid(z[:, :H])
    values = [c * ACTS[arch.activations[0]](z[:, H:]) + (1 - c) * h]
    for j in range(1, arch.num_nodes):
        parent = values[arch.parents[j - 1]]
        z = parent @ net.edges[edge_index(arch.parents[j - 1], j)]
        c = torch.sigmoid(z[:, :H])
        values.append(c * ACTS[arch.activations[j]](z[:, H:]) + (1 - c) * parent)
    return values


def clip_rows(h: torch.Tensor, max_norm: float) -> torch.Tensor:
    """Rows of h with norm above max_norm scaled down to it (0: off), differentiated by autograd."""
    if max_norm <= 0:
        return h
    norms = h.norm(dim=-1, keepdim=True)
    return torch.where(norms > max_norm, h * (max_norm / norms), h)


def per_node_forward(net: SuperNet, tokens, hidden, arch):
    x = net.encoder(tokens)
    states = []
    for t in range(tokens.shape[0]):
        values = per_node_values(net, x[t], hidden, arch)
        hidden = clip_rows(torch.stack([values[leaf] for leaf in arch.leaves]).mean(0), net.cfg.max_hidden_norm)
        states.append(hidden)
    return F.linear(torch.stack(states), net.encoder.weight, net.decoder_bias), hidden


def grads(net: SuperNet) -> dict[str, torch.Tensor]:
    return {name: p.grad.clone() for name, p in net.named_parameters()}


# -- the cell ----------------------------------------------------------------------------------------

def test_hand_computed_cell():
    """N=4, hidden 2, weights by hand: every node of one step, then the next step from the new state."""
    arch = Architecture.parse("tanh,0:relu,0:identity,1:sigmoid")  # leaves 2 and 3
    net = make_net(4, 2, vocab=3)
    emb = np.array([[0.5, -1.0], [1.5, 0.25], [-0.75, 2.0]])
    w_x = np.array([[0.3, -0.2, 0.5, 0.1], [0.4, 0.6, -0.3, 0.2]])
    w_h = np.array([[0.1, 0.0, -0.4, 0.7], [-0.2, 0.3, 0.25, -0.5]])
    edges = {(0, 1): [[0.5, -0.5, 1.0, -1.2], [0.2, 0.3, 0.4, 0.9]],
             (0, 2): [[-0.3, 0.8, 0.6, 0.1], [0.7, -0.1, -0.2, 0.5]],
             (1, 3): [[0.9, 0.4, -0.6, 0.3], [-0.4, 0.2, 0.8, -0.7]]}
    with torch.no_grad():
        net.encoder.weight.copy_(torch.tensor(emb))
        net.w_x.copy_(torch.tensor(w_x))
        net.w_h.copy_(torch.tensor(w_h))
        net.edges.fill_(100.0)  # unused edges must not matter
        for (i, j), w in edges.items():
            net.edges[edge_index(i, j)] = torch.tensor(w, dtype=torch.float64)

    def sig(a):
        return 1 / (1 + np.exp(-a))

    h = np.array([[0.2, -0.1]])
    expected = []
    for token in (2, 0):
        z = emb[token] @ w_x + h @ w_h
        v0 = sig(z[:, :2]) * np.tanh(z[:, 2:]) + (1 - sig(z[:, :2])) * h
        z = v0 @ np.array(edges[0, 1])
        v1 = sig(z[:, :2]) * np.maximum(z[:, 2:], 0) + (1 - sig(z[:, :2])) * v0
        z = v0 @ np.array(edges[0, 2])
        v2 = sig(z[:, :2]) * z[:, 2:] + (1 - sig(z[:, :2])) * v0
        z = v1 @ np.array(edges[1, 3])
        v3 = sig(z[:, :2]) * sig(z[:, 2:]) + (1 - sig(z[:, :2])) * v1
        h = (v2 + v3) / 2
        expected.append(h)
    net.eval()
    logits, hidden = net(torch.tensor([[2], [0]]), torch.tensor([[0.2, -0.1]], dtype=torch.float64), arch)
    np.testing.assert_allclose(hidden.detach().numpy(), expected[-1], rtol=1e-12)
    bias = net.decoder_bias.detach().numpy()
    np.testing.assert_allclose(logits.detach().numpy()[:, 0], np.concatenate(expected) @ emb.T + bias,
                               rtol=1e-12)


@pytest.mark.parametrize("text, parent_kind", [
    ("relu,0:tanh", "run"),  # the smallest cell
    ("relu,0:tanh,1:sigmoid,2:identity,3:tanh,4:relu", "run"),  # chain: one node per level
    ("sigmoid,0:tanh,0:relu,0:identity,0:tanh,0:sigmoid", "single"),  # star: one wide level
    ("tanh,0:relu,0:relu,1:relu,2:relu,1:relu", "gathered"),  # level 2's parents are 1, 1, 2
    ("identity,0:identity,0:identity,1:identity,2:relu,2:relu", "gathered"),  # 1, 2, 2; two groups
])
def test_matches_per_node_reference_forward_and_gradients(text, parent_kind):
    arch = Architecture.parse(text)
    deepest = make_plan(arch, torch.device("cpu"), torch.float64).levels[-1]
    kind = "run" if deepest.parent_run else "single" if deepest.single_parent is not None else "gathered"
    assert kind == parent_kind  # each way of reading parents is exercised
    check_against_reference(arch)


def test_matches_per_node_reference_on_random_architectures():
    rng = random.Random(3)
    for _ in range(6):
        check_against_reference(random_architecture(12, rng))


def test_matches_per_node_reference_with_the_state_clipped_on_some_rows():
    """max_hidden_norm at the median of the states' norms: some rows clipped, others not."""
    rng = random.Random(7)
    for _ in range(3):
        clipped, total = check_against_reference(random_architecture(8, rng), clip_at_median=True)
        assert 0 < clipped < total


def check_against_reference(arch: Architecture, hidden: int = 4, batch: int = 3, steps: int = 4,
                            clip_at_median: bool = False) -> tuple[int, int]:
    """Compare logits, state, loss and every gradient; returns (rows clipped, rows) over all steps.
    With ``clip_at_median``, max_hidden_norm is set to the median norm of the unclipped states (half
    way between the two middle ones, so that no row sits on the threshold)."""
    net = make_net(arch.num_nodes, hidden)
    tokens = torch.randint(20, (steps, batch), generator=torch.Generator().manual_seed(1))
    targets = torch.randint(20, (steps, batch), generator=torch.Generator().manual_seed(2))
    h0 = torch.randn(batch, hidden, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    readout = torch.randn(batch, hidden, dtype=torch.float64)  # makes the state's own gradient non-trivial
    if clip_at_median:
        middle = state_norms(net, tokens, h0, arch, 0.0).flatten().sort().values[steps * batch // 2 - 1:][:2]
        net.cfg = dataclasses.replace(net.cfg, max_hidden_norm=middle.mean().item())

    loss, h = net.loss(tokens, targets, h0, arch)
    (loss + (h * readout).sum()).backward()
    ours = grads(net)
    logits, _ = net(tokens, h0, arch)
    net.zero_grad()
    ref_logits, ref_h = per_node_forward(net, tokens, h0, arch)
    ref_loss = F.cross_entropy(ref_logits.reshape(-1, 20), targets.reshape(-1))
    (ref_loss + (ref_h * readout).sum()).backward()

    with torch.no_grad():  # the path that keeps nothing for a backward
        torch.testing.assert_close(net(tokens, h0, arch)[0], ref_logits)
    torch.testing.assert_close(logits, ref_logits, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(h, ref_h, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(loss, ref_loss, rtol=1e-10, atol=1e-12)
    for name, grad in grads(net).items():
        torch.testing.assert_close(ours[name], grad, rtol=1e-8, atol=1e-10, msg=f"gradient of {name}")
    norms, max_norm = state_norms(net, tokens, h0, arch, net.cfg.max_hidden_norm), net.cfg.max_hidden_norm
    return int((norms > max_norm).sum()) if max_norm > 0 else 0, norms.numel()


def state_norms(net: SuperNet, tokens, h0, arch, max_norm: float) -> torch.Tensor:
    """Norms (T, B, 1) of every step's state before the clip, as the cell records them (0: no clip)."""
    plan = net.plan(arch)
    with torch.no_grad():
        xz = net.encoder(tokens) @ net.w_x
        we = net.edges.index_select(0, plan.edge_rows)
        states, norms, *_ = supernet._cell_forward(xz, h0, net.w_h, we, plan, max_norm, keep=True)
    return norms if max_norm > 0 else states.norm(dim=-1, keepdim=True)


def test_two_threads_and_split_matmuls_give_the_same_result(monkeypatch):
    """The time loops drop to one thread and hand matmuls back to all of them; results must not
    change and the thread count must be restored."""
    arch = random_architecture(7, random.Random(4))
    net = make_net(7, 4)
    tokens = torch.randint(20, (4, 3))
    loss, _ = net.loss(tokens, tokens, net.init_hidden(3), arch)
    loss.backward()
    expected = grads(net)
    net.zero_grad()
    threads = torch.get_num_threads()
    monkeypatch.setattr(supernet, "PARALLEL_MIN_MACS", 0)
    try:
        torch.set_num_threads(2)
        loss2, _ = net.loss(tokens, tokens, net.init_hidden(3), arch)
        loss2.backward()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(threads)
    torch.testing.assert_close(loss2, loss)
    for name, grad in grads(net).items():
        torch.testing.assert_close(grad, expected[name], msg=name)


def test_cell_gradcheck():
    """The hand-written backward through time against finite differences, inputs and initial state."""
    arch = Architecture.parse("sigmoid,0:tanh,0:relu,1:identity,1:tanh")
    plan = make_plan(arch, torch.device("cpu"), torch.float64)
    g = torch.Generator().manual_seed(0)
    H = 3
    xz = torch.randn(3, 2, 2 * H, dtype=torch.float64, generator=g).requires_grad_()
    h0 = torch.randn(2, H, dtype=torch.float64, generator=g).requires_grad_()
    w0 = (0.8 * torch.randn(H, 2 * H, dtype=torch.float64, generator=g)).requires_grad_()
    we = (0.8 * torch.randn(arch.num_nodes - 1, H, 2 * H, dtype=torch.float64, generator=g)).requires_grad_()
    assert torch.autograd.gradcheck(lambda *a: run_cell(*a, plan), (xz, h0, w0, we))


def test_cell_gradcheck_with_the_state_clipped_on_some_rows():
    """The backward through the per-step clip (h' = h c / |h| where |h| > c) against finite
    differences, with c between the states' norms so that both kinds of rows occur."""
    arch = Architecture.parse("identity,0:relu,1:identity,0:tanh,3:relu")
    plan = make_plan(arch, torch.device("cpu"), torch.float64)
    g = torch.Generator().manual_seed(1)
    T, B, H = 4, 3, 3
    xz = torch.randn(T, B, 2 * H, dtype=torch.float64, generator=g).requires_grad_()
    h0 = torch.randn(B, H, dtype=torch.float64, generator=g).requires_grad_()
    w0 = (0.8 * torch.randn(H, 2 * H, dtype=torch.float64, generator=g)).requires_grad_()
    we = (0.8 * torch.randn(arch.num_nodes - 1, H, 2 * H, dtype=torch.float64, generator=g)).requires_grad_()
    with torch.no_grad():
        free = run_cell(xz, h0, w0, we, plan).norm(dim=-1).flatten().sort().values
        max_norm = free[T * B // 2 - 1:T * B // 2 + 1].mean().item()  # between the two middle norms
        norms = supernet._cell_forward(xz, h0, w0, we, plan, max_norm, keep=True)[1]
    clipped = (norms > max_norm).flatten(1)
    assert 0 < clipped.sum() < T * B and (clipped.any(1) & ~clipped.all(1)).any()  # mixed within a step
    assert torch.autograd.gradcheck(lambda *a: run_cell(*a, plan, max_norm), (xz, h0, w0, we))
    states = run_cell(xz, h0, w0, we, plan, max_norm)
    assert states.norm(dim=-1).max() <= max_norm * (1 + 1e-12)


def test_output_is_mean_of_leaves():
    arch = Architecture.parse("tanh,0:relu,1:sigmoid,1:tanh,0:identity")  # leaves 2, 3, 4
    net = make_net(5, 3).eval()
    tokens, h0 = torch.tensor([[4, 7]]), torch.zeros(2, 3, dtype=torch.float64)
    _, h = net(tokens, h0, arch)
    values = per_node_values(net, net.encoder(tokens[0]), h0, arch)
    torch.testing.assert_close(h, (values[2] + values[3] + values[4]) / 3)
    assert not torch.allclose(h, torch.stack(values).mean(0))


def test_gradient_reaches_only_the_edges_in_use():
    arch = Architecture.parse("tanh,0:relu,1:sigmoid,0:identity,2:tanh")
    net = make_net(5, 3)
    tokens = torch.randint(20, (3, 2))
    loss, _ = net.loss(tokens, tokens, net.init_hidden(2), arch)
    loss.backward()
    used = {edge_index(p, j) for j, p in enumerate(arch.parents, start=1)}
    for row in range(net.edges.shape[0]):
        norm = net.edges.grad[row].abs().sum().item()
        assert (norm > 0) == (row in used), f"edge row {row}: gradient {norm}"
    assert net.w_x.grad.abs().sum() > 0 and net.w_h.grad.abs().sum() > 0


def test_state_is_carried_between_calls():
    arch = random_architecture(6, random.Random(5))
    net = make_net(6, 4).eval()
    tokens = torch.randint(20, (6, 3))
    h0 = torch.randn(3, 4, dtype=torch.float64)
    whole, h_whole = net(tokens, h0, arch)
    first, h_mid = net(tokens[:3], h0, arch)
    second, h_end = net(tokens[3:], h_mid, arch)
    torch.testing.assert_close(torch.cat([first, second]), whole)
    torch.testing.assert_close(h_end, h_whole)
    other, _ = net(tokens[3:], torch.zeros_like(h0), arch)
    assert not torch.allclose(other, second)  # the state matters


def test_architecture_of_wrong_size_is_rejected():
    net = make_net(5, 3)
    with pytest.raises(ArchitectureError, match="4 nodes, the model has 5"):
        net(torch.zeros(2, 1, dtype=torch.long), net.init_hidden(1),
            Architecture.parse("tanh,0:relu,1:tanh,0:relu"))


# -- dropout, loss, evaluation, training ----------------------------------------------------------------

def test_dropouts_are_random_in_training_and_off_in_eval():
    arch = random_architecture(6, random.Random(0))
    noisy = make_net(6, 8, dropout_emb=0.3, dropout_in=0.4, dropout_out=0.4, dropconnect=0.5)
    clean = make_net(6, 8)
    clean.load_state_dict(noisy.state_dict())
    tokens, h0 = torch.randint(20, (4, 3)), torch.zeros(3, 8, dtype=torch.float64)
    a, _ = noisy(tokens, h0, arch)
    b, _ = noisy(tokens, h0, arch)
    assert not torch.allclose(a, b)
    noisy.eval(), clean.eval()
    torch.testing.assert_close(noisy(tokens, h0, arch)[0], clean(tokens, h0, arch)[0])


def test_locked_dropout_keeps_one_mask_over_time_and_preserves_the_mean():
    torch.manual_seed(0)
    x = torch.ones(6, 50, 40)
    y = supernet._locked_dropout(x, 0.4, training=True)
    assert torch.equal(y, y[:1].expand_as(y))
    assert y.unique().tolist() == pytest.approx([0.0, 1 / 0.6])
    assert (y == 0).float().mean().item() == pytest.approx(0.4, abs=0.03)
    assert supernet._locked_dropout(x, 0.4, training=False) is x


def test_fused_loss_matches_cross_entropy_with_gradients():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(600, 5, dtype=torch.float64, generator=g, requires_grad=True)  # several chunks
    w = torch.randn(50, 5, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(50, dtype=torch.float64, generator=g, requires_grad=True)
    y = torch.randint(50, (600,), generator=g)
    ours = linear_cross_entropy(x, w, b, y)
    (2 * ours).backward()
    ours_grads = [t.grad.clone() for t in (x, w, b)]
    for t in (x, w, b):
        t.grad = None
    ref = F.cross_entropy(F.linear(x, w, b), y)
    (2 * ref).backward()
    torch.testing.assert_close(ours, ref)
    for mine, theirs in zip(ours_grads, (x.grad, w.grad, b.grad)):
        torch.testing.assert_close(mine, theirs)
    with torch.no_grad():
        torch.testing.assert_close(linear_cross_entropy(x, w, b, y), ref.detach())


def test_perplexity_is_finite_matches_the_loss_and_restores_the_mode():
    arch = random_architecture(6, random.Random(2))
    net = make_net(6, 8, scale=0.2, dropout_in=0.5)
    data = torch.randint(20, (23, 2), generator=torch.Generator().manual_seed(0))
    ppl = net.perplexity(arch, data, bptt=5)
    assert net.training
    assert math.isfinite(ppl) and 1 < ppl < 100
    net.eval()
    hidden, nll, count = net.init_hidden(2), 0.0, 0
    for i in range(0, 22, 5):
        tokens, targets = get_batch(data, i, 5)
        loss, hidden = net.loss(tokens, targets, hidden, arch)
        nll, count = nll + loss.item() * targets.numel(), count + targets.numel()
    assert ppl == pytest.approx(math.exp(nll / count), rel=1e-9)
    assert net.perplexity(arch, data, bptt=5, max_batches=1) != pytest.approx(ppl)
    assert not net.training  # an eval-mode model stays in eval mode


def test_get_batch_shifts_targets_and_truncates_the_tail():
    data = torch.arange(20).view(10, 2)
    tokens, targets = get_batch(data, 0, 4)
    assert torch.equal(tokens, data[0:4]) and torch.equal(targets, data[1:5])
    tokens, targets = get_batch(data, 7, 4)
    assert tokens.shape == (2, 2) and torch.equal(targets, data[8:10])


def test_train_step_learns_a_repeated_batch():
    arch = random_architecture(5, random.Random(1))
    net = make_net(5, 8, scale=0.1).float()
    opt = torch.optim.SGD(net.parameters(), lr=5.0)
    tokens = torch.randint(20, (6, 4), generator=torch.Generator().manual_seed(0))
    losses = []
    for _ in range(20):
        loss, hidden, finite = train_step(net, opt, tokens[:-1], tokens[1:], net.init_hidden(4), arch, 0.5)
        assert finite and not hidden.requires_grad
        losses.append(loss)
    assert losses[-1] < losses[0] - 0.4


def test_train_step_skips_a_non_finite_loss():
    arch = random_architecture(5, random.Random(1))
    net = make_net(5, 8)
    with torch.no_grad():
        net.decoder_bias[3] = math.inf  # every logit row now holds an inf: the loss is NaN
    before = copy.deepcopy(net.state_dict())
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    tokens = torch.randint(20, (4, 2))
    loss, hidden, finite = train_step(net, opt, tokens, tokens, net.init_hidden(2), arch, 0.25)
    assert not finite and not math.isfinite(loss)
    assert torch.isfinite(hidden).all()
    for name, value in net.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert all(p.grad is None for p in net.parameters())


# -- the path taken off the CPU, where reading a value back waits for the device ----------------------

def as_on_a_gpu(monkeypatch) -> None:
    """Take every decision the way it is taken on an accelerator (``reads_on_host`` False)."""
    monkeypatch.setattr(supernet, "reads_on_host", lambda x: False)


def test_the_clip_backward_without_host_reads_matches_the_reference(monkeypatch):
    """Off the CPU every step takes the clip's general backward (no read of which rows were
    clipped): exact for unclipped rows too, so the gradients still match the per-node reference."""
    as_on_a_gpu(monkeypatch)
    reads = count_reads(monkeypatch)
    rng = random.Random(7)
    for _ in range(2):
        clipped, total = check_against_reference(random_architecture(8, rng), clip_at_median=True)
        assert 0 < clipped < total
    assert not [r for r in reads if r[1] == "tolist"]  # the host path reads the clipped flags once per backward


def test_train_step_without_host_reads_matches_the_host_checked_step(monkeypatch):
    arch = random_architecture(6, random.Random(2))
    tokens = torch.randint(20, (5, 3), generator=torch.Generator().manual_seed(0))
    host, device = make_net(6, 4, scale=0.3), make_net(6, 4, scale=0.3)

    def step(net):
        opt = torch.optim.SGD(net.parameters(), lr=0.5)
        return train_step(net, opt, tokens[:-1], tokens[1:], net.init_hidden(3), arch, 0.25)

    loss, hidden, finite = step(host)
    as_on_a_gpu(monkeypatch)
    reads = count_reads(monkeypatch)
    loss2, hidden2, finite2 = step(device)
    assert reads == []  # nothing waited for
    assert finite.dtype == finite2.dtype == torch.bool and bool(finite) and bool(finite2)
    torch.testing.assert_close(loss2, loss)
    torch.testing.assert_close(hidden2, hidden)
    for (name, a), b in zip(host.named_parameters(), device.parameters()):
        assert not torch.equal(a, make_net(6, 4, scale=0.3).state_dict()[name])  # the step moved it
        torch.testing.assert_close(b, a, rtol=1e-12, atol=1e-14, msg=name)


def test_train_step_without_host_reads_skips_a_non_finite_step_on_the_device(monkeypatch):
    """The backward runs (nothing knows the loss is NaN), the NaN gradients are zeroed by a mask, and
    the SGD step then leaves every weight exactly as it was."""
    as_on_a_gpu(monkeypatch)
    arch = random_architecture(5, random.Random(1))
    net = make_net(5, 8)
    with torch.no_grad():
        net.decoder_bias[3] = math.inf  # every logit row now holds an inf: the loss is NaN
    before = copy.deepcopy(net.state_dict())
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    tokens = torch.randint(20, (4, 2))
    reads = count_reads(monkeypatch)
    loss, hidden, finite = train_step(net, opt, tokens, tokens, net.init_hidden(2), arch, 0.25)
    assert reads == []
    assert not finite and not math.isfinite(loss)
    for name, value in net.state_dict().items():
        assert torch.equal(value, before[name]), name
    assert all(p.grad is not None and not p.grad.any() for p in net.parameters())  # ran, then zeroed


def test_an_optimiser_that_moves_on_a_zero_gradient_is_checked_on_the_host(monkeypatch):
    """With momentum a zero gradient still moves the weights, so the skip cannot be a mask."""
    as_on_a_gpu(monkeypatch)
    arch = random_architecture(5, random.Random(1))
    net = make_net(5, 8)
    opt = torch.optim.SGD(net.parameters(), lr=1.0, momentum=0.9)
    tokens = torch.randint(20, (4, 2))
    train_step(net, opt, tokens, tokens, net.init_hidden(2), arch, 0.25)  # momentum buffers now hold a step
    with torch.no_grad():
        net.decoder_bias[3] = math.inf
    before = copy.deepcopy(net.state_dict())
    reads = count_reads(monkeypatch)
    loss, _, finite = train_step(net, opt, tokens, tokens, net.init_hidden(2), arch, 0.25)
    assert [name for _, name in reads] == ["item"]  # the loss, read once
    assert not finite
    for name, value in net.state_dict().items():
        assert torch.equal(value, before[name]), name


def test_flops_per_token_counts_every_matmul():
    cfg = ModelConfig(num_nodes=12, hidden=64)
    arch = random_architecture(12, random.Random(0))
    base = count_flops_per_token(cfg, 10_000, arch)
    assert count_flops_per_token(cfg, 20_000, arch) - base == pytest.approx(3 * 2 * 64 * 10_000)
    more_nodes = dataclasses.replace(cfg, num_nodes=13)
    extra_edge = count_flops_per_token(more_nodes, 10_000, random_architecture(13)) - base
    assert extra_edge == pytest.approx(3 * 2 * 64 * 128)


def explosive_losses(max_hidden_norm: float, steps: int = 6) -> tuple[list[float], torch.Tensor]:
    """Train an identity/ReLU chain (node 0 identity) with edge and recurrent weights in (-1, 1):
    every node multiplies its input's norm by about sqrt(H / 3) = 3, so the state grows by orders
    of magnitude per time step unless the cell bounds it. Float32, the trainer's step function."""
    arch = Architecture.parse("identity," + ",".join(f"{j}:{'relu' if j % 2 else 'identity'}" for j in range(11)))
    cfg = ModelConfig(num_nodes=12, hidden=32, batch_size=8, bptt=35, max_hidden_norm=max_hidden_norm)
    torch.manual_seed(0)
    net = SuperNet(50, cfg)
    with torch.no_grad():
        net.edges.uniform_(-1, 1)
        net.w_h.uniform_(-1, 1)
    opt = torch.optim.SGD(net.parameters(), lr=10.0)
    data = torch.randint(50, (steps * 35 + 1, 8), generator=torch.Generator().manual_seed(0))
    hidden, losses = net.init_hidden(8), []
    for i in range(0, steps * 35, 35):
        tokens, targets = get_batch(data, i, 35)
        loss, hidden, _ = train_step(net, opt, tokens, targets, hidden, arch, cfg.grad_clip)
        losses.append(loss)
    return losses, hidden


def test_the_per_step_clip_keeps_an_explosive_cell_trainable():
    losses, hidden = explosive_losses(max_hidden_norm=25.0)
    assert all(math.isfinite(x) and x < 2 * math.log(50) for x in losses), losses  # uniform: log 50 = 3.9
    assert hidden.norm(dim=-1).max() <= 25.0 * (1 + 1e-5)
    unclipped, _ = explosive_losses(max_hidden_norm=0.0)  # the same run without the clip explodes
    assert not all(math.isfinite(x) and x < 2 * math.log(50) for x in unclipped), unclipped


# -- memory: what a model keeps between steps ----------------------------------------------------------

SHAPES = ("relu,0:tanh,1:sigmoid,2:identity,3:tanh,4:relu",  # chain
          "sigmoid,0:tanh,0:relu,0:identity,0:tanh,0:sigmoid",  # star
          "tanh,0:relu,0:relu,1:relu,2:relu,1:relu")  # gathered parents


def test_the_workspace_is_reused_across_architectures():
    """Every architecture's forward and backward run in the same buffers, with the same gradients as
    fresh allocations give."""
    net, fresh = make_net(6, 4), make_net(6, 4)
    fresh.workspace = None
    tokens = torch.randint(20, (5, 3), generator=torch.Generator().manual_seed(0))
    pointers = []
    for text in SHAPES * 2:
        arch = Architecture.parse(text)
        for model in (net, fresh):
            model.zero_grad()
            loss, _ = model.loss(tokens[:-1], tokens[1:], model.init_hidden(3), arch)
            loss.backward()
        for name, grad in grads(fresh).items():
            torch.testing.assert_close(grads(net)[name], grad, rtol=0, atol=0, msg=f"{text}: {name}")
        pointers.append(net.workspace.storage_pointers())
        with torch.no_grad():  # the evaluation path uses the same buffers
            net.loss(tokens[:-1], tokens[1:], net.init_hidden(3), arch)
    assert len(pointers[0]) >= 8 and all(p == pointers[0] for p in pointers)


def test_a_second_forward_before_the_first_backward_gets_its_own_buffers():
    net, fresh = make_net(6, 4), make_net(6, 4)
    fresh.workspace = None
    tokens = torch.randint(20, (5, 3), generator=torch.Generator().manual_seed(0))
    a, b = (Architecture.parse(text) for text in SHAPES[:2])
    for model in (net, fresh):
        first, _ = model.loss(tokens[:-1], tokens[1:], model.init_hidden(3), a)
        second, _ = model.loss(tokens[:-1], tokens[1:], model.init_hidden(3), b)  # a's graph is alive
        (first + 2 * second).backward()
    for name, grad in grads(fresh).items():
        torch.testing.assert_close(grads(net)[name], grad, rtol=0, atol=0, msg=name)


def test_what_the_model_keeps_does_not_grow_with_the_architectures_it_has_seen():
    """A search meets a new architecture at nearly every step: the tensors alive between steps
    (cached plans, the workspace) must stay bounded. An unbounded plan cache added 11 per step."""
    def live_tensors() -> int:
        gc.collect()
        return sum(issubclass(type(obj), torch.Tensor) for obj in gc.get_objects())

    make_plan.cache_clear()
    net = make_net(12, 4, scale=0.1)
    opt = torch.optim.SGD(net.parameters(), lr=1.0)
    tokens = torch.randint(20, (4, 2), generator=torch.Generator().manual_seed(0))
    rng = random.Random(0)

    def train(steps: int) -> None:
        for _ in range(steps):
            train_step(net, opt, tokens[:-1], tokens[1:], net.init_hidden(2), random_architecture(12, rng), 0.25)

    train(supernet.PLAN_CACHE + 20)
    settled = live_tensors()
    train(400)
    assert live_tensors() - settled < 400  # plans differ in size (levels); new ones would add ~4,400
