"""The authors' graph edit distance: networkx's first approximate value on structure-only graphs.

Their analysis took the *first* value that ``networkx.optimize_graph_edit_distance`` yields, with
default costs (node substitution 0: no labels; node and edge insertion and deletion 1), on the
graphs of ``graphs.paper_graph``. That value is the cost of the first complete edit path of
networkx's depth-first search: an upper bound on the exact GED that depends on node order.

``optimize_graph_edit_distance`` has no time limit; ``optimize_edit_paths``, which it wraps (with
``strictly_decreasing=True``, the default there too), does, and yields the same costs in the same
order. On random 12-node cells the first value takes ~2.3 ms a pair (median; 99th percentile
8 ms), but rare pairs take 0.4 s or more, so each pair has a cap. A pair that reaches the cap
before any value gets ``closed_form.paper_aligned_bound`` instead, an upper bound on the same
exact GED, and is counted as a fallback so callers can report how many there were.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from enas_tui.search_space import Architecture
from enas_tui.similarity.closed_form import check_same_size, paper_aligned_bound
from enas_tui.similarity.graphs import paper_graph

PAPER_GED_TIMEOUT = 1.0  # seconds per pair before falling back to the aligned bound


@dataclass(frozen=True)
class PaperGED:
    """One pair's paper GED: networkx's first value, or the aligned bound when the cap came first."""

    value: int
    fell_back: bool


def first_value(g1, g2, timeout: float | None = PAPER_GED_TIMEOUT) -> int | None:
    """networkx's first edit-path cost between two graphs, or None when ``timeout`` came first."""
    import networkx as nx

    if timeout is not None and timeout <= 0:
        raise ValueError(f"the GED time cap must be positive, got {timeout}")
    for _, _, cost in nx.optimize_edit_paths(g1, g2, timeout=timeout):
        return int(cost)
    return None


def paper_ged(a: Architecture, b: Architecture, *, timeout: float | None = PAPER_GED_TIMEOUT) -> PaperGED:
    """The authors' GED of two cells, with the fallback made explicit."""
    check_same_size(a, b)
    value = first_value(paper_graph(a), paper_graph(b), timeout)
    if value is None:
        return PaperGED(paper_aligned_bound(a, b), fell_back=True)
    return PaperGED(value, fell_back=False)


def ged_paper(a: Architecture, b: Architecture, *, timeout: float | None = PAPER_GED_TIMEOUT) -> int:
    """The authors' GED of two cells (networkx's first value; the aligned bound past the cap)."""
    return paper_ged(a, b, timeout=timeout).value


def paper_ged_pairs(archs: Sequence[Architecture], pairs: np.ndarray,
                    timeout: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Values and fallback flags for the ordered pairs (i, j) of ``archs``; graphs built once each."""
    graphs: dict[int, object] = {}
    values = np.zeros(len(pairs), dtype=np.int64)
    fell_back = np.zeros(len(pairs), dtype=bool)
    for k, (i, j) in enumerate(np.asarray(pairs).reshape(-1, 2).tolist()):
        for index in (i, j):
            if index not in graphs:
                graphs[index] = paper_graph(archs[index])
        value = first_value(graphs[i], graphs[j], timeout)
        if value is None:
            values[k], fell_back[k] = paper_aligned_bound(archs[i], archs[j]), True
        else:
            values[k] = value
    return values, fell_back
