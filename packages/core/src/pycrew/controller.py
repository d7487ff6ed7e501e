"""The controller: the user's API (crew's push/pop/wait/collect, and an Executor)."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import dataclasses
import itertools
import logging
import secrets
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Any, Literal, TypeVar, overload

from pycrew import monitor
from pycrew.controller_options import ControllerOptions, build_controller_options, split_options
from pycrew.dispatcher import Conn, Dispatcher, DispatcherSettings
from pycrew.errors import ControllerError, OptionsError, PycrewError, TaskCrashError, TaskError, TaskTimeoutError
from pycrew.futures import TaskFuture, task_seed
from pycrew.launcher import Launcher
from pycrew.network import format_url, routable_address
from pycrew.options import unknown_keys_message
from pycrew.plugin_api import LauncherInfo, LauncherSpec
from pycrew.plugins import PluginRegistry, get_registry
from pycrew.progress import ProgressBar
from pycrew.results import STATUSES, ControllerSummary, Summary, TaskResult, WorkerSummary
from pycrew.sequential import SequentialController
from pycrew.tasks import Task, decode_result, local_result, pack_task
from pycrew.tls import TLS

log = logging.getLogger(__name__)
T = TypeVar("T")

_LOCAL_ERRORS: dict[str, type[TaskError]] = {
    "crash": TaskCrashError,
    "timeout": TaskTimeoutError,
}

# Controllers started and not terminated. As ``concurrent.futures`` does for its executors,
# the interpreter does not exit while one of them has pending futures (see _wait_at_exit).
_live: weakref.WeakSet[Controller] = weakref.WeakSet()
_exit_hook_lock = threading.Lock()
_exit_hook_registered = False


def _wait_at_exit() -> None:
    """Interpreter exit: let every live controller's pending futures finish, then terminate it."""
    for live in list(_live):
        try:
            live._finish_at_exit()
        except Exception:  # one controller's failure must not keep the others running
            log.exception("controller %r: finishing pending futures at interpreter exit failed", live.name)


def _register_exit_hook() -> None:
    global _exit_hook_registered
    with _exit_hook_lock:
        if _exit_hook_registered:
            return
        try:
            # Runs when the main thread ends, before atexit handlers and while daemon threads
            # (the dispatcher) still run: the same hook concurrent.futures uses.
            threading._register_atexit(_wait_at_exit)  # type: ignore[attr-defined]
        except RuntimeError:  # the interpreter is already shutting down: nothing left to wait for
            return
        _exit_hook_registered = True


class Controller(concurrent.futures.Executor):
    """Launches workers through a launcher plugin and runs tasks on them.

    Build one with :func:`pycrew.controller`. It is a context manager (starts on enter,
    waits for outstanding futures and terminates on exit) and a
    :class:`concurrent.futures.Executor` (``submit``, ``map``, ``shutdown``). It also has
    crew's API: :meth:`push`, :meth:`walk`, :meth:`pop`, :meth:`wait`, :meth:`collect`,
    :meth:`summary`, :meth:`terminate`.

    Args:
        launcher: the launcher's name (``"local"``, ``"slurm"``, ...).
        workers: most workers running at once.
        **options: controller options (see :class:`ControllerOptions`) and the
            launcher's own options (see its ``*Options`` class), in one namespace.

    Raises:
        LauncherNotFoundError: no launcher of that name is installed.
        OptionsError: an option is unknown or invalid.
    """

    def __init__(self, launcher: str = "local", workers: int = 1, *, registry: PluginRegistry | None = None, **options: Any) -> None:
        self._registry = registry or get_registry()
        self.spec: LauncherSpec = self._registry.launcher(launcher)
        own, rest = split_options({"workers": workers, **options})
        self.options: ControllerOptions = build_controller_options(own)
        valid = {f.name for f in dataclasses.fields(self.spec.options_type) if f.init}
        unknown = set(rest) - valid
        if unknown:
            raise OptionsError(
                unknown_keys_message(f"controller or {self.spec.name!r} launcher", unknown, valid | ControllerOptions.keys())
            )
        self.launcher_options = self.spec.options_type.from_mapping(rest)
        self.name = self.options.name or self.spec.name
        self.id = secrets.token_hex(8)
        self.info = LauncherInfo(name=self.spec.name, options=self.launcher_options, controller=self.name, controller_id=self.id)
        self.host = self.options.host or (routable_address() if self.spec.remote else "127.0.0.1")
        self.tls: TLS = self.options.tls
        self._tls_material: tuple[str, str, str, str] | None = None
        if self.tls.enabled:
            self._tls_material = self.tls.materialize(self.host)
        self.launcher = Launcher(
            self.spec, self.info, self._registry, self.options, self._tls_material[2] if self._tls_material else None
        )
        self.launcher.url = format_url(self.host, self.options.port, self.tls.enabled)
        self._dispatcher: Dispatcher | None = None
        self._ids = itertools.count(1)
        self._results: collections.deque[TaskResult] = collections.deque()
        self._cv = threading.Condition()
        self._waiters = 0
        self._lock = threading.Lock()
        self._started = False
        self._terminated = False
        self._shutdown = False
        self._t0 = time.monotonic()
        self.pushed = 0
        self.popped = 0
        self.resolved = 0
        self._status_counts = dict.fromkeys(STATUSES, 0)
        self._slot_complete = {s.index: 0 for s in self.launcher.slots}  # tasks resolved per slot
        self._slot_seconds = {s.index: 0.0 for s in self.launcher.slots}  # seconds busy per slot
        self._notify_done = self._registry.has_observers("pycrew_task_done")
        self._futures_lock = threading.Lock()  # submit may run on any thread
        self._terminate_done = threading.Event()
        self._terminating: threading.Thread | None = None
        self._futures_issued = 0
        self._futures_resolved = 0  # written on the dispatcher thread (and by terminate)

    # -- life cycle ---------------------------------------------------------------------

    @property
    def started(self) -> bool:
        """Whether :meth:`start` ran (and :meth:`terminate` has not)."""
        return self._started and not self._terminated

    @property
    def url(self) -> str:
        """The address workers dial."""
        return self._dispatcher.address if self._dispatcher else self.launcher.url

    def start(self) -> Controller:
        """Listen for workers and start the dispatcher. Idempotent. Returns ``self``."""
        with self._lock:
            if self._terminated:
                raise ControllerError(f"controller {self.name!r} was terminated; build a new one")
            if self._started:
                return self
            key_cert = None
            if self._tls_material is not None:
                key_cert = (self._tls_material[0], self._tls_material[1])
            settings = DispatcherSettings(
                url=self.launcher.url,
                tls=key_cert,
                transport=self.options.wire,
                crashes_max=self.options.crashes_max,
                seconds_heartbeat=self.options.seconds_heartbeat,
                seconds_heartbeat_timeout=self.options.seconds_heartbeat_timeout,
                bytes_max=self.options.bytes_max,
                prefetch_max=self.options.prefetch_max,
            )
            try:
                self._dispatcher = Dispatcher(
                    settings, self._on_result, self._on_connect, self._on_disconnect, self._on_tick, self._on_dispatcher_failure
                )
            except Exception as exc:
                raise ControllerError(
                    f"controller {self.name!r} cannot listen on {self.launcher.url}: {exc}; choose another host= or port="
                ) from exc
            self.launcher.url = self._dispatcher.address
            self.launcher.dispatcher = self._dispatcher
            monitor.register_controller(self.id, self.name, self.spec.name)
            self._dispatcher.start()
            self._started = True
            self._t0 = time.monotonic()
            _live.add(self)
        _register_exit_hook()
        return self

    def terminate(self) -> None:
        """Stop the dispatcher and terminate every worker (idempotent).

        Unresolved futures are cancelled; unresolved pushed tasks stay unresolved and are
        counted in :meth:`summary`.
        """
        with self._lock:
            if self._terminated:
                first = False
            else:
                first = self._terminated = self._shutdown = True
                self._terminating = threading.current_thread()
            dispatcher = self._dispatcher
        if not first:  # another thread terminates: return when it is done, as it would
            if threading.current_thread() is not self._terminating:
                self._terminate_done.wait(self.options.seconds_terminate + 10.0)
            return
        _live.discard(self)
        try:
            if dispatcher is not None:
                dispatcher.stop()
                self.launcher.terminate_all(self.options.seconds_terminate)
                for task in dispatcher._held_tasks():
                    if task.future is not None and not task.future.done() and not Future.cancel(task.future):
                        task.future.set_exception(ControllerError("the controller was terminated"))
                        self._futures_resolved += 1
                monitor.unregister_controller(self.id)
        finally:
            self._terminate_done.set()
            with self._cv:
                self._cv.notify_all()

    def __enter__(self) -> Controller:
        return self.start()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        try:
            if exc_type is None and self._started and not self._terminated and self.launcher.error is None:
                self.wait("all")
        finally:
            self.terminate()

    def __del__(self) -> None:
        try:
            if self._started and not self._terminated:
                self.terminate()
        except Exception:  # interpreter shutdown: nothing sensible left to do
            pass

    def _check(self) -> Dispatcher:
        if self._terminated:
            raise ControllerError(f"controller {self.name!r} was terminated")
        if not self._started:
            self.start()
        assert self._dispatcher is not None
        if self._dispatcher.error is not None:
            raise self._dispatcher_failed(self._dispatcher.error)
        if self.launcher.error is not None:
            raise self.launcher.error
        return self._dispatcher

    # -- submitting -----------------------------------------------------------------------

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
        if self._shutdown:
            state = "terminated" if self._terminated else "shut down"
            raise ControllerError(f"controller {self.name!r} was {state}; no new tasks")
        dispatcher = self._check()
        if not callable(fn):
            raise TypeError(f"fn must be callable, got {fn!r}")
        if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
            raise OptionsError(f"seed must be an int or None, got {seed!r}")
        if seconds_timeout is None:
            seconds_timeout = self.options.seconds_timeout
        elif not isinstance(seconds_timeout, (int, float)) or not seconds_timeout > 0:
            raise OptionsError(f"seconds_timeout must be a number > 0 or None, got {seconds_timeout!r}")
        task_id = next(self._ids)
        if name is not None and not isinstance(name, str):
            raise OptionsError(f"name must be a string, got {name!r}")
        payload = pack_task(name or f"task_{task_id}", fn, args, dict(kwargs or {}), seed, seconds_timeout)
        future: TaskFuture[Any] | None = None
        if not keep and relay is None:
            future = TaskFuture(self, task_id)
            with self._futures_lock:
                self._futures_issued += 1
        task = Task(task_id, name, payload, future, keep, seed, seconds_timeout)
        task.relay = relay
        self.pushed += 1
        dispatcher.submit(task)
        return future

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
            args: its positional arguments.
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
        if name is None:
            name = f"task_{self.pushed + 1}"
        self.submit_task(fn, tuple(args), kwargs, name=name, keep=True, seed=seed, seconds_timeout=seconds_timeout)
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
        items = list(iterable)
        name_iter = iter(names) if names is not None else None
        out = []
        bar = ProgressBar(self, len(items), desc=f"{self.name} walk (pushed)") if progress else None
        for i, item in enumerate(items):
            name = next(name_iter) if name_iter is not None else None
            task_seed_i = task_seed(seed, i) if seed is not None else None
            out.append(self.push(fn, (item,), name=name, seed=task_seed_i, seconds_timeout=seconds_timeout))
            if bar is not None and (i % 100 == 0 or i == len(items) - 1):
                bar.refresh(done=i + 1)
        if bar is not None:
            bar.bar.close()
        return out

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        """Executor API: run ``fn(*args, **kwargs)`` on a worker; returns a future of its value.

        The future's ``exception()`` is the task's own exception (with the remote
        traceback as ``__cause__``), or a :class:`TaskError` subclass for crashes and
        timeouts. ``future.cancel()`` also stops a running task.
        """
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        future = self.submit_task(fn, args, kwargs)
        assert future is not None
        return future

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int = 1,
        buffersize: int | None = None,
        seed: int | None = None,
        seconds_timeout: float | None = None,
        progress: bool = False,
    ) -> Iterator[T]:
        """Executor API: like :func:`map`, tasks running on workers; results in order.

        Every task is submitted at once, or, with ``buffersize=n`` (Python 3.14's
        semantics), at most ``n`` tasks are submitted ahead of the results yielded so far
        and the iterables are read lazily. Iterating raises a task's exception when its
        turn comes, and ``TimeoutError`` if ``timeout`` seconds (from this call) pass.
        ``chunksize`` is accepted for compatibility and not needed: the dispatcher sends
        queued tasks to workers in batches by itself. With ``seed``, task ``i`` runs seeded
        with ``pycrew.task_seed(seed, i)``. With ``progress=True``, a progress bar follows
        the tasks while you iterate.

        Raises:
            ValueError: ``chunksize`` < 1 or ``buffersize`` not None and < 1.
        """
        if self._shutdown:
            raise RuntimeError("cannot schedule new futures after shutdown")
        if not isinstance(chunksize, int) or chunksize < 1:
            raise ValueError(f"chunksize must be an int >= 1, got {chunksize!r}")
        if buffersize is not None and (not isinstance(buffersize, int) or isinstance(buffersize, bool) or buffersize < 1):
            raise ValueError(f"buffersize must be None or an int >= 1, got {buffersize!r}")
        items = enumerate(zip(*iterables, strict=False))

        def submit_next() -> bool:
            for i, args in items:
                s = task_seed(seed, i) if seed is not None else None
                future = self.submit_task(fn, tuple(args), seed=s, seconds_timeout=seconds_timeout)
                assert future is not None
                futures.append(future)
                return True
            return False

        futures: collections.deque[TaskFuture[Any]] = collections.deque()
        while (buffersize is None or len(futures) < buffersize) and submit_next():
            pass
        deadline = None if timeout is None else time.monotonic() + timeout
        yielded = 0
        bar = ProgressBar(self, len(futures), desc=f"{self.name} map") if progress else None

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
                    if buffersize is not None and not self._shutdown and submit_next() and bar is not None:
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

    async def submit_async(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``await controller.submit_async(fn, *args)``: the task's value (or its exception raised)."""
        return await asyncio.wrap_future(self.submit(fn, *args, **kwargs))

    def cancel(self, names: Iterable[str] | str | None = None, all: bool = False) -> int:
        """Cancel tasks by name (or every unresolved task with ``all=True``).

        A queued task is removed; a running task is interrupted on its worker (the worker
        is replaced if it does not stop within a few seconds). Each resolves once, with
        status ``cancel``. Returns how many tasks were cancelled.
        """
        if names is None and not all:
            raise OptionsError("cancel needs names=... or all=True")
        wanted = {names} if isinstance(names, str) else set(names or ())
        if all:
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
        while not done.wait(0.1):
            if dispatcher.finished:  # the loop is gone (its tasks were failed): nothing to cancel
                return 0
        return box[0]

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Executor API: stop accepting tasks; optionally cancel queued ones; terminate.

        As in :mod:`concurrent.futures`, work already submitted still runs either way:
        ``wait=True`` returns once it is done and the workers are terminated;
        ``wait=False`` returns at once, and the controller terminates by itself when the
        last task resolves (or when the interpreter exits, after pending futures finish).
        ``cancel_futures=True`` cancels the futures that have not started.
        """
        self._shutdown = True
        if cancel_futures and self._dispatcher is not None:
            self._dispatcher.call_soon(self._cancel_queued_futures)
        if not self._started or self._terminated:
            self.terminate()
            return
        if wait:
            try:
                self.wait("all")
            except PycrewError:
                log.exception("controller %r: waiting for tasks at shutdown failed", self.name)
            self.terminate()
            return
        threading.Thread(target=self._finish_then_terminate, name=f"pycrew-shutdown-{self.name}", daemon=True).start()

    def _finish_then_terminate(self) -> None:
        """After ``shutdown(wait=False)``: wait for the tasks already submitted, then terminate."""
        try:
            self.wait("all")
        except PycrewError as exc:  # a launch or dispatcher failure resolved the futures already
            log.warning("controller %r: tasks submitted before shutdown did not all finish: %s", self.name, exc)
        finally:
            self.terminate()

    def pending_futures(self) -> int:
        """Futures returned by ``submit``/``map`` that have not resolved yet."""
        return max(0, self._futures_issued - self._futures_resolved)

    def _finish_at_exit(self) -> None:
        """Interpreter exit: no new tasks; wait for pending futures (not pushed tasks); terminate."""
        self._shutdown = True
        try:
            with self._cv:
                self._waiters += 1
                try:
                    while self.pending_futures() and not self._terminated:
                        self._check()
                        self._cv.wait(0.5)
                finally:
                    self._waiters -= 1
        except PycrewError as exc:
            log.warning("controller %r: pending futures did not finish at interpreter exit: %s", self.name, exc)
        finally:
            self.terminate()

    def _cancel_queued_futures(self) -> None:
        assert self._dispatcher is not None
        for task in self._dispatcher.remove_queued(lambda t: t.future is not None and not t.running):
            assert task.future is not None
            task.future.cancel()
            self._on_result(task, None, None, ("cancel", "cancelled at shutdown", "CancelledError"))

    # -- results -----------------------------------------------------------------------------

    def _where(self, conn: Conn | None) -> dict[str, Any]:
        if conn is None:
            return {"controller": self.name, "launcher": self.spec.name}
        return {
            "controller": self.name,
            "launcher": self.spec.name,
            "worker": conn.slot,
            "instance": conn.instance,
            "host": conn.host,
            "pid": conn.pid,
        }

    def _on_result(self, task: Task, payload: bytes | None, conn: Conn | None, local: tuple[str, str, str] | None) -> None:
        """Dispatcher thread: a task resolved."""
        if task.resolved:
            return
        task.resolved = True
        if payload is not None:
            result = decode_result(task, payload, self._where(conn))
            assert self._dispatcher is not None
            self._dispatcher.record_seconds(result.seconds)
        else:
            assert local is not None
            status, error, error_type = local
            result = local_result(task, status, error, error_type, self._where(conn))  # type: ignore[arg-type]
        if conn is not None and conn.slot is not None:
            self._slot_complete[conn.slot] += 1
            self._slot_seconds[conn.slot] += result.seconds
        self._finish(task, result)

    def _finish(self, task: Task, result: TaskResult) -> None:
        """Dispatcher thread: hand a result to a backup, a relay, a future or the pop queue."""
        backup = self.options.backup
        if result.status == "crash" and backup is not None and self._forward(task, result, backup):
            return
        self._status_counts[result.status] += 1
        self.resolved += 1
        if task.relay is not None:
            task.relay(result)
            return
        self._deliver(task, result)

    def _deliver(self, task: Task, result: TaskResult) -> None:
        future = task.future
        if future is not None:
            self._futures_resolved += 1
        if future is not None and not future.done():
            if result.status == "success":
                future.set_result(result.result)
            elif result.status == "cancel":
                if not Future.cancel(future) and isinstance(future, TaskFuture):
                    future._force_cancel()
            elif result.status == "error":
                exc = result.exception
                if exc is None or not isinstance(exc, BaseException):
                    exc = TaskError(f"task {task.name!r} failed: {result.error_type}: {result.error}\n{result.traceback}", result)
                future.set_exception(exc)
            else:
                future.set_exception(_LOCAL_ERRORS.get(result.status, TaskError)(f"task {task.name!r}: {result.status}: {result.error}", result))
        if task.keep:
            self._results.append(result)
        if self._notify_done:
            self._registry.notify("pycrew_task_done", result=result)
        if self._waiters:
            with self._cv:
                self._cv.notify_all()

    def _forward(self, task: Task, crashed: TaskResult, backup: Any) -> bool:
        """Re-send a task that crashed ``crashes_max`` times here to the backup controller."""
        dispatcher = self._dispatcher
        assert dispatcher is not None

        def relay(result: TaskResult) -> None:  # runs on the backup's dispatcher thread
            merged = dataclasses.replace(result, name=task.name, attempts=result.attempts + crashed.attempts)
            dispatcher.call_soon(lambda: self._finish_relayed(task, merged))

        try:
            backup._submit_payload(task.name, task.payload, task.seed, task.seconds_timeout, relay)
        except PycrewError as exc:
            log.error("controller %r could not hand task %r to its backup %r: %s", self.name, task.name, backup.name, exc)
            return False
        log.info("controller %r: task %r crashed %d time(s); sent to backup %r", self.name, task.name, task.crashes, backup.name)
        return True

    def _finish_relayed(self, task: Task, result: TaskResult) -> None:
        """Dispatcher thread: the backup resolved a task of ours (maybe itself through a backup)."""
        self._status_counts[result.status] += 1
        self.resolved += 1
        if task.relay is not None:
            task.relay(result)
            return
        self._deliver(task, result)

    def _submit_payload(
        self, name: str, payload: bytes, seed: int | None, seconds_timeout: float | None, relay: Callable[[TaskResult], None]
    ) -> None:
        """Queue an already pickled task whose result goes to ``relay`` (backups)."""
        dispatcher = self._check()
        task = Task(next(self._ids), name, payload, None, False, seed, seconds_timeout)
        task.relay = relay
        self.pushed += 1
        dispatcher.submit(task)

    def _dispatcher_failed(self, error: BaseException) -> ControllerError:
        failure = ControllerError(
            f"the dispatcher of controller {self.name!r} failed: {type(error).__name__}: {error}; its tasks were "
            "resolved with this error and the controller accepts no more (terminate it and build a new one)"
        )
        failure.__cause__ = error
        return failure

    def _on_dispatcher_failure(self, error: BaseException, tasks: list[Task]) -> None:
        """The dispatcher died (dispatcher or submitting thread): resolve every task it held at once."""
        failure = self._dispatcher_failed(error)
        for task in tasks:
            if task.resolved:
                continue
            task.resolved = True
            result = local_result(task, "error", str(failure), "pycrew.errors.ControllerError", self._where(None))
            try:
                self._finish(task, dataclasses.replace(result, exception=failure))
            except Exception:  # keep resolving the others
                log.exception("controller %r: resolving task %r after the dispatcher failed", self.name, task.name)
        with self._cv:
            self._cv.notify_all()

    def _on_connect(self, instance: str, info: dict[str, Any]) -> None:
        self.launcher.connected(instance, info)

    def _on_disconnect(self, instance: str, crashed: bool) -> None:
        self.launcher.disconnected(instance, crashed)

    def _on_tick(self, now: float) -> None:
        d = self._dispatcher
        if d is None:
            return
        self.launcher.scale(len(d.queue) + d.running(), now)
        if self.launcher.error is not None:
            self._fail_futures(self.launcher.error)
            if self._waiters:
                with self._cv:
                    self._cv.notify_all()

    def _fail_futures(self, error: BaseException) -> None:
        assert self._dispatcher is not None
        for task in self._dispatcher.remove_queued(lambda t: t.future is not None):
            assert task.future is not None
            self._futures_resolved += 1
            if not task.future.done() and (task.running or task.future.set_running_or_notify_cancel()):
                task.future.set_exception(error)

    def ready(self) -> int:
        """Results waiting for :meth:`pop`."""
        return len(self._results)

    def unresolved(self) -> int:
        """Tasks pushed or submitted and not yet resolved."""
        return self.pushed - self.resolved

    def pop(self) -> TaskResult | None:
        """The next resolved pushed task's result, or ``None`` if none is ready.

        Raises:
            LaunchError: workers could not be launched.
        """
        if self._results:
            self.popped += 1
            return self._results.popleft()
        if self._started:
            self._check()
        return None

    def collect(self) -> list[TaskResult]:
        """Every resolved pushed task's result available now (may be empty)."""
        out = []
        while self._results:
            out.append(self._results.popleft())
        self.popped += len(out)
        if not out and self._started:
            self._check()
        return out

    def wait(self, mode: Literal["all", "one"] = "all", timeout: float | None = None, progress: bool = False) -> bool:
        """Block until every task resolved (``"all"``) or a result is ready to pop (``"one"``).

        Returns:
            ``True`` if the condition holds, ``False`` if ``timeout`` seconds passed first.

        Raises:
            LaunchError: workers could not be launched (``launch_max`` failures in a row).
        """
        if mode not in ("all", "one"):
            raise OptionsError(f"wait mode must be 'all' or 'one', got {mode!r}")
        if timeout is not None and timeout < 0:
            raise OptionsError(f"wait timeout must be >= 0 or None, got {timeout!r}")
        if not self._started:
            return self.unresolved() == 0

        def ready() -> bool:
            if mode == "all":
                return self.unresolved() == 0
            return bool(self._results) or self.unresolved() == 0

        deadline = None if timeout is None else time.monotonic() + timeout
        bar = ProgressBar(self, self.pushed, desc=f"{self.name} wait") if progress else None
        step = 0.2 if bar is not None else 0.5
        try:
            with self._cv:
                self._waiters += 1
                try:
                    while not ready():
                        self._check()
                        remaining = step if deadline is None else min(step, deadline - time.monotonic())
                        if remaining <= 0:
                            return False
                        self._cv.wait(remaining)
                        if bar is not None:
                            bar.bar.total = self.pushed
                            bar.refresh()
                finally:
                    self._waiters -= 1
            return True
        finally:
            if bar is not None:
                bar.close()

    # -- reporting -------------------------------------------------------------------------

    def summary(self) -> Summary:
        """Controller, worker and launcher summaries (crew's three summaries in one)."""
        d = self._dispatcher
        queued = len(d.queue) + len(d.submissions) if d else 0
        running = d.running() if d else 0
        c = self._status_counts
        controller = ControllerSummary(
            controller=self.name,
            launcher=self.spec.name,
            pushed=self.pushed,
            queued=queued,
            running=running,
            resolved=self.resolved,
            popped=self.popped,
            success=c["success"],
            error=c["error"],
            crash=c["crash"],
            cancel=c["cancel"],
            timeout=c["timeout"],
            retries=d.retries if d else 0,
            workers_online=self.launcher.online(),
            workers_launching=self.launcher.launching(),
            seconds=time.monotonic() - self._t0 if self._started else 0.0,
        )
        assigned = dict.fromkeys(self._slot_complete, 0)
        if d:
            for conn in list(d.conns.values()):
                if conn.slot is not None:
                    assigned[conn.slot] += len(conn.in_flight)
        workers = tuple(
            WorkerSummary(
                worker=s.index,
                online=s.state == "connected",
                instances=s.instances,
                launches=s.launches,
                launch_failures=s.launch_failures,
                assigned=self._slot_complete[s.index] + assigned[s.index],
                complete=self._slot_complete[s.index],
                crashes=s.crashes,
                seconds_busy=self._slot_seconds[s.index],
                instance=s.instance or s.last_instance,
                host=s.host,
                pid=s.pid,
            )
            for s in self.launcher.slots
        )
        return Summary(controller=controller, workers=workers, launcher=self.launcher.summary())

    def __repr__(self) -> str:
        state = "terminated" if self._terminated else "started" if self._started else "new"
        return f"<pycrew.Controller {self.name!r} launcher={self.spec.name!r} workers={self.options.workers} {state}>"


@overload
def controller(launcher: Literal["sequential"], workers: int | None = None, **options: Any) -> SequentialController: ...


@overload
def controller(launcher: str = "local", workers: int | None = None, **options: Any) -> Controller: ...


def controller(launcher: str = "local", workers: int | None = None, **options: Any) -> Controller | SequentialController:
    """Create a :class:`Controller` (not started: use it in ``with``, or call ``start``).

    ``launcher`` may also name a profile of ``pycrew.toml`` (or ``[tool.pycrew]`` in
    ``pyproject.toml``, or the user file): its launcher and options are used, and the
    arguments given here override them (see :mod:`pycrew.config`).

    ``launcher="sequential"`` returns a :class:`~pycrew.sequential.SequentialController`
    that runs every task in this process at push, with the same result API (for pdb).

    Example::

        with pycrew.controller("local", workers=2, seconds_idle=10) as c:
            squares = list(c.map(pow, range(10), [2] * 10))
    """
    if launcher == "sequential":
        return SequentialController(name=options.pop("name", None) or "sequential", **options)
    from pycrew.config import controller_arguments

    launcher, chosen, options = controller_arguments(launcher, workers, options)
    return Controller(launcher, 1 if chosen is None else chosen, **options)
