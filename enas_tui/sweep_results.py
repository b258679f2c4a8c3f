"""A sweep's final analyses on the torch side: what ``report --sweep`` and ``paper --ray`` read.

Each trial of a sweep saves its run's analysis (``analyze --save`` into ``sweeps/<name>/analyses/``);
here they are loaded as ``Analysis`` objects, a finished run without a current one is analysed
now (as its trial would have: the sweep's n, the run's seed) and saved, and the runs are grouped
by the settings the sweep varies, one Table 1 over seeds per group. ``RaySearches`` runs the
searches of ``paper`` as a sweep (the ``paper.Searches`` hook). Ray is imported only when a
sweep runs, so a report needs no Ray.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from . import config
from .analysis import Analysis, Progress, analyze_session, load_analysis, save_analysis
from .paper import RUN_ORDER, PaperInterrupted
from .sessions import Session
from .sweep.grid import GridError, Point, SweepSpec, build_spec
from .sweep.record import RunState, SweepError, SweepRecord, analysis_path, load_record, run_states
from .trainer import TrainingFailed


@dataclass
class SweepGroup:
    """The analysed runs that share one combination of the varied settings ("" when none vary)."""

    label: str
    analyses: list[Analysis] = field(default_factory=list)


@dataclass
class SweepResults:
    record: SweepRecord
    groups: list[SweepGroup]
    left_out: list[RunState]  # runs that have not finished training (not in any group)
    analysed_now: list[str] = field(default_factory=list)  # sessions analysed by this call


def sweep_analyses(root: Path, name: str, device: str = "auto",
                   progress: Callable[[str], Progress | None] | None = None) -> SweepResults:
    """Every finished run's final analysis, by group; missing or outdated ones are analysed and saved.

    ``progress(session)`` gives the progress callback for one analysis (the CLI's bars).
    """
    record = load_record(root, name)
    groups: dict[str, SweepGroup] = {}
    left_out, analysed_now = [], []
    for state in run_states(root, record):
        run = state.run
        if state.status != "finished":
            left_out.append(state)
            continue
        path = analysis_path(root, name, run.session)
        if state.analysed:
            analysis = load_analysis(path)
        else:
            analysis = analyze_session(Session(Path(root) / run.session), n=record.spec.n, seed=run.seed,
                                       device=device, progress=progress(run.session) if progress else None)
            save_analysis(analysis, path)
            analysed_now.append(run.session)
        groups.setdefault(run.label(), SweepGroup(run.label())).analyses.append(analysis)
    return SweepResults(record, list(groups.values()), left_out, analysed_now)


@dataclass
class RaySearches:
    """``paper``'s searches as the trials of a sweep on Ray (``paper --ray``): each run trains and is
    analysed on a worker exactly as ``sweep`` does it, so a killed run is retried from its
    checkpoint and running the same command again resumes instead of starting over."""

    root: Path
    preset: str
    data: str | None = None
    epochs: int | None = None
    overrides: Sequence[str] = ()
    device: str = "auto"
    n: int = 100
    address: str | None = None
    name: str | None = None
    cpus_per_run: float = 1.0
    gpus_per_run: float = 0.0
    retries: int = 2
    echo: Callable[[str], None] = print
    spec: SweepSpec | None = None  # the sweep, once built (its name says where its record is)

    def build(self, seeds: Sequence[int]) -> SweepSpec:
        """The sweep for these seeds (GridError for a bad flag); named ``paper-<hash>`` by default."""
        text = ",".join(str(s) for s in seeds)
        spec = build_spec(",".join(RUN_ORDER), text, list(self.overrides), name=self.name, preset=self.preset,
                          data=self.data, epochs=self.epochs, device=self.device, cpus_per_run=self.cpus_per_run,
                          gpus_per_run=self.gpus_per_run, retries=self.retries, n=self.n)
        if self.name is None:
            spec.name = "paper-" + spec.name.removeprefix("sweep-")
        return spec

    def __call__(self, runs: list[config.Settings]) -> list[Analysis]:
        from .sweep.runner import run_sweep
        from .sweep.status import counts

        try:
            spec = self.spec = self.build(sorted({s.seed for s in runs}))
        except GridError as exc:
            raise SweepError(str(exc)) from None
        outcome = run_sweep(spec, self.root, address=self.address, command=sys.argv, echo=self.echo)
        if outcome.interrupted:
            raise PaperInterrupted(f"stopped; every run of sweep {spec.name} keeps its checkpoint: run the same "
                                   f"command again to resume it")
        if outcome.exit_code:
            raise TrainingFailed(f"sweep {spec.name}: {counts(outcome.states)}; run the same command again to "
                                 f"retry from the last checkpoints (enas-tui sweep status {spec.name} says why)")
        root = Path(self.root).resolve()
        return [load_analysis(analysis_path(root, spec.name, spec.session_id(Point(s.controller, s.seed))))
                for s in runs]
