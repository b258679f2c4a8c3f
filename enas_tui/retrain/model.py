"""The standalone model: a language model whose cell has only one architecture's edges.

ENAS retrains its derived cell without weight sharing: fresh weights, and only the weights the cell
uses: node 0's input and recurrent pairs (``w_x``, ``w_h``) and one pair per (parent, node) edge,
N-1 in all, against the supernet's N(N-1)/2. Everything else (the highway-gated nodes, the mean of
the leaves, the tied embedding and decoder, the dropouts, the hand-written backward through time)
is the supernet's own code (``supernet.CellLanguageModel`` and ``run_cell``), so a retrained cell
computes exactly what the search scored.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..config import ModelConfig
from ..search_space import Architecture, ArchitectureError
from ..supernet import CellLanguageModel, CellPlan, edge_index


class StandaloneModel(CellLanguageModel):
    """Embedding -> one fixed ENAS cell -> tied decoder.

    ``edges[k]`` is the weight pair of the edge into node ``edge_nodes[k]``, in the order the cell's
    plan stores its nodes (level by level, by activation inside a level), which is the order
    ``run_cell`` reads them in: no gather per step. ``edge_nodes`` is saved with the weights, so a
    checkpoint laid out for another order is refused instead of silently permuted.
    """

    def __init__(self, arch: Architecture, vocab_size: int, cfg: ModelConfig):
        if arch.num_nodes != cfg.num_nodes:
            raise ArchitectureError(f"architecture has {arch.num_nodes} nodes, the model has {cfg.num_nodes}")
        super().__init__(vocab_size, cfg, arch.num_nodes - 1)
        self.arch = arch
        order = super().plan(arch).order
        self.register_buffer("edge_nodes", torch.tensor(order[1:], dtype=torch.int64))

    def plan(self, arch: Architecture) -> CellPlan:
        if arch != self.arch:
            raise ArchitectureError(f"this model is the cell {self.arch.to_text()}, not {arch.to_text()}")
        return super().plan(arch)

    def edge_weights(self, plan: CellPlan) -> Tensor:
        return self.edges

    def edge_of(self, node: int) -> Tensor:
        """The (H, 2H) weight pair of the edge into ``node`` (1..N-1), as a view."""
        return self.edges[self.edge_nodes.tolist().index(node)]

    def load_state_dict(self, state_dict: dict[str, Any], strict: bool = True, assign: bool = False):
        nodes = state_dict.get("edge_nodes")
        if nodes is not None and not torch.equal(nodes.cpu(), self.edge_nodes.cpu()):
            raise ValueError(f"saved edges are laid out for nodes {nodes.tolist()}, this cell stores "
                             f"{self.edge_nodes.tolist()}")
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    @torch.no_grad()
    def copy_from_supernet(self, supernet: CellLanguageModel) -> None:
        """Take this cell's weights from a supernet: embedding, decoder bias, node 0 and its edges."""
        for name in ("encoder.weight", "decoder_bias", "w_x", "w_h"):
            self.get_parameter(name).copy_(supernet.get_parameter(name))
        for k, node in enumerate(self.edge_nodes.tolist()):
            self.edges[k].copy_(supernet.edges[edge_index(self.arch.parents[node - 1], node)])


def parameter_count(num_nodes: int, hidden: int, vocab_size: int) -> int:
    """Weights of a standalone model: the tied embedding (V H), the decoder bias (V), node 0's input
    and recurrent pairs (2 x 2 H^2), one pair per edge ((N-1) x 2 H^2)."""
    return vocab_size * hidden + vocab_size + (2 + num_nodes - 1) * 2 * hidden * hidden
