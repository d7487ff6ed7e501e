"""The feeder of a ``buffersize="auto"`` ``map`` (see :mod:`pycrew.control.mapping`): a thread
that reads the input and submits its tasks, keeping a window of them unfinished.

The thread reaches its :class:`Feeder` (and through it the controller, its futures and the
submit function) only through an :class:`~pycrew.control.release.OwnerRef`, strong while
the map runs: a map still reading its input keeps its controller alive, as a future does.
Once the map is stopped (its iterator closed, ``terminate()``, ``cancel(all=True)``,
``shutdown(cancel_futures=True)``) the thread holds the feeder weakly only. Nothing can
interrupt a thread blocked in the input's ``next()`` (a generator waiting on a queue nobody
feeds, say), but it no longer keeps anything of the controller's alive: a controller dropped
is then collected and terminated (see :mod:`pycrew.control.release`), a terminated one freed.
When ``next()`` returns at last, what it returned is dropped and the thread ends.
"""

from __future__ import annotations

import collections
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from pycrew.control.futures import TaskFuture
from pycrew.control.release import OwnerRef

if TYPE_CHECKING:
    from pycrew.control.submitting import Submitting

#: A full window's feeder looks at its futures again at least this often (seconds).
SECONDS_LOOK = 0.1


class Feeder:
    """Submits the map's tasks from a thread, keeping at most ``window`` unfinished.

    While it runs it is in the controller's ``_feeders``: ``wait("all")``, ``shutdown()``
    and the exit hook count it as pending work, and ``terminate()`` or
    ``shutdown(cancel_futures=True)`` stop it (the iterator then raises their error where
    the input was cut).
    """

    def __init__(
        self,
        controller: Submitting,
        submit: Callable[[int, tuple[Any, ...]], TaskFuture[Any]],
        items: Iterator[tuple[int, Any]],
        window: int,
        bytes_max: int,
        floor: int = 1,
    ) -> None:
        self.controller = controller
        self.submit = submit
        self.window = window
        self.bytes_max = bytes_max  # the unfinished tasks' payloads, at most (but for ``floor`` tasks)
        self.floor = floor
        self.bytes = 0  # the payload bytes of ``inflight``
        # Once full, the window is refilled after an eighth of it finished: one wake-up of
        # this thread per window/8 tasks (see pycrew.control.alarm), not one per task.
        self.low = window - max(1, window // 8)
        # Submitted, not seen done: weak references (and payload bytes), so that a result the
        # consumer yielded is never kept alive here, whenever this thread looks next (CPython
        # bpo-14406); a future no one holds any more has finished (the controller holds
        # every unfinished one).
        self.inflight: collections.deque[tuple[weakref.ref[TaskFuture[Any]], int]] = collections.deque()
        self.cond = threading.Condition()
        self.futures: collections.deque[TaskFuture[Any]] = collections.deque()
        self.done = False
        self.error: BaseException | None = None
        self.stopped = False
        self.consumer_waits = False  # the consumer sleeps in has_next (set under cond)
        self.link = OwnerRef(self)  # how the thread reaches this feeder: see the module docstring
        # (the thread's arguments, kept by its Thread object while it runs: nothing holding this feeder)
        self.thread = threading.Thread(target=_feed, args=(self.link, items), name="pycrew-map-feeder", daemon=True)

    def start(self) -> None:
        self.link.hold()  # the thread keeps it (and its controller) until it ends or is stopped
        with self.controller._futures_lock:
            self.controller._feeders.add(self)  # (then: stop() may come now, and let go)
        self.thread.start()

    def _drop_finished(self) -> None:
        """Forget the finished futures at the front."""
        inflight = self.inflight
        while inflight and _finished(inflight[0]):
            self.bytes -= inflight.popleft()[1]

    def _bytes_full(self) -> bool:
        return self.bytes >= self.bytes_max and len(self.inflight) >= self.floor

    def _make_room(self) -> bool:
        """Wait until at most ``low`` of the futures submitted are unfinished and their payloads
        fit in ``bytes_max`` (``False``: stopped)."""
        controller = self.controller
        while True:
            self._drop_finished()
            if len(self.inflight) > self.low or self._bytes_full():  # some finished out of order: look at every one
                self.inflight = collections.deque(entry for entry in self.inflight if not _finished(entry))
                self.bytes = sum(size for _, size in self.inflight)
            if len(self.inflight) <= self.low and not self._bytes_full():
                return True
            if self.stopped:
                return False
            count = max(1, len(self.inflight) - self.low)  # bytes over: the next one that finishes may do
            controller._alarm.wait(lambda: controller._futures_resolved, count, SECONDS_LOOK)

    def submit_one(self, i: int, args: Any) -> bool:
        """Submit the task of item ``i`` once the window has room (``False``: stopped, submit no more)."""
        self._drop_finished()
        if (len(self.inflight) >= self.window or self._bytes_full()) and not self._make_room():
            return False
        if self.stopped:
            return False
        future = self.submit(i, tuple(args))
        self.inflight.append((weakref.ref(future), future.payload_bytes))
        self.bytes += future.payload_bytes
        self.futures.append(future)  # appended first, then the flag read: see has_next
        if self.stopped:  # stopped while submitting: stop() may have missed it (appended first)
            future.cancel()
            return False
        if self.consumer_waits:
            with self.cond:
                self.cond.notify_all()
        return True

    def end(self, error: BaseException | None) -> None:
        """The thread ends: the input ended, raised ``error``, or the feeder was stopped."""
        self.link.held = None  # (no cycle left: freed with its last reference, not at a collection)
        self.inflight.clear()
        with self.cond:
            if error is not None and self.error is None:  # the consumer raises it in turn
                self.error = error
            self.done = True
            self.cond.notify_all()
        with self.controller._futures_lock:
            self.controller._feeders.discard(self)
        with self.controller._cv:
            self.controller._cv.notify_all()

    def has_next(self, deadline: float | None) -> bool:
        """Wait until the next future is there (``True``) or the input has ended (``False``).

        Raises:
            TimeoutError: ``deadline`` passed while waiting for the feeder.
            BaseException: what the iterable (or a submit) raised, or why the feeder was
                stopped, once the futures before it have been taken.
        """
        if self.futures:  # the usual case, without the lock (deques are thread-safe)
            return True
        with self.cond:
            # The flag is set before the deque is looked at, and the feeder appends before it
            # reads the flag: either this sees the future or the feeder sees the flag.
            self.consumer_waits = True
            try:
                while not self.futures and not self.done and not self.stopped:  # (stopped: the input may block)
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise TimeoutError("map: no result within the timeout")
                    self.cond.wait(0.2 if remaining is None else min(0.2, remaining))
            finally:
                self.consumer_waits = False
            if self.futures:
                return True
            if self.error is not None:
                error, self.error = self.error, None
                raise error
            return False

    def take(self) -> TaskFuture[Any]:
        """The next future (after :meth:`has_next` said there is one)."""
        return self.futures.popleft()

    def waiting(self) -> list[TaskFuture[Any]]:
        """The futures submitted and not taken yet."""
        with self.cond:
            return list(self.futures)

    def stop(self, error: BaseException | None = None) -> list[TaskFuture[Any]]:
        """Stop submitting (the iterator raises ``error``, if given, where the input was cut);
        return the futures submitted and not taken. It stops counting as pending work now: its
        thread may be blocked for ever in the input's ``next()`` (what that returns is dropped),
        and from now on it holds this feeder, and so the controller, weakly only."""
        with self.cond:
            self.stopped = True
            if error is not None and self.error is None and not self.done:
                self.error = error
            left = list(self.futures)
            self.cond.notify_all()
        self.link.held = None  # (after ``stopped``: the thread, holding it for a submit, sees it)
        # One set operation, atomic, without _futures_lock: a dropped map's generator may be finalized
        # (and stop its feeder) by a garbage collection on a thread that holds that lock.
        self.controller._feeders.discard(self)
        with self.controller._cv:  # wait("all") and the exit hook look again
            self.controller._cv.notify_all()
        return left


def _feed(link: OwnerRef, items: Iterator[tuple[int, Any]]) -> None:
    """The feeder's thread: submit the items of ``items`` until they end or the feeder is
    stopped. Between two items it holds the feeder only through ``link``: no local may keep
    it (nor its controller) alive while ``next()`` blocks (see the module docstring)."""
    error: BaseException | None = None
    try:
        for i, args in items:
            feeder = link.held
            if not isinstance(feeder, Feeder) or not feeder.submit_one(i, args):
                return  # stopped (its feeder maybe collected): what the input gave last is dropped
            del feeder
    except BaseException as exc:  # the iterable or a submit failed: the consumer raises it in turn
        error = exc
    finally:
        feeder = link.ref()
        if isinstance(feeder, Feeder):
            feeder.end(error)


def _finished(entry: tuple[weakref.ref[TaskFuture[Any]], int]) -> bool:
    future = entry[0]()
    return future is None or future.done()
