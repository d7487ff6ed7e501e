"""``Controller.map``: tasks submitted at once or through a window, results in order."""

from __future__ import annotations

import collections
import concurrent.futures
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any, TypeVar

from pycrew.control.futures import TaskFuture, task_seed
from pycrew.control.progress import ProgressBar

if TYPE_CHECKING:
    from pycrew.control.submitting import Submitting

T = TypeVar("T")


def map_results(
    controller: Submitting,
    fn: Callable[..., T],
    iterables: tuple[Iterable[Any], ...],
    timeout: float | None,
    chunksize: int,
    buffersize: int | None,
    seed: int | None,
    seconds_timeout: float | None,
    progress: bool,
) -> Iterator[T]:
    """Submit ``fn`` over ``iterables`` and iterate the results in order (see :meth:`Controller.map`).

    The iterator keeps no result it has yielded alive (CPython bpo-14406).
    """
    if not isinstance(chunksize, int) or chunksize < 1:
        raise ValueError(f"chunksize must be an int >= 1, got {chunksize!r}")
    if buffersize is not None and (not isinstance(buffersize, int) or isinstance(buffersize, bool) or buffersize < 1):
        raise ValueError(f"buffersize must be None or an int >= 1, got {buffersize!r}")
    items = enumerate(zip(*iterables, strict=False))

    def submit_next() -> bool:
        for i, args in items:
            s = task_seed(seed, i) if seed is not None else None
            future = controller.submit_task(fn, tuple(args), seed=s, seconds_timeout=seconds_timeout)
            assert future is not None
            futures.append(future)
            return True
        return False

    futures: collections.deque[TaskFuture[Any]] = collections.deque()
    while (buffersize is None or len(futures) < buffersize) and submit_next():
        pass
    deadline = None if timeout is None else time.monotonic() + timeout
    yielded = 0
    bar = ProgressBar(controller, len(futures), desc=f"{controller.name} map") if progress else None

    def done_count() -> int:
        # Futures already yielded are gone from ``futures`` (and so is their result,
        # once the caller drops it: bpo-14406); count them as done.
        return yielded + sum(f.done() for f in futures)

    def next_result(future: Future[T]) -> T:
        if bar is None:
            return future.result(None if deadline is None else deadline - time.monotonic())
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            try:
                return future.result(0.2 if remaining is None else max(0.0, min(0.2, remaining)))
            except concurrent.futures.TimeoutError:
                bar.refresh(done=yielded - 1 + sum(f.done() for f in futures))
                if remaining is not None and remaining <= 0.2:
                    raise

    def results() -> Iterator[T]:
        nonlocal yielded
        try:
            while futures:
                if buffersize is not None and not controller._shutdown and submit_next() and bar is not None:
                    bar.bar.total = yielded + len(futures)
                yielded += 1  # counted as it is taken: no local may keep its result alive while suspended
                yield next_result(futures.popleft())
        finally:
            for f in futures:
                f.cancel()
            if bar is not None:
                bar.refresh(done=done_count())
                bar.bar.close()

    return results()
