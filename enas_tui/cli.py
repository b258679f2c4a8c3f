"""The ``enas-tui`` command line.

Commands import what they need when they run, so ``enas-tui sessions`` (and later the dashboard,
replay and attach) start without loading torch. Every user-facing failure is one line on stderr
with a non-zero exit: 2 for bad flags and values, 1 for bad input and failed runs, 130 for a run
stopped by Ctrl-C (checkpointed, resumable).
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

from .config import CONTROLLERS, PRESETS, SettingsError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="ENAS recurrent-cell search with a live view of what its controller learns.")
data_app = typer.Typer(no_args_is_help=True, help="Corpus tools.")
arch_app = typer.Typer(no_args_is_help=True, help="Architecture tools.")
sweep_app = typer.Typer(help="Run the controllers over many seeds and settings on Ray; see how sweeps stand.")
app.add_typer(data_app, name="data")
app.add_typer(arch_app, name="arch")
app.add_typer(sweep_app, name="sweep")

SESSIONS_DIR = typer.Option(None, "--sessions-dir", envvar="ENAS_TUI_SESSIONS",
                            help="Sessions folder [env ENAS_TUI_SESSIONS; default ./sessions].")


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
    if "enas_tui.sweep.record" in sys.modules:
        errors.append(sys.modules["enas_tui.sweep.record"].SweepError)
    if "enas_tui.data" in sys.modules:
        errors.append(sys.modules["enas_tui.data"].DataError)
    if "enas_tui.checkpoints" in sys.modules:
        errors.append(sys.modules["enas_tui.checkpoints"].CheckpointError)
    return tuple(errors)


# -- train -------------------------------------------------------------------------------------
@app.command()
def train(
    controller: str = typer.Option("supervised", "--controller", "-c",
                                   help=f"Controller setting: {', '.join(CONTROLLERS)}."),
    data: Optional[Path] = typer.Option(None, "--data", help="PTB-layout folder (default: a generated corpus)."),
    preset: Optional[str] = typer.Option(None, "--preset", help=f"{', '.join(PRESETS)} (default: cpu without CUDA)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Number of epochs (overrides the preset)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, ..."),
    overrides: list[str] = typer.Option([], "--set", help="Override a setting: section.field=value (repeatable)."),
    sessions_dir: Optional[Path] = SESSIONS_DIR,
    resume: Optional[str] = typer.Option(None, "--resume", help="Continue session ID from its last checkpoint."),
    session_id: Optional[str] = typer.Option(None, "--session-id",
                                             help="Name the new session folder (default: a time-stamped id)."),
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
        if session_id is not None and not resume:
            args += ["--session-id", session_id]
        if epochs is not None:
            args += ["--epochs", str(epochs)]
        raise typer.Exit(run_live(args, root))
    if resume:
        if session_id is not None:
            raise UsageProblem("--session-id names a new session; --resume continues an existing one")
        session = open_session(root, resume)
        _run_training(lambda listeners: _resume(session, listeners, epochs, None if device == "auto" else device),
                      events_pipe)
        return
    chosen = _pick_preset(preset, data, device)
    try:
        settings = config.resolve(controller, chosen, seed=seed, device=device,
                                  data=str(data.resolve()) if data else None, overrides=overrides, epochs=epochs)
    except SettingsError as exc:
        raise UsageProblem(str(exc)) from None
    corpus = _load_corpus(settings)
    session = create_session(root, settings.controller, session_id)
    say = functools.partial(typer.echo, err=events_pipe)
    say(f"session {session.id} in {root}")
    say(f"corpus: {corpus.source} (vocabulary {corpus.vocab_size})")
    say("settings:")
    for line in config.describe(settings, width=100):
        say("  " + line)
    _run_training(lambda listeners: _new(settings, session, corpus, listeners), events_pipe)


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


def _load_corpus(settings):
    from .data import load_corpus

    return load_corpus(settings.data)


def _new(settings, session, corpus, listeners):
    from .trainer import new_run

    return new_run(settings, session, corpus, listeners, command=sys.argv)


def _resume(session, listeners, epochs, device):
    from .trainer import resume_run

    if session.live_status() == "running":  # running only while its trainer process is alive
        raise UserError(f"session {session.id} is still running (pid {session.status().get('pid')})")
    trainer = resume_run(session, _load_corpus, listeners, epochs=epochs, device=device, command=sys.argv)
    if trainer.pos.epoch > trainer.s.train.epochs:
        raise UserError(f"session {session.id} already finished its {trainer.s.train.epochs} epochs; "
                        f"pass --epochs N to extend it")
    return trainer


def _run_training(make_trainer, events_pipe: bool = False) -> None:
    """Build the trainer with its listeners, run it with graceful Ctrl-C/SIGTERM, report the outcome."""
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
        trainer = make_trainer(listeners)
        if events_pipe:  # from here on, errors land in the session folder for the dashboard to show
            log = os.open(trainer.session.path / "trainer.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(log, 2)
            os.dup2(log, 1)
        previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

        def stop(signum, frame):  # a second Ctrl-C falls back to the default (immediate) behaviour
            trainer.request_stop()
            signal.signal(signal.SIGINT, signal.default_int_handler)

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            status = trainer.run()
        except TrainingFailed as exc:
            raise UserError(str(exc)) from None
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    if status == "stopped":
        typer.echo(f"stopped; continue with: enas-tui train --resume {trainer.session.id}", err=True)
        raise typer.Exit(130)


# -- dashboard ---------------------------------------------------------------------------------
@app.command()
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


@app.command()
def replay(
    session_id: str = typer.Argument(..., metavar="SESSION", help="Session id (or a unique prefix)."),
    sessions_dir: Optional[Path] = SESSIONS_DIR,
) -> None:
    """Open a recorded session with a timeline: play/pause, speeds, step, jump to an epoch, scrub."""
    from .sessions import open_session, sessions_root
    from .tui import run_replay

    raise typer.Exit(run_replay(open_session(sessions_root(sessions_dir), session_id)))


@app.command()
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


# -- sessions ----------------------------------------------------------------------------------
@app.command()
def sessions(sessions_dir: Optional[Path] = SESSIONS_DIR,
             as_json: bool = typer.Option(False, "--json", help="One JSON object per session.")) -> None:
    """List sessions: id, controller, status, epoch, best ppl, start time."""
    from .sessions import all_sessions, sessions_root, summarize

    root = sessions_root(sessions_dir)
    summaries = [summarize(s) for s in all_sessions(root)]
    if as_json:
        for s in summaries:
            typer.echo(json.dumps(vars(s)))
        return
    if not summaries:
        typer.echo(f"no sessions in {root}")
        return
    rows = [("id", "controller", "status", "epoch", "best ppl", "started")]
    for s in summaries:
        started = dt.datetime.fromtimestamp(s.started).strftime("%Y-%m-%d %H:%M:%S")
        best = "-" if s.best_ppl is None else f"{s.best_ppl:.2f}"
        rows.append((s.id, s.controller, s.status, f"{s.epoch}/{s.epochs}", best, started))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:  # plain columns, never truncated: ids are there to be copied
        cells = [cell.rjust(w) if i in (3, 4) else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        typer.echo("  ".join(cells).rstrip())


# -- sweep -------------------------------------------------------------------------------------
@sweep_app.callback(invoke_without_command=True)
def sweep(
    ctx: typer.Context,
    controllers: str = typer.Option(",".join(CONTROLLERS), "--controllers",
                                    help="Comma-separated controller settings."),
    seeds: Optional[str] = typer.Option(None, "--seeds", help="Seeds: 0-9, 0,3,7 or 0-4,10-12."),
    preset: Optional[str] = typer.Option(None, "--preset",
                                         help=f"{', '.join(PRESETS)} (default: paper with --gpus-per-run, else cpu)."),
    data: Optional[Path] = typer.Option(None, "--data", help="PTB-layout folder, the same path on every node."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs per run (overrides the preset)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, ..."),
    overrides: list[str] = typer.Option([], "--set", help="section.field=v1,v2,...: a list adds a grid axis (repeatable)."),
    cpus_per_run: float = typer.Option(1.0, "--cpus-per-run", help="CPU cores Ray reserves for each run."),
    gpus_per_run: float = typer.Option(0.0, "--gpus-per-run", help="GPUs Ray reserves for each run."),
    retries: int = typer.Option(2, "--retries", help="Restarts from the last checkpoint after a run is killed or fails."),
    address: Optional[str] = typer.Option(None, "--address", envvar="RAY_ADDRESS",
                                          help="Ray cluster to join (default: start Ray on this machine)."),
    name: Optional[str] = typer.Option(None, "--name", help="Sweep name (default: derived from the grid)."),
    sessions_dir: Optional[Path] = SESSIONS_DIR,
) -> None:
    """Run every controller x seed x --set value as an ordinary session on Ray (again: resume it)."""
    if ctx.invoked_subcommand is not None:
        return
    from .sessions import sessions_root
    from .sweep import RAY_INSTALL_HINT
    from .sweep.grid import GridError, build_spec

    if seeds is None:
        raise UsageProblem("sweep needs --seeds, e.g. --seeds 0-9 (enas-tui sweep status lists sweeps)")
    if data is not None and not data.is_dir():
        raise UsageProblem(f"--data {data}: no such folder")
    try:
        spec = build_spec(controllers, seeds, overrides, name=name, preset=preset or ("paper" if gpus_per_run else "cpu"),
                          data=str(data.resolve()) if data else None, epochs=epochs, device=device,
                          cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run, retries=retries)
    except GridError as exc:
        raise UsageProblem(str(exc)) from None
    try:
        import ray.tune  # noqa: F401  (the whole extra: Ray with Tune's dependencies)
    except ImportError:
        raise UserError(RAY_INSTALL_HINT) from None
    from .sweep.runner import run_sweep
    from .sweep.status import counts, run_lines

    try:
        outcome = run_sweep(spec, sessions_root(sessions_dir), address=address, command=sys.argv, echo=typer.echo)
    except KeyboardInterrupt:  # a second Ctrl-C: the trainers were already asked to stop with a checkpoint
        typer.echo(f"interrupted; the runs are writing their checkpoints (enas-tui sweep status {spec.name}); "
                   f"run the same command again to resume", err=True)
        raise typer.Exit(130) from None
    for line in run_lines(outcome.states):
        typer.echo(line)
    if outcome.interrupted:
        typer.echo(f"stopped ({counts(outcome.states)}); run the same command again to resume", err=True)
    elif outcome.exit_code:
        raise UserError(f"sweep {spec.name}: {counts(outcome.states)}; "
                        f"run the same command again to retry from the last checkpoints")
    raise typer.Exit(outcome.exit_code)


@sweep_app.command("status")
def sweep_status(
    name: Optional[str] = typer.Argument(None, metavar="[NAME]", help="A sweep (default: list every sweep)."),
    sessions_dir: Optional[Path] = SESSIONS_DIR,
    as_json: bool = typer.Option(False, "--json", help="One JSON object per run (per sweep without NAME)."),
) -> None:
    """List the sweeps in the sessions folder, or one sweep's runs: host, status, epoch, best ppl, error."""
    from .sessions import sessions_root
    from .sweep.record import load_record, run_states, sweep_names
    from .sweep.status import counts, run_lines, state_dict, sweep_lines

    root = sessions_root(sessions_dir)
    if name is None:
        if as_json:
            for sweep_name in sweep_names(root):
                record = load_record(root, sweep_name)
                typer.echo(json.dumps({"name": sweep_name, "runs": len(record.runs), "created": record.created,
                                       "status": counts(run_states(root, record))}))
            return
        for line in sweep_lines(root):
            typer.echo(line)
        return
    record = load_record(root, name)
    states = run_states(root, record)
    if as_json:
        for state in states:
            typer.echo(json.dumps(state_dict(state)))
        return
    spec = record.spec
    typer.echo(f"sweep {name}: {len(states)} runs ({counts(states)}); preset {spec.preset}, "
               f"epochs {spec.epochs or 'from the preset'}, data {spec.data or '(generated corpus)'}")
    for line in run_lines(states):
        typer.echo(line)


# -- data --------------------------------------------------------------------------------------
@data_app.command("download")
def data_download(
    corpus: str = typer.Argument(..., help="Corpus to fetch (ptb)."),
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
@app.command()
def analyze(
    session_id: str = typer.Argument(..., metavar="SESSION", help="Session id (or a unique prefix)."),
    checkpoint: Optional[int] = typer.Option(None, "--checkpoint", help="Epoch checkpoint (default: the latest)."),
    n: int = typer.Option(100, "--n", help="Probe architectures sampled from the controller."),
    seed: int = typer.Option(0, "--seed", help="Seed of the probe sample."),
    fmt: str = typer.Option("table", "--format", help="table, json or csv."),
    sessions_dir: Optional[Path] = SESSIONS_DIR,
) -> None:
    """Table 1, collapse indices and the figures' data for one checkpoint of a session."""
    from .analysis import AnalysisError, analyze_session, format_table, to_csv
    from .sessions import open_session, sessions_root

    if fmt not in ("table", "json", "csv"):
        raise UsageProblem(f"unknown format {fmt!r} (choose from table, json, csv)")
    if n < 3:
        raise UsageProblem("--n must be at least 3 (Spearman needs pairs)")
    session = open_session(sessions_root(sessions_dir), session_id)
    try:
        result = analyze_session(session, epoch=checkpoint, n=n, seed=seed)
    except AnalysisError as exc:
        raise UsageProblem(str(exc)) from None
    if fmt == "json":
        typer.echo(json.dumps(result.to_dict(), allow_nan=False))
    elif fmt == "csv":
        typer.echo(to_csv(result), nl=False)
    else:
        typer.echo(format_table(result))


@app.command()
def report(
    session_ids: list[str] = typer.Argument(..., metavar="SESSION...", help="One session, or several to compare."),
    out: Optional[Path] = typer.Option(None, "--out", help="Report folder (default: reports/<first session>)."),
    n: int = typer.Option(100, "--n", help="Probe architectures per session."),
    seed: int = typer.Option(0, "--seed", help="Seed of the probe samples."),
    sessions_dir: Optional[Path] = SESSIONS_DIR,
) -> None:
    """Figures 1-4 and Table 1 (PNG and SVG), report.md and table1.json for sessions."""
    from .analysis import AnalysisError, analyze_session
    from .report import write_report
    from .sessions import open_session, sessions_root

    root = sessions_root(sessions_dir)
    sessions = [open_session(root, sid) for sid in session_ids]
    try:
        analyses = [analyze_session(s, n=n, seed=seed) for s in sessions]
    except AnalysisError as exc:
        raise UsageProblem(str(exc)) from None
    path = write_report(analyses, out or Path("reports") / sessions[0].id)
    typer.echo(f"report written: {path}")


@app.command()
def paper(
    preset: Optional[str] = typer.Option(None, "--preset", help=f"{', '.join(PRESETS)} (default: cpu without CUDA)."),
    data: Optional[Path] = typer.Option(None, "--data", help="PTB-layout folder (default: a generated corpus)."),
    seed: int = typer.Option(0, "--seed", help="Random seed shared by the three runs."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Epochs per run (overrides the preset)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, ..."),
    overrides: list[str] = typer.Option([], "--set", help="Override a setting for all three runs (repeatable)."),
    out: Optional[Path] = typer.Option(None, "--out", help="Report folder (default: <sessions-dir>/paper-<time>)."),
    sessions_dir: Optional[Path] = SESSIONS_DIR,
) -> None:
    """Train random, unsupervised and supervised on the same budget and compare them as the paper does."""
    from .headless import HeadlessView
    from .paper import PaperInterrupted, format_paper_table, run_paper
    from .sessions import sessions_root
    from .trainer import TrainingFailed

    _check_epochs(epochs)
    chosen = _pick_preset(preset, data, device)
    trainers = []

    def stop(signum, frame):
        for trainer in trainers:
            trainer.request_stop()

    previous = signal.signal(signal.SIGINT, stop)
    try:
        result = run_paper(sessions_root(sessions_dir), preset=chosen, data=str(data) if data else None, seed=seed,
                           epochs=epochs, out=out, overrides=overrides, device=device,
                           listeners_factory=lambda controller: [HeadlessView()], on_trainer=trainers.append)
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
@arch_app.command("distance")
def arch_distance(
    a: str = typer.Argument(..., help="First architecture, e.g. tanh,0:relu,1:identity"),
    b: str = typer.Argument(..., help="Second architecture (same number of nodes)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """The structural similarity measures of Table 1 for two architectures."""
    from .search_space import Architecture
    from .similarity import SimilarityError, common_activations, common_connections, graph_edit_distance

    first, second = Architecture.parse(a), Architecture.parse(b)
    try:
        result = {"common_activations": common_activations(first, second),
                  "common_connections": common_connections(first, second),
                  "ged": graph_edit_distance(first, second)}
    except SimilarityError as exc:
        raise UserError(str(exc)) from None
    if as_json:
        typer.echo(json.dumps(result))
        return
    for key, value in result.items():
        typer.echo(f"{key:20s} {value}")


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
