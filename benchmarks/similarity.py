"""Time the live Table 1: vectorised pairwise measures vs a scalar loop over pairs.

    python benchmarks/similarity.py [--json] [--n 100] [--nodes 12]

The dashboard recomputes Table 1 for every probe set (100 architectures: 4,950 pairs), so the
three structural columns must take well under a second. Each figure is the best of --repeat runs.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

try:
    import enas_tui  # noqa: F401
except ImportError:  # run from a checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from enas_tui.diagnostics import table1
from enas_tui.search_space import Architecture, random_architecture
from enas_tui.similarity import (
    common_activations,
    common_connections,
    graph_edit_distance,
    pairwise_measures,
)


def best_of(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    """Fastest wall time of ``repeat`` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def scalar_loop(archs: list[Architecture]) -> dict[str, np.ndarray]:
    """The three measures pair by pair, in pdist order: the baseline to beat."""
    pairs = [(a, b) for i, a in enumerate(archs) for b in archs[i + 1 :]]
    return {
        "common_activations": np.array([common_activations(a, b) for a, b in pairs]),
        "common_connections": np.array([common_connections(a, b) for a, b in pairs]),
        "ged": np.array([graph_edit_distance(a, b) for a, b in pairs]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="architectures in the probe set")
    parser.add_argument("--nodes", type=int, default=12, help="nodes per architecture")
    parser.add_argument("--hidden", type=int, default=100, help="controller hidden size")
    parser.add_argument("--repeat", type=int, default=10, help="runs per figure (best is kept)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.n < 3 or args.nodes < 1 or args.repeat < 1:
        parser.error("need --n >= 3, --nodes >= 1 and --repeat >= 1")

    rng = random.Random(args.seed)
    archs = [random_architecture(args.nodes, rng) for _ in range(args.n)]
    noise = np.random.default_rng(args.seed)
    hidden = noise.normal(size=(args.n, args.hidden)).astype(np.float32)
    ppl = noise.uniform(60.0, 400.0, size=args.n)

    vectorised_s, fast = best_of(lambda: pairwise_measures(archs), args.repeat)
    table1_s, _ = best_of(lambda: table1(hidden, archs, ppl), args.repeat)
    loop_s, slow = best_of(lambda: scalar_loop(archs), max(1, args.repeat // 5))
    if any(not np.array_equal(fast[k], slow[k]) for k in slow):
        sys.exit("error: vectorised and scalar measures disagree")

    result = {
        "n": args.n,
        "nodes": args.nodes,
        "pairs": args.n * (args.n - 1) // 2,
        "vectorised_s": vectorised_s,
        "table1_s": table1_s,
        "loop_s": loop_s,
        "speedup": loop_s / vectorised_s,
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{args.n} architectures of {args.nodes} nodes, {result['pairs']:,} pairs (best of {args.repeat})")
    print(f"  pairwise_measures (3 columns, vectorised) {vectorised_s * 1e3:9.2f} ms")
    print(f"  table1 (4 columns + Spearman)             {table1_s * 1e3:9.2f} ms")
    print(f"  scalar loop over pairs (3 columns)        {loop_s * 1e3:9.2f} ms")
    print(f"  speedup of the vectorised columns         {result['speedup']:9.1f}x")


if __name__ == "__main__":
    main()
