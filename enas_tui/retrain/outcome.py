"""What a finished retrain session contributes to a comparison: its numbers, read from its record.

``paper`` pairs each seed's retrained cells (random against trained), ``report`` draws their
validation curves and tabulates them, and replication.py aggregates them over seeds. All of them
read a retrain through ``RetrainOutcome``: small, JSON-able and picklable (a distributed runner can
ship it), built from the session's meta.json and log without torch.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ..events import AsgdSwitch, RetrainResult, SessionStart, Validation
from ..session_log import read_events
from ..sessions import RETRAIN, Session, kind_of


class OutcomeError(Exception):
    """A retrain session without a result to compare (not a retrain, or not finished); one line."""


@dataclass
class RetrainOutcome:
    """One retrained cell: where it came from, its validation curve and its final perplexities."""

    session: str  # the retrain session
    arch: str
    controller: str | None  # the search's controller setting (None: a cell given with --arch)
    search_session: str | None
    run_seed: int  # the retrain's seed (paper retrains each search with the search's seed)
    search_ppl: float | None  # the supernet's whole-validation ppl of the cell at the end of its search
    valid_ppl: float  # the best validation check (the weights that were tested)
    test_ppl: float
    best_epoch: int
    averaged: bool  # those weights were NT-ASGD's average
    epochs: int
    curve: list[float | None] = field(default_factory=list)  # whole-split validation ppl per epoch (1..)
    switch_epoch: int | None = None  # the epoch whose check switched to averaged SGD

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "RetrainOutcome":
        return cls(**data)

    @classmethod
    def from_session(cls, session: Session) -> "RetrainOutcome":
        """The outcome a finished retrain recorded; OutcomeError when it has none."""
        if kind_of(session) != RETRAIN:
            raise OutcomeError(f"session {session.id} is not a retrain")
        events = read_events(session.log_path) if session.log_path.exists() else []
        results = [e for e in events if isinstance(e, RetrainResult)]
        if not results:
            raise OutcomeError(f"retrain {session.id} has no result yet (it reports one when it finishes)")
        result = results[-1]
        start = next((e for e in reversed(events) if isinstance(e, SessionStart)), None)
        try:
            source = session.meta().get("source")
        except Exception:  # noqa: BLE001 - a damaged meta.json: the log's session_start says the rest
            source = None
        source = source if isinstance(source, dict) else {}
        curve: dict[int, float | None] = {}
        for e in events:  # a resumed run's repeated check replaces the earlier one
            if isinstance(e, Validation):
                curve[e.epoch] = e.ppl if math.isfinite(e.ppl) else None
        switches = [e.epoch for e in events if isinstance(e, AsgdSwitch)]
        settings = start.settings if start is not None else {}
        epochs = int((settings.get("train") or {}).get("epochs", max(curve, default=0)))
        return cls(session=session.id, arch=result.arch, controller=source.get("controller"),
                   search_session=source.get("session") or (start.source if start is not None else None),
                   run_seed=int(settings.get("seed", start.seed if start is not None else 0)),
                   search_ppl=result.search_ppl, valid_ppl=result.valid_ppl, test_ppl=result.test_ppl,
                   best_epoch=result.epoch, averaged=result.averaged, epochs=epochs,
                   curve=[curve.get(epoch) for epoch in range(1, max(curve, default=0) + 1)],
                   switch_epoch=switches[-1] if switches else None)
