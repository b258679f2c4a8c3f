"""The local side of a remote attach: runs ``enas-tui remote stream`` over ssh and fills the mirror.

A thread reads the stream, checks every frame, appends the records to the mirror's log (mirror.py)
and keeps what only the box can say: the session's status (Session.state there, where the
trainer's pid can be checked), the damage its reader found (at remote offsets, each with the place
in the mirror where it was reported, so the dashboard notes it where a local reader would), and
the architectures of probes a catch-up left out (with their cell shape, computed here, off the
dashboard's thread). When the connection drops (a network blip, a laptop
that slept, sshd restarted on the box) it reconnects with backoff and asks for the records from the
end of the last complete one it has, so no record is lost or written twice; meanwhile
``connection`` says "connection lost, reconnecting (n)" for the dashboard's status bar.

The first connection is checked before the dashboard takes the screen (``wait_ready``): a host
that cannot be reached, refused authentication, a missing or incompatible enas-tui, or no such
session, each ends the attach with one line.
"""

from __future__ import annotations

import os
import select
import subprocess
import tempfile
import threading
import time
from collections import deque

from enas_tui.remote.hosts import Endpoint
from enas_tui.remote.mirror import Mirror
from enas_tui.remote.protocol import (
    TAG_ARCHS, TAG_CONTROL, TAG_RECORD, MessageReader, ProtocolError, check_hello, find_hello,
)
from enas_tui.remote.ssh import RemoteError, classify, no_ssh, ssh_argv
from enas_tui.session_log import HEADER_SIZE, Damage, LogError
from enas_tui.sources import ProbeArchs

BACKOFF_S = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0)  # waits before reconnection attempts 1, 2, ...; then the last
RECONNECT_THIN_OVER = 32 * 1024 * 1024  # a reconnection that missed more than this catches up thinned
STALL_S = 20.0  # no byte (not even a ping, sent every 2 s) for this long: the link is dead
READY_TIMEOUT_S = 60.0


class RemoteStream:
    """One remote session's records flowing into a mirror, across reconnections."""

    def __init__(self, endpoint: Endpoint, mirror: Mirror, backoff: tuple[float, ...] = BACKOFF_S,
                 thin_first: int | None = 0, thin_again: int | None = RECONNECT_THIN_OVER,
                 stall_s: float = STALL_S):
        self.endpoint, self.mirror = endpoint, mirror
        self.backoff, self.thin_first, self.thin_again, self.stall_s = backoff, thin_first, thin_again, stall_s
        self.session_id = endpoint.target.session_id
        self.offset = HEADER_SIZE  # remote offset just past the last complete record received
        self.caught_up = False  # this connection's catch-up has arrived
        self.remote_status: dict | None = None  # the box's verdict: status, reason, trainer_line
        self.sessions_dir: str | None = None  # the sessions folder on the box
        self.damage: list[Damage] = []  # what the box's reader found, at remote offsets, in file order
        self.damage_at: dict[tuple[int, str], int] = {}  # (start, reason) -> mirror size when it was reported
        self.torn_tail: tuple[int, int] | None = None  # the box's, when it last gave its verdict
        self.probe_archs: deque[tuple[int, ProbeArchs]] = deque()  # (mirror size when it came, the probe)
        # the first catch-up's left-out probes, sent after it: folded in ahead of everything else
        self.shape_history: list[ProbeArchs] = []
        self.shape_history_done = False
        self._shapes = False  # between "shapes" and "shapes_done"
        self._from = HEADER_SIZE  # where this connection's stream started (its damage reports replace later ones)
        self.state = "connecting"  # connected | lost | ended | failed | closed
        self.attempts = 0  # failed reconnection attempts since the connection was lost
        self.problem = ""  # why it was lost (one line)
        self.error: RemoteError | LogError | None = None  # why the stream gave up
        self.connections = 0
        self.skipped = 0  # records the catch-ups left out (pull has them)
        self.log: list[tuple[float, str]] = []  # (monotonic time, what happened) for tests and benchmarks
        self._ready = threading.Event()
        self._closing = threading.Event()
        self._proc: subprocess.Popen | None = None
        self._ended = False
        self._thread: threading.Thread | None = None

    # -- the dashboard's view -------------------------------------------------------------------
    @property
    def connection(self) -> str | None:
        """None while connected (or done); else what the status bar says."""
        if self.state != "lost":
            return None
        return f"connection lost, reconnecting ({self.attempts})" + (f": {self.problem}" if self.problem else "")

    @property
    def label(self) -> str:
        return self.endpoint.target.with_session(self.session_id).label()

    # -- lifecycle ------------------------------------------------------------------------------
    def start(self) -> RemoteStream:
        self._thread = threading.Thread(target=self._run, name="remote-stream", daemon=True)
        self._thread.start()
        return self

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Return once the first connection streams; raise its one-line error if it failed."""
        if not self._ready.wait(timeout):
            self.close()
            raise RemoteError(f"{self.endpoint.target.destination} did not answer within {timeout:.0f} s", "timeout")
        if self.error is not None and self.connections == 0:
            raise self.error

    def close(self) -> None:
        """Stop streaming (the remote verb exits when it next writes to the closed connection)."""
        self._closing.set()
        self._kill()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10)
        if self.state not in ("ended", "failed"):
            self.state = "closed"

    def _kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            proc.kill()

    def _note(self, what: str) -> None:
        self.log.append((time.monotonic(), what))

    # -- the thread -----------------------------------------------------------------------------
    def _run(self) -> None:
        try:
            while not self._closing.is_set():
                try:
                    self._connect_once()
                except (RemoteError, LogError) as err:
                    if self._closing.is_set():
                        return
                    if self.connections == 0 or not isinstance(err, RemoteError) or not err.transient:
                        self.error, self.state = err, "failed"
                        self._note("failed")
                        return
                    self._lost(str(err))
                else:
                    if self._ended:
                        self.state = "ended"
                        self._note("ended")
                        return
                    if self._closing.is_set():
                        return
                    self._lost("the stream stopped before the session ended")
                delay = self.backoff[min(self.attempts, len(self.backoff)) - 1]
                if self._closing.wait(delay):
                    return
        finally:
            self._ready.set()

    def _lost(self, why: str) -> None:
        if self.state != "lost":
            self._note("lost")
        self.state, self.problem = "lost", why
        self.attempts += 1
        self.caught_up = False

    def _connect_once(self) -> None:
        thin = self.thin_first if self.connections == 0 else self.thin_again
        args = [self.session_id, "--from", str(self.offset)]
        if thin is not None:  # the first catch-up leaves the cell-shape history for after its first frame
            args += ["--thin-over", str(thin), "--archs", "after" if self.connections == 0 else "inline"]
        stderr = tempfile.TemporaryFile()
        try:
            self._proc = subprocess.Popen(ssh_argv(self.endpoint, "stream", args), stdin=subprocess.DEVNULL,
                                          stdout=subprocess.PIPE, stderr=stderr, start_new_session=True)
        except FileNotFoundError:
            raise no_ssh(self.endpoint) from None
        if self._closing.is_set():
            self._kill()
        try:
            got_hello = self._receive(self._proc)
        finally:
            self._kill()
            code = self._proc.wait()
            self._proc.stdout.close()
        if self._ended or self._closing.is_set():
            return
        stderr.seek(0)
        text = stderr.read().decode("utf-8", "replace")
        stderr.close()
        if code != 0 and (code != -9 or not got_hello):
            raise classify(self.endpoint, code, text, got_hello)
        raise RemoteError("the stream stopped before the session ended", "closed")

    def _receive(self, proc: subprocess.Popen) -> bool:
        """Read the stream to its end; returns whether the hello line arrived."""
        fd = proc.stdout.fileno()
        head, hello, reader = bytearray(), None, MessageReader()
        last_byte = time.monotonic()
        while True:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready:
                if hello is not None and time.monotonic() - last_byte > self.stall_s:
                    return True  # the link is dead though ssh has not noticed: reconnect
                continue
            data = os.read(fd, 1 << 18)
            if not data:
                return hello is not None
            last_byte = time.monotonic()
            if hello is None:
                head += data
                try:
                    found = find_hello(head)
                    if found is None:
                        continue
                    hello, end = found
                    check_hello(hello, self.endpoint.target.destination)
                except ProtocolError as err:
                    raise RemoteError(str(err), "protocol") from None
                data = bytes(head[end:])
            try:
                self._handle(reader.feed(data))
            except ProtocolError as err:
                raise RemoteError(f"{self.endpoint.target.destination}: {err}", "protocol") from None
            if self._ended:
                return True

    def _handle(self, messages) -> None:
        records: list[tuple[int, bytes]] = []
        end = self.offset
        for message in messages:
            if message.tag == TAG_RECORD:
                if message.value < end:
                    raise ProtocolError(f"record at byte {message.value} repeats what arrived (up to {end})")
                records.append((message.value, message.frame))
                end = message.value + len(message.frame)
                continue
            self.mirror.append(records)  # records before any other message are on disk before it acts
            records, self.offset = [], end
            if message.tag == TAG_ARCHS and self._shapes:
                self.shape_history.append(message.probe_archs)
            elif message.tag == TAG_ARCHS:
                self.probe_archs.append((self.mirror.size, message.probe_archs))
            elif message.tag == TAG_CONTROL:
                end = self._control(message.control, end)
            else:
                raise ProtocolError(f"unexpected message {message.tag!r} in a stream")
        self.mirror.append(records)
        self.offset = end

    def _control(self, control: dict, end: int) -> int:
        kind = control["kind"]
        if kind == "start":
            self.session_id = str(control.get("session_id") or self.session_id)
            if isinstance(control.get("meta"), dict) and control["meta"]:
                self.mirror.write_meta(control["meta"])
            self.sessions_dir = str(control.get("sessions_dir") or "") or None
            self._from = int(control.get("start", end))
            self._status(control)
            self.caught_up, self.state, self.attempts, self.problem = False, "connected", 0, ""
            self.connections += 1
            self._note("connected")
            self._ready.set()
        elif kind == "caught_up":
            end = max(end, int(control.get("offset", end)))
            self.skipped += int(control.get("skipped", 0))
            self.caught_up = True
            self._note("caught_up")
        elif kind == "damage":
            self._damage(control.get("spans"))
        elif kind == "shapes":
            self._shapes, self.shape_history = True, []
        elif kind == "shapes_done":
            self._shapes, self.shape_history_done = False, True
        elif kind == "status":
            self._status(control)
        elif kind == "end":
            self._status(control)
            self._ended = True
        elif kind == "error":
            raise RemoteError(f"{self.endpoint.target.destination}: {control.get('message')}", "remote")
        return end  # "ping" and kinds of later versions: nothing to do

    def _damage(self, spans) -> None:
        """The box's damage report: every span from this connection's start, replacing earlier word on them."""
        try:
            found = [Damage(int(d["start"]), int(d["end"]), None if d["skipped"] is None else int(d["skipped"]),
                            str(d["reason"]), bool(d.get("at_end", False))) for d in spans]
        except (KeyError, TypeError, ValueError):
            raise ProtocolError("a damage report is not readable") from None
        for d in found:
            self.damage_at.setdefault((d.start, d.reason), self.mirror.size)
        self.damage = [d for d in self.damage if d.start < self._from] + found

    def _status(self, control: dict) -> None:
        self.remote_status = {"status": str(control.get("status") or "error"), "reason": str(control.get("reason") or ""),
                              "trainer_line": str(control.get("trainer_line") or "")}
        torn = control.get("torn_tail")
        self.torn_tail = (int(torn[0]), int(torn[1])) if isinstance(torn, list) and len(torn) == 2 else None
