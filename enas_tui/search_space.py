"""The ENAS recurrent-cell search space: architectures, their text form, decisions and graphs.

An architecture of N nodes is the activation of node 0, then (parent, activation) for nodes
1..N-1, where a parent is any earlier node. The controller emits it as 2N-1 decisions; the user
reads and types it as text, e.g. ``tanh,0:relu,1:identity,0:sigmoid``.

This module is pure Python (networkx only for the graph view) so that every layer, the torch-free
dashboard included, can use it.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from functools import cached_property

ACTIVATIONS: tuple[str, ...] = ("tanh", "relu", "identity", "sigmoid")
NUM_ACTIVATIONS = len(ACTIVATIONS)
DEFAULT_NUM_NODES = 12


class ArchitectureError(ValueError):
    """A malformed architecture (text, decisions or fields); the message names the bad part."""


def num_decisions(num_nodes: int) -> int:
    """Decisions per architecture: node 0's activation, then (parent, activation) per later node."""
    return 2 * num_nodes - 1


def decision_sizes(num_nodes: int) -> list[int]:
    """Number of options at each decision step: 4 for an activation, j for node j's parent."""
    sizes = [NUM_ACTIVATIONS]
    for node in range(1, num_nodes):
        sizes += [node, NUM_ACTIVATIONS]
    return sizes


def decision_labels(num_nodes: int) -> list[str]:
    """Short human labels for each decision step, e.g. ``act 0``, ``parent 3``."""
    labels = ["act 0"]
    for node in range(1, num_nodes):
        labels += [f"parent {node}", f"act {node}"]
    return labels


def decision_is_parent(num_nodes: int) -> list[bool]:
    """Whether each decision step chooses a parent (True) or an activation (False)."""
    return [False] + [step % 2 == 1 for step in range(1, num_decisions(num_nodes))]


def token_of(step: int, choice: int) -> int:
    """Controller embedding token for a decision: activation a -> a, parent j -> 4 + j."""
    return choice if step % 2 == 0 else NUM_ACTIVATIONS + choice


def num_tokens(num_nodes: int) -> int:
    """Size of the controller's token vocabulary (4 activations + N-1 possible parents)."""
    return NUM_ACTIVATIONS + num_nodes - 1


@dataclass(frozen=True)
class Architecture:
    """One recurrent cell: ``activations[i]`` indexes ACTIVATIONS, ``parents[j-1]`` is node j's parent."""

    activations: tuple[int, ...]
    parents: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.activations) < 1:
            raise ArchitectureError("an architecture needs at least one node")
        if len(self.parents) != len(self.activations) - 1:
            raise ArchitectureError(
                f"{len(self.activations)} activations need {len(self.activations) - 1} parents, "
                f"got {len(self.parents)}"
            )
        for node, act in enumerate(self.activations):
            if not 0 <= act < NUM_ACTIVATIONS:
                raise ArchitectureError(f"node {node}: activation index {act} is out of range")
        for node, parent in enumerate(self.parents, start=1):
            if not 0 <= parent < node:
                raise ArchitectureError(f"node {node}: parent {parent} must be in 0..{node - 1}")

    @property
    def num_nodes(self) -> int:
        return len(self.activations)

    # -- decisions -------------------------------------------------------------------------
    def decisions(self) -> tuple[int, ...]:
        """The option chosen at each of the 2N-1 decision steps, in controller order."""
        out = [self.activations[0]]
        for node in range(1, self.num_nodes):
            out += [self.parents[node - 1], self.activations[node]]
        return tuple(out)

    @classmethod
    def from_decisions(cls, decisions: "list[int] | tuple[int, ...]") -> "Architecture":
        """Inverse of :meth:`decisions`."""
        seq = [int(d) for d in decisions]
        if len(seq) % 2 == 0:
            raise ArchitectureError(f"an architecture has an odd number of decisions, got {len(seq)}")
        return cls(activations=tuple(seq[0::2]), parents=tuple(seq[1::2]))

    def tokens(self) -> tuple[int, ...]:
        """The decision sequence as controller embedding tokens (parents offset by 4)."""
        return tuple(token_of(step, choice) for step, choice in enumerate(self.decisions()))

    # -- structure -------------------------------------------------------------------------
    @cached_property
    def leaves(self) -> tuple[int, ...]:
        """Nodes that no other node reads; the cell output is their mean."""
        read = set(self.parents)
        return tuple(node for node in range(self.num_nodes) if node not in read)

    @cached_property
    def depths(self) -> tuple[int, ...]:
        """Distance of each node from node 0 (node 0 has depth 0)."""
        depth = [0]
        for parent in self.parents:
            depth.append(depth[parent] + 1)
        return tuple(depth)

    def children(self, node: int) -> tuple[int, ...]:
        return tuple(j for j, p in enumerate(self.parents, start=1) if p == node)

    def to_graph(self):
        """The cell as a networkx DiGraph: x, h_prev -> 0, parent -> node, leaf -> out."""
        import networkx as nx

        graph = nx.DiGraph()
        graph.add_node("x", activation=None)
        graph.add_node("h_prev", activation=None)
        for node, act in enumerate(self.activations):
            graph.add_node(node, activation=ACTIVATIONS[act])
        graph.add_node("out", activation=None)
        graph.add_edge("x", 0)
        graph.add_edge("h_prev", 0)
        for node, parent in enumerate(self.parents, start=1):
            graph.add_edge(parent, node)
        for leaf in self.leaves:
            graph.add_edge(leaf, "out")
        return graph

    # -- text form -------------------------------------------------------------------------
    def to_text(self) -> str:
        parts = [ACTIVATIONS[self.activations[0]]]
        for node in range(1, self.num_nodes):
            parts.append(f"{self.parents[node - 1]}:{ACTIVATIONS[self.activations[node]]}")
        return ",".join(parts)

    def __str__(self) -> str:
        return self.to_text()

    @classmethod
    def parse(cls, text: str) -> "Architecture":
        """Parse the text form; a bad field raises ArchitectureError naming the field."""
        fields = [f.strip() for f in text.strip().split(",")]
        if not fields or fields == [""]:
            raise ArchitectureError("empty architecture string")
        activations = [_parse_activation(fields[0], 0)]
        parents = []
        for node, field in enumerate(fields[1:], start=1):
            parent_text, sep, act_text = field.partition(":")
            if not sep:
                raise ArchitectureError(
                    f"field {node + 1} {field!r}: expected 'parent:activation' for node {node}"
                )
            try:
                parent = int(parent_text)
            except ValueError:
                raise ArchitectureError(
                    f"field {node + 1} {field!r}: parent {parent_text!r} is not an integer"
                ) from None
            if not 0 <= parent < node:
                raise ArchitectureError(
                    f"field {node + 1} {field!r}: node {node}'s parent must be in 0..{node - 1}"
                )
            parents.append(parent)
            activations.append(_parse_activation(act_text, node, field_no=node + 1, field=field))
        return cls(activations=tuple(activations), parents=tuple(parents))


def _parse_activation(text: str, node: int, field_no: int = 1, field: str | None = None) -> int:
    name = text.strip().lower()
    if name in ACTIVATIONS:
        return ACTIVATIONS.index(name)
    shown = field if field is not None else text
    raise ArchitectureError(
        f"field {field_no} {shown!r}: unknown activation {text.strip()!r} for node {node} "
        f"(choose from {', '.join(ACTIVATIONS)})"
    )


def random_architecture(num_nodes: int = DEFAULT_NUM_NODES, rng: random.Random | None = None) -> Architecture:
    """A uniformly random architecture (each decision uniform over its options)."""
    rng = rng or random.Random()
    acts = tuple(rng.randrange(NUM_ACTIVATIONS) for _ in range(num_nodes))
    parents = tuple(rng.randrange(node) for node in range(1, num_nodes))
    return Architecture(acts, parents)
