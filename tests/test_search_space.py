import random

import networkx as nx
import pytest

from enas_tui.search_space import (
    ACTIVATIONS, Architecture, ArchitectureError, decision_labels, decision_sizes, num_decisions,
    random_architecture,
)


def test_text_round_trip_on_random_architectures():
    rng = random.Random(0)
    for nodes in (1, 2, 5, 12):
        for _ in range(50):
            arch = random_architecture(nodes, rng)
            assert Architecture.parse(arch.to_text()) == arch
            assert Architecture.from_decisions(arch.decisions()) == arch


def test_example_text_form():
    arch = Architecture.parse("tanh,0:relu,1:identity,0:sigmoid")
    assert arch.activations == (0, 1, 2, 3)
    assert arch.parents == (0, 1, 0)
    assert arch.leaves == (2, 3)
    assert arch.depths == (0, 1, 2, 1)
    assert arch.decisions() == (0, 0, 1, 1, 2, 0, 3)
    assert arch.tokens() == (0, 4, 1, 5, 2, 4, 3)  # parents offset by the 4 activations


def test_parse_is_lenient_about_spaces_and_case():
    assert Architecture.parse(" TANH , 0:ReLU ") == Architecture((0, 1), (0,))


@pytest.mark.parametrize("text, fragment", [
    ("", "empty"),
    ("tanhh", "field 1 'tanhh'"),
    ("tanh,relu", "field 2 'relu': expected 'parent:activation'"),
    ("tanh,x:relu", "parent 'x' is not an integer"),
    ("tanh,1:relu", "node 1's parent must be in 0..0"),
    ("tanh,0:relu,0:swish", "field 3 '0:swish': unknown activation 'swish'"),
    ("tanh,0:relu,-1:tanh", "field 3"),
])
def test_bad_strings_name_the_field(text, fragment):
    with pytest.raises(ArchitectureError) as err:
        Architecture.parse(text)
    assert fragment in str(err.value)
    assert "\n" not in str(err.value)


def test_constructor_validates():
    with pytest.raises(ArchitectureError):
        Architecture((0, 9), (0,))
    with pytest.raises(ArchitectureError):
        Architecture((0, 0), (1,))
    with pytest.raises(ArchitectureError):
        Architecture((0, 0, 0), (0,))


def test_decision_layout_for_twelve_nodes():
    sizes = decision_sizes(12)
    assert len(sizes) == num_decisions(12) == 23
    assert sizes[:5] == [4, 1, 4, 2, 4] and sizes[-2:] == [11, 4]
    labels = decision_labels(12)
    assert labels[0] == "act 0" and labels[1] == "parent 1" and labels[-1] == "act 11"


def test_graph_has_the_documented_nodes_and_edges():
    arch = Architecture.parse("tanh,0:relu,1:identity,0:sigmoid")
    g = arch.to_graph()
    assert set(g.nodes) == {"x", "h_prev", 0, 1, 2, 3, "out"}
    assert set(g.edges) == {("x", 0), ("h_prev", 0), (0, 1), (1, 2), (0, 3), (2, "out"), (3, "out")}
    assert g.nodes[2]["activation"] == "identity"
    assert nx.is_directed_acyclic_graph(g)


def test_chain_has_one_leaf_and_star_has_many():
    chain = Architecture((0,) * 5, (0, 1, 2, 3))
    star = Architecture((0,) * 5, (0, 0, 0, 0))
    assert chain.leaves == (4,)
    assert star.leaves == (1, 2, 3, 4)
    assert ACTIVATIONS[chain.activations[0]] == "tanh"
