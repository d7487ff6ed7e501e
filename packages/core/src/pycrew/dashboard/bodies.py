"""Answers the dashboard renders once and serves to every request for a while: :class:`Rendered`.

``/api/state`` and ``/metrics`` read the whole controller: at 1,000 workers one
``/api/state`` took 25 ms of CPU, and four clients scraping in a tight loop made tasks run 3
to 10 times slower (probe L, session 33). So a body is kept for nine times what rendering it
took (at most :data:`SECONDS_KEPT_MAX`), and the requests that come meanwhile get it: the
renders take at most about a tenth of the interpreter whatever the scrape rate, while at a
few workers (a render of well under a millisecond) every request still sees the latest counts.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

#: The longest a rendered body is served again (seconds).
SECONDS_KEPT_MAX = 2.0
#: A body is served again for this many times what rendering it took.
KEPT_PER_RENDER = 9.0


class Rendered:
    """One page's body, rendered by ``render`` when the last one is too old (thread-safe).

    Requests that arrive while it renders wait for that render, not start their own.
    """

    def __init__(self, render: Callable[[], bytes]) -> None:
        self._render = render
        self._lock = threading.Lock()
        self._body = b""
        self._until = float("-inf")

    def body(self) -> bytes:
        """The latest body, rendered now if the one kept is too old (``render``'s errors propagate)."""
        with self._lock:
            started = time.monotonic()
            if started < self._until:
                return self._body
            body = self._render()
            ended = time.monotonic()
            self._body, self._until = body, ended + min(SECONDS_KEPT_MAX, KEPT_PER_RENDER * (ended - started))
            return body


#: Requests the dashboard answers per second at most; more wait their turn (see :class:`Pace`).
REQUESTS_PER_SECOND = 20.0


class Pace:
    """Spaces requests at least ``1 / per_second`` apart: each waits (sleeping, so without
    the interpreter) for its turn, in the order they came (thread-safe).

    Serving a request costs the controller's interpreter more than rendering it (a thread,
    parsing, a 400 KB body at 1,000 workers): four clients scraping in a tight loop made
    tasks run 3 times slower even with the bodies kept. A page polls once a second and a
    Prometheus server every 15 s, far below the pace; a tight loop is slowed to it.
    """

    def __init__(self, per_second: float = REQUESTS_PER_SECOND) -> None:
        self.gap = 1.0 / per_second
        self._lock = threading.Lock()
        self._next = float("-inf")

    def wait(self) -> None:
        """Return at this request's turn."""
        with self._lock:
            now = time.monotonic()
            turn = max(now, self._next)
            self._next = turn + self.gap
        if turn > now:
            time.sleep(turn - now)
