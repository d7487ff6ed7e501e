"""Submitting tasks: crew's push and walk, the Executor's submit and map, and cancelling."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError, Future
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from pycrew.control import arguments
from pycrew.control.arguments import keywords, positional, walk_names
from pycrew.control.futures import TaskFuture, task_seed
from pycrew.control.mapping import map_results
from pycrew.control.pickling import pack_task
from pycrew.control.progress import ProgressBar
from pycrew.control.state import ControllerState
from pycrew.control.tasks import Task
from pycrew.errors import ControllerError
from pycrew.results import TaskResult

if TYPE_CHECKING:
    from pycrew.control.dispatcher import Dispatcher

T = TypeVar("T")


class Submitting(ControllerState):
    """How tasks get into a controller (and out again, by cancelling)."""

    _futures_lock: threading.Lock
    _let_go_if_idle: Callable[[], None]
    _result_listeners: list[Callable[[Task, TaskResult], None]]

    def submit_task(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        name: str | None = None,
        keep: bool = False,
        seed: int | None = None,
        seconds_timeout: float | None = None,
        relay: Callable[[TaskResult], None] | None = None,
    ) -> TaskFuture[Any] | None:
        """Queue one task with every option (what ``push``, ``submit`` and ``map`` build on).

        Args:
            fn: the function to run on a worker.
            args: its positional arguments.
            kwargs: its keyword arguments.
            name: the task's name (default ``task_<n>``).
            keep: ``True`` for crew-style tasks whose result goes to :meth:`pop`;
                ``False`` for a task with a future.
            seed: seed Python's ``random`` (and NumPy's global generator) with this.
            seconds_timeout: time limit (default: the controller's ``seconds_timeout``).
            relay: receives the result instead of this controller (used by backups).

        Returns:
            The task's future, or ``None`` when ``keep`` or ``relay`` is set.

        Raises:
            SerializationError: the task cannot be pickled (naming the culprit).
            OptionsError: a bad ``name``, ``seed`` or ``seconds_timeout``.
        """
        args, kwargs = positional(args, "submit_task()"), keywords(kwargs, "submit_task()")
        return self._queue_task(fn, args, kwargs, name, keep, seed, seconds_timeout, relay, after_shutdown=False)

    def _queue_task(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any] | None,
        name: str | None,
        keep: bool,
        seed: int | None,
        seconds_timeout: float | None,
        relay: Callable[[TaskResult], None] | None,
        after_shutdown: bool,
    ) -> TaskFuture[Any] | None:
        """:meth:`submit_task`; with ``after_shutdown`` (a ``map`` called before ``shutdown``
        submitting the rest of its input) also after ``shutdown()``, until ``terminate()``."""
        self._refuse_if_stopped(after_shutdown)
        arguments.function(fn)
        seed = arguments.seed(seed)
        seconds_timeout = arguments.seconds_timeout(seconds_timeout)
        if seconds_timeout is None:
            seconds_timeout = self.options.seconds_timeout
        task_id = next(self._ids)
        name = arguments.name(name)
        payload = pack_task(name or f"task_{task_id}", fn, args, kwargs or {}, seed, seconds_timeout)  # a dict of its own
        dispatcher = self._check()  # after every check of the task: bad input starts nothing
        future: TaskFuture[Any] | None = None
        if not keep and relay is None:
            future = TaskFuture(self, task_id)
            future.payload_bytes = len(payload)
        task = Task(task_id, name, payload, future, keep, seed, seconds_timeout)
        task.relay = relay
        if self._result_listeners:  # a dashboard measures each task's round trip
            task.submitted = time.monotonic()
        self._enqueue(dispatcher, task, future is not None, after_shutdown)
        return future

    def _enqueue(self, dispatcher: Dispatcher, task: Task, with_future: bool, after_shutdown: bool = False) -> None:
        """Count ``task`` and queue it, or refuse it if the controller stopped taking tasks.

        Under the lock :meth:`_stop_taking` and ``terminate()`` set their flags under: a task
        is queued before they stop taking tasks (so ``terminate()``, which takes the
        dispatcher's tasks to end them once it stopped, ends it too, and ``shutdown()``
        waits for it), or refused. Before, a submit that raced ``terminate()`` could be queued
        after that, to a dispatcher whose loop had ended, and its future never resolved.

        A Ctrl-C caught around the call (a notebook's "interrupt kernel") must leave no task
        counted and not queued, which ``wait()``, ``shutdown()`` and the interpreter's exit
        would wait for forever. CPython raises it only after a call returns (or as a Python
        function starts), so none lands between the counts, nor between ``appending`` and
        the append: if it comes before, the counts are undone.
        """
        with self._futures_lock:  # (and the counts: a free-threaded build has no GIL to make += atomic)
            self._refuse_if_stopped(after_shutdown)
            if with_future:
                self._futures_issued += 1
            self.pushed += 1
            appending = False
            try:
                self._owner.hold()  # counted first: see OwnerRef.let_go_if
                appending = True
                dispatcher.submissions.append(task)
            except BaseException:
                if not appending:
                    self._futures_issued -= with_future
                    self.pushed -= 1
                    self._let_go_if_idle()
                raise
            dispatcher.submitted()
        dispatcher.abandon_late()  # a loop that died meanwhile: its error resolves the task (not under the lock)

    def _refuse_if_stopped(self, after_shutdown: bool) -> None:
        """Raise if the controller takes no more tasks (``after_shutdown``: a ``map`` begun
        before ``shutdown()`` submits the rest of its input until ``terminate()``)."""
        if self._terminated or (self._shutdown and not after_shutdown):
            state = "terminated" if self._terminated else "shut down"
            raise ControllerError(self._forked_message() or f"controller {self.name!r} was {state}; no new tasks")

    def _stop_taking(self) -> None:
        """``shutdown()``: refuse new tasks from now on (see :meth:`_enqueue`)."""
        with self._futures_lock:
            self._shutdown = True

    def push(
        self,
        fn: Callable[..., Any],
        args: Iterable[Any] = (),
        kwargs: dict[str, Any] | None = None,
        name: str | None = None,
        seed: int | None = None,
        seconds_timeout: float | None = None,
    ) -> str:
        """Submit a task whose result you collect with :meth:`pop`, :meth:`collect` or :meth:`wait`.

        Args:
            fn: the function to run on a worker.
            args: its positional arguments: a tuple, a list or any other iterable but a
                string, bytes or a mapping (a TypeError: write ``args=(text,)`` for one string).
            kwargs: its keyword arguments.
            name: the task's name (default ``task_<n>``).
            seed: seed Python's ``random`` (and NumPy's global generator) with this
                while the task runs; the previous state is restored afterwards.
            seconds_timeout: time limit (default: the controller's ``seconds_timeout``).

        Returns:
            The task's name.

        Raises:
            SerializationError: the task cannot be pickled (naming the culprit).
        """
        number = next(self._names)  # the push's number, drawn: pushes from several threads get distinct ones
        if name is None:
            name = f"task_{number}"
        args, kwargs = positional(args, "push()"), keywords(kwargs, "push()")
        self._queue_task(fn, args, kwargs, name, True, seed, seconds_timeout, None, after_shutdown=False)
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
        """Push ``fn(item)`` for every item; returns the task names.

        With ``seed``, task ``i`` gets ``pycrew.task_seed(seed, i)``. With
        ``progress=True``, a bar follows the tasks being pushed (use ``wait(progress=True)``
        to follow them running).
        """
        seed = arguments.seed(seed)
        items = list(iterable)
        given = walk_names(names, len(items))
        out = []
        bar = ProgressBar(self, len(items), desc=f"{self.name} walk (pushed)", own=True) if progress else None
        for i, item in enumerate(items):
            name = given[i] if given is not None else None
            task_seed_i = task_seed(seed, i) if seed is not None else None
            out.append(self.push(fn, (item,), name=name, seed=task_seed_i, seconds_timeout=seconds_timeout))
            if bar is not None and (i % 100 == 0 or i == len(items) - 1):
                bar.refresh(done=i + 1)
        if bar is not None:
            bar.end()
        return out

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Executor API: run ``fn(*args, **kwargs)`` on a worker; returns a future of its value.

        The future's ``exception()`` is the task's own exception (with the remote
        traceback as ``__cause__``), or a :class:`TaskError` subclass for crashes and
        timeouts. ``future.cancel()`` also stops a running task.
        """
        if self._shutdown:
            raise RuntimeError(self._forked_message() or "cannot schedule new futures after shutdown")
        try:
            future = self._queue_task(fn, args, kwargs, None, False, None, None, None, after_shutdown=False)
        except ControllerError as exc:  # refused under the lock, racing shutdown(): the same error as above
            if type(exc) is ControllerError and self._shutdown:
                raise RuntimeError(self._forked_message() or "cannot schedule new futures after shutdown") from None
            raise
        assert future is not None
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
        """Executor API: like :func:`map`, tasks running on workers; results in order.

        With ``buffersize="auto"`` (the default) the iterables are read lazily by a
        background thread that keeps a window of unfinished tasks submitted (4,096, or 512
        per worker if more) and submits the next task whenever one finishes: every task runs
        whether or not you iterate, as with :mod:`concurrent.futures`, but a map over a
        million items never holds a million pending tasks; a map begun before ``shutdown()``
        submits the rest of its input until ``terminate()``. ``close()`` on the iterator (or
        ``cancel(all=True)``) stops reading the input and cancels what was not yielded: the map
        no longer counts as pending work, even while a ``next()`` on the input blocks (whatever
        it returns is not submitted). ``buffersize=None`` submits every task at once;
        ``buffersize=n`` (Python 3.14's semantics) submits at most ``n`` tasks ahead of the
        results yielded so far, and nothing after ``shutdown()``: the iterator yields the
        results already submitted, then raises ``RuntimeError`` if any input was left (it
        never ends as if the input had ended). Iterating raises a task's exception when its
        turn comes, and ``TimeoutError`` if ``timeout`` seconds (from this call) pass.
        ``chunksize`` is accepted for compatibility and not needed: the dispatcher sends
        queued tasks to workers in batches by itself. With ``seed``, task ``i`` runs seeded
        with ``pycrew.task_seed(seed, i)``. With ``progress=True``, a progress bar follows
        the tasks while you iterate.

        Raises:
            ValueError: ``chunksize`` < 1 or ``buffersize`` not ``"auto"``, None or an int >= 1.
        """
        if self._shutdown:
            raise RuntimeError(self._forked_message() or "cannot schedule new futures after shutdown")
        return map_results(self, fn, iterables, timeout, chunksize, buffersize, seed, seconds_timeout, progress)

    async def submit_async(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``await controller.submit_async(fn, *args)``: the task's value (or its exception raised)."""
        import asyncio  # here, not at the top: only async callers pay its ~15 ms import

        return await asyncio.wrap_future(self.submit(fn, *args, **kwargs))

    def cancel(self, names: Iterable[str] | str | None = None, all: bool = False) -> int:
        """Cancel tasks by name (or every unresolved task with ``all=True``, and the rest of
        the input of every ``map`` still submitting it).

        A queued task is removed; a running task is interrupted on its worker (the worker
        is replaced if it does not stop within a few seconds). Each resolves once, with
        status ``cancel``. Returns how many tasks were cancelled.
        """
        wanted = arguments.cancel_names(names, all)
        if wanted is None:  # every task: a map still submitting its input stops too (its iterator raises CancelledError there)
            self._stop_feeders(CancelledError("map input not submitted: cancel(all=True)"))
            return self._cancel_where(lambda t: True, "cancelled by cancel(all=True)")
        return self._cancel_where(lambda t: t.name in wanted, "cancelled by cancel(names=...)")

    def _cancel_where(self, predicate: Callable[[Task], bool], message: str) -> int:
        if not self._started or self._terminated or self._dispatcher is None:
            return 0
        done = threading.Event()
        box = [0]
        dispatcher = self._dispatcher

        def run() -> None:
            try:
                box[0] = dispatcher.cancel(predicate, message)
            finally:
                done.set()

        dispatcher.call_soon(run)
        if threading.current_thread() is dispatcher.thread:  # a finalizer (a map's) run by a collection there:
            return 0  # it cannot wait for itself; the cancel happens at its next turn
        while not done.wait(0.1):
            if dispatcher.finished:  # the loop is gone (its tasks were failed): nothing to cancel
                return 0
        return box[0] + self._cancel_forwarded(predicate, message)
