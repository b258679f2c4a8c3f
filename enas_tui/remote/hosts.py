"""Per-host settings for remote watching: ``~/.config/enas-tui/hosts.toml``.

On a GPU box enas-tui usually lives in a virtual or conda environment that a non-interactive ssh
login does not put on PATH, so (like rsync's ``--rsync-path``) the remote command can be named once
per host instead of on every call::

    ssh = "ssh"                                   # optional: the ssh command for every host

    [hosts."gpu-box"]                              # the host as you type it: gpu-box:ID
    command = "/opt/venvs/nas/bin/enas-tui"        # default: enas-tui
    sessions_dir = "/scratch/me/sessions"          # default: the remote's $ENAS_TUI_SESSIONS or ./sessions
    ssh = "ssh -F ~/.ssh/cluster_config"           # optional, for this host only

Precedence: a flag (``--remote-cmd``, ``--sessions-dir``) over the host's entry over the default;
``$ENAS_TUI_SSH`` over the file's ``ssh``. ``$ENAS_TUI_HOSTS`` names another file.
"""

from __future__ import annotations

import os
import shlex
import tomllib
from dataclasses import dataclass
from pathlib import Path

from enas_tui.remote.target import RemoteTarget

ENV_HOSTS = "ENAS_TUI_HOSTS"
ENV_SSH = "ENAS_TUI_SSH"
DEFAULT_COMMAND = "enas-tui"
HOST_KEYS = {"command": "the enas-tui command on the host", "sessions_dir": "the sessions folder on the host",
             "ssh": "the ssh command for this host"}


class HostsError(ValueError):
    """A bad hosts.toml (syntax, unknown key, wrong type); one line naming the file and key."""


@dataclass(frozen=True)
class HostSettings:
    """What hosts.toml says about one host (None: not set)."""

    command: str | None = None
    sessions_dir: str | None = None
    ssh: str | None = None


@dataclass(frozen=True)
class Endpoint:
    """Everything needed to run enas-tui on a host: how to reach it and what to run there."""

    target: RemoteTarget
    ssh: tuple[str, ...]  # the ssh command (program and its own options), before ours
    command: str  # the remote enas-tui command line, as the remote shell reads it
    sessions_dir: str | None  # None: the remote's own default
    command_from: str  # where ``command`` came from, for the "not found" message

    def with_session(self, session_id: str) -> Endpoint:
        return Endpoint(self.target.with_session(session_id), self.ssh, self.command, self.sessions_dir,
                        self.command_from)


def hosts_path() -> Path:
    """$ENAS_TUI_HOSTS, else $XDG_CONFIG_HOME/enas-tui/hosts.toml (default ~/.config)."""
    if os.environ.get(ENV_HOSTS):
        return Path(os.environ[ENV_HOSTS]).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "enas-tui" / "hosts.toml"


def load_hosts(path: Path | None = None) -> tuple[str | None, dict[str, HostSettings]]:
    """(the file's top-level ``ssh``, settings per host); a missing file is an empty one."""
    path = path or hosts_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, {}
    except (OSError, UnicodeDecodeError) as err:
        raise HostsError(f"{path}: cannot read ({err})") from None
    except tomllib.TOMLDecodeError as err:
        raise HostsError(f"{path}: not valid TOML ({err})") from None
    unknown = set(data) - {"ssh", "hosts"}
    if unknown:
        raise HostsError(f"{path}: unknown key {sorted(unknown)[0]!r} (known: ssh, [hosts.NAME])")
    ssh = _string(data, "ssh", path, "top level")
    hosts = data.get("hosts", {})
    if not isinstance(hosts, dict):
        raise HostsError(f"{path}: 'hosts' must be a table of [hosts.\"NAME\"] sections")
    return ssh, {name: _host(name, entry, path) for name, entry in hosts.items()}


def _host(name: str, entry: object, path: Path) -> HostSettings:
    where = f'[hosts."{name}"]'
    if not isinstance(entry, dict):
        raise HostsError(f"{path}: {where} must be a table")
    unknown = set(entry) - set(HOST_KEYS)
    if unknown:
        raise HostsError(f"{path}: unknown key {sorted(unknown)[0]!r} in {where} (known: {', '.join(HOST_KEYS)})")
    return HostSettings(**{key: _string(entry, key, path, where) for key in HOST_KEYS})


def _string(table: dict, key: str, path: Path, where: str) -> str | None:
    value = table.get(key)
    if value is not None and (not isinstance(value, str) or not value.strip()):
        raise HostsError(f"{path}: {key!r} in {where} must be a non-empty string")
    return value


def endpoint(target: RemoteTarget, remote_cmd: str | None = None, sessions_dir: str | os.PathLike | None = None,
             path: Path | None = None) -> Endpoint:
    """How to run enas-tui for ``target``: flags over hosts.toml over the defaults."""
    path = path or hosts_path()
    file_ssh, hosts = load_hosts(path)
    entry = hosts.get(target.host_key) or hosts.get(target.destination) or HostSettings()
    ssh_text = os.environ.get(ENV_SSH) or entry.ssh or file_ssh or "ssh"
    try:
        ssh = tuple(os.path.expanduser(word) for word in shlex.split(ssh_text))
    except ValueError as err:
        raise HostsError(f"the ssh command {ssh_text!r} cannot be parsed ({err})") from None
    if not ssh:
        raise HostsError(f"the ssh command {ssh_text!r} is empty")
    if remote_cmd:
        command, source = remote_cmd, "--remote-cmd"
    elif entry.command:
        command, source = entry.command, f'command in [hosts."{target.host_key}"] of {path}'
    else:
        command, source = DEFAULT_COMMAND, "default"
    remote_dir = str(sessions_dir) if sessions_dir is not None else entry.sessions_dir
    return Endpoint(target, ssh, command, remote_dir, source)
