"""Time every similarity measure on a probe set, and compare the three graph edit distances.

    python benchmarks/similarity.py [--json] [--n 100] [--nodes 12] [--verify PAIRS]

For --n random cells (100: 4,950 pairs, the paper's Table 1):

- seconds for the cheap measures (one vectorised pass, best of --repeat) against a scalar loop,
  and for the whole Table 1 with Spearman;
- seconds for ``ged_paper`` (networkx's first value, one process) with the number of pairs that hit
  the time cap;
- seconds for ``ged_exact`` with 1 and 2 workers (and the pure-Python search on --python-pairs
  pairs, for the per-pair ratio), and for the exact structure-only GED of the paper graphs;
- how far ``ged_paper``'s first value is from that exact value on the same graphs, and how far
  ``ged_exact`` is below ``ged_aligned``; Spearman between the GEDs and the "common" counts.

--verify PAIRS also checks ``ged_exact`` and the exact paper GED against networkx's exact search on
that many random pairs of 2-6-node cells (slow: about a second a pair at 5-6 nodes); --verify-milp
PAIRS checks both against an independent exact method at full size: a mixed-integer program of the
bijection formulation solved by scipy's HiGHS (3-8 s a pair of 12-node cells).
"""

from __future__ import annotations

import argparse
import json
import os
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
    CHEAP_MEASURES,
    common_activations_aligned,
    common_activations_paper,
    common_connections,
    exact,
    ged_aligned,
    ged_exact,
    ged_paper_exact,
    networkx_ged,
    pairwise_measures,
    paper_aligned_bound,
    paper_graph,
)
from enas_tui.similarity.graphs import labelled_arrays, paper_arrays


def best_of(fn: Callable[[], object], repeat: int) -> tuple[float, object]:
    """Fastest wall time of ``repeat`` calls, and the last result."""
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def scalar_loop(archs: list[Architecture]) -> dict[str, np.ndarray]:
    """The cheap measures pair by pair, in pdist order: the baseline to beat."""
    pairs = [(a, b) for i, a in enumerate(archs) for b in archs[i + 1 :]]
    functions = {
        "common_activations_paper": common_activations_paper,
        "common_activations_aligned": common_activations_aligned,
        "common_connections": common_connections,
        "ged_aligned": ged_aligned,
    }
    return {name: np.array([fn(a, b) for a, b in pairs]) for name, fn in functions.items()}


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(x, y).statistic)


def compare(approx: np.ndarray, exact_values: np.ndarray) -> dict[str, float]:
    gap = approx - exact_values
    return {"mean_gap": float(gap.mean()), "max_gap": int(gap.max()), "min_gap": int(gap.min()),
            "fraction_equal": float((gap == 0).mean()), "spearman": spearman(approx, exact_values)}


def verify(pairs: int, seed: int) -> dict[str, object]:
    """ged_exact and the exact paper GED against networkx's exact search on small random cells."""
    import networkx as nx

    rng = random.Random(seed)
    start, checked = time.perf_counter(), 0
    for k in range(pairs):
        n = 2 + k % 5  # 2..6 nodes
        a, b = random_architecture(n, rng), random_architecture(n, rng)
        if ged_exact(a, b) != networkx_ged(a, b, upper_bound=ged_aligned(a, b)):
            sys.exit(f"error: ged_exact disagrees with networkx on {a} / {b}")
        reference = nx.graph_edit_distance(paper_graph(a), paper_graph(b), upper_bound=paper_aligned_bound(a, b))
        if ged_paper_exact(a, b) != reference:
            sys.exit(f"error: the exact paper GED disagrees with networkx on {a} / {b}")
        checked += 1
    return {"pairs": checked, "nodes": "2-6", "seconds": time.perf_counter() - start}


def milp_ged(arrays, i: int, j: int) -> int:
    """Exact GED of graphs i and j as a mixed-integer program (HiGHS), independent of the search.

    x[u, w] = 1 places u at w (a bijection); y[e, f] = 1 keeps edge e of G1 as edge f of G2, allowed
    only where both ends are placed accordingly: for e = (a, b) and each node c of G2, the kept edges
    leaving c are at most x[a, c] and those entering c at most x[b, c].
    """
    from scipy.optimize import Bounds, LinearConstraint, milp
    from scipy.sparse import lil_matrix

    a1, a2 = arrays.adjacency(i), arrays.adjacency(j)
    n, e1, e2 = len(a1), np.argwhere(a1), np.argwhere(a2)
    places, kept = n * n, len(e1) * len(e2)
    mismatch = (arrays.labels[i][:, None] != arrays.labels[j][None, :]).ravel()
    objective = np.concatenate([mismatch.astype(float), np.full(kept, -2.0)])
    rows = 2 * n + 2 * n * len(e1)
    matrix = lil_matrix((rows, places + kept))
    lower, upper = np.full(rows, -np.inf), np.zeros(rows)
    for v in range(n):  # each node of G1 placed once, each node of G2 used once
        matrix[v, [v * n + w for w in range(n)]] = 1
        matrix[n + v, [u * n + v for u in range(n)]] = 1
    lower[: 2 * n] = upper[: 2 * n] = 1
    row = 2 * n
    for k, (a, b) in enumerate(e1):
        for c in range(n):
            for end, node in ((0, a), (1, b)):
                matrix[row, [places + k * len(e2) + f for f in range(len(e2)) if e2[f][end] == c]] = 1
                matrix[row, node * n + c] = -1
                row += 1
    result = milp(objective, constraints=LinearConstraint(matrix.tocsr(), lower, upper),
                  integrality=np.concatenate([np.ones(places), np.zeros(kept)]), bounds=Bounds(0, 1),
                  options={"mip_rel_gap": 0})
    return int(round(result.fun)) + len(e1) + len(e2)


def verify_milp(pairs: int, nodes: int, seed: int) -> dict[str, object]:
    """The exact solver against the mixed-integer program on random full-size cells, both graph forms."""
    rng = random.Random(seed + 1)
    cells = [random_architecture(nodes, rng) for _ in range(2 * pairs)]
    todo = np.array([[2 * k, 2 * k + 1] for k in range(pairs)])
    start = time.perf_counter()
    for form, arrays in (("labelled", labelled_arrays(cells)), ("paper", paper_arrays(cells))):
        ours = exact.solve_pairs(arrays, todo).costs
        for (i, j), value in zip(todo, ours):
            if milp_ged(arrays, i, j) != value:
                sys.exit(f"error: the exact {form} GED disagrees with the MILP on {cells[i]} / {cells[j]}")
    return {"pairs": 2 * pairs, "nodes": nodes, "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100, help="architectures in the probe set")
    parser.add_argument("--nodes", type=int, default=12, help="nodes per architecture")
    parser.add_argument("--hidden", type=int, default=100, help="controller hidden size")
    parser.add_argument("--repeat", type=int, default=10, help="runs per cheap figure (best is kept)")
    parser.add_argument("--ged-timeout", type=float, default=1.0, help="ged_paper's cap per pair (s)")
    parser.add_argument("--python-pairs", type=int, default=20, help="pairs for the pure-Python search")
    parser.add_argument("--verify", type=int, default=0, help="pairs to check against networkx's exact GED")
    parser.add_argument("--verify-milp", type=int, default=0,
                        help="pairs of --nodes cells to check against a mixed-integer program (each form)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args()
    if args.n < 3 or args.nodes < 1 or args.repeat < 1 or args.python_pairs < 0 or min(args.verify, args.verify_milp) < 0:
        parser.error("need --n >= 3, --nodes >= 1, --repeat >= 1 and no negative counts")

    rng = random.Random(args.seed)
    archs = [random_architecture(args.nodes, rng) for _ in range(args.n)]
    noise = np.random.default_rng(args.seed)
    hidden = noise.normal(size=(args.n, args.hidden)).astype(np.float32)
    ppl = noise.uniform(60.0, 400.0, size=args.n)
    pairs = np.stack(np.triu_indices(args.n, k=1), axis=1)

    cheap_s, cheap = best_of(lambda: pairwise_measures(archs), args.repeat)
    table1_s, _ = best_of(lambda: table1(hidden, archs, ppl, measures=CHEAP_MEASURES), args.repeat)
    loop_s, slow = best_of(lambda: scalar_loop(archs), max(1, args.repeat // 5))
    if any(not np.array_equal(cheap[k], slow[k]) for k in CHEAP_MEASURES):
        sys.exit("error: vectorised and scalar measures disagree")

    paper = pairwise_measures(archs, ["ged_paper"], ged_timeout=args.ged_timeout)
    exact_one = pairwise_measures(archs, ["ged_exact"])
    exact_two = pairwise_measures(archs, ["ged_exact"], workers=2)
    if not np.array_equal(exact_one["ged_exact"], exact_two["ged_exact"]):
        sys.exit("error: 1 and 2 workers disagree")
    start = time.perf_counter()
    paper_exact = exact.solve_pairs(paper_arrays(archs), pairs)
    paper_exact_s = time.perf_counter() - start
    python_s = None
    if args.python_pairs:
        some = pairs[: args.python_pairs]
        start = time.perf_counter()
        slow_exact = exact.solve_pairs(labelled_arrays(archs), some, compiled=False)
        python_s = (time.perf_counter() - start) / len(some)
        if not np.array_equal(slow_exact.costs, exact_one["ged_exact"][: len(some)]):
            sys.exit("error: the Python and compiled searches disagree")

    aligned, exact_column = cheap["ged_aligned"], exact_one["ged_exact"]
    if (exact_column > aligned).any() or (paper_exact.costs > paper["ged_paper"]).any():
        sys.exit("error: an exact GED above its upper bound")
    stats = {name: m.stats[name] for m, name in ((paper, "ged_paper"), (exact_one, "ged_exact"))}
    result = {
        "n": args.n, "nodes": args.nodes, "pairs": len(pairs), "cpus": os.cpu_count(),
        "load_average": os.getloadavg(), "exact_compiled": exact.COMPILED,
        "cheap_s": cheap_s, "table1_s": table1_s, "cheap_loop_s": loop_s,
        "ged_paper_s": stats["ged_paper"].seconds, "ged_paper_timeout_s": args.ged_timeout,
        "ged_paper_fallbacks": stats["ged_paper"].fallbacks,
        "ged_exact_s": stats["ged_exact"].seconds, "ged_exact_2_workers_s": exact_two.stats["ged_exact"].seconds,
        "ged_exact_search_nodes_mean": stats["ged_exact"].search_nodes / max(1, stats["ged_exact"].computed),
        "ged_exact_python_s_per_pair": python_s,
        "paper_exact_s": paper_exact_s,
        "paper_first_vs_exact": compare(paper["ged_paper"], paper_exact.costs),
        "aligned_vs_exact": compare(aligned, exact_column),
        "spearman_with_counts": {
            ged: {count: spearman(column, cheap[count])
                  for count in ("common_activations_paper", "common_activations_aligned", "common_connections")}
            for ged, column in (("ged_paper", paper["ged_paper"]), ("ged_aligned", aligned),
                                ("ged_exact", exact_column), ("paper_exact", paper_exact.costs))
        },
    }
    if args.verify:
        result["verify"] = verify(args.verify, args.seed)
    if args.verify_milp:
        result["verify_milp"] = verify_milp(args.verify_milp, args.nodes, args.seed)
    if args.json:
        print(json.dumps(result))
        return
    report(result, args.repeat)


def report(r: dict, repeat: int) -> None:
    load = ", ".join(f"{x:.1f}" for x in r["load_average"])
    print(f"{r['n']} architectures of {r['nodes']} nodes, {r['pairs']:,} pairs; {r['cpus']} cpus, load {load}")
    print(f"  cheap measures (4 columns, vectorised, best of {repeat})  {r['cheap_s'] * 1e3:9.2f} ms")
    print(f"  cheap measures, scalar loop over pairs                {r['cheap_loop_s'] * 1e3:9.2f} ms")
    print(f"  table1 (4 columns + Spearman)                         {r['table1_s'] * 1e3:9.2f} ms")
    print(f"  ged_paper (networkx first value, 1 process)           {r['ged_paper_s']:9.2f} s   "
          f"{r['ged_paper_fallbacks']} pairs past the {r['ged_paper_timeout_s']:g} s cap")
    kind = "compiled" if r["exact_compiled"] else "pure Python"
    print(f"  ged_exact ({kind}), 1 worker                       {r['ged_exact_s']:9.2f} s   "
          f"{r['ged_exact_search_nodes_mean']:.0f} search nodes a pair")
    print(f"  ged_exact, 2 workers                                  {r['ged_exact_2_workers_s']:9.2f} s")
    if r["ged_exact_python_s_per_pair"] is not None:
        print(f"  ged_exact, pure-Python search, per pair               {r['ged_exact_python_s_per_pair'] * 1e3:9.1f} ms")
    print(f"  exact structure-only GED of the paper graphs          {r['paper_exact_s']:9.2f} s")
    for key, title in (("paper_first_vs_exact", "ged_paper (first value) - exact paper GED"),
                       ("aligned_vs_exact", "ged_aligned - ged_exact")):
        c = r[key]
        print(f"  {title}: mean {c['mean_gap']:.2f}, range {c['min_gap']}..{c['max_gap']}, "
              f"equal {c['fraction_equal']:.1%}, Spearman {c['spearman']:.3f}")
    print("  Spearman with   common_acts_paper  common_acts_aligned  common_connections")
    for ged, row in r["spearman_with_counts"].items():
        print(f"    {ged:12s} {row['common_activations_paper']:18.3f} {row['common_activations_aligned']:20.3f}"
              f" {row['common_connections']:19.3f}")
    if "verify" in r:
        v = r["verify"]
        print(f"  verified against networkx's exact GED: {v['pairs']} pairs of {v['nodes']} nodes "
              f"in {v['seconds']:.0f} s")
    if "verify_milp" in r:
        v = r["verify_milp"]
        print(f"  verified against a mixed-integer program: {v['pairs']} pairs of {v['nodes']}-node cells "
              f"(labelled and paper graphs) in {v['seconds']:.0f} s")


if __name__ == "__main__":
    main()
