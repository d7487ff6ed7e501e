"""The dispatcher's end of the ``socket`` transport (see :mod:`pycrew.wire.transport.sockets`).

Everything runs on the dispatcher's thread: sockets are non-blocking and registered in
the dispatcher's selector; a slow reader's frames wait in a per-link queue (the
dispatcher's flow control bounds it). A connection that does not send the preamble,
announces a frame larger than its link's limit (small until the worker has
authenticated), or does not open within ``seconds_auth`` is closed without its bytes
ever reaching the dispatcher.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import logging
import selectors
import socket
import ssl
from collections.abc import Sequence

from pycrew.loglimit import LogLimiter
from pycrew.wire import clock
from pycrew.wire.transport import Handler, Link, Server, split_url
from pycrew.wire.transport.limits import open_files_hint
from pycrew.wire.transport.socket_link import SocketLink
from pycrew.wire.transport.sockets import (
    DIRECT_READ,
    HEADER,
    PREAMBLE,
    READ_CHUNK,
    READ_TURN,
    SEPARATE_HEADER,
    WOULD_BLOCK,
    WRITE_CHUNK,
    DirectFrame,
    framed,
    server_context,
    tune,
)
from pycrew.wire.transport.unproven import Unproven

log = logging.getLogger(__name__)

HANDSHAKE, PREAMBLE_WAIT, OPEN, CLOSED = range(4)
#: After accept() fails (out of file descriptors, say) the listener rests this long. It
#: stays readable while connections wait, so without a rest the dispatcher's loop spun on
#: it, logging the failure ~50,000 times a second.
SECONDS_ACCEPT_REST = 0.5
#: When every connection waiting to authenticate is young, accepting resumes this much later.
SECONDS_FULL_REST = 0.05


def _silent(link: SocketLink) -> bool:
    """Whether a connection waiting to authenticate has sent nothing (after its TLS handshake, if any)."""
    return link.state == PREAMBLE_WAIT and not link.rbuf


class SocketServer(Server):
    """Listens on one TCP port and multiplexes every link on the dispatcher's selector."""

    def __init__(self, url: str, tls: tuple[str, str] | None, bytes_max: int, seconds_auth: float) -> None:
        self.refused = LogLimiter(log)  # connections anyone can make: warnings at a bounded rate
        use_tls, host, port = split_url(url)
        if use_tls != (tls is not None):
            raise ValueError(f"URL {url!r} and the TLS setting disagree")
        self._scheme = "tls+tcp" if use_tls else "tcp"
        self._host = host
        self._ssl = server_context(*tls) if tls is not None else None
        self.bytes_max = bytes_max
        self.seconds_auth = seconds_auth
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._listener.bind((host, port))
            self._listener.listen(4096)  # the kernel caps it at net.core.somaxconn; a burst of workers must fit
            self._listener.setblocking(False)
        except OSError:
            self._listener.close()
            raise
        self._port = self._listener.getsockname()[1]
        self._ids = itertools.count(1)
        self.links: dict[int, SocketLink] = {}
        self._closed: collections.deque[SocketLink] = collections.deque()
        self._opening: collections.deque[SocketLink] = collections.deque()  # accepted, in order (see maintain)
        self.unproven: Unproven[SocketLink] = Unproven()  # accepted, not yet a worker (see unproven)
        self._sel: selectors.BaseSelector | None = None
        self._handler: Handler | None = None
        self._accept_failures = 0  # in a row
        self._resting_until = 0.0  # accepting again then (clock.monotonic), if not 0
        # Every link reads into this one buffer (only this thread reads): recv() would allocate READ_CHUNK per call (45 us)
        self._chunk = bytearray(READ_CHUNK)
        self._chunk_view = memoryview(self._chunk)

    @property
    def address(self) -> str:
        """``tcp://host:port`` with the port actually bound."""
        host = f"[{self._host}]" if ":" in self._host else (self._host or "0.0.0.0")
        return f"{self._scheme}://{host}:{self._port}"

    def attach(self, selector: selectors.BaseSelector, handler: Handler) -> None:
        """Register the listening socket."""
        self._sel = selector
        self._handler = handler
        selector.register(self._listener, selectors.EVENT_READ, self._accept)

    # -- events ---------------------------------------------------------------------

    def _accept(self, mask: int) -> None:
        assert self._sel is not None
        for _ in range(128):
            if len(self.unproven) >= self.unproven.most and not self._make_room(None):
                return
            try:
                sock, addr = self._listener.accept()
            except WOULD_BLOCK:
                return
            except OSError as exc:  # e.g. out of file descriptors: keep serving the others
                self._rest(exc)
                return
            if self._accept_failures:
                log.warning("accepting workers' connections again after %d failed tries", self._accept_failures)
                self._accept_failures = 0
            try:
                sock.setblocking(False)
                tune(sock)
                if self._ssl is not None:
                    sock = self._ssl.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
            except OSError as exc:
                self.refused.warning("dropping connection from %s: %s", addr, exc)
                sock.close()
                continue
            state = HANDSHAKE if self._ssl is not None else PREAMBLE_WAIT
            link = SocketLink(self, sock, f"{addr[0]}:{addr[1]}", next(self._ids), state)
            self.links[link.id] = link
            self._opening.append(link)
            self.unproven.add(link.id, link, clock.monotonic())
            self._sel.register(sock, selectors.EVENT_READ, link.on_event)
            if state == HANDSHAKE:
                self._handshake(link)
            if len(self.unproven) > self.unproven.most and not self._make_room(link.id):
                return
    def _make_room(self, newest: int | None) -> bool:
        """Too many connections wait to authenticate: with ``newest`` (just accepted, one too
        many), close an old one; without (before accepting), see that one is old enough to go.
        Else (all young: a burst of workers) stop accepting until the next maintain. Whether to
        go on accepting (see :mod:`pycrew.wire.transport.unproven`)."""
        assert self._sel is not None
        now = clock.monotonic()
        if newest is None and self.unproven.has_old(now):
            return True
        victim = None if newest is None else self.unproven.victim(now, prefer=_silent, keep=newest)
        if victim is not None:
            self.close_link(victim, f"{self.unproven.most} connections wait to authenticate; an old one goes")
            return True
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(self._listener)
        self._resting_until = clock.monotonic() + SECONDS_FULL_REST
        return False

    def _rest(self, exc: OSError) -> None:
        """accept() failed: stop looking at the listener for SECONDS_ACCEPT_REST (see maintain)."""
        self._accept_failures += 1
        if self._accept_failures == 1:
            log.warning("accepting a worker's connection failed: %s%s; connections wait, and are tried again "
                        "every %g s (a worker not accepted within seconds_launch is a failed launch)",
                        exc, open_files_hint(exc), SECONDS_ACCEPT_REST)
        else:
            log.debug("accepting a connection failed again (%d in a row): %s", self._accept_failures, exc)
        assert self._sel is not None
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(self._listener)
        self._resting_until = clock.monotonic() + SECONDS_ACCEPT_REST

    def on_link_event(self, link: SocketLink, mask: int) -> None:
        """Handle readiness of one link's socket."""
        if link.state == CLOSED:
            return
        if link.state == HANDSHAKE:
            self._handshake(link)
            return
        if mask & selectors.EVENT_WRITE:
            self._flush(link)
        if mask & selectors.EVENT_READ and link.state != CLOSED:
            self._read(link)

    def _handshake(self, link: SocketLink) -> None:
        assert self._sel is not None and isinstance(link.sock, ssl.SSLSocket)
        try:
            link.sock.do_handshake()
        except ssl.SSLWantReadError:
            self._want_write(link, False)
            return
        except ssl.SSLWantWriteError:
            self._want_write(link, True)
            return
        except OSError as exc:  # ssl.SSLError included: not TLS, or a certificate problem
            self.refused.warning("dropping connection %s from %s: TLS handshake failed: %s", link.id, link.peer, exc)
            self.tls_failures += 1
            self.last_tls_failure = str(exc)
            self.close_link(link, None)
            return
        link.state = PREAMBLE_WAIT
        self._want_write(link, False)
        self._read(link)  # the preamble may have come with the handshake's last flight

    def _read(self, link: SocketLink) -> None:
        sock, total, eof = link.sock, 0, False
        tls = isinstance(sock, ssl.SSLSocket)
        # Stop after READ_TURN bytes (the selector reports it again), unless TLS holds decrypted bytes (no wake-up for those)
        while (total < READ_TURN or (tls and sock.pending())) and link.state != CLOSED:  # type: ignore[attr-defined]
            direct = link.direct
            try:
                n = direct.recv(sock) if direct is not None else sock.recv_into(self._chunk)
            except WOULD_BLOCK:
                break
            except OSError as exc:
                log.debug("link %s: receive failed: %s", link.id, exc)
                eof = True
                break
            except MemoryError:  # a large frame's buffer could not grow (DirectFrame): drop this worker only
                return self.close_link(link, f"no memory for its frame of {direct.length if direct else 0:,} bytes")
            if not n:
                eof = True
                break
            total += n
            if direct is None:
                link.rbuf += self._chunk_view[:n]
                self._frames(link)  # a large frame's header switches to reading it directly
            elif direct.complete() and self._handler is not None:
                link.direct = None
                self._handler.frame_received(link, direct.frame())
        if link.direct is not None and total and self._handler is not None:
            self._handler.frame_arriving(link)
        if eof:
            self.close_link(link, None)

    def _frames(self, link: SocketLink) -> None:
        buf = link.rbuf
        pos = 0
        if link.state == PREAMBLE_WAIT:
            n = min(len(buf), len(PREAMBLE))
            if buf[:n] != PREAMBLE[:n]:
                self.refused.warning("dropping connection %s from %s: not a pycrew worker (bad preamble)", link.id, link.peer)
                self.close_link(link, None)
                return
            if n < len(PREAMBLE):
                return
            pos = len(PREAMBLE)
            link.state = OPEN
            assert self._handler is not None
            self._handler.link_opened(link)
        handler = self._handler
        assert handler is not None
        size = HEADER.size
        while link.state == OPEN and len(buf) - pos >= size:
            (length,) = HEADER.unpack_from(buf, pos)
            if length > link.limit:
                self.refused.warning(
                    "dropping connection %s from %s: frame of %d bytes exceeds the limit of %d bytes",
                    link.id, link.peer, length, link.limit,
                )
                self.close_link(link, None)
                return
            end = pos + size + length
            if len(buf) < end:
                if length >= DIRECT_READ:  # the rest goes straight into the frame's own buffer
                    if (direct := DirectFrame.begin(length, buf, pos + size)) is None:  # out of memory: drop this worker only
                        self.close_link(link, f"no memory for its frame of {length:,} bytes")
                        return
                    link.direct, pos = direct, len(buf)
                break
            with memoryview(buf) as view:
                frame = bytes(view[pos + size : end])
            pos = end
            handler.frame_received(link, frame)
        if pos and link.state != CLOSED:
            del buf[:pos]

    def send(self, link: SocketLink, frame: bytes | Sequence[bytes | memoryview]) -> None:
        """Write ``frame`` (or the frame of these parts) now, or queue what the socket cannot take."""
        if link.state != OPEN:
            return
        queued = not link.wbuf
        parts = frame if isinstance(frame, (list, tuple)) else (frame,)
        if len(parts) == 1 and len(parts[0]) < SEPARATE_HEADER:
            link.wbuf.append(memoryview(HEADER.pack(len(parts[0])) + parts[0]))
        else:  # large parts (big arguments) are queued after the header, not copied behind it
            for data in framed(parts):
                link.wbuf.extend(data[start : start + WRITE_CHUNK] for start in range(0, len(data), WRITE_CHUNK))
        if queued:
            self._flush(link)

    def _flush(self, link: SocketLink) -> None:
        assert self._sel is not None
        wbuf, sock = link.wbuf, link.sock
        while wbuf:
            chunk = wbuf[0]
            try:
                n = sock.send(chunk)
            except WOULD_BLOCK:
                n = 0
            except OSError as exc:
                log.debug("link %s: send failed: %s", link.id, exc)
                self.close_link(link, None)
                return
            if n == len(chunk):
                wbuf.popleft()
                continue
            if n:  # a partial write (plain TCP only: SSL writes all or asks to retry the same chunk)
                wbuf[0] = chunk[n:]
            self._want_write(link, True)
            return
        self._want_write(link, False)

    def _want_write(self, link: SocketLink, on: bool) -> None:
        if link.writing == on or self._sel is None:
            return
        link.writing = on
        events = selectors.EVENT_READ | (selectors.EVENT_WRITE if on else 0)
        with contextlib.suppress(KeyError, ValueError, RuntimeError):  # closed selector: shutting down
            self._sel.modify(link.sock, events, link.on_event)

    def close_link(self, link: SocketLink, reason: str | None) -> None:
        """Close ``link``; an opened link is reported closed at the next :meth:`poll`."""
        if link.state == CLOSED:
            return
        was_open = link.state == OPEN
        link.state = CLOSED
        self.unproven.discard(link.id)
        self.links.pop(link.id, None)  # before the peer can see the end (tests look right after)
        if reason:
            self.refused.warning("closing connection %s from %s: %s", link.id, link.peer, reason)
        if self._sel is not None:
            with contextlib.suppress(KeyError, ValueError, RuntimeError):
                self._sel.unregister(link.sock)
        if link.wbuf:  # one last try for what is queued (a STOP frame, say)
            with contextlib.suppress(OSError):
                link.sock.setblocking(True)
                link.sock.settimeout(0.05)
                for chunk in link.wbuf:
                    link.sock.sendall(chunk)
            link.wbuf.clear()
        with contextlib.suppress(OSError):
            link.sock.close()
        link.rbuf = bytearray()
        link.direct = None
        if was_open:
            self._closed.append(link)

    def poll(self) -> None:
        """Report links closed since the last turn."""
        handler = self._handler
        while self._closed and handler is not None:
            handler.link_closed(self._closed.popleft())

    def maintain(self, now: float) -> None:
        """Close connections that did not open (TLS handshake and preamble) within ``seconds_auth``;
        accept again after a rest (see SECONDS_ACCEPT_REST)."""
        if self._resting_until and now >= self._resting_until and self._sel is not None:
            self._resting_until = 0.0
            self._sel.register(self._listener, selectors.EVENT_READ, self._accept)
        # Links wait in the order they were accepted: the oldest still opening decides.
        opening = self._opening
        while opening:
            link = opening[0]
            if link.state in (HANDSHAKE, PREAMBLE_WAIT):
                if now - link.opened <= self.seconds_auth:
                    return
                self.close_link(link, f"it did not open within {self.seconds_auth:g} s")
            opening.popleft()

    def admitted(self, link: Link) -> None:
        """See :meth:`Server.admitted`."""
        self.unproven.discard(link.id)

    def forget_in_fork(self) -> None:
        """See :meth:`Server.forget_in_fork`: only file descriptors are closed (a socket's close
        sends nothing while the parent holds the same socket open)."""
        for link in list(self.links.values()) + list(self._opening):
            with contextlib.suppress(OSError):
                link.sock.close()
        self.links.clear()
        self._opening.clear()
        self.unproven.clear()
        with contextlib.suppress(OSError):
            self._listener.close()

    def close(self) -> None:
        """Close every link and stop listening."""
        for link in list(self.links.values()):
            self.close_link(link, None)
        if self._sel is not None:
            with contextlib.suppress(KeyError, ValueError, RuntimeError):
                self._sel.unregister(self._listener)
        self._listener.close()
