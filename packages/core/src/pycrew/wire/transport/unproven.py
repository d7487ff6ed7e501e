"""Connections that have not proved a worker's token yet, and how many may wait at once.

Anyone who reaches the dispatcher's port can open connections; each holds a file descriptor
until it proves a token or ``seconds_auth`` runs out. A peer that kept opening them (and
opened each again once closed) used up the controller's descriptors: launching a worker
then failed with ``EMFILE``, ``launch_max`` times in a row, and the controller raised
:class:`~pycrew.LaunchError` for good (a probe, on 5b5e0b7, with 300 idle connections under
a limit of 256). So at most :func:`unproven_max` wait at once; a new one closes the oldest
(a real worker proves its token within milliseconds of connecting: the oldest waiting is
the likeliest stranger).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Generic, TypeVar

from pycrew.wire.transport.limits import open_files_limit

#: The most connections that may wait to authenticate, whatever the limit on open files.
UNPROVEN_MAX = 1024
#: How many of the oldest waiting connections :meth:`Unproven.add` looks through for one to prefer.
PREFERRED_LOOK = 64

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
    """The links waiting to authenticate, oldest first (dispatcher thread only)."""

    def __init__(self, most: int | None = None) -> None:
        self.most = unproven_max() if most is None else most
        self._links: dict[int, L] = {}

    def add(self, link_id: int, link: L, prefer: Callable[[L], bool] | None = None) -> L | None:
        """Track a new link; if there are now too many, one to close: the oldest waiting, or the
        oldest other than the new one for which ``prefer`` is true among the
        :data:`PREFERRED_LOOK` oldest (one that has sent nothing goes before a worker's that has)."""
        self._links[link_id] = link
        if len(self._links) <= self.most:
            return None
        chosen = next(iter(self._links))
        if prefer is not None:
            for key, waiting in itertools.islice(self._links.items(), PREFERRED_LOOK):
                if key != link_id and prefer(waiting):
                    chosen = key
                    break
        return self._links.pop(chosen)

    def discard(self, link_id: int) -> None:
        """The link proved its token, or is closed."""
        self._links.pop(link_id, None)

    def clear(self) -> None:
        """Forget every link."""
        self._links.clear()

    def __len__(self) -> int:
        return len(self._links)
