"""A real OpenSSH server on loopback, for the remote tests and benchmarks/remote.py.

``start_sshd(folder)`` generates host and client keys with ssh-keygen, writes a minimal server
config (key login only, no PAM) and a client config passed with ``ssh -F``, and starts
``/usr/sbin/sshd -D -e -f CONFIG`` on a free port of 127.0.0.1. The client config names the server
``box`` (the authorised key, connections multiplexed with ControlMaster) and ``box-wrong-key`` (a
key the server does not know), with the server's host key pinned. Nothing outside the folder is touched, except /run/sshd, which sshd
needs when it runs as root.
"""

from __future__ import annotations

import getpass
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

SSHD = Path("/usr/sbin/sshd")
REPO = Path(__file__).resolve().parents[1]


class SshUnavailable(Exception):
    """sshd (or ssh-keygen) is not installed or would not start here: why, for pytest.skip."""


@dataclass
class SshServer:
    folder: Path
    port: int
    process: subprocess.Popen
    multiplex: bool = True

    @property
    def client_config(self) -> Path:
        return self.folder / "ssh_config"

    @property
    def ssh(self) -> str:
        """The ssh command for ENAS_TUI_SSH."""
        return f"ssh -F {shlex.quote(str(self.client_config))}"

    @property
    def remote_cmd(self) -> str:
        """This checkout's enas-tui with this interpreter, as the remote shell should run it."""
        return f"env PYTHONPATH={shlex.quote(str(REPO))} {shlex.quote(sys.executable)} -m enas_tui"

    def env(self, **extra: str) -> dict[str, str]:
        """An environment in which enas-tui reaches this server as ``box`` with ``remote_cmd``."""
        hosts = self.folder / "hosts.toml"
        env = {**os.environ, "ENAS_TUI_SSH": self.ssh, "ENAS_TUI_HOSTS": str(hosts),
               "XDG_CACHE_HOME": str(self.folder / "cache"), "PYTHONPATH": str(REPO)}
        env.pop("SSH_AUTH_SOCK", None)
        env.update(extra)
        return env

    def write_hosts(self, sessions_dir: Path | None = None, command: str | None = None) -> Path:
        path = self.folder / "hosts.toml"
        lines = ['[hosts."box"]', f"command = {_toml(command or self.remote_cmd)}"]
        if sessions_dir is not None:
            lines.append(f"sessions_dir = {_toml(str(sessions_dir))}")
        path.write_text("\n".join(lines) + "\n")
        return path

    def connection_pids(self) -> list[int]:
        """The sshd processes serving connections (the listener's children)."""
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == self.process.pid:
                found.append(int(stat.parent.name))
        return found

    def kill_connections(self) -> int:
        """SIGKILL every sshd child serving a connection (the network drops); returns how many."""
        pids = self.connection_pids()
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        return len(pids)

    def restart(self, timeout: float = 10.0) -> None:
        """Start sshd again on the same port (after ``stop``: a restart on the box)."""
        self.stop()
        started = _try_start(self.folder, self.port, timeout, self.multiplex)
        if not isinstance(started, SshServer):
            raise SshUnavailable(f"sshd did not restart: {started}")
        self.process = started.process

    def stop(self, connections: bool = False) -> None:
        """Stop the listener; with ``connections``, also the sshd children serving connections."""
        subprocess.run(["ssh", "-F", str(self.client_config), "-O", "exit", "box"], capture_output=True,
                       timeout=10)  # the multiplexing master, if one runs
        serving = self.connection_pids() if connections else []
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        for pid in serving:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def _toml(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _keygen(path: Path) -> None:
    try:
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", path.name, "-f", str(path)],
                       check=True, capture_output=True, timeout=30)
    except FileNotFoundError:
        raise SshUnavailable("ssh-keygen is not installed") from None
    except subprocess.CalledProcessError as err:
        raise SshUnavailable(f"ssh-keygen failed: {err.stderr.decode().strip()}") from None


def start_sshd(folder: Path, timeout: float = 10.0, multiplex: bool = True) -> SshServer:
    """Start sshd on a free loopback port; SshUnavailable (with the reason) where it cannot run.

    ``multiplex``: the client config's ``box`` shares one connection (ControlMaster) between calls.
    """
    if not SSHD.exists():
        raise SshUnavailable(f"{SSHD} is not installed (apt-get install openssh-server)")
    try:
        subprocess.run(["ssh", "-V"], capture_output=True, timeout=10)
    except FileNotFoundError:
        raise SshUnavailable("the ssh client is not installed") from None
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("host_key", "client_key", "wrong_key"):
        _keygen(folder / name)
    (folder / "authorized_keys").write_text((folder / "client_key.pub").read_text())
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)
    last_error = ""
    for _ in range(3):  # another process may take the free port first
        port = _free_port()
        server = _try_start(folder, port, timeout, multiplex)
        if isinstance(server, SshServer):
            return server
        last_error = server
    raise SshUnavailable(f"sshd did not start: {last_error}")


def _server_config(folder: Path, port: int) -> None:
    lines = [
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {folder / 'host_key'}",
        f"AuthorizedKeysFile {folder / 'authorized_keys'}", f"PidFile {folder / 'sshd.pid'}",
        "StrictModes no", "UsePAM no", "PasswordAuthentication no", "KbdInteractiveAuthentication no",
        "PermitRootLogin prohibit-password", "LogLevel ERROR", "MaxStartups 50",
        # OpenSSH 9.8+ refuses a source for a while after failed logins and killed sessions, which
        # these tests cause on purpose; older servers do not know the option.
        "PerSourcePenalties no",
    ]
    path = folder / "sshd_config"
    path.write_text("\n".join(lines) + "\n")
    check = subprocess.run([str(SSHD), "-t", "-f", str(path)], capture_output=True, text=True, timeout=30)
    if "PerSourcePenalties" in check.stderr:
        path.write_text("\n".join(lines[:-1]) + "\n")


def _try_start(folder: Path, port: int, timeout: float, multiplex: bool = True) -> SshServer | str:
    _server_config(folder, port)
    host_pub = (folder / "host_key.pub").read_text().split()
    (folder / "known_hosts").write_text(f"[127.0.0.1]:{port} {host_pub[0]} {host_pub[1]}\n")
    user = getpass.getuser()
    common = ["  HostName 127.0.0.1", f"  Port {port}", f"  User {user}", "  IdentitiesOnly yes",
              "  IdentityAgent none", f"  UserKnownHostsFile {folder / 'known_hosts'}",
              "  StrictHostKeyChecking yes", "  LogLevel ERROR"]
    # "box" multiplexes its connections (ControlMaster), as many users' configs do; the master exits
    # when its connection is killed, or in stop().
    (folder / "ssh_config").write_text("\n".join([
        "Host box", f"  IdentityFile {folder / 'client_key'}",
        *(["  ControlMaster auto", f"  ControlPath {folder / 'cm-%C'}", "  ControlPersist 30"] if multiplex
          else ["  ControlMaster no"]), *common, "",
        "Host box-wrong-key", f"  IdentityFile {folder / 'wrong_key'}", "  ControlMaster no", *common, "",
    ]) + "\n")
    log = open(folder / "sshd.log", "ab")
    process = subprocess.Popen([str(SSHD), "-D", "-e", "-f", str(folder / "sshd_config")],
                               stdin=subprocess.DEVNULL, stdout=log, stderr=log)
    log.close()
    server = SshServer(folder, port, process, multiplex)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            lines = (folder / "sshd.log").read_text(errors="replace").strip().splitlines()
            return lines[-1] if lines else f"exit status {process.returncode}"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                if s.recv(4).startswith(b"SSH-"):
                    return server
        except OSError:
            time.sleep(0.05)
    server.stop()
    return f"no answer on port {port} within {timeout:.0f} s"
