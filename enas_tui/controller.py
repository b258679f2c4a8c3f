"""The ENAS controller: an LSTMCell that emits an architecture one decision at a time.

One batched pass samples n architectures (the loop is over the 2N-1 decision steps, never over
architectures). The same pass, teacher-forced, scores architectures the controller did not sample:
the supervised memory-buffer loss and the paper's analyses need the per-step distributions and the
final hidden state of *given* architectures, and sharing the code path makes the sampled log-prob
and the teacher-forced log-prob of the same architecture bit-identical.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import ControllerConfig
from .search_space import NUM_ACTIVATIONS, Architecture, decision_is_parent, decision_sizes, num_tokens


@dataclass
class ControllerOutput:
    """Everything one pass produces, per architecture (rows) and decision step (columns)."""

    decisions: Tensor  # (n, D) int64: the option chosen at each step
    log_probs: Tensor  # (n, D) log p(chosen option)
    entropies: Tensor  # (n, D) entropy of each step's distribution
    logits: list[Tensor]  # D tensors (n, options_t): the transformed logits the distributions come from
    hidden: Tensor  # (n, H) LSTM state after the last decision (the paper's "final hidden state")

    @property
    def n(self) -> int:
        return self.decisions.shape[0]

    def architectures(self) -> list[Architecture]:
        return [Architecture.from_decisions(row) for row in self.decisions.tolist()]

    def probs(self) -> Tensor:
        """(n, D, K) per-step probability vectors, zero-padded to the largest option count K."""
        width = max(logit.shape[1] for logit in self.logits)
        padded = [F.pad(torch.softmax(logit, dim=-1), (0, width - logit.shape[1])) for logit in self.logits]
        return torch.stack(padded, dim=1)


class Controller(nn.Module):
    """LSTMCell controller with a shared token embedding and one linear head per decision."""

    def __init__(self, num_nodes: int, cfg: ControllerConfig):
        super().__init__()
        self.cfg = cfg
        self.num_nodes = num_nodes
        self.sizes = decision_sizes(num_nodes)
        self.embed = nn.Embedding(num_tokens(num_nodes), cfg.hidden)
        self.lstm = nn.LSTMCell(cfg.hidden, cfg.hidden)
        self.heads = nn.ModuleList(nn.Linear(cfg.hidden, size) for size in self.sizes)
        offsets = [NUM_ACTIVATIONS if is_parent else 0 for is_parent in decision_is_parent(num_nodes)]
        self.register_buffer("token_offset", torch.tensor(offsets), persistent=False)
        for p in self.parameters():  # ENAS initialises the controller uniformly in [-0.1, 0.1]
            nn.init.uniform_(p, -0.1, 0.1)

    @property
    def num_decisions(self) -> int:
        return len(self.sizes)

    def _logits(self, step: int, h: Tensor) -> Tensor:
        logits = self.heads[step](h) / self.cfg.temperature
        if self.cfg.tanh_constant > 0:
            logits = self.cfg.tanh_constant * torch.tanh(logits)
        return logits

    def forward(
        self,
        n: int | None = None,
        decisions: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> ControllerOutput:
        """Sample n architectures, or teacher-force the given (n, D) decisions when ``decisions`` is set."""
        if decisions is None and n is None:
            raise ValueError("give n to sample or decisions to score")
        device = self.token_offset.device
        if decisions is not None:
            decisions = decisions.to(device=device, dtype=torch.long)
            n = decisions.shape[0]
        assert n is not None
        h = torch.zeros(n, self.cfg.hidden, device=device)
        c = torch.zeros_like(h)
        x = torch.zeros_like(h)  # the first input is a zero vector, as in ENAS
        chosen, log_probs, entropies, all_logits = [], [], [], []
        for step in range(self.num_decisions):
            h, c = self.lstm(x, (h, c))
            logits = self._logits(step, h)
            log_p = F.log_softmax(logits, dim=-1)
            if decisions is None:
                choice = torch.multinomial(log_p.detach().exp(), 1, generator=generator).squeeze(1)
            else:
                choice = decisions[:, step]
            chosen.append(choice)
            log_probs.append(log_p.gather(1, choice[:, None]).squeeze(1))
            entropies.append(-(log_p.exp() * log_p).sum(dim=-1))
            all_logits.append(logits)
            x = self.embed(choice + self.token_offset[step])
        return ControllerOutput(
            decisions=torch.stack(chosen, dim=1),
            log_probs=torch.stack(log_probs, dim=1),
            entropies=torch.stack(entropies, dim=1),
            logits=all_logits,
            hidden=h,
        )

    def sample(self, n: int, generator: torch.Generator | None = None) -> ControllerOutput:
        return self(n=n, generator=generator)

    def score(self, decisions: Tensor) -> ControllerOutput:
        return self(decisions=decisions)

    def supervised_loss(self, decisions: Tensor) -> Tensor:
        """Teacher-forced cross-entropy of given architectures, on logits, summed over every decision
        (the first included) and averaged over architectures: the paper's reconstruction loss."""
        out = self.score(decisions)
        targets = out.decisions
        per_step = [F.cross_entropy(logits, targets[:, step]) for step, logits in enumerate(out.logits)]
        return torch.stack(per_step).sum()

    def greedy(self) -> Architecture:
        """The most likely architecture, decision by decision (argmax at every step)."""
        device = self.token_offset.device
        h = torch.zeros(1, self.cfg.hidden, device=device)
        c = torch.zeros_like(h)
        x = torch.zeros_like(h)
        picks = []
        with torch.no_grad():
            for step in range(self.num_decisions):
                h, c = self.lstm(x, (h, c))
                choice = self._logits(step, h).argmax(dim=-1)
                picks.append(int(choice))
                x = self.embed(choice + self.token_offset[step])
        return Architecture.from_decisions(picks)


def decisions_tensor(archs: list[Architecture]) -> Tensor:
    """Stack architectures' decisions into the (n, D) int64 tensor the controller scores."""
    return torch.tensor([arch.decisions() for arch in archs], dtype=torch.long)
