"""Remote session targets: ``gpu-box:ID``, ``user@host:ID``, ``ssh://user@host:port/ID``, ``gpu-box:``.

A target names a host as the user's ssh would (an alias from ~/.ssh/config, a host name or an
address, with an optional user and port) and a session on it; an empty id means the newest running
session there. Local session ids never contain ':' (sessions.new_session_id), so a ':' is what makes
an argument remote; ``ssh://`` is the URL form for a port, as git and rsync accept it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit


class TargetError(ValueError):
    """A remote target that cannot be parsed; one line for the user."""


# What ssh accepts as a destination: no spaces, no shell metacharacters, not an option.
_HOST = re.compile(r"^[A-Za-z0-9_.%\[\]:-]+$")
_USER = re.compile(r"^[A-Za-z0-9_.-][A-Za-z0-9_.@-]*$")
_SESSION = re.compile(r"^[A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class RemoteTarget:
    """A host reachable with ssh and a session id on it ('' = the newest running one)."""

    host: str
    session_id: str = ""
    user: str | None = None
    port: int | None = None

    @property
    def destination(self) -> str:
        """The destination argument for ssh: ``[user@]host``."""
        return f"{self.user}@{self.host}" if self.user else self.host

    @property
    def host_key(self) -> str:
        """How the host is named in hosts.toml and in cache folders: the host as the user wrote it."""
        return self.host

    def label(self) -> str:
        """The target as a user would type it again (for messages)."""
        if self.port is not None:
            return f"ssh://{self.destination}:{self.port}/{self.session_id}"
        return f"{self.destination}:{self.session_id}"

    def with_session(self, session_id: str) -> RemoteTarget:
        return RemoteTarget(self.host, session_id, self.user, self.port)


def is_remote(text: str) -> bool:
    """True for a remote target, False for a local session id (which never contains ':')."""
    return ":" in text


def parse_target(text: str) -> RemoteTarget:
    """Parse ``[user@]host:[ID]`` or ``ssh://[user@]host[:port]/[ID]``; TargetError if malformed."""
    if text.startswith("ssh://"):
        return _parse_url(text)
    host_part, sep, session_id = text.rpartition(":")
    if not sep or not host_part:
        raise TargetError(f"{text!r} is not a remote session: use HOST:ID, USER@HOST:ID or ssh://USER@HOST:PORT/ID")
    user, _, host = host_part.rpartition("@")
    return _checked(text, host, session_id, user or None, None)


def parse_host(text: str) -> RemoteTarget:
    """A host alone (``sessions --host``): ``[user@]host``, ``ssh://[user@]host[:port]`` or with a ':'."""
    if text.startswith("ssh://"):
        return _parse_url(text if text.count("/") >= 3 else text + "/")
    if text.endswith(":"):
        text = text[:-1]
    user, _, host = text.rpartition("@")
    return _checked(text, host, "", user or None, None)


def _parse_url(text: str) -> RemoteTarget:
    try:
        url = urlsplit(text)
        port = url.port
    except ValueError as err:
        raise TargetError(f"{text!r}: {err}") from None
    path = unquote(url.path)
    if url.query or url.fragment or path.count("/") > 1:
        raise TargetError(f"{text!r}: expected ssh://[USER@]HOST[:PORT]/[ID]")
    return _checked(text, url.hostname or "", path.lstrip("/"), unquote(url.username) if url.username else None, port)


def _checked(text: str, host: str, session_id: str, user: str | None, port: int | None) -> RemoteTarget:
    if host.startswith("[") and host.endswith("]"):  # [::1]:ID, as in URLs
        host = host[1:-1]
    if not host or host.startswith("-") or not _HOST.match(host):
        raise TargetError(f"{text!r}: {host!r} is not a host name")
    if user is not None and not _USER.match(user):
        raise TargetError(f"{text!r}: {user!r} is not a user name")
    if not _SESSION.match(session_id):
        raise TargetError(f"{text!r}: {session_id!r} is not a session id")
    return RemoteTarget(host=host, session_id=session_id, user=user, port=port)
