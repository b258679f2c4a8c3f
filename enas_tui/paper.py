"""``enas-tui paper``: the paper's comparison of the three controller settings, end to end.

Trains ``random``, ``unsupervised`` and ``supervised`` one after the other in this process, with
the same data, seed, preset, overrides and epochs (so the same shared-model initialisation and
budget), analyses each final checkpoint (analysis.py) and writes one report comparing them
(report.py). The only difference between the three runs is the controller setting.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import config
from .analysis import PAPER_ORDER, Analysis, analyze_session, format_tables
from .data import Corpus, load_corpus
from .report import write_report
from .sessions import create_session
from .trainer import Listener, Trainer, TrainingFailed, new_run

RUN_ORDER: tuple[str, ...] = ("random", "unsupervised", "supervised")


class PaperInterrupted(Exception):
    """A run was stopped on request before the comparison was complete; one line for the user."""


@dataclass
class PaperResult:
    """The three analyses (in RUN_ORDER), their sessions, the report, and where the time went."""

    analyses: list[Analysis]
    sessions: list[str]
    report: Path  # report.md; its folder holds the figures
    preset: str
    seed: int
    epochs: int
    data: str | None
    seconds: dict[str, float] = field(default_factory=dict)  # "train <controller>", "analyze", "report"


def run_paper(root: Path, preset: str = "cpu", data: str | None = None, seed: int = 0,
              epochs: int | None = None, out: Path | None = None, overrides: Sequence[str] = (),
              listeners_factory: Callable[[str], list[Listener]] | None = None, *,
              device: str = "auto", corpus: Corpus | None = None, n: int = 100, valid_batches: int = 5,
              on_trainer: Callable[[Trainer], None] | None = None) -> PaperResult:
    """Train, analyse and report the three settings; returns the result (report path included).

    ``listeners_factory(controller)`` gives each run's listeners (a headless view, say); listeners
    that are context managers are entered for the duration of their run. ``on_trainer`` sees each
    trainer before it runs (e.g. to route Ctrl-C to ``request_stop``). ``corpus`` skips loading
    ``data`` (tests pass a slice held in memory).
    """
    root = Path(root)
    data = str(Path(data).expanduser().resolve()) if data else None
    settings = {c: config.resolve(c, preset, seed=seed, device=device, data=data, overrides=list(overrides),
                                  epochs=epochs) for c in RUN_ORDER}  # all three validated before any training
    corpus = corpus if corpus is not None else load_corpus(data)
    seconds: dict[str, float] = {}
    sessions = []
    for controller in RUN_ORDER:
        started = time.perf_counter()
        sessions.append(_train(root, settings[controller], corpus, listeners_factory, on_trainer))
        seconds[f"train {controller}"] = time.perf_counter() - started
    started = time.perf_counter()
    analyses = [analyze_session(s, n=n, seed=seed, valid_batches=valid_batches, corpus=corpus, device=device)
                for s in sessions]
    seconds["analyze"] = time.perf_counter() - started
    started = time.perf_counter()
    out = Path(out) if out is not None else root / f"paper-{time.strftime('%Y%m%d-%H%M%S')}"
    report = write_report(analyses, out)
    seconds["report"] = time.perf_counter() - started
    return PaperResult(analyses=analyses, sessions=[s.id for s in sessions], report=report, preset=preset,
                       seed=seed, epochs=settings[RUN_ORDER[0]].train.epochs, data=data, seconds=seconds)


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
    """The paper's Table 1 layout for the three runs beside the paper's numbers, with the collapse
    indices and the Fig. 2 summary (median and interquartile range, trained vs random controller)."""
    order = {c: i for i, c in enumerate(PAPER_ORDER)}
    analyses = sorted(result.analyses, key=lambda a: order.get(a.controller, len(order)))
    head = (f"paper comparison: preset {result.preset}, seed {result.seed}, {result.epochs} epochs, "
            f"data {result.data or '(generated corpus)'}\n")
    timing = ", ".join(f"{k} {v:.0f} s" for k, v in result.seconds.items())
    return head + format_tables(analyses) + (f"time: {timing}\n" if timing else "") + f"report: {result.report}\n"
