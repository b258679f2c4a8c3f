"""Table 1 over seeds, and the paper's claims as checks.

The paper reports one run per controller setting; its correlations are small and move from seed to
seed. Here K runs per setting are reduced to a mean and a 95% interval per cell (Student t over
the seeds: ``mean +- t(0.975, K-1) * sd / sqrt(K)``), and each claim the paper makes is checked
against those intervals with an explicit rule, so a reader sees PASS, FAIL or UNDECIDED with the
figures behind it.

Scheduling-independent by design: ``SeedResult.from_analysis`` keeps the few numbers a run
contributes (small, JSON-able, picklable: a distributed runner can ship them), ``aggregate``
reduces any collection of them to a ``Table1Summary``, and ``claims`` reads only the summary. How
the runs were scheduled (one after another in ``paper``, on a cluster later) does not matter.

Retrained cells (ENAS's final step) join the summary the same way: each run's ``RetrainOutcome``
rides on its SeedResult, each controller gets intervals of its cells' search-phase, validation
and test perplexities, and claim (f), the paper's first finding, pairs each seed's trained
controller with that seed's random search with weight sharing.

Rules (``CLAIM_RULES`` has them in words). Two quantities are *separated* when their 95%
intervals do not overlap (a conservative test: about p < 0.01 for equal widths); a quantity is
*near zero* when its interval contains 0. A claim PASSes when its rule holds, FAILs when the
opposite is separated, and is UNDECIDED otherwise, and always with fewer than 2 seeds (no interval).
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from . import diagnostics
from .retrain.outcome import RetrainOutcome

if TYPE_CHECKING:  # analysis.py needs torch; this module does not
    from .analysis import Analysis

CONFIDENCE = 0.95
MIN_FIG1_GAP = 0.01  # claim (a): "above" means by at least one percentage point on average
PASS, FAIL, UNDECIDED = "PASS", "FAIL", "UNDECIDED"
CONTROLLER_ORDER: tuple[str, ...] = ("random", "supervised", "unsupervised")  # the paper's rows
CLAIM_RULES: dict[str, str] = {
    "a": "PASS when the interval of the per-seed mean gap (trained - random, over the 23 steps) is above 0, "
         f"the mean gap is at least {MIN_FIG1_GAP} and the trained controller is above at more than half the "
         "steps on average; FAIL when the interval is below 0",
    "b": "PASS when supervised's |rho| interval is above unsupervised's and unsupervised's above random's "
         "(no overlap); FAIL when either pair is separated the other way",
    "c": "'well above': supervised's interval lies entirely above unsupervised's (no overlap); FAIL when "
         "it lies entirely below",
    "d": "PASS when the trained controller's IQR interval lies entirely below the random session's; FAIL "
         "when entirely above",
    "e": "'positive': interval above 0; 'near zero': interval contains 0. PASS when both hold; FAIL when "
         "supervised's interval is at or below 0 or another's excludes 0",
    "f": "per seed, the random run's retrained test ppl minus the unsupervised run's (> 0: the trained "
         "controller's cell is better); PASS ('no better') when that difference's interval does not lie "
         "entirely above 0; FAIL when it does",
}
TRAINED = "unsupervised"  # the trained controller of the paper's first finding (ENAS's own)


# -- intervals ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Interval:
    """Mean of per-seed values with a Student-t interval (``half_width`` None below 2 values)."""

    mean: float | None
    half_width: float | None
    n: int

    @property
    def low(self) -> float | None:
        return None if self.half_width is None else self.mean - self.half_width  # type: ignore[operator]

    @property
    def high(self) -> float | None:
        return None if self.half_width is None else self.mean + self.half_width  # type: ignore[operator]

    @property
    def defined(self) -> bool:
        return self.half_width is not None

    def above(self, other: "Interval") -> bool:
        """Separated and higher: this interval lies entirely above ``other``."""
        return self.defined and other.defined and self.low > other.high  # type: ignore[operator]

    def contains(self, value: float) -> bool:
        return self.defined and self.low <= value <= self.high  # type: ignore[operator]

    def text(self, digits: int = 3, signed: bool = False) -> str:
        if self.mean is None:
            return "-"
        fmt = f"{{:{'+' if signed else ''}.{digits}f}}"
        if self.half_width is None:
            return fmt.format(self.mean) + f" (n={self.n})"
        return fmt.format(self.mean) + f" ± {self.half_width:.{digits}f}"

    def range_text(self, digits: int = 3) -> str:
        if self.half_width is None:
            return f"no interval from {self.n} value(s)"
        return f"95% CI {self.low:+.{digits}f}..{self.high:+.{digits}f}, n={self.n}"


def interval(values: Sequence[float | None], confidence: float = CONFIDENCE) -> Interval:
    """Mean and Student-t half-width of the finite values (undefined correlations are left out)."""
    finite = np.array([v for v in values if v is not None and math.isfinite(v)], dtype=np.float64)
    if finite.size == 0:
        return Interval(None, None, 0)
    mean = float(finite.mean())
    if finite.size < 2:
        return Interval(mean, None, 1)
    from scipy.stats import t

    half = float(t.ppf(0.5 + confidence / 2, finite.size - 1) * finite.std(ddof=1) / math.sqrt(finite.size))
    return Interval(mean, half, int(finite.size))


# -- one run's contribution ---------------------------------------------------------------------
@dataclass
class SeedResult:
    """The numbers one analysed run contributes to the summary (what a remote runner would return)."""

    controller: str
    run_seed: int
    session: str
    spearman: dict[str, float | None]  # rho by measure name
    collapse: dict[str, float]  # scale-free: hidden, max_prob
    fig1: list[float]  # per step: mean over the probe architectures of the top action's probability
    fig1_random: list[float]  # the same for the untrained (random setting's) controller
    fig2_iqr: float | None  # IQR of this controller's sampled perplexities on its own run's weights
    retrain: RetrainOutcome | None = None  # this run's derived cell, retrained (paper's last step)

    @classmethod
    def from_analysis(cls, a: "Analysis", retrain: RetrainOutcome | None = None) -> "SeedResult":
        summary = diagnostics.ppl_summary(a.trained.ppl)
        iqr = None if summary["q25"] is None else float(summary["q75"] - summary["q25"])  # type: ignore[operator]
        return cls(controller=a.controller, run_seed=a.run_seed, session=a.session,
                   spearman={m: v.get("rho") for m, v in a.spearman.items()},
                   collapse=dict(a.collapse_index),
                   fig1=np.asarray(a.trained.max_probs, dtype=np.float64).mean(axis=0).tolist(),
                   fig1_random=np.asarray(a.random.max_probs, dtype=np.float64).mean(axis=0).tolist(),
                   fig2_iqr=iqr, retrain=retrain)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "SeedResult":
        retrain = data.get("retrain")
        return cls(**{**data, "retrain": RetrainOutcome.from_dict(retrain) if retrain else None})


# -- the summary --------------------------------------------------------------------------------
@dataclass
class ControllerSummary:
    """One controller setting over its seeds."""

    controller: str
    seeds: list[int]
    sessions: list[str]
    spearman: dict[str, Interval]  # |rho| is in abs_spearman
    abs_spearman: dict[str, Interval]
    collapse: dict[str, Interval]
    fig1_gap: Interval  # per seed: mean over steps of (this controller - untrained controller)
    steps_above: Interval  # per seed: steps at which this controller's mean is above the untrained one's
    steps: int
    fig2_iqr: Interval
    # retrained derived cells (n = 0 without retrains): search-phase, validation and test ppl
    search_ppl: Interval = field(default_factory=lambda: Interval(None, None, 0))
    retrain_valid: Interval = field(default_factory=lambda: Interval(None, None, 0))
    retrain_test: Interval = field(default_factory=lambda: Interval(None, None, 0))


@dataclass
class Table1Summary:
    """Every controller's summary; ``claims`` reads this and nothing else."""

    controllers: dict[str, ControllerSummary]
    confidence: float = CONFIDENCE
    shown: dict[str, str] = field(default_factory=lambda: diagnostics.resolve_readings())  # column -> measure
    # per trained controller: the interval over seeds of (random's retrained test ppl - its own), paired
    # by seed; > 0 means its derived cell beat random search with weight sharing's
    retrain_gaps: dict[str, Interval] = field(default_factory=dict)
    retrains: list[RetrainOutcome] = field(default_factory=list)  # every retrained cell, in run order

    @property
    def has_retrains(self) -> bool:
        return bool(self.retrains)

    @property
    def seeds(self) -> int:
        return max((len(c.seeds) for c in self.controllers.values()), default=0)


def aggregate(results: Sequence["SeedResult | Analysis"], confidence: float = CONFIDENCE,
              readings: dict[str, str | None] | None = None,
              retrains: Sequence[RetrainOutcome] = ()) -> Table1Summary:
    """Mean and interval per cell over the runs of each controller setting.

    ``retrains`` are joined to the runs their cells were derived in (by search session); a run's
    SeedResult may carry its retrain already. Retrains of cells from no run here are listed only.
    """
    by_search = {r.search_session: r for r in retrains if r.search_session}
    seeds = [r if isinstance(r, SeedResult) else SeedResult.from_analysis(r) for r in results]
    for r in seeds:
        if r.retrain is None and r.session in by_search:
            r.retrain = by_search[r.session]
    by_controller: dict[str, list[SeedResult]] = {}
    for r in seeds:
        by_controller.setdefault(r.controller, []).append(r)
    order = sorted(by_controller, key=lambda c: (CONTROLLER_ORDER.index(c) if c in CONTROLLER_ORDER else 99, c))
    joined = [r.retrain for r in seeds if r.retrain is not None]
    listed = joined + [r for r in retrains if all(r is not j for j in joined)]
    return Table1Summary({c: _summarise(c, by_controller[c], confidence) for c in order}, confidence,
                         diagnostics.resolve_readings(readings), _retrain_gaps(by_controller, confidence), listed)


def _retrain_gaps(by_controller: dict[str, list[SeedResult]], confidence: float) -> dict[str, Interval]:
    """Per trained controller: random's retrained test ppl minus its own, for each seed both retrained."""
    random = {r.run_seed: r.retrain.test_ppl for r in by_controller.get("random", []) if r.retrain is not None}
    gaps = {}
    for controller, runs in by_controller.items():
        if controller == "random":
            continue
        diffs = [random[r.run_seed] - r.retrain.test_ppl for r in runs
                 if r.retrain is not None and r.run_seed in random]
        if diffs:
            gaps[controller] = interval(diffs, confidence)
    return gaps


def _summarise(controller: str, runs: list[SeedResult], confidence: float) -> ControllerSummary:
    def over(values: list[float | None]) -> Interval:
        return interval(values, confidence)

    measures = [m for m in diagnostics.ALL_MEASURES if any(m in r.spearman for r in runs)]
    gaps, above = [], []
    for r in runs:
        diff = np.asarray(r.fig1) - np.asarray(r.fig1_random)
        gaps.append(float(diff.mean()))
        above.append(float((diff > 0).sum()))
    return ControllerSummary(
        controller=controller, seeds=[r.run_seed for r in runs], sessions=[r.session for r in runs],
        spearman={m: over([r.spearman.get(m) for r in runs]) for m in measures},
        abs_spearman={m: over([_abs(r.spearman.get(m)) for r in runs]) for m in measures},
        collapse={k: over([r.collapse.get(k) for r in runs]) for k in ("hidden", "max_prob")},
        fig1_gap=over(gaps), steps_above=over(above), steps=len(runs[0].fig1),
        fig2_iqr=over([r.fig2_iqr for r in runs]),
        search_ppl=over([r.retrain.search_ppl for r in runs if r.retrain is not None]),
        retrain_valid=over([r.retrain.valid_ppl for r in runs if r.retrain is not None]),
        retrain_test=over([r.retrain.test_ppl for r in runs if r.retrain is not None]),
    )


def _abs(value: float | None) -> float | None:
    return None if value is None else abs(value)


# -- the claims -------------------------------------------------------------------------------
@dataclass
class Claim:
    """One of the paper's claims with its verdict and the figures behind it."""

    key: str
    statement: str
    outcome: str  # PASS | FAIL | UNDECIDED
    detail: str

    @property
    def rule(self) -> str:
        return CLAIM_RULES[self.key]

    def line(self) -> str:
        return f"{self.outcome:<9} ({self.key}) {self.statement}: {self.detail}"


def claims(summary: Table1Summary) -> list[Claim]:
    """The paper's claims, checked against ``summary`` (see the module doc for the rules): five on
    the controllers, and (f) on the retrained cells when the summary has any."""
    found = [_fig1(summary), _common_activations(summary), _collapse(summary), _fig2(summary), _perf(summary)]
    return found + ([_retrained(summary)] if summary.has_retrains else [])


def _verdict(passed: bool, failed: bool) -> str:
    return PASS if passed else FAIL if failed else UNDECIDED


def _missing(key: str, statement: str, needed: Sequence[str], summary: Table1Summary) -> Claim | None:
    absent = [c for c in needed if c not in summary.controllers]
    if not absent:
        return None
    return Claim(key, statement, UNDECIDED, f"no {' or '.join(absent)} run")


def _fig1(s: Table1Summary) -> Claim:
    statement = "Fig. 1: the trained (unsupervised) controller's top-action probability is above the random one's"
    if (missing := _missing("a", statement, ["unsupervised"], s)) is not None:
        return missing
    c = s.controllers["unsupervised"]
    gap, above = c.fig1_gap, c.steps_above
    passed = (gap.defined and gap.low > 0 and gap.mean >= MIN_FIG1_GAP  # type: ignore[operator]
              and above.mean > c.steps / 2)
    failed = gap.defined and gap.high < 0  # type: ignore[operator]
    detail = (f"above at {above.mean:.1f} of {c.steps} steps on average, by {gap.mean:+.4f} on average "
              f"({gap.range_text(4)})")
    return Claim("a", statement, _verdict(passed, failed), detail)


def _common_activations(s: Table1Summary) -> Claim:
    measure = s.shown["common_activations"]
    statement = f"|rho(common activations)| supervised > unsupervised > random ({diagnostics.MEASURE_LABELS[measure]})"
    if (missing := _missing("b", statement, ["supervised", "unsupervised", "random"], s)) is not None:
        return missing
    sup, unsup, rand = (s.controllers[c].abs_spearman.get(measure, Interval(None, None, 0))
                        for c in ("supervised", "unsupervised", "random"))
    passed = sup.above(unsup) and unsup.above(rand)
    failed = unsup.above(sup) or rand.above(unsup)
    detail = f"supervised {sup.text()}, unsupervised {unsup.text()}, random {rand.text()}"
    return Claim("b", statement, _verdict(passed, failed), detail)


def _collapse(s: Table1Summary) -> Claim:
    statement = "collapse index (scale-free, final hidden state): supervised well above unsupervised"
    if (missing := _missing("c", statement, ["supervised", "unsupervised"], s)) is not None:
        return missing
    sup, unsup = s.controllers["supervised"].collapse["hidden"], s.controllers["unsupervised"].collapse["hidden"]
    ratio = f"{sup.mean / unsup.mean:.1f}x" if sup.mean is not None and unsup.mean else "-"
    detail = f"supervised {sup.text(4)}, unsupervised {unsup.text(4)}, ratio of means {ratio}"
    return Claim("c", statement, _verdict(sup.above(unsup), unsup.above(sup)), detail)


def _fig2(s: Table1Summary) -> Claim:
    statement = ("Fig. 2: the trained (unsupervised) controller's perplexity spread (IQR) is narrower than "
                 "the random session's, each on its own weights")
    if (missing := _missing("d", statement, ["unsupervised", "random"], s)) is not None:
        return missing
    trained, rand = s.controllers["unsupervised"].fig2_iqr, s.controllers["random"].fig2_iqr
    detail = f"IQR unsupervised {trained.text(1)}, random {rand.text(1)}"
    return Claim("d", statement, _verdict(rand.above(trained), trained.above(rand)), detail)


def _perf(s: Table1Summary) -> Claim:
    statement = "|perf diff| correlation positive for supervised, near zero for unsupervised and random"
    if (missing := _missing("e", statement, ["supervised", "unsupervised", "random"], s)) is not None:
        return missing
    sup, unsup, rand = (s.controllers[c].spearman.get("abs_perf_diff", Interval(None, None, 0))
                        for c in ("supervised", "unsupervised", "random"))
    others_zero = unsup.contains(0.0) and rand.contains(0.0)
    passed = sup.defined and sup.low > 0 and others_zero  # type: ignore[operator]
    failed = (sup.defined and sup.high <= 0) or any(  # type: ignore[operator]
        o.defined and not o.contains(0.0) for o in (unsup, rand))
    detail = (f"supervised {sup.text(signed=True)}, unsupervised {unsup.text(signed=True)}, "
              f"random {rand.text(signed=True)}")
    return Claim("e", statement, _verdict(passed, failed), detail)


def _retrained(s: Table1Summary) -> Claim:
    statement = (f"retrained from scratch, the trained ({TRAINED}) controller's derived cell does no better than "
                 "random search with weight sharing's (test ppl)")
    gap = s.retrain_gaps.get(TRAINED)
    if gap is None or gap.mean is None:
        return Claim("f", statement, UNDECIDED, f"no seed with both the random and the {TRAINED} cell retrained")
    return Claim("f", statement, _verdict(gap.defined and not gap.low > 0, gap.defined and gap.low > 0),
                 f"random - {TRAINED} test ppl {gap.text(2, signed=True)} ({gap.range_text(2)})")


def retrain_verdict(summary: Table1Summary, controller: str = TRAINED) -> str | None:
    """The paper's first finding as one line: "trained controller better than random search with
    weight sharing: yes/no, by X ppl (...)". X is random's test ppl minus the controller's (mean
    over seeds); "yes" when it is positive. None when no seed has both cells retrained."""
    gap = summary.retrain_gaps.get(controller)
    if gap is None or gap.mean is None:
        return None
    answer = "yes" if gap.mean > 0 else "no"
    spread = (f"{summary.confidence:.0%} interval {gap.low:+.2f}..{gap.high:+.2f} over {gap.n} seeds"
              if gap.defined else "one seed: no interval")
    return (f"trained controller ({controller}) better than random search with weight sharing: {answer}, "
            f"by {gap.mean:+.2f} ppl ({spread})")


# -- text -------------------------------------------------------------------------------------
def format_summary(summary: Table1Summary, found: Sequence[Claim] | None = None) -> str:
    """Table 1 as mean ± 95% interval beside the paper's value, the other readings, collapse and
    Fig. 2 over seeds, the retrained cells (when any), then the claim lines."""
    from rich.console import Console
    from rich.table import Table

    shown, columns = summary.shown, list(diagnostics.TABLE1_COLUMNS)
    level = f"{summary.confidence:.0%}"
    main = Table(title=f"Table 1 over seeds: Spearman rho, mean ± {level} interval (Student t); "
                       "n = seeds with a defined value", title_justify="left", header_style="bold")
    for column in ("controller", "", *(diagnostics.MEASURE_LABELS[shown[c]] for c in columns)):
        main.add_column(column, justify="left" if column in ("controller", "") else "right")
    others = diagnostics.other_measures(shown)
    apart = Table(title="Other readings over seeds (not the paper's column definitions)",
                  title_justify="left", header_style="bold")
    for column in ("controller", *(diagnostics.MEASURE_LABELS[m] for m in others)):
        apart.add_column(column, justify="left" if column == "controller" else "right")
    extra = Table(title=f"Collapse index and Fig. 2 over seeds (mean ± {level} interval)",
                  title_justify="left", header_style="bold")
    for column in ("controller", "seeds", "collapse: hidden", "collapse: max prob",
                   "Fig. 1 gap vs random", "Fig. 2 IQR"):
        extra.add_column(column, justify="left" if column == "controller" else "right")
    missing = Interval(None, None, 0)
    for name, c in summary.controllers.items():
        paper = diagnostics.PAPER_TABLE1.get(name, {})
        cells = [c.spearman.get(shown[col], missing) for col in columns]
        main.add_row(name, f"ours ({len(c.seeds)} seeds)", *(x.text(signed=True) for x in cells))
        main.add_row("", "n", *(str(x.n) for x in cells))
        main.add_row("", "paper", *(f"{paper[col]:+.3f}" if col in paper else "-" for col in columns),
                     end_section=True)
        apart.add_row(name, *(c.spearman.get(m, missing).text(signed=True) for m in others))
        extra.add_row(name, ", ".join(str(x) for x in c.seeds), c.collapse["hidden"].text(4),
                      c.collapse["max_prob"].text(4), c.fig1_gap.text(signed=True), c.fig2_iqr.text(1))
    console = Console(file=io.StringIO(), width=150, color_system=None, highlight=False)
    for part in (main, apart, extra):
        console.print(part)
    retrained = format_retrains(summary)
    if retrained:
        console.print(retrained, end="", soft_wrap=True)
    console.print(format_claims(claims(summary) if found is None else found), soft_wrap=True)
    return console.file.getvalue()


def format_retrains(summary: Table1Summary) -> str:
    """The retrained cells side by side: per run its cell and its search-phase, best validation and
    test perplexities; with several seeds, each controller's mean ± interval; then the paper's
    first finding as one line (``retrain_verdict``). Empty without retrains."""
    if not summary.has_retrains:
        return ""
    from rich.console import Console
    from rich.table import Table

    runs = Table(title="Retrained from scratch (ENAS's final step): each search's derived cell, the same budget "
                       "for every cell", title_justify="left", header_style="bold")
    for column in ("controller", "seed", "search-phase ppl", "valid ppl", "test ppl", "retrain session"):
        runs.add_column(column, justify="right" if "ppl" in column or column == "seed" else "left", no_wrap=True)
    order = {c: i for i, c in enumerate(("random", "unsupervised", "supervised"))}
    retrains = sorted(summary.retrains, key=lambda r: (r.run_seed, order.get(r.controller or "", 9)))
    for r in retrains:
        runs.add_row(r.controller or "(--arch)", str(r.run_seed), _ppl(r.search_ppl), _ppl(r.valid_ppl),
                     _ppl(r.test_ppl), r.session)
    console = Console(file=io.StringIO(), width=150, color_system=None, highlight=False)
    console.print(runs)
    console.print("cells:", soft_wrap=True)
    for r in retrains:
        console.print(f"  {r.controller or '(--arch)'}, seed {r.run_seed}: {r.arch}", soft_wrap=True)
    if summary.seeds > 1:
        level = f"{summary.confidence:.0%}"
        over = Table(title=f"Retrained cells over seeds (mean ± {level} interval; gap: random's test ppl minus "
                           "this controller's, paired by seed)", title_justify="left", header_style="bold")
        for column in ("controller", "search-phase ppl", "valid ppl", "test ppl", "gap vs random"):
            over.add_column(column, justify="left" if column == "controller" else "right")
        for name, c in summary.controllers.items():
            if c.retrain_test.n:
                gap = summary.retrain_gaps.get(name)
                over.add_row(name, c.search_ppl.text(2), c.retrain_valid.text(2), c.retrain_test.text(2),
                             gap.text(2, signed=True) if gap is not None else "-")
        console.print(over)
    verdict = retrain_verdict(summary)
    if verdict is not None:
        console.print(verdict, soft_wrap=True)
    return console.file.getvalue()


def _ppl(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{value:.2f}"


def format_claims(found: Sequence[Claim]) -> str:
    return "\n".join(["The paper's claims (rules: README, 'The paper's claims as checks'):",
                      *("  " + c.line() for c in found)]) + "\n"
