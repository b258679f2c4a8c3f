"""Table 1 over seeds (means and Student-t intervals) and the paper's claims as checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from enas_tui.replication import (
    FAIL,
    PASS,
    UNDECIDED,
    Interval,
    SeedResult,
    aggregate,
    claims,
    format_retrains,
    format_summary,
    interval,
    retrain_verdict,
)
from enas_tui.retrain.outcome import RetrainOutcome

D = 23


def run(controller: str, seed: int, *, ca: float = -0.1, perf: float | None = 0.0, hidden: float = 0.1,
        gap: float = 0.0, above: int | None = None, iqr: float | None = 50.0) -> SeedResult:
    """One run's numbers: |rho| for the paper's common activations, the perf correlation, the collapse
    index, the Fig. 1 gap (trained - random) at ``above`` steps (all if None), the Fig. 2 IQR."""
    fig1_random = np.full(D, 0.3)
    steps = D if above is None else above
    fig1 = fig1_random.copy()
    fig1[:steps] += gap * D / max(steps, 1)
    if above is not None:
        fig1[steps:] -= 1e-3
    return SeedResult(controller=controller, run_seed=seed, session=f"{controller}-{seed}",
                      spearman={"common_activations_paper": ca, "common_activations_aligned": 0.05,
                                "common_connections": -0.1, "ged_paper": 0.02, "ged_aligned": 0.1,
                                "ged_exact": 0.08, "abs_perf_diff": perf},
                      collapse={"hidden": hidden, "max_prob": hidden / 2}, fig1=fig1.tolist(),
                      fig1_random=fig1_random.tolist(), fig2_iqr=iqr)


def paper_like(seeds: int = 3) -> list[SeedResult]:
    """Runs in which every claim holds clearly."""
    out = []
    for s in range(seeds):
        jitter = 0.01 * (s - 1)
        out += [run("random", s, ca=-0.05 + jitter, perf=0.001 * (s - 1), hidden=0.3, iqr=120 + s),
                run("unsupervised", s, ca=-0.2 + jitter, perf=-0.002 * (s - 1), hidden=0.01 + 0.001 * s,
                    gap=0.1 + jitter, iqr=40 + s),
                run("supervised", s, ca=-0.4 + jitter, perf=0.15 + jitter, hidden=0.25 + 0.01 * s, gap=0.05)]
    return out


def by_key(found):
    return {c.key: c for c in found}


def test_interval_is_the_student_t_interval_of_the_mean():
    values = [0.12, -0.03, 0.2, 0.07]
    got = interval(values)
    low, high = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert got.mean == pytest.approx(np.mean(values)) and got.n == 4
    assert (got.low, got.high) == (pytest.approx(low), pytest.approx(high))
    assert interval([0.3, None, float("nan")]) == Interval(0.3, None, 1)  # undefined values are left out
    assert interval([]) == Interval(None, None, 0)
    assert "± " in got.text() and "(n=1)" in Interval(0.3, None, 1).text()


def test_aggregate_equals_a_direct_mean_and_interval_per_seed():
    runs = paper_like(3)
    summary = aggregate(runs)
    assert list(summary.controllers) == ["random", "supervised", "unsupervised"]  # the paper's row order
    sup = summary.controllers["supervised"]
    values = [r.spearman["common_activations_paper"] for r in runs if r.controller == "supervised"]
    assert sup.spearman["common_activations_paper"] == interval(values)
    assert sup.abs_spearman["common_activations_paper"] == interval([abs(v) for v in values])
    assert sup.collapse["hidden"] == interval([r.collapse["hidden"] for r in runs if r.controller == "supervised"])
    assert sup.fig2_iqr == interval([r.fig2_iqr for r in runs if r.controller == "supervised"])
    gaps = [np.mean(np.subtract(r.fig1, r.fig1_random)) for r in runs if r.controller == "supervised"]
    assert sup.fig1_gap.mean == pytest.approx(np.mean(gaps))
    assert sup.seeds == [0, 1, 2] and sup.steps == D and summary.seeds == 3
    assert summary.shown["ged"] == "ged_paper"
    assert aggregate(runs, readings={"ged": "exact"}).shown["ged"] == "ged_exact"


def test_claims_pass_on_runs_that_show_the_papers_findings():
    found = by_key(claims(aggregate(paper_like(3))))
    assert [found[k].outcome for k in "abcde"] == [PASS] * 5
    assert "above at 23.0 of 23 steps on average, by +0.100" in found["a"].detail
    assert "ratio of means" in found["c"].detail and "IQR unsupervised 41.0" in found["d"].detail


def test_claims_fail_when_the_opposite_is_separated():
    runs = []
    for s in range(3):
        j = 0.01 * (s - 1)
        runs += [run("random", s, ca=-0.4 + j, perf=0.3 + j, hidden=0.3, iqr=20 + s),
                 run("unsupervised", s, ca=-0.2 + j, perf=0.0 + j, hidden=0.5 + j, gap=-0.1 + j, iqr=90 + s),
                 run("supervised", s, ca=-0.05 + j, perf=-0.2 + j, hidden=0.1 + j)]
    found = by_key(claims(aggregate(runs)))
    assert [found[k].outcome for k in "abcde"] == [FAIL] * 5


def test_claims_are_undecided_when_intervals_overlap_or_with_one_seed():
    one = by_key(claims(aggregate(paper_like(1))))
    assert all(c.outcome == UNDECIDED for c in one.values())
    assert "no interval from 1 value(s)" in one["a"].detail
    noisy = []
    for s, sign in enumerate((1, -1, 1)):
        noisy += [run("random", s, ca=-0.1 + 0.2 * sign, perf=0.2 * sign, hidden=0.2 + 0.15 * sign,
                      iqr=50 + 30 * sign),
                  run("unsupervised", s, ca=-0.1 - 0.2 * sign, perf=0.0, hidden=0.2 - 0.15 * sign,
                      gap=0.05 * sign, iqr=50 - 30 * sign),
                  run("supervised", s, ca=-0.1, perf=0.1 * sign, hidden=0.2)]
    assert all(c.outcome == UNDECIDED for c in claims(aggregate(noisy)))


def test_fig1_claim_needs_most_steps_not_just_a_mean_gap():
    runs = [run("unsupervised", s, gap=0.05 + 0.001 * s, above=5) for s in range(3)]  # big gap at 5 steps
    found = by_key(claims(aggregate(runs)))
    assert found["a"].outcome == UNDECIDED and "above at 5.0 of 23 steps" in found["a"].detail
    assert found["b"].outcome == UNDECIDED and found["b"].detail == "no supervised or random run"
    tiny = [run("unsupervised", s, gap=0.005 + 0.0001 * s) for s in range(3)]  # significant, but < 0.01
    assert by_key(claims(aggregate(tiny)))["a"].outcome == UNDECIDED


def test_seed_results_travel_as_json():
    result = paper_like(1)[2]
    assert SeedResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_summary_text_has_intervals_beside_the_paper_and_claim_lines():
    text = format_summary(aggregate(paper_like(2)))
    sup = aggregate(paper_like(2)).controllers["supervised"].spearman["common_activations_paper"]
    assert sup.text(signed=True) in text and "-0.404" in text  # ours ± interval beside the paper's
    assert "Other readings over seeds" in text
    for key in "abcde":
        assert f"({key}) " in text
    assert text.count("PASS") + text.count("FAIL") + text.count("UNDECIDED") >= 5


# -- the retrained cells (ENAS's final step) --------------------------------------------------------

def retrained(controller: str, seed: int, test: float, search: float = 500.0) -> RetrainOutcome:
    """A finished retrain of the ``controller``-``seed`` run's derived cell."""
    return RetrainOutcome(session=f"retrain-{controller}-{seed}", arch="tanh,0:relu", controller=controller,
                          search_session=f"{controller}-{seed}", run_seed=seed, search_ppl=search,
                          valid_ppl=test + 3, test_ppl=test, best_epoch=2, averaged=False, epochs=2,
                          curve=[test + 20, test + 3])


def with_retrains(tests: dict[str, list[float]]) -> tuple[list[SeedResult], list[RetrainOutcome]]:
    """paper_like runs, and a retrain of each with the given test ppl per controller and seed."""
    runs = paper_like(len(tests["random"]))
    return runs, [retrained(c, s, test) for c, values in tests.items() for s, test in enumerate(values)]


def test_retrained_cells_join_their_runs_and_are_aggregated_per_controller():
    runs, retrains = with_retrains({"random": [100.0, 104.0, 99.0], "unsupervised": [101.0, 103.0, 100.0],
                                    "supervised": [90.0, 92.0, 95.0]})
    summary = aggregate(runs, retrains=retrains)
    assert [r.retrain.test_ppl for r in runs if r.controller == "supervised"] == [90.0, 92.0, 95.0]
    assert summary.controllers["supervised"].retrain_test == interval([90.0, 92.0, 95.0])
    assert summary.controllers["random"].retrain_valid == interval([103.0, 107.0, 102.0])
    assert summary.controllers["random"].search_ppl == interval([500.0] * 3)
    # paired by seed: random's test ppl minus the controller's
    assert summary.retrain_gaps["unsupervised"] == interval([-1.0, 1.0, -1.0])
    assert summary.retrain_gaps["supervised"] == interval([10.0, 12.0, 4.0])
    assert "random" not in summary.retrain_gaps and len(summary.retrains) == 9
    assert aggregate(paper_like(3)).controllers["random"].retrain_test.n == 0  # no retrains: nothing invented


def test_claim_f_the_trained_controller_no_better_than_random_search_with_weight_sharing():
    runs, retrains = with_retrains({"random": [100.0, 104.0, 99.0], "unsupervised": [101.0, 103.0, 100.0]})
    found = by_key(claims(aggregate(runs, retrains=retrains)))
    assert found["f"].outcome == PASS and "-0.33 ±" in found["f"].detail  # the paper's finding: no better
    runs, retrains = with_retrains({"random": [100.0, 104.0, 99.0], "unsupervised": [90.0, 95.0, 89.0]})
    found = by_key(claims(aggregate(runs, retrains=retrains)))
    assert found["f"].outcome == FAIL  # separated: the trained controller's cells are better
    runs, retrains = with_retrains({"random": [100.0], "unsupervised": [90.0]})
    assert by_key(claims(aggregate(runs, retrains=retrains)))["f"].outcome == UNDECIDED  # one seed
    assert "f" not in by_key(claims(aggregate(paper_like(2))))  # no retrains: no claim (f)


def test_the_verdict_line_says_yes_or_no_by_how_much_with_the_interval():
    runs, retrains = with_retrains({"random": [100.0, 104.0, 99.0], "unsupervised": [90.0, 95.0, 89.0]})
    summary = aggregate(runs, retrains=retrains)
    gap = summary.retrain_gaps["unsupervised"]
    assert retrain_verdict(summary) == (
        "trained controller (unsupervised) better than random search with weight sharing: yes, by +9.67 ppl "
        f"(95% interval {gap.low:+.2f}..{gap.high:+.2f} over 3 seeds)")
    runs, retrains = with_retrains({"random": [100.0], "unsupervised": [103.5]})
    assert retrain_verdict(aggregate(runs, retrains=retrains)) == (
        "trained controller (unsupervised) better than random search with weight sharing: no, by -3.50 ppl "
        "(one seed: no interval)")
    assert retrain_verdict(aggregate(paper_like(1))) is None
    text = format_retrains(summary)
    assert retrain_verdict(summary) in text and "retrain-supervised" not in text
    assert "retrain-unsupervised-2" in text and "  unsupervised, seed 2: tanh,0:relu" in text
    assert "gap vs random" in text and gap.text(2, signed=True) in text


def test_seed_results_with_a_retrain_travel_as_json():
    runs, retrains = with_retrains({"random": [100.0], "unsupervised": [101.0]})
    aggregate(runs, retrains=retrains)
    result = runs[0]
    assert result.retrain is not None
    assert SeedResult.from_dict(json.loads(json.dumps(result.to_dict()))) == result
