"""Resolving tasks, on the dispatcher's thread: results, crashes, backups, failures."""

from __future__ import annotations

import copy
import dataclasses
import logging
import pickle
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from pycrew.control.backups import Backups
from pycrew.control.conn import Conn
from pycrew.control.futures import TaskFuture
from pycrew.control.quoting import said
from pycrew.control.tasks import Task, decode_fields, local_result, unpickling_failed
from pycrew.errors import ControllerError, TaskCrashError, TaskError, TaskTimeoutError
from pycrew.results import TaskResult
from pycrew.wire.protocol import Payload
from pycrew.wire.records import RESULT_FIELDS

log = logging.getLogger("pycrew.control.controller")

_CONTROLLER_ERROR = f"{ControllerError.__module__}.{ControllerError.__qualname__}"

_LOCAL_ERRORS: dict[str, type[TaskError]] = {
    "crash": TaskCrashError,
    "timeout": TaskTimeoutError,
}


class Resolving(Backups):
    """How a controller resolves its tasks (every method runs on the dispatcher's thread,
    except where a docstring says otherwise)."""

    #: Called with every task delivered and its result, on the dispatcher's thread (a
    #: dashboard's; empty otherwise). A listener must not block; the list is replaced, never
    #: changed in place, so that it can be iterated here while another thread swaps it.
    _result_listeners: list[Callable[[Task, TaskResult], None]]
    _futures_lock: threading.Lock  # (see Submitting)
    _enqueue: Callable[..., None]  # (see Submitting)

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

    def _on_result(self, task: Task, payload: Payload | None, conn: Conn | None, local: tuple[str, str, str] | None) -> None:
        """Dispatcher thread: a task resolved (never raises: the task resolves whatever happens)."""
        if task.resolved:
            return
        task.resolved = True
        try:
            if payload is not None:
                try:
                    fields = pickle.loads(payload)
                except BaseException as exc:  # SystemExit from a __reduce__ must not end the dispatcher
                    result = unpickling_failed(task, exc, self._where(conn))
                else:
                    if self._settled_fast(task, fields, conn):
                        return
                    result = decode_fields(task, fields, self._where(conn))
                    assert self._dispatcher is not None
                    self._dispatcher.record_seconds(result.seconds)
            else:
                assert local is not None
                status, error, error_type = local
                result = local_result(task, status, error, error_type, self._where(conn))  # type: ignore[arg-type]
            if conn is not None and conn.slot is not None:
                self._slot_complete[conn.slot] += 1
                self._slot_seconds[conn.slot] += result.seconds
        except Exception as exc:  # a bug here must not leave the task unresolved (nor end the loop)
            log.exception("controller %r: resolving task %r failed", self.name, task.name)
            result = local_result(
                task, "error", f"the controller could not resolve the task's result: {said(exc)}",
                _CONTROLLER_ERROR, self._where(None),
            )
        self._finish(task, result)

    def _settled_fast(self, task: Task, fields: Any, conn: Conn | None) -> bool:
        """Settle a plain success bound for a future without building its TaskResult.

        This is what most results are: a future waits, nothing else wants the result (no
        ``keep``, relay, listener or task-done observer), no warnings. It does what
        :meth:`_settle` and :meth:`_deliver` would do for it, minus the record object.
        Returns ``False`` (nothing done) for anything else.
        """
        future = task.future
        if (
            future is None
            or conn is None
            or conn.slot is None
            or self._result_listeners
            or self._notify_done
            or task.keep
            or task.relay is not None
            or type(fields) is not tuple
            or len(fields) != RESULT_FIELDS
            or fields[0] != "success"
            or fields[6]
            or type(fields[7]) is not float
            or type(fields[8]) is not float
        ):
            return False
        seconds = fields[8] - fields[7]
        assert self._dispatcher is not None
        self._dispatcher.record_seconds(seconds)
        self._slot_complete[conn.slot] += 1
        self._slot_seconds[conn.slot] += seconds
        if not future.done():
            future.set_result(fields[1])
        self._status_counts["success"] += 1  # after, as _settle counts
        self.resolved += 1
        self._futures_resolved += 1
        if self.pushed - self.resolved - self._abandoned <= 0:
            self._let_go_if_idle()
        if self._futures_resolved >= self._alarm.at:
            self._alarm.check(self._futures_resolved)
        if self._waiters:
            with self._cv:
                self._cv.notify_all()
        return True

    def _finish(self, task: Task, result: TaskResult) -> None:
        """Dispatcher thread: hand a result to a backup, a relay, a future or the pop queue."""
        backup = self.options.backup
        if result.status == "crash" and backup is not None and not self._terminated:  # (terminating: nothing new starts)
            refused = self._forward(task, result, backup)
            if refused is None:
                return
            result = dataclasses.replace(result, error=f"{result.error}; its backup {backup.name!r} could not take it: {refused}")
        self._settle(task, result)

    def _deliver(self, task: Task, result: TaskResult) -> None:
        if self._result_listeners:  # first, so that whoever sees the result sees it counted there too
            self._tell_listeners(task, result)
        future = task.future
        if future is not None and not future.done():
            if result.status == "success":
                future.set_result(result.result)
            elif result.status == "cancel":
                if not isinstance(future, TaskFuture):
                    Future.cancel(future)
                elif not future.cancel_queued():
                    future._force_cancel()
            elif result.status == "error":
                exc = result.exception
                if exc is None or not isinstance(exc, BaseException):
                    exc = TaskError(f"task {task.name!r} failed: {result.error_type}: {result.error}\n{result.traceback}", result)
                future.set_exception(exc)
            else:
                future.set_exception(_LOCAL_ERRORS.get(result.status, TaskError)(f"task {task.name!r}: {result.status}: {result.error}", result))
        if future is not None:  # (counted once done, as _settle counts)
            self._futures_resolved += 1
            if self._futures_resolved >= self._alarm.at:
                self._alarm.check(self._futures_resolved)
        if task.keep:
            self._results.append(result)
        if self._notify_done:
            self._registry.notify("pycrew_task_done", result=result)

    def _tell_listeners(self, task: Task, result: TaskResult) -> None:
        for listener in self._result_listeners:
            try:
                listener(task, result)
            except Exception:  # a listener's bug must not keep the result from its owner
                log.exception("controller %r: a result listener failed on task %r", self.name, task.name)

    def _settle(self, task: Task, result: TaskResult) -> None:
        """Dispatcher thread: hand a final result on, then count it (also what a backup sends back).

        Counted after: whoever sees it resolved (``wait("all")``) finds its future done, the
        future's callbacks handed to their thread (which ``wait`` drains) and a pushed task's
        result ready to pop. Counted first, a ``wait("all")`` could return in between.
        """
        if task.relay is not None:  # a backup's: its dashboard counts it too, as it counts it here
            self._relaying.discard(task.id)
            if self._result_listeners:
                self._tell_listeners(task, result)
            try:
                task.relay(result)
            except BaseException:  # a submit_task(relay=...) caller's code: SystemExit must not end the dispatcher
                log.exception("controller %r: the relay of task %r failed on its %s result, which it lost", self.name,
                              task.name, result.status)
        else:
            self._deliver(task, result)
        self._status_counts[result.status] += 1  # summary()'s resolved: their sum
        self.resolved += 1
        if self.pushed - self.resolved - self._abandoned <= 0:
            self._let_go_if_idle()
        if self._waiters:
            with self._cv:
                self._cv.notify_all()

    def _submit_payload(
        self, name: str, payload: bytes, seed: int | None, seconds_timeout: float | None, relay: Callable[[TaskResult], None]
    ) -> int:
        """Queue an already pickled task whose result goes to ``relay`` (backups); its id here."""
        dispatcher = self._check()
        task = Task(next(self._ids), name, payload, None, False, seed, seconds_timeout)
        task.relay = relay
        if self._result_listeners:  # its dashboard measures the round trip from when it got the task
            task.submitted = time.monotonic()
        self._relaying.add(task.id)  # before it can resolve (which removes it)
        try:  # (taken while shut down, not terminated: see pycrew.control.backups)
            self._enqueue(dispatcher, task, False, after_shutdown=True)
        except BaseException:
            self._relaying.discard(task.id)
            raise
        return task.id

    def _dispatcher_failed(self, error: BaseException) -> ControllerError:
        failure = ControllerError(
            f"the dispatcher of controller {self.name!r} failed: {said(error)}; its tasks were "
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

    def _on_disconnect(self, instance: str, crashed: bool, reason: str) -> None:
        self.launcher.disconnected(instance, crashed, reason)

    def _on_ending(self, instance: str, reason: str) -> None:
        self.launcher.ending(instance, reason)

    def _on_refused(self, instance: str, reason: str, explain: bool) -> None:
        self.launcher.refused(instance, reason, explain)

    def _on_tick(self, now: float) -> None:
        d = self._dispatcher
        if d is None:
            return
        self.launcher.reap(now)
        if not d.demand_pending:  # pushes still coming: the window's end scales (see control.demand)
            self.launcher.scale(len(d.queue) + d.running(), now)
        if self.launcher.error is not None:
            self._fail_futures(self.launcher.error)
            if self._waiters:
                with self._cv:
                    self._cv.notify_all()

    def _fail_futures(self, error: BaseException) -> None:
        assert self._dispatcher is not None
        for task in self._dispatcher.remove_queued(lambda t: t.future is not None or t.relay is not None):
            if task.future is None:  # a relayed task: the controller that handed it over gets the error
                self._relay_error(task, copy.copy(error))
                continue
            self._futures_resolved += 1
            self._abandoned += 1
            if task.future.cancelled():  # by its user, while queued: wake its waiters
                task.future.set_running_or_notify_cancel()
            elif not task.future.done() and (task.running or task.future.set_running_or_notify_cancel()):
                task.future.set_exception(copy.copy(error))  # each its own: see Controller._check
        self._owner.let_go_if(lambda: True)  # its launches failed for good: no pushed task left queued can run

    def _let_go_if_idle(self) -> None:
        """With no task unresolved, the dispatcher stops keeping the controller alive (see
        :mod:`pycrew.control.release`): dropped, it is terminated."""
        self._owner.let_go_if(lambda: self.pushed - self.resolved - self._abandoned <= 0)

    #: How long ``shutdown(cancel_futures=True)`` waits for the dispatcher to cancel the queued futures.
    SECONDS_CANCEL_WAIT = 10.0

    def _cancel_queued_now(self) -> None:
        """``shutdown(cancel_futures=True)``: cancel the queued futures before returning, as
        :mod:`concurrent.futures` does, so that ``f.cancelled()`` right after ``shutdown``
        tells which tasks will not run. The dispatcher thread does it (it owns the queue);
        the caller waits for it unless it is that thread, or the loop has ended (a dead
        loop's tasks were resolved when it ended)."""
        dispatcher = self._dispatcher
        if dispatcher is None:
            return
        done = threading.Event()

        def cancel() -> None:
            try:
                self._cancel_queued_futures()
            finally:
                done.set()

        dispatcher.call_soon(cancel)
        if threading.current_thread() is dispatcher.thread:
            return
        deadline = time.monotonic() + self.SECONDS_CANCEL_WAIT
        while not done.wait(0.05) and not dispatcher.finished:
            if time.monotonic() > deadline:  # a dispatcher that is stuck: they are cancelled when it gets there
                log.warning("controller %r: shutdown(cancel_futures=True) returns before the queued futures are cancelled", self.name)
                return

    _cancel_sweep_due = False  # a sweep of the queue for futures cancelled by their users is scheduled

    def _cancelled_while_queued(self) -> None:
        """Any thread: a user cancelled a queued future. It is counted cancelled (and leaves the
        queue) on the dispatcher's next turn, not when the queue reaches it: ``summary()``
        showed it queued until then, and a ``terminate()`` meanwhile counted it abandoned."""
        dispatcher = self._dispatcher
        if dispatcher is None or self._cancel_sweep_due:
            return
        self._cancel_sweep_due = True
        dispatcher.call_soon(self._sweep_cancelled)

    def _sweep_cancelled(self) -> None:
        self._cancel_sweep_due = False  # first: a future cancelled during the sweep schedules another
        assert self._dispatcher is not None
        for task in self._dispatcher.remove_queued(lambda t: t.future is not None and not t.running and t.future.cancelled()):
            self._on_result(task, None, None, ("cancel", "cancelled before it started", "CancelledError"))

    def _cancel_queued_futures(self) -> None:
        assert self._dispatcher is not None
        for task in self._dispatcher.remove_queued(lambda t: t.future is not None and not t.running):
            assert task.future is not None
            task.future.cancel()
            self._on_result(task, None, None, ("cancel", "cancelled at shutdown", "CancelledError"))
        # and those sent ahead to workers, given back (or taken back earlier) unstarted
        self._dispatcher.recall_to_cancel(lambda t: t.future is not None, "cancelled at shutdown")
