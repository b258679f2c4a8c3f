"""Training throughput of a retrained cell: the standalone model against the supernet on the same cell.

    python benchmarks/retrain.py [--json] [--hidden 64,256] [--seconds S] [--threads N]

Both models train (forward, backward, gradient clipping, plain SGD step) on one fixed 12-node
architecture with the same batch, BPTT and hidden size (the cpu preset's batch 16 and BPTT 35, a
PTB-sized vocabulary, random tokens), in interleaved rounds so that load from other processes hits
both alike. They run the same cell code (supernet.run_cell); the standalone model holds only the
cell's 11 edge weight pairs where the supernet holds all 66, so it skips the per-step gather of the
used pairs, the scatter of their gradients into a full-size gradient, and the clipping and SGD update
of 55 unused pairs. Before timing, the cell's weights are copied from the supernet into the standalone
model and the two are checked to give the same loss and new state with dropouts off.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from torch import Tensor  # noqa: E402

from enas_tui.config import ModelConfig  # noqa: E402
from enas_tui.retrain import settings as retrain_settings  # noqa: E402
from enas_tui.retrain.model import StandaloneModel  # noqa: E402
from enas_tui.search_space import Architecture, random_architecture  # noqa: E402
from enas_tui.supernet import CellLanguageModel, SuperNet, get_batch, train_step  # noqa: E402

VOCAB = 10_000
ROUND_SECONDS = 1.0  # each round runs about this long of the slower model


@dataclasses.dataclass
class Runner:
    """One model's training loop: optimizer, carried state, data cursor, and the time per step of each round."""

    name: str
    model: CellLanguageModel
    arch: Architecture
    data: Tensor
    cfg: ModelConfig
    times: list[float] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=self.cfg.lr)
        self.hidden = torch.zeros(self.cfg.batch_size, self.cfg.hidden)
        self.cursor = 0
        self.warmup_step_s = 1.0

    @property
    def last_step_s(self) -> float:
        return self.times[-1] if self.times else self.warmup_step_s

    def run(self, steps: int, record: bool = True) -> None:
        self.model.train()
        start = time.perf_counter()
        for _ in range(steps):
            tokens, targets = get_batch(self.data, self.cursor, self.cfg.bptt)
            self.cursor = (self.cursor + self.cfg.bptt) % (self.data.shape[0] - self.cfg.bptt - 1)
            _, self.hidden, _ = train_step(self.model, self.optimizer, tokens, targets, self.hidden, self.arch,
                                           self.cfg.grad_clip)
        elapsed = time.perf_counter() - start
        if record:
            self.times.append(elapsed / steps)
        else:
            self.warmup_step_s = elapsed / steps


def check_same_cell(net: SuperNet, model: StandaloneModel, arch: Architecture, data: Tensor,
                    cfg: ModelConfig) -> tuple[float, float]:
    """Relative differences of the loss and the new state on the same weights, dropouts off (eval)."""
    model.copy_from_supernet(net)
    net.eval(), model.eval()
    tokens, targets = get_batch(data, 0, cfg.bptt)
    hidden = torch.zeros(cfg.batch_size, cfg.hidden)
    with torch.no_grad():
        loss, h = model.loss(tokens, targets, hidden, arch)
        ref_loss, ref_h = net.loss(tokens, targets, hidden, arch)
    return (abs(loss.item() - ref_loss.item()) / abs(ref_loss.item()),
            ((h - ref_h).abs().max() / ref_h.abs().max()).item())


def measure(hidden: int, seconds: float, seed: int) -> dict:
    """Tokens/s of both models at one hidden size, timed in interleaved rounds in this process."""
    cfg = dataclasses.replace(retrain_settings.resolve(random_architecture(12, random.Random(seed)), "cpu").model,
                              hidden=hidden)
    arch = random_architecture(cfg.num_nodes, random.Random(seed))
    torch.manual_seed(seed)
    data = torch.randint(VOCAB, (cfg.bptt * 16 + 1, cfg.batch_size))
    net, model = SuperNet(VOCAB, cfg), StandaloneModel(arch, VOCAB, cfg)
    loss_diff, state_diff = check_same_cell(net, model, arch, data, cfg)
    if loss_diff > 1e-6 or state_diff > 1e-5:
        raise SystemExit(f"error: the two models disagree on the same cell (relative difference: loss "
                         f"{loss_diff:.1e}, state {state_diff:.1e})")
    ours, theirs = Runner("standalone", model, arch, data, cfg), Runner("supernet", net, arch, data, cfg)
    ours.run(2, record=False)  # warm-up: allocator, plan cache, first-call paths
    theirs.run(2, record=False)
    budget_end = time.perf_counter() + seconds
    rounds = 0
    while rounds < 2 or time.perf_counter() < budget_end:
        per_round = max(1, round(ROUND_SECONDS / max(ours.last_step_s, theirs.last_step_s)))
        first, second = (ours, theirs) if rounds % 2 == 0 else (theirs, ours)
        first.run(per_round)
        second.run(per_round)
        rounds += 1
    tokens = cfg.bptt * cfg.batch_size
    ratios = [b / a for a, b in zip(ours.times, theirs.times)]
    return {
        "hidden": hidden, "batch_size": cfg.batch_size, "bptt": cfg.bptt, "num_nodes": cfg.num_nodes,
        "vocab": VOCAB, "arch": arch.to_text(),
        "standalone_tokens_per_s": tokens / statistics.fmean(ours.times),
        "supernet_tokens_per_s": tokens / statistics.fmean(theirs.times),
        "speedup": statistics.fmean(theirs.times) / statistics.fmean(ours.times),
        "speedup_median_round": statistics.median(ratios),
        "speedup_range": [min(ratios), max(ratios)],
        "standalone_params": sum(p.numel() for p in model.parameters()),
        "supernet_params": sum(p.numel() for p in net.parameters()),
        "check_loss_rel_diff": loss_diff, "check_state_rel_diff": state_diff, "rounds": rounds,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    parser.add_argument("--hidden", default="64,256", help="hidden sizes, comma-separated (64: the cpu preset)")
    parser.add_argument("--seconds", type=float, default=20.0, help="timing budget per hidden size, both models")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the cpu presets use 1)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    results = [measure(int(h), args.seconds, args.seed) for h in args.hidden.split(",")]
    if args.json:
        print(json.dumps({"torch_threads": torch.get_num_threads(), "results": results}))
        return 0
    for r in results:
        print(f"training one cell, hidden {r['hidden']}, batch {r['batch_size']}, bptt {r['bptt']}, "
              f"{r['num_nodes']} nodes, vocab {r['vocab']}, {torch.get_num_threads()} thread(s)")
        print(f"  cell {r['arch']}; same cell: relative difference of the loss {r['check_loss_rel_diff']:.1e}, "
              f"of the new state {r['check_state_rel_diff']:.1e}")
        print(f"  standalone model {r['standalone_tokens_per_s']:9,.0f} tokens/s  ({r['standalone_params']:,} weights)")
        print(f"  supernet         {r['supernet_tokens_per_s']:9,.0f} tokens/s  ({r['supernet_params']:,} weights)")
        low, high = r["speedup_range"]
        print(f"  standalone / supernet {r['speedup']:.2f}x  (per round median {r['speedup_median_round']:.2f}, "
              f"range {low:.2f}..{high:.2f}, {r['rounds']} rounds)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
