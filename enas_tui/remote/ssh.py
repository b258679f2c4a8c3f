"""Running enas-tui on a host with the system's own ``ssh`` client, and saying why it failed.

The ssh client is run as a subprocess, never re-implemented, so everything in the user's
~/.ssh/config works unchanged (ProxyJump through a login node, ControlMaster, the agent,
certificates, ports, users), and nothing listens anywhere. The options added to every call:

- ``-T``: no terminal on the remote side (the output is a byte stream);
- ``BatchMode=yes``: a password or passphrase prompt becomes an immediate error instead of a hang
  behind the full-screen dashboard;
- ``ServerAliveInterval=5``, ``ServerAliveCountMax=3``: a dead link is noticed within ~15 s;
- ``ConnectTimeout=10``: an unreachable host fails in 10 s, not the TCP default of minutes.

Failures become one line that says what to do (``classify``), checked before the dashboard
takes the screen.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass

from enas_tui.remote.hosts import Endpoint, hosts_path
from enas_tui.remote.protocol import ProtocolError, check_hello, find_hello

SSH_OPTIONS = ("-T", "-o", "BatchMode=yes", "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
               "-o", "ConnectTimeout=10")
VERB_TIMEOUT_S = 60.0


class RemoteError(Exception):
    """A remote operation that failed; ``str()`` is one line for the user.

    ``kind``: unreachable, auth, hostkey, closed, missing, old, protocol, remote (enas-tui on the
    host reported an error, e.g. no such session), ssh (anything else ssh said), timeout.
    """

    def __init__(self, message: str, kind: str):
        super().__init__(message)
        self.kind = kind

    @property
    def transient(self) -> bool:
        """Worth retrying after a connection that worked: the network or the host may come back."""
        return self.kind in ("unreachable", "auth", "closed", "ssh", "timeout", "hostkey")


def remote_words(endpoint: Endpoint, verb: str, args: Sequence[str] = ()) -> str:
    """The command line the remote shell runs: the configured command, then quoted words."""
    words = ["remote", verb]
    if endpoint.sessions_dir is not None:
        words += ["--sessions-dir", endpoint.sessions_dir]
    words += list(args)
    return f"{endpoint.command} {' '.join(shlex.quote(w) for w in words)}"


def ssh_argv(endpoint: Endpoint, verb: str, args: Sequence[str] = ()) -> list[str]:
    """The whole ssh command for one remote verb."""
    argv = [*endpoint.ssh, *SSH_OPTIONS]
    if endpoint.target.port is not None:
        argv += ["-p", str(endpoint.target.port)]
    return [*argv, "--", endpoint.target.destination, remote_words(endpoint, verb, args)]


@dataclass
class VerbResult:
    """A text verb's output after its hello line."""

    hello: dict
    lines: list[str]


def run_verb(endpoint: Endpoint, verb: str, args: Sequence[str] = (), timeout: float = VERB_TIMEOUT_S) -> VerbResult:
    """Run a text verb (hello, sessions, stop) to its end; RemoteError with one line if it fails."""
    argv = ssh_argv(endpoint, verb, args)
    try:
        done = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)
    except FileNotFoundError:
        raise no_ssh(endpoint) from None
    except subprocess.TimeoutExpired:
        raise RemoteError(f"{endpoint.target.destination} did not answer within {timeout:.0f} s", "timeout") from None
    stderr = done.stderr.decode("utf-8", "replace")
    try:
        found = find_hello(done.stdout)
    except ProtocolError as err:
        raise RemoteError(f"{endpoint.target.destination}: {err}", "protocol") from None
    if done.returncode != 0 or found is None:
        raise classify(endpoint, done.returncode, stderr, got_hello=found is not None)
    hello, end = found
    try:
        check_hello(hello, endpoint.target.destination)
    except ProtocolError as err:
        raise RemoteError(str(err), "protocol") from None
    text = done.stdout[end:].decode("utf-8", "replace")
    return VerbResult(hello, [line for line in text.splitlines() if line.strip()])


def no_ssh(endpoint: Endpoint) -> RemoteError:
    return RemoteError(f"the ssh command {endpoint.ssh[0]!r} was not found: install the OpenSSH client, "
                       f"or name it with $ENAS_TUI_SSH", "ssh")


# -- what went wrong --------------------------------------------------------------------------------
_ENAS_ERROR = "enas-tui: error: "
_SSH_PATTERNS: tuple[tuple[re.Pattern, str, str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), kind, advice) for pattern, kind, advice in (
        (r"could not resolve hostname|name or service not known|nodename nor servname|"
         r"temporary failure in name resolution", "unreachable",
         "its name does not resolve: check the host name, or its Host entry in ~/.ssh/config"),
        (r"connection refused", "unreachable", "connection refused: is sshd running there, on that port?"),
        (r"connection timed out|operation timed out|timed out during banner", "unreachable",
         "the connection timed out: is the host up and reachable from here (VPN, ProxyJump)?"),
        (r"no route to host|network is unreachable", "unreachable", "no route to the host from this network"),
        (r"permission denied \(|too many authentication failures|no supported authentication",
         "auth", "authentication refused. enas-tui runs ssh without prompts (BatchMode): load your key with "
                 "ssh-add (or use a key without a passphrase), and check that `ssh {host} true` works without "
                 "asking anything"),
        (r"host key verification failed|remote host identification has changed", "hostkey",
         "its host key is unknown or has changed: run `ssh {host} true` once to check and accept it"),
        (r"connection closed by|connection reset by|broken pipe|kex_exchange_identification|"
         r"closed by remote host|connection to .* closed", "closed", "the connection was closed"),
    ))


def classify(endpoint: Endpoint, returncode: int, stderr: str, got_hello: bool = False) -> RemoteError:
    """One line for a failed ssh call, from its exit status and what ssh and the remote printed."""
    host = endpoint.target.destination
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    text = "\n".join(lines)
    ours = [line for line in lines if line.startswith(_ENAS_ERROR)]
    if ours:  # enas-tui ran there and said what was wrong (no such session, ...)
        return RemoteError(f"{host}: {ours[-1][len(_ENAS_ERROR):]}", "remote")
    if returncode == 255 or (not got_hello and _ssh_said(text)):
        for pattern, kind, advice in _SSH_PATTERNS:
            if pattern.search(text):
                return RemoteError(f"cannot reach {host}: {advice.format(host=host)}"
                                   if kind == "unreachable" else f"{host}: {advice.format(host=host)}", kind)
        last = lines[-1] if lines else f"ssh exited with status {returncode}"
        return RemoteError(f"ssh to {host} failed: {last}", "ssh")
    if returncode in (126, 127) or re.search(r"command not found|: not found|no such file or directory", text, re.I):
        return missing_command(endpoint)
    if re.search(r"no such command ['\"]?remote", text, re.I):
        return RemoteError(f"the enas-tui on {host} is too old to be watched remotely (it has no `remote` "
                           f"command): install this version ({_version()}) there", "old")
    if not got_hello:
        detail = lines[-1] if lines else f"exit status {returncode}, no output"
        return RemoteError(f"{host}: `{endpoint.command}` did not answer as enas-tui does ({detail})", "protocol")
    last = lines[-1] if lines else f"exit status {returncode}"
    return RemoteError(f"{host}: {last}", "remote")


def _ssh_said(text: str) -> bool:
    return any(pattern.search(text) for pattern, _, _ in _SSH_PATTERNS)


def missing_command(endpoint: Endpoint) -> RemoteError:
    host, key = endpoint.target.destination, endpoint.target.host_key
    tried = f"`{endpoint.command}`" + ("" if endpoint.command_from == "default" else f" from {endpoint.command_from}")
    return RemoteError(
        f"enas-tui was not found on {host} (tried {tried}; a non-interactive ssh login may not have your "
        f"environment's PATH): give its path with --remote-cmd /path/to/venv/bin/enas-tui, or once in "
        f"{hosts_path()}: [hosts.\"{key}\"] command = \"/path/to/venv/bin/enas-tui\"", "missing")


def _version() -> str:
    from enas_tui import __version__

    return __version__
