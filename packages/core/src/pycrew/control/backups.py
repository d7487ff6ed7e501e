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

A backup that is shut down (``shutdown()``, the end of its ``with`` block, a group's
shutdown, the interpreter's exit) still takes the tasks its controllers hand it, and waits
before it terminates until none of them has tasks left that could crash there
(:meth:`Backups._serve_primaries`): a crash that comes after would find no backup.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import weakref
from collections.abc import Callable
from typing import Any

from pycrew.control import callbacks
from pycrew.control.futures import end_unresolved
from pycrew.control.quoting import said, text_of
from pycrew.control.state import ControllerState
from pycrew.control.tasks import ById, Task, local_result
from pycrew.errors import ControllerError, PycrewError
from pycrew.results import TaskResult

log = logging.getLogger("pycrew.control.controller")


def _qualified(error: BaseException) -> str:
    return f"{type(error).__module__}.{type(error).__qualname__}"


class Backups(ControllerState):
    """Handing tasks to the backup controller, and taking relayed tasks as one."""

    _relaying: set[int]  # ids of the tasks handed here by another controller, unresolved
    _primaries: weakref.WeakSet[Any]  # the controllers whose backup this is

    def _init_backups(self) -> None:
        """``__init__``: no task handed either way yet; a backup knows its controllers (it
        serves them before it terminates, see :meth:`_serve_primaries`)."""
        self._forwarded = {}
        self._relaying = set()
        self._primaries = weakref.WeakSet()
        if (primaries := getattr(self.options.backup, "_primaries", None)) is not None:
            primaries.add(self)

    def _work_left(self, at_exit: bool) -> bool:
        """Whether tasks this controller runs may still crash and go to its backup: its own
        unresolved tasks (at the interpreter's exit: its pending futures), those handed to
        it, and those its own controllers may still hand it. None once its launches failed
        (a LaunchError) or its dispatcher did: its tasks never run (pushed ones stay unresolved)."""
        if self._launch_failed() or (self._dispatcher is not None and self._dispatcher.error is not None):
            return False
        own = self.pending_futures() if at_exit else self.unresolved()
        return bool(own or self._relaying) or self._backing_up(at_exit)

    def _backing_up(self, at_exit: bool) -> bool:
        """Whether a controller whose backup this is, not terminated, has work left (a chain
        is acyclic here: a controller registers with its backup, built before it)."""
        return any(not p._terminated and p._work_left(at_exit) for p in list(self._primaries))

    def _serve_primaries(self, at_exit: bool = False) -> None:
        """Before this controller terminates at a shutdown, the end of its ``with`` block or
        the interpreter's exit: keep serving while the tasks handed to it are unresolved or
        its controllers have work left (checked every 0.2 s). Not once terminated, after a
        Ctrl-C or SIGTERM at exit, or once its own launcher failed (they hear that from it)."""
        from pycrew.control import exit_hooks  # (it imports the controller)

        if not self._started:
            return
        with self._cv:
            self._waiters += 1
            try:
                while (self._relaying or self._backing_up(at_exit)) and not self._terminated:
                    if at_exit and exit_hooks.stop_waiting():
                        return
                    try:
                        self._check()
                    except PycrewError:
                        return
                    self._cv.wait(0.2)
            finally:
                self._waiters -= 1

    def _check_backup_chain(self, backup: Any) -> str | None:
        """Why ``backup`` cannot take a task from here: its chain of backups comes back to a
        controller already in it (a task would go round for ever); ``None`` if it can."""
        seen, current = [self], backup
        while current is not None:
            if any(current is c for c in seen):
                names = " -> ".join(repr(c.name) for c in [*seen, current])
                return f"the backups form a cycle ({names}): each controller's backup must be another, not one before it"
            seen.append(current)
            current = getattr(getattr(current, "options", None), "backup", None)
        return None

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

        if (cycle := self._check_backup_chain(backup)) is not None:
            log.error("controller %r could not hand task %r to its backup %r: %s", self.name, task.name, backup.name, cycle)
            return cycle
        try:
            relayed = backup._submit_payload(task.name, task.payload, task.seed, task.seconds_timeout, relay)
        except PycrewError as exc:
            log.error("controller %r could not hand task %r to its backup %r: %s", self.name, task.name, backup.name, exc)
            return said(exc)
        self._forwarded[task.id] = (task, backup, relayed)
        log.info("controller %r: task %r crashed %d time(s); sent to backup %r", self.name, task.name, task.crashes, backup.name)
        return None

    def _relay_error(self, task: Task, error: BaseException) -> None:
        """A relayed task (one this controller runs as a backup) ends with ``error``, unrun:
        the controller that handed it over gets the error as the task's result."""
        result = local_result(task, "error", text_of(error), _qualified(error), {"controller": self.name, "launcher": self.spec.name})
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
        return int(backup._cancel_where(ById(relayed), message))

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
            elif task.relay is not None:  # resolved here (an error, relayed back), not abandoned
                self._ended_held -= 1
                self._end_relayed(task, ControllerError(f"backup controller {self.name!r} was terminated before the task finished"))
            elif task.future is not None:
                self._futures_resolved += 1  # none of these was counted (resolving)
                end_unresolved(task.future, ControllerError(f"controller {self.name!r} was terminated before the task finished"))
        forwarded, self._forwarded = self._forwarded, {}
        for task, backup, relayed in forwarded.values():
            if task.relay is not None:  # this controller is a backup in a chain: the first one hears it
                self._ended_held -= 1
                self._end_relayed(task, ControllerError(
                    f"backup controller {self.name!r} was terminated while its backup {backup.name!r} had the task"))
            elif task.future is not None:
                self._futures_resolved += 1
                end_unresolved(task.future, ControllerError(
                    f"controller {self.name!r} was terminated while its backup {backup.name!r} had the task"))
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
