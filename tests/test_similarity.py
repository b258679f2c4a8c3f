"""Similarity measures: hand-checked cells, the exact solver against networkx and brute force, the
authors' first-value GED and its fallback, and the vectorised all-pairs columns in pdist order."""

from __future__ import annotations

import itertools
import random

import networkx as nx
import numpy as np
import pytest
from scipy.optimize import linear_sum_assignment
from scipy.spatial.distance import squareform

from enas_tui import similarity
from enas_tui.search_space import Architecture, random_architecture
from enas_tui.similarity import (
    CHEAP_MEASURES,
    MEASURES,
    SimilarityError,
    architecture_matrices,
    common_activations_aligned,
    common_activations_paper,
    common_connections,
    exact,
    ged_aligned,
    ged_exact,
    ged_paper,
    ged_paper_exact,
    networkx_ged,
    pairwise_measures,
    paper_aligned_bound,
    paper_ged,
    paper_graph,
)
from enas_tui.similarity.graphs import GraphError, labelled_arrays, networkx_arrays, paper_arrays

pytestmark = pytest.mark.timeout(120)

# a: acts (tanh, relu, identity, sigmoid), parents (0, 1, 0): 0 -> {1, 3}, 1 -> 2; leaves {2, 3}
A = Architecture.parse("tanh,0:relu,1:identity,0:sigmoid")
# b: acts (tanh, tanh, identity, relu),    parents (0, 0, 2): 0 -> {1, 2}, 2 -> 3; leaves {1, 3}
B = Architecture.parse("tanh,0:tanh,0:identity,2:relu")
# p, q: one shape (0 -> {1, 2}), activations (tanh, relu, relu) and (relu, relu, tanh)
P = Architecture.parse("tanh,0:relu,0:relu")
Q = Architecture.parse("relu,0:relu,0:tanh")

needs_kernel = pytest.mark.skipif(not exact.COMPILED, reason="the compiled exact-GED kernel was not built")


# -- hand-checked values -------------------------------------------------------------------------
def test_counts_of_a_hand_made_pair() -> None:
    assert common_activations_aligned(A, B) == 2  # nodes 0 (tanh) and 2 (identity)
    assert common_connections(A, B) == 1          # node 1 (both read 0); node 2: 1 vs 0, node 3: 0 vs 2
    # paper: node 0 (tanh); node 1 same parent but relu vs tanh; nodes 2, 3 other parents; leaf 3
    assert common_activations_paper(A, B) == 2


def test_the_two_readings_of_common_activations_differ() -> None:
    # aligned: only node 1 (relu) agrees. paper: node 0 differs (tanh vs relu); node 1 same parent
    # and activation; node 2 same parent, other activation; leaves {1, 2} are common: 1 + 2 = 3
    assert common_activations_aligned(P, Q) == 1
    assert common_activations_paper(P, Q) == 3
    assert common_activations_paper(A, A) == 4 + 2  # every node, plus both leaves


def test_ged_aligned_of_a_hand_made_pair() -> None:
    # relabel nodes 1, 3 (2) + rewire nodes 2, 3 (2 x 2 edges) + leaves {2,3} ^ {1,3} = {1,2} (2)
    assert ged_aligned(A, B) == ged_aligned(B, A) == 8
    assert paper_aligned_bound(A, B) == 6  # the same without relabels


def test_ged_exact_of_a_hand_made_pair() -> None:
    # The shapes are isomorphic: a's 1 -> 2 chain and leaf 3 under node 0 are b's 2 -> 3 chain and
    # leaf 1. That bijection keeps every edge and relabels three nodes (relu/identity,
    # identity/relu, sigmoid/tanh). Nothing is cheaper: both graphs have 7 edges, so edge edits
    # come in even numbers (7 + 7 - 2 kept); 0 edge edits forces that unique isomorphism (3 relabels),
    # and 2 or more plus at least 1 relabel (a's sigmoid has no partner) is at least 3.
    assert ged_exact(A, B) == ged_exact(B, A) == 3
    # structure only, the paper graphs are isomorphic
    assert ged_paper_exact(A, B) == 0
    # two sibling leaves swap activations: matching 1 <-> 2 costs nothing, the fixed order 2 relabels
    swapped_a, swapped_b = Architecture.parse("tanh,0:relu,0:sigmoid"), Architecture.parse("tanh,0:sigmoid,0:relu")
    assert ged_exact(swapped_a, swapped_b) == 0 and ged_aligned(swapped_a, swapped_b) == 2
    # p and q: same shape; tanh sits at the root of p but at a leaf of q, so no bijection beats the
    # aligned one (node 0 and node 2 relabelled)
    assert ged_exact(P, Q) == ged_aligned(P, Q) == 2


def test_identical_and_single_node_cells() -> None:
    assert (common_activations_aligned(A, A), common_connections(A, A)) == (4, 3)
    assert ged_aligned(A, A) == ged_exact(A, A) == ged_paper(A, A) == ged_paper_exact(A, A) == 0
    tanh, relu = Architecture.parse("tanh"), Architecture.parse("relu")
    assert common_connections(tanh, relu) == 0
    assert common_activations_paper(tanh, relu) == 1  # node 0 is a leaf of both
    assert ged_aligned(tanh, relu) == ged_exact(tanh, relu) == 1  # one relabel
    assert ged_paper(tanh, relu) == ged_paper_exact(tanh, relu) == 0  # structure only: same graph


def test_different_sizes_rejected() -> None:
    three = Architecture.parse("tanh,0:relu,0:relu")
    for measure in (common_activations_paper, common_activations_aligned, common_connections, ged_aligned,
                    ged_paper, ged_exact, ged_paper_exact):
        with pytest.raises(SimilarityError, match="3 and 4 nodes"):
            measure(three, A)
    with pytest.raises(SimilarityError):
        pairwise_measures([A, Architecture.parse("tanh")])


def test_old_names_still_answer() -> None:
    assert similarity.common_activations is common_activations_aligned
    assert similarity.graph_edit_distance is ged_aligned


# -- the paper's graphs ----------------------------------------------------------------------------
def test_paper_graph_nodes_and_edges() -> None:
    graph = paper_graph(A)
    assert isinstance(graph, nx.DiGraph)
    assert list(graph.nodes) == ["x[t]", "h[t-1]", 0, 1, 2, 3, "avg", "h[t]"]
    assert set(graph.edges) == {("x[t]", 0), ("h[t-1]", 0), (0, 1), (1, 2), (0, 3),
                                (2, "avg"), (3, "avg"), ("avg", "h[t]")}
    assert all(not attrs for _, attrs in graph.nodes(data=True))  # structure only


def test_arrays_encode_the_graphs() -> None:
    labelled, paper = labelled_arrays([A, B]), paper_arrays([A, B])
    assert labelled.labels[0].tolist() == [-1, -1, 0, 1, 2, 3, -1]
    assert paper.labels[1].tolist() == [0] * 8
    for arrays, graph in ((labelled, A.to_graph()), (paper, paper_graph(A))):
        index = {node: i for i, node in enumerate(graph.nodes)}
        edges = {(int(u), int(v)) for u, v in zip(*np.nonzero(arrays.adjacency(0)))}
        assert edges == {(index[u], index[v]) for u, v in graph.edges}
    with pytest.raises(GraphError, match="up to 64"):
        labelled_arrays([random_architecture(62)])


# -- the authors' GED ------------------------------------------------------------------------------
def test_ged_paper_is_networkx_first_value() -> None:
    rng = random.Random(4)
    for _ in range(15):
        a, b = random_architecture(8, rng), random_architecture(8, rng)
        first = next(nx.optimize_graph_edit_distance(paper_graph(a), paper_graph(b)))
        result = paper_ged(a, b)
        assert (result.value, result.fell_back) == (first, False)
        assert ged_paper_exact(a, b) <= result.value  # an approximation from above


def test_hand_made_pair_first_value_is_above_exact() -> None:
    # isomorphic shapes (exact 0), but networkx's first edit path does not find the isomorphism
    assert ged_paper(A, B) == next(nx.optimize_graph_edit_distance(paper_graph(A), paper_graph(B))) == 6


def test_ged_paper_falls_back_past_the_time_cap() -> None:
    result = paper_ged(A, B, timeout=1e-9)  # networkx checks the cap before its first edit path
    assert result == similarity.PaperGED(paper_aligned_bound(A, B), fell_back=True)
    archs = [A, B, Architecture.parse("tanh,0:relu,0:relu,0:relu"), A]
    measures = pairwise_measures(archs, ["ged_paper"], ged_timeout=1e-9)
    left, right = np.triu_indices(len(archs), 1)
    assert measures["ged_paper"].tolist() == [paper_aligned_bound(archs[i], archs[j]) for i, j in zip(left, right)]
    stats = measures.stats["ged_paper"]
    # six pairs, six distinct in pdist direction: (a,b) (a,c) (a,a) (b,c) (b,a) (c,a); every one capped
    assert (stats.pairs, stats.computed, stats.fallbacks) == (6, 6, 6)
    with pytest.raises(SimilarityError, match="positive"):
        pairwise_measures(archs, ["ged_paper"], ged_timeout=0)


# -- the exact solver ------------------------------------------------------------------------------
def _random_pairs(sizes: range, per_size: int, seed: int) -> list[tuple[Architecture, Architecture]]:
    rng = random.Random(seed)
    return [(random_architecture(n, rng), random_architecture(n, rng)) for n in sizes for _ in range(per_size)]


def test_ged_exact_equals_networkx_exact() -> None:
    # networkx's exact search takes 0.03 s a pair at 3 nodes, 0.1-0.7 s at 4, up to 3 s at 5-6, even
    # with our aligned value as its upper bound (which only prunes paths costlier than it).
    pairs = _random_pairs(range(2, 4), 40, seed=0) + _random_pairs(range(4, 5), 6, seed=1)
    pairs += _random_pairs(range(5, 7), 1, seed=2)
    for a, b in pairs:
        assert ged_exact(a, b) == networkx_ged(a, b, upper_bound=ged_aligned(a, b)), (a, b)


def test_paper_exact_equals_networkx_exact() -> None:
    for a, b in _random_pairs(range(2, 4), 25, seed=3) + _random_pairs(range(4, 5), 6, seed=4):
        expected = nx.graph_edit_distance(paper_graph(a), paper_graph(b), upper_bound=paper_aligned_bound(a, b))
        assert ged_paper_exact(a, b) == expected, (a, b)


def _brute_force(arrays, i: int, j: int) -> int:
    """Minimum over every bijection (the optimum is one, see exact.py): an independent check."""
    a1, a2 = arrays.adjacency(i), arrays.adjacency(j)
    mismatch = arrays.labels[i][:, None] != arrays.labels[j][None, :]
    perms = np.array(list(itertools.permutations(range(len(a1)))))
    kept = (a1[None] & a2[perms[:, :, None], perms[:, None, :]]).sum(axis=(1, 2))
    relabels = mismatch[np.arange(len(a1)), perms].sum(axis=1)
    return int((relabels + a1.sum() + a2.sum() - 2 * kept).min())


@pytest.mark.parametrize("compiled", [pytest.param(True, marks=needs_kernel), False])
def test_exact_solver_equals_brute_force(compiled: bool) -> None:
    # 5-node cells: 8-node labelled graphs (40,320 bijections); 4-node cells: 8-node paper graphs
    rng = random.Random(5)
    labelled_cells = [random_architecture(5, rng) for _ in range(24)]
    paper_cells = [random_architecture(4, rng) for _ in range(24)]
    pairs = np.array([[k, k + 1] for k in range(0, 24, 2)])
    for arrays in (labelled_arrays(labelled_cells), paper_arrays(paper_cells)):
        got = exact.solve_pairs(arrays, pairs, compiled=compiled).costs
        assert got.tolist() == [_brute_force(arrays, i, j) for i, j in pairs]


@needs_kernel
def test_compiled_and_python_searches_agree_on_twelve_nodes() -> None:
    rng = random.Random(6)
    cells = [random_architecture(12, rng) for _ in range(6)]
    pairs = np.array([[0, 1], [2, 3], [4, 5]])
    for arrays in (labelled_arrays(cells), paper_arrays(cells)):
        compiled = exact.solve_pairs(arrays, pairs, compiled=True)
        python = exact.solve_pairs(arrays, pairs, compiled=False)
        assert compiled.costs.tolist() == python.costs.tolist()
        assert (compiled.nodes > 0).all()


def _assignment_bound(arrays, i: int, j: int) -> float:
    """The bipartite lower bound: labels plus half the in- and out-degree differences, assigned."""
    a1, a2 = arrays.adjacency(i), arrays.adjacency(j)
    cost = (arrays.labels[i][:, None] != arrays.labels[j][None, :]).astype(float)
    cost += 0.5 * np.abs(a1.sum(0)[:, None] - a2.sum(0)[None, :])
    cost += 0.5 * np.abs(a1.sum(1)[:, None] - a2.sum(1)[None, :])
    rows, cols = linear_sum_assignment(cost)
    return float(cost[rows, cols].sum())


def test_exact_sits_between_the_bounds_on_twelve_nodes() -> None:
    rng = random.Random(7)
    cells = [random_architecture(12, rng) for _ in range(25)]  # 300 pairs (about 8 s without the kernel)
    measures = pairwise_measures(cells, ["ged_exact", "ged_aligned"])
    exact_column, aligned = measures["ged_exact"], measures["ged_aligned"]
    arrays = labelled_arrays(cells)
    left, right = np.triu_indices(len(cells), 1)
    lower = np.array([_assignment_bound(arrays, i, j) for i, j in zip(left, right)])
    assert (exact_column <= aligned).all() and (exact_column >= np.ceil(lower)).all()
    assert (exact_column < aligned).mean() > 0.9  # matching nodes across positions helps


def test_exact_ged_of_any_small_digraphs() -> None:
    # different sizes (padding), labels by attribute, and a node order that differs from the identity
    g1 = nx.DiGraph([("a", "b"), ("b", "c"), ("a", "c")])
    nx.set_node_attributes(g1, {"a": "red", "b": "blue", "c": "red"}, "colour")
    g2 = nx.DiGraph([(3, 1), (1, 2), (2, 4)])
    nx.set_node_attributes(g2, {1: "red", 2: "blue", 3: "red", 4: "green"}, "colour")
    for label in ("colour", None):
        expected = nx.graph_edit_distance(
            g1, g2, node_match=(lambda u, v: u.get(label) == v.get(label)) if label else None)
        assert similarity.exact_ged(g1, g2, label=label) == expected
        assert similarity.exact_ged(g1, g2, label=label, compiled=False) == expected
    with pytest.raises(GraphError, match="self-loops"):
        networkx_arrays([nx.DiGraph([(1, 1)])])
    with pytest.raises(GraphError, match="directed"):
        networkx_arrays([nx.Graph([(1, 2)])])


@pytest.mark.parametrize("compiled", [pytest.param(True, marks=needs_kernel), False])
def test_exact_search_gives_up_at_its_time_limit(compiled: bool) -> None:
    rng = random.Random(11)
    big = labelled_arrays([random_architecture(36, rng) for _ in range(2)])  # far beyond a second
    result = exact.solve_pairs(big, np.array([[0, 1], [1, 1]]), time_limit=0.05, compiled=compiled)
    assert result.costs.tolist() == [-1, 0]  # unproven; identical graphs are proven at once
    with pytest.raises(similarity.ExactGEDTimeout, match="not proven within 0.05 s"):
        similarity.exact_ged(paper_graph(random_architecture(36, rng)), paper_graph(random_architecture(36, rng)),
                             timeout=0.05, compiled=compiled)


# -- all pairs -------------------------------------------------------------------------------------
ONE_PAIR = {
    "common_activations_paper": common_activations_paper,
    "common_activations_aligned": common_activations_aligned,
    "common_connections": common_connections,
    "ged_paper": ged_paper,
    "ged_aligned": ged_aligned,
    "ged_exact": ged_exact,
}


def test_measure_names() -> None:
    assert MEASURES == tuple(ONE_PAIR)
    assert set(CHEAP_MEASURES) | set(similarity.COSTLY_MEASURES) == set(MEASURES)
    assert similarity.COSTLY_MEASURES == ("ged_paper", "ged_exact")


@pytest.mark.parametrize(("num_nodes", "count", "seed"), [(12, 12, 0), (3, 10, 1), (1, 4, 2)])
def test_pairwise_matches_one_pair_functions_in_pdist_order(num_nodes: int, count: int, seed: int) -> None:
    rng = random.Random(seed)
    archs = [random_architecture(num_nodes, rng) for _ in range(count)]
    archs.append(archs[0])  # an identical pair too
    measures = pairwise_measures(archs, MEASURES)
    assert list(measures) == list(MEASURES)
    for name, fn in ONE_PAIR.items():
        column = measures[name]
        assert column.shape == (len(archs) * (len(archs) - 1) // 2,)
        square = squareform(column, checks=False)  # scipy's own condensed order
        for i in range(len(archs)):
            for j in range(i + 1, len(archs)):
                assert square[i, j] == fn(archs[i], archs[j]), (name, i, j)


def test_default_is_the_cheap_measures_with_stats() -> None:
    measures = pairwise_measures([A, B, Architecture.parse("tanh,0:relu,0:relu,1:tanh")])
    assert list(measures) == list(CHEAP_MEASURES)
    assert set(measures.stats) == set(CHEAP_MEASURES)
    assert measures.stats["ged_aligned"].pairs == 3 and measures.stats["ged_aligned"].computed == 0


def test_costly_measures_merge_identical_cells_and_report() -> None:
    rng = random.Random(8)
    distinct = [random_architecture(12, rng) for _ in range(5)]
    archs = distinct + distinct[:3] + distinct[:2]  # 10 cells, 5 distinct
    measures = pairwise_measures(archs, ["ged_exact", "ged_paper"])
    stats = measures.stats["ged_exact"]
    assert (stats.pairs, stats.computed) == (45, 10)  # the 10 pairs of 5 distinct cells, once each
    assert stats.search_nodes > 0 and stats.seconds > 0
    square = squareform(measures["ged_exact"])
    assert square[0, 5] == square[1, 9] == 0  # copies of one cell
    assert square[5, 6] == ged_exact(distinct[0], distinct[1])
    assert measures.stats["ged_paper"].fallbacks == 0


@needs_kernel
def test_exact_kernel_in_two_threads_gives_the_same_column() -> None:
    rng = random.Random(9)
    archs = [random_architecture(12, rng) for _ in range(30)]  # 435 pairs: several chunks per thread
    one = pairwise_measures(archs, ["ged_exact"])
    two = pairwise_measures(archs, ["ged_exact"], workers=2)
    assert np.array_equal(one["ged_exact"], two["ged_exact"]) and two.stats["ged_exact"].workers == 2


def test_worker_processes_give_the_same_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    # networkx's first value always runs in processes; the exact search does when there is no kernel
    rng = random.Random(10)
    archs = [random_architecture(6, rng) for _ in range(10)]
    one = pairwise_measures(archs, ["ged_exact", "ged_paper"])
    monkeypatch.setattr(exact, "COMPILED", False)
    two = pairwise_measures(archs, ["ged_exact", "ged_paper"], workers=2)
    for name in ("ged_exact", "ged_paper"):
        assert np.array_equal(one[name], two[name])
        assert two.stats[name].workers == 2
    assert two.stats["ged_exact"].search_nodes > 0


def test_bad_requests() -> None:
    with pytest.raises(SimilarityError, match="unknown measure 'ged'"):
        pairwise_measures([A, B], ["ged"])
    with pytest.raises(SimilarityError, match="workers"):
        pairwise_measures([A, B], workers=0)


def test_pairwise_small_sets() -> None:
    for archs in ([], [A]):
        measures = pairwise_measures(archs, MEASURES)
        assert all(v.shape == (0,) for v in measures.values())


def test_leaf_mask() -> None:
    _, _, leaves = architecture_matrices([A, B])
    assert leaves.tolist() == [[False, False, True, True], [False, True, False, True]]
