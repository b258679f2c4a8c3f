"""The commands enas-tui prints for the user to copy: resume a session, attach to it.

A printed command must work when pasted into the same shell: it names the sessions folder when
the session is not in the default one (``--sessions-dir``, given as a flag or by
$ENAS_TUI_SESSIONS), and quotes anything a shell would split (a path with a space).
"""

from __future__ import annotations

import os
import shlex
from pathlib import Path

from enas_tui.sessions import DEFAULT_SESSIONS_DIR, Session


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


def resume_command(session: Session) -> str:
    """``enas-tui train --resume ID [--sessions-dir DIR]``, quoted for a POSIX shell."""
    return shlex.join(["enas-tui", "train", "--resume", session.id, *_folder_args(session)])


def attach_command(session: Session) -> str:
    """``enas-tui attach ID [--sessions-dir DIR]``, quoted for a POSIX shell."""
    return shlex.join(["enas-tui", "attach", session.id, *_folder_args(session)])


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
