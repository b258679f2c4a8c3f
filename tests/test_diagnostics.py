"""Probe-set diagnostics: Table 1 correlations, collapse index, max action probabilities."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest
from scipy.stats import rankdata, spearmanr

from enas_tui.diagnostics import (
    PAPER_TABLE1,
    TABLE1_COLUMNS,
    DiagnosticsError,
    ProbeAnalysis,
    abs_perf_diff,
    analyze_probe,
    collapse_index,
    hidden_distances,
    max_action_probs,
    ppl_summary,
    spearman,
    table1,
)
from enas_tui.events import Diagnostics, decode_event, encode_event
from enas_tui.search_space import NUM_ACTIVATIONS, Architecture, decision_sizes, random_architecture

N = 6


def _archs(count: int, seed: int, num_nodes: int = N) -> list[Architecture]:
    rng = random.Random(seed)
    return [random_architecture(num_nodes, rng) for _ in range(count)]


def _one_hot(values: list[int] | tuple[int, ...], width: int) -> np.ndarray:
    out = np.zeros((len(values), width))
    out[np.arange(len(values)), values] = 1.0
    return out.ravel()


def _ged_embedding(arch: Architecture) -> np.ndarray:
    """A 0/1 vector whose squared L2 distance between two architectures is exactly twice their GED.

    One-hot activations contribute 2 (N - common_activations), two copies of the one-hot parents
    4 (N - 1 - common_connections) and two copies of the leaf mask 2 |leaves(a) ^ leaves(b)|.
    Integer squared distances keep equal GEDs at exactly equal distances (ties stay ties).
    """
    leaves = np.isin(np.arange(arch.num_nodes), arch.leaves).astype(float)
    parents = _one_hot(arch.parents, arch.num_nodes)
    return np.concatenate([_one_hot(arch.activations, NUM_ACTIVATIONS), parents, parents, leaves, leaves])


# -- pairwise quantities ---------------------------------------------------------------------
def test_hidden_distances_are_l2_in_pdist_order() -> None:
    hidden = np.random.default_rng(0).normal(size=(5, 3))
    expected = [np.linalg.norm(hidden[i] - hidden[j]) for i in range(5) for j in range(i + 1, 5)]
    np.testing.assert_allclose(hidden_distances(hidden), expected)


def test_abs_perf_diff() -> None:
    # pairs (0,1), (0,2), (1,2)
    assert abs_perf_diff(np.array([1.0, 4.0, 2.0])).tolist() == [3.0, 1.0, 2.0]


def test_spearman_monotone_and_reversed() -> None:
    x = np.arange(20.0)
    assert spearman(x, x**3)["rho"] == pytest.approx(1.0)
    assert spearman(x, -np.exp(x))["rho"] == pytest.approx(-1.0)


def test_spearman_matches_rank_correlation_and_scipy() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=200)
    y = np.round(x + rng.normal(size=200), 1)  # ties too
    result = spearman(x, y)
    pearson_of_ranks = np.corrcoef(rankdata(x), rankdata(y))[0, 1]
    assert result["rho"] == pytest.approx(pearson_of_ranks)
    reference = spearmanr(x, y)
    assert result["rho"] == pytest.approx(reference.statistic)
    assert result["p"] == pytest.approx(reference.pvalue)


def test_spearman_undefined_is_none() -> None:
    assert spearman(np.arange(5.0), np.ones(5)) == {"rho": None, "p": None}
    assert spearman(np.arange(2.0), np.arange(2.0)) == {"rho": None, "p": None}


def test_spearman_drops_nan_pairs() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, np.nan])
    assert spearman(x, np.array([2.0, 4.0, 6.0, 8.0, 0.0]))["rho"] == pytest.approx(1.0)


# -- Table 1 ---------------------------------------------------------------------------------
def test_table1_recovers_an_embedding_built_from_ged() -> None:
    archs = _archs(40, seed=0)
    hidden = np.stack([_ged_embedding(a) for a in archs])
    result = table1(hidden, archs)
    assert set(result) == set(TABLE1_COLUMNS)
    assert result["ged"]["rho"] == pytest.approx(1.0)  # distance = sqrt(2 GED): same ranks
    assert result["common_activations"]["rho"] < 0  # more in common, closer
    assert result["abs_perf_diff"] == {"rho": None, "p": None}


def test_table1_activation_and_performance_columns() -> None:
    archs = _archs(30, seed=1)
    by_activation = np.stack([_one_hot(a.activations, NUM_ACTIVATIONS) for a in archs])
    # squared distance 2 (N - common activations): strictly decreasing in common activations
    assert table1(by_activation, archs)["common_activations"]["rho"] == pytest.approx(-1.0)
    ppl = np.random.default_rng(2).uniform(60, 400, size=len(archs))
    assert table1(ppl[:, None], archs, ppl)["abs_perf_diff"]["rho"] == pytest.approx(1.0)


def test_table1_constant_column_is_none_and_json_safe() -> None:
    archs = [Architecture.parse("tanh,0:relu,1:identity")] * 8  # every structural measure constant
    hidden = np.random.default_rng(3).normal(size=(8, 5))
    result = table1(hidden, archs, ppl=np.arange(8.0) + 50)
    for name in ("common_activations", "common_connections", "ged"):
        assert result[name] == {"rho": None, "p": None}
    assert isinstance(result["abs_perf_diff"]["rho"], float)
    json.dumps(result, allow_nan=False)


def test_table1_json_serialisable_on_random_probe() -> None:
    archs = _archs(25, seed=4, num_nodes=12)
    hidden = np.random.default_rng(4).normal(size=(25, 16)).astype(np.float32)
    result = table1(hidden, [a.to_text() for a in archs], ppl=np.linspace(70, 300, 25))
    assert json.loads(json.dumps(result, allow_nan=False)) == result
    assert all(isinstance(v["rho"], float) for v in result.values())


def test_table1_rejects_mismatched_sizes() -> None:
    archs = _archs(5, seed=5)
    with pytest.raises(DiagnosticsError, match="hidden has 4 rows"):
        table1(np.zeros((4, 3)), archs)
    with pytest.raises(DiagnosticsError, match="ppl has 3 rows"):
        table1(np.zeros((5, 3)), archs, ppl=np.ones(3))
    with pytest.raises(DiagnosticsError, match="2-D"):
        table1(np.zeros(5), archs)


def test_paper_table_has_every_column() -> None:
    assert set(PAPER_TABLE1) == {"random", "supervised", "unsupervised"}
    for row in PAPER_TABLE1.values():
        assert tuple(row) == TABLE1_COLUMNS


# -- per-architecture quantities -------------------------------------------------------------
def test_collapse_index() -> None:
    assert collapse_index(np.tile([0.3, -1.0, 2.0], (10, 1))) == 0.0
    # column stds 1 and 2 (population std of {0, 2} and {0, 4})
    assert collapse_index(np.array([[0.0, 0.0], [2.0, 4.0]])) == pytest.approx(1.5)
    assert collapse_index(np.random.default_rng(5).normal(size=(10, 4))) > 0
    with pytest.raises(DiagnosticsError):
        collapse_index(np.zeros((0, 3)))


def test_max_action_probs_zero_padding() -> None:
    # steps with 4, 1 and 2 options, zero-padded to 4
    probs = np.array([[[0.1, 0.2, 0.6, 0.1], [1.0, 0, 0, 0], [0.3, 0.7, 0, 0]]])
    assert max_action_probs(probs, [4, 1, 2]).tolist() == [[0.6, 1.0, 0.7]]


def test_max_action_probs_never_reads_padding() -> None:
    probs = np.full((2, 3, 4), 0.99)  # padding filled with a value larger than any real one
    probs[:, 0, :4] = [0.25, 0.25, 0.4, 0.1]
    probs[:, 1, :1] = [1.0]
    probs[:, 2, :2] = [0.5, 0.5]
    probs[1, 1, 0] = 0.9  # only to tell the rows apart
    assert max_action_probs(probs, [4, 1, 2]).tolist() == [[0.4, 1.0, 0.5], [0.4, 0.9, 0.5]]


def test_max_action_probs_rejects_bad_sizes() -> None:
    with pytest.raises(DiagnosticsError, match="2 decision sizes"):
        max_action_probs(np.zeros((1, 3, 4)), [4, 1])
    with pytest.raises(DiagnosticsError, match="padded width"):
        max_action_probs(np.zeros((1, 2, 4)), [4, 5])


def test_ppl_summary() -> None:
    summary = ppl_summary(np.array([5.0, 1.0, 3.0, 2.0, 4.0, np.inf]))
    assert summary == {
        "n": 6, "nonfinite": 1, "median": 3.0, "q25": 2.0, "q75": 4.0, "min": 1.0, "max": 5.0, "mean": 3.0,
    }
    assert ppl_summary(np.array([np.nan]))["median"] is None


# -- one probe set ---------------------------------------------------------------------------
def _probe(count: int, num_nodes: int, seed: int, collapsed: bool):
    rng = np.random.default_rng(seed)
    sizes = decision_sizes(num_nodes)
    probs = np.zeros((count, len(sizes), max(sizes)))
    for step, size in enumerate(sizes):
        probs[:, step, :size] = rng.dirichlet(np.ones(size), size=1 if collapsed else count)
    hidden = np.tile(rng.normal(size=8), (count, 1)) if collapsed else rng.normal(size=(count, 8))
    archs = _archs(count, seed, num_nodes)
    return archs, probs, hidden, sizes


def test_analyze_probe_healthy_vs_collapsed() -> None:
    archs, probs, hidden, sizes = _probe(20, 5, seed=6, collapsed=False)
    analysis = analyze_probe(archs, probs, hidden, sizes, ppl=np.linspace(80, 200, 20))
    assert isinstance(analysis, ProbeAnalysis)
    assert analysis.n == 20 and analysis.max_probs.shape == (20, len(sizes))
    assert analysis.collapse_index["hidden"] > 0 and analysis.collapse_index["max_prob"] > 0

    archs, probs, hidden, sizes = _probe(20, 5, seed=7, collapsed=True)
    collapsed = analyze_probe([a.to_text() for a in archs], probs, hidden, sizes)
    assert collapsed.collapse_index == {"hidden": 0.0, "max_prob": 0.0}
    # identical hidden states: every distance is 0, so no correlation is defined
    assert all(v == {"rho": None, "p": None} for v in collapsed.spearman.values())


def test_analysis_to_dict_fits_the_diagnostics_event() -> None:
    archs, probs, hidden, sizes = _probe(12, 4, seed=8, collapsed=False)
    record = analyze_probe(archs, probs, hidden, sizes).to_dict()
    assert set(record) == {"n", "spearman", "collapse_index"}
    json.dumps(record, allow_nan=False)
    event = decode_event(encode_event(Diagnostics(epoch=1, step=2, **record)))
    assert isinstance(event, Diagnostics)
    assert event.spearman == record["spearman"] and event.collapse_index == record["collapse_index"]


def test_analyze_probe_rejects_mismatched_probs() -> None:
    archs, probs, hidden, sizes = _probe(6, 3, seed=9, collapsed=False)
    with pytest.raises(DiagnosticsError, match="probs has 5 rows"):
        analyze_probe(archs, probs[:5], hidden, sizes)
