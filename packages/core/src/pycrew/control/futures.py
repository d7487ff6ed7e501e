"""Futures of tasks, and the seeds ``map``/``walk`` give their tasks."""

from __future__ import annotations

import hashlib
import threading
from concurrent.futures import Future
from concurrent.futures._base import CANCELLED, CANCELLED_AND_NOTIFIED, FINISHED
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


def _future_fields() -> dict[str, Any]:
    """The attributes ``Future.__init__`` sets, but the condition (read once from a real one)."""
    return {k: v for k, v in vars(Future()).items() if k != "_condition"}


#: What a fresh Future holds besides its condition; lists are copied per future.
_FIELDS = _future_fields()
#: Guards the creation of a future's condition (once per future, on first use).
_CONDITION_LOCK = threading.Lock()


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

    def __init__(self, controller: Any = None, task_id: int = 0) -> None:
        # Not Future.__init__: it makes the condition eagerly.
        for key, value in _FIELDS.items():
            setattr(self, key, list(value) if isinstance(value, list) else value)
        self._lazy_condition: threading.Condition | None = None
        self._controller = controller
        self._task_id = task_id

    @property
    def _condition(self) -> threading.Condition:
        condition = self._lazy_condition
        if condition is None:
            with _CONDITION_LOCK:
                condition = self._lazy_condition
                if condition is None:
                    condition = self._lazy_condition = threading.Condition()
        return condition

    @_condition.setter
    def _condition(self, value: threading.Condition) -> None:
        self._lazy_condition = value

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
