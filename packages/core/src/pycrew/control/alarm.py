"""Waiting until a controller has resolved some number of futures more.

A ``map`` feeder keeps a window of unfinished tasks submitted. Knowing when each one
finishes through a done-callback costs every task a condition, a lock on the dispatcher
thread and a thread wake-up (half of ``map``'s throughput on no-ops); instead the feeder
asks to be woken once the controller has resolved enough futures for the window to have
room again, and then looks at which of its own futures are done. The dispatcher pays one
comparison per result. The wake-up is only a hint: the waiter also wakes after its
timeout and looks again, so a future resolved some other way is seen all the same.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

#: ``ResolutionAlarm.at`` when nobody waits.
NEVER = 1 << 62


class ResolutionAlarm:
    """Lets other threads sleep until the count of resolved futures reaches a target."""

    __slots__ = ("_cv", "at")

    def __init__(self) -> None:
        self.at = NEVER  # the smallest target anyone waits for (read by the dispatcher per result)
        self._cv = threading.Condition(threading.Lock())

    def wait(self, resolved: Callable[[], int], more: int, timeout: float) -> None:
        """Sleep until ``resolved()`` has grown by ``more`` (or ``timeout`` seconds passed)."""
        with self._cv:
            target = resolved() + max(1, more)
            if target < self.at:
                self.at = target
            if resolved() < target:
                self._cv.wait(timeout)

    def check(self, resolved: int) -> None:
        """The count of resolved futures is now ``resolved`` (dispatcher thread, per result)."""
        if resolved >= self.at:
            with self._cv:
                self.at = NEVER  # a waiter with a later target sets it again
                self._cv.notify_all()
