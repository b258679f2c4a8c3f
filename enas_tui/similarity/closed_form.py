"""The measures with a closed form, for one pair and vectorised over many pairs.

What each counts (N nodes; a and b have equal N):

- ``common_activations_aligned``: nodes i in 0..N-1 with the same activation (0..N).
- ``common_activations_paper``: node 0 if its activation agrees; node j >= 1 if both its parent and
  its activation agree; plus the nodes that are leaves in both cells (0..2N-1).
- ``common_connections``: nodes j >= 1 with the same parent (0..N-1).
- ``ged_aligned``: GED of the labelled graphs (``to_graph()``) with the node correspondence fixed
  by decision order (x <-> x, h_prev <-> h_prev, i <-> i, out <-> out), unit costs. Every edit is
  then local: node i is relabelled iff activations differ (N - common activations); x, h_prev -> 0
  are in both graphs; node j >= 1 has one incoming edge, from its parent, so a different parent is
  one deletion and one insertion (2 (N - 1 - common connections)); leaf -> out differs for the
  leaves of exactly one cell (|leaves(a) xor leaves(b)|). An upper bound on the unconstrained GED.
- ``paper_aligned_bound``: the same on the paper's structure-only graphs (no relabelling; avg ->
  h[t] is in both): 2 (N - 1 - common connections) + |leaves(a) xor leaves(b)|. An upper bound on
  their exact GED, used where networkx's first value does not come within the time cap.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from enas_tui.search_space import Architecture


class SimilarityError(ValueError):
    """Architectures that cannot be compared (e.g. different numbers of nodes), or an unknown measure."""


def check_same_size(a: Architecture, b: Architecture) -> int:
    if a.num_nodes != b.num_nodes:
        raise SimilarityError(f"cannot compare architectures of {a.num_nodes} and {b.num_nodes} nodes")
    return a.num_nodes


# -- one pair ------------------------------------------------------------------------------------
def common_activations_aligned(a: Architecture, b: Architecture) -> int:
    """Nodes whose activations agree."""
    check_same_size(a, b)
    return sum(x == y for x, y in zip(a.activations, b.activations))


def common_activations_paper(a: Architecture, b: Architecture) -> int:
    """The authors' count: nodes whose parent and activation both agree (node 0: its activation), plus common leaves."""
    check_same_size(a, b)
    same = int(a.activations[0] == b.activations[0])
    same += sum(pa == pb and xa == xb
                for pa, pb, xa, xb in zip(a.parents, b.parents, a.activations[1:], b.activations[1:]))
    return same + len(set(a.leaves) & set(b.leaves))


def common_connections(a: Architecture, b: Architecture) -> int:
    """Nodes j >= 1 that read the same parent."""
    check_same_size(a, b)
    return sum(x == y for x, y in zip(a.parents, b.parents))


def ged_aligned(a: Architecture, b: Architecture) -> int:
    """GED of the labelled graphs with node i <-> node i (closed form, see the module docstring)."""
    n = check_same_size(a, b)
    relabels = n - common_activations_aligned(a, b)
    return relabels + paper_aligned_bound(a, b)


def paper_aligned_bound(a: Architecture, b: Architecture) -> int:
    """Structure-only GED of the paper graphs with node i <-> node i: rewired parents and leaves."""
    n = check_same_size(a, b)
    return 2 * (n - 1 - common_connections(a, b)) + len(set(a.leaves) ^ set(b.leaves))


# -- many pairs ----------------------------------------------------------------------------------
def architecture_matrices(archs: Sequence[Architecture]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(n, N) activations, (n, N-1) parents and (n, N) leaf mask of equally sized architectures."""
    if not archs:
        return np.zeros((0, 0), np.int64), np.zeros((0, 0), np.int64), np.zeros((0, 0), bool)
    n_nodes = archs[0].num_nodes
    for arch in archs:
        check_same_size(archs[0], arch)
    acts = np.array([arch.activations for arch in archs], dtype=np.int64).reshape(len(archs), n_nodes)
    parents = np.array([arch.parents for arch in archs], dtype=np.int64).reshape(len(archs), n_nodes - 1)
    is_read = np.zeros((len(archs), n_nodes), dtype=bool)
    is_read[np.arange(len(archs))[:, None], parents] = True
    return acts, parents, ~is_read


def closed_form_pairs(archs: Sequence[Architecture], left: np.ndarray, right: np.ndarray) -> dict[str, np.ndarray]:
    """Every closed-form measure for the pairs (left[k], right[k]), gathered with index arrays.

    The live diagnostics recompute these for every probe set (4,950 pairs at n = 100), so pairs
    are compared in one vectorised step, never looped in Python.
    """
    acts, parents, leaves = architecture_matrices(archs)
    n_nodes = acts.shape[1]
    same_act = acts[left] == acts[right]
    same_parent = parents[left] == parents[right]
    common_acts = same_act.sum(axis=1)
    common_conns = same_parent.sum(axis=1)
    leaf_diff = (leaves[left] != leaves[right]).sum(axis=1)
    common_leaves = (leaves[left] & leaves[right]).sum(axis=1)
    paper_acts = same_act[:, :1].sum(axis=1) + (same_act[:, 1:] & same_parent).sum(axis=1) + common_leaves
    bound = 2 * (n_nodes - 1 - common_conns) + leaf_diff
    return {
        "common_activations_paper": paper_acts.astype(np.int64),
        "common_activations_aligned": common_acts.astype(np.int64),
        "common_connections": common_conns.astype(np.int64),
        "ged_aligned": ((n_nodes - common_acts) + bound).astype(np.int64),
        "paper_aligned_bound": bound.astype(np.int64),
    }
