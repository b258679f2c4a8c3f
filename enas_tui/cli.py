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
    if "enas_tui.retrain.source" in sys.modules:
        errors.append(sys.modules["enas_tui.retrain.source"].SourceError)
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
    from .sessions import create_session, open_session, sessions_root

    root = sessions_root(sessions_dir)
    _check_epochs(epochs)
    if not progress_every > 0:
        raise UsageProblem("--progress-every must be a positive number of seconds")
    if resume:
        args = ["--resume", resume] + (["--device", device] if device != "auto" else [])
    else:
        args = _train_args(controller, data, preset, seed, device, overrides)
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
        session = create_session(root, settings.controller, meta=_session_meta(settings))
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


def _search_session(session):
    """``session`` if it is a search (``train --resume`` continues only those)."""
    from .sessions import RETRAIN, kind_of

    if kind_of(session) == RETRAIN:
        raise UserError(f"session {session.id} is a retrain; continue it with: enas-tui retrain --resume {session.id}")
    return session


def _resume(session, listeners, epochs, device):
    from .trainer import DeviceError, resume_run

    _search_session(session)
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
    args += ["--seed", str(seed), "--device", device]
    if data is not None:
        args += ["--data", str(data.resolve())]
    if preset is not None:
        args += ["--preset", preset]
    for item in overrides:
        args += ["--set", item]
    return args


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
    from .trainer import DeviceError

    if session.live_status() == "running":  # running only while its trainer process is alive
        pid = session.status().get("pid") if session.status_path.exists() else "?"
        raise UserError(f"session {session.id} is still running (pid {pid})")
    try:
        retrainer = resume_retrain(session, _load_corpus, listeners, epochs=epochs, device=device, command=sys.argv)
    except DeviceError as exc:
        raise UsageProblem(f"--device: {exc} (pass --device cpu to resume on the CPU)") from None
    if retrainer.pos.epoch > retrainer.s.train.epochs:
        raise UserError(f"session {session.id} already finished its {retrainer.s.train.epochs} epochs; "
                        f"pass --epochs N to extend it")
    return retrainer


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
    from .sessions import Session, open_session, sessions_root

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
        resume = resume_command(session, always_folder=True) if session else f"enas-tui train --resume {result.session_id}"
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
    session_ids: list[str] = typer.Argument(..., metavar="SESSION...", help="One session, or several to compare "
                                            "(retrain sessions among them add their curves and table)."),
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

    Several runs of the same controllers (seeds) add Table 1 over seeds and the paper's claims;
    retrain sessions add the retrain curves, the final table and the retrained cells' claim.
    """
    from .analysis import AnalysisError, analyze_session
    from .report import write_report
    from .retrain.outcome import OutcomeError, RetrainOutcome
    from .sessions import RETRAIN, kind_of, open_session, sessions_root

    readings = _readings(activations, ged)
    root = sessions_root(sessions_dir)
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
            analyses = [analyze_session(s, n=n, seed=seed, probe_mode=probe_mode, probe_state=probe_state,
                                        progress=_prefixed(progress, s.id)) for s in sessions]
    except AnalysisError as exc:
        raise UsageProblem(str(exc)) from None
    path = write_report(analyses, out or Path("reports") / sessions[0].id, readings=readings, retrains=retrains)
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
                           retrain_epochs=retrain_epochs, retrain_overrides=retrain_overrides)
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
