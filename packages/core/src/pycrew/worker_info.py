"""What a launcher's monitor reports about one worker: :class:`WorkerInfo` and its statuses."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

#: Values of :attr:`WorkerInfo.status`: the platform's state, normalized.
WORKER_STATUSES = ("pending", "running", "done", "failed", "cancelled", "unknown")
#: Statuses of a worker that has ended (its process or job is gone for good, or, if
#: :attr:`WorkerInfo.queued`, will never start).
ENDED_STATUSES = frozenset({"done", "failed", "cancelled"})


class StatusMixin:
    """``ended`` and ``held`` of a record with a normalized ``status`` and a ``queued`` flag
    (:class:`WorkerInfo`, and the scheduler layer's ``JobRecord``)."""

    status: str
    queued: bool

    @property
    def ended(self) -> bool:
        """Whether it has ended for good (``status`` is done, failed or cancelled)."""
        return self.status in ENDED_STATUSES

    @property
    def held(self) -> bool:
        """Whether the platform still holds it: it has not :attr:`ended`, or is :attr:`queued`."""
        return not self.ended or self.queued


@dataclass(frozen=True)
class WorkerInfo(StatusMixin):
    """One worker as a launcher's monitor sees it (``pycrew_list_workers``).

    A monitor lists live workers, and should also list the workers it knows to have ended
    recently (``status`` ``done``, ``failed`` or ``cancelled``, with ``reason`` and
    ``exit_code``, and the ``instance`` and ``handle`` of its launch): core then fails a
    launch whose worker ended before it connected at once, quoting that reason, instead of
    waiting ``seconds_launch``. Consumers that want
    live workers only skip those with :attr:`ended` set (:meth:`pycrew.Monitor.list`
    does).

    Attributes:
        id: the platform's id of the worker (pid, job id, pod name, execution name).
        handle: a value ``pycrew_terminate_workers`` accepts to terminate this worker.
        launcher: the launcher's name.
        controller: name of the controller that launched it, if known.
        controller_id: id of the controller that launched it, if known.
        instance: the worker instance id, if known.
        worker: the slot index, if known.
        state: the platform's own state, free-form (``running``, ``PENDING``, ...).
        host: where it runs, if known.
        pid: the process id, if the platform exposes it.
        started: when it was launched or started (epoch seconds), if known.
        reason: why it is in this state, if the platform says (e.g. ``Unschedulable``,
            ``CannotPullContainerError: ...``; for an ended worker, the last lines of its
            output if the platform has nothing better).
        log: where its log is (a path, a URL or a log stream name), if any.
        status: ``state`` normalized, one of :data:`WORKER_STATUSES`: ``pending`` (queued,
            not started), ``running``, ``done`` (ended by itself, exit code 0),
            ``failed`` (ended with an error, or could not start), ``cancelled``
            (terminated), or ``unknown`` (the default: the monitor does not say).
        exit_code: the worker process's exit code, once it has ended and if known.
        queued: the worker could not start (``status`` ``failed``: a request the platform
            will never grant, e.g. SLURM's ``PartitionConfig``, SGE's ``Eqw``, a pod whose
            image name is invalid) but the platform still holds it, pending for good, until
            it is terminated. Such a worker has :attr:`ended` for core's launch checks, yet
            :meth:`pycrew.Monitor.list` shows it with the live ones, and ``pycrew monitor
            LAUNCHER terminate --orphans`` removes it when its controller is gone.

    Raises:
        ValueError: ``status`` is not one of :data:`WORKER_STATUSES`.
    """

    id: str
    handle: Any
    launcher: str
    controller: str | None = None
    controller_id: str | None = None
    instance: str | None = None
    worker: int | None = None
    state: str = "unknown"
    host: str | None = None
    pid: int | None = None
    started: float | None = None
    reason: str = ""
    log: str | None = None
    status: str = "unknown"
    exit_code: int | None = None
    queued: bool = False

    def __post_init__(self) -> None:
        if self.status not in WORKER_STATUSES:
            raise ValueError(
                f"WorkerInfo status must be one of {', '.join(map(repr, WORKER_STATUSES))}, got {self.status!r} "
                f"(worker {self.id!r} of launcher {self.launcher!r}); put the platform's own state in 'state'"
            )

    @property
    def age(self) -> float | None:
        """Seconds since ``started``, or ``None`` if unknown."""
        return None if self.started is None else max(0.0, time.time() - self.started)
