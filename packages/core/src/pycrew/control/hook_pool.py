"""The threads that call a launcher's hooks: :class:`HookPool`.

A launcher's hooks call platform APIs (``sbatch``, the Kubernetes API, AWS Batch), and a
platform can hang. :class:`concurrent.futures.ThreadPoolExecutor` joins its threads when
the interpreter exits, so one hook call that never returned kept the user's program from
ever exiting, long after its controller had given up on it. These threads are daemon
threads: the controller's termination waits for calls in flight (bounded, see
``Scaler.terminate_all``), and the interpreter does not wait any longer than that.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

_Item = tuple[Future[Any], Callable[..., Any], tuple[Any, ...]]


class HookPool:
    """Up to ``max_workers`` daemon threads, started as calls come; ``submit`` returns a Future.

    Args:
        max_workers: the most calls that run at once (more wait their turn).
        name: the threads' name prefix.
    """

    def __init__(self, max_workers: int, name: str) -> None:
        if max_workers < 1:
            raise ValueError(f"max_workers must be >= 1, got {max_workers}")
        self.max_workers = max_workers
        self.name = name
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._idle = threading.Semaphore(0)  # one release per thread waiting for a call
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def submit(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """Call ``fn(*args)`` in a pool thread; its result or exception goes to the Future.

        Raises:
            RuntimeError: after :meth:`shutdown`.
        """
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise RuntimeError(f"{self.name}: cannot take calls after shutdown")
            self._queue.put((future, fn, args))
            if not self._idle.acquire(blocking=False) and len(self._threads) < self.max_workers:
                thread = threading.Thread(target=self._work, name=f"{self.name}_{len(self._threads)}", daemon=True)
                self._threads.append(thread)
                thread.start()
        return future

    def shutdown(self) -> None:
        """Take no more calls; the threads end once the calls already submitted are done."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for _ in self._threads:
                self._queue.put(None)

    def threads(self) -> int:
        """How many threads the pool has started (tests, diagnostics)."""
        return len(self._threads)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn, args = item
            if future.set_running_or_notify_cancel():
                try:
                    result = fn(*args)
                except BaseException as exc:  # the caller reads it from the Future
                    future.set_exception(exc)
                else:
                    future.set_result(result)
            del item, future, fn, args
            self._idle.release()
