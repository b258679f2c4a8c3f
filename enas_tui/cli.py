"""The ``enas-tui`` command line.

Commands import what they need when they run, so ``enas-tui sessions`` (and later the dashboard,
replay and attach) start without loading torch. Every user-facing failure is one line on stderr
with a non-zero exit: 2 for bad flags and values, 1 for bad input and failed runs, 130 for a run
stopped by Ctrl-C and 143 for one stopped by SIGTERM (both checkpointed, resumable).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import functools
import json
import os
import signal
import sys
from pathlib import Path
from typing import Optional

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup

from .config import CONTROLLERS, PRESETS, SettingsError


def _no_type(ctx) -> None:
    return None


class _PlainHelp:
    """Help as people read it: flags without a type (typer prints ``<bool>``), arguments named by
    their metavar alone (no ``<list[str]>``), and a usage line that names arguments as their
    metavar says (typer wraps them in ``{…}`` or ``[…]``)."""

    def get_params(self, ctx):
        params = super().get_params(ctx)
        for param in params:
            if getattr(param, "is_flag", False) and param.metavar is None:
                param.metavar = ""
            elif isinstance(param, TyperArgument) and param.metavar:
                param.display_type_rich = _no_type
        return params


class Command(_PlainHelp, TyperCommand):
    def collect_usage_pieces(self, ctx) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if isinstance(param, TyperArgument):
                pieces.append(param.metavar or param.name.upper())
        return pieces


class Group(_PlainHelp, TyperGroup):
    pass


app = typer.Typer(cls=Group, add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="ENAS recurrent-cell search with a live view of what its controller learns.")
data_app = typer.Typer(cls=Group, no_args_is_help=True, help="Corpus tools.")
arch_app = typer.Typer(cls=Group, no_args_is_help=True, help="Architecture tools.")
app.add_typer(data_app, name="data")
app.add_typer(arch_app, name="arch")

SESSIONS_DIR = typer.Option(None, "--sessions-dir", envvar="ENAS_TUI_SESSIONS", metavar="DIR",
                            help="Sessions folder (default: ./sessions).")
SET = "SECTION.FIELD=VALUE"


class UserError(Exception):
    """A failure to report as one line with exit code 1."""


class UsageProblem(Exception):
    """A bad value to report as one line with exit code 2."""


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that carry a message meant for the user (imported lazily: some need torch)."""
    from .search_space import ArchitectureError
    from .session_log import LogError
    from .sessions import SessionError

    errors: list[type[BaseException]] = [UserError, SessionError, LogError, ArchitectureError]
    if "enas_tui.data" in sys.modules:
        errors.append(sys.modules["enas_tui.data"].DataError)
    if "enas_tui.checkpoints" in sys.modules:
        errors.append(sys.modules["enas_tui.checkpoints"].CheckpointError)
    if "enas_tui.trainer" in sys.modules:
        errors.append(sys.modules["enas_tui.trainer"].DeviceError)
    return tuple(errors)


class StopSignals:
    """SIGINT and SIGTERM as a graceful stop request, installed before anything is created.

    A signal before the trainer exists is remembered and handed to it when it does (it then stops
    at its first step with a checkpoint), so a stop during start-up never leaves a half-made
    session. A second Ctrl-C falls back to the immediate KeyboardInterrupt.
    """

    def __init__(self) -> None:
        self.signum: int | None = None
        self.trainer = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "StopSignals":
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    def _handle(self, signum, frame) -> None:
        if self.signum is None:
            self.signum = signum
        if self.trainer is not None:
            self.trainer.request_stop()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    def attach(self, trainer) -> None:
        self.trainer = trainer
        if self.signum is not None:
            trainer.request_stop()

    @property
    def exit_code(self) -> int:
        """128 + the signal number, as a shell reports a process that signal ended: 130 or 143."""
        return 128 + (self.signum or signal.SIGINT)

    def check(self, where: str) -> None:
        """Exit now if a stop was asked for before anything worth keeping exists."""
        if self.signum is not None:
            typer.echo(f"enas-tui: stopped {where}", err=True)
            raise typer.Exit(self.exit_code)


# -- train -------------------------------------------------------------------------------------
@app.command(cls=Command)
def train(
    controller: str = typer.Option("supervised", "--controller", "-c",
                                   help=f"Controller setting: {', '.join(CONTROLLERS)}."),
    data: Optional[Path] = typer.Option(None, "--data", help="PTB-layout folder (default: a generated corpus)."),
    preset: Optional[str] = typer.Option(None, "--preset", help=f"{', '.join(PRESETS)} (default: cpu without CUDA)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Number of epochs (overrides the preset)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, ..."),
    overrides: list[str] = typer.Option([], "--set", metavar=SET, show_default=False,
                                        help="Override a setting (repeatable)."),
    sessions_dir: Optional[Path] = SESSIONS_DIR,
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue session ID from its last checkpoint."),
    headless: bool = typer.Option(False, "--headless", help="No dashboard: progress bars and epoch lines."),
    events_pipe: bool = typer.Option(False, "--events-pipe", hidden=True,
                                     help="Write events as JSON lines to stdout (used by the dashboard)."),
) -> None:
    """Run an ENAS search (or resume one) with the live dashboard, recording everything to a session folder."""
    from . import config
    from .sessions import create_session, open_session, sessions_root

    root = sessions_root(sessions_dir)
    _check_epochs(epochs)
    if not headless and not events_pipe and sys.stdout.isatty():
        from .tui import run_live

        args = ["--resume", resume] if resume else _train_args(controller, data, preset, seed, device, overrides)
        if epochs is not None:
            args += ["--epochs", str(epochs)]
        raise typer.Exit(run_live(args, root))
    with StopSignals() as stop:
        if resume:
            session = open_session(root, resume)
            _run_training(lambda listeners: _resume(session, listeners, epochs, None if device == "auto" else device),
                          stop, events_pipe)
            return
        chosen = _pick_preset(preset, data, device)
        try:
            settings = config.resolve(controller, chosen, seed=seed, device=device,
                                      data=str(data.resolve()) if data else None, overrides=overrides, epochs=epochs)
        except SettingsError as exc:
            raise UsageProblem(str(exc)) from None
        _check_device(settings.device)
        corpus = _load_corpus(settings)
        stop.check("before the session was created; nothing to resume")
        session = create_session(root, settings.controller, meta=_session_meta(settings))
        say = functools.partial(typer.echo, err=events_pipe)
        say(f"session {session.id} in {root}")
        say(f"corpus: {corpus.source} (vocabulary {corpus.vocab_size})")
        say("settings:")
        for line in config.describe(settings, width=100):
            say("  " + line)
        _run_training(lambda listeners: _new(settings, session, corpus, listeners), stop, events_pipe)


def _check_epochs(epochs: int | None) -> None:
    if epochs is not None and epochs < 1:
        raise UsageProblem("--epochs must be at least 1")


def _pick_preset(preset: str | None, data: Path | None, device: str) -> str:
    """The preset asked for, else ``paper`` where CUDA will be used and ``cpu`` elsewhere."""
    if data is not None and not data.exists():
        raise UsageProblem(f"--data {data}: no such folder")
    if preset is not None:
        return preset
    import torch

    return "paper" if torch.cuda.is_available() and device != "cpu" else "cpu"


def _train_args(controller, data, preset, seed, device, overrides) -> list[str]:
    """The train options again, for the trainer child the dashboard starts."""
    args = ["--controller", controller, "--seed", str(seed), "--device", device]
    if data is not None:
        args += ["--data", str(data.resolve())]
    if preset is not None:
        args += ["--preset", preset]
    for item in overrides:
        args += ["--set", item]
    return args


def _check_device(device: str) -> None:
    """A device this machine lacks is a usage error, found before any session folder exists."""
    from .trainer import DeviceError, pick_device

    try:
        pick_device(device)
    except DeviceError as exc:
        raise UsageProblem(f"--device: {exc}") from None


def _session_meta(settings):
    from .trainer import session_meta

    return session_meta(settings, command=sys.argv)


def _load_corpus(settings):
    from .data import load_corpus

    return load_corpus(settings.data)


def _new(settings, session, corpus, listeners):
    from .trainer import new_run

    return new_run(settings, session, corpus, listeners, command=sys.argv)


def _resume(session, listeners, epochs, device):
    from .trainer import DeviceError, resume_run

    if session.live_status() == "running":  # running only while its trainer process is alive
        pid = session.status().get("pid") if session.status_path.exists() else "?"
        raise UserError(f"session {session.id} is still running (pid {pid})")
    try:
        trainer = resume_run(session, _load_corpus, listeners, epochs=epochs, device=device, command=sys.argv)
    except DeviceError as exc:
        raise UsageProblem(f"--device: {exc} (pass --device cpu to resume on the CPU)") from None
    if trainer.pos.epoch > trainer.s.train.epochs:
        raise UserError(f"session {session.id} already finished its {trainer.s.train.epochs} epochs; "
                        f"pass --epochs N to extend it")
    return trainer


def _run_training(make_trainer, stop: StopSignals, events_pipe: bool = False) -> None:
    """Build the trainer with its listeners, run it (stop requests from ``stop``), report the outcome."""
    from .headless import HeadlessView
    from .trainer import TrainingFailed

    if events_pipe:  # stdout carries events only; anything printed goes to stderr
        from .launcher import PipeSink

        listeners, view = [PipeSink(os.dup(1))], contextlib.nullcontext()
        os.dup2(2, 1)
    else:
        view = HeadlessView()
        listeners = [view]
    with view:
        try:  # e.g. out of memory while building the model, or while training
            trainer = make_trainer(listeners)
            stop.attach(trainer)
            if events_pipe:  # from here on, errors land in the session folder for the dashboard to show
                _redirect_output(trainer.session.path / "trainer.log")
            status = trainer.run()
        except TrainingFailed as exc:
            raise UserError(str(exc)) from None
    if status == "stopped":
        from .commands import resume_command

        typer.echo(f"stopped; continue with: {resume_command(trainer.session)}", err=True)
        raise typer.Exit(stop.exit_code)


def _redirect_output(path: Path) -> None:
    try:
        log = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    except OSError:
        return  # errors then go to the dashboard's stderr capture instead
    os.dup2(log, 2)
    os.dup2(log, 1)
    os.close(log)


# -- dashboard ---------------------------------------------------------------------------------
@app.command(cls=Command)
def attach(
    session_id: Optional[str] = typer.Argument(None, metavar="[SESSION]", help="Default: the newest running session."),
    sessions_dir: Optional[Path] = SESSIONS_DIR,
) -> None:
    """Open the dashboard on a session's log: catch up, then follow it live (works over SSH)."""
    from .sessions import newest_running, open_session, sessions_root
    from .tui import run_attach

    root = sessions_root(sessions_dir)
    session = open_session(root, session_id) if session_id else newest_running(root)
    if session is None:
        raise UserError(f"no running session in {root}; name one: enas-tui attach SESSION")
    raise typer.Exit(run_attach(session))


@app.command(cls=Command)
def replay(
    session_id: str = typer.Argument(..., metavar="SESSION", help="Session id (or a unique prefix)."),
    sessions_dir: Optional[Path] = SESSIONS_DIR,
) -> None:
    """Open a recorded session with a timeline: play/pause, speeds, step, jump to an epoch, scrub."""
    from .sessions import open_session, sessions_root
    from .tui import run_replay

    raise typer.Exit(run_replay(open_session(sessions_root(sessions_dir), session_id)))


@app.command(cls=Command)
def compare(
    session_ids: list[str] = typer.Argument(..., metavar="S1 S2 [S3]", help="Two or three sessions."),
    sessions_dir: Optional[Path] = SESSIONS_DIR,
) -> None:
    """Sessions side by side (e.g. random, unsupervised, supervised) at the same cursor."""
    from .sessions import open_session, sessions_root
    from .tui import run_compare

    if not 2 <= len(session_ids) <= 3:
        raise UsageProblem("compare takes two or three sessions")
    root = sessions_root(sessions_dir)
    raise typer.Exit(run_compare([open_session(root, sid) for sid in session_ids]))


@app.command(cls=Command)
def demo(
    controller: str = typer.Option("supervised", "--controller", "-c", metavar="NAME",
                                   help=f"Controller setting to show: {', '.join(CONTROLLERS)}."),
    side_by_side: bool = typer.Option(False, "--compare", help="All three settings side by side (compare)."),
) -> None:
    """The dashboard on a synthetic session, for a first look in seconds: no training, no data."""
    if controller not in CONTROLLERS:
        raise UsageProblem(f"unknown controller {controller!r} (choose from {', '.join(CONTROLLERS)})")
    if not sys.stdout.isatty():
        raise UserError("the demo is a dashboard: run it in a terminal")
    from .tui import run_demo

    raise typer.Exit(run_demo(controller, compare=side_by_side))


# -- sessions ----------------------------------------------------------------------------------
@app.command(cls=Command)
def sessions(sessions_dir: Optional[Path] = SESSIONS_DIR,
             as_json: bool = typer.Option(False, "--json", help="One JSON object per session.")) -> None:
    """List sessions: id, controller, status, epoch, best ppl, start time (and what is damaged)."""
    from .sessions import all_sessions, sessions_root, summarize

    root = sessions_root(sessions_dir)
    summaries = [summarize(s) for s in all_sessions(root)]  # each read on its own, never raising
    if as_json:
        for s in summaries:
            typer.echo(json.dumps(vars(s)))
        return
    if not summaries:
        typer.echo(f"no sessions in {root}")
        return
    rows = [("id", "controller", "status", "epoch", "best ppl", "started", "")]
    for s in summaries:
        best = "-" if s.best_ppl is None else f"{s.best_ppl:.2f}"
        notes = f"damaged: {s.damaged}" if s.damaged else (s.reason if s.status == "damaged" else "")
        rows.append((s.id, s.controller, s.status, f"{s.epoch}/{s.epochs}", best, _when(s.started), notes))
    if any(row[-1] for row in rows[1:]):
        rows[0] = (*rows[0][:-1], "notes")
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:  # plain columns, never truncated: ids are there to be copied
        cells = [cell.rjust(w) if i in (3, 4) else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        typer.echo("  ".join(cells).rstrip())


def _when(started: float | None) -> str:
    if started is None:
        return "-"
    try:
        return dt.datetime.fromtimestamp(started).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return "-"


# -- data --------------------------------------------------------------------------------------
@data_app.command("download", cls=Command)
def data_download(
    corpus: str = typer.Argument(..., metavar="CORPUS", help="Corpus to fetch (ptb)."),
    dest: Path = typer.Option(..., "--dir", help="Folder to write the files to."),
    url: Optional[str] = typer.Option(None, "--url", help="Base URL holding ptb.{train,valid,test}.txt."),
) -> None:
    """Fetch the standard PTB files and verify their sizes and checksums."""
    from .data import DEFAULT_PTB_URL, download_ptb

    if corpus != "ptb":
        raise UsageProblem(f"unknown corpus {corpus!r} (available: ptb)")

    def progress(name: str, done: int, total: int) -> None:
        if done == total:
            typer.echo(f"{name}: {done:,} bytes ok")

    paths = download_ptb(dest, url or DEFAULT_PTB_URL, progress=progress)
    typer.echo(f"{len(paths)} files verified in {dest}")


# -- analyses ----------------------------------------------------------------------------------
ACTIVATIONS_READING = typer.Option(None, "--activations", help="Reading of '# common activations' beside the "
                                   "paper's column: paper (default) or aligned; the other is shown apart.")
GED_READING = typer.Option(None, "--ged", help="Reading of 'GED' beside the paper's column: paper (default), "
                           "aligned or exact; the others are shown apart.")
PROBE_MODE = typer.Option(None, "--probe-mode", help="derive (logits / temperature) or train (tanh constant); "
                          "default: the session's train.probe_mode.")
PROBE_STATE = typer.Option(None, "--probe-state", help="emit_last or after_last; default: the session's "
                           "train.probe_state.")


def _readings(activations: str | None, ged: str | None) -> dict[str, str]:
    """The Table 1 readings asked for (defaults filled in); a bad one is a usage error."""
    from .diagnostics import DiagnosticsError, choose_readings

    try:
        return choose_readings({"common_activations": activations, "ged": ged})
    except DiagnosticsError as exc:
        flag = "--activations" if "common_activations" in str(exc) else "--ged"
        raise UsageProblem(f"{flag}: {exc}") from None


@contextlib.contextmanager
def progress_bars(console=None):
    """A ``progress(task, done, total)`` callback drawing Rich bars on stderr; None when stderr is
    not a terminal (pipes and logs get no bars, and stdout stays clean for --format json/csv)."""
    from rich.console import Console

    console = console or Console(stderr=True)
    if not console.is_terminal:
        yield None
        return
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console, transient=True) as bars:
        tasks: dict[str, object] = {}

        def update(task: str, done: int, total: int) -> None:
            if task not in tasks:
                tasks[task] = bars.add_task(task, total=total)
            bars.update(tasks[task], completed=done, total=total)

        yield update


def _prefixed(progress, prefix: str):
    return None if progress is None else (lambda task, done, total: progress(f"{prefix}: {task}", done, total))


@app.command(cls=Command)
def analyze(
    session_id: str = typer.Argument(..., metavar="SESSION", help="Session id (or a unique prefix)."),
    checkpoint: Optional[int] = typer.Option(None, "--checkpoint", help="Epoch checkpoint (default: the latest)."),
    n: int = typer.Option(100, "--n", help="Probe architectures sampled from the controller."),
    seed: int = typer.Option(0, "--seed", help="Seed of the probe sample."),
    fmt: str = typer.Option("table", "--format", help="table, json or csv."),
    activations: Optional[str] = ACTIVATIONS_READING,
    ged: Optional[str] = GED_READING,
    probe_mode: Optional[str] = PROBE_MODE,
    probe_state: Optional[str] = PROBE_STATE,
    sessions_dir: Optional[Path] = SESSIONS_DIR,
) -> None:
    """Table 1 (every reading), collapse indices and the figures' data for one checkpoint of a session."""
    from .analysis import AnalysisError, analyze_session, format_table, to_csv
    from .sessions import open_session, sessions_root

    if fmt not in ("table", "json", "csv"):
        raise UsageProblem(f"unknown format {fmt!r} (choose from table, json, csv)")
    if n < 3:
        raise UsageProblem("--n must be at least 3 (Spearman needs pairs)")
    readings = _readings(activations, ged)
    session = open_session(sessions_root(sessions_dir), session_id)
    try:
        with progress_bars() as progress:
            result = analyze_session(session, epoch=checkpoint, n=n, seed=seed, probe_mode=probe_mode,
                                     probe_state=probe_state, progress=progress)
    except AnalysisError as exc:
        raise UsageProblem(str(exc)) from None
    if fmt == "json":
        typer.echo(json.dumps(result.to_dict(), allow_nan=False))
    elif fmt == "csv":
        typer.echo(to_csv(result, readings), nl=False)
    else:
        typer.echo(format_table(result, readings))


@app.command(cls=Command)
def report(
    session_ids: list[str] = typer.Argument(..., metavar="SESSION...", help="One session, or several to compare."),
    out: Optional[Path] = typer.Option(None, "--out", help="Report folder (default: reports/<first session>)."),
    n: int = typer.Option(100, "--n", help="Probe architectures per session."),
    seed: int = typer.Option(0, "--seed", help="Seed of the probe samples."),
    activations: Optional[str] = ACTIVATIONS_READING,
    ged: Optional[str] = GED_READING,
    probe_mode: Optional[str] = PROBE_MODE,
    probe_state: Optional[str] = PROBE_STATE,
    sessions_dir: Optional[Path] = SESSIONS_DIR,
) -> None:
    """Figures 1-4 and Table 1 (PNG and SVG), report.md, table1.json and summary.json for sessions.

    Several runs of the same controllers (seeds) add Table 1 over seeds and the paper's claims.
    """
    from .analysis import AnalysisError, analyze_session
    from .report import write_report
    from .sessions import open_session, sessions_root

    readings = _readings(activations, ged)
    root = sessions_root(sessions_dir)
    sessions = [open_session(root, sid) for sid in session_ids]
    try:
        with progress_bars() as progress:
            analyses = [analyze_session(s, n=n, seed=seed, probe_mode=probe_mode, probe_state=probe_state,
                                        progress=_prefixed(progress, s.id)) for s in sessions]
    except AnalysisError as exc:
        raise UsageProblem(str(exc)) from None
    path = write_report(analyses, out or Path("reports") / sessions[0].id, readings=readings)
    typer.echo(f"report written: {path}")


@app.command(cls=Command)
def paper(
    preset: Optional[str] = typer.Option(None, "--preset", help=f"{', '.join(PRESETS)} (default: cpu without CUDA)."),
    data: Optional[Path] = typer.Option(None, "--data", help="PTB-layout folder (default: a generated corpus)."),
    seed: int = typer.Option(0, "--seed", help="Random seed of the first runs (seeds S..S+K-1 with --seeds K)."),
    seeds: int = typer.Option(1, "--seeds", help="Runs of each controller, one seed each; K > 1 prints "
                              "Table 1 as mean ± 95% interval."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs per run (overrides the preset)."),
    n: int = typer.Option(100, "--n", help="Probe architectures per analysis (the paper: 100)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, ..."),
    overrides: list[str] = typer.Option([], "--set", metavar=SET, show_default=False,
                                        help="Override a setting for all runs (repeatable)."),
    activations: Optional[str] = ACTIVATIONS_READING,
    ged: Optional[str] = GED_READING,
    out: Optional[Path] = typer.Option(None, "--out", help="Report folder (default: <sessions-dir>/paper-<time>)."),
    sessions_dir: Optional[Path] = SESSIONS_DIR,
) -> None:
    """Train random, unsupervised and supervised on the same budget (for each seed), compare them as the
    paper does, and check the paper's claims."""
    from .headless import HeadlessView
    from .paper import PaperInterrupted, format_paper_table, run_paper
    from .sessions import sessions_root
    from .trainer import TrainingFailed

    _check_epochs(epochs)
    if seeds < 1:
        raise UsageProblem("--seeds must be at least 1")
    if n < 3:
        raise UsageProblem("--n must be at least 3 (Spearman needs pairs)")
    readings = _readings(activations, ged)
    chosen = _pick_preset(preset, data, device)
    _check_device(device)
    trainers = []

    def stop(signum, frame):
        for trainer in trainers:
            trainer.request_stop()

    previous = signal.signal(signal.SIGINT, stop)
    try:
        result = run_paper(sessions_root(sessions_dir), preset=chosen, data=str(data) if data else None, seed=seed,
                           epochs=epochs, out=out, overrides=overrides, device=device, seeds=seeds, n=n,
                           readings=readings, listeners_factory=lambda controller: [HeadlessView()],
                           on_trainer=trainers.append, progress=progress_bars)
    except SettingsError as exc:
        raise UsageProblem(str(exc)) from None
    except TrainingFailed as exc:
        raise UserError(str(exc)) from None
    except PaperInterrupted as exc:
        typer.echo(f"enas-tui: {exc}", err=True)
        raise typer.Exit(130)
    finally:
        signal.signal(signal.SIGINT, previous)
    typer.echo(format_paper_table(result))  # ends with the report's path


# -- arch ------------------------------------------------------------------------------------
@arch_app.command("distance", cls=Command)
def arch_distance(
    a: str = typer.Argument(..., metavar="A", help="First architecture, e.g. tanh,0:relu,1:identity"),
    b: str = typer.Argument(..., metavar="B", help="Second architecture (same number of nodes)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    ged_timeout: float = typer.Option(1.0, "--ged-timeout", help="Seconds networkx may search for ged_paper's first value."),
    exact_timeout: float = typer.Option(60.0, "--exact-timeout", help="Seconds the exact GED search may take (large cells)."),
) -> None:
    """Every structural similarity measure of two architectures, in each reading of Table 1."""
    from . import similarity
    from .diagnostics import READINGS, resolve_readings
    from .search_space import Architecture

    table1_default = {column: measure for column, measure in resolve_readings().items() if column in READINGS}
    for flag, value in (("--ged-timeout", ged_timeout), ("--exact-timeout", exact_timeout)):
        if not value > 0:
            raise UsageProblem(f"{flag} must be positive, got {value}")
    first, second = Architecture.parse(a), Architecture.parse(b)
    try:
        values: dict[str, int | None] = {
            "common_activations_paper": similarity.common_activations_paper(first, second),
            "common_activations_aligned": similarity.common_activations_aligned(first, second),
            "common_connections": similarity.common_connections(first, second),
            "ged_paper": 0,  # below: the slowest, computed last
            "ged_aligned": similarity.ged_aligned(first, second),
            "ged_exact": None,
        }
        try:
            values["ged_exact"] = similarity.ged_exact(first, second, timeout=exact_timeout)
        except similarity.ExactGEDTimeout:
            pass  # shown as not proven
        paper = similarity.paper_ged(first, second, timeout=ged_timeout)
        values["ged_paper"] = paper.value
    except (similarity.SimilarityError, similarity.GraphError) as exc:
        raise UserError(str(exc)) from None
    if as_json:
        typer.echo(json.dumps({**values, "ged_paper_fell_back": paper.fell_back,
                               "table1_default": table1_default}))
        return
    defaults = set(table1_default.values())
    for key, value in values.items():
        note = "  (Table 1 default)" if key in defaults else ""
        if key == "ged_paper" and paper.fell_back:
            note += f"  (no networkx value within {ged_timeout:g} s: the aligned upper bound)"
        if value is None:
            value, note = "-", f"  (not proven within {exact_timeout:g} s; the search grows fast with cell size)"
        typer.echo(f"{key:27s} {value:>4}{note}")
    typer.echo("Table 1 reads both columns the authors' way by default (reading 'paper'); "
               "'aligned' and 'exact' are the alternatives.")


# -- entry point -------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> None:
    """Run the CLI with one-line errors: exit 2 for usage, 1 for bad input, 130 for Ctrl-C."""
    try:
        code = app(args=argv, prog_name="enas-tui", standalone_mode=False)
    except typer.Exit as exc:
        code = exc.exit_code
    except UsageProblem as exc:
        _fail(str(exc), 2)
    except (typer.Abort, KeyboardInterrupt):
        _fail("interrupted", 130)
    except Exception as exc:
        if isinstance(exc, _user_errors()):
            _fail(str(exc), 1)
        if hasattr(exc, "format_message") and isinstance(getattr(exc, "exit_code", None), int):
            # click's usage errors (typer may vendor click, so match by shape, not by class)
            message = (exc.format_message() or type(exc).__name__).strip().splitlines()[0]
            _fail(f"{message} (see --help)", exc.exit_code)
        raise
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, code: int) -> None:
    sys.stderr.write(f"enas-tui: error: {message}\n")
    sys.stderr.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
