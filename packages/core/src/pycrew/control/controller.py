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
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future
from typing import Any, TypeVar

from pycrew import monitor
from pycrew.control.collecting import Collecting
from pycrew.control.conn import DispatcherSettings
from pycrew.control.dispatcher import Dispatcher
from pycrew.control.exit_hooks import live, register_exit_hook
from pycrew.control.futures import TaskFuture, task_seed
from pycrew.control.mapping import map_results
from pycrew.control.progress import ProgressBar
from pycrew.control.resolving import Resolving
from pycrew.control.tasks import Task, pack_task
from pycrew.controller_options import ControllerOptions, build_controller_options, split_options
from pycrew.errors import ControllerError, OptionsError, PycrewError
from pycrew.launcher import Launcher
from pycrew.network import format_url, routable_address
from pycrew.options import unknown_keys_message
from pycrew.plugin_api import LauncherInfo, LauncherSpec
from pycrew.plugins import PluginRegistry, get_registry
from pycrew.results import STATUSES, TaskResult
from pycrew.tls import TLS

log = logging.getLogger(__name__)
T = TypeVar("T")


class Controller(Resolving, Collecting, concurrent.futures.Executor):
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
            live.add(self)
        register_exit_hook()
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
        live.discard(self)
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
        return map_results(self, fn, iterables, timeout, chunksize, buffersize, seed, seconds_timeout, progress)

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

    def __repr__(self) -> str:
        state = "terminated" if self._terminated else "started" if self._started else "new"
        return f"<pycrew.Controller {self.name!r} launcher={self.spec.name!r} workers={self.options.workers} {state}>"
