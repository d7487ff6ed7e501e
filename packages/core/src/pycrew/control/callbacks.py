"""Done-callbacks of futures resolved by a controller run on a thread of that controller's.

A dispatcher resolves futures on its own thread. Run there, a future's done-callbacks
would hold up everything the dispatcher does while they run: other results, launches,
heartbeats (a callback that took longer than ``seconds_heartbeat_timeout`` made the
dispatcher drop healthy workers as silent, and count their tasks as crashed), and a
callback that waited for another task's result (``c.submit(g, x).result()``) waited for
the very thread it was holding up. So a future resolved on a dispatcher's thread hands
its callbacks to its controller's ``pycrew-callbacks`` thread, which runs them in the
order their futures resolved: one per controller (as ProcessPoolExecutor has one
management thread per executor), so that a slow or stuck callback holds up no other
controller's. The thread ends after :data:`SECONDS_IDLE` without work and starts again
when needed. ``terminate()`` hands over the callbacks of the futures it ends too
(:func:`deferred`): it resolves every future before any callback runs, so a callback that
waits for another of its futures, or raises ``KeyboardInterrupt``, cannot leave the others
unresolved. A future resolved in user code (``cancel()``) runs its callbacks at once, on
that thread, as :class:`concurrent.futures.Future` does.

The controller's waits (``wait("all")``, ``shutdown(wait=True)``, the interpreter's exit)
also wait for the callbacks of its futures already resolved (:func:`drain`), so that they
return after those callbacks ran, as they did when the callbacks ran on the dispatcher.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

#: The logger ``concurrent.futures`` reports a failing callback to: logging set up for
#: futures of other executors sees pycrew's too.
log = logging.getLogger("concurrent.futures")

_local = threading.local()

#: How long a controller's callbacks thread waits for work before it ends.
SECONDS_IDLE = 30.0


def defer_on_this_thread() -> None:
    """Futures resolved on the calling thread (a dispatcher's) hand their callbacks on."""
    _local.defer = True


def deferring() -> bool:
    """Whether futures resolved on the calling thread hand their callbacks on."""
    return getattr(_local, "defer", False)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Within the block, futures resolved on the calling thread hand their callbacks on."""
    before = deferring()
    _local.defer = True
    try:
        yield
    finally:
        _local.defer = before


class CallbackRunner:
    """One thread that runs done-callbacks in the order they were handed over (one per controller)."""

    def __init__(self) -> None:
        self._reset()
        _runners.add(self)

    def _reset(self) -> None:
        self._items: queue.SimpleQueue[tuple[Any, list[Callable[[Any], object]]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()  # (a plain Lock: see drain)
        self._pending = 0  # handed over, not run yet
        self._thread: threading.Thread | None = None

    def hand_over(self, future: Any, callbacks: list[Callable[[Any], object]]) -> None:
        """Run ``callbacks`` (each called with ``future``) on this runner's thread (any thread)."""
        with self._lock:  # (the put too: the thread ends only when it finds nothing under the lock)
            self._pending += 1
            self._items.put((future, callbacks))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="pycrew-callbacks", daemon=True)
                self._thread.start()

    def retire(self) -> None:
        """Its controller was terminated: the thread ends once it has run what it was handed
        (not :data:`SECONDS_IDLE` later: a loop of short-lived controllers would pile them up)."""
        with self._lock:
            if self._thread is not None:
                self._items.put(None)  # wakes it to look

    def on_this_thread(self) -> bool:
        """Whether the caller is this runner's thread."""
        return self._thread is not None and threading.current_thread() is self._thread

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until the callbacks handed over so far have run.

        Returns at once (``True``) on this runner's thread itself, whose own callback would
        otherwise wait for itself; ``False`` if ``timeout`` seconds passed first.
        """
        if self.on_this_thread():
            return True
        # Polled, not waited for on a Condition: a signal's exception (SIGTERM's SystemExit,
        # Ctrl-C) raised inside Condition.__enter__, a Python function, after it took the
        # lock, left the lock held for ever (seen: terminate() then hung in retire()).
        deadline = None if timeout is None else time.monotonic() + timeout
        pause = 0.0005
        while self._pending:
            if deadline is not None and time.monotonic() >= deadline:
                return False
            time.sleep(pause if deadline is None else max(0.0, min(pause, deadline - time.monotonic())))
            pause = min(pause * 2, 0.02)
        return True

    def _run(self) -> None:
        while True:
            try:
                item = self._items.get(timeout=SECONDS_IDLE)
            except queue.Empty:
                item = None
            if item is None:  # idle, or retired: end if nothing came meanwhile
                with self._lock:
                    if self._items.empty():
                        self._thread = None
                        return
                continue
            future, callbacks = item
            try:
                _call_each(future, callbacks)
            finally:
                # A result must not stay alive here until the next one, nor a callback (its
                # closure may hold the controller, which is released once unused: see release).
                del future, callbacks, item
                with self._lock:
                    self._pending -= 1


def _call_each(future: Any, callbacks: list[Callable[[Any], object]]) -> None:
    for callback in callbacks:
        try:
            callback(future)
        except BaseException:  # one callback must not stop the others, nor this thread
            log.exception("exception calling callback for %r", future)


_runners: weakref.WeakSet[CallbackRunner] = weakref.WeakSet()
_make_lock = threading.Lock()
_shared = CallbackRunner()  # for futures without a controller


def pending() -> bool:
    """Whether done-callbacks handed over are still to run (or running), on any runner."""
    return _shared._pending > 0 or any(r._pending > 0 for r in list(_runners))


def runner_for(owner: object) -> CallbackRunner:
    """The callbacks runner of ``owner`` (a controller), made on first use."""
    if owner is None:
        return _shared
    found: CallbackRunner | None = getattr(owner, "_callback_runner", None)
    if found is None:
        with _make_lock:
            found = getattr(owner, "_callback_runner", None)
            if found is None:
                try:
                    owner._callback_runner = found = CallbackRunner()  # type: ignore[attr-defined]
                except AttributeError:  # an owner without a __dict__
                    return _shared
    return found


def hand_over(future: Any, callbacks: list[Callable[[Any], object]], owner: object) -> None:
    """Run ``callbacks`` (each called with ``future``) on ``owner``'s callbacks thread."""
    runner_for(owner).hand_over(future, callbacks)


def drain(owner: object, timeout: float | None = None) -> bool:
    """Wait for the callbacks of ``owner``'s futures handed over so far (see :class:`CallbackRunner`)."""
    return runner_for(owner).drain(timeout)


def drain_all() -> None:
    """Wait until every callback handed over so far, of every controller, has run (the interpreter's exit)."""
    for runner in list(_runners):
        runner.drain()


def _after_fork_in_child() -> None:  # the parent's threads do not exist in a forked child
    for runner in list(_runners):
        runner._reset()


os.register_at_fork(after_in_child=_after_fork_in_child)
