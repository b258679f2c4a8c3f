"""``enas-tui paper``: the paper's comparison of the three controller settings, end to end.

Trains ``random``, ``unsupervised`` and ``supervised`` one after the other in this process, with
the same data, seed, preset, overrides and epochs (so the same shared-model initialisation and
budget), analyses each final checkpoint (analysis.py) and writes one report comparing them
(report.py). The only difference between the three runs is the controller setting. With
``seeds`` K > 1 it does that for seeds S..S+K-1 and reduces Table 1 to a mean and a 95% interval
per cell, with the paper's claims checked against them (replication.py). Fig. 2 pairs each
trained run with the random run of its seed, each on its own shared weights.

How the searches run is a hook (``Searches``): one after another here by default, or as the
trials of a sweep on Ray (``paper --ray``: sweep_results.RaySearches); the comparison, the
summary and the report are the same either way.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from . import config, diagnostics
from .analysis import PAPER_ORDER, Analysis, Progress, analyze_session, format_tables, pair_fig2
from .data import Corpus, load_corpus
from .replication import Claim, Table1Summary, aggregate, claims, format_claims, format_summary
from .report import write_report
from .sessions import create_session
from .trainer import Listener, Trainer, TrainingFailed, new_run

RUN_ORDER: tuple[str, ...] = ("random", "unsupervised", "supervised")


class PaperInterrupted(Exception):
    """A run was stopped on request before the comparison was complete; one line for the user."""


@dataclass
class PaperResult:
    """The analyses (RUN_ORDER within each seed), their sessions, the summary over seeds with the
    paper's claims, the report, and where the time went."""

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
    seconds: dict[str, float] = field(default_factory=dict)  # "train <controller>", "analyze", "report"


Searches = Callable[[list[config.Settings]], list[Analysis]]
"""How the searches run: trains and analyses each run (validated settings, ``RUN_ORDER`` within each
seed) and returns their analyses in the same order. ``run_paper`` runs them one after another in
this process unless given another (``sweep_results.RaySearches``: each a trial of a sweep on Ray)."""


def run_paper(root: Path, preset: str = "cpu", data: str | None = None, seed: int = 0,
              epochs: int | None = None, out: Path | None = None, overrides: Sequence[str] = (),
              listeners_factory: Callable[[str], list[Listener]] | None = None, *,
              device: str = "auto", corpus: Corpus | None = None, n: int = 100, valid_batches: int = 5,
              on_trainer: Callable[[Trainer], None] | None = None, seeds: int = 1,
              readings: dict[str, str | None] | None = None,
              progress: Callable[[], AbstractContextManager[Progress | None]] | None = None,
              searches: Searches | None = None) -> PaperResult:
    """Train, analyse and report the three settings for each seed; returns the result (report path included).

    ``listeners_factory(controller)`` gives each run's listeners (a headless view, say); listeners
    that are context managers are entered for the duration of their run. ``on_trainer`` sees each
    trainer before it runs (e.g. to route Ctrl-C to ``request_stop``). ``corpus`` skips loading
    ``data`` (tests pass a slice held in memory). Each run is analysed with its own seed;
    ``progress()``, when given, opens a progress callback around each analysis (cli.progress_bars).
    ``searches`` replaces the in-process training and analysis (the other arguments above then
    do not apply; ``n`` and ``valid_batches`` are the runner's to honour).
    """
    if seeds < 1:
        raise ValueError("seeds must be at least 1")
    root = Path(root)
    data = str(Path(data).expanduser().resolve()) if data else None
    chosen = diagnostics.choose_readings(readings)  # a bad reading fails before any training
    runs = [config.resolve(c, preset, seed=s, device=device, data=data, overrides=list(overrides), epochs=epochs)
            for s in range(seed, seed + seeds) for c in RUN_ORDER]  # all validated before any training
    seconds: dict[str, float] = {}
    if searches is None:
        analyses, sessions = _in_process(root, runs, corpus if corpus is not None else load_corpus(data),
                                         listeners_factory, on_trainer, progress, n, valid_batches, device, seconds)
    else:
        started = time.perf_counter()
        analyses = searches(runs)
        sessions = [a.session for a in analyses]
        seconds["searches"] = time.perf_counter() - started
    analyses = pair_fig2(analyses)
    summary = aggregate(analyses, readings=chosen)
    found = claims(summary)
    started = time.perf_counter()
    out = Path(out) if out is not None else root / f"paper-{time.strftime('%Y%m%d-%H%M%S')}"
    report = write_report(analyses, out, readings=chosen)
    seconds["report"] = time.perf_counter() - started
    return PaperResult(analyses=analyses, sessions=sessions, report=report, preset=preset,
                       seed=seed, epochs=runs[0].train.epochs, data=data, summary=summary, claims=found,
                       seeds=seeds, readings=chosen, seconds=seconds)


def _in_process(root: Path, runs: list[config.Settings], corpus: Corpus,
                listeners_factory: Callable[[str], list[Listener]] | None,
                on_trainer: Callable[[Trainer], None] | None,
                progress: Callable[[], AbstractContextManager[Progress | None]] | None,
                n: int, valid_batches: int, device: str, seconds: dict[str, float]) -> tuple[list[Analysis], list[str]]:
    """The searches one after another in this process: train a run, analyse it, the next."""
    seconds.update({**{f"train {c}": 0.0 for c in RUN_ORDER}, "analyze": 0.0})
    sessions, analyses = [], []
    for settings in runs:
        started = time.perf_counter()
        session = _train(root, settings, corpus, listeners_factory, on_trainer)
        sessions.append(session.id)
        _add(seconds, f"train {settings.controller}", started)
        started = time.perf_counter()
        with (progress() if progress is not None else contextlib.nullcontext()) as bars:
            analyses.append(analyze_session(session, n=n, seed=settings.seed, valid_batches=valid_batches,
                                            corpus=corpus, device=device, progress=bars))
        _add(seconds, "analyze", started)
    return analyses, sessions


def _add(seconds: dict[str, float], key: str, started: float) -> None:
    seconds[key] += time.perf_counter() - started


def _train(root: Path, settings: config.Settings, corpus: Corpus,
           listeners_factory: Callable[[str], list[Listener]] | None,
           on_trainer: Callable[[Trainer], None] | None):
    """One run to its last epoch; the session folder it trained."""
    session = create_session(root, settings.controller)
    listeners = list(listeners_factory(settings.controller)) if listeners_factory else []
    with contextlib.ExitStack() as stack:
        for listener in listeners:
            if hasattr(listener, "__enter__") and hasattr(listener, "__exit__"):
                stack.enter_context(listener)
        trainer = new_run(settings, session, corpus, listeners, command=["enas-tui", "paper"])
        if on_trainer is not None:
            on_trainer(trainer)
        try:
            status = trainer.run()
        except TrainingFailed as exc:  # say which of the three runs failed
            raise TrainingFailed(f"the {settings.controller} run (session {session.id}) failed: {exc}") from None
    if status != "finished":
        raise PaperInterrupted(f"the {settings.controller} run (session {session.id}) was {status}; "
                               f"the comparison needs all three runs to finish")
    return session


def format_paper_table(result: PaperResult) -> str:
    """One seed: the paper's Table 1 layout for the three runs beside the paper's numbers, with the
    other readings, collapse indices and the Fig. 2 summary. Several: Table 1 as mean ± 95% interval
    per cell beside the paper's value. Then the paper's claims, the time and the report's path."""
    seeds = (f"seed {result.seed}" if result.seeds == 1
             else f"seeds {result.seed}..{result.seed + result.seeds - 1} ({result.seeds} runs per controller)")
    head = (f"paper comparison: preset {result.preset}, {seeds}, {result.epochs} epochs, "
            f"data {result.data or '(generated corpus)'}\n")
    if result.seeds == 1:
        order = {c: i for i, c in enumerate(PAPER_ORDER)}
        analyses = sorted(result.analyses, key=lambda a: order.get(a.controller, len(order)))
        body = format_tables(analyses, result.readings) + format_claims(result.claims)
    else:
        body = format_summary(result.summary, result.claims)
    timing = ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items())
    return head + body + (f"time: {timing}\n" if timing else "") + f"report: {result.report}\n"
