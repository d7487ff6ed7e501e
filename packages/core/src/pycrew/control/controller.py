"""The controller: the user's API (crew's push/pop/wait/collect, and an Executor)."""

from __future__ import annotations

import collections
import concurrent.futures
import copy
import dataclasses
import itertools
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable
from concurrent.futures import CancelledError
from typing import TYPE_CHECKING, Any, TypeVar

from pycrew import monitor
from pycrew.control import callbacks, exit_hooks, release, termination
from pycrew.control.alarm import ResolutionAlarm
from pycrew.control.collecting import Collecting
from pycrew.control.conn import DispatcherSettings
from pycrew.control.demand import SECONDS_DEMAND_REMOTE_MAX
from pycrew.control.dispatcher import Dispatcher
from pycrew.control.ending import Ending
from pycrew.control.exit_hooks import live, register_exit_hook
from pycrew.control.pickling import pack_initializer
from pycrew.control.resolving import Resolving
from pycrew.control.scaler import Scaler
from pycrew.control.submitting import Submitting
from pycrew.control.tasks import Task
from pycrew.controller_options import ControllerOptions, build_controller_options, split_options
from pycrew.errors import ControllerError, LogsUnavailableError, OptionsError, PluginError, PycrewError
from pycrew.network import format_url, routable_address
from pycrew.options import unknown_keys_message
from pycrew.plugin_api import LauncherInfo, LauncherSpec
from pycrew.plugins import PluginRegistry, get_registry
from pycrew.results import STATUSES, TaskResult
from pycrew.tls import TLS

if TYPE_CHECKING:
    from pycrew.dashboard import Dashboard

log = logging.getLogger(__name__)
T = TypeVar("T")


class Controller(Submitting, Resolving, Collecting, Ending, concurrent.futures.Executor):
    """Launches workers through a launcher plugin and runs tasks on them.

    Build one with :func:`pycrew.controller`. It is a context manager (starts on enter,
    waits for outstanding futures and terminates on exit) and a
    :class:`concurrent.futures.Executor` (``submit``, ``map``, ``shutdown``). It also has
    crew's API: :meth:`push`, :meth:`walk`, :meth:`pop`, :meth:`wait`, :meth:`collect`,
    :meth:`summary`, :meth:`terminate`.

    Args:
        launcher: the launcher's name (``"local"``, ``"slurm"``, ...).
        workers: most workers taking tasks at once (see :class:`pycrew.ControllerOptions`).
        **options: controller options (see :class:`ControllerOptions`) and the
            launcher's own options (see its ``*Options`` class), in one namespace.

    Raises:
        LauncherNotFoundError: no launcher of that name is installed.
        OptionsError: an option is unknown or invalid.
    """

    def __init__(self, launcher: str = "local", workers: int = 1, *, registry: PluginRegistry | None = None, **options: Any) -> None:
        self._registry = registry or get_registry()
        self.spec: LauncherSpec = self._registry.launchable(launcher)
        own, rest = split_options({"workers": workers, **options})
        self.options: ControllerOptions = build_controller_options(own)
        valid = {f.name for f in dataclasses.fields(self.spec.options_type) if f.init}
        if unknown := set(rest) - valid:
            where = f"controller or {self.spec.name!r} launcher"
            raise OptionsError(unknown_keys_message(where, unknown, valid | ControllerOptions.keys()))
        self.launcher_options = self.spec.options_type.from_mapping(rest)
        o = self.options  # its initializer pickled now: one that cannot be fails here, not in each worker
        self._initializer = None if o.initializer is None else pack_initializer(o.initializer, o.initargs, o.seconds_initializer)
        self.name = self.options.name or self.spec.name
        self.id = secrets.token_hex(8)
        self.info = LauncherInfo(name=self.spec.name, options=self.launcher_options, controller=self.name, controller_id=self.id)
        self.host = self.options.host or self._suggested_host() or (routable_address() if self.spec.remote else "127.0.0.1")
        self.tls: TLS = self.options.tls
        self._tls_material: tuple[str, str, str, str] | None = None
        if self.tls.enabled:
            self._tls_material = self.tls.materialize(self.host)
        ca = self._tls_material[2] if self._tls_material else None
        self.launcher = Scaler(self.spec, self.info, self._registry, self.options, ca)
        self.launcher.url = format_url(self.host, self.options.port, self.tls.enabled)
        self._owner = release.OwnerRef(self)  # how its threads call it: see pycrew.control.release
        self.launcher.on_error = self._owner.method("_fail_futures")
        self._dispatcher: Dispatcher | None = None
        self._ids = itertools.count(1)
        self._names = itertools.count(1)  # push's default names, task_1, task_2, ... (drawn on any thread)
        self._results: collections.deque[TaskResult] = collections.deque()
        self._cv = threading.Condition()
        self._waiters = 0
        self._lock = threading.Lock()
        self._started = self._terminated = self._shutdown = False
        self._signals_seen = termination.signals  # a SIGTERM after this, caught in a with block, ends the block at once
        self._t0 = time.monotonic()
        self.pushed = self.popped = self.resolved = self._abandoned = self._ended_held = 0
        self._status_counts = dict.fromkeys(STATUSES, 0)
        self._slot_complete = {s.index: 0 for s in self.launcher.slots}  # tasks resolved per slot
        self._slot_seconds = {s.index: 0.0 for s in self.launcher.slots}  # seconds busy per slot
        self._notify_done = self._registry.has_observers("pycrew_task_done")
        self._futures_lock = threading.Lock()  # submit may run on any thread
        self._terminate_done = threading.Event()
        self._terminating: threading.Thread | None = None
        self._pid = os.getpid()
        self._forked_from: int | None = None
        self._futures_issued, self._feeders = 0, set()
        self._init_backups()  # no task handed to or from a backup yet (control.backups)
        self._futures_resolved = 0  # written on the dispatcher thread (and by terminate)
        self._alarm = ResolutionAlarm()
        #: The dashboard's address while it runs (option ``dashboard``), else ``None``.
        self.dashboard_link: str | None = None
        self._dashboard: Dashboard | None = None
        self._result_listeners: list[Callable[[Task, TaskResult], None]] = []

    def _suggested_host(self) -> str | None:
        """The address the launcher suggests its workers dial (``LauncherSpec.dial_host``), if any."""
        if self.spec.dial_host is None:
            return None
        try:
            host = self.spec.dial_host(self.launcher_options)
        except Exception as exc:
            raise PluginError(
                f"launcher {self.spec.name!r} failed to suggest the address its workers dial: {type(exc).__name__}: "
                f"{exc}; set the controller option host= to choose it yourself"
            ) from exc
        if host is not None and (not isinstance(host, str) or not host.strip()):
            raise PluginError(f"launcher {self.spec.name!r} suggested {host!r} as the address to dial: not a host name or IP")
        return host

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
        """Listen for workers and start the dispatcher. Idempotent. Returns ``self``.

        If it is interrupted half way (a Ctrl-C once it listens), what it started is
        terminated (its port, dispatcher thread and any worker), and so is the controller.
        """
        try:
            return self._start()
        except BaseException:
            if self._dispatcher is not None and not self._terminated:  # (a `with` block's exit never runs)
                self._started = True
                self.terminate()
            raise

    def _start(self) -> Controller:
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
                seconds_busy_silence=self.options.seconds_busy_silence,
                bytes_max=self.options.bytes_max,
                prefetch_max=self.options.prefetch_max,
                initializer=self._initializer,
                explain_crashes="monitor" in self.launcher.spec.capabilities,
            )
            dashboard = self._open_dashboard()  # its port first: a taken one fails before anything runs
            call = self._owner.method
            try:
                self._dispatcher = Dispatcher(
                    settings, call("_on_result"), call("_on_connect"), call("_on_disconnect"), call("_on_tick"),
                    call("_on_dispatcher_failure"), on_ending=call("_on_ending"), on_refused=call("_on_refused"),
                    on_initializing=self.launcher.initializing,
                )
            except Exception as exc:
                if dashboard is not None:
                    dashboard.close()
                from pycrew.tls import nng_problem  # a TLS key NNG cannot use is no matter of host= or port=
                blame = nng_problem(*self._tls_material[:2]) if self._tls_material and self.options.wire == "nng" else None
                raise ControllerError(
                    f"controller {self.name!r} cannot listen on {self.launcher.url}: {exc}; {blame or 'choose another host= or port='}"
                ) from exc
            self.launcher.url = self._dispatcher.address
            self.launcher.dispatcher = self._dispatcher
            monitor.register_controller(self.id, self.name, self.spec.name)
            self._dispatcher.on_demand = call("_on_tick")  # scale out at once when pushed tasks find no room
            self._dispatcher.on_silent = self.launcher.silent
            if self.spec.remote:  # a loop of pushes becomes one job array even if it pickles slowly
                self._dispatcher.demand_window_max = SECONDS_DEMAND_REMOTE_MAX
            self._dispatcher.start()
            self._launch_at_start(self._dispatcher)
            if dashboard is not None:
                dashboard.start()
                self._dashboard, self.dashboard_link = dashboard, dashboard.link
            self._started = True
            self._t0 = time.monotonic()
            self._pid = os.getpid()
            live.add(self)
        register_exit_hook()
        termination.install()
        release.start_thread()  # (here: a finalizer cannot start it)
        return self

    def _launch_at_start(self, dispatcher: Dispatcher) -> None:
        """Launch ``workers_at_start`` workers now (default: 1 for launchers that are not remote)."""
        n = self.options.workers_at_start
        if n is None:
            n = 0 if self.spec.remote else 1
        if n > 0:
            launcher = self.launcher  # (not self: the dispatcher holds its controller weakly)
            dispatcher.call_soon(lambda: launcher.scale(n, time.monotonic()))

    def logs(self, worker: int, lines: int | None = 200) -> str:
        """The last ``lines`` lines of a worker's output (``None``: all the launcher keeps).

        Also after :meth:`terminate`, as long as the launcher keeps the output.

        Args:
            worker: the worker slot, 1 to ``workers`` (:attr:`TaskResult.worker`); its
                current instance, or the last one that was launched.
            lines: how many lines from the end, >= 1, or ``None``.

        Raises:
            OptionsError: ``worker`` or ``lines`` is invalid.
            LogsUnavailableError: the slot never had a launched worker, or the launcher cannot
                give its logs.
        """
        if isinstance(worker, bool) or not isinstance(worker, int) or not 1 <= worker <= len(self.launcher.slots):
            raise OptionsError(f"worker must be a worker slot from 1 to workers={len(self.launcher.slots)}, got {worker!r}")
        monitor.check_lines(lines)
        slot = self.launcher.slots[worker - 1]
        if not slot.last_handle_known:
            raise LogsUnavailableError(
                f"worker {worker} of controller {self.name!r} has no logs yet: the {self.spec.name!r} launcher "
                "has not launched a worker into that slot (start the controller and push tasks first)"
            )
        return monitor.worker_logs(self._registry, self.spec, self.info, slot.last_handle, lines, f"worker {worker}")

    def _open_dashboard(self) -> Dashboard | None:
        """Listen for the dashboard (option ``dashboard``), not serving yet; ``None`` when it is off."""
        if self.options.dashboard is False:
            return None
        from pycrew.dashboard import Dashboard  # imported only when used: http.server is not free

        port = 0 if self.options.dashboard is True else self.options.dashboard
        return Dashboard(self, port, self.options.dashboard_host)

    def __enter__(self) -> Controller:
        return self.start()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        signalled = termination.signals > self._signals_seen  # (its SystemExit was caught in the block)
        try:
            if exc_type is None and self._started and not (self._terminated or signalled or self._launch_failed()):
                self.wait("all")
                self._serve_primaries()  # as a backup, its controllers' tasks may still crash
        finally:
            self.terminate()

    def __del__(self) -> None:
        if getattr(self, "_started", False) and not self._terminated:  # (False: __init__ raised)
            release.terminate_dropped(self)  # no one refers to it (nor to its unresolved tasks) any more

    def _check(self) -> Dispatcher:
        if self._terminated:
            raise ControllerError(self._forked_message() or f"controller {self.name!r} was terminated")
        if not self._started:
            self.start()
        assert self._dispatcher is not None
        if self._dispatcher.error is not None:
            raise self._dispatcher_failed(self._dispatcher.error)
        if (error := self._launch_error()) is not None:
            raise copy.copy(error)  # a fresh one per raise: one raised again and again grows its traceback
        return self._dispatcher

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Executor API: stop accepting tasks; optionally cancel queued ones; terminate.

        As in :mod:`concurrent.futures`, work already submitted still runs either way:
        ``wait=True`` returns once it is done and the workers are terminated;
        ``wait=False`` returns at once, and the controller terminates by itself when the
        last task resolves (or when the interpreter exits, after pending futures finish).
        ``cancel_futures=True`` cancels the futures that have not started.
        """
        self._stop_taking()
        if cancel_futures:
            self._stop_feeders(CancelledError("map input not submitted: shutdown(cancel_futures=True)"))
            self._cancel_queued_now()
        if not self._started or self._terminated:
            self.terminate()
            return
        if wait:
            self._finish_then_terminate()
            return
        threading.Thread(target=self._finish_then_terminate, name=f"pycrew-shutdown-{self.name}", daemon=True).start()

    def _finish_then_terminate(self) -> None:
        """``shutdown()``: wait for the tasks already submitted (and, as a backup, its controllers'), then terminate."""
        try:
            self.wait("all")
            self._serve_primaries()
        except PycrewError as exc:  # a launch or dispatcher failure resolved the futures already
            log.warning("controller %r: tasks submitted before shutdown did not all finish: %s", self.name, exc)
        finally:
            self.terminate()

    def pending_futures(self) -> int:
        """Futures returned by ``submit``/``map`` that have not resolved yet (a ``map`` still
        submitting its input counts as one more)."""
        return max(0, self._futures_issued - self._futures_resolved) + self._feeders_elsewhere()

    def _finish_at_exit(self) -> None:
        """Interpreter exit: no new tasks; wait for pending futures (not pushed tasks, not after Ctrl-C or SIGTERM); terminate."""
        self._stop_taking()
        try:
            with self._cv:
                self._waiters += 1
                try:
                    while self.pending_futures() and not self._terminated and not exit_hooks.stop_waiting():
                        self._check()
                        self._cv.wait(0.5)
                finally:
                    self._waiters -= 1
            self._serve_primaries(at_exit=True)
            callbacks.drain(self, 0.0 if exit_hooks.stop_waiting() else None)  # their callbacks run before the workers go
        except PycrewError as exc:
            log.warning("controller %r: pending futures did not finish at interpreter exit: %s", self.name, exc)
        finally:
            self.terminate()

    def _forked(self) -> None:
        """In a child forked from the process that started this controller (``os.fork``, multiprocessing's "fork"):
        this copy never stops, signals or messages that process's workers, nor keeps its ports open. It refuses
        work (:meth:`_forked_message`); its locks are new (a thread the child does not have may have held them)."""
        self._forked_from = self._pid
        self._terminated, self._shutdown, self._terminating = True, True, threading.current_thread()  # (never resumed)
        if self._dispatcher is not None:
            self._dispatcher.forget_in_fork()
        if self._dashboard is not None:
            self._dashboard.forget_in_fork()
        self._lock, self._cv, self._terminate_done = threading.Lock(), threading.Condition(), threading.Event()
        self._futures_lock = threading.Lock()
        self._terminate_done.set()

    def __repr__(self) -> str:
        state = "terminated" if self._terminated else "started" if self._started else "new"
        return f"<pycrew.Controller {self.name!r} launcher={self.spec.name!r} workers={self.options.workers} {state}>"
