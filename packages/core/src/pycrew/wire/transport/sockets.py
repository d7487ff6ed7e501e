"""The ``socket`` transport: length-prefixed frames over TCP (optionally TLS), standard library only.

A worker opens a TCP connection, completes TLS if asked, and sends an 8-byte preamble
(:data:`PREAMBLE`, which also carries the wire version); every frame after that, both
ways, is an unsigned 64-bit little-endian length followed by that many bytes.

This module holds what both ends share (the framing constants, TLS contexts, socket
options); the dispatcher's end is :mod:`pycrew.wire.transport.socket_server`, the
worker's :mod:`pycrew.wire.transport.socket_channel`, so a worker never loads the server.
"""

from __future__ import annotations

import os
import socket
import ssl
import struct
import sys
import tempfile
from collections.abc import Sequence

from pycrew.wire.protocol import TLS_CA_ENV

#: What a worker sends first: b"PYCREW", then the wire version (2 bytes).
PREAMBLE = b"PYCREW\x00\x01"
HEADER = struct.Struct("<Q")
#: Bytes read per ``recv`` call, and most bytes one link may read per loop turn.
READ_CHUNK = 256 * 1024
READ_TURN = 4 * 1024 * 1024
#: Largest slice handed to one ``send`` (SSL writes take at most 2 GiB).
WRITE_CHUNK = 4 * 1024 * 1024
#: Frames this large are sent after their length header (two writes) instead of being
#: copied behind it (a 20 MB copy costs ~5-10 ms; a write call, microseconds).
SEPARATE_HEADER = 256 * 1024

WOULD_BLOCK = (BlockingIOError, InterruptedError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
def framed(parts: Sequence[bytes | memoryview]) -> list[memoryview]:
    """What to write for the frame made of ``parts``: its length header and the parts, small
    ones joined, those of :data:`SEPARATE_HEADER` bytes or more as they are (not copied)."""
    out: list[memoryview] = []
    small: list[bytes | memoryview] = [HEADER.pack(sum(len(part) for part in parts))]
    for part in parts:
        if len(part) < SEPARATE_HEADER:
            small.append(part)
            continue
        out.append(memoryview(b"".join(small)))
        small = []
        out.append(memoryview(part))
    if small:
        out.append(memoryview(b"".join(small)))
    return out


#: Frames this large are read straight into a buffer of their own (:class:`DirectFrame`).
DIRECT_READ = 1024 * 1024
#: A :class:`DirectFrame`'s buffer starts this large (or the frame's length, if smaller) ...
DIRECT_FIRST = 4 * 1024 * 1024
#: ... and doubles whenever what arrived fills it, up to the frame's length.
_ZEROS = bytes(DIRECT_FIRST)


class DirectFrame:
    """A large frame read straight into its own buffer, which becomes the frame.

    Read through the reusable chunk and the connection's read buffer, then sliced out of
    it, a 20 MB result was copied three times before anything looked at it (~5 ms each
    here, and as many 20 MB buffers alive at once); read this way it is copied once, by
    the kernel.

    The buffer grows with what arrives (:data:`DIRECT_FIRST`, doubled each time it fills:
    the allocator moves pages rather than bytes), so it is never more than twice the bytes
    received: a peer that announces a frame of ``bytes_max`` and sends little costs a few
    MiB, not ``bytes_max`` (a buffer of the whole announced length, zeroed at once, made
    one such connection raise the controller's RSS by 215 MiB).
    """

    __slots__ = ("data", "filled", "length", "view")

    def __init__(self, length: int, start: memoryview) -> None:
        """A frame of ``length`` bytes whose first bytes, ``start``, were read already."""
        self.length = length
        self.data = bytearray(min(length, max(DIRECT_FIRST, 2 * len(start))))
        self.view = memoryview(self.data)
        self.filled = len(start)
        self.view[: self.filled] = start

    @classmethod
    def begin(cls, length: int, buf: bytearray, start: int) -> DirectFrame | None:
        """A frame of ``length`` bytes whose first bytes are ``buf[start:]``; ``None`` if its
        buffer cannot be had (``MemoryError``: the caller drops that connection)."""
        try:
            with memoryview(buf) as view:
                return cls(length, view[start:])
        except MemoryError:
            return None

    def recv(self, sock: socket.socket) -> int:
        """Read what ``sock`` has of the rest (raises what ``recv_into`` raises, ``MemoryError``
        too when the buffer cannot grow); 0: the peer closed."""
        if self.filled == len(self.data):
            self._grow()
        n = sock.recv_into(self.view[self.filled :])
        self.filled += n
        return n

    def _grow(self) -> None:
        """Double the buffer (at most to the frame's length)."""
        self.view.release()
        more = min(self.length, 2 * len(self.data)) - len(self.data)
        try:
            while more > 0:
                step = min(more, len(_ZEROS))
                self.data += memoryview(_ZEROS)[:step]
                more -= step
        finally:
            self.view = memoryview(self.data)

    def complete(self) -> bool:
        """Whether every byte of the frame arrived."""
        return self.filled == self.length

    def frame(self) -> bytearray:
        """The whole frame (once :meth:`complete`)."""
        self.view.release()
        return self.data


def server_context(key_pem: str, cert_pem: str) -> ssl.SSLContext:
    """The dispatcher's TLS context for a key and certificate (PEM text)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    with tempfile.TemporaryDirectory(prefix="pycrew-tls-") as tmp:
        key_path, cert_path = os.path.join(tmp, "key.pem"), os.path.join(tmp, "cert.pem")
        for path, text in ((key_path, key_pem), (cert_path, cert_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
        ctx.load_cert_chain(cert_path, key_path)
    return ctx


def client_context(ca_pem: str) -> ssl.SSLContext:
    """A worker's TLS context trusting ``ca_pem`` (checks the certificate and the host name)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_verify_locations(cadata=ca_pem)
    return ctx


def check_trust(url: str, ca_pem: str | None) -> None:
    """Raise :class:`ValueError` naming ``$PYCREW_TLS_CA`` when ``url`` uses TLS and ``ca_pem`` (that variable's
    value, which the worker trusts) is missing or is not PEM certificates TLS can load (cut short on the way, say)."""
    if not url.startswith("tls+"):
        return
    if not ca_pem:
        raise ValueError(f"{url} uses TLS but ${TLS_CA_ENV} is not set")
    try:
        client_context(ca_pem)
    except (ssl.SSLError, ValueError) as exc:
        begins, ends = ca_pem.count("-----BEGIN CERTIFICATE-----"), ca_pem.count("-----END CERTIFICATE-----")
        raise ValueError(
            f"${TLS_CA_ENV} is not PEM certificates TLS can load ({getattr(exc, 'reason', None) or exc}; {len(ca_pem)} "
            f"characters, {begins} '-----BEGIN CERTIFICATE-----' and {ends} '-----END CERTIFICATE-----' lines): the "
            "controller's launcher sets it to the certificate(s) to trust; if the platform cut or changed it, pass it whole"
        ) from None


def refusal_hint(url: str, challenged: bool) -> str:
    """What to add to "was refused: ..." for a worker the controller dropped before it sent its
    challenge (``challenged``: it did): no token was looked at, and a controller that uses TLS
    drops a worker that dials it without TLS just so."""
    if challenged or url.startswith("tls+"):
        return ""
    return (
        " before it sent its challenge, so not for its token: a controller that uses TLS does this to a worker "
        "that dials it without TLS; if it does, its URL starts with tls+tcp:// (the launcher's call gives it)"
    )


#: ``struct tcp_info`` (Linux): 8 one-byte fields, then 32-bit fields; the ones read here.
_TCP_INFO = struct.Struct("<B7x" + "I" * 13)
_TCP_ESTABLISHED = 1
_TCP_INFO_OPTION = getattr(socket, "TCP_INFO", None) if sys.platform.startswith("linux") else None


def peer_acknowledges(sock: socket.socket, within: float) -> bool | None:
    """Whether the peer's kernel acknowledged data on ``sock`` in the last ``within`` seconds.

    The kernel of a machine that is up acknowledges what it receives whether or not the
    process it is for gets to run: a process whose task holds the GIL in one long call
    into C code cannot send a heartbeat, but its kernel still answers. A dead or frozen
    machine, or a cut link, answers nothing. Only meaningful while data is being sent to
    the peer (heartbeats are). ``None`` where the kernel does not say (not Linux, not TCP).
    """
    if _TCP_INFO_OPTION is None:
        return None
    try:
        raw = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO_OPTION, _TCP_INFO.size)
    except (OSError, ValueError):  # closed, or not a TCP socket
        return None
    if len(raw) < _TCP_INFO.size:
        return None
    fields = _TCP_INFO.unpack_from(raw)
    state: int = fields[0]
    last_ack_recv_ms: int = fields[13]  # tcpi_last_ack_recv
    return state == _TCP_ESTABLISHED and last_ack_recv_ms <= within * 1000


def tune(sock: socket.socket) -> None:
    """Options of every pycrew TCP connection: no Nagle delay, keepalive on."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
