import math

import pytest
import torch

from enas_tui.config import ControllerConfig
from enas_tui.controller import Controller, decisions_tensor
from enas_tui.search_space import decision_sizes


def make(num_nodes=12, seed=0, **kw):
    torch.manual_seed(seed)
    return Controller(num_nodes, ControllerConfig(**kw))


def test_sampling_is_batched_and_well_formed():
    ctrl = make()
    out = ctrl.sample(64, generator=torch.Generator().manual_seed(1))
    sizes = decision_sizes(12)
    assert out.decisions.shape == (64, 23)
    assert out.hidden.shape == (64, 100)
    for step, size in enumerate(sizes):
        assert int(out.decisions[:, step].max()) < size
    probs = out.probs()
    assert probs.shape == (64, 23, 11)
    assert torch.allclose(probs.sum(-1), torch.ones(64, 23))
    for step, size in enumerate(sizes):  # padding beyond a decision's options is exactly zero
        assert float(probs[:, step, size:].detach().abs().sum()) == 0.0
    assert len(out.architectures()) == 64


def test_sampled_log_prob_equals_teacher_forced_log_prob_exactly():
    ctrl = make()
    sampled = ctrl.sample(50, generator=torch.Generator().manual_seed(7))
    scored = ctrl.score(sampled.decisions)
    assert torch.equal(scored.log_probs, sampled.log_probs)
    assert torch.equal(scored.hidden, sampled.hidden)
    assert torch.equal(scored.probs(), sampled.probs())


def test_scoring_given_architectures_round_trips_through_text():
    ctrl = make()
    archs = ctrl.sample(10, generator=torch.Generator().manual_seed(3)).architectures()
    again = decisions_tensor(archs)
    assert torch.equal(ctrl.score(again).decisions, again)


def test_same_generator_seed_gives_same_samples():
    ctrl = make()
    a = ctrl.sample(20, generator=torch.Generator().manual_seed(5)).decisions
    b = ctrl.sample(20, generator=torch.Generator().manual_seed(5)).decisions
    assert torch.equal(a, b)


def test_logits_are_divided_by_the_temperature_then_squashed():
    """With a head that outputs fixed raw logits, the distribution's logits are exactly
    raw / 5 (no tanh constant) and 2.5 tanh(raw / 5) (ENAS's defaults)."""
    raw = torch.tensor([10.0, -5.0, 2.5, 0.0])
    for tanh_constant, expected in ((0.0, raw / 5.0), (2.5, 2.5 * torch.tanh(raw / 5.0))):
        ctrl = make(temperature=5.0, tanh_constant=tanh_constant)
        with torch.no_grad():
            ctrl.heads[0].weight.zero_()
            ctrl.heads[0].bias.copy_(raw)
        out = ctrl.sample(3, generator=torch.Generator().manual_seed(0))
        assert torch.equal(out.logits[0], expected.expand(3, 4))
    assert torch.allclose(expected, torch.tensor([2.4100, -1.9040, 1.1553, 0.0]), atol=1e-4)


def test_supervised_loss_falls_on_a_fixed_buffer():
    ctrl = make(num_nodes=6)
    targets = make(num_nodes=6, seed=1).sample(32, generator=torch.Generator().manual_seed(2)).decisions
    opt = torch.optim.Adam(ctrl.parameters(), lr=3e-3)
    losses = []
    for _ in range(150):
        loss = ctrl.supervised_loss(targets)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.6 * losses[0]


def test_supervised_loss_covers_the_first_decision():
    # Only decision 0 differs between the two buffers: if the first decision were not predicted
    # (a quirk of the authors' code), both losses would be equal.
    ctrl = make(num_nodes=4)
    base = ctrl.sample(16, generator=torch.Generator().manual_seed(4)).decisions
    other = base.clone()
    other[:, 0] = (base[:, 0] + 1) % 4
    with torch.no_grad():
        assert float(ctrl.supervised_loss(base)) != float(ctrl.supervised_loss(other))


def _hand_cross_entropy(ctrl, decisions):
    """-log softmax(logits)[target] for every (architecture, decision), from a hand-run LSTM pass
    in training mode (temperature, then the tanh constant): an (n, D) matrix of nats."""
    n = decisions.shape[0]
    h = torch.zeros(n, ctrl.cfg.hidden)
    c = torch.zeros_like(h)
    x = torch.zeros_like(h)
    out = []
    for step in range(ctrl.num_decisions):
        h, c = ctrl.lstm(x, (h, c))
        logits = ctrl.cfg.tanh_constant * torch.tanh(ctrl.heads[step](h) / ctrl.cfg.temperature)
        log_p = logits - torch.logsumexp(logits, dim=1, keepdim=True)
        out.append(-log_p[torch.arange(n), decisions[:, step]])
        x = ctrl.embed(decisions[:, step] + ctrl.token_offset[step])
    return torch.stack(out, dim=1)


def test_supervised_loss_is_the_cross_entropy_of_the_logits_mean_or_sum_over_decisions():
    ctrl = make(num_nodes=5)
    targets = make(num_nodes=5, seed=3).sample(9, generator=torch.Generator().manual_seed(8)).decisions
    with torch.no_grad():
        nats = _hand_cross_entropy(ctrl, targets)  # (9, 9)
        mean, total = ctrl.supervised_loss(targets), ctrl.supervised_loss(targets, reduction="sum")
    assert nats.shape == (9, 9)
    # the authors' scale: averaged over decisions and architectures; the old one summed decisions
    assert float(mean) == pytest.approx(float(nats.mean()), rel=1e-6)
    assert float(total) == pytest.approx(float(nats.sum(dim=1).mean()), rel=1e-6)
    assert float(total) == pytest.approx(9 * float(mean), rel=1e-6)
    # what the authors' quirks would have given instead, and each differs from ours
    without_first = float(nats[:, 1:].mean())
    assert abs(float(mean) - without_first) > 1e-3
    with torch.no_grad():
        out = ctrl.score(targets)
        # cross-entropy applied to softmax probabilities instead of logits
        on_probs = torch.stack([torch.nn.functional.cross_entropy(torch.softmax(logit, -1), targets[:, step])
                                for step, logit in enumerate(out.logits)]).mean()
    assert abs(float(mean) - float(on_probs)) > 1e-3
    with pytest.raises(ValueError, match="reduction"):
        ctrl.supervised_loss(targets, reduction="none")


def test_supervised_loss_at_the_start_is_about_the_uniform_cross_entropy():
    # untrained, the distributions are near uniform: mean ~ average log(options); the sum ~ 23x that
    ctrl = make()
    targets = ctrl.sample(100, generator=torch.Generator().manual_seed(9)).decisions
    with torch.no_grad():
        mean = float(ctrl.supervised_loss(targets))
        total = float(ctrl.supervised_loss(targets, reduction="sum"))
    uniform = [math.log(size) for size in decision_sizes(12)]
    assert mean == pytest.approx(sum(uniform) / len(uniform), rel=0.05)  # ~1.5 nats
    assert total == pytest.approx(sum(uniform), rel=0.05)  # ~34 nats


# -- probe modes and states ----------------------------------------------------------------
def test_derive_mode_probabilities_are_softmax_of_logits_over_temperature_exactly():
    ctrl = make(num_nodes=6, temperature=5.0, tanh_constant=2.5)
    with torch.no_grad():
        out = ctrl.sample(10, generator=torch.Generator().manual_seed(1), mode="derive")
        decisions = out.decisions
        h = torch.zeros(10, ctrl.cfg.hidden)
        c = torch.zeros_like(h)
        x = torch.zeros_like(h)
        for step, size in enumerate(decision_sizes(6)):
            h, c = ctrl.lstm(x, (h, c))
            expected = torch.softmax(ctrl.heads[step](h) / 5.0, dim=-1)
            assert torch.equal(out.probs()[:, step, :size], expected), step
            x = ctrl.embed(decisions[:, step] + ctrl.token_offset[step])
        train = ctrl.score(decisions, mode="train")
    assert out.mode == "derive" and train.mode == "train"
    assert not torch.allclose(train.probs(), out.probs())  # the tanh constant changes the distributions


def test_derive_mode_can_pass_the_tanh_ceiling():
    # with 2.5 tanh the top probability of 4 options cannot pass e^2.5 / (e^2.5 + 3 e^-2.5) ~ 0.982
    ctrl = make(num_nodes=3)
    with torch.no_grad():
        ctrl.heads[0].weight.zero_()
        ctrl.heads[0].bias.copy_(torch.tensor([100.0, -100.0, -100.0, -100.0]))
        derive = ctrl.sample(4, generator=torch.Generator().manual_seed(0), mode="derive").probs()
        train = ctrl.sample(4, generator=torch.Generator().manual_seed(0), mode="train").probs()
    ceiling = math.exp(2.5) / (math.exp(2.5) + 3 * math.exp(-2.5))
    assert float(train[:, 0].max()) == pytest.approx(ceiling, rel=1e-5)
    assert float(derive[:, 0].max()) > 0.999


def test_final_state_emit_last_never_sees_the_last_decision_after_last_does():
    ctrl = make(num_nodes=4)
    base = ctrl.sample(6, generator=torch.Generator().manual_seed(2)).decisions
    other = base.clone()
    other[:, -1] = (base[:, -1] + 1) % 4  # only the last decision (node 3's activation) differs
    with torch.no_grad():
        emit = [ctrl.score(d, state="emit_last").hidden for d in (base, other)]
        after = [ctrl.score(d, state="after_last").hidden for d in (base, other)]
        # after_last is one more cell step on the last decision's embedding, by hand
        out = ctrl.score(base)
        h, c = torch.zeros(6, ctrl.cfg.hidden), torch.zeros(6, ctrl.cfg.hidden)
        x = torch.zeros_like(h)
        for step in range(ctrl.num_decisions):
            h, c = ctrl.lstm(x, (h, c))
            x = ctrl.embed(base[:, step] + ctrl.token_offset[step])
        assert torch.equal(h, out.hidden)  # emit_last: the output that emitted the last decision
        expected_after = ctrl.lstm(x, (h, c))[0]
    assert torch.equal(emit[0], emit[1])
    assert not torch.allclose(after[0], after[1])
    assert torch.equal(after[0], expected_after)
    with pytest.raises(ValueError, match="state"):
        ctrl.score(base, state="last")


def test_greedy_picks_argmax_at_each_step():
    ctrl = make(num_nodes=5)
    arch = ctrl.greedy()
    out = ctrl.score(decisions_tensor([arch]))
    for step, logits in enumerate(out.logits):
        assert int(logits.argmax()) == arch.decisions()[step]
