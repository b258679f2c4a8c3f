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

from . import config
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
sweep_app = typer.Typer(cls=Group, help="Run the controllers over many seeds and settings on Ray; see how sweeps stand.")
app.add_typer(data_app, name="data")
app.add_typer(arch_app, name="arch")
app.add_typer(sweep_app, name="sweep")

SESSIONS_DIR = typer.Option(None, "--sessions-dir", envvar="ENAS_TUI_SESSIONS", metavar="DIR",
                            help="Sessions folder (default: ./sessions).")
SET = "SECTION.FIELD=VALUE"


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
    for module, name in (("enas_tui.sweep.record", "SweepError"), ("enas_tui.replication", "SavedAnalysisError"),
                         ("enas_tui.data", "DataError"), ("enas_tui.checkpoints", "CheckpointError"),
                         ("enas_tui.retrain.source", "SourceError"), ("enas_tui.trainer", "DeviceError")):
        if module in sys.modules:
            errors.append(getattr(sys.modules[module], name))
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
    session_id: Optional[str] = typer.Option(None, "--session-id",
                                             help="Name the new session folder (default: a time-stamped id)."),
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
    from .sessions import check_new_session_id, create_session, open_session, sessions_root

    root = sessions_root(sessions_dir)
    _check_epochs(epochs)
    if not progress_every > 0:
        raise UsageProblem("--progress-every must be a positive number of seconds")
    if session_id is not None:
        if resume:
            raise UsageProblem("--session-id names a new session; --resume continues an existing one")
        check_new_session_id(root, session_id)  # before the corpus loads: a taken id fails at once
    if resume:
        args = ["--resume", resume] + (["--device", device] if device != "auto" else [])
    else:
        args = _train_args(controller, data, preset, seed, device, overrides)
        if session_id is not None:
            args += ["--session-id", session_id]
    if epochs is not None:
        args += ["--epochs", str(epochs)]
    if detach:
        check = functools.partial(_check_start, root, resume, controller, data, preset, seed, device, overrides,
                                  epochs)
        raise typer.Exit(_detach([*args, "--progress-every", str(progress_every)], root, check))
    if not headless and not events_pipe and sys.stdout.isatty():
        from .tui import run_live

        if resume:
            _search_session(open_session(root, resume))
        raise typer.Exit(run_live(args, root))
    announce = _announce_detached if detached_child else (lambda session: None)
    view_args = {"progress_every": progress_every}
    with StopSignals() as stop:
        if resume:
            session = open_session(root, resume)
            announce(session)
            _run_training(lambda listeners: _resume(session, listeners, epochs, None if device == "auto" else device),
                          stop, events_pipe, view_args)
            return
        settings = _settings(controller, data, preset, seed, device, overrides, epochs)
        corpus = _load_corpus(settings)
        stop.check("before the session was created; nothing to resume")
        session = create_session(root, settings.controller, meta=_session_meta(settings), session_id=session_id)
        announce(session)
        say = functools.partial(typer.echo, err=events_pipe)
        say(f"session {session.id} in {root}")
        say(f"corpus: {corpus.source} (vocabulary {corpus.vocab_size})")
        say("settings:")
        for line in config.describe(settings, width=100):
            say("  " + line)
        _run_training(lambda listeners: _new(settings, session, corpus, listeners), stop, events_pipe, view_args)


def _settings(controller, data, preset, seed, device, overrides, epochs):
    """The run's settings from the flags, checked (a bad value or a missing device: exit 2)."""
    from . import config

    chosen = _pick_preset(preset, data, device)
    try:
        settings = config.resolve(controller, chosen, seed=seed, device=device,
                                  data=str(data.resolve()) if data else None, overrides=overrides, epochs=epochs)
    except SettingsError as exc:
        raise UsageProblem(str(exc)) from None
    _check_device(settings.device)
    return settings


def _announce_detached(session) -> None:
    from .launcher import announce_detached

    announce_detached(session)


def _detach(args: list[str], root: Path, check) -> int:
    """``train --detach``: check the flags here (a bad one fails in the foreground), start the trainer
    in the background, print where it is and how to watch and stop it."""
    import shlex
    import socket

    from .commands import attach_command, stop_command
    from .launcher import DetachError, start_detached

    check()
    with StopSignals() as stop:
        try:
            run = start_detached([*args, "--sessions-dir", str(root.resolve())],
                                 stopping=lambda: stop.signum is not None)
        except DetachError as exc:
            typer.echo(f"enas-tui: error: {exc}", err=True)
            return exc.code if stop.signum is None else stop.exit_code
    from .sessions import Session

    session = Session(run.path)
    host = socket.gethostname()
    typer.echo(f"session {run.session_id} running in the background (pid {run.pid})")
    typer.echo(f"folder:   {run.path}")
    typer.echo(f"progress: tail -f {shlex.quote(str(run.output))}")
    typer.echo(f"watch:    {attach_command(session)}")
    typer.echo(f"          {attach_command(session, host=host)}   (from another machine; "
               f"{host}: this host as you reach it with ssh)")
    typer.echo(f"stop:     {stop_command(session)}")
    return 0


def _check_start(root: Path, resume, controller, data, preset, seed, device, overrides, epochs) -> None:
    """What the trainer would refuse before it has a session, checked before it is detached."""
    from .sessions import open_session

    if resume:
        session = open_session(root, resume)
        if session.live_status() == "running":
            raise UserError(f"session {session.id} is still running (pid {session.status().get('pid', '?')})")
        if device != "auto":
            _check_device(device)
    else:
        _settings(controller, data, preset, seed, device, overrides, epochs)


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
    return ["--controller", controller, *_run_args(seed, device, data, preset, overrides)]


def _run_args(seed, device, data, preset, overrides) -> list[str]:
    """The options train and retrain share, again, for the child the dashboard starts."""
    args = ["--seed", str(seed), "--device", device]
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


def _search_session(session):
    """``session`` if it is a search (``train --resume`` continues only those)."""
    from .sessions import RETRAIN, kind_of

    if kind_of(session) == RETRAIN:
        raise UserError(f"session {session.id} is a retrain; continue it with: enas-tui retrain --resume {session.id}")
    return session


def _resume(session, listeners, epochs, device):
    from .trainer import resume_run

    _search_session(session)
    return _resumed(session, lambda: resume_run(session, _load_corpus, listeners, epochs=epochs, device=device,
                                                command=sys.argv))


def _resumed(session, resume):
    """``resume()``'s trainer or retrainer, with the refusals both share: a session whose trainer
    still runs, a device this machine lacks, a run with no epoch left."""
    from .trainer import DeviceError

    if session.live_status() == "running":  # running only while its trainer process is alive
        pid = session.status().get("pid") if session.status_path.exists() else "?"
        raise UserError(f"session {session.id} is still running (pid {pid})")
    try:
        run = resume()
    except DeviceError as exc:
        raise UsageProblem(f"--device: {exc} (pass --device cpu to resume on the CPU)") from None
    if run.pos.epoch > run.s.train.epochs:
        raise UserError(f"session {session.id} already finished its {run.s.train.epochs} epochs; "
                        f"pass --epochs N to extend it")
    return run


def _run_training(make_trainer, stop: StopSignals, events_pipe: bool = False, view_args: dict | None = None) -> None:
    """Build the trainer with its listeners, run it (stop requests from ``stop``), report the outcome."""
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


# -- retrain -----------------------------------------------------------------------------------
@app.command(cls=Command)
def retrain(
    session_id: Optional[str] = typer.Argument(None, metavar="[SESSION]",
                                               help="Search session whose derived architecture to retrain."),
    arch: Optional[str] = typer.Option(None, "--arch", help="Retrain this cell instead, e.g. "
                                       "tanh,0:relu,1:identity (without SESSION, --data gives the corpus)."),
    epochs: Optional[int] = typer.Option(None, "--epochs", help="Number of epochs (overrides the preset)."),
    preset: Optional[str] = typer.Option(None, "--preset", help=f"{', '.join(PRESETS)} (default: cpu without CUDA)."),
    overrides: list[str] = typer.Option([], "--set", metavar=SET, show_default=False,
                                        help="Override a setting (repeatable)."),
    seed: int = typer.Option(0, "--seed", help="Random seed."),
    device: str = typer.Option("auto", "--device", help="auto, cpu, cuda, cuda:1, ..."),
    data: Optional[Path] = typer.Option(None, "--data", help="PTB-layout folder (default: the search's corpus)."),
    resume: Optional[str] = typer.Option(None, "--resume",
                                         help="Continue retrain session ID from its last checkpoint."),
    sessions_dir: Optional[Path] = SESSIONS_DIR,
    headless: bool = typer.Option(False, "--headless", help="No dashboard: progress bars and epoch lines."),
    events_pipe: bool = typer.Option(False, "--events-pipe", hidden=True,
                                     help="Write events as JSON lines to stdout (used by the dashboard)."),
) -> None:
    """Train a search's derived architecture (or any cell) from scratch, alone; report valid and test ppl."""
    from .retrain.settings import KIND
    from .sessions import create_session, open_session, sessions_root

    root = sessions_root(sessions_dir)
    _check_epochs(epochs)
    if resume and (session_id or arch):
        raise UsageProblem("--resume continues a retrain with its own cell: drop SESSION and --arch")
    if not headless and not events_pipe and sys.stdout.isatty():
        from .tui import run_live

        if resume:
            _retrain_session(open_session(root, resume))
            args = ["--resume", resume]
        else:  # the torch-free checks first: a bad session or cell is one line, not a dashboard
            _retrain_source(root, session_id, arch)
            args = _retrain_args(session_id, arch, preset, seed, device, data, overrides)
        if epochs is not None:
            args += ["--epochs", str(epochs)]
        raise typer.Exit(run_live(args, root, command="retrain"))
    with StopSignals() as stop:
        if resume:
            session = _retrain_session(open_session(root, resume))
            _run_training(lambda listeners: _resume_retrain(session, listeners, epochs,
                                                            None if device == "auto" else device),
                          stop, events_pipe)
            return
        source, cell, search = _retrain_source(root, session_id, arch)
        settings = _retrain_settings(source, cell, preset, seed, device, data, overrides, epochs)
        _check_device(settings.device)
        corpus = _load_corpus(settings)
        if search is not None:
            source.search_ppl = _search_phase_ppl(search, settings, corpus)
        stop.check("before the session was created; nothing to resume")
        session = create_session(root, KIND, meta=_retrain_meta(settings, source))
        say = functools.partial(typer.echo, err=events_pipe)
        origin = (f"session {source.session} (derived at epoch {source.derived_epoch})" if source.derived_epoch
                  else f"session {source.session}" if source.session else "--arch")
        say(f"retrain session {session.id} in {root}")
        say(f"cell: {settings.arch} (from {origin})")
        say(f"corpus: {corpus.source} (vocabulary {corpus.vocab_size})")
        say("settings:")
        for line in config.describe(settings, width=100):
            say("  " + line)
        _run_training(lambda listeners: _new_retrain(settings, session, corpus, listeners, source), stop, events_pipe)


def _retrain_args(session_id, arch, preset, seed, device, data, overrides) -> list[str]:
    """The retrain options again, for the retrainer child the dashboard starts."""
    args = [session_id] if session_id else []
    if arch is not None:
        args += ["--arch", arch]
    return args + _run_args(seed, device, data, preset, overrides)


def _retrain_session(session):
    """``session`` if it is a retrain (``--resume`` continues only those)."""
    from .sessions import RETRAIN, kind_of

    if kind_of(session) != RETRAIN:
        raise UserError(f"session {session.id} is a search; continue it with: enas-tui train --resume {session.id}")
    return session


def _retrain_source(root, session_id, arch):
    """(where the cell comes from, the cell, the search session or None): torch-free checks."""
    from .retrain.source import BadArch, Source, from_session, parse_arch
    from .sessions import open_session

    if session_id is None and arch is None:
        raise UsageProblem("name a search session to retrain its derived architecture, or give a cell with --arch")
    search = open_session(root, session_id) if session_id else None
    try:
        if search is not None:
            return (*from_session(search, arch), search)
        cell = parse_arch(arch)
        return Source(arch=cell.to_text()), cell, None
    except BadArch as exc:
        raise UsageProblem(str(exc)) from None


def _retrain_settings(source, cell, preset, seed, device, data, overrides, epochs):
    from .retrain import settings as retrain_settings

    chosen = _pick_preset(preset, data, device)
    try:
        settings = retrain_settings.resolve(cell, chosen, seed=seed, device=device,
                                            data=str(data.resolve()) if data else source.data, overrides=overrides,
                                            epochs=epochs, source=source.session, num_nodes=source.num_nodes)
    except SettingsError as exc:
        raise UsageProblem(str(exc)) from None
    source.num_nodes = settings.model.num_nodes
    return settings


def _search_phase_ppl(search, settings, corpus):
    from .retrain.trainer import search_phase_ppl
    from .trainer import pick_device

    return search_phase_ppl(search, settings.architecture, corpus, pick_device(settings.device))


def _retrain_meta(settings, source):
    from .retrain.trainer import retrain_meta

    return retrain_meta(settings, source, command=sys.argv)


def _new_retrain(settings, session, corpus, listeners, source):
    from .retrain.trainer import new_retrain

    return new_retrain(settings, session, corpus, listeners, source, command=sys.argv)


def _resume_retrain(session, listeners, epochs, device):
    from .retrain.trainer import resume_retrain

    return _resumed(session, lambda: resume_retrain(session, _load_corpus, listeners, epochs=epochs, device=device,
                                                    command=sys.argv))


# -- dashboard ---------------------------------------------------------------------------------
# The watching commands take a local session id or HOST:ID (ids never contain ':'). Their
# --sessions-dir has no envvar here: for a remote session only a flag given on this command line is
# sent to the host (which has its own $ENAS_TUI_SESSIONS); locally sessions_root() reads the variable.
WATCH_SESSIONS_DIR = typer.Option(None, "--sessions-dir", metavar="DIR",
                                  help="Sessions folder (default: ./sessions). Here: $ENAS_TUI_SESSIONS over "
                                       "the default; for HOST:ID, the folder on the host (default: its own).")
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
        typer.echo(f"enas-tui: warning: {endpoint.target.destination}: {result.damage_summary()} "
                   f"(the dashboard shows where)", err=True)
    return result.session


@app.command(cls=Command)
def attach(
    session_id: Optional[str] = typer.Argument(None, metavar="[SESSION | HOST:[ID]]",
                                               help="Default: the newest running session (HOST: on that host)."),
    sessions_dir: Optional[Path] = WATCH_SESSIONS_DIR,
    remote_cmd: Optional[str] = REMOTE_CMD,
) -> None:
    """Open the dashboard on a session's log: catch up, then follow it live (HOST:ID over ssh)."""
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


@app.command(cls=Command)
def replay(
    session_id: str = typer.Argument(..., metavar="SESSION | HOST:ID", help="Session id (or a unique prefix)."),
    sessions_dir: Optional[Path] = WATCH_SESSIONS_DIR,
    remote_cmd: Optional[str] = REMOTE_CMD,
) -> None:
    """Open a recorded session with a timeline: play/pause, speeds, step, jump to an epoch, scrub."""
    from .sessions import sessions_root
    from .tui import run_replay

    raise typer.Exit(run_replay(_offline(session_id, sessions_root(sessions_dir), remote_cmd, sessions_dir)))


@app.command(cls=Command)
def compare(
    session_ids: list[str] = typer.Argument(..., metavar="S1 S2 [S3]", help="Two or three sessions (or HOST:ID)."),
    sessions_dir: Optional[Path] = WATCH_SESSIONS_DIR,
    remote_cmd: Optional[str] = REMOTE_CMD,
) -> None:
    """Sessions side by side (e.g. random, unsupervised, supervised) at the same cursor."""
    from .sessions import RETRAIN, kind_of, sessions_root
    from .tui import run_compare

    if not 2 <= len(session_ids) <= 3:
        raise UsageProblem("compare takes two or three sessions")
    root = sessions_root(sessions_dir)
    sessions = [_offline(sid, root, remote_cmd, sessions_dir) for sid in session_ids]
    for session in sessions:
        if kind_of(session) == RETRAIN:  # compare sets controllers side by side; a retrain has none
            raise UsageProblem(f"session {session.id} is a retrain; compare shows searches side by side "
                               f"(report SEARCH... RETRAIN... tabulates retrains)")
    raise typer.Exit(run_compare(sessions))


@app.command(cls=Command)
def watch(
    name: str = typer.Argument(..., metavar="NAME", help="A sweep (enas-tui sweep status lists them)."),
    sessions_dir: Optional[Path] = SESSIONS_DIR,
) -> None:
    """One live table of a sweep's runs and its Table 1 over seeds; Enter opens a run's dashboard."""
    from .sessions import sessions_root
    from .sweep.record import load_record
    from .tui import run_watch

    root = sessions_root(sessions_dir)
    load_record(root, name)  # an unknown or damaged sweep: one line, before any screen
    if not sys.stdout.isatty():
        raise UserError(f"watch is a dashboard: run it in a terminal (enas-tui sweep status {name} prints the runs)")
    raise typer.Exit(run_watch(root, name))


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
def sessions(sessions_dir: Optional[Path] = WATCH_SESSIONS_DIR,
             host: Optional[str] = typer.Option(None, "--host", metavar="HOST",
                                                help="List the sessions on HOST (over ssh) instead."),
             remote_cmd: Optional[str] = REMOTE_CMD,
             as_json: bool = typer.Option(False, "--json", help="One JSON object per session.")) -> None:
    """List sessions: id, kind (search or retrain), controller, status, epoch, valid and test ppl, start."""
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
        summaries, where = [summarize(s) for s in all_sessions(root)], str(root)  # each on its own, never raising
    if as_json:
        for s in summaries:
            typer.echo(json.dumps(vars(s)))
        return
    if not summaries:
        typer.echo(f"no sessions in {where}")
        return
    rows = [("id", "kind", "controller", "status", "epoch", "valid ppl", "test ppl", "started", "")]
    for s in summaries:
        best = "-" if s.best_ppl is None else f"{s.best_ppl:.2f}"
        test = "-" if s.test_ppl is None else f"{s.test_ppl:.2f}"
        notes = f"damaged: {s.damaged}" if s.damaged else (s.reason if s.status == "damaged" else "")
        rows.append((s.id, s.kind, s.controller, s.status, f"{s.epoch}/{s.epochs}", best, test, _when(s.started),
                     notes))
    if any(row[-1] for row in rows[1:]):
        rows[0] = (*rows[0][:-1], "notes")
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:  # plain columns, never truncated: ids are there to be copied
        cells = [cell.rjust(w) if i in (4, 5, 6) else cell.ljust(w) for i, (cell, w) in enumerate(zip(row, widths))]
        typer.echo("  ".join(cells).rstrip())


def _when(started: float | None) -> str:
    if started is None:
        return "-"
    try:
        return dt.datetime.fromtimestamp(started).strftime("%Y-%m-%d %H:%M:%S")
    except (OverflowError, OSError, ValueError):
        return "-"


@app.command(cls=Command)
def stop(
    session_id: str = typer.Argument(..., metavar="SESSION | HOST:ID", help="The running session to stop."),
    wait: float = typer.Option(30.0, "--wait", metavar="SECONDS", help="How long to wait for the checkpoint."),
    sessions_dir: Optional[Path] = WATCH_SESSIONS_DIR,
    remote_cmd: Optional[str] = REMOTE_CMD,
) -> None:
    """Ask a running trainer to stop gracefully: it finishes its step, checkpoints and records its end."""
    from pathlib import PurePosixPath

    from .commands import resume_command
    from .launcher import stop_session
    from .remote.target import is_remote
    from .sessions import RETRAIN, Session, open_session, sessions_root

    if wait < 0:
        raise UsageProblem("--wait must be at least 0")
    if is_remote(session_id):
        from .remote.client import remote_stop

        endpoint = _remote(session_id, remote_cmd, sessions_dir)
        if not endpoint.target.session_id:
            raise UsageProblem(f"name the session to stop: enas-tui stop {session_id}ID")
        result, folder = remote_stop(endpoint, wait)
        where, there = f" on {endpoint.target.destination}", " there"
        session = Session(PurePosixPath(folder) / result.session_id) if folder else None
        verb = "retrain" if result.kind == RETRAIN else "train"
        resume = (resume_command(session, always_folder=True, kind=result.kind) if session
                  else f"enas-tui {verb} --resume {result.session_id}")
    else:
        session = open_session(sessions_root(sessions_dir), session_id)
        result, where, there = stop_session(session, wait), "", ""
        resume = resume_command(session)
    if result.status == "running":
        typer.echo(f"stop requested: session {result.session_id}{where} (pid {result.pid}) is finishing its "
                   f"step; it checkpoints and stops (enas-tui sessions shows when)")
    else:
        typer.echo(f"session {result.session_id} {result.status}{where}; continue it{there} with: {resume}")


@app.command(cls=Command)
def pull(
    session_id: str = typer.Argument(..., metavar="HOST:ID", help="The remote session to copy."),
    to: Optional[Path] = typer.Option(None, "--to", metavar="DIR",
                                      help="Local sessions folder to copy into (default: $ENAS_TUI_SESSIONS, else ./sessions)."),
    checkpoints: bool = typer.Option(False, "--checkpoints", help="Copy the checkpoints too (needed for analyze)."),
    bwlimit: Optional[float] = typer.Option(None, "--bwlimit", metavar="KBPS", help="Limit the transfer to KBPS kB/s."),
    sessions_dir: Optional[Path] = WATCH_SESSIONS_DIR,
    remote_cmd: Optional[str] = REMOTE_CMD,
) -> None:
    """Copy a remote session (log, meta, status; --checkpoints) for replay, analyze and report; resumable."""
    from .commands import replay_command
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
    if result.session.state().status == "running":
        typer.echo("the session is still running there: pull again later for the rest")
    typer.echo(f"replay it with: {replay_command(result.session)}")
    if result.damage:
        raise UserError(f"{endpoint.target.destination}: {result.damage_summary()}: the copy keeps every "
                        f"record a reader there finds, and the damage where it is")


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
remote_app = typer.Typer(cls=Group, no_args_is_help=True, help="Run on a host over ssh by attach, sessions, stop and pull.")
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
                       archs: str = typer.Option("inline", "--archs"),
                       sessions_dir: Optional[str] = REMOTE_SESSIONS_DIR) -> None:
    """The session's records from a record boundary, then live until it ends."""
    from .remote.verbs import verb_stream

    if archs not in ("inline", "after"):
        raise UsageProblem("--archs must be inline or after")
    raise typer.Exit(verb_stream(_host_root(sessions_dir), session_id, start, thin_over, archs=archs))


@remote_app.command("pull")
def remote_pull_verb(session_id: str, checkpoints: bool = typer.Option(False, "--checkpoints"),
                     rate: Optional[float] = typer.Option(None, "--rate"),
                     sessions_dir: Optional[str] = REMOTE_SESSIONS_DIR) -> None:
    """The session's files from the offsets the other side has."""
    from .remote.verbs import verb_pull

    raise typer.Exit(verb_pull(_host_root(sessions_dir), session_id, checkpoints, rate))
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
    n: int = typer.Option(100, "--n", help="Probe architectures of each run's final analysis (the paper: 100)."),
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
                          cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run, retries=retries, n=n)
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
    from .replication import format_summary
    from .sessions import sessions_root
    from .sweep.overview import SweepOverview
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
    view = SweepOverview(root, name)
    view.refresh()
    states = [row.state for row in view.rows]
    if as_json:
        for state in states:
            typer.echo(json.dumps(state_dict(state)))
        return
    spec = view.record.spec
    typer.echo(f"sweep {name}: {len(states)} runs ({counts(states)}); preset {spec.preset}, "
               f"epochs {spec.epochs or 'from the preset'}, data {spec.data or '(generated corpus)'}, "
               f"final analyses of {spec.n} architectures")
    for line in run_lines(states):
        typer.echo(line)
    for group in view.groups:  # the aggregates watch shows, from the final analyses saved so far
        if group.summary is not None:
            typer.echo(f"\nsweep {name}{', ' + group.label if group.label else ''}: "
                       f"{group.analysed} of {group.runs} runs analysed")
            typer.echo(format_summary(group.summary, group.claims), nl=False)


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
    device: str = typer.Option("cpu", "--device", help="cpu, cuda, cuda:1, auto, ..."),
    save: Optional[Path] = typer.Option(None, "--save", metavar="FILE", help="Also write the analysis with the "
                                        "figures' data to FILE as JSON (a sweep keeps one per run; report reads it)."),
    sessions_dir: Optional[Path] = SESSIONS_DIR,
) -> None:
    """Table 1 (every reading), collapse indices and the figures' data for one checkpoint of a session."""
    from .analysis import AnalysisError, analyze_session, format_table, save_analysis, to_csv
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
                                     probe_state=probe_state, device=device, progress=progress)
    except AnalysisError as exc:
        raise UsageProblem(str(exc)) from None
    if save is not None:
        save_analysis(result, save)
    if fmt == "json":
        typer.echo(json.dumps(result.to_dict(), allow_nan=False))
    elif fmt == "csv":
        typer.echo(to_csv(result, readings), nl=False)
    else:
        typer.echo(format_table(result, readings))


@app.command(cls=Command)
def report(
    session_ids: Optional[list[str]] = typer.Argument(None, metavar="SESSION... | SWEEP",
                                                      help="One session, several to compare (retrain sessions "
                                                      "among them add their curves and table), or a sweep's name."),
    sweep: Optional[str] = typer.Option(None, "--sweep", metavar="NAME", help="Report on a sweep: Table 1 over "
                                        "seeds with the claims, per group of settings, and the figures per controller."),
    out: Optional[Path] = typer.Option(None, "--out", help="Report folder (default: reports/<first session or sweep>)."),
    n: Optional[int] = typer.Option(None, "--n", help="Probe architectures per session (default 100; a sweep's "
                                    "runs use the sweep's --n)."),
    seed: Optional[int] = typer.Option(None, "--seed", help="Seed of the probe samples (default 0; a sweep's runs "
                                       "use their own seeds, as paper does)."),
    activations: Optional[str] = ACTIVATIONS_READING,
    ged: Optional[str] = GED_READING,
    probe_mode: Optional[str] = PROBE_MODE,
    probe_state: Optional[str] = PROBE_STATE,
    sessions_dir: Optional[Path] = SESSIONS_DIR,
) -> None:
    """Figures 1-4 and Table 1 (PNG and SVG), report.md, table1.json and summary.json for sessions.

    Several runs of the same controllers (seeds) add Table 1 over seeds and the paper's claims;
    retrain sessions add the retrain curves, the final table and the retrained cells' claim; a
    sweep gets one Table 1 over seeds per group of its varied settings and the figures per controller.
    """
    from .analysis import AnalysisError, analyze_session
    from .report import write_report
    from .retrain.outcome import OutcomeError, RetrainOutcome
    from .sessions import RETRAIN, kind_of, open_session, sessions_root
    from .sweep.record import record_path

    readings = _readings(activations, ged)
    root = sessions_root(sessions_dir)
    session_ids = list(session_ids or [])
    if sweep is None and len(session_ids) == 1 and record_path(root, session_ids[0]).exists() \
            and not (root / session_ids[0]).is_dir():
        sweep, session_ids = session_ids[0], []  # a sweep's name where no session has it
    if sweep is not None:
        if session_ids:
            raise UsageProblem("report --sweep NAME takes no sessions (the sweep's runs are its sessions)")
        if n is not None or seed is not None or probe_mode is not None or probe_state is not None:
            raise UsageProblem("a sweep's runs are analysed as its trials analysed them (the sweep's --n, each "
                               "run's seed, its probe settings): --n, --seed, --probe-mode and --probe-state do not apply")
        _sweep_report(root, sweep, out, readings)
        return
    if not session_ids:
        raise UsageProblem("report needs a session (or several), or --sweep NAME")
    opened = [open_session(root, sid) for sid in session_ids]
    sessions = [s for s in opened if kind_of(s) != RETRAIN]
    if not sessions:
        raise UsageProblem("a report needs at least one search session (retrain sessions add their curves to it)")
    try:
        retrains = [RetrainOutcome.from_session(s) for s in opened if kind_of(s) == RETRAIN]
    except OutcomeError as exc:
        raise UserError(str(exc)) from None
    try:
        with progress_bars() as progress:
            analyses = [analyze_session(s, n=100 if n is None else n, seed=seed or 0, probe_mode=probe_mode,
                                        probe_state=probe_state, progress=_prefixed(progress, s.id)) for s in sessions]
    except AnalysisError as exc:
        raise UsageProblem(str(exc)) from None
    path = write_report(analyses, out or Path("reports") / sessions[0].id, readings=readings, retrains=retrains)
    typer.echo(f"report written: {path}")


def _sweep_report(root: Path, name: str, out: Path | None, readings: dict[str, str]) -> None:
    """report --sweep: the finished runs' final analyses (saved by the trials; missing ones made
    now), Table 1 over seeds and the claims printed per group, the report folder written."""
    from .replication import format_summary
    from .report import write_sweep_report
    from .sweep.status import counts
    from .sweep_results import sweep_analyses

    with progress_bars() as progress:
        results = sweep_analyses(root, name, progress=None if progress is None else lambda sid: _prefixed(progress, sid))
    if not results.groups:
        states = [*results.left_out]
        raise UserError(f"sweep {name} has no finished run yet ({counts(states)}); see: enas-tui sweep status {name}")
    left_out = [f"{s.run.session}: {s.word}" + (f" ({s.error})" if s.error else "") for s in results.left_out]
    path, summaries = write_sweep_report(name, [(g.label, g.analyses) for g in results.groups],
                                         out or Path("reports") / name, readings=readings, left_out=left_out)
    for group, summary in zip(results.groups, summaries):
        typer.echo(f"sweep {name}" + (f", {group.label}" if group.label else "") + ":")
        typer.echo(format_summary(summary), nl=False)
    if results.analysed_now:
        typer.echo(f"analysed now (their trials had not): {', '.join(results.analysed_now)}")
    if left_out:
        typer.echo(f"left out (not finished): {len(left_out)} run(s); see report.md")
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
    retrain_epochs: Optional[int] = typer.Option(None, "--retrain-epochs", metavar="N",
                                                 help="Epochs of each retrain (default: the retrain preset's)."),
    retrain_overrides: list[str] = typer.Option([], "--retrain-set", metavar=SET, show_default=False,
                                                help="Override a retrain setting (repeatable; the model.* "
                                                     "settings of --set apply to the retrains too)."),
    no_retrain: bool = typer.Option(False, "--no-retrain", help="Skip the last step: retraining each search's "
                                    "derived cell from scratch."),
    out: Optional[Path] = typer.Option(None, "--out", help="Report folder (default: <sessions-dir>/paper-<time>)."),
    ray: bool = typer.Option(False, "--ray", help="Run the searches as a sweep on Ray (here, or on --address): "
                             "as many at once as cores or GPUs allow; the same command again resumes it."),
    address: Optional[str] = typer.Option(None, "--address", envvar="RAY_ADDRESS",
                                          help="With --ray: the Ray cluster to join (default: start Ray here)."),
    name: Optional[str] = typer.Option(None, "--name", help="With --ray: the sweep's name (default: paper-<hash>)."),
    cpus_per_run: float = typer.Option(1.0, "--cpus-per-run", help="With --ray: CPU cores reserved per run."),
    gpus_per_run: float = typer.Option(0.0, "--gpus-per-run", help="With --ray: GPUs reserved per run."),
    sessions_dir: Optional[Path] = SESSIONS_DIR,
) -> None:
    """Train random, unsupervised and supervised on the same budget (for each seed), compare them as the
    paper does, retrain each one's derived cell from scratch, and check the paper's claims."""
    from .headless import HeadlessView
    from .paper import PaperInterrupted, format_paper_table, run_paper
    from .sessions import sessions_root
    from .trainer import TrainingFailed

    _check_epochs(epochs)
    if retrain_epochs is not None and retrain_epochs < 1:
        raise UsageProblem("--retrain-epochs must be at least 1")
    if no_retrain and (retrain_epochs is not None or retrain_overrides):
        raise UsageProblem("--no-retrain skips the retrains: drop --retrain-epochs and --retrain-set")
    if seeds < 1:
        raise UsageProblem("--seeds must be at least 1")
    if n < 3:
        raise UsageProblem("--n must be at least 3 (Spearman needs pairs)")
    readings = _readings(activations, ged)
    searches = None
    if ray:
        searches = _ray_searches(sessions_root(sessions_dir), preset, data, epochs, overrides, device, n, address,
                                 name, cpus_per_run, gpus_per_run)
        chosen = searches.preset
    else:
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
                           on_trainer=trainers.append, progress=progress_bars, retrain=not no_retrain,
                           retrain_epochs=retrain_epochs, retrain_overrides=retrain_overrides, searches=searches)
    except SettingsError as exc:
        raise UsageProblem(str(exc)) from None
    except KeyboardInterrupt:  # a second Ctrl-C during --ray: the trainers were already asked to stop
        typer.echo("interrupted; the runs are writing their checkpoints; run the same command again to resume",
                   err=True)
        raise typer.Exit(130) from None
    except TrainingFailed as exc:
        raise UserError(str(exc)) from None
    except PaperInterrupted as exc:
        typer.echo(f"enas-tui: {exc}", err=True)
        raise typer.Exit(130)
    finally:
        signal.signal(signal.SIGINT, previous)
    typer.echo(format_paper_table(result))  # ends with the report's path


def _ray_searches(root: Path, preset: str | None, data: Path | None, epochs: int | None, overrides: list[str],
                  device: str, n: int, address: str | None, name: str | None, cpus_per_run: float,
                  gpus_per_run: float):
    """paper --ray's runner (sweep_results.RaySearches), its flags checked before anything starts.

    The devices are the workers': a GPU run is asked for with --gpus-per-run, not checked here.
    """
    from .sweep import RAY_INSTALL_HINT
    from .sweep.grid import GridError
    from .sweep_results import RaySearches

    if data is not None and not data.is_dir():
        raise UsageProblem(f"--data {data}: no such folder")
    searches = RaySearches(root, preset or ("paper" if gpus_per_run else "cpu"),
                           data=str(data.resolve()) if data else None, epochs=epochs, overrides=list(overrides),
                           device=device, n=n, address=address, name=name, cpus_per_run=cpus_per_run,
                           gpus_per_run=gpus_per_run, echo=typer.echo)
    try:
        searches.build([0])  # the flags (a bad --name, resources)
    except GridError as exc:
        raise UsageProblem(str(exc)) from None
    try:
        import ray.tune  # noqa: F401
    except ImportError:
        raise UserError(RAY_INSTALL_HINT) from None
    return searches


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
