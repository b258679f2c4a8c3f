"""Probe-set diagnostics: Table 1 correlations, collapse index, max action probabilities."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
from scipy.stats import rankdata, spearmanr

from enas_tui.diagnostics import (
    ALL_MEASURES,
    CHEAP_MEASURES,
    DEFAULT_READINGS,
    PAPER_TABLE1,
    STRUCTURAL_MEASURES,
    TABLE1_COLUMNS,
    DiagnosticsError,
    ProbeAnalysis,
    abs_perf_diff,
    analyze_probe,
    choose_readings,
    collapse_index,
    column_measure,
    hidden_distances,
    max_action_probs,
    other_measures,
    ppl_summary,
    resolve_readings,
    spearman,
    table1,
)
from enas_tui.events import Diagnostics, decode_event, encode_event
from enas_tui.similarity import pairwise_measures
from enas_tui.search_space import NUM_ACTIVATIONS, Architecture, decision_sizes, random_architecture

N = 6
ALIGNED = ("common_activations_aligned", "common_connections", "ged_aligned")  # closed forms: fast


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


# -- columns and readings --------------------------------------------------------------------
def test_each_column_maps_to_a_named_measure_under_each_reading() -> None:
    assert DEFAULT_READINGS == {"common_activations": "paper", "ged": "paper"}
    assert column_measure("common_activations") == "common_activations_paper"
    assert column_measure("common_activations", "aligned") == "common_activations_aligned"
    assert column_measure("ged") == "ged_paper"
    assert [column_measure("ged", r) for r in ("paper", "aligned", "exact")] == ["ged_paper", "ged_aligned", "ged_exact"]
    assert column_measure("common_connections") == "common_connections"
    assert column_measure("abs_perf_diff") == "abs_perf_diff"
    with pytest.raises(DiagnosticsError, match="choose from paper, aligned"):
        column_measure("common_activations", "exact")
    with pytest.raises(DiagnosticsError, match="single reading"):
        column_measure("common_connections", "paper")
    with pytest.raises(DiagnosticsError, match="unknown Table 1 column"):
        column_measure("ged_paper")


def test_readings_resolve_to_a_table_and_the_rest_is_shown_apart() -> None:
    assert resolve_readings() == {"common_activations": "common_activations_paper",
                                  "common_connections": "common_connections", "ged": "ged_paper",
                                  "abs_perf_diff": "abs_perf_diff"}
    assert other_measures(resolve_readings()) == ["common_activations_aligned", "ged_aligned", "ged_exact"]
    shown = resolve_readings({"common_activations": "aligned", "ged": "exact"})
    assert shown["common_activations"] == "common_activations_aligned" and shown["ged"] == "ged_exact"
    assert other_measures(shown) == ["common_activations_paper", "ged_paper", "ged_aligned"]
    # every measure is either in the table or apart, never both
    assert sorted([*shown.values(), *other_measures(shown)]) == sorted(ALL_MEASURES)
    assert choose_readings({"ged": None}) == DEFAULT_READINGS
    with pytest.raises(DiagnosticsError, match="only common_activations, ged have readings"):
        choose_readings({"common_connections": "paper"})


# -- Table 1 ---------------------------------------------------------------------------------
def test_table1_recovers_an_embedding_built_from_ged() -> None:
    archs = _archs(40, seed=0)
    hidden = np.stack([_ged_embedding(a) for a in archs])
    result = table1(hidden, archs, measures=ALIGNED)
    assert set(result) == set(ALIGNED)  # what was asked for, keyed by measure; no ppl, no perf column
    assert result["ged_aligned"]["rho"] == pytest.approx(1.0)  # distance = sqrt(2 GED): same ranks
    assert result["common_activations_aligned"]["rho"] < 0  # more in common, closer


def test_table1_activation_and_performance_columns() -> None:
    archs = _archs(30, seed=1)
    by_activation = np.stack([_one_hot(a.activations, NUM_ACTIVATIONS) for a in archs])
    # squared distance 2 (N - common activations): strictly decreasing in common activations
    assert table1(by_activation, archs, measures=ALIGNED)["common_activations_aligned"]["rho"] == pytest.approx(-1.0)
    ppl = np.random.default_rng(2).uniform(60, 400, size=len(archs))
    assert table1(ppl[:, None], archs, ppl, measures=())["abs_perf_diff"]["rho"] == pytest.approx(1.0)


def test_table1_computes_every_measure_by_default_each_against_its_own_column() -> None:
    archs = _archs(12, seed=11)
    hidden = np.random.default_rng(11).normal(size=(12, 6))
    ppl = np.linspace(60, 200, 12)
    result = table1(hidden, archs, ppl)
    assert set(result) == set(ALL_MEASURES)
    distances = hidden_distances(hidden)
    columns = pairwise_measures(archs, measures=STRUCTURAL_MEASURES)
    for measure in STRUCTURAL_MEASURES:
        assert result[measure] == spearman(distances, columns[measure]), measure
    assert result["abs_perf_diff"] == spearman(distances, abs_perf_diff(ppl))


def test_table1_constant_column_is_none_and_json_safe() -> None:
    archs = [Architecture.parse("tanh,0:relu,1:identity")] * 8  # every structural measure constant
    hidden = np.random.default_rng(3).normal(size=(8, 5))
    result = table1(hidden, archs, ppl=np.arange(8.0) + 50, measures=CHEAP_MEASURES)
    for name in CHEAP_MEASURES:
        assert result[name] == {"rho": None, "p": None}
    assert isinstance(result["abs_perf_diff"]["rho"], float)
    json.dumps(result, allow_nan=False)


def test_table1_json_serialisable_on_random_probe() -> None:
    archs = _archs(25, seed=4, num_nodes=12)
    hidden = np.random.default_rng(4).normal(size=(25, 16)).astype(np.float32)
    result = table1(hidden, [a.to_text() for a in archs], ppl=np.linspace(70, 300, 25), measures=CHEAP_MEASURES)
    assert json.loads(json.dumps(result, allow_nan=False)) == result
    assert set(result) == {*CHEAP_MEASURES, "abs_perf_diff"}
    assert all(isinstance(v["rho"], float) for v in result.values())


def test_table1_rejects_unknown_measures() -> None:
    with pytest.raises(DiagnosticsError, match="unknown measure"):
        table1(np.zeros((5, 3)), _archs(5, seed=12), measures=("ged",))


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
def test_collapse_index_is_the_rms_spread_over_the_rms_norm() -> None:
    assert collapse_index(np.tile([0.3, -1.0, 2.0], (10, 1))) == 0.0
    assert collapse_index(np.zeros((4, 3))) == 0.0
    # rows (0, 0) and (2, 4): mean (1, 2); mean squared distance to it (5 + 5) / 2 = 5;
    # mean squared norm (0 + 20) / 2 = 10; index sqrt(5 / 10)
    assert collapse_index(np.array([[0.0, 0.0], [2.0, 4.0]])) == pytest.approx(math.sqrt(0.5))
    # rows that average to zero: the spread is the whole norm
    assert collapse_index(np.array([[1.0, -2.0], [-1.0, 2.0]])) == pytest.approx(1.0)
    h = np.random.default_rng(5).normal(size=(10, 4)) + 3.0
    by_hand = math.sqrt(np.mean(np.sum((h - h.mean(axis=0)) ** 2, axis=1)) / np.mean(np.sum(h**2, axis=1)))
    assert collapse_index(h) == pytest.approx(by_hand, rel=1e-12)
    assert 0 < collapse_index(h) < 1
    with pytest.raises(DiagnosticsError):
        collapse_index(np.zeros((0, 3)))


def test_collapse_index_does_not_depend_on_scale() -> None:
    h = np.random.default_rng(6).normal(size=(20, 8)) * 0.035 + 0.01
    assert collapse_index(h * 2.0**10) == collapse_index(h)  # a power of two scales exactly
    assert collapse_index(h * 1000.0) == pytest.approx(collapse_index(h), rel=1e-12)
    assert collapse_index(-h) == pytest.approx(collapse_index(h), rel=1e-12)
    # the old absolute index (mean column std) would call the small matrix 1000x more collapsed
    assert (h * 1000).std(axis=0).mean() == pytest.approx(1000 * h.std(axis=0).mean())


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
    analysis = analyze_probe(archs, probs, hidden, sizes, ppl=np.linspace(80, 200, 20), measures=ALIGNED)
    assert isinstance(analysis, ProbeAnalysis)
    assert analysis.n == 20 and analysis.max_probs.shape == (20, len(sizes))
    assert analysis.collapse_index["hidden"] > 0 and analysis.collapse_index["max_prob"] > 0

    archs, probs, hidden, sizes = _probe(20, 5, seed=7, collapsed=True)
    collapsed = analyze_probe([a.to_text() for a in archs], probs, hidden, sizes, measures=ALIGNED)
    assert collapsed.collapse_index == {"hidden": 0.0, "max_prob": 0.0}
    # identical hidden states: every distance is 0, so no correlation is defined
    assert set(collapsed.spearman) == set(ALIGNED)
    assert all(v == {"rho": None, "p": None} for v in collapsed.spearman.values())


def test_analysis_to_dict_fits_the_diagnostics_event() -> None:
    archs, probs, hidden, sizes = _probe(12, 4, seed=8, collapsed=False)
    record = analyze_probe(archs, probs, hidden, sizes, measures=CHEAP_MEASURES).to_dict()
    assert set(record) == {"n", "spearman", "collapse_index"}
    json.dumps(record, allow_nan=False)
    event = decode_event(encode_event(Diagnostics(epoch=1, step=2, **record)))
    assert isinstance(event, Diagnostics)
    assert event.spearman == record["spearman"] and event.collapse_index == record["collapse_index"]
    assert event.collapse == "scale_free"


def test_analyze_probe_rejects_mismatched_probs() -> None:
    archs, probs, hidden, sizes = _probe(6, 3, seed=9, collapsed=False)
    with pytest.raises(DiagnosticsError, match="probs has 5 rows"):
        analyze_probe(archs, probs[:5], hidden, sizes)
