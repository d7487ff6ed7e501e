"""The link between the dispatcher and its workers, behind one small interface.

Two transports carry the same frames (see :mod:`pycrew.wire.protocol`):

``"socket"`` (the default)
    The standard library's sockets: the dispatcher multiplexes every connection on its
    own thread with :mod:`selectors`, a worker reads and writes its one socket directly.
    Each frame is an 8-byte length and the frame; TLS is :mod:`ssl`. Nothing sits between
    a byte arriving and the thread that handles it, so a round trip costs what the
    kernel and Python cost (about 30 µs for the bare exchange on loopback).

``"nng"``
    NNG through pynng: one ``Pair1`` socket in polyamorous mode, a pipe per worker. NNG
    moves every message through its own I/O and task threads before Python sees it,
    which adds about 130 µs to a round trip on a 2-core machine (measured with
    ``benchmarks/bench_transport.py``), and its polyamorous mode discards what it
    cannot deliver (the dispatcher detects and repairs that, see
    :mod:`pycrew.control.dispatcher`). Kept for sites that prefer NNG's stack.

Both authenticate the same way (a challenge answered with an HMAC of the worker's
token, before anything is unpickled) and bound the size of a frame.
"""

from __future__ import annotations

import abc
import logging
import os
import selectors
from collections.abc import Callable, Sequence
from typing import Literal, Protocol

from pycrew.wire import clock

Transport = Literal["socket", "nng"]
TRANSPORTS: tuple[Transport, ...] = ("socket", "nng")
DEFAULT_TRANSPORT: Transport = "socket"


class Closed(ConnectionError):
    """The link is closed (by the peer, or locally)."""


class Unreceivable(Closed):
    """A frame arrived that this process has no memory for: the link was closed (the peer
    sees a lost connection), and the message says why."""


class ConnectFailed(ConnectionError):
    """A worker could not open a link to the dispatcher (and retrying will not help, or time ran out)."""


class Link(abc.ABC):
    """One worker connection, as the dispatcher sees it (used on the dispatcher thread only).

    Attributes:
        id: unique among this server's links.
        limit: largest frame accepted from this link; the dispatcher raises it from the
            pre-authentication bound to ``bytes_max`` once the worker has proved its token
            (the ``nng`` transport applies ``bytes_max`` to every pipe).
    """

    id: int
    limit: int
    #: Most TASKS frames the dispatcher may have sent and the worker not yet acknowledged
    #: (``None``: no limit). NNG's polyamorous pipes queue two messages and drop the rest.
    unacked_max: int | None = None

    @abc.abstractmethod
    def send(self, frame: bytes) -> None:
        """Queue ``frame`` for the peer; never blocks; silently nothing when the link is closed."""

    def send_parts(self, parts: Sequence[bytes | memoryview]) -> None:
        """Queue the frame made of ``parts`` one after another (as :meth:`send`); a transport
        that can write them without joining them first overrides this."""
        self.send(b"".join(parts))

    @abc.abstractmethod
    def close(self) -> None:
        """Close the link (idempotent); the server then reports it closed."""

    def peer_acknowledges(self, within: float) -> bool | None:
        """Whether the worker's machine acknowledged data on this link in the last ``within``
        seconds (its process may be too busy to answer; see
        :func:`pycrew.wire.transport.sockets.peer_acknowledges`); ``None``: unknown."""
        return None


class Handler(Protocol):
    """What a :class:`Server` reports to (the dispatcher), always on the dispatcher thread."""

    def link_opened(self, link: Link) -> None:
        """A peer connected (and, with TLS, completed the handshake)."""

    def frame_received(self, link: Link, frame: bytes | bytearray) -> None:
        """A whole frame arrived on ``link``."""

    def frame_arriving(self, link: Link) -> None:
        """More of a large frame arrived on ``link`` (once per read turn while one does): the
        peer is alive and sending, though a frame of hundreds of MB takes seconds to arrive."""

    def link_closed(self, link: Link) -> None:
        """``link`` is gone (closed by either side); reported once per opened link."""


class Server(abc.ABC):
    """The dispatcher's listening side.

    The dispatcher owns one :class:`selectors.BaseSelector`; the server registers its file
    objects there with a callable ``data`` that the dispatcher calls with the event mask,
    then calls :meth:`poll` once per loop turn to deliver what was queued.
    """

    #: TLS handshakes that failed on this server (workers that do not trust the controller's
    #: certificate, an expired one, strangers), and the last one's error: a LaunchError
    #: quotes them (see pycrew.control.launch_reports.tls_note).
    tls_failures = 0
    last_tls_failure = ""

    @property
    @abc.abstractmethod
    def address(self) -> str:
        """The URL workers dial, with the real port when port 0 was asked for."""

    @abc.abstractmethod
    def attach(self, selector: selectors.BaseSelector, handler: Handler) -> None:
        """Register with the dispatcher's selector and report to ``handler`` from now on."""

    @abc.abstractmethod
    def poll(self) -> None:
        """Deliver pending events to the handler (dispatcher thread)."""

    @abc.abstractmethod
    def maintain(self, now: float) -> None:
        """Periodic housekeeping: drop connections stuck before they opened (dispatcher thread)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop listening and close every link."""

    @abc.abstractmethod
    def admitted(self, link: Link) -> None:
        """``link``'s peer proved a worker's token: it no longer counts among the connections
        waiting to authenticate, of which a new one closes the oldest past a bound (see
        :mod:`pycrew.wire.transport.unproven`)."""

    @abc.abstractmethod
    def forget_in_fork(self) -> None:
        """In a child forked from the dispatcher's process: close this process's copies of the
        listening socket and the links, sending nothing (the parent's stay open). Without it a
        long-lived child kept the port bound, and the links open, after the parent closed them."""


class Channel(abc.ABC):
    """A worker's end of its link. ``send`` may be called from any thread; ``recv`` from one at a time.

    Attributes:
        interruptible: whether :meth:`interrupt` makes a blocked :meth:`recv` return early.
        acknowledges: whether the worker must acknowledge each TASKS frame when it arrives.
    """

    interruptible: bool = False
    #: Whether the worker acknowledges every TASKS frame at once (see :attr:`Link.unacked_max`).
    acknowledges: bool = False
    #: Why the link closed, when this end knows better than "the controller closed it".
    close_reason: str = ""

    def interrupt(self) -> None:
        """Make a :meth:`recv` blocked in another thread return ``None`` soon (if :attr:`interruptible`)."""
        raise NotImplementedError(f"{type(self).__name__} cannot interrupt a receive")

    @abc.abstractmethod
    def send(self, frame: bytes) -> None:
        """Send one frame (blocks until handed to the kernel); raises :class:`Closed` if the link is gone."""

    def send_parts(self, parts: Sequence[bytes | memoryview]) -> None:
        """Send the frame made of ``parts`` one after another (as :meth:`send`); a transport
        that can write them without joining them first overrides this."""
        self.send(b"".join(parts))

    @abc.abstractmethod
    def recv(self, timeout: float, spin: float = 0.0) -> bytes | bytearray | None:
        """The next frame, or ``None`` after ``timeout`` seconds; raises :class:`Closed` when the link is gone.

        ``spin``: poll for up to this many seconds before sleeping in the kernel (a frame
        expected soon then arrives without the tens of microseconds a sleeping thread
        takes to wake); a channel that cannot poll ignores it.
        """

    @abc.abstractmethod
    def close(self) -> None:
        """Close the link (idempotent)."""

    def peer_acknowledges(self, within: float) -> bool | None:
        """Whether the controller's machine acknowledged data on this link in the last
        ``within`` seconds (see :meth:`Link.peer_acknowledges`); ``None``: unknown."""
        return None


def busy_not_gone(
    peer: Link | Channel | None, silent: float, seconds_busy_silence: float, seconds_heartbeat: float
) -> bool:
    """Whether a side silent for ``silent`` seconds (past its heartbeat timeout) is busy, not
    gone: silent for at most ``seconds_busy_silence``, and its machine acknowledged the
    heartbeats sent to it within the last interval and a second (see docs/concepts.md)."""
    if peer is None or silent > seconds_busy_silence:
        return False
    return peer.peer_acknowledges(seconds_heartbeat + 1.0) is True


#: The process that used NNG through this module first: NNG cannot run in a child forked from
#: it (the child aborts, "nng is not fork-reentrant safe", as soon as it opens a socket).
_nng_pid: int | None = None


def nng_forked_from() -> int | None:
    """The process this one was forked from, if NNG ran there (then NNG cannot run here), else ``None``."""
    return _nng_pid if _nng_pid is not None and _nng_pid != os.getpid() else None


def _using_nng() -> None:
    global _nng_pid
    if (parent := nng_forked_from()) is not None:  # the caller's own check (pycrew.controller) says more
        raise RuntimeError(f"NNG cannot run in a process forked from process {parent}, which used it: use the socket wire here")
    _nng_pid = os.getpid()


def listen(
    transport: Transport,
    url: str,
    tls: tuple[str, str] | None,
    bytes_max: int,
    seconds_auth: float,
    wake: Callable[[], None],
) -> Server:
    """Listen on ``url`` (``tcp://host:port`` or ``tls+tcp://host:port``).

    Args:
        transport: ``"socket"`` or ``"nng"``.
        url: where to listen; port 0 picks a free port (see :attr:`Server.address`).
        tls: ``(key_pem, cert_pem)`` for TLS, else ``None``.
        bytes_max: largest frame accepted from an authenticated worker.
        seconds_auth: how long a connection may take to open (TLS handshake, preamble).
        wake: makes the dispatcher's loop turn (called from other threads).
    """
    if transport == "socket":
        from pycrew.wire.transport.socket_server import SocketServer

        return SocketServer(url, tls, bytes_max, seconds_auth)
    if transport == "nng":
        _using_nng()
        from pycrew.wire.transport.nng import NngServer

        return NngServer(url, tls, bytes_max, wake, seconds_auth)
    raise ValueError(f"unknown transport {transport!r}; choose one of {', '.join(TRANSPORTS)}")


def connect(
    transport: Transport,
    url: str,
    ca: str | None,
    seconds: float,
    on_closed: Callable[[], None] | None = None,
    server_name: str | None = None,
) -> Channel:
    """Open a worker's link to the dispatcher at ``url``, retrying for up to ``seconds``.

    Args:
        transport: ``"socket"`` or ``"nng"``.
        url: the controller's address.
        ca: the PEM certificate to trust for ``tls+tcp://`` URLs.
        seconds: give up (:class:`ConnectFailed`) if not connected by then.
        on_closed: called once when the link closes (from whichever thread notices).
        server_name: the name the controller's TLS certificate must be valid for (default: the URL's host).

    Raises:
        ConnectFailed: refused for good (e.g. a certificate the worker does not trust) or
            not connected within ``seconds``.
    """
    if transport == "socket":
        from pycrew.wire.transport.socket_channel import SocketChannel

        return SocketChannel.connect(url, ca, seconds, on_closed, server_name)
    if transport == "nng":
        _using_nng()
        from pycrew.wire.transport.nng import NngChannel

        return NngChannel.connect(url, ca, seconds, on_closed, server_name)
    raise ValueError(f"unknown transport {transport!r}; choose one of {', '.join(TRANSPORTS)}")


#: A worker that has not reached the dispatcher after this long says so, once, on stderr (its
#: log), and keeps trying: when its launch times out, the controller quotes that line (see
#: pycrew.control.launch_watch) and the user learns the address is unreachable from there.
SECONDS_CONNECT_NOTICE = 3.0


class ConnectNotice:
    """Says once that connecting takes long (see :data:`SECONDS_CONNECT_NOTICE`)."""

    def __init__(self, url: str, seconds: float) -> None:
        self.url = url
        self.seconds = seconds
        self.due = clock.monotonic() + SECONDS_CONNECT_NOTICE

    def failed(self, exc: BaseException) -> None:
        """A try failed with ``exc``: say so if it is time (once)."""
        if self.due and clock.monotonic() >= self.due:
            self.due = 0.0
            logging.getLogger("pycrew.worker").warning(
                "pycrew worker: cannot connect to %s yet (%s: %s); trying until %g s have passed. If this lasts, "
                "either this host cannot reach the controller there: set its host= (an address the workers can "
                "reach) and port= options, or open the firewall; or the controller has ended (killed before it "
                "could cancel this queued worker)", self.url, type(exc).__name__, exc, self.seconds,
            )


def split_url(url: str) -> tuple[bool, str, int]:
    """``(tls, host, port)`` of ``tcp://host:port`` or ``tls+tcp://host:port`` (IPv6 in brackets).

    Raises:
        ValueError: naming the URL and the expected form.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("tcp", "tls+tcp"):
        raise ValueError(f"unsupported URL {url!r}: expected tcp://HOST:PORT or tls+tcp://HOST:PORT")
    host, colon, port_text = rest.rpartition(":")
    if not colon or not port_text.isdigit() or not host:
        raise ValueError(f"URL {url!r} has no HOST:PORT")
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if host == "*":
        host = ""
    return scheme == "tls+tcp", host, int(port_text)
