"""Cell shape: how deep and how wide the sampled cells are, over a search.

Shu et al. ("Understanding Architectures Learnt by Cell-based Neural Architecture Search") found
that cell-based searches drift toward wide, shallow cells because those converge fastest, not
because they generalise better. Our search space makes both quantities exact for every sampled
cell:

- **depth**: the longest path from node 0, in edges (a cell whose nodes all read node 0 has
  depth 1; a chain of N nodes has depth N-1);
- **width**: the number of leaves, the nodes no other node reads, whose mean is the cell's output.

Per probe set the dashboard and ``analyze`` summarise both as quartiles; the reference is the
distribution under uniform sampling (every decision uniform over its options), which is where
every controller starts. Pure Python and numpy, no torch: the dashboard, ``analyze`` and the
report share it. The drawing function takes a matplotlib Axes, so this module never imports
matplotlib itself.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from enas_tui.search_space import ACTIVATIONS, Architecture, random_architecture

QUANTITIES: tuple[str, ...] = ("depth", "width")
_ACTIVATIONS = frozenset(ACTIVATIONS)


def depth_width(arch: Architecture) -> tuple[int, int]:
    """(depth, width) of one cell: longest path from node 0 in edges, number of leaves."""
    return max(arch.depths), len(arch.leaves)


def text_depth_width(text: str) -> tuple[int, int] | None:
    """(depth, width) straight from an architecture's text form, or None if it is malformed.

    The dashboard reads every probe set's architectures while indexing a long log (100 per probe
    set, thousands of sets); this reads only the parents, without building ``Architecture``
    objects (activations do not change the shape; the first field is checked to be one).
    """
    fields = text.split(",")
    if fields[0] not in _ACTIVATIONS:
        return None
    depth = [0]
    try:
        parents = [int(field[: field.index(":")]) for field in fields[1:]]
    except ValueError:
        return None
    for node, parent in enumerate(parents, start=1):
        if not 0 <= parent < node:
            return None
        depth.append(depth[parent] + 1)
    return max(depth), len(fields) - len(set(parents))


def shapes(archs: Iterable[Architecture | str]) -> np.ndarray:
    """(n, 2) int array of (depth, width) per architecture; malformed text forms are left out."""
    archs = list(archs)
    fast = _text_shapes(archs) if archs and all(isinstance(a, str) for a in archs) else None
    if fast is not None:
        return fast
    rows = []
    for arch in archs:
        shape = text_depth_width(arch) if isinstance(arch, str) else depth_width(arch)
        if shape is not None:
            rows.append(shape)
    return np.asarray(rows, dtype=np.int64).reshape(-1, 2)


_PARENT = re.compile(r",(\d+):")
_ACT = "(?:" + "|".join(ACTIVATIONS) + ")"
_CELL = rf"{_ACT}(?:,\d+:{_ACT})*"
_CELLS = re.compile(rf"{_CELL}(?:;{_CELL})*")  # text forms joined by ';'


def _text_shapes(texts: list[str]) -> np.ndarray | None:
    """``shapes`` of a probe set's text forms all at once (numpy over the architectures, a loop over
    the nodes), or None when they are not all well-formed cells of one size (the slow path then
    sorts out which are)."""
    n, nodes = len(texts), texts[0].count(",") + 1
    joined = ";".join(texts)
    if _CELLS.fullmatch(joined) is None or joined.count(";") != n - 1:
        return None
    found = _PARENT.findall(joined)
    if len(found) != n * (nodes - 1):
        return None
    parents = np.asarray(found, dtype=np.int64).reshape(n, nodes - 1)
    if nodes > 1 and (parents >= np.arange(1, nodes)).any():
        return None
    rows = np.arange(n)
    depth = np.zeros((n, nodes), dtype=np.int64)
    for node in range(1, nodes):
        depth[:, node] = depth[rows, parents[:, node - 1]] + 1
    read = np.zeros((n, nodes), dtype=bool)
    read[rows[:, None], parents] = True
    return np.stack([depth.max(axis=1), nodes - read.sum(axis=1)], axis=1)


@dataclass(frozen=True)
class Quartiles:
    """The spread of one quantity over a probe set."""

    q25: float
    median: float
    q75: float
    mean: float
    low: float  # minimum
    high: float  # maximum

    @classmethod
    def of(cls, values: np.ndarray) -> Quartiles:
        """Quartiles with linear interpolation (numpy's default), without np.percentile's overhead,
        which would dominate the dashboard's indexing of thousands of small probe sets."""
        ordered = np.sort(np.asarray(values, dtype=np.float64))
        pos = np.array([0.25, 0.5, 0.75]) * (len(ordered) - 1)
        lo = pos.astype(np.int64)
        hi = np.minimum(lo + 1, len(ordered) - 1)
        q25, median, q75 = (ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)).tolist()
        return cls(q25, median, q75, float(ordered.mean()), float(ordered[0]), float(ordered[-1]))

    def to_dict(self) -> dict[str, float]:
        return {"q25": self.q25, "median": self.median, "q75": self.q75, "mean": self.mean,
                "min": self.low, "max": self.high}


@dataclass(frozen=True)
class ShapeSummary:
    """Depth and width quartiles of one probe set (n architectures)."""

    n: int
    depth: Quartiles
    width: Quartiles

    def to_dict(self) -> dict:
        return {"n": self.n, "depth": self.depth.to_dict(), "width": self.width.to_dict()}


def summarize(archs: Iterable[Architecture | str]) -> ShapeSummary | None:
    """Quartiles of depth and width over a probe set (None when no architecture could be read)."""
    table = shapes(archs)
    if len(table) == 0:
        return None
    return ShapeSummary(len(table), Quartiles.of(table[:, 0]), Quartiles.of(table[:, 1]))


@lru_cache(maxsize=8)
def uniform_reference(num_nodes: int, n: int = 4000, seed: int = 0) -> ShapeSummary:
    """Depth and width under uniform sampling: every controller's starting point (fixed seed)."""
    rng = random.Random(seed)
    summary = summarize(random_architecture(num_nodes, rng) for _ in range(n))
    assert summary is not None
    return summary


# -- a search's history --------------------------------------------------------------------------
@dataclass(frozen=True)
class ShapeHistory:
    """Per probe set over a search: where it was taken and its depth and width quartiles."""

    epochs: np.ndarray  # (p,) epoch of each probe set
    steps: np.ndarray  # (p,) controller step of each probe set
    depth: np.ndarray  # (p, 3) q25, median, q75
    width: np.ndarray  # (p, 3)

    def to_dict(self) -> dict:
        return {"epochs": self.epochs.tolist(), "steps": self.steps.tolist(),
                "depth": self.depth.tolist(), "width": self.width.tolist()}


def history(probes: Iterable[tuple[int, int, Sequence[Architecture | str]]]) -> ShapeHistory:
    """The shape history of a search from (epoch, step, architectures) per probe set."""
    epochs, steps, depth, width = [], [], [], []
    for epoch, step, archs in probes:
        summary = summarize(archs)
        if summary is None:
            continue
        epochs.append(epoch)
        steps.append(step)
        depth.append((summary.depth.q25, summary.depth.median, summary.depth.q75))
        width.append((summary.width.q25, summary.width.median, summary.width.q75))
    return ShapeHistory(np.asarray(epochs, dtype=np.int64), np.asarray(steps, dtype=np.int64),
                        np.asarray(depth, dtype=np.float64).reshape(-1, 3),
                        np.asarray(width, dtype=np.float64).reshape(-1, 3))


# -- the report's figure ---------------------------------------------------------------------------
def plot_shape_history(axes: Sequence, runs: Sequence[tuple[str, ShapeHistory]],
                       reference: ShapeSummary | None = None,
                       derived: Sequence[tuple[str, Architecture | None]] = (),
                       colors: dict[str, str] | None = None) -> None:
    """Depth (``axes[0]``) and width (``axes[1]``) over the search, one band per run.

    Each run is drawn as its median per probe set (its own line style, so runs that coincide stay
    apart) with the interquartile range lightly shaded, against the controller step;
    ``reference`` (uniform sampling) is a grey dashed line at its median, and each run's derived
    cell (if given) a diamond just right of the axes, in the run's colour. ``colors`` maps a run's
    label to its colour.
    """
    styles = ("-", "--", ":", "-.")
    colors = colors or {}
    for ax, quantity, column in zip(axes, QUANTITIES, (0, 1)):
        used: dict[str, str] = {}
        for i, (label, run) in enumerate(runs):
            values = run.depth if column == 0 else run.width
            if len(values) == 0:
                continue
            line, = ax.plot(run.steps, values[:, 1], label=f"{label} (median)", color=colors.get(label),
                            linestyle=styles[i % len(styles)], linewidth=1.8)
            used[label] = line.get_color()
            ax.fill_between(run.steps, values[:, 0], values[:, 2], alpha=0.12, color=line.get_color(),
                            linewidth=0)
        if reference is not None:
            level = reference.depth.median if column == 0 else reference.width.median
            ax.axhline(level, color="0.5", linestyle=(0, (4, 3)), linewidth=1, label="uniform sampling (median)")
        for i, (label, arch) in enumerate(derived):
            if arch is not None:
                ax.plot([1.02 + 0.025 * i], [depth_width(arch)[column]], marker="D", linestyle="none",
                        color=used.get(label, colors.get(label)), transform=ax.get_yaxis_transform(),
                        clip_on=False, label=f"{label}: derived cell")
        ax.set_xlabel("controller step")
        ax.set_ylabel(f"{quantity} ({'longest path from node 0' if column == 0 else 'number of leaves'})")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize="small")


def history_from_log(path, until_epoch: int | None = None) -> tuple[ShapeHistory, str | None]:
    """The shape history of a recorded search (every probe set up to ``until_epoch``), and the last
    derived cell's text form; probe arrays are never decoded (only the architectures are read)."""
    from enas_tui.session_log import LogReader
    from enas_tui.sources import peek, probe_archs

    probes: list[tuple[int, int, list[str]]] = []
    derived: str | None = None
    with LogReader(path) as reader:
        while records := reader.read_records(max_records=5000):
            for record in records:
                kind = (peek(record) or (None,))[0]
                if kind == "probe":
                    light = probe_archs(record)
                    event = light if light is not None else record.event()
                    if until_epoch is None or event.epoch <= until_epoch:
                        probes.append((event.epoch, event.step, list(event.archs)))
                elif kind == "derived":
                    event = record.event()
                    if until_epoch is None or event.epoch <= until_epoch:
                        derived = event.arch
    return history(probes), derived
