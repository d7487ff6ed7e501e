"""The launcher: auto-scaling bookkeeping, and the pool that calls the launcher hooks.

Scaling decisions run on the dispatcher's thread and only do bookkeeping; every hook call
(launch, terminate) goes to a small thread pool (``processes`` threads), the monitor's
listings to another (:data:`MONITOR_THREADS`: a platform whose listing API hangs holds up
no launch or termination), and their outcomes come back to the dispatcher's thread
through :meth:`Dispatcher.call_soon`. So ``push`` never waits on a platform API.

While workers are launching, the launcher's monitor (``pycrew_list_workers``) is asked
about once a second (one call in flight at most, backing off while it fails) which of
them have ended. A launching worker that the monitor reports ended (``failed``, ``done``
or ``cancelled``: it could not start, or exited before it connected) is a failed launch at
once, with the platform's reason, exit code and output in the message, instead of after
``seconds_launch``.
"""

from __future__ import annotations

import collections
import logging
import re
import secrets
import sys
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import TYPE_CHECKING, Any

from pycrew.control import last_termination
from pycrew.control.crash_watch import CrashWatch
from pycrew.control.hook_pool import HookPool
from pycrew.control.launch_reports import INITIALIZER_PREFIX, WALL_FIRST, received_handles
from pycrew.control.launch_watch import SECONDS_FIRST_POLL, LaunchWatch
from pycrew.control.overdue_launch import launch_overdue
from pycrew.control.quoting import said
from pycrew.control.slots import CONNECTED, IDLE, LAUNCHING, Slot, SlotCensus
from pycrew.errors import LaunchError
from pycrew.plugin_api import TLS_CA_ENV, LauncherInfo, LauncherSpec, WorkerCall
from pycrew.wire.clock import capped
from pycrew.wire.protocol import TLS_SERVER_NAME_ENV, derive_token, new_token
from pycrew.wire.transport.limits import open_files_hint
from pycrew.worker.command import WorkerCommand

if TYPE_CHECKING:
    from pycrew.control.dispatcher import Dispatcher
    from pycrew.controller_options import ControllerOptions
    from pycrew.plugins import PluginRegistry

log = logging.getLogger(__name__)

#: How long a worker that said goodbye has to end by itself before the launcher's terminate
#: hook makes sure it is gone: the bound of its tasks' exit handlers
#: (:data:`pycrew.worker.exiting.SECONDS_EXIT_HANDLERS`, 10 s) and a margin. A crashed
#: worker, or one whose launch is no longer wanted, is terminated at once.
SECONDS_AFTER_GOODBYE = 12.0
#: How long past ``seconds_initializer`` a worker has to report that it interrupted its
#: initializer before its launch fails without that report (an initializer stuck in C code).
SECONDS_INITIALIZER_GRACE = 5.0
#: Threads that call the monitor (``pycrew_list_workers``): the launch and crash watches' calls.
MONITOR_THREADS = 2

class Scaler(LaunchWatch, CrashWatch):
    """Launches and terminates workers for one controller through its launcher plugin."""

    def __init__(
        self,
        spec: LauncherSpec,
        info: LauncherInfo,
        registry: PluginRegistry,
        options: ControllerOptions,
        tls_ca: str | None,
    ) -> None:
        self.spec = spec
        self.info = info
        self.registry = registry
        self.options = options
        self.tls_ca = tls_ca
        self.url = ""
        self.dispatcher: Dispatcher | None = None
        self.census = SlotCensus()
        self.slots = [Slot(i + 1, self.census) for i in range(options.workers)]
        self.by_instance: dict[str, Slot] = {}
        self.goodbyes: collections.deque[tuple[float, str]] = collections.deque()  # (terminate at, instance)
        self.ending_instances: dict[str, Slot] = {}  # workers that ended their slot's tenure and are still running (see ending)
        self.handles: dict[str, Any] = {}  # instance -> handle, for every worker not yet terminated
        self.pool = HookPool(options.processes, f"pycrew-launch-{info.name}")
        self.monitor_pool = HookPool(MONITOR_THREADS, f"pycrew-monitor-{info.name}")  # listings (see the module)
        self.pending: set[Future[Any]] = set()  # every call in the pools ...
        self.awaited: set[Future[Any]] = set()  # ... and those terminate_all waits for (not listings)
        self._pending_lock = threading.Lock()
        self._handles_lock = threading.Lock()
        self.closed = False  # terminate_all ran (under _handles_lock)
        self.error: LaunchError | None = None
        self.error_pending = False  # launch_max reached; the error waits for the platform's reason ...
        self.error_due: tuple[float, int, str] = (0.0, 0, "")  # ... until then, for that slot, at most (see launch_watch)
        self.last_launch_error = ""
        self.batches = 0
        self.terminations = 0
        # The monitor poll (dispatcher thread only): one call in flight, next one not before _poll_due.
        self._polling = False
        self._poll_due = 0.0
        self._poll_soon = False  # a batch was launched while a call was in flight
        self._poll_failures = 0
        self._init_crash_watch()  # lost workers: see pycrew.control.crash_watch

    # -- the worker call -------------------------------------------------------------

    def call(
        self,
        worker: int = 1,
        instance: str | None = None,
        url: str | None = None,
        batch: tuple[str, str, int, int] | None = None,
    ) -> WorkerCall:
        """The exact worker call for slot ``worker`` (crew's ``launcher$call()``).

        The token in the returned call is a fresh one that authorizes nothing unless the
        launcher itself launches it. ``batch`` is ``(batch_key, instance_prefix, index,
        size)`` for a call that is element ``index`` of an array launch.
        """
        o = self.options
        if batch is not None:
            instance = f"{batch[1]}{batch[2]}"
        instance = instance or secrets.token_hex(8)
        command = WorkerCommand(
            url=url or self.url or "tcp://127.0.0.1:0",
            transport=o.wire,
            instance=instance,
            worker=worker,
            launcher=self.info.name,
            controller=self.info.controller or "",
            controller_id=self.info.controller_id or "",
            seconds_idle=o.seconds_idle,
            seconds_wall=o.seconds_wall,
            tasks_max=o.tasks_max,
            seconds_launch=o.seconds_launch,
            reset=o.reset_environment,
            garbage_collection=o.garbage_collection,
            metrics_seconds=capped(o.seconds_metrics) if o.seconds_metrics else None,  # the worker waits this long
            metrics_dir=(o.metrics_dir or None) if o.seconds_metrics else None,
            seconds_spin=o.seconds_spin,
        )
        env = {TLS_CA_ENV: self.tls_ca} if self.tls_ca else {}
        if self.tls_ca and self.options.tls.server_name:  # the name workers check the certificate against
            env[TLS_SERVER_NAME_ENV] = self.options.tls.server_name
        safe = re.sub(r"[^a-zA-Z0-9-]", "-", self.info.controller or "c").strip("-")[:30] or "c"
        return WorkerCall.from_command(
            command,
            python=sys.executable,
            env=env,
            token=derive_token(batch[0], instance) if batch else new_token(),
            name=f"pycrew-{safe}-{worker}-{instance[:8]}",
            batch_key=batch[0] if batch else "",
            batch_index=batch[2] if batch else 0,
            batch_size=batch[3] if batch else 1,
            instance_prefix=batch[1] if batch else "",
        )

    # -- scaling (dispatcher thread) ---------------------------------------------------

    def supply(self) -> int:
        """Workers launching or connected."""
        counts = self.census.counts
        return counts[LAUNCHING] + counts[CONNECTED]

    def online(self) -> int:
        """Workers connected."""
        return self.census.counts[CONNECTED]

    def launching(self) -> int:
        """Workers launched and not yet connected."""
        return self.census.counts[LAUNCHING]

    def scale(self, demand: int, now: float) -> None:
        """Launch workers into free slots while demand exceeds supply; time out launches."""
        if self.error_pending and now >= self.error_due[0]:
            self._explanation_overdue()
        if self.error is not None or self.error_pending or self.dispatcher is None:
            return
        limit = self.options.seconds_initializer
        for slot in list(self.census.launching.values()):
            if slot.initializing_since:  # connected: its initializer runs (see pycrew.control.admission)
                if limit is not None and now - slot.initializing_since > limit + SECONDS_INITIALIZER_GRACE:
                    self._launch_failed(slot, f"{INITIALIZER_PREFIX}it ran longer than seconds_initializer={limit:g} s "
                                        "and its worker did not stop it", now)
            elif now - slot.launched_at > self.options.seconds_launch:
                launch_overdue(self, slot, now)
            if self.error is not None or self.error_pending:
                return
        self._poll_monitor(now)
        need = min(self.options.workers, demand) - self.supply()
        if need <= 0:
            return
        free = [s for s in self.slots if s.state == IDLE and s.retry_after <= now][:need]
        batch_key, prefix = new_token(), secrets.token_hex(6) + "-"
        batch: list[tuple[Slot, WorkerCall]] = []
        for k, slot in enumerate(free):
            call = self.call(worker=slot.index, batch=(batch_key, prefix, k, len(free)))
            self.dispatcher.authorize(call.instance, call.token, slot.index)
            slot.state = LAUNCHING
            slot.instance = call.instance
            slot.last_instance = call.instance
            slot.handle = None
            slot.handle_known = False
            slot.launched_at = slot.hook_since = now
            slot.initializing_since = 0.0
            slot.launches += 1
            self.by_instance[call.instance] = slot
            batch.append((slot, call))
        if batch:
            self.batches += 1
            self._submit(self._launch_batch, [c for _, c in batch])

    def _submit(self, fn: Any, *args: Any, awaited: bool = True) -> None:
        """Call ``fn`` in the pool, or unless ``awaited`` in the monitor's (listings: ``terminate_all`` waits for no listing)."""
        with self._pending_lock:  # pending at once: terminate_all never misses a call in the pool
            future = (self.pool if awaited else self.monitor_pool).submit(fn, *args)
            self.pending.add(future)
            if awaited:
                self.awaited.add(future)
        future.add_done_callback(self._forget)

    def _forget(self, future: Future[Any]) -> None:
        with self._pending_lock:
            self.pending.discard(future)
            self.awaited.discard(future)

    def _launch_batch(self, calls: list[WorkerCall]) -> None:
        """Pool thread: one hook call for the whole batch."""
        try:
            returned = self.registry.call(self.spec, "pycrew_launch_workers", launcher=self.info, calls=calls)
            handles, wrong = received_handles(self.info.name, returned, len(calls))
            if wrong is not None:
                raise self._rejected(handles, wrong)
        except BaseException as exc:  # SystemExit too (a plugin that calls a command-line tool's main()): never unreported
            message = f"{said(exc)}{open_files_hint(exc)}"
            log.warning("launcher %r failed to launch %d worker(s): %s", self.info.name, len(calls), message)
            assert self.dispatcher is not None
            transient = getattr(exc, "transient", False) is True  # the platform unreachable (see launch_watch)
            self.dispatcher.call_soon(lambda: self._batch_failed(calls, message, transient))
            return
        with self._handles_lock:
            late = self.closed  # terminate_all has run: nobody else will terminate these
            if not late:
                self.handles.update(zip((c.instance for c in calls), handles, strict=True))
        if late:
            if not self._terminate(list(handles), "launched after the controller was terminated"):
                log.error(last_termination.unterminated_message(self, list(handles), "their launch returned after terminate"))
            return
        if self.registry.has_observers("pycrew_worker_launched"):
            for call, handle in zip(calls, handles, strict=True):
                self.registry.notify("pycrew_worker_launched", launcher=self.info, call=call, handle=handle)
        assert self.dispatcher is not None
        self.dispatcher.call_soon(lambda: self._batch_launched(calls, list(handles)))

    def _rejected(self, handles: list[Any], wrong: str) -> LaunchError:
        """The error for a launch hook's wrong result, after terminating the workers it returned (pool thread)."""
        if handles:
            done = self._terminate(handles, "the launch hook's result was rejected")  # a failure is logged, not raised
            wrong += f"; the {len(handles)} worker(s) it returned " + (
                "were terminated" if done else "could not be terminated (see the log): check the platform for them")
        return LaunchError(wrong)

    def _batch_launched(self, calls: list[WorkerCall], handles: list[Any]) -> None:
        self.unreachable_since = None  # the platform answered
        for call, handle in zip(calls, handles, strict=True):
            slot = self.by_instance.get(call.instance)
            if slot is not None and slot.instance == call.instance:
                slot.handle, slot.handle_known = handle, True
                slot.launched_at = self.clock()  # seconds_launch to connect from here: a slow submit was a failed launch
                slot.last_handle, slot.last_handle_known = handle, True
            else:  # the launch timed out or the worker already left: terminate it now
                self.terminate_instances([call.instance], "launch no longer wanted")
        if self._poll_failures == 0:  # a worker that cannot start at all ends at once: look soon
            self._poll_soon = self._polling
            self._poll_due = min(self._poll_due, self.clock() + SECONDS_FIRST_POLL)

    def initializing(self, instance: str) -> None:
        """A launched worker connected and runs the controller's initializer (dispatcher thread):
        ``seconds_launch`` no longer applies to it, ``seconds_initializer`` does."""
        slot = self.by_instance.get(instance)
        if slot is not None and slot.instance == instance and slot.state == LAUNCHING:
            slot.initializing_since = self.clock()

    def connected(self, instance: str, info: dict[str, Any]) -> None:
        """A worker authenticated (dispatcher thread)."""
        slot = self.by_instance.get(instance)
        if slot is None or slot.instance != instance:
            return
        slot.state = CONNECTED
        if slot.failures >= self.options.launch_max:  # a parked slot got through: so may the others
            self.unpark()
        slot.failures = 0
        slot.instances += 1
        slot.host = info.get("host")
        slot.pid = info.get("pid")
        slot.seconds_initializer += info.get("seconds_initializer", 0.0)  # (admission's, from the worker's checked report)

    def ending(self, instance: str, reason: str) -> None:
        """A connected worker ends after its running task (dispatcher thread): free its slot now.

        It was told to end (SIGTERM: a job's wall time, ``scancel``, a deleted pod) and takes
        no more tasks, but may run its last one for the platform's grace period. Its slot is
        free at once, so a replacement launches now if there is demand, instead of after the
        goodbye. Until it goes it is one worker more than ``workers``; it is still terminated
        with the others, and a crash of it still counts on its slot.
        """
        slot = self.by_instance.get(instance)
        if slot is None or slot.instance != instance or slot.state != CONNECTED:
            return
        del self.by_instance[instance]
        self.ending_instances[instance] = slot
        slot.state = IDLE
        slot.instance = None
        slot.exit_reason = reason

    def disconnected(self, instance: str, crashed: bool, reason: str = "") -> None:
        """A worker left or was lost (dispatcher thread): free its slot, make sure it is gone.

        ``reason`` (the worker's own when it said goodbye) is kept as the slot's ``exit_reason``.
        A slot whose workers reach ``seconds_wall`` before their first task ``launch_max``
        times in a row (their start takes longer) fails as a launch does: a LaunchError, or
        parked while other workers are connected, instead of starting workers forever.
        """
        slot = self.by_instance.pop(instance, None)
        if slot is not None and slot.instance == instance:
            slot.state = IDLE
            slot.instance = None
        else:  # an ending worker (its slot may hold another by now), or one no longer wanted
            slot = self.ending_instances.pop(instance, None)
        if slot is not None:
            slot.exit_reason = reason
            slot.wall_exits = slot.wall_exits + 1 if reason.startswith(WALL_FIRST) else 0
            if slot.wall_exits >= self.options.launch_max:
                slot.wall_exits = 0
                self._set_error(slot.index, f"{reason} ({self.options.launch_max} workers in a row)")
            if crashed:
                slot.crashes += 1
        if crashed:
            log.info("worker %s of %r is gone: %s", slot.index if slot else instance,  # (its tasks: see Upkeep._requeue)
                     self.info.controller, reason or "connection lost")
            self.crashed(instance)  # terminated once the platform has said why (see pycrew.control.crash_watch)
        else:  # it ends by itself after its exit handlers: terminate only what outlives them
            self.goodbyes.append((self.clock() + SECONDS_AFTER_GOODBYE, instance))

    def reap(self, now: float) -> None:
        """Terminate the workers that said goodbye :data:`SECONDS_AFTER_GOODBYE` ago (dispatcher thread).

        Most have ended by then, and terminating them is a no-op the platform answers
        quickly; the call makes sure none is left running, as for any other worker.
        """
        due: list[str] = []
        while self.goodbyes and self.goodbyes[0][0] <= now:
            due.append(self.goodbyes.popleft()[1])
        if due:
            self.terminate_instances(due, "worker exited")

    # -- termination ---------------------------------------------------------------------

    def terminate_instances(self, instances: Sequence[str], reason: str) -> None:
        """Terminate workers through the hook in the pool (their handles, once known)."""
        with self._handles_lock:
            pairs = [(i, self.handles.pop(i)) for i in instances if i in self.handles]
        if pairs:  # handles go back if the hook fails (the platform down): see last_termination
            self._submit(last_termination.terminate_or_keep, self, pairs, reason)

    def _terminate(self, handles: list[Any], reason: str) -> bool:
        """Terminate workers through the hook (pool thread); whether the hook succeeded (its failure is logged)."""
        done = False
        try:
            self.registry.call(self.spec, "pycrew_terminate_workers", launcher=self.info, handles=handles)
            self.terminations += len(handles)
            done = True
        except BaseException as exc:  # SystemExit too: it would reach the caller of terminate()
            unreachable = getattr(exc, "transient", False) is True  # kept and tried again (last_termination): no traceback
            log.log(logging.WARNING if unreachable else logging.ERROR, "launcher %r %s terminate %d worker(s): %s: %s",
                    self.info.name, "could not" if unreachable else "failed to", len(handles), type(exc).__name__, exc,
                    exc_info=None if hasattr(exc, "transient") else exc)  # a platform's answer (a SchedulerError) says it all
        if self.registry.has_observers("pycrew_worker_terminated"):
            for handle in handles:
                self.registry.notify("pycrew_worker_terminated", launcher=self.info, handle=handle, reason=reason)
        return done

    def terminate_all(self, timeout: float) -> None:
        """Wait for launches in flight, terminate every worker, and stop the pool (any thread;
        see :mod:`pycrew.control.last_termination`)."""
        last_termination.terminate_all(self, timeout)

    def summary(self) -> dict[str, Any]:
        """The launcher's counts."""
        return {
            "launcher": self.info.name,
            "options": self.info.options,
            "launches": sum(s.launches for s in self.slots),
            "launch_failures": sum(s.launch_failures for s in self.slots),
            "batches": self.batches,
            "terminations": self.terminations,
            "last_launch_error": self.last_launch_error,
        }
