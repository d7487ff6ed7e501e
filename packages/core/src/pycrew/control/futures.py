"""Futures of tasks, and the seeds ``map``/``walk`` give their tasks."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import Future
from concurrent.futures._base import CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED, PENDING
from typing import Any, TypeVar

T = TypeVar("T")


def task_seed(seed: int, index: int) -> int:
    """The seed of task ``index`` (0-based) of a ``map``/``walk`` called with ``seed=seed``.

    The first 8 bytes of ``SHA-256(f"{seed}:{index}")`` as a little-endian integer with the
    top bit cleared: reproducible across runs, machines and Python versions, distinct per
    task, and no collapse of nearby user seeds.
    """
    digest = hashlib.sha256(f"{int(seed)}:{int(index)}".encode()).digest()
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
            condition = instance.__dict__.get("_condition")
            if condition is None:
                condition = instance.__dict__["_condition"] = threading.Condition()
        return condition


#: The attributes ``Future.__init__`` sets; TaskFuture sets the same (but the condition).
_FUTURE_FIELDS = frozenset(vars(Future()))


class TaskFuture(Future[T]):
    """A :class:`concurrent.futures.Future` whose ``cancel`` also stops a running task.

    ``cancel()`` on a queued task removes it (as any future); on a running task it asks the
    controller to interrupt it (or replace its worker) and returns ``True`` once the task
    resolved as cancelled.

    Its ``threading.Condition`` (about 800 bytes with its lock and bound methods, most of
    what a queued task costs) is made when first used: by a waiter, or when the task
    resolves. A million queued tasks then cost a million small objects, not a million
    conditions.
    """

    _condition = _LazyCondition()

    def __init__(self, controller: Any = None, task_id: int = 0) -> None:
        # Not Future.__init__, which makes the condition eagerly; the same fields otherwise.
        self._state = PENDING
        self._result = None
        self._exception = None
        self._waiters: list[Any] = []
        self._done_callbacks: list[Any] = []
        self._controller = controller
        self._task_id = task_id

    def cancel(self) -> bool:
        """Cancel the task, queued or running; ``False`` if it already finished."""
        if super().cancel():
            return True
        if self.done() or self._controller is None:
            return self.cancelled()
        task_id = self._task_id
        self._controller._cancel_where(lambda t: t.id == task_id, "cancelled through its future")
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
        self._invoke_callbacks()  # type: ignore[attr-defined]
