"""The dashboard's entry points, called by the CLI: live training, attach, replay, compare.

Importing this package is cheap and never imports torch (nor Textual: each function imports the
app it runs). Each returns the process exit code: 0 for a normal end, 1 for a failed or crashed
run, the trainer's own code (e.g. 2 for a bad flag) when the trainer could not start.
"""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Sequence
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


def run_attach(session: Session, source=None) -> int:
    """Follow ``session``'s log (catch up, then live) until the user quits; the trainer runs on.

    ``source``: a follower of the session other than the local one (remote/follower.py).
    """
    from enas_tui.tui.app import AttachApp

    code = AttachApp(session, source=source).run()
    return 0 if code is None else int(code)


def run_replay(session: Session) -> int:
    """Open ``session`` with a timeline (play, speeds, step, jump to an epoch, scrub)."""
    from enas_tui.sources import SourceError
    from enas_tui.tui.app import ReplayApp

    try:
        app = ReplayApp(session)
    except SourceError as err:
        _say(f"enas-tui: error: {err}")
        return 1
    code = app.run()
    return 0 if code is None else int(code)


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


__all__ = ["run_attach", "run_compare", "run_demo", "run_live", "run_replay"]
