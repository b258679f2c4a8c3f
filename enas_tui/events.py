"""The events a training session records: one dataclass per kind, serialised as plain JSON.

The event log (session_log.py) is the record that the headless view, the dashboard, replay,
attach and the offline analyses all read, so the events are designed for them: every event carries
``type``, ``seq`` (monotonic within a session, continued across resumes) and ``t`` (Unix time).
Arrays (probe probabilities, hidden states) travel as ``{"dtype", "shape", "b64"}`` objects:
little-endian raw bytes in base64, compact and exact. The schema is versioned by SCHEMA_VERSION;
readers skip event types they do not know (``UnknownEvent``) instead of failing.

This module must not import torch: the dashboard reads events on machines without it.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
import time
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

SCHEMA_VERSION = 1

_REGISTRY: dict[str, type["Event"]] = {}


def _register(cls: type["Event"]) -> type["Event"]:
    _REGISTRY[cls.type] = cls
    return cls


@dataclass(kw_only=True)
class Event:
    """Base of all events. ``seq`` and ``t`` are filled in by the session writer."""

    type: ClassVar[str] = "event"
    seq: int = -1
    t: float = field(default_factory=time.time)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        for f in dataclasses.fields(self):
            out[f.name] = _encode(getattr(self, f.name))
        return out


@dataclass(kw_only=True)
class UnknownEvent(Event):
    """An event of a type this version does not know; kept so nothing read is lost."""

    type: ClassVar[str] = "unknown"
    raw: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.raw)


# -- lifecycle ------------------------------------------------------------------------------
@_register
@dataclass(kw_only=True)
class SessionStart(Event):
    """A trainer process started (or resumed) this session."""

    type: ClassVar[str] = "session_start"
    session_id: str
    controller: str
    seed: int
    settings: dict[str, Any]
    num_nodes: int
    decision_sizes: list[int]
    device: str
    pid: int
    host: str
    versions: dict[str, str] = field(default_factory=dict)
    resumed_from: str | None = None
    schema: int = SCHEMA_VERSION
    kind: str = "search"  # search | retrain
    arch: str | None = None  # a retrain's cell
    source: str | None = None  # a retrain's search session (None: the cell was given by hand)


@_register
@dataclass(kw_only=True)
class SessionEnd(Event):
    """The trainer finished, was stopped (Ctrl-C, dashboard) or failed (e.g. repeated NaNs)."""

    type: ClassVar[str] = "session_end"
    status: str  # finished | stopped | failed
    message: str = ""
    epoch: int = 0
    best_ppl: float | None = None
    best_arch: str | None = None


@_register
@dataclass(kw_only=True)
class EpochStart(Event):
    type: ClassVar[str] = "epoch_start"
    epoch: int
    epochs: int
    shared_steps: int
    controller_steps: int


@_register
@dataclass(kw_only=True)
class EpochEnd(Event):
    type: ClassVar[str] = "epoch_end"
    epoch: int
    train_ppl: float
    valid_ppl: float | None
    reward: float | None
    entropy: float | None
    elapsed_s: float


# -- steps ----------------------------------------------------------------------------------
@_register
@dataclass(kw_only=True)
class SharedStep(Event):
    """One shared-weight minibatch step on one sampled architecture."""

    type: ClassVar[str] = "shared_step"
    epoch: int
    step: int
    loss: float
    ppl: float
    lr: float
    tokens_per_s: float


@_register
@dataclass(kw_only=True)
class ControllerStep(Event):
    """One controller update (REINFORCE, plus the supervised loss when it is on)."""

    type: ClassVar[str] = "controller_step"
    epoch: int
    step: int
    reward: float
    baseline: float
    advantage: float
    entropy: float
    policy_loss: float
    supervised_loss: float | None
    sample_ppl: float


@_register
@dataclass(kw_only=True)
class Probe(Event):
    """A fresh probe set: n sampled architectures, per-step probabilities, final hidden states.

    ``probs`` is (n, decisions, max_options), zero-padded where a decision has fewer options;
    ``hidden`` is (n, controller_hidden).
    """

    type: ClassVar[str] = "probe"
    epoch: int
    step: int
    archs: list[str]
    probs: np.ndarray
    hidden: np.ndarray


@_register
@dataclass(kw_only=True)
class BufferFill(Event):
    """The memory buffer after its per-epoch update."""

    type: ClassVar[str] = "buffer"
    epoch: int
    size: int
    capacity: int
    added: int
    replaced: int
    phase: str  # waiting | filling | full
    supervised: bool


@_register
@dataclass(kw_only=True)
class Validation(Event):
    """Validation perplexity of the controller's most likely architecture."""

    type: ClassVar[str] = "validation"
    epoch: int
    ppl: float
    arch: str
    averaged: bool = False  # a retrain's check with NT-ASGD's averaged weights


@_register
@dataclass(kw_only=True)
class Derived(Event):
    """Derivation: the best of ``candidates`` sampled architectures on validation data."""

    type: ClassVar[str] = "derived"
    epoch: int
    arch: str
    ppl: float
    candidates: int
    best_ppl: float
    best_arch: str


@_register
@dataclass(kw_only=True)
class AsgdSwitch(Event):
    """A retrain switched to averaged SGD: ``valid_ppl`` is worse than ``reference_ppl``, the best
    check before the last ``nonmono`` ones (NT-ASGD); averaging starts with step ``step + 1``."""

    type: ClassVar[str] = "asgd_switch"
    epoch: int
    step: int
    valid_ppl: float
    reference_ppl: float
    nonmono: int


@_register
@dataclass(kw_only=True)
class RetrainResult(Event):
    """A retrain's outcome: its best-validation weights on the whole validation and test splits."""

    type: ClassVar[str] = "retrain_result"
    arch: str
    epoch: int  # the epoch whose weights scored best on validation (the ones tested)
    valid_ppl: float
    test_ppl: float
    averaged: bool  # those weights were NT-ASGD's average
    params: int
    search_ppl: float | None = None  # the supernet's validation ppl of this cell at the end of its search


@_register
@dataclass(kw_only=True)
class Diagnostics(Event):
    """Rolling Table 1 and collapse indices over a fresh probe set (see diagnostics.py)."""

    type: ClassVar[str] = "diagnostics"
    epoch: int
    step: int
    n: int
    spearman: dict[str, dict[str, float | None]]
    collapse_index: dict[str, float]


@_register
@dataclass(kw_only=True)
class Checkpoint(Event):
    type: ClassVar[str] = "checkpoint"
    epoch: int
    path: str
    kind: str  # epoch | interrupt | best (a retrain's best validation weights)


@_register
@dataclass(kw_only=True)
class Warning(Event):  # noqa: A001 - the event's name in the schema
    type: ClassVar[str] = "warning"
    message: str
    kind: str = "warning"  # e.g. nonfinite_loss
    epoch: int = 0


@_register
@dataclass(kw_only=True)
class Error(Event):
    type: ClassVar[str] = "error"
    message: str
    epoch: int = 0


# -- encoding -------------------------------------------------------------------------------
def _encode(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value)
        dtype = arr.dtype.newbyteorder("<")
        return {
            "dtype": dtype.str,
            "shape": list(arr.shape),
            "b64": base64.b64encode(arr.astype(dtype, copy=False).tobytes()).decode("ascii"),
        }
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)  # "nan" / "inf": JSON has no literal for them
    return value


def _decode_array(obj: dict[str, Any]) -> np.ndarray:
    data = base64.b64decode(obj["b64"])
    return np.frombuffer(data, dtype=np.dtype(obj["dtype"])).reshape(obj["shape"]).copy()


def _is_array(obj: Any) -> bool:
    return isinstance(obj, dict) and set(obj) == {"dtype", "shape", "b64"}


_NONFINITE = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}


@functools.cache
def _field_kinds(cls: type[Event]) -> tuple[frozenset[str], frozenset[str]]:
    """(all field names, names of float fields) per event class, computed once."""
    fields = dataclasses.fields(cls)
    floats = frozenset(f.name for f in fields if str(f.type).startswith("float"))
    return frozenset(f.name for f in fields), floats


def event_from_dict(data: dict[str, Any]) -> Event:
    """Rebuild an event; unknown types or fields become UnknownEvent rather than errors."""
    cls = _REGISTRY.get(data.get("type", ""))
    if cls is None:
        return UnknownEvent(raw=data, seq=int(data.get("seq", -1)), t=float(data.get("t", 0.0)))
    kwargs = {}
    names, floats = _field_kinds(cls)
    for key, value in data.items():
        if key == "type" or key not in names:
            continue
        if isinstance(value, str) and key in floats:
            value = _NONFINITE.get(value, value)
        kwargs[key] = _decode_array(value) if _is_array(value) else value
    try:
        return cls(**kwargs)
    except TypeError:
        return UnknownEvent(raw=data, seq=int(data.get("seq", -1)), t=float(data.get("t", 0.0)))


def encode_event(event: Event) -> bytes:
    """The payload bytes written to the log."""
    return json.dumps(event.to_dict(), separators=(",", ":"), allow_nan=False).encode("utf-8")


def decode_event(payload: bytes) -> Event:
    return event_from_dict(json.loads(payload))


def event_types() -> dict[str, type[Event]]:
    """Every known event type by its schema name (for docs and tests)."""
    return dict(_REGISTRY)
