"""One connection the dispatcher accepted on the ``socket`` transport: :class:`SocketLink`
(its server, :mod:`pycrew.wire.transport.socket_server`, does the reading and writing)."""

from __future__ import annotations

import collections
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pycrew.wire import clock
from pycrew.wire.protocol import HELLO_MAX_BYTES
from pycrew.wire.transport import Link
from pycrew.wire.transport.sockets import DirectFrame, peer_acknowledges

if TYPE_CHECKING:
    from pycrew.wire.transport.socket_server import SocketServer


class SocketLink(Link):
    """One accepted connection (dispatcher thread only)."""

    __slots__ = ("_server", "direct", "id", "limit", "opened", "peer", "rbuf", "sock", "state", "wbuf", "writing")

    def __init__(self, server: SocketServer, sock: socket.socket, peer: str, link_id: int, state: int) -> None:
        self._server = server
        self.sock = sock
        self.peer = peer
        self.id = link_id
        self.state = state
        self.limit = HELLO_MAX_BYTES
        self.rbuf = bytearray()
        self.direct: DirectFrame | None = None  # a large frame being read (see _frames)
        self.wbuf: collections.deque[memoryview] = collections.deque()
        self.writing = False  # registered for EVENT_WRITE too
        self.opened = clock.monotonic()

    def send(self, frame: bytes) -> None:
        """Queue ``frame``; written at once when the socket has room."""
        self._server.send(self, frame)

    def send_parts(self, parts: Sequence[bytes | memoryview]) -> None:
        """Queue the frame made of ``parts``, large ones not copied (see :func:`framed`)."""
        self._server.send(self, parts)

    def close(self) -> None:
        """Close the connection (idempotent)."""
        self._server.close_link(self, None)

    def peer_acknowledges(self, within: float) -> bool | None:
        """See :meth:`Link.peer_acknowledges` (TCP_INFO, on Linux)."""
        return peer_acknowledges(self.sock, within)

    def on_event(self, mask: int) -> None:
        """Selector callback."""
        self._server.on_link_event(self, mask)

    def __repr__(self) -> str:
        return f"<SocketLink {self.id} {self.peer}>"
