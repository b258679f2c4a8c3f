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
app.add_typer(data_app, name="data")
app.add_typer(arch_app, name="arch")

SESSIONS_DIR = typer.Option(None, "--sessions-dir", envvar="ENAS_TUI_SESSIONS",
                            help="Sessions folder [env ENAS_TUI_SESSIONS; default ./sessions].")


class UserError(Exception):
    """A failure to report as one line with exit code 1."""


class UsageProblem(Exception):
    """A bad value to report as one line with exit code 2."""


def _user_errors() -> tuple[type[BaseException], ...]:
    """Exception types that carry a message meant for the user (imported lazily: some need torch)."""
    from .remote.hosts import HostsError
    from .remote.ssh import RemoteError
    from .search_space import ArchitectureError
    from .session_log import LogError
    from .sessions import SessionError

    errors: list[type[BaseException]] = [UserError, SessionError, LogError, ArchitectureError, RemoteError,
                                         HostsError]
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
    headless: bool = typer.Option(False, "--headless", help="No dashboard: progress bars and epoch lines."),
    detach: bool = typer.Option(False, "--detach",
                                help="Run in the background (survives logout); print the session and how to watch it."),
    progress_every: float = typer.Option(5.0, "--progress-every", metavar="SECONDS",
                                         help="Without a terminal (e.g. --detach): a progress line this often."),
    events_pipe: bool = typer.Option(False, "--events-pipe", hidden=True,
                                     help="Write events as JSON lines to stdout (used by the dashboard)."),
    detached_child: bool = typer.Option(False, "--detached-child", hidden=True,
                                        help="Announce the session on stdout, then write output to trainer.log."),
) -> None:
    """Run an ENAS search (or resume one) with the live dashboard, recording everything to a session folder."""
    from . import config
    from .sessions import create_session, open_session, sessions_root

    root = sessions_root(sessions_dir)
    _check_epochs(epochs)
    if not progress_every > 0:
        raise UsageProblem("--progress-every must be a positive number of seconds")
    args = ["--resume", resume] if resume else _train_args(controller, data, preset, seed, device, overrides)
    if epochs is not None:
        args += ["--epochs", str(epochs)]
    if detach:
        raise typer.Exit(_detach([*args, "--progress-every", str(progress_every)], root))
    if not headless and not events_pipe and sys.stdout.isatty():
        from .tui import run_live

        raise typer.Exit(run_live(args, root))
    announce = _announce_detached if detached_child else (lambda session: None)
    view_args = {"progress_every": progress_every}
    if resume:
        session = open_session(root, resume)
        announce(session)
        _run_training(lambda listeners: _resume(session, listeners, epochs, None if device == "auto" else device),
                      events_pipe, view_args)
        return
    chosen = _pick_preset(preset, data, device)
    try:
        settings = config.resolve(controller, chosen, seed=seed, device=device,
                                  data=str(data.resolve()) if data else None, overrides=overrides, epochs=epochs)
    except SettingsError as exc:
        raise UsageProblem(str(exc)) from None
    corpus = _load_corpus(settings)
    session = create_session(root, settings.controller)
    announce(session)
    say = functools.partial(typer.echo, err=events_pipe)
    say(f"session {session.id} in {root}")
    say(f"corpus: {corpus.source} (vocabulary {corpus.vocab_size})")
    say("settings:")
    for line in config.describe(settings, width=100):
        say("  " + line)
    _run_training(lambda listeners: _new(settings, session, corpus, listeners), events_pipe, view_args)


def _announce_detached(session) -> None:
    from .launcher import announce_detached

    announce_detached(session)


def _detach(args: list[str], root: Path) -> int:
    """``train --detach``: start the trainer in the background, print where it is and how to watch it."""
    import shlex
    import socket

    from .launcher import DetachError, start_detached
    from .sessions import sessions_root

    try:
        run = start_detached([*args, "--sessions-dir", str(root.resolve())])
    except DetachError as exc:
        typer.echo(f"enas-tui: error: {exc}", err=True)
        return exc.code
    folder = f" --sessions-dir {shlex.quote(str(root.resolve()))}"
    here = "" if root.resolve() == sessions_root(None).resolve() else folder
    # Over ssh the box's default is ~/sessions (a non-interactive login starts in the home folder).
    there = "" if root.resolve() == (Path.home() / "sessions").resolve() else folder
    host = socket.gethostname()
    typer.echo(f"session {run.session_id} running in the background (pid {run.pid})")
    typer.echo(f"folder:   {run.path}")
    typer.echo(f"progress: tail -f {shlex.quote(str(run.output))}")
    typer.echo(f"watch:    enas-tui attach {run.session_id}{here}")
    typer.echo(f"          enas-tui attach {host}:{run.session_id}{there}   (from another machine; "
               f"{host}: this host as you reach it with ssh)")
    typer.echo(f"stop:     enas-tui stop {run.session_id}{here}")
    return 0


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


def _run_training(make_trainer, events_pipe: bool = False, view_args: dict | None = None) -> None:
    """Build the trainer with its listeners, run it with graceful Ctrl-C/SIGTERM, report the outcome."""
    from .headless import HeadlessView
    from .trainer import TrainingFailed

    if events_pipe:  # stdout carries events only; anything printed goes to stderr
        from .launcher import PipeSink

        listeners, view = [PipeSink(os.dup(1))], contextlib.nullcontext()
        os.dup2(2, 1)
    else:
        view = HeadlessView(**(view_args or {}))
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
# The watching commands take a local session id or HOST:ID (ids never contain ':'). Their
# --sessions-dir has no envvar here: for a remote session only a flag given on this command line is
# sent to the host (which has its own $ENAS_TUI_SESSIONS); locally sessions_root() reads the variable.
WATCH_SESSIONS_DIR = typer.Option(None, "--sessions-dir",
                                  help="Sessions folder [env ENAS_TUI_SESSIONS; default ./sessions]; "
                                       "for HOST:ID, the folder on the host.")
REMOTE_CMD = typer.Option(None, "--remote-cmd", metavar="CMD",
                          help="The enas-tui command on the host (default: hosts.toml, else enas-tui).")


def _remote(text: str, remote_cmd: str | None, sessions_dir: Path | None):
    """The endpoint for a HOST:ID argument (a bad target is a usage error)."""
    from .remote.hosts import endpoint
    from .remote.target import TargetError, parse_target

    try:
        target = parse_target(text)
    except TargetError as exc:
        raise UsageProblem(str(exc)) from None
    return endpoint(target, remote_cmd, str(sessions_dir) if sessions_dir else None)


def _offline(text: str, root: Path, remote_cmd: str | None, remote_dir: Path | None):
    """A local session, or a remote one pulled into the cache first (only what is new)."""
    from .remote.target import is_remote
    from .sessions import open_session

    if not is_remote(text):
        return open_session(root, text)
    from .remote.pull import cached_copy

    endpoint = _remote(text, remote_cmd, remote_dir)
    if not endpoint.target.session_id:
        raise UsageProblem(f"name the session: {text}ID")
    typer.echo(f"copying {text} (only what is new since the last copy)...", err=True)
    result = cached_copy(endpoint)
    if result.damage:
        typer.echo(f"enas-tui: warning: {result.damage}; showing the records before it", err=True)
    return result.session


@app.command()
def attach(
    session_id: Optional[str] = typer.Argument(None, metavar="[SESSION | HOST:[ID]]",
                                               help="Default: the newest running session (HOST: on that host)."),
    sessions_dir: Optional[Path] = WATCH_SESSIONS_DIR,
    remote_cmd: Optional[str] = REMOTE_CMD,
) -> None:
    """Open the dashboard on a session's log: catch up, then follow it live (HOST:ID: over ssh)."""
    from .remote.target import is_remote
    from .sessions import newest_running, open_session, sessions_root
    from .tui import run_attach

    if session_id and is_remote(session_id):
        from .remote.attach import attach_remote

        _remote(session_id, remote_cmd, sessions_dir)  # a bad target or hosts.toml: before connecting
        raise typer.Exit(attach_remote(session_id, remote_cmd, sessions_dir))
    root = sessions_root(sessions_dir)
    session = open_session(root, session_id) if session_id else newest_running(root)
    if session is None:
        raise UserError(f"no running session in {root}; name one: enas-tui attach SESSION")
    raise typer.Exit(run_attach(session))


@app.command()
def replay(
    session_id: str = typer.Argument(..., metavar="SESSION | HOST:ID", help="Session id (or a unique prefix)."),
    sessions_dir: Optional[Path] = WATCH_SESSIONS_DIR,
    remote_cmd: Optional[str] = REMOTE_CMD,
) -> None:
    """Open a recorded session with a timeline: play/pause, speeds, step, jump to an epoch, scrub."""
    from .sessions import sessions_root
    from .tui import run_replay

    raise typer.Exit(run_replay(_offline(session_id, sessions_root(sessions_dir), remote_cmd, sessions_dir)))


@app.command()
def compare(
    session_ids: list[str] = typer.Argument(..., metavar="S1 S2 [S3]", help="Two or three sessions (or HOST:ID)."),
    sessions_dir: Optional[Path] = WATCH_SESSIONS_DIR,
    remote_cmd: Optional[str] = REMOTE_CMD,
) -> None:
    """Sessions side by side (e.g. random, unsupervised, supervised) at the same cursor."""
    from .sessions import sessions_root
    from .tui import run_compare

    if not 2 <= len(session_ids) <= 3:
        raise UsageProblem("compare takes two or three sessions")
    root = sessions_root(sessions_dir)
    raise typer.Exit(run_compare([_offline(sid, root, remote_cmd, sessions_dir) for sid in session_ids]))


# -- sessions ----------------------------------------------------------------------------------
@app.command()
def sessions(sessions_dir: Optional[Path] = WATCH_SESSIONS_DIR,
             host: Optional[str] = typer.Option(None, "--host", metavar="HOST",
                                                help="List the sessions on HOST (over ssh) instead."),
             remote_cmd: Optional[str] = REMOTE_CMD,
             as_json: bool = typer.Option(False, "--json", help="One JSON object per session.")) -> None:
    """List sessions: id, controller, status, epoch, best ppl, start time."""
    from .sessions import all_sessions, sessions_root, summarize

    if host is not None:
        from .remote.client import remote_sessions
        from .remote.hosts import endpoint
        from .remote.target import TargetError, parse_host

        try:
            target = parse_host(host)
        except TargetError as exc:
            raise UsageProblem(str(exc)) from None
        where, summaries = remote_sessions(endpoint(target, remote_cmd, str(sessions_dir) if sessions_dir else None))
        where = f"{where} on {target.destination}"
    else:
        root = sessions_root(sessions_dir)
        summaries, where = [summarize(s) for s in all_sessions(root)], str(root)
    if as_json:
        for s in summaries:
            typer.echo(json.dumps(vars(s)))
        return
    if not summaries:
        typer.echo(f"no sessions in {where}")
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


@app.command()
def stop(
    session_id: str = typer.Argument(..., metavar="SESSION | HOST:ID", help="The running session to stop."),
    wait: float = typer.Option(30.0, "--wait", metavar="SECONDS", help="How long to wait for the checkpoint."),
    sessions_dir: Optional[Path] = WATCH_SESSIONS_DIR,
    remote_cmd: Optional[str] = REMOTE_CMD,
) -> None:
    """Ask a running trainer to stop gracefully: it finishes its step, checkpoints and records its end."""
    from .launcher import stop_session
    from .remote.target import is_remote
    from .sessions import open_session, sessions_root

    if wait < 0:
        raise UsageProblem("--wait must be at least 0")
    if is_remote(session_id):
        from .remote.client import remote_stop

        endpoint = _remote(session_id, remote_cmd, sessions_dir)
        if not endpoint.target.session_id:
            raise UsageProblem(f"name the session to stop: enas-tui stop {session_id}ID")
        result, where = remote_stop(endpoint, wait), (f" on {endpoint.target.destination}", " there")
    else:
        result, where = stop_session(open_session(sessions_root(sessions_dir), session_id), wait), ("", "")
    if result.status == "running":
        typer.echo(f"stop requested: session {result.session_id}{where[0]} (pid {result.pid}) is finishing its "
                   f"step; it checkpoints and stops (enas-tui sessions shows when)")
    else:
        typer.echo(f"session {result.session_id} {result.status}{where[0]}; continue it{where[1]} with: "
                   f"enas-tui train --resume {result.session_id}")


@app.command()
def pull(
    session_id: str = typer.Argument(..., metavar="HOST:ID", help="The remote session to copy."),
    to: Optional[Path] = typer.Option(None, "--to", metavar="DIR",
                                      help="Local sessions folder to copy into [default: $ENAS_TUI_SESSIONS or ./sessions]."),
    checkpoints: bool = typer.Option(False, "--checkpoints", help="Copy the checkpoints too (needed for analyze)."),
    bwlimit: Optional[float] = typer.Option(None, "--bwlimit", metavar="KBPS", help="Limit the transfer to KBPS kB/s."),
    sessions_dir: Optional[Path] = WATCH_SESSIONS_DIR,
    remote_cmd: Optional[str] = REMOTE_CMD,
) -> None:
    """Copy a remote session (log, meta, status; --checkpoints) for replay, analyze and report; resumable."""
    from .remote.pull import pull as pull_session
    from .remote.target import is_remote
    from .sessions import sessions_root

    if not is_remote(session_id):
        raise UsageProblem(f"pull copies a remote session: HOST:ID (got {session_id!r})")
    if bwlimit is not None and bwlimit <= 0:
        raise UsageProblem("--bwlimit must be a positive number of kB/s")
    endpoint = _remote(session_id, remote_cmd, sessions_dir)
    if not endpoint.target.session_id:
        raise UsageProblem(f"name the session to pull: enas-tui pull {session_id}ID")
    root = to if to is not None else sessions_root(None)
    result = pull_session(endpoint, root, checkpoints=checkpoints, rate=bwlimit * 1000 if bwlimit else None,
                          progress=_pull_progress() if sys.stderr.isatty() else None)
    new = sum(result.copied.values())
    typer.echo(f"pulled {result.session.id} from {endpoint.target.destination} into {result.session.path}: "
               f"{result.records:,} log records ({result.new_records:,} new), {new / 1e6:.1f} MB copied "
               f"({', '.join(sorted(name for name, n in result.copied.items() if n)) or 'nothing new'})")
    if result.damage:
        raise UserError(f"{result.damage}: the local copy holds the {result.records:,} records before it; "
                        f"the rest was not copied")
    status = result.session.status().get("status")
    if status == "running":
        typer.echo("the session is still running there: pull again later for the rest")
    flag = "" if to is None else f" --sessions-dir {to}"
    typer.echo(f"replay it with: enas-tui replay {result.session.id}{flag}")


def _pull_progress():
    import time

    last = [0.0]

    def show(name: str, done: int, total: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.5 or done >= total:
            last[0] = now
            sys.stderr.write(f"\r{name}: {done / 1e6:.1f}/{total / 1e6:.1f} MB   ")
            if done >= total:
                sys.stderr.write("\n")
            sys.stderr.flush()

    return show


# -- the remote side (run over ssh by the commands above) --------------------------------------
remote_app = typer.Typer(no_args_is_help=True, help="Run on a host over ssh by attach, sessions, stop and pull.")
app.add_typer(remote_app, name="remote", hidden=True)
REMOTE_SESSIONS_DIR = typer.Option(None, "--sessions-dir", help="Sessions folder [env ENAS_TUI_SESSIONS].")


def _host_root(sessions_dir: Optional[str]) -> Path:
    from .sessions import sessions_root

    return sessions_root(os.path.expanduser(sessions_dir) if sessions_dir else None).absolute()


@remote_app.command("hello")
def remote_hello(sessions_dir: Optional[str] = REMOTE_SESSIONS_DIR) -> None:
    """Versions and the sessions folder."""
    from .remote.verbs import verb_hello

    verb_hello(_host_root(sessions_dir))


@remote_app.command("sessions")
def remote_sessions_verb(sessions_dir: Optional[str] = REMOTE_SESSIONS_DIR) -> None:
    """One JSON line per session."""
    from .remote.verbs import verb_sessions

    verb_sessions(_host_root(sessions_dir))


@remote_app.command("stop")
def remote_stop_verb(session_id: str, wait: float = typer.Option(30.0, "--wait"),
                     sessions_dir: Optional[str] = REMOTE_SESSIONS_DIR) -> None:
    """Graceful stop of a running session."""
    from .remote.verbs import verb_stop

    verb_stop(_host_root(sessions_dir), session_id, wait)


@remote_app.command("stream")
def remote_stream_verb(session_id: str = typer.Argument(""), start: int = typer.Option(0, "--from"),
                       thin_over: Optional[int] = typer.Option(None, "--thin-over"),
                       sessions_dir: Optional[str] = REMOTE_SESSIONS_DIR) -> None:
    """The session's records from a record boundary, then live until it ends."""
    from .remote.verbs import verb_stream

    raise typer.Exit(verb_stream(_host_root(sessions_dir), session_id, start, thin_over))


@remote_app.command("pull")
def remote_pull_verb(session_id: str, checkpoints: bool = typer.Option(False, "--checkpoints"),
                     rate: Optional[float] = typer.Option(None, "--rate"),
                     sessions_dir: Optional[str] = REMOTE_SESSIONS_DIR) -> None:
    """The session's files from the offsets the other side has."""
    from .remote.verbs import verb_pull

    raise typer.Exit(verb_pull(_host_root(sessions_dir), session_id, checkpoints, rate))


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
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] != "torch":
            raise
        _fail("this command needs PyTorch, which is not installed here: pip install 'enas-tui[train]' "
              "(attach, replay, compare, sessions, stop and pull work without it)", 1)
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
