"""The worker's end of the ``socket`` transport (see :mod:`pycrew.wire.transport.sockets`).

A :class:`SocketChannel` is used by two threads (the one running tasks sends results; the
heartbeat thread receives); sends are serialized with a lock, and with TLS every call
into the SSL object is, since OpenSSL objects are not thread-safe.
"""

from __future__ import annotations

import contextlib
import errno
import os
import selectors
import socket
import ssl
import threading
from collections.abc import Callable, Sequence

from pycrew.wire import clock
from pycrew.wire.transport import Channel, Closed, ConnectFailed, ConnectNotice, Unreceivable, split_url
from pycrew.wire.transport.sockets import (
    DIRECT_READ,
    HEADER,
    PREAMBLE,
    READ_CHUNK,
    SEPARATE_HEADER,
    WOULD_BLOCK,
    WRITE_CHUNK,
    DirectFrame,
    client_context,
    framed,
    peer_acknowledges,
    tune,
)

#: Longest single ``select`` (epoll takes at most 2**31 - 1 ms); a longer wait is several.
SELECT_MAX = 86400.0


class SocketChannel(Channel):
    """A worker's connection: non-blocking socket, waits with ``select``-style polling."""

    interruptible = True

    def __init__(self, sock: socket.socket, on_closed: Callable[[], None] | None) -> None:
        sock.setblocking(False)
        self.sock = sock
        self._tls = isinstance(sock, ssl.SSLSocket)
        self._send_lock = threading.Lock()
        self._ssl_lock = threading.Lock() if self._tls else contextlib.nullcontext()
        self._wake_r, self._wake_w = os.pipe()
        self._wake_lock = threading.Lock()  # see interrupt and close
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._rsel = selectors.DefaultSelector()
        self._rsel.register(sock, selectors.EVENT_READ)
        self._rsel.register(self._wake_r, selectors.EVENT_READ)
        self._wsel = selectors.DefaultSelector()
        self._wsel.register(sock, selectors.EVENT_WRITE)
        self._rbuf = bytearray()
        self._direct: DirectFrame | None = None  # a large frame being read (see recv)
        # recv() allocates a READ_CHUNK-sized bytes object per call (and frees it when
        # nothing came): 45 us each here; reading into one reused buffer costs 10.
        self._chunk = bytearray(READ_CHUNK)
        self._chunk_view = memoryview(self._chunk)
        self._closed = False
        self._on_closed = on_closed

    @classmethod
    def connect(
        cls, url: str, ca: str | None, seconds: float, on_closed: Callable[[], None] | None, server_name: str | None = None
    ) -> SocketChannel:
        """Connect to ``url``, retrying refused connections until ``seconds`` have passed; a TLS
        certificate must be valid for ``server_name`` (default: the URL's host)."""
        use_tls, host, port = split_url(url)
        if use_tls and not ca:
            raise ConnectFailed(f"could not connect to {url}: it uses TLS but no certificate to trust was given")
        ctx = client_context(ca) if use_tls and ca else None
        deadline = clock.monotonic() + seconds
        delay = 0.05
        last: Exception | None = None
        notice = ConnectNotice(url, seconds)
        while True:
            left = deadline - clock.monotonic()
            if left <= 0:
                raise ConnectFailed(f"could not connect to {url} within {seconds:g} s: {last}")
            try:
                sock = socket.create_connection((host, port), timeout=min(left, 10.0))
            except OSError as exc:  # refused, unreachable, timed out: the controller may not be up yet
                last = exc
                notice.failed(exc)
                clock.sleep(min(delay, max(0.0, deadline - clock.monotonic())))
                delay = min(delay * 2, 1.0)
                continue
            try:
                tune(sock)
                if ctx is not None:
                    sock = ctx.wrap_socket(sock, server_hostname=server_name or host)  # handshake within the timeout above
                sock.sendall(PREAMBLE)
            except ssl.SSLCertVerificationError as exc:
                sock.close()
                raise ConnectFailed(f"could not connect to {url}: its TLS certificate is not trusted ({exc.verify_message})") from exc
            except OSError as exc:  # the peer went away during the handshake: try again
                sock.close()
                last = exc
                continue
            return cls(sock, on_closed)

    def _gone(self, exc: OSError | None = None) -> Closed:
        if not self._closed:
            if exc is not None and exc.errno in (errno.EBADF, errno.ENOTSOCK):
                self.close_reason = ("its socket was closed in the worker's own process (a task closed file "
                                     "descriptors it had not opened: os.closerange, os.close)")
            self._closed = True
            if self._on_closed is not None:
                self._on_closed()
        return Closed("the link to the controller is closed")

    def send(self, frame: bytes) -> None:
        """Send one frame; blocks while the socket buffer is full."""
        # A large frame (a big result) goes after its header, not copied behind it.
        self._write((memoryview(HEADER.pack(len(frame)) + frame),) if len(frame) < SEPARATE_HEADER else framed((frame,)))

    def send_parts(self, parts: Sequence[bytes | memoryview]) -> None:
        """Send the frame made of ``parts``, large ones not copied (see :func:`framed`)."""
        self._write(framed(parts))

    def _write(self, parts: Sequence[memoryview]) -> None:
        with self._send_lock:
            for data in parts:
                sent = 0
                while sent < len(data):
                    if self._closed:
                        raise Closed("the link to the controller is closed")
                    chunk = data[sent : sent + WRITE_CHUNK]
                    try:
                        with self._ssl_lock:
                            n = self.sock.send(chunk)
                    except WOULD_BLOCK:
                        self._wsel.select(0.5)
                        continue
                    except OSError as exc:
                        raise self._gone(exc) from exc
                    sent += n

    def recv(self, timeout: float, spin: float = 0.0) -> bytes | bytearray | None:
        """The next frame, ``None`` after ``timeout`` seconds without one.

        With ``spin``, the socket is polled (non-blocking reads) for up to that many seconds
        before the thread sleeps in ``select``.
        """
        now = clock.monotonic()
        deadline = now + timeout
        spin_until = now + min(spin, timeout)
        buf = self._rbuf
        while True:
            direct = self._direct
            if direct is not None:  # a large frame, read straight into its own buffer
                if direct.complete():
                    self._direct = None
                    return direct.frame()
            elif len(buf) >= HEADER.size:
                (length,) = HEADER.unpack_from(buf, 0)
                end = HEADER.size + length
                if len(buf) >= end:
                    with memoryview(buf) as view:  # one copy (a bytearray slice would make two)
                        frame = bytes(view[HEADER.size : end])
                    del buf[:end]
                    return frame
                if length >= DIRECT_READ:
                    if (direct := DirectFrame.begin(length, buf, HEADER.size)) is None:
                        self.close()  # the controller sees the worker gone and runs its tasks elsewhere
                        raise Unreceivable(f"no memory for a frame of {length:,} bytes from the controller")
                    self._direct = direct
                    del buf[:]
            if self._closed:
                raise Closed("the link to the controller is closed")
            try:
                with self._ssl_lock:
                    n = direct.recv(self.sock) if direct is not None else self.sock.recv_into(self._chunk)
            except WOULD_BLOCK:
                now = clock.monotonic()
                if now < spin_until:
                    continue  # polling: a frame due within microseconds is read without a wake-up
                left = deadline - now
                if left <= 0:
                    return None
                for key, _ in self._rsel.select(min(left, SELECT_MAX)):  # none after it: the loop reads again
                    if key.fileobj is not self.sock:  # the wake pipe: interrupted
                        with self._wake_lock, contextlib.suppress(BlockingIOError):
                            if self._wake_r >= 0:  # not closed meanwhile (see interrupt)
                                os.read(self._wake_r, 4096)
                        return None
                continue
            except OSError as exc:
                raise self._gone(exc) from exc
            except MemoryError:  # the frame's buffer could not grow (see DirectFrame)
                assert direct is not None
                self.close()
                raise Unreceivable(f"no memory for a frame of {direct.length:,} bytes from the controller") from None
            if not n:
                raise self._gone()
            if direct is None:
                buf += self._chunk_view[:n]

    def peer_acknowledges(self, within: float) -> bool | None:
        """See :meth:`Channel.peer_acknowledges` (TCP_INFO, on Linux)."""
        return peer_acknowledges(self.sock, within)

    def interrupt(self) -> None:
        """Make a ``recv`` waiting in another thread return ``None``."""
        # Under the lock close takes: once the pipe is closed its number may name another
        # file of the process (a task's), which must not get this byte.
        with self._wake_lock:
            if self._wake_w >= 0:
                with contextlib.suppress(OSError):  # full pipe: already interrupted
                    os.write(self._wake_w, b"x")

    def close(self) -> None:
        """Close the connection."""
        self._closed = True
        with contextlib.suppress(OSError):
            self.sock.close()
        self._rsel.close()
        self._wsel.close()
        with self._wake_lock:
            fds, self._wake_r, self._wake_w = (self._wake_r, self._wake_w), -1, -1
        for fd in fds:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
