"""How alike two architectures are: the structural measures of the paper's Table 1.

Three measures, each for one pair and, vectorised, for all pairs of a probe set:

- common activations: nodes i with the same activation (0..N);
- common connections: nodes j >= 1 with the same parent (0..N-1);
- graph edit distance (GED) between the ``Architecture.to_graph()`` graphs.

GED, as defined here. Exact GED searches over every node correspondence; at 12 nodes networkx's
exact search does not finish in 30 s for a single pair (REFERENCE.md, "Graph edit distance:
measured cost"), and the paper's 4,950 pairs are out of reach, so the authors took networkx's
first *approximate* value. We instead fix the correspondence by decision order (node i <-> node i,
x <-> x, h_prev <-> h_prev, out <-> out) and count the edits exactly, with unit costs (relabel a
node: 1, insert or delete an edge: 1). Under that correspondence every edit is local:

- node i is relabelled iff its activations differ:      N - common_activations;
- x -> 0 and h_prev -> 0 are in every graph:            0;
- node j >= 1 has exactly one incoming edge, from its parent; if the parents differ, one edge is
  deleted and one inserted:                             2 * (N - 1 - common_connections);
- leaf -> out exists in one graph only for the leaves of exactly one architecture:
                                                        |leaves(a) ^ leaves(b)|.

So ``ged = (N - ca) + 2 (N - 1 - cc) + |leaves(a) ^ leaves(b)|``, O(N) per pair, deterministic,
and a metric. It equals networkx's exact GED when the correspondence is forced (tests check this
on hundreds of small pairs) and is an upper bound on the unconstrained GED, which may match nodes
across positions. Unlike the authors' approximation it does not depend on search order.

No torch here: the dashboard computes these live.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from enas_tui.search_space import Architecture

MEASURES: tuple[str, ...] = ("common_activations", "common_connections", "ged")
_FORBIDDEN = 1e6  # substitution cost that no optimal edit path can afford


class SimilarityError(ValueError):
    """Architectures that cannot be compared (e.g. different numbers of nodes)."""


def _check_same_size(a: Architecture, b: Architecture) -> int:
    if a.num_nodes != b.num_nodes:
        raise SimilarityError(
            f"cannot compare architectures of {a.num_nodes} and {b.num_nodes} nodes"
        )
    return a.num_nodes


# -- one pair --------------------------------------------------------------------------------
def common_activations(a: Architecture, b: Architecture) -> int:
    """Number of nodes whose activations agree."""
    _check_same_size(a, b)
    return sum(x == y for x, y in zip(a.activations, b.activations))


def common_connections(a: Architecture, b: Architecture) -> int:
    """Number of nodes j >= 1 that read the same parent."""
    _check_same_size(a, b)
    return sum(x == y for x, y in zip(a.parents, b.parents))


def graph_edit_distance(a: Architecture, b: Architecture) -> int:
    """GED with the node correspondence fixed by decision order (closed form, see module doc)."""
    n = _check_same_size(a, b)
    relabels = n - common_activations(a, b)
    rewired = 2 * (n - 1 - common_connections(a, b))
    return relabels + rewired + len(set(a.leaves) ^ set(b.leaves))


def networkx_ged(a: Architecture, b: Architecture, fixed_correspondence: bool) -> float:
    """networkx's exact GED between the two cell graphs, for cross-checks (slow beyond ~5 nodes).

    Unconstrained, relabelling costs 1 when activations differ (x/h_prev/out carry None).
    With ``fixed_correspondence`` substituting a node by one of another identity costs 1e6, which
    forces node i <-> node i: networkx's ``node_match`` could not, as a mismatch there costs only 1.
    Deleting and re-inserting a node never beats substituting it (2 plus all its edges), so the
    optimum is exactly the fixed-correspondence distance.
    """
    import networkx as nx

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
            edge_del_cost=one, edge_ins_cost=one,
        )
    )


def _named_graph(arch: Architecture):
    """``to_graph()`` with each node's identity copied into its attributes (cost callables see only those)."""
    graph = arch.to_graph()
    for node, attrs in graph.nodes(data=True):
        attrs["name"] = node
    return graph


# -- all pairs -------------------------------------------------------------------------------
def architecture_matrices(archs: Sequence[Architecture]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, N) activations, (n, N-1) parents and (n, N) leaf mask of equally sized architectures."""
    if not archs:
        return np.zeros((0, 0), np.int64), np.zeros((0, 0), np.int64), np.zeros((0, 0), bool)
    n_nodes = archs[0].num_nodes
    for arch in archs:
        _check_same_size(archs[0], arch)
    acts = np.array([arch.activations for arch in archs], dtype=np.int64).reshape(len(archs), n_nodes)
    parents = np.array([arch.parents for arch in archs], dtype=np.int64).reshape(len(archs), n_nodes - 1)
    is_read = np.zeros((len(archs), n_nodes), dtype=bool)
    is_read[np.arange(len(archs))[:, None], parents] = True
    return acts, parents, ~is_read


def pairwise_measures(archs: Sequence[Architecture]) -> dict[str, np.ndarray]:
    """The three measures for every pair i < j, condensed in ``scipy.spatial.distance.pdist`` order.

    The live diagnostics recompute these for every probe set (4,950 pairs at n = 100), so pairs
    are gathered with index arrays and compared in one vectorised step, never looped in Python.
    """
    acts, parents, leaves = architecture_matrices(archs)
    n_nodes = acts.shape[1]
    left, right = np.triu_indices(len(archs), k=1)  # row-major i < j: pdist's order
    same_act = (acts[left] == acts[right]).sum(axis=1)
    same_parent = (parents[left] == parents[right]).sum(axis=1)
    leaf_diff = (leaves[left] != leaves[right]).sum(axis=1)
    ged = (n_nodes - same_act) + 2 * (n_nodes - 1 - same_parent) + leaf_diff
    return {
        "common_activations": same_act.astype(np.int64),
        "common_connections": same_parent.astype(np.int64),
        "ged": ged.astype(np.int64),
    }

