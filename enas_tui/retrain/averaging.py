"""NT-ASGD: plain SGD until validation stalls, then averaged SGD (Merity et al., AWD-LSTM).

AWD-LSTM checks validation at every epoch end; at a check, while still on plain SGD, it switches when
the current validation loss is worse than the best one recorded *before* the last ``nonmono`` checks
(and more than ``nonmono`` checks exist), i.e. ``len(history) > nonmono and current >
min(history[:-nonmono])``. From then on it keeps the running mean of the weights after every step
(torch's ASGD with ``t0=0, lambd=0``) and evaluates, saves and tests with that mean. The SGD step
itself does not change, so this class only decides when to switch and keeps the mean beside the
optimizer; ``averaged()`` swaps the mean into the model for an evaluation.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import Tensor, nn


class NTASGD:
    """The non-monotone trigger and the running mean of ``params`` after the switch."""

    def __init__(self, params: list[nn.Parameter], nonmono: int):
        self.params, self.nonmono = list(params), nonmono
        self.history: list[float] = []  # validation perplexities checked while on plain SGD
        self.mean: list[Tensor] | None = None  # running mean of the weights since the switch
        self.count = 0  # steps averaged

    @property
    def active(self) -> bool:
        return self.mean is not None

    def reference(self) -> float | None:
        """The perplexity a check must beat to stay on SGD: the best before the last ``nonmono``
        checks (None while averaging is on or off for good, or too few checks exist)."""
        if self.active or self.nonmono <= 0 or len(self.history) <= self.nonmono:
            return None
        return min(self.history[:-self.nonmono])

    def check(self, valid_ppl: float) -> float | None:
        """Record one validation check; when it switches averaging on (from the next step), the
        reference perplexity it failed to beat, else None."""
        if self.active:
            return None
        reference = self.reference()
        switch = reference is not None and not valid_ppl <= reference  # a NaN check counts as stalled
        if switch:
            self.mean = [p.detach().clone() for p in self.params]
        self.history.append(valid_ppl)
        return reference if switch else None

    @torch.no_grad()
    def update(self) -> None:
        """After an optimizer step: fold the new weights into the mean (mean += (w - mean) / n)."""
        if self.mean is None:
            return
        self.count += 1
        for mean, p in zip(self.mean, self.params):
            mean.add_(p.detach() - mean, alpha=1.0 / self.count)

    @contextmanager
    def averaged(self) -> Iterator[None]:
        """The averaged weights in the model for the duration (a no-op before the switch)."""
        if self.mean is None:
            yield
            return
        saved = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p, mean in zip(self.params, self.mean):
                p.copy_(mean)
        try:
            yield
        finally:
            with torch.no_grad():
                for p, raw in zip(self.params, saved):
                    p.copy_(raw)

    def state_dict(self) -> dict[str, Any]:
        return {"history": list(self.history), "count": self.count,
                "mean": None if self.mean is None else [m.detach().cpu() for m in self.mean]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.history, self.count = [float(v) for v in state["history"]], int(state["count"])
        mean = state["mean"]
        self.mean = None if mean is None else [m.to(p.device, p.dtype) for m, p in zip(mean, self.params)]
