"""Shared-weight training throughput: SuperNet against a plain per-node loop of the same cell.

    python benchmarks/supernet.py [--json] [--hidden H] [--seconds S] [--threads N] [--baseline DIR]

Both implementations train (forward, backward, clip, SGD step) on the same random architectures
(fixed seed, same sequence) at the cpu preset's model settings with a PTB-sized vocabulary and random
tokens, in interleaved rounds so that load from other processes hits both alike (the per-round spread
is printed: on a shared machine it is wide). Before timing, the weights are copied across and the two
are checked to give the same loss and new state with dropouts off. The dense fp32 matmul peak is
measured in the same run, for MFU = model FLOP/s / peak.

``--baseline DIR`` also times the SuperNet of another checkout (say ``git archive main`` unpacked in
DIR) in the same rounds, from the same weights: a before/after ratio that a busy machine's load,
which moves absolute figures by 2x between runs, cannot fake.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import importlib.util
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from enas_tui import config  # noqa: E402
from enas_tui.search_space import Architecture, random_architecture  # noqa: E402
from enas_tui.supernet import SuperNet, count_flops_per_token, edge_index, get_batch, train_step  # noqa: E402

VOCAB = 10_000
ROUND_SECONDS = 1.0  # each round runs about this long of the slower implementation
_ACTS = (torch.tanh, torch.relu, lambda z: z, torch.sigmoid)


class PerNodeNet(nn.Module):
    """The cell written the straightforward way: per time step, per node, one Linear for c and one
    for the pre-activation; the same per-step clip of the state and dropouts as SuperNet; tied
    decoder with a bias."""

    def __init__(self, vocab_size: int, cfg: config.ModelConfig):
        super().__init__()
        h, e = cfg.hidden, cfg.num_nodes * (cfg.num_nodes - 1) // 2
        self.cfg = cfg
        self.encoder = nn.Embedding(vocab_size, h)
        self.decoder_bias = nn.Parameter(torch.zeros(vocab_size))
        self.x_c, self.x_h, self.h_c, self.h_h = (nn.Linear(h, h, bias=False) for _ in range(4))
        self.edge_c = nn.ModuleList(nn.Linear(h, h, bias=False) for _ in range(e))
        self.edge_h = nn.ModuleList(nn.Linear(h, h, bias=False) for _ in range(e))

    @torch.no_grad()
    def copy_from(self, net: SuperNet) -> None:
        h = self.cfg.hidden
        self.encoder.weight.copy_(net.encoder.weight)
        self.decoder_bias.copy_(net.decoder_bias)
        for (c, p), w in (((self.x_c, self.x_h), net.w_x), ((self.h_c, self.h_h), net.w_h)):
            c.weight.copy_(w[:, :h].t())
            p.weight.copy_(w[:, h:].t())
        for k, w in enumerate(net.edges):
            self.edge_c[k].weight.copy_(w[:, :h].t())
            self.edge_h[k].weight.copy_(w[:, h:].t())

    def _drop(self, lin: nn.Linear) -> Tensor:
        return F.dropout(lin.weight, self.cfg.dropconnect, self.training)

    def forward(self, tokens: Tensor, hidden: Tensor, arch: Architecture) -> tuple[Tensor, Tensor]:
        cfg, training = self.cfg, self.training
        weight = self.encoder.weight
        if training and cfg.dropout_emb > 0:
            weight = weight * _mask(weight, (weight.shape[0], 1), cfg.dropout_emb)
        x = F.embedding(tokens, weight)
        if training and cfg.dropout_in > 0:
            x = x * _mask(x, (1, *x.shape[1:]), cfg.dropout_in)
        w_hc, w_hh = self._drop(self.h_c), self._drop(self.h_h)
        edges = {j: (self._drop(self.edge_c[k]), self._drop(self.edge_h[k]))
                 for j in range(1, arch.num_nodes) for k in [edge_index(arch.parents[j - 1], j)]}
        outputs = []
        for t in range(tokens.shape[0]):
            c = torch.sigmoid(self.x_c(x[t]) + F.linear(hidden, w_hc))
            pre = self.x_h(x[t]) + F.linear(hidden, w_hh)
            values = [c * _ACTS[arch.activations[0]](pre) + (1 - c) * hidden]
            for j in range(1, arch.num_nodes):
                parent = values[arch.parents[j - 1]]
                w_c, w_h = edges[j]
                c = torch.sigmoid(F.linear(parent, w_c))
                values.append(c * _ACTS[arch.activations[j]](F.linear(parent, w_h)) + (1 - c) * parent)
            hidden = _clip_rows(torch.stack([values[leaf] for leaf in arch.leaves]).mean(0), cfg.max_hidden_norm)
            outputs.append(hidden)
        out = torch.stack(outputs)
        if training and cfg.dropout_out > 0:
            out = out * _mask(out, (1, *out.shape[1:]), cfg.dropout_out)
        return F.linear(out, self.encoder.weight, self.decoder_bias), hidden

    def loss(self, tokens: Tensor, targets: Tensor, hidden: Tensor,
             arch: Architecture) -> tuple[Tensor, Tensor]:
        logits, hidden = self(tokens, hidden, arch)
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), targets.reshape(-1)), hidden


def _clip_rows(h: Tensor, max_norm: float) -> Tensor:
    """Rows of h with an L2 norm above max_norm rescaled to it (0: off)."""
    if max_norm <= 0:
        return h
    norms = h.norm(dim=-1, keepdim=True)
    return torch.where(norms > max_norm, h * (max_norm / norms), h)


def _mask(like: Tensor, shape: tuple[int, ...], p: float) -> Tensor:
    return like.new_empty(shape).bernoulli_(1 - p) / (1 - p)


def reference_step(model: PerNodeNet, optimizer, tokens, targets, hidden, arch, grad_clip):
    loss, hidden = model.loss(tokens, targets, hidden, arch)
    optimizer.zero_grad()
    loss.backward()
    nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item(), hidden.detach(), True


@dataclasses.dataclass
class Runner:
    """One implementation's training loop state: model, optimizer, hidden, arch sequence, data cursor."""

    name: str
    model: nn.Module
    step_fn: Callable[..., tuple[float, Tensor, bool]]
    data: Tensor
    cfg: config.ModelConfig
    seed: int
    arch_fn: Callable[..., Architecture] = random_architecture
    times: list[float] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=self.cfg.lr)
        self.rng = random.Random(self.seed)
        self.hidden = torch.zeros(self.cfg.batch_size, self.cfg.hidden)
        self.cursor = 0
        self.warmup_step_s = 1.0

    @property
    def last_step_s(self) -> float:
        return self.times[-1] if self.times else self.warmup_step_s

    def run(self, steps: int, record: bool = True) -> None:
        start = time.perf_counter()
        for _ in range(steps):
            arch = self.arch_fn(self.cfg.num_nodes, self.rng)
            tokens, targets = get_batch(self.data, self.cursor, self.cfg.bptt)
            self.cursor = (self.cursor + self.cfg.bptt) % (self.data.shape[0] - self.cfg.bptt - 1)
            _, self.hidden, _ = self.step_fn(self.model, self.optimizer, tokens, targets, self.hidden,
                                             arch, self.cfg.grad_clip)
        elapsed = time.perf_counter() - start
        if record:
            self.times.append(elapsed / steps)
        else:
            self.warmup_step_s = elapsed / steps


def baseline_runner(path: Path, net: SuperNet, data: Tensor, cfg: config.ModelConfig, seed: int) -> Runner:
    """The SuperNet and train_step of the checkout at ``path``, imported as ``baseline_enas_tui``,
    starting from ``net``'s weights."""
    init = path / "enas_tui" / "__init__.py"
    if not init.is_file():
        raise SystemExit(f"error: --baseline {path}: no enas_tui package there")
    spec = importlib.util.spec_from_file_location("baseline_enas_tui", init,
                                                  submodule_search_locations=[str(init.parent)])
    package = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = package
    spec.loader.exec_module(package)
    supernet = importlib.import_module("baseline_enas_tui.supernet")
    space = importlib.import_module("baseline_enas_tui.search_space")
    model = supernet.SuperNet(VOCAB, cfg)
    model.load_state_dict(net.state_dict())
    return Runner("baseline", model, supernet.train_step, data, cfg, seed, arch_fn=space.random_architecture)


def matmul_peak_gflops(n: int = 2048, repeats: int = 4) -> float:
    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.mm(a, b)
    best = min(_timed(lambda: torch.mm(a, b)) for _ in range(repeats))
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def check_same_model(net: SuperNet, ref: PerNodeNet, data: Tensor, cfg: config.ModelConfig,
                     seed: int) -> tuple[float, float]:
    """Relative differences of the loss and of the new state (the loss alone barely sees the cell at
    init, when every prediction is near uniform) on the same weights and architecture, dropouts off."""
    ref.copy_from(net)
    net.eval(), ref.eval()
    arch = random_architecture(cfg.num_nodes, random.Random(seed))
    tokens, targets = get_batch(data, 0, cfg.bptt)
    hidden = torch.zeros(cfg.batch_size, cfg.hidden)
    with torch.no_grad():
        loss, h = net.loss(tokens, targets, hidden, arch)
        ref_loss, ref_h = ref.loss(tokens, targets, hidden, arch)
    net.train(), ref.train()
    loss_diff = abs(loss.item() - ref_loss.item()) / abs(ref_loss.item())
    return loss_diff, ((h - ref_h).abs().max() / ref_h.abs().max()).item()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--hidden", type=int, default=None, help="hidden size (default: the cpu preset's)")
    parser.add_argument("--seconds", type=float, default=30.0, help="timing budget, both implementations")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--baseline", type=Path, default=None,
                        help="another checkout whose SuperNet is timed in the same rounds")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    cfg = config.resolve("supervised", "cpu").model
    if args.hidden is not None:
        cfg = dataclasses.replace(cfg, hidden=args.hidden)
    data = torch.randint(VOCAB, (cfg.bptt * 16 + 1, cfg.batch_size))
    net, ref = SuperNet(VOCAB, cfg), PerNodeNet(VOCAB, cfg)
    loss_diff, state_diff = check_same_model(net, ref, data, cfg, args.seed)
    if loss_diff > 1e-5 or state_diff > 1e-4:
        print(f"error: the two implementations disagree (relative difference: loss {loss_diff:.1e}, "
              f"state {state_diff:.1e})", file=sys.stderr)
        return 1

    baseline = args.baseline and baseline_runner(args.baseline.resolve(), net, data, cfg, args.seed)
    ours = Runner("supernet", net, train_step, data, cfg, args.seed)
    theirs = Runner("per-node loop", ref, reference_step, data, cfg, args.seed)
    runners = [ours, theirs] + ([baseline] if baseline else [])
    for runner in runners:  # warm-up: allocator, plan cache, first-call paths
        runner.run(1 if runner is theirs else 2, record=False)
    peak = matmul_peak_gflops()
    budget_end = time.perf_counter() + args.seconds
    rounds = per_round = 0
    while rounds < 2 or time.perf_counter() < budget_end:
        slowest = max(runner.last_step_s for runner in runners)
        per_round = max(1, round(ROUND_SECONDS / slowest))  # re-sized as the machine's load changes
        shift = rounds % len(runners)  # each implementation goes first in turn
        for runner in runners[shift:] + runners[:shift]:
            runner.run(per_round)
        rounds += 1

    tokens_per_step = cfg.bptt * cfg.batch_size
    rate = tokens_per_step / statistics.fmean(ours.times)
    ref_rate = tokens_per_step / statistics.fmean(theirs.times)
    flops = count_flops_per_token(cfg, VOCAB, random_architecture(cfg.num_nodes))
    result = {
        "tokens_per_s": rate,
        "reference_tokens_per_s": ref_rate,
        "speedup": rate / ref_rate,
        "speedup_per_round": [b / a for a, b in zip(ours.times, theirs.times)],
        "speedup_median_round": statistics.median(b / a for a, b in zip(ours.times, theirs.times)),
        "tokens_per_s_range": [tokens_per_step / t for t in (max(ours.times), min(ours.times))],
        "reference_tokens_per_s_range": [tokens_per_step / t for t in (max(theirs.times), min(theirs.times))],
        "mfu": flops * rate / (peak * 1e9),
        "reference_mfu": flops * ref_rate / (peak * 1e9),
        "model_gflops_per_token": flops / 1e9,
        "peak_gflops": peak,
        "check_loss_rel_diff": loss_diff,
        "check_state_rel_diff": state_diff,
        "rounds": rounds,
        "steps_last_round": per_round,
        "hidden": cfg.hidden,
        "batch_size": cfg.batch_size,
        "bptt": cfg.bptt,
        "num_nodes": cfg.num_nodes,
        "vocab": VOCAB,
        "torch_threads": torch.get_num_threads(),
    }
    if baseline:
        per_round = [b / a for a, b in zip(ours.times, baseline.times)]
        result.update(baseline=str(args.baseline),
                      baseline_tokens_per_s=tokens_per_step / statistics.fmean(baseline.times),
                      speedup_vs_baseline=statistics.fmean(baseline.times) / statistics.fmean(ours.times),
                      speedup_vs_baseline_median_round=statistics.median(per_round),
                      speedup_vs_baseline_range=[min(per_round), max(per_round)])
    if args.json:
        print(json.dumps(result))
    else:
        _print(result)
    return 0


def _print(r: dict) -> None:
    spread = r["speedup_per_round"]
    print(f"shared-weight training, hidden {r['hidden']}, batch {r['batch_size']}, bptt {r['bptt']}, "
          f"{r['num_nodes']} nodes, vocab {r['vocab']}, {r['torch_threads']} threads")
    print(f"  same model: relative difference of the loss {r['check_loss_rel_diff']:.1e}, "
          f"of the new state {r['check_state_rel_diff']:.1e}")
    print(f"  SuperNet      {r['tokens_per_s']:9,.0f} tokens/s  (rounds {r['tokens_per_s_range'][0]:,.0f}"
          f"..{r['tokens_per_s_range'][1]:,.0f})  MFU {100 * r['mfu']:.1f}%")
    print(f"  per-node loop {r['reference_tokens_per_s']:9,.0f} tokens/s  (rounds "
          f"{r['reference_tokens_per_s_range'][0]:,.0f}..{r['reference_tokens_per_s_range'][1]:,.0f})  "
          f"MFU {100 * r['reference_mfu']:.1f}%")
    print(f"  speedup {r['speedup']:.2f}x  (per round median {r['speedup_median_round']:.2f}, "
          f"range {min(spread):.2f}..{max(spread):.2f}, {r['rounds']} rounds)")
    if "baseline" in r:
        low, high = r["speedup_vs_baseline_range"]
        print(f"  baseline      {r['baseline_tokens_per_s']:9,.0f} tokens/s  ({r['baseline']}): SuperNet is "
              f"{r['speedup_vs_baseline']:.3f}x (per round median {r['speedup_vs_baseline_median_round']:.3f}, "
              f"range {low:.2f}..{high:.2f})")
    print(f"  matmul peak {r['peak_gflops']:.0f} GFLOP/s; "
          f"model {r['model_gflops_per_token'] * 1e3:.2f} MFLOP/token")


if __name__ == "__main__":
    sys.exit(main())
