"""``pycrew.controller("sequential")``: tasks run in the calling process, at push, for debugging.

Same result API as a real controller (``push``/``pop``/``wait``/``collect``/``submit``/
``map``/``summary``/``terminate``), but no workers, no pickling and no threads: a breakpoint
or ``pdb.post_mortem`` inside a task works as in plain Python.
"""

from __future__ import annotations

import collections
import concurrent.futures
import os
import socket
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal, TypeVar

from pycrew.control import arguments
from pycrew.control.arguments import keywords, positional, walk_names
from pycrew.control.futures import TaskFuture, task_seed
from pycrew.control.mapping import check_map_arguments
from pycrew.control.quoting import shown, text_of
from pycrew.controller_options import ControllerOptions
from pycrew.errors import ControllerError, OptionsError
from pycrew.results import STATUSES, ControllerSummary, Summary, TaskResult, WorkerSummary
from pycrew.wire.functions import call_by_name
from pycrew.worker.seeding import restore_generators, seed_generators

T = TypeVar("T")


class SequentialController(concurrent.futures.Executor):
    """A controller that runs every task immediately in this process."""

    def __init__(self, name: str | None = "sequential", **options: Any) -> None:
        unknown = set(options) - {"workers", "seconds_timeout", "initializer", "initargs", "seconds_initializer"}
        if unknown:
            raise OptionsError(f"the sequential controller takes no option(s) {sorted(unknown)}; it runs tasks in this process")
        self._seconds_initializer = 0.0
        # The same code runs with any controller: what a real one refuses (a bad count, a NaN time limit,
        # a name that is no text), this one refuses too, with the same message.
        checked = ControllerOptions(name=name, **options)
        if checked.initializer is not None:
            init, initargs = checked.initializer, checked.initargs  # once, here: this process is the one worker
            started = time.monotonic()
            call_by_name(init, *initargs) if isinstance(init, str) else init(*initargs)
            self._seconds_initializer = time.monotonic() - started
        self.name = checked.name or "sequential"
        self.id = "sequential"
        self._results: collections.deque[TaskResult] = collections.deque()
        self._counts = dict.fromkeys(STATUSES, 0)
        self._pushed = 0
        self._popped = 0
        self._seconds = 0.0
        self._terminated = False
        self._t0 = time.monotonic()

    # -- running -------------------------------------------------------------------------

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], name: str, seed: int | None) -> TaskResult:
        if self._terminated:
            # (a RuntimeError, saying what concurrent.futures says: Executor code checks for it)
            raise ControllerError(f"cannot schedule new futures after shutdown: controller {self.name!r} was terminated")
        self._pushed += 1
        t0 = time.time()
        state = seed_generators(seed) if seed is not None else None
        fields: dict[str, Any] = {}
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                value = fn(*args, **kwargs)
            fields = {"result": value}
        except Exception as exc:  # the task's failure is its result, as on a worker
            caught = []
            kind = type(exc)
            fields = {
                "status": "error",
                "error": text_of(exc) or shown(exc),
                "error_type": kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}",
                "traceback": traceback.format_exc(),
                "exception": exc,
            }
        finally:
            if state is not None:
                restore_generators(state)
        t1 = time.time()
        result = TaskResult(
            name=name,
            warnings=tuple(f"{w.category.__name__}: {w.message}" for w in caught),
            seconds=t1 - t0,
            time_start=t0,
            time_end=t1,
            controller=self.name,
            launcher="sequential",
            worker=1,
            instance="sequential",
            host=socket.gethostname(),
            pid=os.getpid(),
            attempts=1,
            seed=seed,
            **fields,
        )
        self._counts[result.status] += 1
        self._seconds += result.seconds
        return result

    def push(
        self,
        fn: Callable[..., Any],
        args: Iterable[Any] = (),
        kwargs: dict[str, Any] | None = None,
        name: str | None = None,
        seed: int | None = None,
        seconds_timeout: float | None = None,
    ) -> str:
        """Run the task now; its result waits for :meth:`pop`. ``seconds_timeout`` is ignored."""
        args, kwargs = positional(args, "push()"), keywords(kwargs, "push()")
        name, seed = arguments.name(name) or f"task_{self._pushed + 1}", arguments.seed(seed)
        self._results.append(self._run(fn, args, kwargs, name, seed))
        return name

    def walk(
        self,
        fn: Callable[..., Any],
        iterable: Iterable[Any],
        names: Iterable[str] | None = None,
        seed: int | None = None,
        seconds_timeout: float | None = None,
        progress: bool = False,
    ) -> list[str]:
        """Push ``fn(item)`` for every item (``seconds_timeout`` and ``progress`` are ignored: each runs now)."""
        seed = arguments.seed(seed)
        items = list(iterable)
        given = walk_names(names, len(items))
        return [
            self.push(fn, (item,), name=given[i] if given else None, seed=task_seed(seed, i) if seed is not None else None)
            for i, item in enumerate(items)
        ]

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> concurrent.futures.Future[T]:
        """Run now; return a finished future."""
        result = self._run(fn, args, kwargs, f"task_{self._pushed + 1}", None)
        future: TaskFuture[T] = TaskFuture()
        if result.status == "success":
            future.set_result(result.result)
        else:
            assert result.exception is not None
            future.set_exception(result.exception)
        return future

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | Literal["auto"] | None = "auto",
        seed: int | None = None,
        seconds_timeout: float | None = None,
        progress: bool = False,
    ) -> Iterator[T]:
        """Run every task now, in order; raise the first task's error when reached.

        ``timeout``, ``chunksize``, ``buffersize``, ``seconds_timeout`` and ``progress``
        are accepted for the shared API and have nothing to do here.
        """
        check_map_arguments(chunksize, buffersize, timeout)  # as any controller: bad ones fail here too
        seed = arguments.seed(seed)
        futures = []
        for i, args in enumerate(zip(*iterables, strict=False)):
            s = task_seed(seed, i) if seed is not None else None
            result = self._run(fn, tuple(args), {}, f"task_{self._pushed + 1}", s)
            futures.append(result)

        def results() -> Iterator[T]:
            for r in futures:
                if r.status != "success":
                    assert r.exception is not None
                    raise r.exception
                yield r.result

        return results()

    # -- results -----------------------------------------------------------------------------

    def pop(self) -> TaskResult | None:
        """The next result, or ``None``."""
        if self._results:
            self._popped += 1
            return self._results.popleft()
        return None

    def collect(self) -> list[TaskResult]:
        """Every result not popped yet."""
        out = list(self._results)
        self._results.clear()
        self._popped += len(out)
        return out

    def wait(self, mode: Literal["all", "one"] = "all", timeout: float | None = None, progress: bool = False) -> bool:
        """Always ``True``: every task already ran."""
        if mode not in ("all", "one"):
            raise OptionsError(f"wait mode must be 'all' or 'one', got {mode!r}")
        return True

    def cancel(self, names: Iterable[str] | str | None = None, all: bool = False) -> int:
        """Nothing is ever queued or running here: returns 0 (after the checks a controller makes)."""
        arguments.cancel_names(names, all)
        return 0

    def ready(self) -> int:
        """Results waiting for :meth:`pop`."""
        return len(self._results)

    def unresolved(self) -> int:
        """Always 0."""
        return 0

    def summary(self) -> Summary:
        """Counts, in the same shape as a real controller's."""
        c = self._counts
        resolved = sum(c.values())
        controller = ControllerSummary(
            controller=self.name, launcher="sequential", pushed=self._pushed, queued=0, running=0, resolved=resolved,
            popped=self._popped, success=c["success"], error=c["error"], crash=c["crash"], cancel=c["cancel"],
            timeout=c["timeout"], retries=0, workers_online=0, workers_launching=0, seconds=time.monotonic() - self._t0,
        )
        worker = WorkerSummary(
            worker=1, online=False, instances=0, launches=0, launch_failures=0, assigned=self._pushed, complete=resolved,
            crashes=0, seconds_busy=self._seconds, instance="sequential", host=socket.gethostname(), pid=os.getpid(),
            seconds_initializer=self._seconds_initializer,
        )
        return Summary(controller=controller, workers=(worker,), launcher={"launcher": "sequential"})

    # -- life cycle ------------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether the controller accepts tasks."""
        return not self._terminated

    def start(self) -> SequentialController:
        """Nothing to start; returns ``self``."""
        return self

    def terminate(self) -> None:
        """Refuse further tasks."""
        self._terminated = True

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Executor API: same as :meth:`terminate`."""
        self.terminate()

    def __enter__(self) -> SequentialController:
        return self

    def __exit__(self, *exc: object) -> None:
        self.terminate()
