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
    """``lead`` and ``command`` on one line if it fits in ``width``, else the command on lines of
    its own, broken between arguments (a shell joins lines ended with `` \\``)."""
    if len(lead) + 1 + len(command) <= width:
        return [f"{lead} {command}"]
    lines, line = [lead], "  "
    for word in shlex.split(command):
        piece = shlex.quote(word)
        if line.strip() and len(line) + 1 + len(piece) + 2 > width:
            lines.append(line + " \\")
            line = "    " + piece
        else:
            line = f"{line} {piece}" if line.strip() else f"  {piece}"
    lines.append(line)
    return lines
