"""The first shared steps of a search at the ``paper`` preset: does the shared model learn?

    python benchmarks/paper_first_epoch.py [--steps N] [--device cpu|cuda|auto] [--data DIR]
                                           [--set model.lr=10 ...] [--window W] [--json]

Runs the trainer's shared step (an architecture sampled from the fresh controller for every
minibatch, train_step at the preset's hidden size, batch, BPTT, SGD learning rate, gradient clip,
per-step state clip and dropouts; the state carried between minibatches) for N steps and prints the
loss curve in windows of W steps, beside two reference perplexities: a uniform guess over the
vocabulary and the unigram perplexity of the training text (what a model that has learned only
word frequencies reaches). A model that learns falls below the first within a few dozen steps and
then towards the second. Each window shows the median step's perplexity and that of the mean loss:
a few sampled cells far worse than the rest (sigmoid-heavy ones, early on) dominate the mean.

The data default to the real-PTB split of the tests (``$ENAS_TUI_SHARED/data/ptb``: train =
ptb.valid.txt, valid/test = the halves of ptb.test.txt; vocabulary about 7.6k), since the full
training file is not shipped; ``--data`` takes any PTB-layout folder. On CUDA the step times are
measured with the device synchronised; the losses are read once at the end.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from enas_tui import config  # noqa: E402
from enas_tui.controller import Controller  # noqa: E402
from enas_tui.data import batchify, load_corpus  # noqa: E402
from enas_tui.supernet import SuperNet, get_batch, train_step  # noqa: E402
from enas_tui.trainer import pick_device  # noqa: E402


def real_ptb_split(out: Path) -> Path:
    """The tests' real-PTB folder (conftest.real_ptb_dir) written into ``out``."""
    shared = Path(os.environ.get("ENAS_TUI_SHARED") or Path(__file__).resolve().parents[2] / "shared")
    ptb = shared / "data" / "ptb"
    if not (ptb / "ptb.valid.txt").is_file() or not (ptb / "ptb.test.txt").is_file():
        raise SystemExit(f"error: {ptb} lacks ptb.valid.txt or ptb.test.txt; pass --data DIR")
    (out / "ptb.train.txt").write_bytes((ptb / "ptb.valid.txt").read_bytes())
    lines = (ptb / "ptb.test.txt").read_text(encoding="utf-8").splitlines(keepends=True)
    (out / "ptb.valid.txt").write_text("".join(lines[:len(lines) // 2]), encoding="utf-8")
    (out / "ptb.test.txt").write_text("".join(lines[len(lines) // 2:]), encoding="utf-8")
    return out


def unigram_ppl(ids: np.ndarray, vocab_size: int) -> float:
    """Perplexity of the text under its own word frequencies."""
    counts = np.bincount(ids, minlength=vocab_size).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(math.exp(-(counts[counts > 0] * np.log(p)).sum() / counts.sum()))


def first_steps(settings: config.Settings, corpus, device: torch.device, steps: int) -> dict:
    """Run ``steps`` shared steps as the trainer does at the start of epoch 1; losses and step times."""
    m = settings.model
    torch.manual_seed(settings.seed)
    net = SuperNet(corpus.vocab_size, m).to(device)
    ctrl = Controller(m.num_nodes, settings.ctrl).to(device)
    opt = torch.optim.SGD(net.parameters(), lr=m.lr)
    gen = torch.Generator(device).manual_seed(settings.seed + 1)
    data = batchify(corpus.train, m.batch_size).to(device)
    hidden, cursor = net.init_hidden(m.batch_size), 0
    losses, finite, times, archs = [], [], [], []
    net.train()
    for _ in range(steps):
        if cursor + 2 > data.shape[0]:
            cursor, hidden = 0, net.init_hidden(m.batch_size)
        tokens, targets = get_batch(data, cursor, m.bptt)
        with torch.no_grad():
            arch = ctrl.sample(1, generator=gen).architectures()[0]
        _sync(device)
        start = time.perf_counter()
        loss, new_hidden, ok = train_step(net, opt, tokens, targets, hidden, arch, m.grad_clip)
        _sync(device)
        times.append(time.perf_counter() - start)
        hidden = torch.where(ok, new_hidden, torch.zeros_like(new_hidden))
        cursor += tokens.shape[0]
        losses.append(loss)
        finite.append(ok)
        archs.append(arch.to_text())
    return {"loss": torch.stack(losses).tolist(), "finite": torch.stack(finite).tolist(), "step_s": times,
            "archs": archs, "tokens_per_step": m.batch_size * m.bptt}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="shared steps (default 100)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    parser.add_argument("--data", type=Path, default=None, help="PTB-layout folder (default: the tests' real-PTB split)")
    parser.add_argument("--set", dest="overrides", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                        help="override a paper-preset setting (repeatable)")
    parser.add_argument("--window", type=int, default=10, help="steps per line of the curve")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args()
    if args.steps < 1 or args.window < 1:
        parser.error("--steps and --window must be positive")
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        settings = config.resolve("random", "paper", seed=args.seed, overrides=args.overrides)
        device = pick_device(args.device)
    except Exception as exc:  # noqa: BLE001 - SettingsError, DeviceError: one line
        raise SystemExit(f"error: {exc}") from None
    with tempfile.TemporaryDirectory() as tmp:
        corpus = load_corpus(args.data if args.data else real_ptb_split(Path(tmp)))
    run = first_steps(settings, corpus, device, args.steps)
    result = {
        "device": str(device), "device_name": _device_name(device), "steps": args.steps,
        "vocab": corpus.vocab_size, "train_tokens": int(len(corpus.train)),
        "uniform_ppl": float(corpus.vocab_size), "unigram_ppl": unigram_ppl(corpus.train, corpus.vocab_size),
        "settings": {"model": vars(settings.model)}, "torch_threads": torch.get_num_threads(),
        **run, "median_step_s": float(np.median(run["step_s"])),
    }
    print(json.dumps(result) if args.json else _text(result, args.window))
    return 0


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    import platform

    return platform.processor() or platform.machine()


def _text(r: dict, window: int) -> str:
    m = r["settings"]["model"]
    lines = [f"paper preset, first {r['steps']} shared steps on {r['device']} ({r['device_name']}, "
             f"{r['torch_threads']} threads): hidden {m['hidden']}, batch {m['batch_size']}, bptt {m['bptt']}, "
             f"lr {m['lr']:g}, grad clip {m['grad_clip']:g}, state clip {m['max_hidden_norm']:g}",
             f"  vocabulary {r['vocab']:,}: uniform guess ppl {r['uniform_ppl']:,.0f}, "
             f"unigram ppl of the training text {r['unigram_ppl']:,.0f}",
             f"  median step {r['median_step_s']:.3f} s ({r['tokens_per_step'] / r['median_step_s']:,.0f} tokens/s)"]
    lines.append("  steps        median ppl  ppl of the mean loss  best ppl  steps above uniform")
    loss, ok = np.array(r["loss"]), np.array(r["finite"])
    for s in range(0, len(loss), window):
        part = loss[s:s + window][ok[s:s + window]]
        skipped = int((~ok[s:s + window]).sum())
        span = f"{s + 1:4d}-{min(s + window, len(loss)):4d}"
        if not part.size:
            lines.append(f"  {span}   no finite step")
            continue
        above = int((part > math.log(r["uniform_ppl"])).sum())
        note = f"  ({skipped} skipped)" if skipped else ""
        lines.append(f"  {span}  {_ppl(np.median(part)):10,.0f}  {_ppl(part.mean()):20,.0f}  {_ppl(part.min()):8,.0f}"
                     f"  {above:19d}{note}")
    return "\n".join(lines)


def _ppl(loss: float) -> float:
    return math.exp(min(loss, 700.0))


if __name__ == "__main__":
    sys.exit(main())
