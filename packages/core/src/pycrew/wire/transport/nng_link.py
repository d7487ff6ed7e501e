"""One pipe of the dispatcher's NNG socket, :class:`NngLink`, and the fragments a frame
larger than one message travels in (see :mod:`pycrew.wire.transport.nng`)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pynng

from pycrew.wire.protocol import HELLO_MAX_BYTES
from pycrew.wire.transport import Link

log = logging.getLogger("pycrew.wire.transport.nng")

#: Largest NNG message the dispatcher accepts (from any pipe, authenticated or not). Each
#: message costs ~20 us on each side whatever its size: a 200 MB result in 4 KiB fragments
#: took 3.3-3.7 s (54-61 MB/s here), in 16 KiB ones 1.5-2.0 s (101-132 MB/s; the socket
#: wire 0.8 s), and a stranger can make NNG read at most this much per pipe before anything
#: looks at it (a frame joined from fragments stays bounded by HELLO_MAX_BYTES before authentication).
MESSAGE_MAX_BYTES = 4 * HELLO_MAX_BYTES
FRAGMENT_MORE = 0x46  # b"F": a piece of a frame; more pieces follow
FRAGMENT_LAST = 0x45  # b"E": the last piece of a frame
_PIECE = MESSAGE_MAX_BYTES - 1


def fragments(frame: bytes) -> Iterator[bytes]:
    """The messages that carry ``frame``: itself when it fits in one, else its fragments, made
    one at a time (a list of them was a second copy of a 400 MB result in the worker)."""
    if len(frame) <= MESSAGE_MAX_BYTES:
        yield frame
        return
    with memoryview(frame) as view:
        starts = range(0, len(frame), _PIECE)
        last = starts[-1]
        more, end = bytes((FRAGMENT_MORE,)), bytes((FRAGMENT_LAST,))
        for i in starts:
            yield (end if i == last else more) + view[i : i + _PIECE]


class NngLink(Link):
    """One pipe of the dispatcher's socket (and the fragments of the frame arriving on it)."""

    __slots__ = ("id", "limit", "parts", "parts_size", "pipe")

    unacked_max = 2  # a polyamorous pipe's send queue holds two messages

    def __init__(self, pipe: pynng.Pipe, limit: int) -> None:
        self.pipe = pipe
        self.id = pipe.id
        self.limit = limit
        self.parts: list[bytes] = []
        self.parts_size = 0

    def join(self, message: bytes) -> bytes | None:
        """The whole frame once ``message`` completes it, else ``None``.

        Raises:
            ValueError: the frame grows past :attr:`limit`.
        """
        kind = message[0] if message else -1
        if kind != FRAGMENT_MORE and kind != FRAGMENT_LAST:
            if self.parts:
                raise ValueError("a frame arrived in the middle of a fragmented one")
            return message
        self.parts_size += len(message) - 1
        if self.parts_size > self.limit:
            raise ValueError(f"a frame of more than {self.limit} bytes (the link's limit)")
        self.parts.append(message[1:])
        if kind == FRAGMENT_MORE:
            return None
        frame = b"".join(self.parts)
        self.parts = []
        self.parts_size = 0
        return frame

    def send(self, frame: bytes) -> None:
        """Send on this pipe (NNG drops it if the pipe's queue is full; see the module doc)."""
        try:
            self.pipe.send(frame)
        except pynng.NNGException as exc:
            log.debug("send to pipe %s failed: %s", self.id, exc)

    def close(self) -> None:
        """Close the pipe (NNG then reports it removed)."""
        try:
            self.pipe.close()
        except pynng.NNGException:  # already closed by the peer
            pass

    def __repr__(self) -> str:
        return f"<NngLink {self.id}>"
