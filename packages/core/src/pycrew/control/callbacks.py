"""Done-callbacks of futures resolved on a dispatcher's thread run on their own thread.

A dispatcher resolves futures on its own thread. Run there, a future's done-callbacks
would hold up everything the dispatcher does while they run: other results, launches,
heartbeats (a callback that took longer than ``seconds_heartbeat_timeout`` made the
dispatcher drop healthy workers as silent, and count their tasks as crashed), and a
callback that waited for another task's result (``c.submit(g, x).result()``) waited for
the very thread it was holding up. So a future resolved on a dispatcher's thread hands
its callbacks to one process-wide thread, ``pycrew-callbacks``, which runs them in the
order their futures resolved. A future resolved on any other thread (``cancel()`` in
user code, ``terminate()``) runs its callbacks at once, on that thread, as
:class:`concurrent.futures.Future` does.

The controller's waits (``wait("all")``, ``shutdown(wait=True)``, the interpreter's exit)
also wait for the callbacks of its futures already resolved (:func:`drain`), so that they
return after those callbacks ran, as they did when the callbacks ran on the dispatcher.
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

#: The logger ``concurrent.futures`` reports a failing callback to: logging set up for
#: futures of other executors sees pycrew's too.
log = logging.getLogger("concurrent.futures")

_local = threading.local()


def defer_on_this_thread() -> None:
    """Futures resolved on the calling thread (a dispatcher's) hand their callbacks on."""
    _local.defer = True


def deferring() -> bool:
    """Whether futures resolved on the calling thread hand their callbacks on."""
    return getattr(_local, "defer", False)


class CallbackRunner:
    """One thread that runs done-callbacks in the order they were handed over."""

    def __init__(self) -> None:
        self._items: queue.SimpleQueue[tuple[Any, list[Callable[[Any], object]], object]] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._drained = threading.Condition(self._lock)
        self._draining = 0  # threads waiting in drain()
        self._pending: collections.Counter[int] = collections.Counter()  # per owner id: handed over, not run yet
        self._thread: threading.Thread | None = None

    def hand_over(self, future: Any, callbacks: list[Callable[[Any], object]], owner: object) -> None:
        """Run ``callbacks`` (each called with ``future``) on the callbacks thread (any thread)."""
        with self._lock:
            self._pending[id(owner)] += 1
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="pycrew-callbacks", daemon=True)
                self._thread.start()
        self._items.put((future, callbacks, owner))

    def on_this_thread(self) -> bool:
        """Whether the caller is the callbacks thread."""
        return self._thread is not None and threading.current_thread() is self._thread

    def drain(self, owner: object, timeout: float | None = None) -> bool:
        """Wait until the callbacks handed over for ``owner``'s futures have run.

        Returns at once (``True``) on the callbacks thread itself, whose own callback would
        otherwise wait for itself; ``False`` if ``timeout`` seconds passed first.
        """
        return self._wait(lambda: not self._pending[id(owner)], timeout)

    def drain_all(self) -> None:
        """Wait until every callback handed over so far has run (the interpreter's exit)."""
        self._wait(lambda: not self._pending, None)

    def _wait(self, drained: Callable[[], bool], timeout: float | None) -> bool:
        if self.on_this_thread():
            return True
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._drained:  # a Counter's missing key reads 0 and is not stored
            self._draining += 1
            try:
                while not drained():
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        return False
                    self._drained.wait(remaining)
                return True
            finally:
                self._draining -= 1

    def _run(self) -> None:
        while True:
            future, callbacks, owner = self._items.get()
            try:
                for callback in callbacks:
                    try:
                        callback(future)
                    except BaseException:  # one callback must not stop the others, nor this thread
                        log.exception("exception calling callback for %r", future)
            finally:
                with self._lock:
                    key = id(owner)
                    self._pending[key] -= 1
                    if self._pending[key] <= 0:
                        del self._pending[key]
                    if self._draining:
                        self._drained.notify_all()


runner = CallbackRunner()


def _after_fork_in_child() -> None:  # the parent's thread does not exist in a forked child
    global runner
    runner = CallbackRunner()


os.register_at_fork(after_in_child=_after_fork_in_child)


def drain(owner: object, timeout: float | None = None) -> bool:
    """Wait for the callbacks of ``owner``'s futures handed over so far (see :class:`CallbackRunner`)."""
    return runner.drain(owner, timeout)
