"""``enas-tui paper``: the paper's comparison of the three controller settings, end to end.

Five phases, for seeds S..S+K-1:

1. train the searches: ``random``, ``unsupervised`` and ``supervised`` with the same data, seed,
   preset, overrides and epochs (so the same shared-model initialisation and budget); the only
   difference between the runs of a seed is the controller setting;
2. analyse each final checkpoint (analysis.py); Fig. 2 pairs each trained run with the random
   run of its seed, each on its own shared weights;
3. retrain each search's derived cell from scratch (retrain/), every cell with the same settings
   and budget. The random run's derived cell is the best of the random controller's samples:
   random search with weight sharing, the paper's baseline;
4. aggregate over seeds (replication.py: Table 1 and the retrained perplexities as means with
   95% intervals) and check the paper's claims, the retrained cells' included;
5. write the report (report.py).

How the runs of phases 1 and 3 are executed is a ``Runner``: a function that takes ``Job`` s (plain,
picklable dataclasses) and returns the finished sessions' folders, in order. ``LocalRunner`` runs
them one after another in this process, the default; a runner that ships them elsewhere plugs in
the same way, as long as the sessions end up under the same root.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import config, diagnostics
from .analysis import PAPER_ORDER, Analysis, Progress, analyze_session, format_tables, pair_fig2
from .data import Corpus, load_corpus
from .replication import (
    Claim, Table1Summary, aggregate, claims, format_claims, format_retrains, format_summary,
)
from .report import write_report
from .retrain import settings as retrain_settings
from .retrain.outcome import RetrainOutcome
from .retrain.settings import KIND, RetrainSettings
from .retrain.source import Source, from_session
from .search_space import random_architecture
from .sessions import Session, create_session
from .trainer import Listener, TrainingFailed

RUN_ORDER: tuple[str, ...] = ("random", "unsupervised", "supervised")
COMMAND = ["enas-tui", "paper"]  # meta.json's command of the sessions paper makes


class PaperInterrupted(Exception):
    """A run was stopped on request before the comparison was complete; one line for the user."""


# -- jobs and runners ---------------------------------------------------------------------------
@dataclass
class Job:
    """One run the comparison needs: a search (``settings`` is a config.Settings) or a retrain
    (a RetrainSettings, with ``source``: the search its cell was derived in)."""

    kind: str  # "search" | "retrain"
    settings: Any
    source: Source | None = None

    @property
    def controller(self) -> str:
        return self.settings.controller if self.kind == "search" else (self.source.controller or "?")

    @property
    def label(self) -> str:
        run = f"the {self.controller} run (seed {self.settings.seed})"
        return run if self.kind == "search" else f"the retrain of {run}'s cell"


Runner = Callable[[Sequence[Job]], list[Path]]  # the jobs' finished session folders, in order


class LocalRunner:
    """Runs jobs one after another in this process (the default runner).

    ``listeners_factory(name)`` gives each run's listeners (``name``: the controller, or
    ``retrain <controller>``); listeners that are context managers are entered for the duration of
    their run. ``on_trainer`` sees each trainer or retrainer before it runs (e.g. to route Ctrl-C to
    ``request_stop``). A run that does not finish raises PaperInterrupted (stopped) or
    TrainingFailed (failed), naming it.
    """

    def __init__(self, root: Path, corpus: Corpus,
                 listeners_factory: Callable[[str], list[Listener]] | None = None,
                 on_trainer: Callable[[Any], None] | None = None):
        self.root, self.corpus = Path(root), corpus
        self.listeners_factory, self.on_trainer = listeners_factory, on_trainer

    def __call__(self, jobs: Sequence[Job]) -> list[Path]:
        return [self.run(job) for job in jobs]

    def run(self, job: Job) -> Path:
        name = job.controller if job.kind == "search" else f"retrain {job.controller}"
        listeners = list(self.listeners_factory(name)) if self.listeners_factory else []
        with contextlib.ExitStack() as stack:
            for listener in listeners:
                if hasattr(listener, "__enter__") and hasattr(listener, "__exit__"):
                    stack.enter_context(listener)
            run = self._search(job, listeners) if job.kind == "search" else self._retrain(job, listeners)
            if self.on_trainer is not None:
                self.on_trainer(run)
            try:
                status = run.run()
            except TrainingFailed as exc:  # say which run failed
                raise TrainingFailed(f"{job.label} (session {run.session.id}) failed: {exc}") from None
        if status != "finished":
            raise PaperInterrupted(f"{job.label} (session {run.session.id}) was {status}; "
                                   f"the comparison needs every run to finish")
        return run.session.path

    def _search(self, job: Job, listeners: list[Listener]):
        from .trainer import new_run, session_meta

        session = create_session(self.root, job.settings.controller, meta=session_meta(job.settings, COMMAND))
        return new_run(job.settings, session, self.corpus, listeners, command=COMMAND)

    def _retrain(self, job: Job, listeners: list[Listener]):
        from .retrain.trainer import new_retrain, retrain_meta, search_phase_ppl
        from .trainer import pick_device

        source = job.source or Source(arch=job.settings.arch)
        if source.session and source.search_ppl is None:
            source.search_ppl = search_phase_ppl(Session(self.root / source.session), job.settings.architecture,
                                                 self.corpus, pick_device(job.settings.device))
        session = create_session(self.root, KIND, meta=retrain_meta(job.settings, source, COMMAND))
        return new_retrain(job.settings, session, self.corpus, listeners, source, command=COMMAND)


# -- the comparison -----------------------------------------------------------------------------
@dataclass
class PaperResult:
    """The analyses (RUN_ORDER within each seed), their sessions, the retrained cells, the summary
    over seeds with the paper's claims, the report, and where the time went."""

    analyses: list[Analysis]
    sessions: list[str]
    report: Path  # report.md; its folder holds the figures
    preset: str
    seed: int  # the first seed
    epochs: int
    data: str | None
    summary: Table1Summary
    claims: list[Claim]
    seeds: int = 1
    readings: dict[str, str] = field(default_factory=dict)  # {column: reading} (diagnostics.choose_readings)
    seconds: dict[str, float] = field(default_factory=dict)  # "train <c>", "analyze", "retrain <c>", "report"
    retrains: list[RetrainOutcome] = field(default_factory=list)  # RUN_ORDER within each seed; [] with retrain off
    retrain_epochs: int | None = None  # the retrains' budget (None: no retrain)


def run_paper(root: Path, preset: str = "cpu", data: str | None = None, seed: int = 0,
              epochs: int | None = None, out: Path | None = None, overrides: Sequence[str] = (),
              listeners_factory: Callable[[str], list[Listener]] | None = None, *,
              device: str = "auto", corpus: Corpus | None = None, n: int = 100, valid_batches: int = 5,
              on_trainer: Callable[[Any], None] | None = None, seeds: int = 1,
              readings: dict[str, str | None] | None = None,
              progress: Callable[[], AbstractContextManager[Progress | None]] | None = None,
              retrain: bool = True, retrain_epochs: int | None = None, retrain_overrides: Sequence[str] = (),
              runner: Runner | None = None) -> PaperResult:
    """Search, analyse, retrain, aggregate and report the three settings for each seed.

    Every setting is resolved and validated before any training: the searches' from ``overrides``,
    the retrains' from the ``model.*`` ones among them (the retrained model is the searched one)
    then ``retrain_overrides``, with ``retrain_epochs`` (default: the retrain preset's). ``corpus``
    skips loading ``data`` (tests pass a slice held in memory). ``runner`` executes the runs
    (default: LocalRunner with ``listeners_factory`` and ``on_trainer``); each run is analysed with
    its own seed; ``progress()``, when given, opens a progress callback around each analysis.
    """
    if seeds < 1:
        raise ValueError("seeds must be at least 1")
    root = Path(root)
    data = str(Path(data).expanduser().resolve()) if data else None
    chosen = diagnostics.choose_readings(readings)  # a bad reading fails before any training
    searches = [Job("search", config.resolve(c, preset, seed=s, device=device, data=data, overrides=list(overrides),
                                             epochs=epochs))
                for s in range(seed, seed + seeds) for c in RUN_ORDER]
    plan = RetrainPlan(preset, device, data, [*model_overrides(overrides), *retrain_overrides], retrain_epochs,
                       searches[0].settings.model.num_nodes) if retrain else None
    corpus = corpus if corpus is not None else load_corpus(data)
    runner = runner or LocalRunner(root, corpus, listeners_factory, on_trainer)
    seconds: dict[str, float] = {}

    sessions = _timed(seconds, "train", lambda: [Session(p) for p in runner(searches)])  # 1. search
    analyses = _timed(seconds, "analyze", lambda: _analyse(sessions, searches, corpus, n, valid_batches,
                                                           device, progress))  # 2. analyse
    outcomes: list[RetrainOutcome] = []
    if plan is not None:  # 3. retrain
        jobs = [plan.job(session, job.settings.seed) for session, job in zip(sessions, searches)]
        done = _timed(seconds, "retrain", lambda: runner(jobs))
        outcomes = [RetrainOutcome.from_session(Session(p)) for p in done]
    summary = aggregate(analyses, readings=chosen, retrains=outcomes)  # 4. aggregate and check
    found = claims(summary)
    out = Path(out) if out is not None else root / f"paper-{time.strftime('%Y%m%d-%H%M%S')}"
    report = _timed(seconds, "report", lambda: write_report(analyses, out, readings=chosen,  # 5. report
                                                            retrains=outcomes))
    return PaperResult(analyses=analyses, sessions=[s.id for s in sessions], report=report, preset=preset,
                       seed=seed, epochs=searches[0].settings.train.epochs, data=data, summary=summary,
                       claims=found, seeds=seeds, readings=chosen, seconds=seconds, retrains=outcomes,
                       retrain_epochs=plan.epochs if plan is not None else None)


def _timed(seconds: dict[str, float], phase: str, work: Callable[[], Any]) -> Any:
    started = time.perf_counter()
    try:
        return work()
    finally:
        seconds[phase] = seconds.get(phase, 0.0) + time.perf_counter() - started


def _analyse(sessions: Sequence[Session], searches: Sequence[Job], corpus: Corpus, n: int, valid_batches: int,
             device: str, progress: Callable[[], AbstractContextManager[Progress | None]] | None) -> list[Analysis]:
    """Each search's final checkpoint analysed with its own seed; Fig. 2 paired by seed."""
    analyses = []
    for session, job in zip(sessions, searches):
        with (progress() if progress is not None else contextlib.nullcontext()) as bars:
            analyses.append(analyze_session(session, n=n, seed=job.settings.seed, valid_batches=valid_batches,
                                            corpus=corpus, device=device, progress=bars))
    return pair_fig2(analyses)


def model_overrides(overrides: Sequence[str]) -> list[str]:
    """The ``model.*`` overrides of the searches: the retrained model is the searched one."""
    return [item for item in overrides if item.strip().startswith("model.")]


@dataclass
class RetrainPlan:
    """The retrains' settings, the same for every cell but its seed (the search's) and the cell.

    Checked on construction with a stand-in cell, so a bad retrain setting fails before any search.
    """

    preset: str
    device: str
    data: str | None
    overrides: list[str]
    epochs: int | None
    num_nodes: int

    def __post_init__(self) -> None:
        stand_in = random_architecture(self.num_nodes, random.Random(0))
        self.epochs = self.settings(stand_in, 0).train.epochs

    def settings(self, cell, seed: int) -> RetrainSettings:
        return retrain_settings.resolve(cell, self.preset, seed=seed, device=self.device, data=self.data,
                                        overrides=self.overrides, epochs=self.epochs, num_nodes=self.num_nodes)

    def job(self, search: Session, seed: int) -> Job:
        """The retrain of ``search``'s derived cell (for ``random``: the best of its samples)."""
        source, cell = from_session(search)
        settings = self.settings(cell, seed)
        settings.source = source.session
        return Job("retrain", settings, source)


def format_paper_table(result: PaperResult) -> str:
    """One seed: the paper's Table 1 layout for the three runs beside the paper's numbers, with the
    other readings, collapse indices and the Fig. 2 summary. Several: Table 1 as mean ± 95% interval
    per cell beside the paper's value. Then the retrained cells' perplexities side by side with the
    paper's first finding as a line, the paper's claims, the time and the report's path."""
    seeds = (f"seed {result.seed}" if result.seeds == 1
             else f"seeds {result.seed}..{result.seed + result.seeds - 1} ({result.seeds} runs per controller)")
    budget = (f", retrains {result.retrain_epochs} epochs" if result.retrain_epochs is not None else ", no retrain")
    head = (f"paper comparison: preset {result.preset}, {seeds}, {result.epochs} epochs{budget}, "
            f"data {result.data or '(generated corpus)'}\n")
    if result.seeds == 1:
        order = {c: i for i, c in enumerate(PAPER_ORDER)}
        analyses = sorted(result.analyses, key=lambda a: order.get(a.controller, len(order)))
        body = format_tables(analyses, result.readings) + format_retrains(result.summary) + format_claims(result.claims)
    else:
        body = format_summary(result.summary, result.claims)
    timing = ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items())
    return head + body + (f"time: {timing}\n" if timing else "") + f"report: {result.report}\n"
