"""What the launcher hands out and reads back: handles, execution records, Cloud Run states."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from google.cloud import run_v2

from pycrew_cloudrun import tag

_Cond = run_v2.Condition


@dataclass(frozen=True)
class CloudRunHandle:
    """A worker: task ``index`` of an execution (what the launch hook returns).

    Attributes:
        execution: the execution's full name (``projects/P/locations/L/jobs/J/executions/E``).
        index: the task index (``CLOUD_RUN_TASK_INDEX``).
        instance: the worker's instance id.
        task_count: how many tasks the execution has.
        listed: the handle comes from the monitor's listing (``pycrew_list_workers``), not
            from a launch: terminating it asks for the task to stop now (see
            :mod:`pycrew_cloudrun.stopping`). Not compared: both name the same task.
    """

    execution: str
    index: int
    instance: str
    task_count: int
    listed: bool = field(default=False, compare=False)

    @property
    def job(self) -> str:
        """The job's full name."""
        return self.execution.rsplit("/executions/", 1)[0]

    def __str__(self) -> str:
        """``execution <name> task <index>``: short, and different for each worker (in messages)."""
        return f"execution {self.execution.rsplit('/', 1)[-1]} task {self.index}"


@dataclass(frozen=True)
class ExecutionInfo:
    """One of pycrew's executions, as :meth:`CloudRunJobs.executions` lists it.

    Attributes:
        name: the execution's full name.
        job: the job id.
        controller_id: the controller that launched it.
        controller: that controller's name.
        state: ``PENDING``, ``RUNNING``, ``SUCCEEDED``, ``FAILED`` or ``CANCELLED``.
        task_count, running, succeeded, failed, cancelled: task counts.
        created: creation time (epoch seconds).
        log: the execution's logs (Cloud Console link).
        labels: the execution's labels (its job template's).
        message: the execution's condition message (why it failed, ...).
    """

    name: str
    job: str
    controller_id: str
    controller: str
    state: str
    task_count: int
    running: int
    succeeded: int
    failed: int
    cancelled: int
    created: float | None
    log: str | None
    labels: dict[str, str] = field(default_factory=dict)
    message: str = ""

    @property
    def age(self) -> float | None:
        """Seconds since creation."""
        return None if self.created is None else max(0.0, time.time() - self.created)


def completed_condition(conditions: Sequence[Any]) -> Any:
    """The ``Completed`` condition of an execution or task (Cloud Run's terminal one), if any."""
    return next((c for c in conditions if c.type_ == "Completed"), None)


def timestamp(value: Any) -> float | None:
    """A protobuf timestamp field (a datetime, or ``None`` when unset) as epoch seconds."""
    return None if value is None else float(value.timestamp())


def execution_done(execution: Any) -> bool:
    """Whether an execution has ended (all its tasks are finished)."""
    if "completion_time" in execution:
        return True
    cond = completed_condition(execution.conditions)
    return cond is not None and cond.state in (_Cond.State.CONDITION_SUCCEEDED, _Cond.State.CONDITION_FAILED)


def execution_state(execution: Any) -> str:
    """``PENDING``, ``RUNNING``, ``SUCCEEDED``, ``FAILED`` or ``CANCELLED``."""
    cond = completed_condition(execution.conditions)
    if execution_done(execution):
        if cond is not None and cond.execution_reason == _Cond.ExecutionReason.CANCELLED:
            return "CANCELLED"
        return "SUCCEEDED" if cond is not None and cond.state == _Cond.State.CONDITION_SUCCEEDED else "FAILED"
    return "RUNNING" if "start_time" in execution else "PENDING"


def task_state(task: Any) -> str:
    """``PENDING``, ``RUNNING``, ``SUCCEEDED``, ``FAILED`` or ``CANCELLED``."""
    return execution_state(task)  # tasks carry the same fields and condition types


def execution_tag(execution: Any) -> tag.ExecutionTag | None:
    """The pycrew tag of an execution (from its template's environment), if it has one."""
    for container in execution.template.containers:
        for var in container.env:
            if var.name == tag.TAG_ENV:
                return tag.decode(var.value)
    return None


def execution_info(execution: Any, found: tag.ExecutionTag) -> ExecutionInfo:
    """An execution and its tag as an :class:`ExecutionInfo`."""
    cond = completed_condition(execution.conditions)
    return ExecutionInfo(
        name=execution.name,
        job=execution.job.rsplit("/", 1)[-1],
        controller_id=found.controller_id,
        controller=found.controller,
        state=execution_state(execution),
        task_count=execution.task_count,
        running=execution.running_count,
        succeeded=execution.succeeded_count,
        failed=execution.failed_count,
        cancelled=execution.cancelled_count,
        created=timestamp(execution.create_time),
        log=execution.log_uri or None,
        labels=dict(execution.labels),
        message=cond.message if cond is not None else "",
    )


