"""The memory buffer of past architectures behind the paper's supervised controller.

From ``start_epoch`` the buffer stores ``add_per_epoch`` freshly sampled architectures each epoch
until it holds ``capacity``; once full it replaces ``replace_per_epoch`` *random* entries per epoch
(the authors' code overwrote the last rows, which the paper does not describe). From
``supervised_start_epoch`` each controller step reconstructs ``supervised_batch`` random entries.
Keeping old architectures matters: resampling fresh ones each step lets the controller "cheat" by
collapsing to one deterministic architecture (paper, section 4).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from .config import BufferConfig


class MemoryBuffer:
    """Fixed-capacity store of architectures as (capacity, D) decision rows."""

    def __init__(self, cfg: BufferConfig, num_decisions: int, seed: int = 0):
        self.cfg = cfg
        self.rows = torch.zeros(cfg.capacity, num_decisions, dtype=torch.long)
        self.size = 0
        self.generator = torch.Generator().manual_seed(seed)

    @property
    def capacity(self) -> int:
        return self.cfg.capacity

    @property
    def full(self) -> bool:
        return self.size >= self.capacity

    def phase(self, epoch: int) -> str:
        """``waiting`` before start_epoch, ``filling`` until full, then ``full`` (replacing)."""
        if epoch < self.cfg.start_epoch:
            return "waiting"
        return "full" if self.full else "filling"

    def supervised_active(self, epoch: int) -> bool:
        return epoch >= self.cfg.supervised_start_epoch and self.size > 0

    def update(self, epoch: int, sample: Callable[[int], Tensor]) -> tuple[int, int]:
        """The per-epoch update; ``sample(k)`` returns k fresh (k, D) decision rows.

        Returns (added, replaced)."""
        if epoch < self.cfg.start_epoch:
            return 0, 0
        if not self.full:
            count = min(self.cfg.add_per_epoch, self.capacity - self.size)
            if count > 0:
                self.rows[self.size:self.size + count] = sample(count).cpu()
                self.size += count
            return count, 0
        count = min(self.cfg.replace_per_epoch, self.capacity)
        if count > 0:
            slots = torch.randperm(self.capacity, generator=self.generator)[:count]
            self.rows[slots] = sample(count).cpu()
        return 0, count

    def sample(self, k: int) -> Tensor:
        """k random stored architectures, without replacement when the buffer holds at least k."""
        if self.size == 0:
            raise ValueError("the memory buffer is empty")
        if k <= self.size:
            idx = torch.randperm(self.size, generator=self.generator)[:k]
        else:
            idx = torch.randint(self.size, (k,), generator=self.generator)
        return self.rows[idx]

    def state_dict(self) -> dict:
        return {"rows": self.rows.clone(), "size": self.size, "rng": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        rows = state["rows"]
        if rows.shape != self.rows.shape:
            raise ValueError(f"buffer shape {tuple(rows.shape)} does not match settings {tuple(self.rows.shape)}")
        self.rows.copy_(rows)
        self.size = int(state["size"])
        self.generator.set_state(state["rng"])
