"""Futures of tasks, and the seeds ``map``/``walk`` give their tasks."""

from __future__ import annotations

import contextlib
import hashlib
import operator
import threading
from concurrent.futures import Future, InvalidStateError
from concurrent.futures._base import CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED, PENDING, RUNNING
from typing import Any, TypeVar

from pycrew.control import callbacks as _callbacks
from pycrew.control.tasks import ById
from pycrew.errors import ControllerError
from pycrew.fork_safety import free_after_fork

T = TypeVar("T")


def task_seed(seed: int, index: int) -> int:
    """The seed of task ``index`` (0-based) of a ``map``/``walk`` called with ``seed=seed``.

    The first 8 bytes of ``SHA-256(f"{seed}:{index}")`` as a little-endian integer with the
    top bit cleared: reproducible across runs, machines and Python versions, distinct per
    task, and no collapse of nearby user seeds.
    """
    for value, what in ((seed, "seed"), (index, "index")):
        if isinstance(value, bool) or not hasattr(type(value), "__index__"):
            raise TypeError(f"task_seed: {what} must be an int, got {type(value).__name__} {value!r}")
    digest = hashlib.sha256(f"{operator.index(seed)}:{operator.index(index)}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


class _LazyCondition:
    """The ``_condition`` of a :class:`TaskFuture`, made on first use.

    A non-data descriptor: the first access stores the condition in the instance's
    ``__dict__``, which every later access finds first, so the hot path (each result takes
    the condition several times) pays nothing after the first use.
    """

    lock = threading.Lock()  # guards the creation (once per future)

    def __get__(self, instance: Any, owner: Any = None) -> Any:
        if instance is None:
            return self
        with self.lock:
            fields = instance.__dict__
            condition = fields.get("_condition")
            if condition is None:
                # the lists waiters and callbacks are added to come with it (see TaskFuture)
                fields["_waiters"], fields["_done_callbacks"] = [], []
                condition = fields["_condition"] = threading.Condition()
        return condition


# A child forked while a thread held the lock (a dispatcher making a future's condition)
# would wait for it for good on its own controller's futures.
free_after_fork(_LazyCondition.lock)

#: The attributes ``Future.__init__`` sets; TaskFuture sets the same (but the condition).
_FUTURE_FIELDS = frozenset(vars(Future()))

#: TaskFuture's ``_waiters`` until its condition is made.
_UNWATCHED: Any = ()

_DONE = frozenset((CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED))
_CANCELLED = frozenset((CANCELLED, CANCELLED_AND_NOTIFIED))


class TaskFuture(Future[T]):
    """A :class:`concurrent.futures.Future` whose ``cancel`` also stops a running task.

    ``cancel()`` on a queued task removes it (as any future); on a running task it asks the
    controller to interrupt it (or replace its worker) and returns ``True`` once the task
    resolved as cancelled.

    Done-callbacks of a future its controller resolves run on the ``pycrew-callbacks``
    thread, never on the dispatcher's (see :mod:`pycrew.control.callbacks`): a slow callback,
    or one that waits for another task's result, holds up no other task.

    Its ``threading.Condition`` (about 800 bytes with its lock and bound methods, most of
    what a queued task costs, and ~6 µs to make) is made only when a thread waits on the
    future, cancels it or adds a callback. Until then nobody can be waiting, so the
    dispatcher moves the future to running and to finished under one process-wide lock
    (the one that guards making a condition) instead: a million queued tasks cost a million
    small objects, not a million conditions, and a task whose result is read after it
    finished never makes one. The lists of waiters and done-callbacks come with the
    condition (both are only ever added to under it; until then they read as the empty
    tuple below), and "no condition yet" is read from them rather than from ``__dict__``,
    which reading would make: a queued future is two objects the garbage collector tracks
    less, which made ``submit`` ~1 us faster (the collector visits every tracked object
    that stays alive several times as the heap grows).
    """

    _condition = _LazyCondition()
    #: Until the condition is made (see the class docstring); then lists of the instance.
    _waiters: list[Any] = _UNWATCHED
    _done_callbacks: list[Any] = _UNWATCHED

    def __init__(self, controller: Any = None, task_id: int = 0) -> None:
        # Not Future.__init__, which makes the condition eagerly; the same fields otherwise
        # (the condition, and the lists of waiters and callbacks, come on first use).
        self._state = PENDING
        self._result = None
        self._exception = None
        self._controller = controller
        self._task_id = task_id
        self.payload_bytes = 0  #: the size of the task's pickle (``map``'s feeder counts them)

    # -- without a condition while nobody waits -------------------------------------------
    # Each method below changes or reads the state the way Future's does. When the future
    # has no condition yet, no thread holds it or waits on it, no waiter object and no
    # callback is registered (those are added under the condition), and none can appear
    # while the creation lock is held: the change is made under that lock. Otherwise the
    # stdlib path runs. A finished state never changes again, so reading it needs no lock.

    def set_running_or_notify_cancel(self) -> bool:
        """As :meth:`Future.set_running_or_notify_cancel` (see the class docstring), and
        ``False`` (not ``RuntimeError``) for a future already cancelled and notified: a
        queued future's waiters are woken when it is cancelled (see :meth:`cancel_queued`),
        before the dispatcher reaches it; and for one its caller finished with ``set_result``
        or ``set_exception`` while it was queued (meant for executors only, but one such
        call failed the dispatcher, and with it every task of the controller)."""
        if self._waiters is _UNWATCHED:
            with _LazyCondition.lock:
                if self._waiters is _UNWATCHED and self._state == PENDING:
                    self._state = RUNNING
                    return True
        with self._condition:
            if self._state in (CANCELLED_AND_NOTIFIED, FINISHED):
                return False
            return super().set_running_or_notify_cancel()

    def cancel_queued(self) -> bool:
        """Cancel the future if its task has not started, and wake at once whoever waits on
        it (``concurrent.futures.wait``, ``as_completed``); ``False`` if it is running or
        finished. ``Future.cancel`` alone leaves waiters asleep until the executor calls
        ``set_running_or_notify_cancel``, which for a task behind a long one, or one
        cancelled by ``terminate()``, would be never."""
        if not Future.cancel(self):
            return False
        self.set_running_or_notify_cancel()
        return True

    def set_result(self, result: Any) -> None:
        """As :meth:`Future.set_result` (see the class docstring)."""
        if self._waiters is _UNWATCHED:
            with _LazyCondition.lock:
                done = self._waiters is _UNWATCHED and self._state not in _DONE
                if done:
                    self._result = result
                    self._state = FINISHED
            if done:
                return
        super().set_result(result)

    def set_exception(self, exception: BaseException | None) -> None:
        """As :meth:`Future.set_exception` (see the class docstring)."""
        if self._waiters is _UNWATCHED:
            with _LazyCondition.lock:
                done = self._waiters is _UNWATCHED and self._state not in _DONE
                if done:
                    self._exception = exception
                    self._state = FINISHED
            if done:
                return
        super().set_exception(exception)

    def done(self) -> bool:
        """As :meth:`Future.done`."""
        return self._state in _DONE

    def cancelled(self) -> bool:
        """As :meth:`Future.cancelled`."""
        return self._state in _CANCELLED

    def running(self) -> bool:
        """As :meth:`Future.running`."""
        return self._state == RUNNING

    def result(self, timeout: float | None = None) -> T:
        """As :meth:`Future.result` (a finished success returns without taking any lock)."""
        if self._state == FINISHED and self._exception is None:
            return self._result  # type: ignore[return-value]
        self._refuse_in_a_fork()
        value = super().result(timeout)
        if self._exception is not None:  # Python < 3.13.4 returned None for an exception that is false (gh-132063)
            raise self._exception
        return value

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """As :meth:`Future.exception` (a finished future answers without taking any lock)."""
        if self._state == FINISHED:
            return self._exception
        self._refuse_in_a_fork()
        return super().exception(timeout)

    def _refuse_in_a_fork(self) -> None:
        """A child forked from the controller's process holds a copy of this future that
        nothing will ever resolve (the dispatcher runs in the parent): waiting would hang."""
        controller = self._controller
        if self._state not in _DONE and controller is not None and (forked := controller._forked_message()) is not None:
            raise ControllerError(f"this future cannot be waited for here: {forked}")

    def _invoke_callbacks(self) -> None:
        # Resolved on a dispatcher's thread: the callbacks run on the callbacks thread (see
        # pycrew.control.callbacks); on any other thread, at once, as Future's do.
        if self._done_callbacks and _callbacks.deferring():
            _callbacks.hand_over(self, list(self._done_callbacks), self._controller)
            return
        super()._invoke_callbacks()  # type: ignore[misc]

    def cancel(self) -> bool:
        """Cancel the task, queued or running; ``False`` if it already finished."""
        if self.cancel_queued():
            if self._controller is not None:
                self._controller._cancelled_while_queued()
            return True
        if self.done() or self._controller is None:
            return self.cancelled()
        task_id = self._task_id
        self._controller._cancel_where(ById(task_id), "cancelled through its future")
        return self.cancelled()

    def _force_cancel(self) -> None:
        """Mark a running future cancelled and wake its waiters (controller only)."""
        with self._condition:
            state: Any = self._state
            if state in (FINISHED, CANCELLED, CANCELLED_AND_NOTIFIED):
                return
            self._state = CANCELLED_AND_NOTIFIED
            for waiter in self._waiters:
                waiter.add_cancelled(self)
            self._condition.notify_all()
        self._invoke_callbacks()


def end_unresolved(future: Future[Any], error: BaseException) -> None:
    """Resolve a future whose controller ended before its task did: cancelled (its waiters
    woken) if the task had not started, else failed with ``error``."""
    cancelled = future.cancel_queued() if isinstance(future, TaskFuture) else Future.cancel(future)
    if not cancelled and not future.done():
        with contextlib.suppress(InvalidStateError):  # resolved meanwhile
            future.set_exception(error)
