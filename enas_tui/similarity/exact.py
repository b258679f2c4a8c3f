"""Exact graph edit distance (unit costs) of small directed graphs, fast enough for all pairs.

networkx's exact search does not finish one pair of 12-node cells in 30 s. These graphs are small
and equal in size, which makes the problem much easier than general GED:

- **The optimum is a bijection.** With both graphs of n nodes, a substitution (cost <= 1) never
  costs more than deleting a node and inserting one (2), and keeps at least as many edges, so some
  optimal edit path maps every node to a node. For a bijection pi,
  ``cost(pi) = #label mismatches + |E1| + |E2| - 2 #{(a, b) in E1 : (pi(a), pi(b)) in E2}``.
  Graphs of different sizes are padded with isolated nodes of a label of their own (matching one
  costs 1: an insertion or deletion), which keeps the optimum.
- **Branch and bound over partial bijections**, with a lower bound that charges every edge exactly
  once: edges inside the assigned part are decided; an edge between an unassigned node u and the
  assigned part is decided as soon as u is placed, so it is charged exactly in the cost of placing
  u at w; an edge between two unassigned nodes is charged half at each end, as the difference of
  their in- and out-degrees among unassigned nodes (at least that many such edges are lost). The
  minimum linear assignment of those placement costs bounds every completion from below (the
  bipartite GED bound, made exact for the anchored edges), so a branch whose bound reaches the best
  known cost cannot hold a better solution and is cut: the search returns the optimum.
- **Symmetry**: G1 nodes with the same label and the same in- and out-neighbours (twins: x and
  h_prev, sibling leaves of one activation) can swap without changing any cost, so only bijections
  that keep their images increasing are searched; one of every family of equal-cost solutions is.
- **First upper bound**: a swap local search from the identity (for cells, the decision-order
  correspondence, so ``ged_aligned`` or better), and in the kernel also from the root assignment.

The compiled kernel (``_exact_kernel.c``, built by ``pip install``) runs the search with the
assignment duals: each candidate child gets the bound ``LB + reduced cost`` before it is built. It
branches on the node with the most unplaced neighbours (placing it decides the most edges; ties:
the fewest surviving candidates), which cut the search nodes per 12-node pair from about 300 to 90. Without a C compiler the pure-Python
search here runs instead: the same bound via scipy's assignment solver (no duals, so each child
computes its own), the same branching node without the candidate count, the same answers, about 40 times slower. The tests check the two against each other, against
every bijection of 8-node graphs and against networkx's exact ``graph_edit_distance``;
benchmarks/similarity.py --verify-milp checks 12-node cells against a mixed-integer program.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from enas_tui.similarity.closed_form import SimilarityError
from enas_tui.similarity.graphs import GraphArrays, networkx_arrays

try:
    from enas_tui.similarity import _exact_kernel
except ImportError:  # no compiler at install time: the Python search below
    _exact_kernel = None

COMPILED = _exact_kernel is not None
CHUNK = 64  # pairs per task: small, so a few slow pairs do not leave a worker idle


class ExactGEDTimeout(SimilarityError):
    """The search had not proven the optimum when its time limit passed."""


@dataclass(frozen=True)
class ExactResult:
    """Exact distances of a list of pairs (-1: past the time limit) and the search nodes each took."""

    costs: np.ndarray  # (P,) int64
    nodes: np.ndarray  # (P,) int64


def exact_ged(g1, g2, label: str | None = None, *, timeout: float | None = None,
              compiled: bool | None = None) -> int:
    """Exact GED of two networkx DiGraphs, unit costs; nodes labelled by ``label`` (None: structure only).

    Nodes are matched by position for the first upper bound only; the result does not depend on
    node order. The search grows quickly with size (CPU per pair of random cells: 0.3 ms at 12 nodes,
    10 ms at 20, 70 ms at 24, with long tails): with
    ``timeout`` (seconds) it raises ExactGEDTimeout instead of running on.
    """
    arrays = networkx_arrays([g1, g2], label)
    cost = int(solve_pairs(arrays, np.array([[0, 1]]), time_limit=timeout, compiled=compiled).costs[0])
    if cost < 0:
        raise ExactGEDTimeout(f"the exact GED was not proven within {timeout:g} s")
    return cost


def solve_pairs(arrays: GraphArrays, pairs: np.ndarray, *, workers: int = 1, time_limit: float | None = None,
                compiled: bool | None = None) -> ExactResult:
    """Exact GED of each row (i, j) of ``pairs`` between graphs i and j of ``arrays``.

    ``compiled``: None uses the kernel when it was built; False forces the Python search; True
    requires the kernel. With the kernel, ``workers`` threads share the pairs (it releases the GIL).
    ``time_limit``: seconds per pair; a pair not proven by then gets -1.
    """
    if time_limit is not None and not time_limit > 0:
        raise SimilarityError(f"the exact GED time limit must be positive, got {time_limit}")
    pairs = np.ascontiguousarray(np.asarray(pairs, dtype=np.int32).reshape(-1, 2))
    use_kernel = COMPILED if compiled is None else compiled
    if use_kernel and not COMPILED:
        raise RuntimeError("the compiled exact-GED kernel was not built (reinstall with a C compiler)")
    if not use_kernel:
        solved = [_python_pair(arrays, int(i), int(j), time_limit) for i, j in pairs]
        costs, nodes = zip(*solved) if solved else ((), ())
        return ExactResult(np.array(costs, dtype=np.int64), np.array(nodes, dtype=np.int64))
    labels = np.ascontiguousarray(arrays.labels, dtype=np.int32)
    masks = np.ascontiguousarray(arrays.masks, dtype=np.uint64)
    costs = np.zeros(len(pairs), dtype=np.int32)
    nodes = np.zeros(len(pairs), dtype=np.int64)

    def run(start: int) -> None:
        stop = start + CHUNK
        _exact_kernel.solve_many(arrays.num_nodes, labels, masks, pairs[start:stop], costs[start:stop],
                                 nodes[start:stop], float(time_limit or 0.0))

    starts = range(0, len(pairs), CHUNK)
    if workers > 1 and len(pairs) > CHUNK:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(run, starts))
    else:
        for start in starts:
            run(start)
    return ExactResult(costs.astype(np.int64), nodes)


# -- the pure-Python search ----------------------------------------------------------------------
@dataclass
class _Problem:
    """One pair as dense arrays, and the search's best-so-far."""

    a1: np.ndarray        # (n, n) int adjacency of G1
    a2: np.ndarray
    mismatch: np.ndarray  # (n, n) 1 where labels differ
    twins: list[list[int]]  # for each G1 node, its twins (itself included), increasing
    best: int
    nodes: int = 0


class _OutOfTime(Exception):
    pass


def _python_pair(arrays: GraphArrays, i: int, j: int, time_limit: float | None) -> tuple[int, int]:
    from scipy.optimize import linear_sum_assignment

    deadline = None if time_limit is None else time.perf_counter() + time_limit

    a1 = arrays.adjacency(i).astype(np.int64)
    a2 = arrays.adjacency(j).astype(np.int64)
    l1, l2 = arrays.labels[i], arrays.labels[j]
    n = len(l1)
    problem = _Problem(a1, a2, (l1[:, None] != l2[None, :]).astype(np.int64), _twins(a1, l1), 0)
    problem.best = _local_search(problem, list(range(n)))
    links = a1 + a1.T

    def search(assigned: list[int], images: list[int], fixed: int) -> None:
        problem.nodes += 1
        if deadline is not None and time.perf_counter() > deadline:
            raise _OutOfTime
        depth = len(assigned)
        if depth == n:
            problem.best = min(problem.best, fixed)
            return
        placed = set(assigned)
        rest1 = [u for u in range(n) if u not in placed]
        # branch on the node with the most unplaced neighbours: placing it anchors the most edges
        pick = int(np.argmax(links[np.ix_(rest1, rest1)].sum(axis=1)))
        rest1.insert(0, rest1.pop(pick))
        taken = set(images)
        rest2 = [w for w in range(n) if w not in taken]
        cost = _placement_costs(problem, assigned, images, rest1, rest2)
        rows, cols = linear_sum_assignment(cost)
        bound = 2 * fixed + int(cost[rows, cols].sum())  # doubled, so halves stay exact
        u = rest1[0]
        for k in np.argsort(cost[0], kind="stable"):
            if bound > 2 * problem.best - 2:  # cannot beat the best (costs are integers)
                return
            w = rest2[k]
            if not _twin_order_allows(problem, u, w, assigned, images):
                continue
            exact = _exact_placement(problem, u, w, assigned, images)
            search([*assigned, u], [*images, w], fixed + exact)

    try:
        search([], [], 0)
    except _OutOfTime:
        return -1, problem.nodes
    return problem.best, problem.nodes


def _placement_costs(p: _Problem, assigned: list[int], images: list[int], rest1: list[int],
                     rest2: list[int]) -> np.ndarray:
    """Doubled lower-bound cost of placing each unassigned G1 node at each free G2 node."""
    s1, s2, r1, r2 = (np.array(x, dtype=np.int64) for x in (assigned, images, rest1, rest2))
    in1, out1 = p.a1[np.ix_(s1, r1)], p.a1[np.ix_(r1, s1)]  # edges assigned -> rest, rest -> assigned
    in2, out2 = p.a2[np.ix_(s2, r2)], p.a2[np.ix_(r2, s2)]
    kept = in1.T @ in2 + out1 @ out2.T  # anchored edges preserved by u -> w
    anchored = in1.sum(0)[:, None] + out1.sum(1)[:, None] + in2.sum(0)[None, :] + out2.sum(1)[None, :]
    exact = p.mismatch[np.ix_(r1, r2)] + anchored - 2 * kept
    inner1, inner2 = p.a1[np.ix_(r1, r1)], p.a2[np.ix_(r2, r2)]
    halves = (np.abs(inner1.sum(0)[:, None] - inner2.sum(0)[None, :])
              + np.abs(inner1.sum(1)[:, None] - inner2.sum(1)[None, :]))
    return 2 * exact + halves


def _exact_placement(p: _Problem, u: int, w: int, assigned: list[int], images: list[int]) -> int:
    """Label cost plus the edges between u (w) and the assigned part that u -> w does not keep."""
    s1, s2 = np.array(assigned, dtype=np.int64), np.array(images, dtype=np.int64)
    kept = p.a1[s1, u] @ p.a2[s2, w] + p.a1[u, s1] @ p.a2[w, s2]
    touching = p.a1[s1, u].sum() + p.a1[u, s1].sum() + p.a2[s2, w].sum() + p.a2[w, s2].sum()
    return int(p.mismatch[u, w] + touching - 2 * kept)


def _twins(adjacency: np.ndarray, labels: np.ndarray) -> list[list[int]]:
    keys = [(int(labels[u]), adjacency[:, u].tobytes(), adjacency[u].tobytes()) for u in range(len(labels))]
    return [[v for v in range(len(keys)) if keys[v] == keys[u]] for u in range(len(keys))]


def _twin_order_allows(p: _Problem, u: int, w: int, assigned: list[int], images: list[int]) -> bool:
    image = dict(zip(assigned, images))
    return all(image[t] < w if t < u else image[t] > w for t in p.twins[u] if t in image)


def _cost(p: _Problem, perm: Sequence[int]) -> int:
    perm = np.asarray(perm)
    kept = (p.a1 * p.a2[np.ix_(perm, perm)]).sum()
    return int(p.mismatch[np.arange(len(perm)), perm].sum() + p.a1.sum() + p.a2.sum() - 2 * kept)


def _local_search(p: _Problem, perm: list[int]) -> int:
    """Swap two images while that lowers the cost; returns the cost reached."""
    best, improved = _cost(p, perm), True
    while improved:
        improved = False
        for i in range(len(perm)):
            for j in range(i + 1, len(perm)):
                perm[i], perm[j] = perm[j], perm[i]
                cost = _cost(p, perm)
                if cost < best:
                    best, improved = cost, True
                else:
                    perm[i], perm[j] = perm[j], perm[i]
    return best
