"""The two graph forms of a cell that the edit distances compare, as networkx graphs and as arrays.

- **labelled** (ours): ``Architecture.to_graph()``: ``x``, ``h_prev`` -> 0, parent -> child,
  leaf -> ``out``; nodes 0..N-1 carry their activation, the other three carry None.
- **paper** (the authors'): structure only, as ENAS-pytorch builds a cell: ``x[t]``, ``h[t-1]`` -> 0,
  parent -> child, leaf -> ``avg``, ``avg`` -> ``h[t]``. Nodes are inserted in that order
  (x[t], h[t-1], 0..N-1, avg, h[t]); networkx's *first* approximate edit distance depends on it.

The exact solver takes a batch of equally sized graphs as arrays: an int32 label per node and a
uint64 bit mask of each node's out-neighbours (so at most 64 nodes). Cells are converted with
index arrays, never a Python loop over nodes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from enas_tui.search_space import Architecture

MAX_NODES = 64  # one uint64 mask of out-neighbours per node
NO_LABEL = -1   # the label of x, h_prev and out in the labelled form
PAPER_INPUTS: tuple[str, str] = ("x[t]", "h[t-1]")
PAPER_OUTPUTS: tuple[str, str] = ("avg", "h[t]")


class GraphError(ValueError):
    """Graphs the exact solver cannot take (too many nodes, self-loops, undirected)."""


@dataclass(frozen=True)
class GraphArrays:
    """A batch of G graphs of n nodes: ``labels`` (G, n) int32, ``masks`` (G, n) uint64 out-neighbours."""

    labels: np.ndarray
    masks: np.ndarray

    @property
    def num_nodes(self) -> int:
        return int(self.labels.shape[1])

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def adjacency(self, graph: int) -> np.ndarray:
        """(n, n) bool adjacency of one graph, ``[u, v]`` true for an edge u -> v."""
        bits = np.uint64(1) << np.arange(self.num_nodes, dtype=np.uint64)
        return (self.masks[graph][:, None] & bits[None, :]) != 0


def paper_graph(arch: Architecture):
    """The authors' structure-only DiGraph of a cell (see the module docstring)."""
    import networkx as nx

    graph = nx.DiGraph()
    graph.add_nodes_from([*PAPER_INPUTS, *range(arch.num_nodes), *PAPER_OUTPUTS])
    graph.add_edges_from((source, 0) for source in PAPER_INPUTS)
    graph.add_edges_from((parent, node) for node, parent in enumerate(arch.parents, start=1))
    graph.add_edges_from((leaf, PAPER_OUTPUTS[0]) for leaf in arch.leaves)
    graph.add_edge(*PAPER_OUTPUTS)
    return graph


def labelled_arrays(archs: Sequence[Architecture]) -> GraphArrays:
    """Arrays of the labelled form, node order x, h_prev, 0..N-1, out (``to_graph()``'s order)."""
    labels, masks = _cell_arrays(archs, extra_outputs=0)
    labels[:, 2:-1] = [arch.activations for arch in archs]
    return GraphArrays(labels, masks)


def paper_arrays(archs: Sequence[Architecture]) -> GraphArrays:
    """Arrays of the paper form, node order x[t], h[t-1], 0..N-1, avg, h[t]; every label equal."""
    labels, masks = _cell_arrays(archs, extra_outputs=1)
    labels[:] = 0
    masks[:, -2] = np.uint64(1) << np.uint64(labels.shape[1] - 1)  # avg -> h[t]
    return GraphArrays(labels, masks)


def _cell_arrays(archs: Sequence[Architecture], extra_outputs: int) -> tuple[np.ndarray, np.ndarray]:
    """Labels (all NO_LABEL) and masks of inputs -> 0, parent -> child, leaf -> the first output."""
    count = len(archs)
    num_nodes = archs[0].num_nodes if archs else 1
    if any(arch.num_nodes != num_nodes for arch in archs):
        raise GraphError("the architectures of one batch must have the same number of nodes")
    size = num_nodes + 3 + extra_outputs
    if size > MAX_NODES:
        raise GraphError(f"the exact solver takes graphs of up to {MAX_NODES} nodes, cells of "
                         f"{num_nodes} make {size}")
    labels = np.full((count, size), NO_LABEL, dtype=np.int32)
    masks = np.zeros((count, size), dtype=np.uint64)
    bit = np.uint64(1) << np.arange(size, dtype=np.uint64)
    masks[:, :2] = bit[2]  # both inputs feed node 0
    if count and num_nodes > 1:
        parents = np.array([arch.parents for arch in archs], dtype=np.int64)
        rows = np.repeat(np.arange(count), num_nodes - 1)
        children = np.tile(np.arange(1, num_nodes), count)
        np.bitwise_or.at(masks, (rows, 2 + parents.ravel()), bit[2 + children])
    is_leaf = masks[:, 2 : 2 + num_nodes] == 0  # nothing read yet: no children
    masks[:, 2 : 2 + num_nodes][is_leaf] = bit[2 + num_nodes]
    return labels, masks


def networkx_arrays(graphs: Sequence, label: str | None = None) -> GraphArrays:
    """Arrays of any small DiGraphs, node order as inserted; smaller graphs padded to the largest.

    With ``label``, nodes are labelled by that attribute (missing: None); without, structure only.
    A padding node has no edges and a label of its own, so matching a real node to it costs 1, a
    deletion or insertion: the padded bijection problem has the same optimum as the GED.
    """
    for graph in graphs:
        if not graph.is_directed() or graph.is_multigraph():
            raise GraphError("the exact solver takes simple directed graphs (networkx DiGraph)")
        if any(u == v for u, v in graph.edges):
            raise GraphError("the exact solver does not take self-loops")
    size = max((graph.number_of_nodes() for graph in graphs), default=0)
    if size > MAX_NODES:
        raise GraphError(f"the exact solver takes graphs of up to {MAX_NODES} nodes, got {size}")
    codes: dict[object, int] = {}
    padding = -1
    labels = np.full((len(graphs), max(size, 1)), padding, dtype=np.int32)
    masks = np.zeros((len(graphs), max(size, 1)), dtype=np.uint64)
    for g, graph in enumerate(graphs):
        index = {node: i for i, node in enumerate(graph.nodes)}
        for node, attrs in graph.nodes(data=True):
            value = attrs.get(label) if label is not None else None
            labels[g, index[node]] = codes.setdefault(value, len(codes))
        for u, v in graph.edges:
            masks[g, index[u]] |= np.uint64(1) << np.uint64(index[v])
    return GraphArrays(labels, masks)
