"""What the live diagnostics cost: training with the probes as configured vs with them off.

The same run (cpu preset, same seed, same data) is trained with the rolling Table 1 as the preset
configures it (a probe set every ``train.probe_every`` controller steps, the performance column
every ``train.perf_every`` probes) and with ``train.probe_every`` larger than the run, so no probe
fires. Probes draw from their own generator and evaluate in eval mode, so both runs train
identically (checked: same final weights); the time difference is the diagnostics' cost. Runs
alternate (off, on, off, on, ...) after a short warm-up and the fastest of each kind counts, which
is what a shared machine's noise leaves least disturbed. The time spent inside the probes is also
measured directly, split into probes with and without the performance column; that split is the
profile of the overhead, and it gives the projected overhead for other ``perf_every`` values.

    python benchmarks/diagnostics_overhead.py [--epochs 2] [--repeats 2] [--controller unsupervised] [--json]

Target: overhead <= 10% of training time at the cpu preset.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from enas_tui import config
from enas_tui.data import load_corpus
from enas_tui.sessions import create_session
from enas_tui.supernet import make_plan
from enas_tui.trainer import new_run

NEVER = 10**9


def timed_run(settings: config.Settings, corpus, root: Path) -> dict:
    """Train once: wall time of the run, time inside probes (with and without the perf column)."""
    make_plan.cache_clear()  # a later run must not inherit an earlier one's cached cell plans
    trainer = new_run(settings, create_session(root, settings.controller), corpus, listeners=[])
    probe, spent = trainer._probe, {"perf": 0.0, "plain": 0.0}

    def timed_probe(epoch: int) -> None:
        kind = "perf" if (trainer.probes + 1) % settings.train.perf_every == 0 else "plain"
        started = time.perf_counter()
        probe(epoch)
        spent[kind] += time.perf_counter() - started

    trainer._probe = timed_probe
    started = time.perf_counter()
    status = trainer.run()
    elapsed = time.perf_counter() - started
    assert status == "finished", status
    weights = {**trainer.net.state_dict(), **{f"ctrl.{k}": v for k, v in trainer.ctrl.state_dict().items()}}
    return {"seconds": elapsed, "perf_s": spent["perf"], "plain_s": spent["plain"], "probes": trainer.probes,
            "perf_probes": trainer.probes // settings.train.perf_every, "weights": weights}


def measure(args: argparse.Namespace) -> dict:
    corpus = load_corpus(args.data)

    def settings(epochs: int, *overrides: str) -> config.Settings:
        return config.resolve(args.controller, "cpu", seed=args.seed, device="cpu", data=args.data,
                              epochs=epochs, overrides=list(overrides))

    on_settings = settings(args.epochs)
    off_settings = settings(args.epochs, f"train.probe_every={NEVER}")
    warmup = settings(1, "train.shared_steps_per_epoch=3", "ctrl.steps_per_epoch=3", "train.valid_batches=1",
                      "train.derive_samples=2", f"train.probe_every={NEVER}")
    offs, ons = [], []
    with tempfile.TemporaryDirectory() as tmp:
        timed_run(warmup, corpus, Path(tmp))  # first-call costs (allocator, lazy init) land here
        for _ in range(args.repeats):
            offs.append(timed_run(off_settings, corpus, Path(tmp)))
            ons.append(timed_run(on_settings, corpus, Path(tmp)))
    same = all(torch.equal(ons[0]["weights"][k], offs[0]["weights"][k]) for k in ons[0]["weights"])
    on, off = min(ons, key=lambda r: r["seconds"]), min(offs, key=lambda r: r["seconds"])
    t = on_settings.train
    train_s = on["seconds"] - on["perf_s"] - on["plain_s"]  # the run without its probes
    per_perf = on["perf_s"] / max(on["perf_probes"], 1)
    per_plain = on["plain_s"] / max(on["probes"] - on["perf_probes"], 1)

    def projected(perf_every: int) -> float:  # at the rate, not this run's count of perf probes
        perf = on["probes"] / perf_every
        return round((perf * per_perf + (on["probes"] - perf) * per_plain) / train_s, 4)

    return {
        "with_s": round(on["seconds"], 3),
        "without_s": round(off["seconds"], 3),
        "overhead_fraction": round((on["seconds"] - off["seconds"]) / off["seconds"], 4),
        "probe_every": t.probe_every,
        "perf_every": t.perf_every,
        "probes": on["probes"],
        "perf_probes": on["perf_probes"],
        "probe_size": t.probe_size,
        "perf_batches": t.perf_batches,
        "probe_s": round(on["perf_s"] + on["plain_s"], 3),
        "probe_fraction": round((on["perf_s"] + on["plain_s"]) / train_s, 4),
        "perf_probe_s": round(per_perf, 3),
        "plain_probe_s": round(per_plain, 3),
        "projected_fraction": {str(k): projected(k) for k in (1, 2, 4, 5, 10)},
        "epochs": args.epochs,
        "repeats": args.repeats,
        "all_with_s": [round(r["seconds"], 3) for r in ons],
        "all_without_s": [round(r["seconds"], 3) for r in offs],
        "controller": args.controller,
        "threads": torch.get_num_threads(),
        "same_training": same,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=2, help="runs of each kind; the fastest counts")
    parser.add_argument("--controller", default="unsupervised", choices=config.CONTROLLERS)
    parser.add_argument("--data", default=None, help="PTB folder (default: the generated corpus)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    r = measure(args)
    if args.json:
        print(json.dumps(r))
        return
    print(f"cpu preset, {r['controller']}, {r['epochs']} epoch(s), {r['threads']} torch threads, "
          f"fastest of {r['repeats']}")
    print(f"  without probes: {r['without_s']:.1f} s   (all: {r['all_without_s']})")
    print(f"  with probes:    {r['with_s']:.1f} s   (all: {r['all_with_s']}; {r['probes']} probes of "
          f"{r['probe_size']}, {r['perf_probes']} with the performance column on {r['perf_batches']} minibatch(es))")
    print(f"  overhead:       {100 * r['overhead_fraction']:.1f}% of training time (target <= 10%)")
    print(f"  inside probes:  {r['probe_s']:.1f} s = {100 * r['probe_fraction']:.1f}% of the rest of the run; "
          f"a probe takes {r['plain_probe_s']:.3f} s, {r['perf_probe_s']:.3f} s with the performance column")
    print("  projected overhead by perf_every: " +
          ", ".join(f"{k}: {100 * v:.1f}%" for k, v in r["projected_fraction"].items()))
    print(f"  identical training with and without probes: {r['same_training']}")


if __name__ == "__main__":
    main()
