"""The paper's measurements of what a controller has learnt, computed over a probe set.

A probe set is n architectures sampled from the controller, with the per-step action probabilities
and the controller's final hidden state for each (events.Probe). From it we compute

- Table 1: Spearman correlation between the L2 distance of final hidden states and each pairwise
  similarity measure (similarity.py), plus the absolute perplexity difference when perplexities
  are known. A controller whose embedding reflects architectures has negative correlations with
  the "common" counts and positive ones with GED;
- Fig. 1/4: the probability of the most likely action at each decision step;
- a collapse index: how much the rows (architectures) differ. The paper's failure mode is an
  unsupervised controller whose final state is the same whatever it sampled (Fig. 3), which shows
  as an index near zero;
- Fig. 2: a summary of the sampled architectures' perplexities.

No torch here: the dashboard and ``analyze`` recompute these from the session log.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from enas_tui.search_space import Architecture
from enas_tui.similarity import pairwise_measures

TABLE1_COLUMNS: tuple[str, ...] = ("common_activations", "common_connections", "ged", "abs_perf_diff")

PAPER_TABLE1: dict[str, dict[str, float]] = {
    "random": {
        "common_activations": -0.090,
        "common_connections": -0.130,
        "ged": -0.064,
        "abs_perf_diff": 0.004,
    },
    "supervised": {
        "common_activations": -0.404,
        "common_connections": -0.160,
        "ged": 0.100,
        "abs_perf_diff": 0.163,
    },
    "unsupervised": {
        "common_activations": -0.315,
        "common_connections": -0.072,
        "ged": -0.028,
        "abs_perf_diff": -0.001,
    },
}


class DiagnosticsError(ValueError):
    """Probe data of the wrong shape or size; the message says which array and why."""


# -- pairwise quantities ---------------------------------------------------------------------
def hidden_distances(hidden: np.ndarray) -> np.ndarray:
    """Condensed L2 distances between the rows of an (n, H) matrix of final hidden states."""
    hidden = _matrix(hidden, "hidden")
    from scipy.spatial.distance import pdist  # imported here: scipy costs ~1 s of the dashboard's start

    return pdist(hidden.astype(np.float64), metric="euclidean")


def abs_perf_diff(ppl: np.ndarray) -> np.ndarray:
    """Condensed |ppl_i - ppl_j| over pairs i < j (pdist order)."""
    ppl = np.asarray(ppl, dtype=np.float64)
    if ppl.ndim != 1:
        raise DiagnosticsError(f"ppl must be a vector, got shape {ppl.shape}")
    left, right = np.triu_indices(len(ppl), k=1)
    return np.abs(ppl[left] - ppl[right])


def spearman(x: np.ndarray, y: np.ndarray) -> dict[str, float | None]:
    """Spearman rho and p-value; None when undefined (constant column, < 3 pairs) so JSON stays valid.

    Pairs with a NaN are left out (an inf perplexity still ranks, as the worst).
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    keep = ~(np.isnan(x) | np.isnan(y))
    x, y = x[keep], y[keep]
    if len(x) < 3 or _constant(x) or _constant(y):
        return {"rho": None, "p": None}
    from scipy.stats import spearmanr

    result = spearmanr(x, y)
    return {"rho": _finite_or_none(result.statistic), "p": _finite_or_none(result.pvalue)}


def table1(
    hidden: np.ndarray,
    archs: Sequence[Architecture | str],
    ppl: np.ndarray | None = None,
) -> dict[str, dict[str, float | None]]:
    """The paper's Table 1 for one probe set: Spearman(hidden distance, measure) per column."""
    archs = _architectures(archs)
    distances = hidden_distances(hidden)
    _check_rows(np.asarray(hidden).shape[0], "hidden", len(archs))
    measures = pairwise_measures(archs)
    columns: dict[str, np.ndarray | None] = {
        "common_activations": measures["common_activations_aligned"],
        "common_connections": measures["common_connections"],
        "ged": measures["ged_aligned"],
    }
    if ppl is not None:
        _check_rows(len(np.asarray(ppl)), "ppl", len(archs))
    columns["abs_perf_diff"] = None if ppl is None else abs_perf_diff(ppl)
    return {
        name: {"rho": None, "p": None} if column is None else spearman(distances, column)
        for name, column in columns.items()
    }


# -- per-architecture quantities -------------------------------------------------------------
def max_action_probs(probs: np.ndarray, decision_sizes: Sequence[int]) -> np.ndarray:
    """(n, D) probability of the most likely action at each step, from (n, D, K) padded vectors.

    Entries past a step's option count are padding and never taken as the maximum.
    """
    probs = np.asarray(probs, dtype=np.float64)
    sizes = np.asarray(decision_sizes, dtype=np.int64)
    if probs.ndim != 3:
        raise DiagnosticsError(f"probs must be (n, decisions, options), got shape {probs.shape}")
    if sizes.shape != (probs.shape[1],):
        raise DiagnosticsError(
            f"probs has {probs.shape[1]} decision steps but {sizes.size} decision sizes were given"
        )
    if sizes.size and (sizes.min() < 1 or sizes.max() > probs.shape[2]):
        raise DiagnosticsError(
            f"decision sizes must be in 1..{probs.shape[2]} (the padded width), got {sizes.tolist()}"
        )
    valid = np.arange(probs.shape[2])[None, :] < sizes[:, None]  # (D, K)
    return np.where(valid, probs, -np.inf).max(axis=2)


def collapse_index(matrix: np.ndarray) -> float:
    """Mean over columns of the across-rows standard deviation of an (n, d) matrix.

    Zero when every architecture gives the same row (the paper's collapsed controller).
    """
    matrix = _matrix(matrix, "matrix")
    if matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise DiagnosticsError(f"collapse index needs a non-empty matrix, got shape {matrix.shape}")
    # Shifting by the first row leaves the std unchanged and makes identical rows exactly 0.
    matrix = matrix.astype(np.float64)
    return float((matrix - matrix[0]).std(axis=0).mean())


def ppl_summary(ppl: np.ndarray) -> dict[str, float | int | None]:
    """Fig. 2 summary of sampled perplexities over the finite values (diverged ones are counted)."""
    ppl = np.asarray(ppl, dtype=np.float64).ravel()
    finite = ppl[np.isfinite(ppl)]
    summary: dict[str, float | int | None] = {"n": int(ppl.size), "nonfinite": int(ppl.size - finite.size)}
    if finite.size == 0:
        return summary | dict.fromkeys(("median", "q25", "q75", "min", "max", "mean"))
    q25, median, q75 = np.percentile(finite, [25, 50, 75])
    return summary | {
        "median": float(median),
        "q25": float(q25),
        "q75": float(q75),
        "min": float(finite.min()),
        "max": float(finite.max()),
        "mean": float(finite.mean()),
    }


# -- one probe set ---------------------------------------------------------------------------
@dataclass
class ProbeAnalysis:
    """Everything the dashboard and the session log show about one probe set."""

    n: int
    spearman: dict[str, dict[str, float | None]]
    collapse_index: dict[str, float]
    max_probs: np.ndarray  # (n, D)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary with the fields of events.Diagnostics (n, spearman, collapse_index)."""
        return {
            "n": self.n,
            "spearman": {name: dict(values) for name, values in self.spearman.items()},
            "collapse_index": dict(self.collapse_index),
        }


def analyze_probe(
    archs: Sequence[Architecture | str],
    probs: np.ndarray,
    hidden: np.ndarray,
    decision_sizes: Sequence[int],
    ppl: np.ndarray | None = None,
) -> ProbeAnalysis:
    """Table 1, collapse indices and per-step max probabilities of one probe set."""
    archs = _architectures(archs)
    max_probs = max_action_probs(probs, decision_sizes)
    _check_rows(max_probs.shape[0], "probs", len(archs))
    return ProbeAnalysis(
        n=len(archs),
        spearman=table1(hidden, archs, ppl),
        collapse_index={"hidden": collapse_index(hidden), "max_prob": collapse_index(max_probs)},
        max_probs=max_probs,
    )


# -- helpers ---------------------------------------------------------------------------------
def _architectures(archs: Sequence[Architecture | str]) -> list[Architecture]:
    """Accept architectures or their text form (events.Probe stores text)."""
    return [a if isinstance(a, Architecture) else Architecture.parse(a) for a in archs]


def _matrix(values: np.ndarray, name: str) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 2:
        raise DiagnosticsError(f"{name} must be a 2-D (n, d) array, got shape {values.shape}")
    return values


def _check_rows(count: int, name: str, expected: int) -> None:
    if count != expected:
        raise DiagnosticsError(f"{name} has {count} rows but the probe set has {expected}")


def _constant(values: np.ndarray) -> bool:
    return bool(values.size == 0 or np.all(values == values[0]))


def _finite_or_none(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
