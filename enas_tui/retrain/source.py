"""What a retrain trains: a search session's derived architecture, or a cell given as text.

A search records ``derived`` events (every ``train.derive_every`` epochs and at its last epoch):
the best of its sampled candidates on validation data, and the best cell of the run so far
(``best_arch``). ENAS retrains that cell, so ``from_session`` takes the last ``derived`` event's
``best_arch``, or status.json's ``best_arch`` when the log has none. Torch-free: the CLI checks its
input here before loading torch.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from ..events import Derived
from ..search_space import Architecture, ArchitectureError
from ..session_log import LogReader
from ..sessions import Session
from .settings import KIND


class SourceError(Exception):
    """A session or cell that cannot be retrained; the message is one line for the user."""


class BadArch(SourceError):
    """A malformed ``--arch``, or one of another size than its search space (a bad flag value)."""


@dataclass
class Source:
    """Where a retrained cell comes from (recorded in the retrain's meta.json under ``source``)."""

    arch: str
    session: str | None = None  # the search session; None when the cell was given by hand
    controller: str | None = None  # that search's controller setting
    num_nodes: int | None = None  # that search's cells' size
    data: str | None = None  # that search's corpus folder (None: the generated corpus)
    derived_epoch: int | None = None  # the epoch of the derived event the cell was taken from
    derived_ppl: float | None = None  # that event's recorded supernet ppl of the cell (best_ppl)
    search_ppl: float | None = None  # measured at retrain start: see trainer.search_phase_ppl

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Source":
        names = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in data.items() if k in names})


def parse_arch(text: str, num_nodes: int | None = None, where: str = "the search space") -> Architecture:
    """The cell ``text`` names, checked against the search space's size; one-line errors."""
    try:
        arch = Architecture.parse(text)
    except ArchitectureError as exc:
        raise BadArch(f"--arch {text!r}: {exc}") from None
    if num_nodes is not None and arch.num_nodes != num_nodes:
        raise BadArch(f"--arch {text!r} has {arch.num_nodes} nodes, but {where} has cells of {num_nodes}")
    return arch


def from_session(session: Session, arch_text: str | None = None) -> tuple[Source, Architecture]:
    """The search session's derived cell (or ``arch_text``, checked against its search space)."""
    meta = session.meta()
    if meta.get("kind") == KIND:
        origin = (meta.get("source") or {}).get("session")
        hint = f"; retrain its search session {origin} instead" if origin else ""
        raise SourceError(f"session {session.id} is a retrain, not a search{hint}")
    settings = meta.get("settings") or {}
    num_nodes = int((settings.get("model") or {}).get("num_nodes", 12))
    source = Source(arch="", session=session.id, controller=meta.get("controller"), num_nodes=num_nodes,
                    data=settings.get("data"))
    if arch_text is not None:
        arch = parse_arch(arch_text, num_nodes, where=f"session {session.id}")
        source.arch = arch.to_text()
        return source, arch
    derived = last_derived(session)
    if derived is not None:
        text, source.derived_epoch, source.derived_ppl = derived.best_arch, derived.epoch, derived.best_ppl
    else:
        text = session.status().get("best_arch")
    if not text:
        raise SourceError(f"session {session.id} has no derived architecture yet (searches derive every "
                          f"train.derive_every epochs and at their last); give a cell with --arch")
    try:
        arch = Architecture.parse(text)
    except ArchitectureError as exc:
        raise SourceError(f"session {session.id}: its derived architecture {text!r} is malformed: {exc}") from None
    source.arch = arch.to_text()
    return source, arch


def last_derived(session: Session) -> Derived | None:
    """The log's last ``derived`` event. Only records that mention the type are decoded, so a
    long search log costs a read, not a decode of every probe."""
    if not session.log_path.exists():
        return None
    found: Derived | None = None
    with LogReader(session.log_path) as reader:
        while records := reader.read_records(max_records=10_000):
            for record in records:
                if b'"type":"derived"' in record.payload:
                    event = record.event()
                    if isinstance(event, Derived):
                        found = event
    return found
