"""Speed of the search: SuperNet against a plain per-node implementation of the same cell, on one device.

    python benchmarks/supernet.py [--mode shared|controller|epoch|all] [--device cpu|cuda|cuda:N]
                                  [--preset cpu|paper] [--hidden H] [--precision ieee|tf32]
                                  [--seconds S] [--threads N] [--baseline DIR] [--json]
    # on a GPU, the issue's figures:  python benchmarks/supernet.py --device cuda --preset paper --mode all
    # every mode on the CPU, small:   python benchmarks/supernet.py --mode all --seconds 4 --train-tokens 20000

Modes (each runs SuperNet and the per-node reference on the same device, in the same run):

- ``shared``: tokens/s of shared-weight training (forward, backward, clip, SGD step; both through
  ``supernet.train_step``) on the same random architectures, in interleaved rounds so that load
  from other processes hits both alike, with the achieved FLOP/s against the device's measured
  matmul peak. Before timing, the weights are copied across and the two are checked to give the
  same loss and new state with dropouts off. ``--baseline DIR`` also times the SuperNet of another
  checkout (say ``git worktree add DIR main``) in the same rounds, from the same weights.
- ``controller``: controller steps per second, the trainer's own step (sample, reward on a
  validation minibatch for each sampled architecture, REINFORCE update), in interleaved rounds.
- ``epoch``: one whole epoch of the trainer, end to end (shared pass, controller steps, probes
  with their performance column, validation, the epoch checkpoint), on PTB-shaped random data
  (929,589 training tokens and 73,760 validation tokens by default, a 10k vocabulary), with the
  time of each phase and the FLOP/s achieved.

On CUDA the device is synchronised at the edges of every timed region (and the phases of the
epoch), never inside them, so queued work is counted where it runs. The ``paper`` preset is the
default on CUDA, ``cpu`` elsewhere.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import importlib
import importlib.util
import json
import platform
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import Tensor, nn  # noqa: E402

from enas_tui import config  # noqa: E402
from enas_tui.data import Corpus  # noqa: E402
from enas_tui.search_space import Architecture, random_architecture  # noqa: E402
from enas_tui.session_log import LogWriter  # noqa: E402
from enas_tui.sessions import create_session  # noqa: E402
from enas_tui.supernet import SuperNet, count_flops_per_token, edge_index, get_batch, train_step  # noqa: E402
from enas_tui.trainer import DeviceError, Recorder, Trainer, pick_device  # noqa: E402

VOCAB = 10_000
PTB_TRAIN_TOKENS = 929_589  # words and end-of-sentence markers of ptb.train.txt
PTB_VALID_TOKENS = 73_760
ROUND_SECONDS = 1.0  # each round runs about this long of the slower implementation
TARGETS = {"epoch_s": 30.0, "epoch_speedup": 3.0}  # the issue's, for a paper-preset epoch on one H100
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

    perplexity = SuperNet.perplexity  # eval mode, state carried over BPTT chunks: only self.loss differs

    def init_hidden(self, batch_size: int) -> Tensor:
        return self.encoder.weight.new_zeros(batch_size, self.cfg.hidden)

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


# -- timing -----------------------------------------------------------------------------------------

def sync(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU, where every op has finished)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def clock(device: torch.device) -> float:
    sync(device)
    return time.perf_counter()


def matmul_peak_gflops(device: torch.device) -> float:
    """The best fp32 matmul rate (at the current matmul precision) of a square product."""
    n = 8192 if device.type == "cuda" else 2048
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(5):
        start = clock(device)
        torch.mm(a, b)
        best = min(best, clock(device) - start)
    return 2 * n ** 3 / best / 1e9


def interleaved(runners: list, steps_for: Callable[[float], int], budget_s: float) -> int:
    """Run every runner in rounds of about ROUND_SECONDS of the slowest, each going first in turn,
    until ``budget_s`` is spent (at least two rounds); returns the number of rounds."""
    budget_end = time.perf_counter() + budget_s
    rounds = 0
    while rounds < 2 or time.perf_counter() < budget_end:
        per_round = steps_for(max(runner.last_step_s for runner in runners))
        shift = rounds % len(runners)
        for runner in runners[shift:] + runners[:shift]:
            runner.run(per_round)
        rounds += 1
    return rounds


# -- shared-weight training ------------------------------------------------------------------------

@dataclasses.dataclass
class Runner:
    """One implementation's training loop state: model, optimizer, hidden, arch sequence, data cursor."""

    name: str
    model: nn.Module
    step_fn: Callable[..., tuple]
    data: Tensor
    cfg: config.ModelConfig
    seed: int
    arch_fn: Callable[..., Architecture] = random_architecture
    times: list[float] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        self.device = self.data.device
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=self.cfg.lr)
        self.rng = random.Random(self.seed)
        self.hidden = torch.zeros(self.cfg.batch_size, self.cfg.hidden, device=self.device)
        self.cursor = 0
        self.warmup_step_s = 1.0

    @property
    def last_step_s(self) -> float:
        return self.times[-1] if self.times else self.warmup_step_s

    def run(self, steps: int, record: bool = True) -> None:
        start = clock(self.device)
        for _ in range(steps):
            arch = self.arch_fn(self.cfg.num_nodes, self.rng)
            tokens, targets = get_batch(self.data, self.cursor, self.cfg.bptt)
            self.cursor = (self.cursor + self.cfg.bptt) % (self.data.shape[0] - self.cfg.bptt - 1)
            _, self.hidden, _ = self.step_fn(self.model, self.optimizer, tokens, targets, self.hidden,
                                             arch, self.cfg.grad_clip)
        elapsed = clock(self.device) - start
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
    model = supernet.SuperNet(VOCAB, cfg).to(data.device)
    model.load_state_dict(net.state_dict())
    return Runner("baseline", model, supernet.train_step, data, cfg, seed, arch_fn=space.random_architecture)


def check_same_model(net: SuperNet, ref: PerNodeNet, data: Tensor, cfg: config.ModelConfig,
                     seed: int) -> tuple[float, float]:
    """Relative differences of the loss and of the new state (the loss alone barely sees the cell at
    init, when every prediction is near uniform) on the same weights and architecture, dropouts off,
    in full fp32 whatever the timing precision."""
    ref.copy_from(net)
    net.eval(), ref.eval()
    arch = random_architecture(cfg.num_nodes, random.Random(seed))
    tokens, targets = get_batch(data, 0, cfg.bptt)
    hidden = torch.zeros(cfg.batch_size, cfg.hidden, device=data.device)
    with torch.no_grad(), matmul_precision(data.device, "ieee"):
        loss, h = net.loss(tokens, targets, hidden, arch)
        ref_loss, ref_h = ref.loss(tokens, targets, hidden, arch)
    net.train(), ref.train()
    loss_diff = abs(loss.item() - ref_loss.item()) / abs(ref_loss.item())
    return loss_diff, ((h - ref_h).abs().max() / ref_h.abs().max()).item()


def bench_shared(cfg: config.ModelConfig, device: torch.device, args, peak: float) -> dict:
    data = torch.randint(VOCAB, (cfg.bptt * 16 + 1, cfg.batch_size), device=device)
    net, ref = SuperNet(VOCAB, cfg).to(device), PerNodeNet(VOCAB, cfg).to(device)
    loss_diff, state_diff = check_same_model(net, ref, data, cfg, args.seed)
    if loss_diff > 1e-5 or state_diff > 1e-4:
        raise SystemExit(f"error: the two implementations disagree (relative difference: loss {loss_diff:.1e}, "
                         f"state {state_diff:.1e})")
    baseline = args.baseline and baseline_runner(args.baseline.resolve(), net, data, cfg, args.seed)
    ours = Runner("supernet", net, train_step, data, cfg, args.seed)
    theirs = Runner("per-node", ref, train_step, data, cfg, args.seed)
    runners = [ours, theirs] + ([baseline] if baseline else [])
    for runner in runners:  # warm-up: allocator, plan cache, first-call paths
        runner.run(1 if runner is theirs else 2, record=False)
    rounds = interleaved(runners, lambda slowest: max(1, round(ROUND_SECONDS / slowest)), args.seconds)
    tokens_per_step = cfg.bptt * cfg.batch_size
    rate = tokens_per_step / statistics.fmean(ours.times)
    ref_rate = tokens_per_step / statistics.fmean(theirs.times)
    flops = count_flops_per_token(cfg, VOCAB, random_architecture(cfg.num_nodes))
    ratios = [b / a for a, b in zip(ours.times, theirs.times)]
    result = {
        "tokens_per_s": rate, "reference_tokens_per_s": ref_rate, "speedup": rate / ref_rate,
        "speedup_per_round": ratios, "speedup_median_round": statistics.median(ratios),
        "tokens_per_s_range": [tokens_per_step / t for t in (max(ours.times), min(ours.times))],
        "reference_tokens_per_s_range": [tokens_per_step / t for t in (max(theirs.times), min(theirs.times))],
        "gflops_per_s": flops * rate / 1e9, "mfu": flops * rate / (peak * 1e9),
        "reference_mfu": flops * ref_rate / (peak * 1e9), "model_gflops_per_token": flops / 1e9,
        "check_loss_rel_diff": loss_diff, "check_state_rel_diff": state_diff, "rounds": rounds,
    }
    if baseline:
        per_round = [b / a for a, b in zip(ours.times, baseline.times)]
        result.update(baseline=str(args.baseline),
                      baseline_tokens_per_s=tokens_per_step / statistics.fmean(baseline.times),
                      speedup_vs_baseline=statistics.fmean(baseline.times) / statistics.fmean(ours.times),
                      speedup_vs_baseline_per_round=per_round,
                      speedup_vs_baseline_median_round=statistics.median(per_round),
                      speedup_vs_baseline_range=[min(per_round), max(per_round)])
    return result


# -- the trainer: controller steps and whole epochs ------------------------------------------------

def ptb_shaped(train_tokens: int, valid_tokens: int, seed: int) -> Corpus:
    """Random tokens in PTB's shape: a 10k vocabulary and the given split sizes (the cost of a step
    does not depend on which words it reads)."""
    rng = np.random.default_rng(seed)
    return Corpus(vocab=[f"w{i}" for i in range(VOCAB)], train=rng.integers(VOCAB, size=train_tokens),
                  valid=rng.integers(VOCAB, size=valid_tokens), test=rng.integers(VOCAB, size=valid_tokens),
                  source="PTB-shaped random tokens")


class TimedTrainer(Trainer):
    """The trainer, adding up wall time per phase (``Trainer.phase``), the device synchronised at
    each change of phase only; and counting the tokens its model trains on and evaluates."""

    def __init__(self, *args, **kwargs):
        self.phase_s: dict[str, float] = collections.defaultdict(float)
        self.tokens = {"train": 0, "eval": 0}
        self._phase, self._since = None, None
        super().__init__(*args, **kwargs)

    @property
    def phase(self) -> str | None:
        return self._phase

    @phase.setter
    def phase(self, value: str) -> None:
        if value == self._phase:
            return
        now = clock(self.device) if hasattr(self, "device") else time.perf_counter()
        if self._phase is not None and self._since is not None:
            self.phase_s[self._phase] += now - self._since
        self._phase, self._since = value, now

    def use_model(self, model: nn.Module) -> None:
        """Train and evaluate ``model`` (the reference) instead of the SuperNet it was built with."""
        self.net = model
        self.shared_opt = torch.optim.SGD(model.parameters(), lr=self.s.model.lr)

    def count_tokens(self) -> None:
        loss = self.net.loss

        def counted(tokens, targets, hidden, arch):
            self.tokens["train" if torch.is_grad_enabled() else "eval"] += targets.numel()
            return loss(tokens, targets, hidden, arch)

        self.net.loss = counted


def make_trainer(settings: config.Settings, corpus: Corpus, device: torch.device, root: Path,
                 reference: bool) -> TimedTrainer:
    session = create_session(root, settings.controller)
    trainer = TimedTrainer(settings, corpus, session, Recorder(LogWriter(session.log_path)), device)
    if reference:
        model = PerNodeNet(corpus.vocab_size, settings.model).to(device)
        model.copy_from(trainer.net)
        trainer.use_model(model)
    trainer._start()
    trainer._probe(0)  # warm-up: the diagnostics' first-call costs (imports) land outside the timing
    trainer.probes = 0
    trainer.count_tokens()
    return trainer


@dataclasses.dataclass
class ControllerRunner:
    """Controller steps of one trainer, timed as Runner times shared steps."""

    trainer: TimedTrainer
    times: list[float] = dataclasses.field(default_factory=list)
    warmup_step_s: float = 1.0

    @property
    def last_step_s(self) -> float:
        return self.times[-1] if self.times else self.warmup_step_s

    def run(self, steps: int, record: bool = True) -> None:
        start = clock(self.trainer.device)
        for _ in range(steps):
            self.trainer._controller_step(1)
        elapsed = (clock(self.trainer.device) - start) / steps
        if record:
            self.times.append(elapsed)
        else:
            self.warmup_step_s = elapsed


def bench_controller(settings: config.Settings, device: torch.device, args, root: Path) -> dict:
    """The trainer's controller step (sample, reward, update), ours against the reference's; probes
    are left to the epoch mode (``train.probe_every`` out of reach)."""
    settings = dataclasses.replace(settings, train=dataclasses.replace(settings.train, probe_every=10 ** 9))
    corpus = ptb_shaped(64 * settings.model.batch_size, args.valid_tokens, args.seed)  # training data unused
    runners = [ControllerRunner(make_trainer(settings, corpus, device, root, reference))
               for reference in (False, True)]
    for runner in runners:
        runner.run(2, record=False)
    rounds = interleaved(runners, lambda slowest: max(1, round(ROUND_SECONDS / slowest)), args.seconds)
    ours, theirs = (statistics.fmean(r.times) for r in runners)
    ratios = [b / a for a, b in zip(runners[0].times, runners[1].times)]
    for runner in runners:
        runner.trainer.record.writer.close()
    return {"steps_per_s": 1 / ours, "reference_steps_per_s": 1 / theirs, "speedup": theirs / ours,
            "speedup_median_round": statistics.median(ratios), "architectures_per_step": settings.ctrl.batch_size,
            "eval_batch_size": settings.model.eval_batch_size, "rounds": rounds}


def bench_epoch(settings: config.Settings, device: torch.device, args, root: Path, peak: float) -> dict:
    """One whole epoch (the first of two, so no derivation) of ours, then of the reference."""
    settings = dataclasses.replace(settings, train=dataclasses.replace(settings.train, epochs=2))
    if args.ctrl_steps is not None:
        settings = dataclasses.replace(settings, ctrl=dataclasses.replace(settings.ctrl, steps_per_epoch=args.ctrl_steps))
    corpus = ptb_shaped(args.train_tokens, args.valid_tokens, args.seed)
    out = {}
    for name, reference in (("supernet", False), ("per_node", True)):
        trainer = make_trainer(settings, corpus, device, root / name, reference)
        start = clock(device)
        trainer._run_epoch()
        trainer.phase = "done"  # closes the last phase (validation, with the checkpoint)
        elapsed = clock(device) - start
        trainer.record.writer.close()
        flops = count_flops_per_token(settings.model, VOCAB, random_architecture(settings.model.num_nodes))
        total = flops * trainer.tokens["train"] + flops / 3 * trainer.tokens["eval"]
        phases = {k: round(v, 3) for k, v in trainer.phase_s.items() if k not in ("setup", "done")}
        out[name] = {"epoch_s": elapsed, "phases_s": phases, "shared_steps": trainer.shared_steps_per_epoch,
                     "controller_steps": trainer.ctrl_steps_per_epoch, "probes": trainer.probes,
                     "tokens_trained": trainer.tokens["train"], "tokens_evaluated": trainer.tokens["eval"],
                     "gflops_per_s": total / elapsed / 1e9, "mfu": total / elapsed / (peak * 1e9)}
        del trainer
        if device.type == "cuda":
            torch.cuda.empty_cache()
    out["speedup"] = out["per_node"]["epoch_s"] / out["supernet"]["epoch_s"]
    out["train_tokens"], out["valid_tokens"] = args.train_tokens, args.valid_tokens
    return out


# -- main ------------------------------------------------------------------------------------------

class matmul_precision:
    """Set CUDA's fp32 matmul precision ("ieee" or "tf32") for a block; a no-op on the CPU."""

    def __init__(self, device: torch.device, value: str):
        self.device, self.value, self.saved = device, value, None

    def __enter__(self):
        if self.device.type == "cuda":
            self.saved = torch.backends.cuda.matmul.fp32_precision
            torch.backends.cuda.matmul.fp32_precision = self.value
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            torch.backends.cuda.matmul.fp32_precision = self.saved


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("shared", "controller", "epoch", "all"), default="shared")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or auto")
    parser.add_argument("--preset", choices=config.PRESETS, default=None,
                        help="model settings (default: paper on CUDA, cpu elsewhere)")
    parser.add_argument("--hidden", type=int, default=None, help="hidden size (default: the preset's)")
    parser.add_argument("--precision", choices=("ieee", "tf32"), default="ieee", help="CUDA fp32 matmuls")
    parser.add_argument("--seconds", type=float, default=30.0, help="timing budget of the shared and controller modes")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-tokens", type=int, default=PTB_TRAIN_TOKENS, help="epoch mode: training tokens")
    parser.add_argument("--valid-tokens", type=int, default=PTB_VALID_TOKENS, help="validation tokens")
    parser.add_argument("--ctrl-steps", type=int, default=None,
                        help="epoch mode: controller steps (default: the preset's ctrl.steps_per_epoch)")
    parser.add_argument("--baseline", type=Path, default=None,
                        help="shared mode: another checkout whose SuperNet is timed in the same rounds")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    try:
        device = pick_device(args.device)
    except DeviceError as exc:
        raise SystemExit(f"error: {exc}") from None
    preset = args.preset or ("paper" if device.type == "cuda" else "cpu")
    settings = config.resolve("supervised", preset, seed=args.seed, device=str(device))
    if args.hidden is not None:
        settings.model.hidden = args.hidden
    settings.train.checkpoint_every_s = 0  # no timed checkpoints inside the measurement
    modes = ("shared", "controller", "epoch") if args.mode == "all" else (args.mode,)
    result = {"device": str(device), "device_name": device_name(device), "precision": args.precision,
              "preset": preset, "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
              "hidden": settings.model.hidden, "batch_size": settings.model.batch_size, "bptt": settings.model.bptt,
              "num_nodes": settings.model.num_nodes, "vocab": VOCAB}
    with matmul_precision(device, args.precision), tempfile.TemporaryDirectory() as tmp:
        result["peak_gflops"] = matmul_peak_gflops(device)
        if "shared" in modes:
            result["shared"] = bench_shared(settings.model, device, args, result["peak_gflops"])
        if "controller" in modes:
            result["controller"] = bench_controller(settings, device, args, Path(tmp) / "controller")
        if "epoch" in modes:
            result["epoch"] = bench_epoch(settings, device, args, Path(tmp) / "epoch", result["peak_gflops"])
    print(json.dumps(result) if args.json else describe(result))
    return 0


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return platform.processor() or platform.machine()


def describe(r: dict) -> str:
    lines = [f"{r['preset']} preset on {r['device']} ({r['device_name']}, fp32 matmuls {r['precision']}, "
             f"{r['torch_threads']} CPU threads): hidden {r['hidden']}, batch {r['batch_size']}, bptt {r['bptt']}, "
             f"{r['num_nodes']} nodes, vocab {r['vocab']:,}; matmul peak {r['peak_gflops']:,.0f} GFLOP/s"]
    if "shared" in r:
        s = r["shared"]
        spread = s["speedup_per_round"]
        lines += [
            "shared-weight training",
            f"  same model: relative difference of the loss {s['check_loss_rel_diff']:.1e}, "
            f"of the new state {s['check_state_rel_diff']:.1e}",
            f"  SuperNet  {s['tokens_per_s']:10,.0f} tokens/s  (rounds {s['tokens_per_s_range'][0]:,.0f}.."
            f"{s['tokens_per_s_range'][1]:,.0f})  {s['gflops_per_s']:,.0f} GFLOP/s, {100 * s['mfu']:.1f}% of peak",
            f"  per-node  {s['reference_tokens_per_s']:10,.0f} tokens/s  (rounds "
            f"{s['reference_tokens_per_s_range'][0]:,.0f}..{s['reference_tokens_per_s_range'][1]:,.0f})  "
            f"{100 * s['reference_mfu']:.1f}% of peak",
            f"  speedup {s['speedup']:.2f}x  (per round median {s['speedup_median_round']:.2f}, "
            f"range {min(spread):.2f}..{max(spread):.2f}, {s['rounds']} rounds)"]
        if "baseline" in s:
            low, high = s["speedup_vs_baseline_range"]
            lines.append(f"  baseline  {s['baseline_tokens_per_s']:10,.0f} tokens/s  ({s['baseline']}): SuperNet is "
                         f"{s['speedup_vs_baseline']:.3f}x (per round median "
                         f"{s['speedup_vs_baseline_median_round']:.3f}, range {low:.2f}..{high:.2f})")
    if "controller" in r:
        c = r["controller"]
        lines += [f"controller steps ({c['architectures_per_step']} architecture(s) a step, each rewarded on one "
                  f"validation minibatch of {c['eval_batch_size']} rows)",
                  f"  SuperNet {c['steps_per_s']:8,.1f} steps/s ({1e3 / c['steps_per_s']:.1f} ms); per-node "
                  f"{c['reference_steps_per_s']:,.1f} steps/s: {c['speedup']:.2f}x (per round median "
                  f"{c['speedup_median_round']:.2f}, {c['rounds']} rounds)"]
    if "epoch" in r:
        e = r["epoch"]
        lines.append(f"one epoch as the preset defines it, on PTB-shaped data ({e['train_tokens']:,} training tokens, "
                     f"{e['valid_tokens']:,} validation tokens)")
        for name in ("supernet", "per_node"):
            x = e[name]
            phases = ", ".join(f"{k} {v:.1f} s" for k, v in sorted(x["phases_s"].items(), key=lambda kv: -kv[1]))
            lines.append(f"  {name:9s} {x['epoch_s']:8.1f} s  ({x['shared_steps']} shared steps, "
                         f"{x['controller_steps']} controller steps, {x['probes']} probes; {phases}); "
                         f"{x['gflops_per_s']:,.0f} GFLOP/s, {100 * x['mfu']:.1f}% of peak")
        lines.append(f"  speedup {e['speedup']:.2f}x  (targets for the paper preset on one H100: "
                     f"<= {TARGETS['epoch_s']:.0f} s and >= {TARGETS['epoch_speedup']:.0f}x the per-node reference)")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
