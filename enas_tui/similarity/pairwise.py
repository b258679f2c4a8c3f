"""Every pair of a probe set, for any of the measures, in scipy ``pdist`` order, with statistics.

The cheap measures are one vectorised pass (about a millisecond for 4,950 pairs). The costly ones
(``ged_paper``, ``ged_exact``) first merge identical architectures (a collapsed controller samples
the same cell again and again), solve each distinct pair once, and spread the pairs over
``workers``: threads for the compiled exact kernel (it releases the GIL), processes for networkx.

What was done is in the result's ``stats``: for each measure computed, a ``MeasureStats`` with the
pairs it covers, the distinct pairs solved, the seconds, and for ``ged_paper`` how many pairs hit
the time cap and got the aligned upper bound instead.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from enas_tui.search_space import Architecture
from enas_tui.similarity import exact
from enas_tui.similarity.closed_form import SimilarityError, architecture_matrices, closed_form_pairs
from enas_tui.similarity.graphs import labelled_arrays
from enas_tui.similarity.paper_ged import PAPER_GED_TIMEOUT, paper_ged_pairs

CHEAP_MEASURES: tuple[str, ...] = (
    "common_activations_paper", "common_activations_aligned", "common_connections", "ged_aligned",
)
COSTLY_MEASURES: tuple[str, ...] = ("ged_paper", "ged_exact")
MEASURES: tuple[str, ...] = (
    "common_activations_paper", "common_activations_aligned", "common_connections",
    "ged_paper", "ged_aligned", "ged_exact",
)


@dataclass(frozen=True)
class MeasureStats:
    """How one measure's column was computed."""

    pairs: int             # pairs in the column: n (n - 1) / 2
    computed: int          # pairs actually solved (identical architectures merged; 0 for cheap ones)
    seconds: float         # wall time (the cheap measures share one pass and each report its time)
    fallbacks: int = 0     # ged_paper: pairs past the time cap, given the aligned upper bound
    search_nodes: int = 0  # ged_exact: branch-and-bound nodes over all solved pairs
    workers: int = 1


class PairwiseMeasures(dict):
    """Condensed columns by measure name (a plain dict to callers), with ``stats`` by measure name."""

    def __init__(self, columns: dict[str, np.ndarray], stats: dict[str, MeasureStats]) -> None:
        super().__init__(columns)
        self.stats = stats


def pairwise_measures(
    archs: Sequence[Architecture],
    measures: Sequence[str] | None = None,
    *,
    ged_timeout: float | None = PAPER_GED_TIMEOUT,
    workers: int = 1,
) -> PairwiseMeasures:
    """The chosen measures (default: the cheap ones) for every pair i < j, row-major (pdist order).

    ``ged_timeout`` caps networkx's search for each ``ged_paper`` pair (seconds; None: no cap).
    ``workers`` > 1 spreads the costly measures over that many threads or processes.
    """
    chosen = CHEAP_MEASURES if measures is None else tuple(measures)
    unknown = [m for m in chosen if m not in MEASURES]
    if unknown:
        raise SimilarityError(f"unknown measure {unknown[0]!r} (choose from {', '.join(MEASURES)})")
    if workers < 1:
        raise SimilarityError(f"workers must be at least 1, got {workers}")
    archs = list(archs)
    architecture_matrices(archs)  # one size for all, or SimilarityError
    left, right = np.triu_indices(len(archs), k=1)
    columns: dict[str, np.ndarray] = {}
    stats: dict[str, MeasureStats] = {}
    cheap = [m for m in chosen if m in CHEAP_MEASURES]
    if cheap:
        start = time.perf_counter()
        closed = closed_form_pairs(archs, left, right)
        seconds = time.perf_counter() - start
        for name in cheap:
            columns[name] = closed[name]
            stats[name] = MeasureStats(pairs=len(left), computed=0, seconds=seconds)
    if "ged_paper" in chosen:
        columns["ged_paper"], stats["ged_paper"] = _paper_column(archs, left, right, ged_timeout, workers)
    if "ged_exact" in chosen:
        columns["ged_exact"], stats["ged_exact"] = _exact_column(archs, left, right, workers)
    return PairwiseMeasures({name: columns[name] for name in chosen}, stats)


def _distinct(archs: list[Architecture]) -> tuple[list[Architecture], np.ndarray]:
    """The distinct architectures, and each input's index among them."""
    index: dict[Architecture, int] = {}
    which = np.array([index.setdefault(arch, len(index)) for arch in archs], dtype=np.int64)
    return list(index), which


def _exact_column(archs: list[Architecture], left: np.ndarray, right: np.ndarray,
                  workers: int) -> tuple[np.ndarray, MeasureStats]:
    start = time.perf_counter()
    distinct, which = _distinct(archs)
    a, b = which[left], which[right]
    differ = a != b  # identical cells are at distance 0
    pairs = np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1)[differ]  # the GED is symmetric
    todo, back = np.unique(pairs, axis=0, return_inverse=True)
    column = np.zeros(len(left), dtype=np.int64)
    nodes = 0
    if len(todo):
        arrays = labelled_arrays(distinct)
        if exact.COMPILED or workers == 1:
            result = exact.solve_pairs(arrays, todo, workers=workers)
            costs, nodes = result.costs, int(result.nodes.sum())
        else:
            parts = _in_processes(_exact_chunk, arrays, todo, workers)
            costs = np.concatenate([c for c, _ in parts])
            nodes = int(sum(n.sum() for _, n in parts))
        column[differ] = costs[back.reshape(-1)]
    seconds = time.perf_counter() - start
    return column, MeasureStats(len(left), len(todo), seconds, search_nodes=nodes, workers=workers)


def _paper_column(archs: list[Architecture], left: np.ndarray, right: np.ndarray,
                  timeout: float | None, workers: int) -> tuple[np.ndarray, MeasureStats]:
    if timeout is not None and timeout <= 0:
        raise SimilarityError(f"the GED time cap must be positive, got {timeout}")
    start = time.perf_counter()
    distinct, which = _distinct(archs)
    # networkx's first value depends on which graph comes first, and is not always 0 for two
    # copies of one graph: keep the pdist direction and compute identical pairs too.
    todo, back = np.unique(np.stack([which[left], which[right]], axis=1), axis=0, return_inverse=True)
    column = np.zeros(len(left), dtype=np.int64)
    fallbacks = 0
    if len(todo):
        if workers == 1:
            values, fell_back = paper_ged_pairs(distinct, todo, timeout)
        else:
            parts = _in_processes(_paper_chunk, (distinct, timeout), todo, workers)
            values = np.concatenate([v for v, _ in parts])
            fell_back = np.concatenate([f for _, f in parts])
        column = values[back.reshape(-1)]
        fallbacks = int(fell_back.sum())
    seconds = time.perf_counter() - start
    return column, MeasureStats(len(left), len(todo), seconds, fallbacks=fallbacks, workers=workers)


# -- process workers (module-level functions, so a spawned process can import them) ---------------
def _paper_chunk(context: tuple[list[Architecture], float | None], pairs: np.ndarray):
    distinct, timeout = context
    return paper_ged_pairs(distinct, pairs, timeout)


def _exact_chunk(arrays, pairs: np.ndarray):
    result = exact.solve_pairs(arrays, pairs, compiled=False)  # processes only serve the Python search
    return result.costs, result.nodes


def _in_processes(fn: Callable, context: object, pairs: np.ndarray, workers: int) -> list:
    """``fn(context, chunk)`` over chunks of ``pairs`` in ``workers`` spawned processes, in order.

    Spawned, not forked: the trainer and the dashboard run threads, which a fork would copy mid-lock.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    chunks = np.array_split(pairs, min(len(pairs), workers * 8))
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        return list(pool.map(fn, [context] * len(chunks), chunks))
