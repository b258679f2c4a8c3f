"""Peak memory of a search, epoch by epoch: a long run must not grow.

    python benchmarks/memory.py [--epochs 10] [--controller random] [--seed 0] [--json]

Trains a session at the ``cpu`` preset on the generated corpus in this process (a fresh process,
like ``enas-tui train``; sessions go to a temporary folder). A listener resets the kernel's peak
resident-set counter at every ``epoch_start`` (``5`` written to /proc/self/clear_refs) and reads it
(VmHWM) and the current RSS (VmRSS) from /proc/self/status at every ``epoch_end``, so each row is
that epoch's own peak. Where the counter cannot be reset the peaks are cumulative, which the output
says.

Target: the last epoch's peak within 20% of epoch 1's (the exit status is 1 when it is not).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from enas_tui import config  # noqa: E402
from enas_tui.data import load_corpus  # noqa: E402
from enas_tui.events import EpochEnd, EpochStart, Event  # noqa: E402
from enas_tui.sessions import create_session  # noqa: E402
from enas_tui.trainer import new_run  # noqa: E402

MAX_GROWTH = 1.2


def status_mib(field: str) -> float:
    """A ``VmXXX:  1234 kB`` line of /proc/self/status, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"/proc/self/status has no {field}")


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where that is not allowed."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


class MemoryProbe:
    """Event listener: one row per epoch with its peak and final RSS."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self.per_epoch_peaks = True
        self.started = time.perf_counter()

    def __call__(self, event: Event) -> None:
        if isinstance(event, EpochStart):
            self.per_epoch_peaks &= reset_peak()
            self.started = time.perf_counter()
        elif isinstance(event, EpochEnd):
            self.rows.append({"epoch": event.epoch, "peak_mib": status_mib("VmHWM"),
                              "rss_mib": status_mib("VmRSS"), "seconds": time.perf_counter() - self.started,
                              "train_ppl": event.train_ppl})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--controller", default="random", choices=config.CONTROLLERS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    args = parser.parse_args()

    settings = config.resolve(args.controller, "cpu", seed=args.seed, epochs=args.epochs)
    corpus = load_corpus(None)
    probe = MemoryProbe()
    before = status_mib("VmRSS")
    with tempfile.TemporaryDirectory() as root:
        trainer = new_run(settings, create_session(Path(root), settings.controller), corpus, [probe])
        trainer.run()
    rows = probe.rows
    result = {
        "controller": args.controller, "epochs": args.epochs, "preset": "cpu",
        "rss_before_training_mib": before, "per_epoch_peaks": probe.per_epoch_peaks, "rows": rows,
        "growth": rows[-1]["peak_mib"] / rows[0]["peak_mib"], "max_growth": MAX_GROWTH,
    }
    result["ok"] = result["growth"] <= MAX_GROWTH
    if args.json:
        print(json.dumps(result))
    else:
        _print(result)
    return 0 if result["ok"] else 1


def _print(r: dict) -> None:
    kind = "per-epoch peak" if r["per_epoch_peaks"] else "peak so far (the counter could not be reset)"
    print(f"{r['controller']} run, cpu preset, generated corpus: resident memory ({kind}), MiB")
    print(f"  before training: {r['rss_before_training_mib']:.0f}")
    print("  epoch    peak  at end  seconds")
    for row in r["rows"]:
        print(f"  {row['epoch']:5d} {row['peak_mib']:7.0f} {row['rss_mib']:7.0f} {row['seconds']:8.1f}")
    verdict = "ok" if r["ok"] else "FAIL"
    print(f"  last epoch's peak / epoch 1's: {r['growth']:.2f} (target <= {r['max_growth']:.2f}): {verdict}")


if __name__ == "__main__":
    sys.exit(main())
