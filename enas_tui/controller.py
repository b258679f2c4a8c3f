"""The ENAS controller: an LSTMCell that emits an architecture one decision at a time.

One batched pass samples n architectures (the loop is over the 2N-1 decision steps, never over
architectures). The same pass, teacher-forced, scores architectures the controller did not sample:
the supervised memory-buffer loss and the paper's analyses need the per-step distributions and the
final hidden state of *given* architectures, and sharing the code path makes the sampled log-prob
and the teacher-forced log-prob of the same architecture bit-identical.

Two ways to read the controller, chosen per call:

- ``mode``: "train" applies the training-time tanh constant (logits / temperature, then
  ``tanh_constant * tanh``), as search does; "derive" stops at logits / temperature, which is how
  ENAS derives architectures and how the paper's authors analysed the controller.
- ``state``: the "final hidden state" returned as ``hidden``. "emit_last" is the LSTM output that
  emits the last decision (ENAS's and the authors' choice: that decision itself never reaches it);
  "after_last" runs the cell once more on the last decision's embedding.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .config import PROBE_MODES, PROBE_STATES, SUPERVISED_REDUCTIONS, ControllerConfig
from .search_space import NUM_ACTIVATIONS, Architecture, decision_is_parent, decision_sizes, num_tokens


@dataclass
class ControllerOutput:
    """Everything one pass produces, per architecture (rows) and decision step (columns)."""

    decisions: Tensor  # (n, D) int64: the option chosen at each step
    log_probs: Tensor  # (n, D) log p(chosen option)
    entropies: Tensor  # (n, D) entropy of each step's distribution
    logits: list[Tensor]  # D tensors (n, options_t): the logits the distributions come from (per ``mode``)
    hidden: Tensor  # (n, H) the "final hidden state" (per ``state``; see the module doc)
    mode: str = "train"
    state: str = "emit_last"

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

    def _logits(self, step: int, h: Tensor, mode: str = "train") -> Tensor:
        logits = self.heads[step](h) / self.cfg.temperature
        if mode == "train" and self.cfg.tanh_constant > 0:
            logits = self.cfg.tanh_constant * torch.tanh(logits)
        return logits

    def forward(
        self,
        n: int | None = None,
        decisions: Tensor | None = None,
        generator: torch.Generator | None = None,
        mode: str = "train",
        state: str = "emit_last",
    ) -> ControllerOutput:
        """Sample n architectures, or teacher-force the given (n, D) decisions when ``decisions`` is set."""
        if decisions is None and n is None:
            raise ValueError("give n to sample or decisions to score")
        if mode not in PROBE_MODES or state not in PROBE_STATES:
            raise ValueError(f"mode must be one of {PROBE_MODES} and state one of {PROBE_STATES}, "
                             f"got {mode!r}, {state!r}")
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
            logits = self._logits(step, h, mode)
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
        if state == "after_last":
            h, c = self.lstm(x, (h, c))
        return ControllerOutput(
            decisions=torch.stack(chosen, dim=1),
            log_probs=torch.stack(log_probs, dim=1),
            entropies=torch.stack(entropies, dim=1),
            logits=all_logits,
            hidden=h,
            mode=mode,
            state=state,
        )

    def sample(self, n: int, generator: torch.Generator | None = None, mode: str = "train",
               state: str = "emit_last") -> ControllerOutput:
        return self(n=n, generator=generator, mode=mode, state=state)

    def score(self, decisions: Tensor, mode: str = "train", state: str = "emit_last") -> ControllerOutput:
        return self(decisions=decisions, mode=mode, state=state)

    def supervised_loss(self, decisions: Tensor, reduction: str = "mean") -> Tensor:
        """The paper's reconstruction loss: teacher-forced cross-entropy of given architectures on the
        training-mode logits, over every decision (the first included).

        ``reduction`` "mean" averages over decisions and architectures (the authors' scale, so it
        weighs about as much as one decision's policy-gradient term); "sum" sums over decisions and
        averages over architectures.
        """
        if reduction not in SUPERVISED_REDUCTIONS:
            raise ValueError(f"reduction must be one of {SUPERVISED_REDUCTIONS}, got {reduction!r}")
        out = self.score(decisions)
        targets = out.decisions
        per_step = torch.stack([F.cross_entropy(logits, targets[:, step]) for step, logits in enumerate(out.logits)])
        return per_step.mean() if reduction == "mean" else per_step.sum()

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
