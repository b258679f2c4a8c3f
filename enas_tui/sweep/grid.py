"""A sweep's grid: controllers x seeds x every comma list in a ``--set``, and a stable id per point.

A point's session id is derived from the sweep's name and the point alone (never from time), so
running the same command again finds the sessions it made before and resumes them instead of
starting duplicates, and extending a sweep (more seeds, another value) only adds new points.
No Ray and no torch here: the CLI checks every point's settings before Ray starts.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import re
from dataclasses import asdict, dataclass, field
from typing import Any

from ..config import CONTROLLERS, PRESETS, SettingsError, resolve

NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class GridError(ValueError):
    """A bad sweep flag; the message is one line naming the flag."""


@dataclass(frozen=True)
class Point:
    """One run of the sweep: a controller, a seed and the grid's value of each varied setting."""

    controller: str
    seed: int
    settings: tuple[tuple[str, str], ...] = ()  # (section.field, value) for each varied setting

    def overrides(self) -> list[str]:
        return [f"{key}={value}" for key, value in self.settings]

    def label(self) -> str:
        """The varied settings as ``key=value`` words ("" when nothing varies)."""
        return " ".join(self.overrides())


@dataclass
class SweepSpec:
    """What a sweep runs (its grid and the flags shared by every run) and how (resources, retries)."""

    name: str
    controllers: list[str]
    seeds: list[int]
    grid: list[tuple[str, list[str]]] = field(default_factory=list)  # settings with several values
    fixed: list[str] = field(default_factory=list)  # ``key=value`` applied to every run
    preset: str = "cpu"
    data: str | None = None  # an absolute path (workers do not share the driver's working folder)
    epochs: int | None = None
    device: str = "auto"
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0
    retries: int = 2  # restarts from the last checkpoint after a run is killed or fails
    n: int = 100  # probe architectures of each run's final analysis (``analyze --n``; the paper: 100)

    def points(self) -> list[Point]:
        """Every point, controllers outermost, then seeds, then the settings grid in flag order."""
        keys = [key for key, _ in self.grid]
        combos = list(itertools.product(*[values for _, values in self.grid]))
        return [Point(controller, seed, tuple(zip(keys, combo)))
                for controller in self.controllers for seed in self.seeds for combo in combos]

    def session_id(self, point: Point) -> str:
        """``<name>-<controller>-s<seed>``, plus a short hash of the varied settings when there are any."""
        sid = f"{self.name}-{point.controller}-s{point.seed}"
        if point.settings:
            sid += "-" + _digest(point.settings, 6)
        return sid

    def base(self) -> dict[str, Any]:
        """The flags every run shares: a re-run under the same name must repeat them."""
        return {"preset": self.preset, "data": self.data, "epochs": self.epochs, "device": self.device,
                "fixed": sorted(self.fixed), "n": self.n}

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["grid"] = [[key, list(values)] for key, values in self.grid]
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SweepSpec":
        known = {f for f in cls.__dataclass_fields__}
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs["grid"] = [(str(key), [str(v) for v in values]) for key, values in data.get("grid", [])]
        kwargs["seeds"] = [int(s) for s in data.get("seeds", [])]
        return cls(**kwargs)


def _digest(value: Any, length: int) -> str:
    return hashlib.sha1(json.dumps(value, sort_keys=True).encode()).hexdigest()[:length]


def parse_controllers(text: str) -> list[str]:
    """``random,supervised`` -> the listed controllers in order, each once."""
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:
        raise GridError("--controllers is empty (choose from " + ", ".join(CONTROLLERS) + ")")
    for name in names:
        if name not in CONTROLLERS:
            raise GridError(f"--controllers: unknown controller {name!r} (choose from {', '.join(CONTROLLERS)})")
    return list(dict.fromkeys(names))


def parse_seeds(text: str) -> list[int]:
    """``0-9``, ``0,3,7`` or ``0-4,10-12`` -> the sorted seeds, each once."""
    seeds: set[int] = set()
    for part in (p.strip() for p in text.split(",")):
        match = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not match:
            raise GridError(f"--seeds: bad item {part!r} (expected e.g. 0-9 or 0,3,7)")
        low, high = int(match[1]), int(match[2] if match[2] is not None else match[1])
        if high < low:
            raise GridError(f"--seeds: range {part!r} runs backwards")
        seeds.update(range(low, high + 1))
    return sorted(seeds)


def parse_sets(items: list[str]) -> tuple[list[tuple[str, list[str]]], list[str]]:
    """``--set key=a,b`` items -> (the grid: keys with several values, the fixed ``key=value`` items)."""
    grid: list[tuple[str, list[str]]] = []
    fixed: list[str] = []
    seen: set[str] = set()
    for item in items:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep or "." not in key:
            raise GridError(f"--set {item!r}: expected section.field=value[,value...]")
        if key in seen:
            raise GridError(f"--set {key} is given twice (list its values in one --set: {key}=a,b)")
        seen.add(key)
        values = [v.strip() for v in raw.split(",")]
        if any(v == "" for v in values):
            raise GridError(f"--set {item!r}: empty value")
        values = list(dict.fromkeys(values))
        if len(values) == 1:
            fixed.append(f"{key}={values[0]}")
        else:
            grid.append((key, values))
    return grid, fixed


def check_name(name: str) -> str:
    if not NAME_PATTERN.fullmatch(name):
        raise GridError(f"--name {name!r}: use letters, digits, '.', '_' and '-' (at most 64, not starting with '.' or '-')")
    return name


def default_name(controllers: list[str], seeds: list[int], grid: list[tuple[str, list[str]]],
                 base: dict[str, Any]) -> str:
    """A name that depends only on what the command asks for: the same command, the same sweep."""
    return "sweep-" + _digest({"controllers": controllers, "seeds": seeds, "grid": grid, "base": base}, 8)


def build_spec(controllers: str, seeds: str, sets: list[str], *, name: str | None = None, preset: str = "cpu",
               data: str | None = None, epochs: int | None = None, device: str = "auto",
               cpus_per_run: float = 1.0, gpus_per_run: float = 0.0, retries: int = 2, n: int = 100) -> SweepSpec:
    """The spec for the sweep command's flags, every point's settings checked (GridError otherwise)."""
    if preset not in PRESETS:
        raise GridError(f"--preset: unknown preset {preset!r} (choose from {', '.join(PRESETS)})")
    if epochs is not None and epochs < 1:
        raise GridError("--epochs must be at least 1")
    if cpus_per_run <= 0:
        raise GridError("--cpus-per-run must be positive")
    if gpus_per_run < 0:
        raise GridError("--gpus-per-run must not be negative")
    if retries < 0:
        raise GridError("--retries must not be negative")
    if n < 3:
        raise GridError("--n must be at least 3 (Spearman needs pairs)")
    spec = SweepSpec(name="", controllers=parse_controllers(controllers), seeds=parse_seeds(seeds),
                     preset=preset, data=data, epochs=epochs, device=device, cpus_per_run=cpus_per_run,
                     gpus_per_run=gpus_per_run, retries=retries, n=n)
    spec.grid, spec.fixed = parse_sets(sets)
    spec.name = check_name(name) if name else default_name(spec.controllers, spec.seeds, spec.grid, spec.base())
    check_points(spec)
    return spec


def check_points(spec: SweepSpec) -> None:
    """Resolve every point's settings as ``train`` will, so a bad value fails before anything runs."""
    for point in spec.points():
        try:
            resolve(point.controller, spec.preset, seed=point.seed, device=spec.device, data=spec.data,
                    overrides=[*spec.fixed, *point.overrides()], epochs=spec.epochs)
        except SettingsError as exc:
            raise GridError(f"--set: {exc}") from None
