"""Task results and the summaries a controller reports."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["success", "error", "crash", "cancel", "timeout"]
STATUSES: tuple[Status, ...] = ("success", "error", "crash", "cancel", "timeout")


@dataclass(frozen=True)
class TaskResult:
    """What happened to one task.

    Attributes:
        name: the task's name.
        result: the value the task returned (``None`` unless ``status == "success"``).
        status: ``success``, ``error`` (the task raised), ``crash`` (its worker died
            ``crashes_max`` times), ``cancel`` or ``timeout``.
        error: the error message, ``""`` on success.
        error_type: the exception's qualified type name, ``""`` on success.
        traceback: the remote traceback as text, ``""`` on success.
        warnings: warnings the task emitted, as text.
        seconds: time the task ran on its worker, as the worker measured it; 0 for a result
            the controller made itself, without the worker's (a crash, a cancel of a running
            task, a timeout whose worker was replaced: ``time_start`` is ``None`` then).
        time_start: when it started (epoch seconds), if it started and its worker said so.
        time_end: when it ended (epoch seconds): for a result the controller made, when it
            made it.
        controller: the controller's name.
        launcher: the launcher's name.
        worker: the worker slot that ran it (1..workers), if any.
        instance: the worker instance that ran it, if any.
        host: the host it ran on, if any.
        pid: the process id it ran in, if any.
        attempts: how many times it was sent to a worker (a worker is sent tasks ahead of the
            one it runs: those it still held when it died, and may have started, are sent
            again, and count here and in ``retries``; those it cannot have started yet (past
            the results it may have kept unsent, see pycrew.wire.protocol.RESULTS_UNSENT_MAX)
            and those it handed back when it left politely do not).
        seed: the random seed it ran with, if one was given.
        exception: the exception object itself, when it could be unpickled.
    """

    name: str
    result: Any = None
    status: Status = "success"
    error: str = ""
    error_type: str = ""
    traceback: str = ""
    warnings: tuple[str, ...] = ()
    seconds: float = 0.0
    time_start: float | None = None
    time_end: float | None = None
    controller: str = ""
    launcher: str = ""
    worker: int | None = None
    instance: str | None = None
    host: str | None = None
    pid: int | None = None
    attempts: int = 0
    seed: int | None = None
    exception: BaseException | None = field(default=None, repr=False, compare=False)

    @property
    def ok(self) -> bool:
        """Whether the task succeeded."""
        return self.status == "success"


@dataclass(frozen=True)
class WorkerSummary:
    """One worker slot's counts (crew's client summary).

    Attributes:
        worker: slot index (1..workers).
        online: whether a worker instance is connected in this slot now.
        instances: worker instances that connected in this slot so far.
        launches: launches attempted in this slot.
        launch_failures: launches that failed: the worker did not connect within
            ``seconds_launch``, the platform reported it ended, it ran another pycrew
            version, or the controller's initializer failed in it.
        assigned: tasks sent to this slot's workers, so far: also those that came back
            without a result there (taken back for an idle worker, or lost with a worker
            that died) and ran elsewhere, so a task can count in several slots.
        complete: tasks this slot's workers finished (any status they reported).
        crashes: worker instances of this slot lost without saying goodbye (killed, crashed, silent).
        seconds_busy: total seconds its workers spent running tasks, as the results' ``seconds``
            (so not the time of a task that crashed its worker or was cancelled while running).
        instance: the current or last instance id.
        host: the current or last worker's host.
        pid: the current or last worker's pid.
        exit_reason: why the last instance of this slot left: its own reason when it said
            goodbye (an exit rule, SIGTERM), or how it was lost; empty while none has left.
        initializing: a worker of this slot has connected and runs the controller's
            ``initializer`` (it counts as launching until that succeeds).
        seconds_initializer: total seconds this slot's workers spent in the controller's
            ``initializer`` before their first task (as each reported it; 0 without one).
        running: tasks its worker holds now and that are not resolved (running, or sent
            ahead to run next); not one cancelled or timed out that it has not stopped yet.
    """

    worker: int
    online: bool
    instances: int
    launches: int
    launch_failures: int
    assigned: int
    complete: int
    crashes: int
    seconds_busy: float
    instance: str | None
    host: str | None
    pid: int | None
    exit_reason: str = ""
    initializing: bool = False
    seconds_initializer: float = 0.0
    running: int = 0


@dataclass(frozen=True)
class ControllerSummary:
    """A controller's task counts.

    Attributes:
        controller: the controller's name.
        launcher: its launcher's name.
        pushed: tasks submitted so far.
        queued: tasks waiting for a worker.
        running: tasks sent to a worker and not yet resolved.
        resolved: tasks resolved (by any status).
        popped: resolved results handed out by ``pop``/``collect``.
        success, error, crash, cancel, timeout: resolved tasks by status.
        abandoned: tasks that will never resolve: their futures failed with the
            :class:`~pycrew.LaunchError` when workers could not be launched, or they were
            still queued or running when the controller was terminated (their futures hold
            its :class:`~pycrew.ControllerError`; pushed tasks among them stay counted by
            ``unresolved()``). Once nothing is queued or running,
            ``pushed == resolved + abandoned``.
        retries: times a task was requeued after its worker died (the one it ran, and those
            sent ahead to it that it may have started; see ``TaskResult.attempts``).
        workers_online: workers connected now.
        workers_launching: workers launched and not yet connected.
        seconds: time since the controller started.
    """

    controller: str
    launcher: str
    pushed: int
    queued: int
    running: int
    resolved: int
    popped: int
    success: int
    error: int
    crash: int
    cancel: int
    timeout: int
    retries: int
    workers_online: int
    workers_launching: int
    seconds: float
    abandoned: int = 0


@dataclass(frozen=True)
class Summary:
    """Everything :meth:`Controller.summary` reports.

    Attributes:
        controller: task counts.
        workers: one row per worker slot.
        launcher: the launcher's name, options, and its launch counts.
    """

    controller: ControllerSummary
    workers: tuple[WorkerSummary, ...]
    launcher: dict[str, Any]

    def __str__(self) -> str:
        c = self.controller
        lines = [
            f"controller {c.controller!r} (launcher {c.launcher!r}): pushed {c.pushed}, queued {c.queued}, "
            f"running {c.running}, resolved {c.resolved} (success {c.success}, error {c.error}, "
            f"crash {c.crash}, cancel {c.cancel}, timeout {c.timeout}), "
            + (f"abandoned {c.abandoned}, " if c.abandoned else "")
            + f"retries {c.retries}, "
            f"workers online {c.workers_online}, launching {c.workers_launching}",
            "worker online instances launches failed assigned complete crashes seconds_busy",
        ]
        for w in self.workers:
            lines.append(
                f"{w.worker:>6} {w.online!s:>6} {w.instances:>9} {w.launches:>8} {w.launch_failures:>6} "
                f"{w.assigned:>8} {w.complete:>8} {w.crashes:>7} {w.seconds_busy:>12.3f}"
            )
        return "\n".join(lines)
