"""How alike two architectures are: the structural measures of the paper's Table 1, in each reading.

Table 1 correlates hidden-state distances with "# common activations", "# common connections" and
"GED". The paper does not define them; the authors' analysis code does, and differs from the
obvious reading, so both are here, named apart (``diagnostics`` maps a Table 1 column to one):

=============================  ==================================================================
``common_activations_paper``   the authors' count: node 0 if its activation agrees; node j >= 1 if
                               its parent *and* its activation agree; plus the nodes that are
                               leaves in both cells. 0..2N-1.
``common_activations_aligned`` nodes i with the same activation at the same index. 0..N.
``common_connections``         nodes j >= 1 with the same parent (one definition). 0..N-1.
``ged_paper``                  the authors' GED: structure only (no activations), on the graphs
                               ENAS-pytorch builds (x[t], h[t-1], 0..N-1, avg, h[t]), the *first*
                               value of networkx ``optimize_graph_edit_distance`` (default unit
                               costs), with a per-pair time cap; past the cap, an upper bound
                               (``paper_aligned_bound``), counted (``paper_ged.py``).
``ged_aligned``                GED of our labelled graphs (x, h_prev, 0..N-1 labelled by
                               activation, out; relabel, node and edge insert/delete cost 1) with
                               the node correspondence fixed by decision order: a closed form,
                               O(N) (``closed_form.py``). An upper bound on ``ged_exact``.
``ged_exact``                  the unconstrained exact GED of the same labelled graphs, from a
                               purpose-built branch and bound (``exact.py``).
=============================  ==================================================================

Why three GEDs: ``ged_aligned`` is nearly a linear function of the two "common" counts
(correlation about 0.9 on random cells), so its Spearman sign is tied to theirs; ``ged_paper``
is what the paper reported, an approximation that depends on networkx's search order;
``ged_exact`` is the quantity both approximate. The benchmark (benchmarks/similarity.py) measures
how far apart they are.

The cheap measures (vectorised, microseconds per pair) are what ``pairwise_measures`` computes by
default; ``ged_paper`` (~4 ms a pair) and ``ged_exact`` (~0.6 ms a pair compiled) on request.

No torch here: the dashboard computes these live.
"""

from __future__ import annotations

from enas_tui.search_space import Architecture
from enas_tui.similarity.closed_form import (
    SimilarityError,
    architecture_matrices,
    check_same_size,
    common_activations_aligned,
    common_activations_paper,
    common_connections,
    ged_aligned,
    paper_aligned_bound,
)
from enas_tui.similarity.exact import COMPILED as EXACT_COMPILED
from enas_tui.similarity.exact import ExactGEDTimeout, exact_ged
from enas_tui.similarity.graphs import GraphError, paper_graph
from enas_tui.similarity.pairwise import (
    CHEAP_MEASURES,
    COSTLY_MEASURES,
    MEASURES,
    MeasureStats,
    PairwiseMeasures,
    pairwise_measures,
)
from enas_tui.similarity.paper_ged import PAPER_GED_TIMEOUT, PaperGED, ged_paper, paper_ged

# The names before the readings were split; kept until every caller has moved to the new ones.
common_activations = common_activations_aligned
graph_edit_distance = ged_aligned

__all__ = [
    "CHEAP_MEASURES", "COSTLY_MEASURES", "EXACT_COMPILED", "MEASURES", "PAPER_GED_TIMEOUT",
    "ExactGEDTimeout", "GraphError", "MeasureStats", "PairwiseMeasures", "PaperGED", "SimilarityError",
    "architecture_matrices", "common_activations_aligned", "common_activations_paper",
    "common_connections", "exact_ged", "ged_aligned", "ged_exact", "ged_paper", "ged_paper_exact",
    "networkx_ged", "pairwise_measures", "paper_aligned_bound", "paper_ged", "paper_graph",
]

_FORBIDDEN = 1e6  # substitution cost that no optimal edit path can afford


def ged_exact(a: Architecture, b: Architecture, *, timeout: float | None = None) -> int:
    """Unconstrained exact GED of the labelled graphs (``to_graph()``), unit costs.

    ``timeout`` (seconds): raise ExactGEDTimeout rather than search longer (large cells).
    """
    check_same_size(a, b)
    return exact_ged(a.to_graph(), b.to_graph(), label="activation", timeout=timeout)


def ged_paper_exact(a: Architecture, b: Architecture, *, timeout: float | None = None) -> int:
    """Exact structure-only GED of the paper graphs: what ``ged_paper``'s first value approximates."""
    check_same_size(a, b)
    return exact_ged(paper_graph(a), paper_graph(b), timeout=timeout)


def networkx_ged(a: Architecture, b: Architecture, fixed_correspondence: bool = False, *,
                 upper_bound: float | None = None) -> float:
    """networkx's exact GED between the labelled cell graphs, for cross-checks (slow beyond ~5 nodes).

    Unconstrained, relabelling costs 1 when activations differ (x/h_prev/out carry None).
    With ``fixed_correspondence`` substituting a node by one of another identity costs 1e6, which
    forces node i <-> node i: networkx's ``node_match`` could not, as a mismatch there costs only 1.
    Deleting and re-inserting a node never beats substituting it (2 plus all its edges), so the
    optimum is exactly the fixed-correspondence distance. ``upper_bound`` (e.g. ``ged_aligned``)
    prunes networkx's search without changing its answer when it is a true upper bound.
    """
    import networkx as nx

    check_same_size(a, b)
    g1, g2 = _named_graph(a), _named_graph(b)

    def relabel(u: dict, v: dict) -> float:
        if fixed_correspondence and u["name"] != v["name"]:
            return _FORBIDDEN
        return 0.0 if u["activation"] == v["activation"] else 1.0

    def one(*_: object) -> float:
        return 1.0

    return float(
        nx.graph_edit_distance(
            g1, g2,
            node_subst_cost=relabel, node_del_cost=one, node_ins_cost=one,
            edge_del_cost=one, edge_ins_cost=one, upper_bound=upper_bound,
        )
    )


def _named_graph(arch: Architecture):
    """``to_graph()`` with each node's identity copied into its attributes (cost callables see only those)."""
    graph = arch.to_graph()
    for node, attrs in graph.nodes(data=True):
        attrs["name"] = node
    return graph
