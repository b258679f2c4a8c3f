"""The commands enas-tui prints for the user to copy: resume a session, attach to it, stop it,
replay it.

A printed command must work when pasted into the same shell: it names the sessions folder when
the session is not in the default one (``--sessions-dir``, given as a flag or by
$ENAS_TUI_SESSIONS), and quotes anything a shell would split (a path with a space). A command for
another machine names the session as ``HOST:ID``; the folder is then the one on the host, named
unless it is where enas-tui looks over ssh by default (``~/sessions``: a non-interactive login
starts in the home folder).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from enas_tui.sessions import DEFAULT_SESSIONS_DIR, RETRAIN, Session, kind_of


def _folder_args(session: Session) -> list[str]:
    """``--sessions-dir DIR`` unless the session is in ./sessions (where every command looks first)."""
    folder = session.path.parent
    try:
        default = folder.resolve() == Path(DEFAULT_SESSIONS_DIR).resolve()
    except OSError:
        default = False
    if default and not os.environ.get("ENAS_TUI_SESSIONS"):
        return []
    return ["--sessions-dir", str(folder)]


def _remote_folder_args(session: Session) -> list[str]:
    """``--sessions-dir DIR`` for a command run on another machine over ssh, unless the folder is
    ~/sessions and this shell has no $ENAS_TUI_SESSIONS (so neither, likely, has an ssh login)."""
    folder = session.path.parent
    try:
        default = folder.resolve() == (Path.home() / DEFAULT_SESSIONS_DIR).resolve()
    except OSError:
        default = False
    if default and not os.environ.get("ENAS_TUI_SESSIONS"):
        return []
    return ["--sessions-dir", str(folder)]


def _session_command(verb: list[str], session: Session, host: str | None) -> str:
    if host is None:
        return shlex.join(["enas-tui", *verb, session.id, *_folder_args(session)])
    return shlex.join(["enas-tui", *verb, f"{host}:{session.id}", *_remote_folder_args(session)])


def resume_command(session: Session, always_folder: bool = False) -> str:
    """``enas-tui train --resume ID [--sessions-dir DIR]`` (``retrain`` for a retrain session),
    quoted for a POSIX shell.

    ``always_folder``: name the folder even where it is the default (a command to run on another
    machine, whose working folder is not known here).
    """
    command = "retrain" if kind_of(session) == RETRAIN else "train"
    folder = ["--sessions-dir", str(session.path.parent)] if always_folder else _folder_args(session)
    return shlex.join(["enas-tui", command, "--resume", session.id, *folder])


def attach_command(session: Session, host: str | None = None) -> str:
    """``enas-tui attach ID [--sessions-dir DIR]``; with ``host``, ``enas-tui attach HOST:ID ...``
    to watch it from another machine."""
    return _session_command(["attach"], session, host)


def stop_command(session: Session, host: str | None = None) -> str:
    """``enas-tui stop ID [--sessions-dir DIR]`` (``HOST:ID`` with ``host``)."""
    return _session_command(["stop"], session, host)


def replay_command(session: Session) -> str:
    """``enas-tui replay ID [--sessions-dir DIR]``."""
    return _session_command(["replay"], session, None)


def wrap_command(lead: str, command: str, width: int) -> list[str]:
    """``lead`` and ``command`` on as few lines of at most ``width`` as the arguments allow, broken
    between arguments with a trailing `` \\`` (a shell joins such lines); an argument longer than
    a line is never split."""
    if len(lead) + 1 + len(command) <= width:
        return [f"{lead} {command}"]
    lines, line = [], lead
    for piece in (shlex.quote(word) for word in shlex.split(command)):
        if line != lead and len(line) + 1 + len(piece) + 2 > width:  # room for " \\"
            lines.append(line + " \\")
            line = "    " + piece
        else:
            line = f"{line} {piece}"
    lines.append(line)
    return lines
