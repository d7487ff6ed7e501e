"""Connections to an NNG TLS listener that never finish opening, shut down after ``seconds_auth``.

NNG's TLS transport (1.x) gives a connection no deadline for its TLS handshake: a peer that
connects and sends nothing (a port scanner, or someone holding connections on purpose)
keeps a descriptor of the controller's process for as long as it likes, with no pipe that
pycrew could see or close; enough of them use up the descriptors, and workers can no
longer be launched or connect. (Without TLS, NNG closes a connection whose SP
negotiation takes over 10 s; the ``socket`` wire gives every connection ``seconds_auth``.)

So, on Linux, the listener's TCP connections are looked for among the process's
descriptors (``/proc/self/fd``): one accepted on the listening port whose peer is no
pipe's, for ``seconds_auth``, is shut down. ``shutdown``, not ``close``: the descriptor is
NNG's, which sees the connection end and closes it itself; a duplicate of it is what is
shut down and closed here. Elsewhere this does nothing.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections.abc import Sequence
from typing import Any

from pycrew.loglimit import LogLimiter

#: How often the descriptors are looked through (seconds; at most, and a quarter of ``seconds_auth``).
SECONDS_SWEEP = 2.0

_FDS = "/proc/self/fd"

#: A TCP connection: (the socket's inode, the peer's address and port).
Key = tuple[str, str, int]


class PendingSweep:
    """Shuts down the connections to ``port`` that are no pipe's after ``seconds_auth``."""

    def __init__(self, port: int, seconds_auth: float) -> None:
        self.port = port
        self.seconds_auth = seconds_auth
        self.every = min(SECONDS_SWEEP, max(0.05, seconds_auth / 4))
        self.enabled = os.path.isdir(_FDS)
        self._next = 0.0
        self._first_seen: dict[Key, float] = {}
        self.shut = 0  # connections shut down so far

    def due(self, now: float) -> bool:
        """Whether a sweep is due (cheap: called on every turn of the dispatcher's loop)."""
        return self.enabled and now >= self._next

    def sweep(self, now: float, pipes: Sequence[Any], log: LogLimiter) -> int:
        """Shut down the connections open for ``seconds_auth`` that are none of ``pipes``'
        (pynng pipes: their remote addresses), saying so in ``log``; how many were shut down."""
        self._next = now + self.every
        known = {(host.strip("[]"), int(port)) for host, port in (str(p.remote_address).rsplit(":", 1) for p in pipes)}
        seen: dict[Key, float] = {}
        shut = 0
        for key, sock in self._connections():
            with sock:
                if (key[1], key[2]) in known:
                    continue
                first = seen[key] = self._first_seen.get(key, now)
                if now - first >= self.seconds_auth:
                    with contextlib.suppress(OSError):
                        sock.shutdown(socket.SHUT_RDWR)
                    del seen[key]
                    shut += 1
        self._first_seen = seen
        self.shut += shut
        if shut:
            log.warning("closed %d connection(s) that did not finish opening (TLS) within seconds_auth (%g s)",
                        shut, self.seconds_auth)
        return shut

    def _connections(self) -> list[tuple[Key, socket.socket]]:
        """This process's TCP connections accepted on :attr:`port`, as duplicates to close."""
        found: list[tuple[Key, socket.socket]] = []
        try:
            names = os.listdir(_FDS)
        except OSError:
            return found
        for name in names:
            try:
                target = os.readlink(f"{_FDS}/{name}")
            except OSError:  # closed meanwhile (the listing's own descriptor, say)
                continue
            if not target.startswith("socket:"):
                continue
            try:
                sock = socket.socket(fileno=os.dup(int(name)))
            except OSError:
                continue
            try:
                if sock.type != socket.SOCK_STREAM or sock.family not in (socket.AF_INET, socket.AF_INET6):
                    raise OSError("not TCP")
                if sock.getsockname()[1] != self.port:
                    raise OSError("another port")
                peer = sock.getpeername()  # the listening socket itself has none: OSError
            except OSError:
                sock.close()
                continue
            found.append(((target, str(peer[0]), int(peer[1])), sock))
        return found
