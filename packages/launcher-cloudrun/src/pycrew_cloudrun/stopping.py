"""Stopping some tasks of an execution when Cloud Run can only cancel whole executions.

A monitor (``pycrew monitor cloudrun terminate ID``, :meth:`pycrew.Monitor.terminate`) asks
for termination now, and often from a process that did not launch the execution. Its
request is granted by cancelling the execution when nothing of value runs in it: every
task still pending or running is either asked to stop or an orphan (its controller has
ended, as :meth:`pycrew.Monitor.orphans` decides). Otherwise nothing is cancelled and
:class:`NotTerminatedError` says which tasks were not terminated, why, and what to do.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import pycrew
from pycrew_cloudrun.options import CloudRunOptions
from pycrew_cloudrun.records import CloudRunHandle
from pycrew_cloudrun.retry import CloudRunError


class NotTerminatedError(CloudRunError):
    """Tasks a monitor asked to terminate were not: Cloud Run would have had to cancel others with them.

    Attributes:
        tasks: the full names of the tasks that were not terminated.
    """

    def __init__(self, message: str, tasks: Sequence[str] = ()) -> None:
        super().__init__(message, "terminate")
        self.tasks = tuple(tasks)


def orphaned_executions(launcher_name: str, options: CloudRunOptions) -> set[str]:
    """The executions that have tasks the monitor lists as orphans (their controller has ended).

    Asks :meth:`pycrew.Monitor.orphans` for the launcher named ``launcher_name`` with these
    options, so that an orphan here is exactly what ``pycrew monitor cloudrun list`` shows
    as one (this machine's controller records decide).

    Raises:
        pycrew.PycrewError: the launcher is not registered under that name, or listing failed.
    """
    values = {f.name: getattr(options, f.name) for f in dataclasses.fields(options) if f.init}
    monitor = pycrew.Monitor(launcher_name, **values)
    return {w.handle.execution for w in monitor.orphans() if isinstance(w.handle, CloudRunHandle)}


def not_terminated_message(
    launcher_name: str, execution: str, asked: Sequence[str], others: Sequence[str], controller: str, why_alive: str
) -> str:
    """Why the tasks ``asked`` of ``execution`` were not terminated, and what to do.

    Args:
        launcher_name: the launcher's name, for the commands suggested.
        execution: the execution's full name.
        asked: full names of its live tasks that were asked to stop.
        others: full names of its other live tasks (not asked to stop, not orphans).
        controller: the controller that launched it, as ``'name' (id ...)``.
        why_alive: why those others count as live work (their controller has not ended, ...).
    """
    short = execution.rsplit("/", 1)[-1]
    names = ", ".join(t.rsplit("/", 1)[-1] for t in others)
    return (
        f"{len(asked)} task(s) of Cloud Run execution {short} were not terminated "
        f"({', '.join(t.rsplit('/', 1)[-1] for t in asked)}): Cloud Run stops only whole executions, and "
        f"{len(others)} other task(s) of it are still pending or running ({names}), workers of controller "
        f"{controller}, {why_alive}; cancelling {short} would stop them too. To stop it anyway, terminate its "
        f"other tasks with it (pycrew monitor {launcher_name} terminate {' '.join([*asked, *others])}), or end "
        f"that controller (its workers stop with it; once it has ended, `pycrew monitor {launcher_name} terminate "
        f"--orphans` stops any left); left alone, a worker exits by itself when idle (seconds_idle) or at its "
        f"seconds_wall"
    )
