"""Tasks that lost their last allowed worker, held until the platform says why it died.

A task whose worker is lost ``crashes_max`` times resolves as a crash. Its error is more
useful with the platform's reason for the last loss (out of memory, killed by a signal,
the node failed: see :mod:`pycrew.control.crash_watch`), which comes a moment later from
the launcher's monitor. So when the launcher has a monitor, the dispatcher holds such a
task (neither queued nor running) until its scaler calls :meth:`CrashHold.crash_explained`
for that worker, or :data:`SECONDS_EXPLAIN_CRASH` have passed, whichever comes first.
"""

from __future__ import annotations

from collections.abc import Callable

from pycrew.control.conn import Conn, DispatcherSettings
from pycrew.control.tasks import Task
from pycrew.wire import protocol as p

#: The longest a crashed task waits for its worker's explanation (a monitor that hangs).
SECONDS_EXPLAIN_CRASH = 10.0

Error = tuple[str, str, str]  # (status, message, error type), as the dispatcher's on_result takes it


class CrashHold:
    """The dispatcher's crashed tasks waiting for their explanation (mixed into Dispatcher).

    A worker's death charges a crash only when it held one task (see Upkeep._requeue), so a
    lost worker leaves at most one task held for it.
    """

    settings: DispatcherSettings
    _on_result: Callable[[Task, p.Payload | None, Conn | None, Error | None], None]
    _crash_held: dict[str, tuple[float, Task, Error]]  # instance -> (due, its task, the task's error)

    @property
    def crash_holding(self) -> int:
        """How many tasks are held (any thread: summary() counts them running)."""
        return len(self._crash_held)

    def _hold_crash(self, instance: str | None, task: Task, error: Error, now: float) -> None:
        """Resolve ``task`` with ``error``: once ``instance``'s loss is explained, if its launcher has a monitor."""
        if instance is None or not self.settings.explain_crashes:
            self._on_result(task, None, None, error)
            return
        self._crash_held[instance] = (now + SECONDS_EXPLAIN_CRASH, task, error)

    def crash_explained(self, instance: str, why: str) -> None:
        """Dispatcher thread: the scaler's word on why worker ``instance`` was lost (``""``: none)."""
        self._release_held(instance, f"; {why}" if why else "")

    def _release_held(self, instance: str, said: str) -> None:
        held = self._crash_held.pop(instance, None)
        if held is not None:
            _, task, (status, message, error_type) = held
            self._on_result(task, None, None, (status, message + said, error_type))

    def _crashes_overdue(self, now: float) -> None:
        """Resolve the held tasks whose explanation did not come in time (see :data:`SECONDS_EXPLAIN_CRASH`)."""
        for instance in [i for i, (due, _, _) in self._crash_held.items() if due <= now]:
            self._release_held(instance, f" (the launcher's monitor did not say why within {SECONDS_EXPLAIN_CRASH:g} s)")

    def _cancel_held(self, predicate: Callable[[Task], bool], message: str) -> int:
        """Cancel the held tasks matching ``predicate`` (they resolve as ``cancel``, as a running task does)."""
        cancelled = [instance for instance, (_, task, _) in self._crash_held.items() if predicate(task)]
        for instance in cancelled:
            _, task, _ = self._crash_held.pop(instance)
            self._on_result(task, None, None, ("cancel", message, "CancelledError"))
        return len(cancelled)

    def _end_crash_holds(self) -> None:
        """The loop ends (terminated, or failed): the held tasks resolve as the crashes they are, unexplained."""
        for instance in list(self._crash_held):
            self._release_held(instance, "")

    def _crash_held_tasks(self) -> list[Task]:
        """The held tasks, taken out (the loop could not end them: the owner resolves them)."""
        tasks = [task for _, task, _ in self._crash_held.values()]
        self._crash_held.clear()
        return tasks
