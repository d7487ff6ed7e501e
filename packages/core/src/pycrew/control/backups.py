"""Backup controllers (option ``backup``): a task that crashed ``crashes_max`` times runs there.

The backup queues the task's payload with a *relay*, which hands its result back to this
controller, where it resolves the task's future or waits for ``pop``. Every way the task
can end on either side resolves it exactly once:

- the backup runs it: the relay brings the result back;
- the backup's launcher fails (a ``LaunchError``): the relay brings that error back;
- the backup is terminated first: the relay brings a ``ControllerError`` back;
- this controller is terminated first: its future fails with a ``ControllerError``, and
  the task is cancelled on the backup, whose worker would otherwise run it for no one;
- ``cancel`` here reaches the tasks it handed to the backup.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable
from typing import Any

from pycrew.control import callbacks
from pycrew.control.futures import end_unresolved
from pycrew.control.state import ControllerState
from pycrew.control.tasks import Task, local_result
from pycrew.errors import ControllerError, PycrewError
from pycrew.results import TaskResult

log = logging.getLogger("pycrew.control.controller")


def _qualified(error: BaseException) -> str:
    return f"{type(error).__module__}.{type(error).__qualname__}"


class Backups(ControllerState):
    """Handing tasks to the backup controller, and taking relayed tasks as one."""

    def _forward(self, task: Task, crashed: TaskResult, backup: Any) -> str | None:
        """Dispatcher thread: re-send a task that crashed ``crashes_max`` times here to ``backup``.

        Returns:
            ``None`` if the backup took it, else why it did not (the backup's error).
        """
        dispatcher = self._dispatcher
        assert dispatcher is not None

        def settle(merged: TaskResult) -> None:
            if self._forwarded.pop(task.id, None) is not None:  # not already ended by terminate
                self._settle(task, merged)

        def relay(result: TaskResult) -> None:  # runs on the backup's dispatcher thread
            merged = dataclasses.replace(result, name=task.name, attempts=result.attempts + crashed.attempts)
            dispatcher.call_soon(lambda: settle(merged))

        try:
            relayed = backup._submit_payload(task.name, task.payload, task.seed, task.seconds_timeout, relay)
        except PycrewError as exc:
            log.error("controller %r could not hand task %r to its backup %r: %s", self.name, task.name, backup.name, exc)
            return f"{type(exc).__name__}: {exc}"
        self._forwarded[task.id] = (task, backup, relayed)
        log.info("controller %r: task %r crashed %d time(s); sent to backup %r", self.name, task.name, task.crashes, backup.name)
        return None

    def _relay_error(self, task: Task, error: BaseException) -> None:
        """A relayed task (one this controller runs as a backup) ends with ``error``, unrun:
        the controller that handed it over gets the error as the task's result."""
        result = local_result(task, "error", str(error), _qualified(error), {"controller": self.name, "launcher": self.spec.name})
        self._settle(task, dataclasses.replace(result, exception=error))

    def _end_relayed(self, task: Task, error: BaseException) -> None:
        """:meth:`_relay_error` while terminate ends the tasks: a failure is logged, the others go on."""
        try:
            self._relay_error(task, error)
        except Exception:
            log.exception("controller %r: ending relayed task %r at terminate", self.name, task.name)

    @staticmethod
    def _cancel_at(backup: Any, relayed: int, message: str) -> int:
        """Cancel, on ``backup``, the task it queued as ``relayed``; how many were cancelled."""
        return int(backup._cancel_where(lambda t: t.id == relayed, message))

    def _end_held(self, tasks: list[Task]) -> None:
        """After terminate stopped the dispatcher: end the tasks it held and those handed to the backup.

        Their futures' callbacks run on the controller's callbacks thread, after every future
        has ended (run here, one that waited for another of them, or raised KeyboardInterrupt,
        left the rest unresolved)."""
        with callbacks.deferred():
            self._end_held_now(tasks)
        callbacks.runner_for(self).retire()

    def _end_held_now(self, tasks: list[Task]) -> None:
        self._ended_held += len(tasks) + len(self._forwarded)  # never resolved: summary()'s ``abandoned``
        for task in tasks:
            if task.future is not None and task.future.cancelled() and not task.running:  # by its user: a cancel
                self._ended_held -= 1
                self._on_result(task, None, None, ("cancel", "cancelled before it started", "CancelledError"))
            elif task.relay is not None:
                self._end_relayed(task, ControllerError(f"backup controller {self.name!r} was terminated before the task finished"))
            elif task.future is not None:
                self._futures_resolved += 1  # none of these was counted (resolving)
                end_unresolved(task.future, ControllerError("the controller was terminated"))
        forwarded, self._forwarded = self._forwarded, {}
        for task, backup, relayed in forwarded.values():
            if task.relay is not None:  # this controller is a backup in a chain: the first one hears it
                self._end_relayed(task, ControllerError(
                    f"backup controller {self.name!r} was terminated while its backup {backup.name!r} had the task"))
            elif task.future is not None:
                self._futures_resolved += 1
                end_unresolved(task.future, ControllerError(
                    f"the controller was terminated while its backup {backup.name!r} had the task"))
            try:
                self._cancel_at(backup, relayed, f"cancelled: controller {self.name!r}, which handed it to this backup, was terminated")
            except Exception:  # the backup may be ending too
                log.debug("controller %r: cancelling task %r on backup %r failed", self.name, task.name, backup.name, exc_info=True)

    def _cancel_forwarded(self, predicate: Callable[[Task], bool], message: str) -> int:
        """``cancel`` here also cancels, on the backup, the tasks handed to it that match."""
        count = 0
        for task, backup, relayed in list(self._forwarded.values()):
            if predicate(task):
                count += self._cancel_at(backup, relayed, message)
        dispatcher = self._dispatcher
        if count and dispatcher is not None:  # the results came back through call_soon: let them land first
            landed = threading.Event()
            dispatcher.call_soon(landed.set)
            while not landed.wait(0.1) and not dispatcher.finished:
                pass
        return count
