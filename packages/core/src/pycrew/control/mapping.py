"""``Controller.map``: tasks submitted eagerly, through a window refilled as tasks finish, or
through Python 3.14's ``buffersize`` window; results in order.

``buffersize="auto"`` (the default) keeps at most a window of unfinished tasks submitted: a
feeder thread (:mod:`pycrew.control.map_feeder`) reads the iterables and submits the next
task whenever one finishes, whether or not its result has been taken yet. So every task
runs even if nobody iterates (as with ``concurrent.futures``' eager ``map``), but a
million-item ``map`` never holds a million pending payloads and task records at once. The
window is bounded in bytes too: tasks with large arguments (a ``functools.partial`` holding
a big array, say) stop being submitted ahead once their pickles take
:data:`AUTO_WINDOW_BYTES`, as long as every worker has one to run and a few wait
(:func:`auto_floor`). ``buffersize=None`` submits everything at once; ``buffersize=n``
submits at most ``n`` tasks ahead of the results taken (3.14).
"""

from __future__ import annotations

import collections
import concurrent.futures
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pycrew.control import arguments
from pycrew.control.futures import TaskFuture, task_seed
from pycrew.control.map_feeder import Feeder
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
    arguments.function(fn)  # checked here, not only as the first task is submitted (the auto window's thread)
    arguments.seconds_timeout(seconds_timeout)
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
        feeder = Feeder(controller, submit, items, auto_window(int(workers)), AUTO_WINDOW_BYTES, auto_floor(int(workers)))
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

    def __init__(self, results: Generator[T, None, None], feeder: Feeder) -> None:
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
    controller: Submitting, feeder: Feeder, deadline: float | None, total: int | None, progress: bool
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
