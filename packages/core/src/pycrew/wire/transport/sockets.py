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
