"""The dashboard's entry points, called by the CLI: live training, attach, replay, compare.

Importing this package is cheap and never imports torch (nor Textual: each function imports the
app it runs). Each returns the process exit code: 0 for a normal end, 1 for a failed or crashed
run, the trainer's own code (e.g. 2 for a bad flag) when the trainer could not start.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from enas_tui.commands import attach_command, resume_command
from enas_tui.sessions import Session

# numpy's BLAS runs the dashboard's small matrix work (a probe set's PCA) on one thread: a pool of
# threads spinning for a 100x100 SVD took 80-370 ms instead of 3 ms on a busy 2-core machine.
# Set before numpy is first imported (the apps import it); an explicit setting is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")


def run_live(train_args: list[str], sessions_dir: str | os.PathLike | None = None, command: str = "train") -> int:
    """Start ``enas-tui COMMAND --headless --events-pipe TRAIN_ARGS`` as a child and show it live.

    ``command`` is ``train`` (a search) or ``retrain``; ``train_args`` are its own options (no
    --headless / --events-pipe);
    ``--sessions-dir`` is added from ``sessions_dir`` unless present. On quit the user either stops
    the training (graceful: checkpoint and end record) or leaves it running; either way the
    command to continue (resume or attach) is printed.
    """
    from enas_tui.sources import TrainerSource
    from enas_tui.tui.app import LiveApp

    source = TrainerSource(sessions_dir).start(list(train_args), command=command)
    app = LiveApp(source)
    try:
        code = app.run()
    finally:
        source.close()
    session = source.session
    if app.outcome == "start-failed":
        _say(f"enas-tui: error: the trainer did not start: {app.message or source.start_error()}")
        return code if isinstance(code, int) else 1
    if app.outcome in ("detached", "running") and source.process is not None and source.process.alive:
        source.detach()
        if session is not None:
            _say(f"training continues in the background (session {session.id}); "
                 f"watch it with: {attach_command(session)}")
        return 0
    if app.outcome in ("stopped", "stopping") and session is not None:
        _say(f"stopped; continue with: {resume_command(session)}")
        return 0
    status = app.state.run_status
    if status in ("crashed", "failed"):
        _say(f"enas-tui: error: training {status}: {app.state.run_message}")
        return 1
    return 0 if code is None else int(code)


def run_attach(session: Session, source=None, notice: str | None = None) -> int:
    """Follow ``session``'s log (catch up, then live) until the user quits; the trainer runs on.

    ``source``: a follower of the session other than the local one (remote/follower.py). A run
    picked in the sweep overview (``o``) replaces it, until the user quits.
    """
    from enas_tui.tui.app import AttachApp

    app = AttachApp(session, source=source, notice=notice)
    code = app.run()
    root = session.path.parent
    while app.switch_to is not None:  # the overview lists the sweep's runs in this machine's folder
        with opened_run(root, app.switch_to) as (session, source, notice):
            app = AttachApp(session, source=source, notice=notice)
            code = app.run()
    return 0 if code is None else int(code)


@contextlib.contextmanager
def opened_run(root: Path, choice) -> Iterator[tuple[Session, object | None, str | None]]:
    """(session, source, notice) for a run picked in a sweep's overview (``OpenRun``).

    A run still going on another host is followed over ssh (``HOST:ID``, its sessions folder the
    same path there: shared storage), as ``attach HOST:ID`` would, since a shared file system may
    show its log late; when ssh fails, the dashboard reads the log in the shared folder and says
    why. Any other run is read from the shared folder.
    """
    session = Session(Path(root) / choice.session)
    if choice.host is None:
        yield session, None, choice.notice
        return
    from enas_tui.remote.follower import RemoteFollower
    from enas_tui.remote.hosts import HostsError, endpoint
    from enas_tui.remote.mirror import Mirror
    from enas_tui.remote.pump import READY_TIMEOUT_S, RemoteStream
    from enas_tui.remote.ssh import RemoteError
    from enas_tui.remote.target import parse_target

    target = parse_target(f"{choice.host}:{choice.session}")
    stream = None
    try:
        stream = RemoteStream(endpoint(target, None, str(Path(root))), Mirror.temporary(target.label()))
        stream.start().wait_ready(READY_TIMEOUT_S)
    except (RemoteError, HostsError) as exc:
        if stream is not None:
            stream.close()
            stream.mirror.remove()
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        yield session, None, (f"{choice.session} runs on {choice.host}, not reachable over ssh ({reason}): "
                              f"reading its log through the shared sessions folder")
        return
    try:
        yield stream.mirror.session, RemoteFollower(stream), choice.notice
    finally:
        stream.close()
        stream.mirror.remove()


def run_replay(session: Session) -> int:
    """Open ``session`` with a timeline (play, speeds, step, jump to an epoch, scrub); a run picked
    in its sweep's overview opens in ``attach``."""
    from enas_tui.sources import SourceError
    from enas_tui.tui.app import ReplayApp

    try:
        app = ReplayApp(session)
    except SourceError as err:
        _say(f"enas-tui: error: {err}")
        return 1
    code = app.run()
    if app.switch_to is not None:
        with opened_run(session.path.parent, app.switch_to) as (picked, source, notice):
            return run_attach(picked, source=source, notice=notice)
    return 0 if code is None else int(code)


def run_watch(root: Path, name: str) -> int:
    """``enas-tui watch NAME``: the sweep's overview; Enter opens a run's dashboard, and quitting
    that dashboard comes back to the overview (``q`` there quits). A bad NAME raises SweepError."""
    from enas_tui.sweep.overview import SweepOverview
    from enas_tui.tui.app import AttachApp
    from enas_tui.tui.sweep_overview import WatchApp

    overview = SweepOverview(root, name)
    overview.refresh()
    back = f"sweep {name}: q returns to its overview"
    while True:
        app = WatchApp(overview)
        app.run()
        choice = app.choice
        while choice is not None:  # a run, then another picked from its dashboard's overview (o)
            with opened_run(root, choice) as (session, source, notice):
                notice = back if notice is None else f"{notice}; {back}"
                dashboard = AttachApp(session, source=source, notice=notice)
                dashboard.run()
            choice = dashboard.switch_to
        if app.choice is None:
            return 0


def run_compare(sessions: Sequence[Session]) -> int:
    """Show 2 or 3 sessions side by side at the same epoch."""
    from enas_tui.sources import SourceError
    from enas_tui.tui.compare import CompareApp, CompareError

    try:
        app = CompareApp(list(sessions))
    except (SourceError, CompareError) as err:
        _say(f"enas-tui: error: {err}")
        return 1 if isinstance(err, SourceError) else 2
    code = app.run()
    return 0 if code is None else int(code)


DEMO_NOTE = ("demo: a synthetic session made by enas-tui itself (no training, no data; none of its numbers "
             "are measurements), in a temporary folder deleted on quit. A real run: enas-tui train")


def run_demo(controller: str = "supervised", compare: bool = False) -> int:
    """The dashboard on a synthetic session (or three, side by side), written to a temporary folder."""
    from enas_tui.tui.app import DemoApp
    from enas_tui.tui.compare import CompareApp
    from enas_tui.tui.synthetic import demo_run, write_synthetic_session

    with tempfile.TemporaryDirectory(prefix="enas-tui-demo-") as tmp:
        if compare:
            sessions = [write_synthetic_session(Path(tmp), demo_run(c)) for c in ("random", "unsupervised", "supervised")]
            app = CompareApp(sessions, notice=DEMO_NOTE)
        else:
            app = DemoApp(write_synthetic_session(Path(tmp), demo_run(controller)))
        code = app.run()
    return 0 if code is None else int(code)


def _say(line: str) -> None:
    print(line, file=sys.stderr if line.startswith("enas-tui: error") else sys.stdout, flush=True)


__all__ = ["run_attach", "run_compare", "run_demo", "run_live", "run_replay", "run_watch"]
