"""Structural similarity measures: hand-made cases, the closed-form GED against networkx, vectorisation."""

from __future__ import annotations

import random

import pytest
from scipy.spatial.distance import squareform

from enas_tui.search_space import Architecture, random_architecture
from enas_tui.similarity import (
    SimilarityError,
    architecture_matrices,
    common_activations,
    common_connections,
    graph_edit_distance,
    networkx_ged,
    pairwise_measures,
)

# a: acts (tanh, relu, identity, sigmoid), parents (0, 1, 0): reads {0, 1}, leaves {2, 3}
A = Architecture.parse("tanh,0:relu,1:identity,0:sigmoid")
# b: acts (tanh, tanh, identity, relu),    parents (0, 0, 2): reads {0, 2}, leaves {1, 3}
B = Architecture.parse("tanh,0:tanh,0:identity,2:relu")


def test_hand_made_pair() -> None:
    # activations agree at nodes 0 (tanh) and 2 (identity)
    assert common_activations(A, B) == 2
    # parents agree only at node 1 (both 0); node 2: 1 vs 0, node 3: 0 vs 2
    assert common_connections(A, B) == 1
    # relabel nodes 1, 3 (2) + rewire nodes 2, 3 (2 x 2 edges) + leaves {2,3} ^ {1,3} = {1,2} (2)
    # edges listed: a-only {1->2, 0->3, 2->out}, b-only {0->2, 2->3, 1->out}: 6 edges + 2 relabels
    assert graph_edit_distance(A, B) == 8
    assert graph_edit_distance(B, A) == 8


def test_identical_architectures() -> None:
    assert common_activations(A, A) == 4
    assert common_connections(A, A) == 3
    assert graph_edit_distance(A, A) == 0


def test_single_node() -> None:
    tanh, relu = Architecture.parse("tanh"), Architecture.parse("relu")
    assert common_connections(tanh, relu) == 0
    assert graph_edit_distance(tanh, relu) == 1  # one relabel; both graphs are x, h_prev -> 0 -> out


def test_different_sizes_rejected() -> None:
    with pytest.raises(SimilarityError, match="3 and 4 nodes"):
        graph_edit_distance(Architecture.parse("tanh,0:relu,0:relu"), A)
    with pytest.raises(SimilarityError):
        pairwise_measures([A, Architecture.parse("tanh")])


def _random_pairs(sizes: range, per_size: int, seed: int) -> list[tuple[Architecture, Architecture]]:
    rng = random.Random(seed)
    return [
        (random_architecture(n, rng), random_architecture(n, rng)) for n in sizes for _ in range(per_size)
    ]


def test_closed_form_equals_networkx_with_fixed_correspondence() -> None:
    # networkx's exact search is quick here because the 1e6 substitutions prune everything else
    # (about 10 ms a pair at 5 nodes); 200 pairs take about 2 s.
    for a, b in _random_pairs(range(2, 6), per_size=50, seed=0):
        assert networkx_ged(a, b, fixed_correspondence=True) == graph_edit_distance(a, b), (a, b)


def test_closed_form_bounds_unconstrained_networkx() -> None:
    # The unconstrained search is slow (about 0.05 s a pair at 3 nodes, 0.3 s at 4, 1 s at 5):
    # fewer, smaller pairs.
    pairs = _random_pairs(range(2, 3), 20, seed=1) + _random_pairs(range(3, 4), 10, seed=2)
    pairs += _random_pairs(range(4, 5), 2, seed=3)
    for a, b in pairs:
        assert networkx_ged(a, b, fixed_correspondence=False) <= graph_edit_distance(a, b), (a, b)


def test_fixed_correspondence_is_really_forced() -> None:
    # Nodes 1 and 2 swap activations: matching 1 <-> 2 costs nothing, the fixed order costs 2 relabels.
    a = Architecture.parse("tanh,0:relu,0:sigmoid")
    b = Architecture.parse("tanh,0:sigmoid,0:relu")
    assert networkx_ged(a, b, fixed_correspondence=False) == 0
    assert networkx_ged(a, b, fixed_correspondence=True) == 2 == graph_edit_distance(a, b)


@pytest.mark.parametrize(("num_nodes", "count", "seed"), [(12, 30, 0), (3, 25, 1), (1, 5, 2)])
def test_pairwise_matches_scalar(num_nodes: int, count: int, seed: int) -> None:
    rng = random.Random(seed)
    archs = [random_architecture(num_nodes, rng) for _ in range(count)]
    archs.append(archs[0])  # an identical pair too
    measures = pairwise_measures(archs)
    scalar = {
        "common_activations": common_activations,
        "common_connections": common_connections,
        "ged": graph_edit_distance,
    }
    assert set(measures) == set(scalar)
    for name, fn in scalar.items():
        vector = measures[name]
        assert vector.shape == (len(archs) * (len(archs) - 1) // 2,)
        square = squareform(vector, checks=False)  # scipy's own condensed order
        for i in range(len(archs)):
            for j in range(i + 1, len(archs)):
                assert square[i, j] == fn(archs[i], archs[j]), (name, i, j)


def test_pairwise_small_sets() -> None:
    for archs in ([], [A]):
        assert all(v.shape == (0,) for v in pairwise_measures(archs).values())


def test_leaf_mask() -> None:
    _, _, leaves = architecture_matrices([A, B])
    assert leaves.tolist() == [[False, False, True, True], [False, True, False, True]]
