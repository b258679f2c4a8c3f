"""The events a training session records: one dataclass per kind, serialised as plain JSON.

The event log (session_log.py) is the record that the headless view, the dashboard, replay,
attach and the offline analyses all read, so the events are designed for them: every event carries
``type``, ``seq`` (monotonic within a session, continued across resumes) and ``t`` (Unix time).
Arrays (probe probabilities, hidden states) travel as ``{"dtype", "shape", "b64"}`` objects:
little-endian raw bytes in base64, compact and exact. The schema is versioned by SCHEMA_VERSION;
readers skip event types they do not know (``UnknownEvent``) instead of failing.

Schema history. Version 2 changed what probes and diagnostics mean, and readers translate version
1 records as they decode them, so every consumer sees one vocabulary:

- ``Probe.mode`` / ``Probe.state`` say how the controller was read (see controller.py); version 1
  probes had neither and were taken in "train" mode (tanh constant) from the "emit_last" state,
  which is what decoding fills in (``LEGACY``).
- ``Diagnostics.spearman`` is keyed by measure name (``common_activations_paper``, ``ged_aligned``,
  ...; see diagnostics.py). Version 1 keyed the aligned measures by their column names
  (``common_activations``, ``ged``); decoding renames them (``SCHEMA1_MEASURES``) in records
  without a ``collapse`` field, which only version 1 wrote.
- ``Diagnostics.collapse_index`` is scale-free (diagnostics.collapse_index) and
  ``Diagnostics.collapse`` says so ("scale_free"). Version 1 values were absolute (mean
  across-architecture standard deviation); decoding marks them ``collapse="absolute"`` so that
  readers recompute the index from the probe's hidden states instead of showing them as is.

Added within version 2: ``UntrainedProbe`` (the controller's probabilities before its first update,
the reference of Fig. 1). Readers that predate it keep it as an ``UnknownEvent``; logs without it
(older sessions, resumed ones started before it existed) simply have no reference.

This module must not import torch: the dashboard reads events on machines without it.
"""

from __future__ import annotations

import base64
import dataclasses
import functools
import json
import math
import re
import time
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

SCHEMA_VERSION = 2

# Version 1 spearman keys -> the measure they held (diagnostics.py names every measure).
SCHEMA1_MEASURES: dict[str, str] = {"common_activations": "common_activations_aligned", "ged": "ged_aligned"}

_REGISTRY: dict[str, type["Event"]] = {}


def _register(cls: type["Event"]) -> type["Event"]:
    _REGISTRY[cls.type] = cls
    return cls


@dataclass(kw_only=True)
class Event:
    """Base of all events. ``seq`` and ``t`` are filled in by the session writer."""

    type: ClassVar[str] = "event"
    # Values a payload written before a field existed implies for it (filled in on decode).
    LEGACY: ClassVar[dict[str, Any]] = {}
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
    """An epoch's summary; ``train_ppl`` is exp(mean loss) over its finite shared steps only."""

    type: ClassVar[str] = "epoch_end"
    epoch: int
    train_ppl: float
    valid_ppl: float | None
    reward: float | None
    entropy: float | None
    elapsed_s: float
    skipped_shared_steps: int = 0  # shared steps skipped for a non-finite loss (absent in older logs)


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
    ``hidden`` is (n, controller_hidden). ``mode`` ("derive": logits / temperature; "train": with
    the tanh constant) and ``state`` ("emit_last" or "after_last") say how the controller was read.
    """

    type: ClassVar[str] = "probe"
    LEGACY: ClassVar[dict[str, Any]] = {"mode": "train", "state": "emit_last"}
    epoch: int
    step: int
    archs: list[str]
    probs: np.ndarray
    hidden: np.ndarray
    mode: str = "derive"
    state: str = "emit_last"


@_register
@dataclass(kw_only=True)
class UntrainedProbe(Event):
    """The controller read once before its first update: Fig. 1's reference, the random controller.

    Recorded at the start of a new session with the probes' mode and state, from a generator seeded
    ``seed`` (independent of the probes'), so the dashboard can draw the trained controller's
    certainty beside the untrained one's without rebuilding a controller (it has no torch).
    ``probs`` is (n, decisions, max_options), zero-padded like ``Probe.probs``.
    """

    type: ClassVar[str] = "untrained_probe"
    probs: np.ndarray
    mode: str = "derive"
    state: str = "emit_last"
    seed: int = 0


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
    """Rolling Table 1 and collapse indices over a fresh probe set (see diagnostics.py).

    ``spearman`` has one entry per measure computed on this probe (the costly GEDs and
    ``abs_perf_diff`` only on some); ``collapse_index`` has ``hidden`` and ``max_prob``, scale-free
    when ``collapse`` is "scale_free" (absolute in version 1 logs: ``collapse`` "absolute").
    """

    type: ClassVar[str] = "diagnostics"
    LEGACY: ClassVar[dict[str, Any]] = {"collapse": "absolute"}
    epoch: int
    step: int
    n: int
    spearman: dict[str, dict[str, float | None]]
    collapse_index: dict[str, float]
    collapse: str = "scale_free"
    # Per probe architecture, the validation perplexity behind |perf diff| (probes where it was
    # measured, every train.perf_every; None otherwise and in older logs).
    ppl: np.ndarray | None = None


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
# JSON has no literal for NaN or the infinities; every float, at any depth (a NaN collapse index
# inside Diagnostics, a NaN loss), is written as one of these strings and read back as a float
# wherever the field's type says a float belongs there.
_NONFINITE = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}
# Array dtypes a payload may name: plain numbers only (an "O" dtype would ask numpy for objects).
_ARRAY_KINDS = frozenset("biuf")
# events.encode_event writes "type", "seq" and "t" first: enough to index a record undecoded.
_PREFIX = re.compile(rb'\{"type":"([a-z_]+)","seq":(-?\d+),"t":(-?[0-9.eE+-]+)[,}]')


class EventError(ValueError):
    """A payload that is not a valid event (not JSON, a missing field, a field of the wrong type).

    The message is one line naming the event type and field, fit for a damage report.
    """


def _encode(value: Any) -> Any:
    """A JSON-able copy of value: arrays as base64 objects, non-finite floats as strings, at any depth."""
    if isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value)
        dtype = arr.dtype.newbyteorder("<")
        return {
            "dtype": dtype.str,
            "shape": list(arr.shape),
            "b64": base64.b64encode(arr.astype(dtype, copy=False).tobytes()).decode("ascii"),
        }
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (float, np.floating)):
        value = float(value)
        return value if math.isfinite(value) else ("nan" if math.isnan(value) else ("inf" if value > 0 else "-inf"))
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode(v) for v in value]
    return value


class _Bad(Exception):
    """A value of the wrong type deep in a payload; ``path`` grows (inner first) as it unwinds."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
        self.path: list[str] = []


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


def _array(obj: Any, arrays: bool) -> Any:
    """An ndarray from its ``{"dtype", "shape", "b64"}`` object, checked before numpy sees it."""
    if not (type(obj) is dict and len(obj) == 3 and "dtype" in obj and "shape" in obj and "b64" in obj):
        raise _Bad(f"expected an array object, got {_kind(obj)}")
    shape, b64, name = obj["shape"], obj["b64"], obj["dtype"]
    if type(name) is not str or type(b64) is not str:
        raise _Bad("array dtype and data must be strings")
    if type(shape) is not list or not all(type(n) is int and n >= 0 for n in shape):
        raise _Bad("array shape must be a list of non-negative integers")
    try:
        dtype = np.dtype(name)
    except (TypeError, ValueError):
        raise _Bad(f"unknown array dtype {name[:20]!r}") from None
    if dtype.kind not in _ARRAY_KINDS:
        raise _Bad(f"array dtype {name[:20]!r} is not numeric")
    nbytes = math.prod(shape) * dtype.itemsize
    if len(b64) != 4 * ((nbytes + 2) // 3):
        raise _Bad(f"array data does not match shape {shape} of {name}")
    if not arrays:  # checked without decoding: the base64 itself is read only when it is used
        return obj
    try:
        data = base64.b64decode(b64, validate=True)
    except ValueError:
        raise _Bad("array data is not base64") from None
    if len(data) != nbytes:
        raise _Bad(f"array data does not match shape {shape} of {name}")
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def _float(value: Any, arrays: bool, nested: bool) -> Any:
    kind = type(value)
    if kind is float:
        return value
    if kind is int:
        try:
            return float(value)
        except OverflowError:
            raise _Bad("integer too large for a number") from None
    if kind is str and value in _NONFINITE:
        return _NONFINITE[value]
    if value is None and nested:
        return None
    raise _Bad(f"expected a number, got {_kind(value)}")


def _exact(tp: type, label: str) -> Callable[[Any, bool, bool], Any]:
    def check(value: Any, arrays: bool, nested: bool) -> Any:
        if type(value) is tp:
            return value
        raise _Bad(f"expected {label}, got {_kind(value)}")

    return check


@functools.cache
def _converter(tp: Any) -> Callable[[Any, bool, bool], Any]:
    """A function checking a value against tp and converting it ("nan" -> nan, arrays -> ndarray).

    Readers fold these values into views and sums, so a field of the wrong type is damage to report
    when decoding, not a TypeError in a panel later. Inside containers a float may be null (a
    statistic that could not be computed); at the top level only where the type says so. Built
    once per type: decoding is on the dashboard's path for every event.
    """
    if tp is Any:
        return lambda value, arrays, nested: value
    if tp is float:
        return _float
    if tp is int:
        return _exact(int, "an integer")
    if tp is str or tp is bool:
        return _exact(tp, tp.__name__)
    if tp is np.ndarray:
        return lambda value, arrays, nested: _array(value, arrays)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        return _union([a for a in args if a is not type(None)], type(None) in args)
    if origin is list:
        return _list(_converter(args[0] if args else Any))
    if origin is dict:
        return _dict(_converter(args[1] if len(args) == 2 else Any))
    return lambda value, arrays, nested: value  # a type this decoder cannot check: taken as written


def _union(options: list[Any], optional: bool) -> Callable[[Any, bool, bool], Any]:
    converters = [_converter(option) for option in options]

    def check(value: Any, arrays: bool, nested: bool) -> Any:
        if value is None and optional:
            return None
        for convert in converters[:-1]:
            try:
                return convert(value, arrays, nested)
            except _Bad:
                continue
        return converters[-1](value, arrays, nested)

    return check


def _list(item: Callable[[Any, bool, bool], Any]) -> Callable[[Any, bool, bool], Any]:
    def check(value: Any, arrays: bool, nested: bool) -> Any:
        if type(value) is not list:
            raise _Bad(f"expected a list, got {_kind(value)}")
        out = []
        for i, v in enumerate(value):
            try:
                out.append(item(v, arrays, True))
            except _Bad as bad:
                bad.path.append(f"[{i}]")
                raise
        return out

    return check


def _dict(item: Callable[[Any, bool, bool], Any]) -> Callable[[Any, bool, bool], Any]:
    def check(value: Any, arrays: bool, nested: bool) -> Any:
        if type(value) is not dict:
            raise _Bad(f"expected an object, got {_kind(value)}")
        out = {}
        for k, v in value.items():
            try:
                out[k] = item(v, arrays, True)
            except _Bad as bad:
                bad.path.append(f".{k}")
                raise
        return out

    return check


@functools.cache
def _field_types(cls: type[Event]) -> tuple[dict[str, Any], frozenset[str]]:
    """(field name -> resolved type, names of fields without a default) per event class."""
    hints = typing.get_type_hints(cls)
    fields = dataclasses.fields(cls)
    required = frozenset(f.name for f in fields if f.default is dataclasses.MISSING
                         and f.default_factory is dataclasses.MISSING)
    return {f.name: hints[f.name] for f in fields}, required


@functools.cache
def _field_converters(cls: type[Event]) -> tuple[tuple[str, Callable[[Any, bool, bool], Any]], ...]:
    types_, _ = _field_types(cls)
    return tuple((name, _converter(tp)) for name, tp in types_.items() if name not in ("seq", "t"))


def _check_probe(event: Any) -> None:
    """A probe's arrays must agree with each other, or every panel drawing them would fail."""
    probs, hidden = _shape(event.probs), _shape(event.hidden)
    if len(probs) != 3 or len(hidden) != 2:
        raise EventError(f"probe: probs must be 3-D and hidden 2-D, got {probs} and {hidden}")
    if not probs[0] == hidden[0] == len(event.archs):
        raise EventError(f"probe: {len(event.archs)} architectures but arrays of {probs[0]} "
                         f"and {hidden[0]} rows")


def _shape(array: Any) -> tuple[int, ...]:
    """An array's shape, decoded or still its checked JSON object (event_from_dict(arrays=False))."""
    return tuple(array.shape) if isinstance(array, np.ndarray) else tuple(array["shape"])


def _check_untrained_probe(event: Any) -> None:
    probs = _shape(event.probs)
    if len(probs) != 3 or probs[0] < 1:
        raise EventError(f"untrained_probe: probs must be 3-D with at least one row, got {probs}")


_CHECKS: dict[str, Callable[[Any], None]] = {"probe": _check_probe, "untrained_probe": _check_untrained_probe}


def _field(kind: str, name: str, convert: Callable[[Any, bool, bool], Any], value: Any, arrays: bool) -> Any:
    try:
        return convert(value, arrays, False)
    except _Bad as bad:
        raise EventError(f"{kind}: {name}{''.join(reversed(bad.path))}: {bad.message}") from None


_INT, _FLOAT = _converter(int), _converter(float)


def event_from_dict(data: Any, arrays: bool = True) -> Event:
    """Rebuild an event, checking every field against its type; raises EventError if it is not one.

    Unknown event types become UnknownEvent (a newer writer's events are kept, not failed on);
    unknown fields of known types are ignored. ``arrays=False`` checks array fields without
    decoding them (the result then holds their JSON objects: use it only to validate).
    """
    if type(data) is not dict:
        raise EventError(f"payload is a JSON {_kind(data)}, not an object")
    kind = data.get("type")
    if type(kind) is not str:
        raise EventError(f"event type is {_kind(kind)}, not a string")
    seq = _field(kind, "seq", _INT, data.get("seq"), arrays)
    t = _field(kind, "t", _FLOAT, data.get("t"), arrays)
    cls = _REGISTRY.get(kind)
    if cls is None:
        return UnknownEvent(raw=data, seq=seq, t=t)
    _, required = _field_types(cls)
    if not required <= data.keys():
        missing = sorted(required - data.keys())
        raise EventError(f"{kind}: missing field{'s' if len(missing) > 1 else ''} {', '.join(missing)}")
    kwargs = {key: value for key, value in cls.LEGACY.items() if key not in data}
    for name, convert in _field_converters(cls):
        if name in data:
            kwargs[name] = _field(kind, name, convert, data[name], arrays)
    if cls is Diagnostics and "collapse" not in data:  # a version 1 record: it named measures by column
        kwargs["spearman"] = translate_spearman(kwargs["spearman"])
    event = cls(seq=seq, t=t, **kwargs)
    check = _CHECKS.get(kind)
    if check is not None:
        check(event)
    return event


def translate_spearman(spearman: dict[str, Any]) -> dict[str, Any]:
    """Spearman results with version 1 keys renamed to the measures they held (others unchanged)."""
    return {SCHEMA1_MEASURES.get(name, name): values for name, values in spearman.items()}


def encode_event(event: Event) -> bytes:
    """The payload bytes written to the log."""
    return json.dumps(event.to_dict(), separators=(",", ":"), allow_nan=False).encode("utf-8")


def _loads(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except RecursionError:
        raise EventError("payload nests too deeply") from None
    except ValueError as err:  # JSONDecodeError, UnicodeDecodeError
        raise EventError(f"payload is not JSON ({str(err).splitlines()[0][:80]})") from None


def decode_event(payload: bytes) -> Event:
    """The event in a payload; raises EventError when the payload is not a valid event."""
    return event_from_dict(_loads(payload))


def check_event(payload: bytes) -> None:
    """Raise EventError unless payload is a valid event, without decoding its arrays (cheap: the
    arrays' dtype, shape and data length are checked, not their base64 characters)."""
    event_from_dict(_loads(payload), arrays=False)


def peek(payload: bytes) -> tuple[str, int, float] | None:
    """(type, seq, t) read from the start of a payload without decoding it (None: unusual layout)."""
    match = _PREFIX.match(payload, 0, 200)
    if match is None:
        return None
    try:
        return match.group(1).decode("ascii"), int(match.group(2)), float(match.group(3))
    except ValueError:
        return None


def payload_seq(payload: bytes) -> tuple[str | None, int]:
    """(type, seq) of a payload: from its prefix when laid out as usual, else by parsing it."""
    found = peek(payload)
    if found is not None:
        return found[0], found[1]
    data = _loads(payload)
    seq = data.get("seq") if isinstance(data, dict) else None
    if type(seq) is not int:
        raise EventError(f"payload has no integer seq (got {_kind(seq)})")
    kind = data.get("type")
    return (kind if type(kind) is str else None), seq


def event_types() -> dict[str, type[Event]]:
    """Every known event type by its schema name (for docs and tests)."""
    return dict(_REGISTRY)
