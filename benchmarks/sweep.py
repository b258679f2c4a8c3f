"""Sweep benchmark: a small sweep on an embedded local Ray against the same runs one after another.

    python benchmarks/sweep.py            # figures as text
    python benchmarks/sweep.py --json     # one JSON object
    python benchmarks/sweep.py --epochs 6 --controllers random,unsupervised,supervised --seeds 0-3

Both sides run the real commands and do the same work: ``enas-tui sweep`` (which starts Ray on
this machine, one run per core; each trial trains its run, then analyses its final checkpoint),
and, once per point, ``enas-tui train --headless`` then ``enas-tui analyze --save`` with the
sweep's n and the run's seed, in one run of this script, so the ratio compares like with like
under the same machine load. Ray's own cost is read from the sweep's record: ``ray_init_s``
(starting Ray) and ``first_trial_s`` (handing the grid to Tune until the first trial's setup on a
worker). The default settings are the test suite's tiny ones, where process start-up dominates;
pass bigger settings to see the regime a real sweep is in.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the test suite's settings

from enas_tui.sweep.grid import build_spec  # noqa: E402
from enas_tui.sweep.record import load_record  # noqa: E402
from helpers import TINY  # noqa: E402  (tests/helpers.py: the settings the sweep tests run)



def enas_tui(*args: str, env: dict[str, str]) -> float:
    """Run one enas-tui command to completion; its wall time in seconds."""
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "enas_tui", *args], env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.exit(f"benchmark: enas-tui {args[0]} failed ({out.returncode}): {out.stderr.strip()[-500:]}")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--controllers", default="random,supervised")
    parser.add_argument("--seeds", default="0-1")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--n", type=int, default=20, help="probe architectures of each run's final analysis")
    parser.add_argument("--set", dest="sets", action="append", default=None,
                        help="settings for every run (default: the test suite's tiny ones)")
    args = parser.parse_args()
    sets = TINY if args.sets is None else args.sets
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    spec = build_spec(args.controllers, args.seeds, sets, name="bench", epochs=args.epochs, n=args.n)
    flags = [arg for item in sets for arg in ("--set", item)]
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="enas-sweep-bench-") as tmp:
        swept, serial = Path(tmp) / "sweep", Path(tmp) / "serial"
        sweep_s = enas_tui("sweep", "--controllers", args.controllers, "--seeds", args.seeds, "--epochs",
                           str(args.epochs), "--n", str(args.n), "--name", "bench", *flags,
                           "--sessions-dir", str(swept), env=env)
        timings = load_record(swept, "bench").invocations[-1].get("timings", {})
        serial_s = train_s = 0.0
        for point in spec.points():
            sid = spec.session_id(point)
            took = enas_tui("train", "--headless", "--session-id", sid, "--controller", point.controller,
                            "--seed", str(point.seed), "--epochs", str(args.epochs), *flags,
                            "--sessions-dir", str(serial), env=env)
            train_s += took
            serial_s += took + enas_tui("analyze", sid, "--n", str(args.n), "--seed", str(point.seed),
                                        "--save", str(serial / f"{sid}.analysis.json"),
                                        "--sessions-dir", str(serial), env=env)
    result = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],  # at the start, at the end
        "runs": len(spec.points()), "epochs": args.epochs, "n": args.n,
        "sweep_s": round(sweep_s, 2), "one_after_another_s": round(serial_s, 2),
        "one_after_another_training_s": round(train_s, 2),
        "speedup": round(serial_s / sweep_s, 2),
        "ray_init_s": timings.get("ray_init_s"), "first_trial_s": timings.get("first_trial_s"),
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{result['runs']} runs of {args.epochs} epochs, each analysed with n={args.n}, on {result['machine']} "
          f"(load average {load_before:.1f} at the start, {os.getloadavg()[0]:.1f} at the end)")
    print(f"sweep on local Ray: {sweep_s:.1f} s; the same runs one after another: {serial_s:.1f} s "
          f"(training {train_s:.1f} s, analyses {serial_s - train_s:.1f} s); speed-up {result['speedup']:.2f}x")
    print(f"Ray start: {result['ray_init_s']} s; grid handed to Tune -> first trial set up: {result['first_trial_s']} s")


if __name__ == "__main__":
    main()
