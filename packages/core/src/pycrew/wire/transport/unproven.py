"""Connections that have not proved a worker's token yet, and how many may wait at once.

Anyone who reaches the dispatcher's port can open connections; each holds a file descriptor
until it proves a token or ``seconds_auth`` runs out. A peer that kept opening them (and
opened each again once closed) used up the controller's descriptors: launching a worker
then failed with ``EMFILE``, ``launch_max`` times in a row, and the controller raised
:class:`~pycrew.LaunchError` for good (a probe, on 5b5e0b7, with 300 idle connections under
a limit of 256). So at most :func:`unproven_max` wait at once. Past it a new one closes an
old one (one that has sent nothing first: a real worker sends its preamble at once, and
proves its token within milliseconds), and when all are young (a burst of workers) the
``socket`` server stops accepting for a moment instead.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Generic, TypeVar

from pycrew.wire.transport.limits import open_files_limit

#: The most connections that may wait to authenticate, whatever the limit on open files.
UNPROVEN_MAX = 1024
#: How many of the oldest waiting connections :meth:`Unproven.victim` looks through for one to prefer.
PREFERRED_LOOK = 64
#: A connection this young is not closed to make room: a worker answers within milliseconds,
#: but a burst of thousands takes the dispatcher a moment (the server stops accepting instead,
#: and the newcomers wait in the kernel's backlog, holding no descriptor of this process).
SECONDS_YOUNG = 1.0

L = TypeVar("L")


def unproven_max() -> int:
    """How many connections may wait to authenticate at once: a quarter of this process's
    soft limit on open files (the rest stays for workers, launches and the program), at
    least 16 and at most :data:`UNPROVEN_MAX`."""
    limits = open_files_limit()
    if limits is None or limits[0] <= 0:
        return UNPROVEN_MAX
    return max(16, min(UNPROVEN_MAX, limits[0] // 4))


class Unproven(Generic[L]):
    """The links waiting to authenticate, oldest first, with when each came (dispatcher thread only)."""

    def __init__(self, most: int | None = None) -> None:
        self.most = unproven_max() if most is None else most
        self._links: dict[int, tuple[L, float]] = {}

    def add(self, link_id: int, link: L, now: float) -> None:
        """Track a new link (past :attr:`most`, make room: see :meth:`victim`)."""
        self._links[link_id] = (link, now)

    def victim(self, now: float, prefer: Callable[[L], bool] | None = None, keep: int | None = None) -> L | None:
        """The link to close to make room, untracked now: among the :data:`PREFERRED_LOOK` oldest,
        the oldest for which ``prefer`` is true (one that has sent nothing goes before a worker's
        that has), else the oldest; but not ``keep`` (the one just added), and none that came
        within :data:`SECONDS_YOUNG` (``None``: all of those looked at did: a burst of workers,
        whose answers are on their way)."""
        chosen = None
        for key, (link, since) in itertools.islice(self._links.items(), PREFERRED_LOOK):
            if now - since < SECONDS_YOUNG or key == keep:
                break  # (oldest first: the rest is younger still)
            if chosen is None:
                chosen = key
            if prefer is not None and prefer(link):
                chosen = key
                break
        return None if chosen is None else self._links.pop(chosen)[0]

    def has_old(self, now: float) -> bool:
        """Whether the oldest waiting link came :data:`SECONDS_YOUNG` ago or more (one may go)."""
        return bool(self._links) and now - next(iter(self._links.values()))[1] >= SECONDS_YOUNG

    def oldest(self) -> L:
        """The oldest waiting link, untracked now (to close, where none can be left to wait)."""
        return self._links.pop(next(iter(self._links)))[0]

    def discard(self, link_id: int) -> None:
        """The link proved its token, or is closed."""
        self._links.pop(link_id, None)

    def clear(self) -> None:
        """Forget every link."""
        self._links.clear()

    def __len__(self) -> int:
        return len(self._links)
