"""The clocks the worker and the wire read, out of a task's reach.

A task runs in its worker's process: one that replaces ``time.monotonic`` or ``time.time``
(a test's mock, freezegun left running, a library that "speeds up" sleeps) would otherwise
stop its worker's clock too, and with it the time limits, heartbeats, silence detection
and idle exit that keep a worker from running for ever. These are the ``time`` module's
own functions, taken when pycrew is imported and held through :func:`functools.partial`
(as fast to call as the function itself): replacing an attribute of ``time`` does not
reach them, and freezegun, which swaps every module attribute that *is* one of those
functions, does not recognise them.
"""

from __future__ import annotations

import functools
import threading
import time
from collections.abc import Callable

__all__ = ["capped", "monotonic", "sleep", "thread_time", "wall"]

#: :func:`time.monotonic`: deadlines, heartbeats, silences.
monotonic: Callable[[], float] = functools.partial(time.monotonic)
#: :func:`time.time`: timestamps that travel (a task's start and end, metrics samples).
wall: Callable[[], float] = functools.partial(time.time)
#: :func:`time.sleep`.
sleep: Callable[[float], None] = functools.partial(time.sleep)
#: :func:`time.thread_time`: the CPU time of the calling thread.
thread_time: Callable[[], float] = functools.partial(time.thread_time)


def capped(seconds: float) -> float:
    """``seconds`` as a timeout a wait accepts: at most :data:`threading.TIMEOUT_MAX` (about 292 years).

    Options such as ``seconds_terminate`` or ``seconds_launch`` take any finite number; a lock,
    event, future or socket given more than that raises ``OverflowError`` instead of waiting.
    """
    return min(seconds, threading.TIMEOUT_MAX)
