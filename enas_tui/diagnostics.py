"""The paper's measurements of what a controller has learnt, computed over a probe set.

A probe set is n architectures sampled from the controller, with the per-step action probabilities
and the controller's final hidden state for each (events.Probe). From it we compute

- Table 1: Spearman correlation between the L2 distance of final hidden states and each pairwise
  similarity measure (similarity.py), plus the absolute perplexity difference when perplexities
  are known. A controller whose embedding reflects architectures has negative correlations with
  the "common" counts and positive ones with GED;
- Fig. 1/4: the probability of the most likely action at each decision step;
- a collapse index: how much the rows (architectures) differ relative to their size. The paper's
  failure mode is an unsupervised controller whose final state is the same whatever it sampled
  (Fig. 3), which shows as an index near zero;
- Fig. 2: a summary of the sampled architectures' perplexities.

Columns, measures and readings. The paper's Table 1 has four columns; where the paper is ambiguous
a column has several *readings*, each a differently named measure: ``common_activations`` is read
as ``common_activations_paper`` (the authors' count: same parent and activation, plus common
leaves; the default) or ``common_activations_aligned`` (same activation at the same index);
``ged`` as ``ged_paper`` (the authors' structure-only approximate GED; the default),
``ged_aligned`` (closed form under node i <-> node i) or ``ged_exact`` (exact GED of the labelled
graphs). Results are keyed by measure, never by column, so a number always says what it measured.

No torch here: the dashboard and ``analyze`` recompute these from the session log.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from enas_tui import similarity
from enas_tui.search_space import Architecture

# The paper's four columns, in its order; PAPER_TABLE1 is keyed by these.
TABLE1_COLUMNS: tuple[str, ...] = ("common_activations", "common_connections", "ged", "abs_perf_diff")
READINGS: dict[str, tuple[str, ...]] = {"common_activations": ("paper", "aligned"),
                                        "ged": ("paper", "aligned", "exact")}
# The authors' definitions: the only readings whose numbers can sit beside the paper's column.
DEFAULT_READINGS: dict[str, str] = {"common_activations": "paper", "ged": "paper"}

# similarity's measures: the closed forms (every live probe), the searches (a GED search per pair:
# only the live probes that also score performance), all six in display order.
CHEAP_MEASURES: tuple[str, ...] = similarity.CHEAP_MEASURES
COSTLY_MEASURES: tuple[str, ...] = similarity.COSTLY_MEASURES
STRUCTURAL_MEASURES: tuple[str, ...] = similarity.MEASURES
ALL_MEASURES: tuple[str, ...] = (*STRUCTURAL_MEASURES, "abs_perf_diff")

COLUMN_LABELS: dict[str, str] = {
    "common_activations": "# common activations",
    "common_connections": "# common connections",
    "ged": "GED",
    "abs_perf_diff": "abs. perf. diff",
}
MEASURE_LABELS: dict[str, str] = {
    "common_activations_paper": "# common activations (paper)",
    "common_activations_aligned": "# common activations (aligned)",
    "common_connections": "# common connections",
    "ged_paper": "GED (paper)",
    "ged_aligned": "GED (aligned)",
    "ged_exact": "GED (exact)",
    "abs_perf_diff": "abs. perf. diff",
}

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


# -- columns and readings --------------------------------------------------------------------
def column_measure(column: str, reading: str | None = None) -> str:
    """The measure a Table 1 column shows under a reading (None: the default reading)."""
    if column not in TABLE1_COLUMNS:
        raise DiagnosticsError(f"unknown Table 1 column {column!r} (columns: {', '.join(TABLE1_COLUMNS)})")
    choices = READINGS.get(column)
    if choices is None:
        if reading is not None:
            raise DiagnosticsError(f"column {column} has a single reading")
        return column
    reading = reading or DEFAULT_READINGS[column]
    if reading not in choices:
        raise DiagnosticsError(f"unknown reading {reading!r} for {column} (choose from {', '.join(choices)})")
    return f"{column}_{reading}"


def choose_readings(readings: dict[str, str | None] | None = None) -> dict[str, str]:
    """{column: reading} for the columns that have readings: the defaults, overridden by ``readings``."""
    readings = {k: v for k, v in (readings or {}).items() if v is not None}
    unknown = set(readings) - set(READINGS)
    if unknown:
        raise DiagnosticsError(f"only {', '.join(READINGS)} have readings, not {', '.join(sorted(unknown))}")
    for column, reading in readings.items():
        column_measure(column, reading)  # validates
    return {column: readings.get(column, DEFAULT_READINGS[column]) for column in READINGS}


def resolve_readings(readings: dict[str, str | None] | None = None) -> dict[str, str]:
    """Every Table 1 column mapped to the measure it shows under ``readings`` (``choose_readings``)."""
    chosen = choose_readings(readings)
    return {column: column_measure(column, chosen.get(column)) for column in TABLE1_COLUMNS}


def other_measures(shown: dict[str, str]) -> list[str]:
    """The measures that are not in the main table (``resolve_readings``): shown apart."""
    return [m for m in ALL_MEASURES if m not in shown.values()]


# -- pairwise quantities ---------------------------------------------------------------------
def structural_measures(archs: Sequence[Architecture], measures: Sequence[str]) -> dict[str, np.ndarray]:
    """The named structural measures for every pair i < j (pdist order), in STRUCTURAL_MEASURES order."""
    unknown = [m for m in measures if m not in STRUCTURAL_MEASURES]
    if unknown:
        raise DiagnosticsError(f"unknown measure(s) {', '.join(unknown)} (known: {', '.join(STRUCTURAL_MEASURES)})")
    ordered = tuple(m for m in STRUCTURAL_MEASURES if m in measures)
    return dict(similarity.pairwise_measures(archs, measures=ordered)) if ordered else {}


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
    measures: Sequence[str] = STRUCTURAL_MEASURES,
) -> dict[str, dict[str, float | None]]:
    """Spearman(hidden distance, measure) for each structural measure asked for, keyed by measure,
    plus ``abs_perf_diff`` when perplexities are given. A measure not computed has no key; one
    computed but undefined (a constant column) is ``{"rho": None, "p": None}``."""
    archs = _architectures(archs)
    distances = hidden_distances(hidden)
    _check_rows(np.asarray(hidden).shape[0], "hidden", len(archs))
    if ppl is not None:
        _check_rows(len(np.asarray(ppl)), "ppl", len(archs))
    columns = structural_measures(archs, measures)
    if ppl is not None:
        columns["abs_perf_diff"] = abs_perf_diff(ppl)
    return {name: spearman(distances, column) for name, column in columns.items()}


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
    """How much the rows of an (n, d) matrix differ, relative to their size, in [0, 1].

    ``sqrt(mean_i ||h_i - mean h||^2) / sqrt(mean_i ||h_i||^2)``: the RMS distance of the rows
    (architectures) to their mean over the RMS row norm. 0 when every architecture gives the same
    row (the paper's collapsed controller), 1 when the rows average to zero; multiplying the
    matrix by any non-zero number leaves it unchanged, so a controller with a small |h| is not
    called collapsed for being small. All-zero rows are identical: 0.
    """
    matrix = _matrix(matrix, "matrix")
    if matrix.shape[0] == 0 or matrix.shape[1] == 0:
        raise DiagnosticsError(f"collapse index needs a non-empty matrix, got shape {matrix.shape}")
    matrix = matrix.astype(np.float64)
    # Shifting by the first row leaves the spread unchanged and makes identical rows exactly 0.
    shifted = matrix - matrix[0]
    spread = float(np.mean(np.sum((shifted - shifted.mean(axis=0)) ** 2, axis=1)))
    size = float(np.mean(np.sum(matrix**2, axis=1)))
    if spread == 0.0 or size == 0.0:
        return 0.0
    return min(1.0, math.sqrt(spread / size))


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
    measures: Sequence[str] = STRUCTURAL_MEASURES,
) -> ProbeAnalysis:
    """Table 1 (the ``measures`` asked for), collapse indices and per-step max probabilities."""
    archs = _architectures(archs)
    max_probs = max_action_probs(probs, decision_sizes)
    _check_rows(max_probs.shape[0], "probs", len(archs))
    return ProbeAnalysis(
        n=len(archs),
        spearman=table1(hidden, archs, ppl, measures),
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
