"""The embedding map (the paper's section 3.4): controller hidden states of a probe set in 2-D.

The paper asks whether distances between the controller's final hidden states reflect how similar
the architectures are. The map shows it directly: the probe architectures' final hidden states
projected on their first two principal components (PCA by SVD of the centred rows), each point
coloured by a property of its architecture. Coordinates are in units of the RMS row norm
``sqrt(mean_i ||h_i||^2)``, the scale of the collapse index (diagnostics), so a collapsed
controller is a tight blob near the origin instead of a blob stretched to fill the plot, and a
controller whose states depend on the architecture spreads out with visible structure.

Pure numpy, no torch: the dashboard, ``analyze`` and the report share it. The drawing function
takes a matplotlib Axes, so this module never imports matplotlib itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from enas_tui.diagnostics import collapse_index
from enas_tui.search_space import ACTIVATIONS

# What a point can be coloured by, in the order a key cycles through them.
PROPERTIES: tuple[str, ...] = (*ACTIVATIONS, "depth", "leaves", "valid ppl")
PROPERTY_LABELS = {
    **{name: f"number of {name} nodes" for name in ACTIVATIONS},
    "depth": "depth (longest path from node 0)",
    "leaves": "number of leaves",
    "valid ppl": "validation perplexity",
}


@dataclass(frozen=True)
class Projection:
    """A probe set's hidden states on their first two principal components."""

    points: np.ndarray  # (n, 2), in units of the RMS row norm
    explained: np.ndarray  # (2,) fraction of the total variance on each component
    scale: float  # the RMS row norm sqrt(mean_i ||h_i||^2) the points are divided by
    spread: float  # RMS distance of the rows to their mean over ``scale``: diagnostics.collapse_index

    @property
    def n(self) -> int:
        return len(self.points)

    def to_dict(self) -> dict:
        return {"points": self.points.tolist(), "explained": self.explained.tolist(),
                "scale": self.scale, "spread": self.spread}


def project(hidden: np.ndarray) -> Projection:
    """PCA of an (n, d) matrix of hidden states to 2-D, scaled by the RMS row norm.

    Each component's sign is fixed so that its largest loading is positive, which keeps the
    picture from flipping between probe sets whose principal axes barely changed.
    """
    h = np.asarray(hidden, dtype=np.float64)
    if h.ndim != 2 or h.shape[0] == 0:
        raise ValueError(f"hidden must be a non-empty (n, d) matrix, got shape {h.shape}")
    finite = np.isfinite(h).all(axis=1)
    h = np.where(finite[:, None], h, 0.0)
    scale = float(np.sqrt(np.mean(np.sum(h * h, axis=1))))
    centred = h - h.mean(axis=0)
    total = float(np.sum(centred * centred))
    points = np.zeros((h.shape[0], 2))
    explained = np.zeros(2)
    if total > 0 and scale > 0:
        _, sv, vt = np.linalg.svd(centred, full_matrices=False)
        k = min(2, len(sv))
        for c in range(k):
            if vt[c, np.argmax(np.abs(vt[c]))] < 0:
                vt[c] = -vt[c]
        points[:, :k] = centred @ vt[:k].T / scale
        explained[:k] = sv[:k] ** 2 / total
    return Projection(points, explained, scale, collapse_index(h))


def properties(archs: Sequence, ppl: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Each architecture's colourable properties (see PROPERTIES); ``valid ppl`` only if given.

    ``archs`` are Architecture objects or text forms; an unreadable text form gets NaN everywhere.
    """
    from enas_tui.search_space import Architecture, ArchitectureError

    n = len(archs)
    out = {name: np.full(n, np.nan) for name in PROPERTIES if name != "valid ppl"}
    for i, arch in enumerate(archs):
        try:
            a = arch if isinstance(arch, Architecture) else Architecture.parse(arch)
        except ArchitectureError:
            continue
        counts = np.bincount(a.activations, minlength=len(ACTIVATIONS))
        for k, name in enumerate(ACTIVATIONS):
            out[name][i] = counts[k]
        out["depth"][i] = max(a.depths)
        out["leaves"][i] = len(a.leaves)
    if ppl is not None and len(ppl) == n:
        out["valid ppl"] = np.asarray(ppl, dtype=np.float64)
    return out


# -- the report's figure ---------------------------------------------------------------------------
def plot_embedding(ax, projection: Projection, values: np.ndarray | None, label: str, title: str = "",
                   limit: float | None = None, cmap: str = "viridis"):
    """Scatter the projection on ``ax``, coloured by ``values`` (``label`` names them).

    The axes span [-limit, limit] in units of the RMS row norm (default: the points' own extent,
    at least 0.2), so maps drawn with the same ``limit`` compare directly. Returns the scatter
    (for a colour bar).
    """
    points = projection.points
    if limit is None:
        limit = map_limit([projection])
    colours = values if values is not None and np.isfinite(values).any() else None
    scatter = ax.scatter(points[:, 0], points[:, 1], c=colours, cmap=cmap if colours is not None else None,
                         s=18, edgecolors="none")
    ax.set_xlim(-limit, limit)
    ax.set_ylim(-limit, limit)
    ax.set_aspect("equal")
    ax.axhline(0, color="0.8", linewidth=0.6, zorder=0)
    ax.axvline(0, color="0.8", linewidth=0.6, zorder=0)
    ev = projection.explained
    ax.set_xlabel(f"PC1 ({ev[0]:.0%} of variance)")
    ax.set_ylabel(f"PC2 ({ev[1]:.0%} of variance)")
    ax.set_title(f"{title}\nspread {projection.spread:.3f} of RMS |h| · colour: {label}".strip())
    return scatter


def map_limit(projections: Sequence[Projection], floor: float = 0.2) -> float:
    """A common half-width for several maps: their largest extent, and never under ``floor``."""
    extent = max((float(np.abs(p.points).max()) for p in projections if p.n), default=0.0)
    return max(floor, 1.05 * extent)
