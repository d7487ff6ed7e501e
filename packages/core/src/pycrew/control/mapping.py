"""``Controller.map``: tasks submitted eagerly, through a window refilled as tasks finish, or
through Python 3.14's ``buffersize`` window; results in order.

``buffersize="auto"`` (the default) keeps at most a window of unfinished tasks submitted: a
feeder thread reads the iterables and submits the next task whenever one finishes, whether
or not its result has been taken yet. So every task runs even if nobody iterates (as with
``concurrent.futures``' eager ``map``), but a million-item ``map`` never holds a million
pending payloads and task records at once. The window is bounded in bytes too: tasks with
large arguments (a ``functools.partial`` holding a big array, say) stop being submitted
ahead once their pickles take :data:`AUTO_WINDOW_BYTES`, as long as every worker has one
to run and a few wait (:func:`auto_floor`). ``buffersize=None`` submits everything at
once; ``buffersize=n`` submits at most ``n`` tasks ahead of the results taken (3.14).
"""

from __future__ import annotations

import collections
import concurrent.futures
import threading
import time
import weakref
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pycrew.control import arguments
from pycrew.control.futures import TaskFuture, task_seed
from pycrew.control.progress import ProgressBar

if TYPE_CHECKING:
    from pycrew.control.submitting import Submitting

T = TypeVar("T")

#: ``buffersize="auto"``: unfinished tasks in flight, at least this many ...
AUTO_WINDOW_MIN = 4096
#: ... and this many per worker (enough to keep every worker's prefetch window fed).
AUTO_WINDOW_PER_WORKER = 512
#: ... and their pickled payloads take at most this many bytes (though :func:`auto_floor`
#: tasks are kept in flight however large they are).
AUTO_WINDOW_BYTES = 64 << 20
#: A full window's feeder looks at its futures again at least this often (seconds).
SECONDS_LOOK = 0.1

Buffersize = int | None | Literal["auto"]


def auto_window(workers: int) -> int:
    """The window of ``buffersize="auto"`` for a controller of ``workers`` workers."""
    return max(AUTO_WINDOW_MIN, AUTO_WINDOW_PER_WORKER * workers)


def auto_floor(workers: int) -> int:
    """The fewest unfinished tasks ``buffersize="auto"`` keeps, whatever their size: one to
    run per worker, and a quarter (at least 2) more waiting, so that a worker that finishes
    gets its next task at once while the feeder pickles another."""
    return workers + max(2, workers // 4)


def check_map_arguments(chunksize: int, buffersize: Buffersize, timeout: float | None = None) -> None:
    """Validate ``map``'s ``chunksize``, ``buffersize`` and ``timeout``.

    Raises:
        ValueError: naming the argument, its value and what it must be.
    """
    if not isinstance(chunksize, int) or isinstance(chunksize, bool) or chunksize < 1:
        raise ValueError(f"chunksize must be an int >= 1, got {chunksize!r}")
    if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout != timeout):
        raise ValueError(f"map timeout must be a number of seconds (from the call) or None, got {timeout!r}")
    if buffersize is None or buffersize == "auto":
        return
    if not isinstance(buffersize, int) or isinstance(buffersize, bool):  # as Python 3.14's map (also a ValueError)
        raise _ArgumentTypeError(f"buffersize must be an integer or None (or 'auto'), got {buffersize!r}")
    if buffersize < 1:
        raise ValueError(f"buffersize must be None or > 0 (or 'auto'), got {buffersize!r}")


class _ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type: a TypeError, as :mod:`concurrent.futures` raises, and a
    ValueError, as pycrew raised for every bad ``map`` argument before."""


class _Feeder:
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
        bytes_max: int = AUTO_WINDOW_BYTES,
        floor: int = 1,
    ) -> None:
        self.controller = controller
        self.submit = submit
        self.items = items
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
        self.thread = threading.Thread(target=self._run, name="pycrew-map-feeder", daemon=True)

    def start(self) -> None:
        with self.controller._futures_lock:
            self.controller._feeders.add(self)
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

    def _run(self) -> None:
        try:
            for i, args in self.items:
                self._drop_finished()
                if (len(self.inflight) >= self.window or self._bytes_full()) and not self._make_room():
                    return
                if self.stopped:
                    return
                future = self.submit(i, tuple(args))
                self.inflight.append((weakref.ref(future), future.payload_bytes))
                self.bytes += future.payload_bytes
                self.futures.append(future)  # appended first, then the flag read: see has_next
                if self.stopped:  # stopped while submitting: stop() may have missed it (appended first)
                    future.cancel()
                    return
                if self.consumer_waits:
                    with self.cond:
                        self.cond.notify_all()
                del future  # the deque holds it until the consumer takes it
        except BaseException as exc:  # the iterable or a submit failed: the consumer raises it in turn
            with self.cond:
                if self.error is None:
                    self.error = exc
        finally:
            self.inflight.clear()
            with self.cond:
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
        thread may be blocked for ever in the input's ``next()`` (what that returns is dropped)."""
        with self.cond:
            self.stopped = True
            if error is not None and self.error is None and not self.done:
                self.error = error
            left = list(self.futures)
            self.cond.notify_all()
        # One set operation, atomic, without _futures_lock: a dropped map's generator may be finalized
        # (and stop its feeder) by a garbage collection on a thread that holds that lock.
        self.controller._feeders.discard(self)
        with self.controller._cv:  # wait("all") and the exit hook look again
            self.controller._cv.notify_all()
        return left


def _finished(entry: tuple[weakref.ref[TaskFuture[Any]], int]) -> bool:
    future = entry[0]()
    return future is None or future.done()


def map_results(
    controller: Submitting,
    fn: Callable[..., T],
    iterables: tuple[Iterable[Any], ...],
    timeout: float | None,
    chunksize: int,
    buffersize: Buffersize,
    seed: int | None,
    seconds_timeout: float | None,
    progress: bool,
) -> Iterator[T]:
    """Submit ``fn`` over ``iterables`` and iterate the results in order (see :meth:`Controller.map`).

    The iterator keeps no result it has yielded alive (CPython bpo-14406).
    """
    check_map_arguments(chunksize, buffersize, timeout)
    seed = arguments.seed(seed)
    items = enumerate(zip(*iterables, strict=False))

    def submit(i: int, args: tuple[Any, ...]) -> TaskFuture[Any]:
        s = task_seed(seed, i) if seed is not None else None
        # after_shutdown: a map begun before shutdown() (the auto window feeds its input until terminate())
        future = controller._queue_task(fn, args, None, None, False, s, seconds_timeout, None, after_shutdown=True)
        assert future is not None
        return future

    deadline = None if timeout is None else time.monotonic() + timeout
    if buffersize == "auto":
        controller._check()  # start it here, and raise a launch or dispatcher error here, as a submit would
        workers = getattr(getattr(controller, "options", None), "workers", 1)
        feeder = _Feeder(controller, submit, items, auto_window(int(workers)), AUTO_WINDOW_BYTES, auto_floor(int(workers)))
        feeder.start()
        total = _known_length(iterables)
        return _Results(_fed_results(controller, feeder, deadline, total, progress), feeder)
    window = buffersize  # None (everything now) or an int (3.14: ahead of the results taken)
    futures: collections.deque[TaskFuture[Any]] = collections.deque()

    def submit_next() -> bool:
        for i, args in items:
            futures.append(submit(i, tuple(args)))
            return True
        return False

    while (window is None or len(futures) < window) and submit_next():
        pass
    yielded = 0
    bar = ProgressBar(controller, len(futures), desc=f"{controller.name} map", own=True) if progress else None

    def waiting_done() -> int:  # those yielded are gone from ``futures`` (and their results: bpo-14406)
        return yielded - 1 + sum(f.done() for f in futures)

    def results() -> Iterator[T]:
        nonlocal yielded
        refill, cut = window is not None, False
        try:
            while futures:
                if refill and controller._shutdown:  # as Python 3.14's: nothing is submitted after shutdown()
                    refill, cut = False, next(items, None) is not None  # (that item is lost, as in 3.14)
                if refill and submit_next() and bar is not None:
                    bar.bar.total = yielded + len(futures)
                yielded += 1  # counted as it is taken: no local may keep its result alive while suspended
                yield _result(futures.popleft(), deadline, bar, waiting_done)
            if cut:  # never end as if the input had ended
                raise RuntimeError(f"cannot schedule new futures after shutdown: map(buffersize={window}) cut "
                                   f"after {yielded} results, controller {controller.name!r} shut down")
        finally:
            for f in futures:
                f.cancel()
            if bar is not None:  # those just cancelled are not done: a map given up on ends short of its total
                bar.refresh(done=yielded + sum(f.done() and not f.cancelled() for f in futures))
                bar.end()

    return results()


class _Results(Iterator[T]):
    """The auto window's results: its generator's, and :meth:`close` stops the feeder and
    cancels the futures not taken also before the first ``next`` (a generator's ``close``
    then does nothing: an endless input closed unread fed the workers for ever). Dropped,
    it does not: every task of a map runs whether or not it is iterated."""

    __slots__ = ("_feeder", "_results")

    def __init__(self, results: Generator[T, None, None], feeder: _Feeder) -> None:
        self._results = results
        self._feeder = feeder

    def __next__(self) -> T:
        return next(self._results)

    def close(self) -> None:
        """Stop reading the input and cancel what was not taken (as a generator's ``close``)."""
        for f in self._feeder.stop():  # first: another thread may be in next(), and close() raise ValueError
            f.cancel()
        self._results.close()


def _known_length(iterables: tuple[Iterable[Any], ...]) -> int | None:
    """The number of items ``zip(*iterables)`` gives, if every iterable has a length."""
    try:
        return min(len(it) for it in iterables)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _fed_results(
    controller: Submitting, feeder: _Feeder, deadline: float | None, total: int | None, progress: bool
) -> Generator[Any, None, None]:
    bar = ProgressBar(controller, total or 0, desc=f"{controller.name} map", own=True) if progress else None
    yielded = 0

    def done() -> int:
        # taken before the one being waited for, plus the finished ones not taken yet
        return yielded - 1 + sum(f.done() for f in feeder.waiting())

    try:
        while feeder.has_next(deadline):
            if bar is not None and total is None:  # (the one about to be taken is among those waiting)
                bar.bar.total = max(bar.bar.total or 0, yielded + len(feeder.waiting()))
            yielded += 1  # counted as it is taken: no local may keep its result alive while suspended
            yield _result(feeder.take(), deadline, bar, done)
    finally:
        for f in feeder.stop():
            f.cancel()
        if bar is not None:  # those just cancelled are not done: a map given up on ends short of its total
            bar.refresh(done=yielded + sum(f.done() and not f.cancelled() for f in feeder.waiting()))
            bar.end()


def _result(future: Future[T], deadline: float | None, bar: ProgressBar | None, done: Callable[[], int]) -> T:
    """``future``'s result by ``deadline``, redrawing ``bar`` while waiting; a future given up
    on (the timeout, a Ctrl-C) is cancelled with the rest, as ``concurrent.futures`` does."""
    try:
        return _wait_result(future, deadline, bar, done)
    except BaseException:
        future.cancel()  # a no-op for a future that finished (its task's error is what is raised)
        raise


def _wait_result(future: Future[T], deadline: float | None, bar: ProgressBar | None, done: Callable[[], int]) -> T:
    if bar is None:
        return future.result(None if deadline is None else deadline - time.monotonic())
    while True:
        remaining = None if deadline is None else deadline - time.monotonic()
        try:
            return future.result(0.2 if remaining is None else max(0.0, min(0.2, remaining)))
        except concurrent.futures.TimeoutError:
            bar.refresh(done=done())
            if remaining is not None and remaining <= 0.2:
                raise
