"""The ``nng`` transport: pynng ``Pair1`` sockets, polyamorous on the dispatcher's side.

Workers dial one listening socket; each connection is an NNG pipe. NNG calls back on its
own threads when pipes come and go, so those events are queued and delivered on the
dispatcher's thread by :meth:`NngServer.poll`. Messages are received without blocking when
the socket's receive descriptor is readable. NNG starts receiving on a pipe before it runs
the "added" callback, so a pipe's first message can come before the report that it was
added: that message opens the link, and the late report is ignored.

Polyamorous pair sockets discard a message they cannot deliver to a pipe; the dispatcher
keeps few frames in flight per worker and compares the frame count each worker reports
with what it sent (see :mod:`pycrew.control.dispatcher`), so nothing is lost for good.

Size bound before authentication: NNG applies one receive limit to every pipe of a
socket, and reads a whole message into memory before anyone can look at it. So the
dispatcher's socket takes messages of at most 16 KiB
(:data:`~pycrew.wire.transport.nng_link.MESSAGE_MAX_BYTES`) from anyone, and a worker
sends a larger frame as a run of fragments (kind ``F`` while more follow, ``E`` for the
last piece) that the server joins per pipe, up to the link's limit: 4 KiB
(:data:`~pycrew.wire.protocol.HELLO_MAX_BYTES`, like the ``socket`` transport) until the
worker has authenticated, ``bytes_max`` after. A connection that never authenticates can
make the dispatcher hold at most one message per pipe, and at most
:func:`~pycrew.wire.transport.unproven.unproven_max` of them wait at once; one whose TLS
handshake never ends (NNG sets no deadline) is shut down after ``seconds_auth``
(:mod:`~pycrew.wire.transport.nng_pending`).

NNG cannot run in a forked child (its threads are not there; it panics, "nng is not
fork-reentrant safe", or waits forever): a child forked from a process that used it (a
script with a controller, ``os.fork()``, exiting normally) hung in pynng's exit handler
(``nng_fini``). :func:`_after_fork_in_child` takes that handler off in such a child.
"""

from __future__ import annotations

import atexit
import collections
import logging
import os
import selectors
import socket
import threading
from collections.abc import Callable

import pynng

from pycrew.loglimit import LogLimiter
from pycrew.wire import clock
from pycrew.wire.protocol import HELLO_MAX_BYTES
from pycrew.wire.transport import Channel, Closed, ConnectFailed, ConnectNotice, Handler, Link, Server, split_url
from pycrew.wire.transport.nng_link import MESSAGE_MAX_BYTES, NngLink, fragments
from pycrew.wire.transport.nng_pending import PendingSweep
from pycrew.wire.transport.unproven import Unproven

log = logging.getLogger(__name__)

#: Longest timeout NNG takes (milliseconds in a 32-bit int, 24.8 days); a longer wait is several reads.
NNG_TIMEOUT_MAX_MS = 2**31 - 1
#: How many removed pipes the server remembers at most (~8 MiB), however fast anyone
#: connects and hangs up: the oldest are forgotten first.
GONE_IDS_MAX = 65_536


_used = False  # NNG ran in this process: a forked child must not call into it


def _pair(**options: object) -> pynng.Pair1:
    global _used
    _used = True
    return pynng.Pair1(**options)


def _after_fork_in_child() -> None:
    handler = getattr(getattr(pynng, "nng", None), "_pynng_atexit", None)
    if _used and handler is not None:
        atexit.unregister(handler)


os.register_at_fork(after_in_child=_after_fork_in_child)


def _server_config(key_pem: str, cert_pem: str) -> pynng.TLSConfig:
    return pynng.TLSConfig(pynng.TLSConfig.MODE_SERVER, own_key_string=key_pem, own_cert_string=cert_pem)


def _client_config(ca_pem: str, server_name: str) -> pynng.TLSConfig:
    return pynng.TLSConfig(pynng.TLSConfig.MODE_CLIENT, ca_string=ca_pem, server_name=server_name)


class NngServer(Server):
    """The dispatcher's polyamorous ``Pair1`` socket."""

    def __init__(
        self, url: str, tls: tuple[str, str] | None, bytes_max: int, wake: Callable[[], None], seconds_auth: float = 10.0
    ) -> None:
        self.refused = LogLimiter(log)  # connections anyone can make: warnings at a bounded rate
        use_tls, _, _ = split_url(url)
        if use_tls != (tls is not None):
            raise ValueError(f"URL {url!r} and the TLS setting disagree")
        self._url = url
        self._wake = wake
        self.bytes_max = bytes_max
        # NNG counts Pair1's own header (4 bytes) in a message's size: leave it room.
        self.sock = _pair(polyamorous=True, recv_max_size=MESSAGE_MAX_BYTES + 16)
        self.sock.recv_buffer_size = 1024
        self.sock.send_buffer_size = 1024
        if tls is not None:
            self.sock.tls_config = _server_config(*tls)
        self._new: collections.deque[pynng.Pipe] = collections.deque()
        self._gone: collections.deque[int] = collections.deque()
        # Pipes NNG reported removed, with when (oldest first), for a minute and at most
        # GONE_IDS_MAX of them: NNG may report a pipe removed before it reports it added (a
        # peer that hangs up at once), and the late "added" must not open a link that
        # nothing would ever close.
        self._gone_ids: dict[int, float] = {}
        self.links: dict[int, NngLink] = {}
        self.unproven: Unproven[NngLink] = Unproven()  # pipes not yet a worker's (see unproven)
        self._handler: Handler | None = None
        self.sock.add_post_pipe_connect_cb(self._pipe_added)
        self.sock.add_post_pipe_remove_cb(self._pipe_removed)
        try:
            self.sock.listen(url)
        except pynng.NNGException:
            self.sock.close()
            raise
        self._port = int(str(self.sock.listeners[0].local_address).rsplit(":", 1)[1])
        self._pending = PendingSweep(self._port, seconds_auth) if tls is not None else None  # see nng_pending

    @property
    def address(self) -> str:
        """The URL with the port NNG bound."""
        scheme, rest = self._url.split("://", 1)
        return f"{scheme}://{rest.rsplit(':', 1)[0]}:{self._port}"

    # NNG's threads

    def _pipe_added(self, pipe: pynng.Pipe) -> None:
        self._new.append(pipe)
        self._wake()

    def _pipe_removed(self, pipe: pynng.Pipe) -> None:
        self._gone.append(pipe.id)
        self._wake()

    # the dispatcher's thread

    def attach(self, selector: selectors.BaseSelector, handler: Handler) -> None:
        """Register the socket's receive descriptor (its messages are read in :meth:`poll`)."""
        self._handler = handler
        selector.register(self.sock.recv_fd, selectors.EVENT_READ, lambda mask: None)

    def poll(self) -> None:
        """Deliver new pipes, then messages, then removed pipes."""
        handler = self._handler
        assert handler is not None
        gone = []
        while self._gone:
            gone.append(self._gone.popleft())
        links = self.links
        while self._new:
            pipe = self._new.popleft()
            if pipe.id in links or pipe.id in self._gone_ids:
                continue  # opened by its first message already, or removed: reported late
            self._open(pipe, handler)
        sock = self.sock
        arriving: dict[int, NngLink] = {}  # links with more of a fragmented frame (incomplete, unless it ended)
        while True:
            try:
                msg = sock.recv_msg(block=False)
            except pynng.TryAgain:
                break
            except pynng.Closed:
                return
            known = links.get(msg.pipe.id)
            if known is None:
                if msg.pipe.id in self._gone_ids:
                    continue  # a pipe already removed: nobody is left to answer
                known = self._open(msg.pipe, handler)  # it spoke before NNG reported it added
            try:
                frame = known.join(msg.bytes)
            except ValueError as exc:
                self.refused.warning("dropping connection %s: %s", msg.pipe.id, exc)
                known.parts = []
                known.close()
                continue
            if frame is not None:
                handler.frame_received(known, frame)
            else:
                arriving[known.id] = known
        for link in arriving.values():
            if link.parts and link.id in links:
                handler.frame_arriving(link)
        if gone:
            now = clock.monotonic()
            gone_ids = self._gone_ids
            for pipe_id in gone:
                gone_ids[pipe_id] = now
                self.unproven.discard(pipe_id)
                removed = links.pop(pipe_id, None)
                if removed is not None:
                    handler.link_closed(removed)
            while len(gone_ids) > GONE_IDS_MAX:
                del gone_ids[next(iter(gone_ids))]

    def _open(self, pipe: pynng.Pipe, handler: Handler) -> NngLink:
        link = NngLink(pipe, HELLO_MAX_BYTES)  # the dispatcher raises it to bytes_max on HELLO
        self.links[pipe.id] = link
        if len(self.unproven) >= self.unproven.most:  # NNG accepts on its own: room is made now, young or not
            oldest = self.unproven.victim(clock.monotonic()) or self.unproven.oldest()
            self.refused.warning("closing connection %s: %d connections wait to authenticate; an old one goes",
                                 oldest.id, self.unproven.most)
            oldest.close()  # (NNG reports it removed: then the dispatcher forgets it)
        self.unproven.add(pipe.id, link, clock.monotonic())
        handler.link_opened(link)
        return link

    def admitted(self, link: Link) -> None:
        """See :meth:`Server.admitted`."""
        self.unproven.discard(link.id)

    def maintain(self, now: float) -> None:
        """Forget removed pipes after a minute (no late report of them comes that late); shut
        down TLS connections that did not open within ``seconds_auth`` (see nng_pending)."""
        if self._pending is not None and self._pending.due(now):
            self._pending.sweep(now, [link.pipe for link in self.links.values()] + list(self._new), self.refused)
        gone_ids = self._gone_ids
        expired = []
        for pipe_id, seen in gone_ids.items():  # oldest first: stop at the first recent one
            if now - seen <= 60.0:
                break
            expired.append(pipe_id)
        for pipe_id in expired:
            del gone_ids[pipe_id]

    def forget_in_fork(self) -> None:
        """Nothing: NNG's sockets belong to its threads, which a forked child does not have,
        and touching them there can hang (the child keeps its copies until it ends)."""

    def close(self) -> None:
        """Close the socket (and every pipe)."""
        self.sock.close()


class NngChannel(Channel):
    """A worker's ``Pair1`` socket dialed to the dispatcher."""

    acknowledges = True

    def __init__(self, sock: pynng.Pair1, on_closed: Callable[[], None] | None) -> None:
        self.sock = sock
        self._on_closed = on_closed
        self._connected = threading.Event()
        self._closed = False
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()

    @classmethod
    def connect(
        cls, url: str, ca: str | None, seconds: float, on_closed: Callable[[], None] | None, server_name: str | None = None
    ) -> NngChannel:
        """Dial ``url``, retrying refused or failed dials until ``seconds`` have passed (a TLS
        certificate must be valid for ``server_name``, default: the URL's host).

        Each attempt is a blocking dial, so NNG says why it failed: a TLS certificate the
        worker does not trust fails at once (:class:`ConnectFailed` saying so), as over the
        socket wire, instead of NNG redialing silently until the time is up. A blocking dial
        cannot be cut short safely (closing the socket while ``nng_dial`` runs can deadlock
        both calls), so each attempt first opens a plain TCP connection to the address,
        bounded by the time left: only an address that answers is dialed, and a dial to a
        listening NNG socket returns promptly.
        """
        use_tls, host, port = split_url(url)
        if use_tls and not ca:
            raise ConnectFailed(f"could not connect to {url}: it uses TLS but no certificate to trust was given")
        sock = _pair(recv_max_size=0)
        # Headroom for frames that arrive while nobody reads: the dispatcher's polyamorous
        # socket drops what a peer cannot take.
        sock.recv_buffer_size = 1024
        if use_tls:
            assert ca is not None
            sock.tls_config = _client_config(ca, server_name or host)
        channel = cls(sock, on_closed)
        sock.add_post_pipe_connect_cb(lambda pipe: channel._connected.set())
        sock.add_post_pipe_remove_cb(lambda pipe: channel._pipe_removed())
        deadline = clock.monotonic() + seconds
        delay = 0.05
        last: Exception | None = None
        notice = ConnectNotice(url, seconds)
        while (left := deadline - clock.monotonic()) > 0:
            try:
                with socket.create_connection((host, port), timeout=clock.capped(left)):
                    pass
                sock.dial(url, block=True)
            except (pynng.CryptoError, pynng.AuthenticationError) as exc:
                sock.close()
                raise ConnectFailed(
                    f"could not connect to {url}: its TLS certificate is not trusted (the TLS handshake failed: "
                    f"{exc}): the certificate the worker was given to trust is not the controller's, or does not "
                    f"name host {host!r}, or the controller does not speak TLS there"
                ) from exc
            except (OSError, pynng.NNGException) as exc:  # refused, reset, unreachable: the controller may not be up yet
                last = exc
                notice.failed(exc)
                clock.sleep(max(0.0, min(delay, deadline - clock.monotonic())))
                delay = min(delay * 2, 1.0)
                continue
            if channel._connected.wait(clock.capped(max(0.0, deadline - clock.monotonic()))):
                return channel
            break
        sock.close()
        raise ConnectFailed(f"could not connect to {url} within {seconds:g} s" + (f": {last}" if last else ""))

    def _pipe_removed(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        if self._on_closed is not None:
            self._on_closed()

    def send(self, frame: bytes) -> None:
        """Send one frame (in fragments when it is larger than the dispatcher takes in one message)."""
        if self._closed:
            raise Closed("the link to the controller is closed")
        try:
            with self._send_lock:  # no frame may land between the fragments of another
                if len(frame) <= MESSAGE_MAX_BYTES:
                    self.sock.send(frame)
                    return
                for message in fragments(frame):
                    self.sock.send(message)
        except pynng.Closed as exc:
            raise Closed("the link to the controller is closed") from exc

    def recv(self, timeout: float, spin: float = 0.0) -> bytes | None:
        """The next frame, or ``None`` after ``timeout`` seconds (``spin`` is ignored)."""
        if self._closed:
            raise Closed("the link to the controller is closed")
        self.sock.recv_timeout = max(1, min(int(timeout * 1000), NNG_TIMEOUT_MAX_MS))  # None after it: the caller reads again
        try:
            return bytes(self.sock.recv())
        except pynng.Timeout:
            if self._closed:
                raise Closed("the link to the controller is closed") from None
            return None
        except pynng.Closed as exc:
            raise Closed("the link to the controller is closed") from exc

    def close(self) -> None:
        """Close the socket."""
        with self._lock:
            self._closed = True
        self.sock.close()
