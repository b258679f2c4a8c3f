"""The bytes between a remote verb (``enas-tui remote ...`` on the box) and the local side, over ssh.

Every verb first writes one *hello* line, a JSON object with the protocol and format versions::

    {"enas_tui_remote": 1, "enas_tui": "0.1.0", "log_format": 1, "schema": 1, "host": "gpu-box", ...}

so the local side can refuse a remote it cannot understand with a clear message, and can skip any
text a login script printed before it (a frequent reason ssh commands "hang" or garble). Text verbs
(``sessions``, ``stop``) then write JSON lines. Binary verbs (``stream``, ``pull``) write messages::

    offset  size  field
    0       1     tag: b"R" log record, b"C" control, b"D" file data, b"A" a probe's architectures
    1       8     value, unsigned little-endian: R and A the record's byte offset in the remote log,
                  D the chunk's offset in its file, C 0
    9       ...   a frame exactly as in the session log (session_log.py): length, CRC-32 of the
                  length, payload, CRC-32 of the payload

An R message's frame is the record's bytes copied verbatim from the remote log, so the CRC the
trainer computed when it wrote the record is checked on the laptop: the framing is verified end to
end, and the local mirror of the log (mirror.py) is written from the same bytes. The box checks
each record's CRCs before it sends it (damage is reported, never sent), so a frame that fails here
was damaged on the way. C payloads are JSON objects with a ``kind``; D payloads are raw file bytes;
A payloads are a probe record that a catch-up leaves out, reduced to what the cell-shape history
needs (``{"seq", "t", "epoch", "step", "archs"}``, zlib-compressed JSON): a local reader turns such
probes into ``sources.ProbeArchs`` too.

No torch, no Textual: both ends of this run on machines that may lack them.
"""

from __future__ import annotations

import json
import os
import socket
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from enas_tui import __version__, cell_shape
from enas_tui.events import SCHEMA_VERSION
from enas_tui.session_log import FORMAT_VERSION, FRAME_OVERHEAD, Record, encode_frame, parse_frame
from enas_tui.sources import ProbeArchs

PROTOCOL_VERSION = 1
HELLO_KEY = "enas_tui_remote"
HELLO_SEARCH_LIMIT = 64 * 1024  # bytes of login-script chatter skipped before the hello line

TAG_RECORD, TAG_CONTROL, TAG_DATA, TAG_ARCHS = b"R", b"C", b"D", b"A"
_HEAD = struct.Struct("<cQ")
HEAD_SIZE = _HEAD.size  # 9
FRAME_TAIL_SIZE = 4  # the payload's CRC after it
FRAME_HEAD_SIZE = FRAME_OVERHEAD - FRAME_TAIL_SIZE  # length and its CRC before it


class ProtocolError(Exception):
    """The remote sent bytes that are not this protocol (or a damaged record); one line."""


class Disconnected(Exception):
    """The reader went away (the ssh connection closed): the remote verb should just exit."""


# -- hello ------------------------------------------------------------------------------------------
def hello(**extra: Any) -> dict[str, Any]:
    """This side's versions, as the first line of every verb's output."""
    return {HELLO_KEY: PROTOCOL_VERSION, "enas_tui": __version__, "log_format": FORMAT_VERSION,
            "schema": SCHEMA_VERSION, "host": socket.gethostname(), **extra}


def hello_line(**extra: Any) -> bytes:
    return (json.dumps(hello(**extra), separators=(",", ":")) + "\n").encode()


def find_hello(buf: bytes | bytearray) -> tuple[dict[str, Any], int] | None:
    """(the hello object, the offset just past its line) if ``buf`` holds the hello line, else None.

    Lines before it (a login script's greeting) are skipped; ProtocolError when more than
    HELLO_SEARCH_LIMIT bytes arrived without one (not an enas-tui talking).
    """
    marker = b'{"' + HELLO_KEY.encode() + b'"'
    start = 0
    while True:
        end = buf.find(b"\n", start)
        if end < 0:
            break
        line = bytes(buf[start:end]).strip()
        if line.startswith(marker):
            try:
                data = json.loads(line)
            except ValueError:
                raise ProtocolError("the remote's hello line is not valid JSON") from None
            return data, end + 1
        start = end + 1
    if len(buf) > HELLO_SEARCH_LIMIT:
        first = bytes(buf[:80]).decode("utf-8", "replace").splitlines()[0] if buf else ""
        raise ProtocolError(f"the remote printed {first!r}... instead of enas-tui's reply "
                            f"(a login script that prints text breaks ssh commands)")
    return None


def check_hello(data: dict[str, Any], host: str) -> None:
    """Refuse a remote whose protocol or log format this side cannot read (ProtocolError)."""
    remote = data.get(HELLO_KEY)
    version = data.get("enas_tui", "?")
    if remote != PROTOCOL_VERSION:
        raise ProtocolError(f"enas-tui {version} on {host} speaks remote protocol {remote}, this enas-tui "
                            f"({__version__}) speaks {PROTOCOL_VERSION}: install the same version on both")
    log_format = data.get("log_format")
    if not isinstance(log_format, int) or log_format > FORMAT_VERSION:
        raise ProtocolError(f"enas-tui {version} on {host} writes session log format {log_format}; this "
                            f"enas-tui ({__version__}) reads up to {FORMAT_VERSION}: upgrade enas-tui here")
    schema = data.get("schema")
    if not isinstance(schema, int) or schema > SCHEMA_VERSION:
        raise ProtocolError(f"enas-tui {version} on {host} records events schema {schema}; this enas-tui "
                            f"({__version__}) reads up to {SCHEMA_VERSION}: upgrade enas-tui here")


# -- messages ---------------------------------------------------------------------------------------
def record_message(offset: int, frame: bytes | memoryview) -> bytes:
    """An R message: a record's verbatim frame and its offset in the remote log."""
    return _HEAD.pack(TAG_RECORD, offset) + bytes(frame)


def control_message(kind: str, **fields: Any) -> bytes:
    payload = json.dumps({"kind": kind, **fields}, separators=(",", ":"), allow_nan=False).encode()
    return _HEAD.pack(TAG_CONTROL, 0) + encode_frame(payload)


def data_message(offset: int, chunk: bytes) -> bytes:
    return _HEAD.pack(TAG_DATA, offset) + encode_frame(chunk)


def archs_message(offset: int, probe: ProbeArchs) -> bytes:
    """An A message: the architectures of the probe record at ``offset`` (the rest is left out)."""
    data = {"seq": probe.seq, "t": probe.t, "epoch": probe.epoch, "step": probe.step, "archs": probe.archs}
    payload = zlib.compress(json.dumps(data, separators=(",", ":"), allow_nan=False).encode(), 1)
    return _HEAD.pack(TAG_ARCHS, offset) + encode_frame(payload)


@dataclass(slots=True)
class Message:
    """One message: ``tag``, ``value`` (an offset) and its verified ``frame``."""

    tag: bytes
    value: int
    frame: bytes

    @property
    def payload(self) -> bytes:
        return self.frame[FRAME_HEAD_SIZE:-FRAME_TAIL_SIZE]

    @property
    def probe_archs(self) -> ProbeArchs:
        """An A message's probe, with its cell shape (computed here: off the dashboard's thread)."""
        try:
            data = json.loads(zlib.decompress(self.payload))
            archs = [str(a) for a in data["archs"]]
            probe = ProbeArchs(epoch=int(data["epoch"]), step=int(data["step"]), archs=archs,
                               seq=int(data["seq"]), t=float(data["t"]))
        except (ValueError, KeyError, TypeError, zlib.error):
            raise ProtocolError("a probe's architectures are not readable") from None
        probe.shape = cell_shape.summarize(archs)
        return probe

    @property
    def control(self) -> dict[str, Any]:
        try:
            data = json.loads(self.payload)
        except ValueError:
            raise ProtocolError("a control message is not JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("kind"), str):
            raise ProtocolError("a control message has no kind")
        return data


class MessageReader:
    """Splits the bytes of a binary verb (after its hello line) into verified messages."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self.received = 0  # bytes fed so far

    def feed(self, data: bytes) -> Iterator[Message]:
        """Add bytes; yield every message now complete. A damaged frame raises ProtocolError."""
        self._buf += data
        self.received += len(data)
        buf, pos = self._buf, 0
        try:
            while len(buf) - pos >= HEAD_SIZE:
                tag, value = _HEAD.unpack_from(buf, pos)
                if tag not in (TAG_RECORD, TAG_CONTROL, TAG_DATA, TAG_ARCHS):
                    raise ProtocolError(f"unknown message tag {tag!r} from the remote")
                item = parse_frame(buf, pos + HEAD_SIZE, value)
                if isinstance(item, str):  # the box sends only frames it verified: this is the transfer
                    what = "remote session log" if tag == TAG_RECORD else "stream from the remote"
                    raise ProtocolError(f"damaged {what} at byte offset {value}: {item}")
                if not isinstance(item, Record):
                    break  # the rest of this message has not arrived yet
                size = item.end - item.offset
                start = pos + HEAD_SIZE
                yield Message(tag, value, bytes(buf[start:start + size]))
                pos = start + size
        finally:
            del buf[:pos]

    @property
    def pending(self) -> int:
        """Bytes of an incomplete message waiting for the rest."""
        return len(self._buf)


class MessageWriter:
    """Remote side: buffered writes of messages to a file descriptor (ssh's stdout).

    ``rate`` (bytes/s) throttles the output, for ``pull --bwlimit``. A closed reader raises
    Disconnected, so a verb whose ssh connection died exits instead of running on unseen.
    """

    def __init__(self, fd: int, flush_at: int = 256 * 1024, rate: float | None = None):
        self.fd, self.flush_at, self.rate = fd, flush_at, rate
        self._parts: list[bytes] = []
        self._size = 0
        self.sent = 0
        self._t0 = time.monotonic()

    def raw(self, data: bytes) -> None:
        self._parts.append(data)
        self._size += len(data)
        if self._size >= self.flush_at:
            self.flush()

    def flush(self) -> None:
        data = b"".join(self._parts)
        self._parts, self._size = [], 0
        view = memoryview(data)
        try:
            while view:
                chunk = view[: 64 * 1024] if self.rate else view
                written = os.write(self.fd, chunk)
                view = view[written:]
                self.sent += written
                if self.rate:
                    ahead = self.sent / self.rate - (time.monotonic() - self._t0)
                    if ahead > 0:
                        time.sleep(ahead)
        except (BrokenPipeError, ConnectionResetError):
            raise Disconnected() from None
        except OSError as err:
            raise Disconnected() from err
