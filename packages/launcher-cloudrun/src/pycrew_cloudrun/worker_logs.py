"""A worker's output from Cloud Logging: the log entries of its Cloud Run task (:func:`task_output`).

Cloud Run sends each line a job's task writes to Cloud Logging as one entry with the
``cloud_run_job`` resource (labels ``job_name``, ``location``) and the labels
``run.googleapis.com/execution_name`` and ``run.googleapis.com/task_index``; the query
selects exactly those of one worker (every attempt of its task) through
google-cloud-logging's ``Client.list_entries``, newest first when only the last lines are
wanted. Entries reach Cloud Logging some seconds after the line was written.

A worker is named by its :class:`CloudRunHandle`, or by its task's full name (the id
``pycrew monitor cloudrun list`` shows), which Cloud Run resolves while it keeps the
execution (7 days).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from typing import Any

from google.api_core import exceptions as gexc

from pycrew import LogsUnavailableError
from pycrew_cloudrun.cloudrun import CloudRunJobs
from pycrew_cloudrun.records import CloudRunHandle
from pycrew_cloudrun.retry import call_api

#: How far back entries are looked for: the retention of Cloud Logging's ``_Default`` bucket.
SECONDS_LOOKBACK = 30 * 24 * 3600.0
#: The largest ``pageSize`` entries.list accepts.
PAGE_SIZE_MAX = 1000
#: Errors that mean Cloud Logging refused the query (not worth another try).
REFUSED: tuple[type[gexc.GoogleAPICallError], ...] = (gexc.BadRequest, gexc.Unauthorized, gexc.Forbidden, gexc.NotFound)
PERMISSION = "logging.logEntries.list (roles/logging.viewer)"
#: A task's full name, as the monitor lists it (``WorkerInfo.id``).
TASK_NAME = re.compile(r"^projects/[^/]+/locations/[^/]+/jobs/[^/]+/executions/[^/]+/tasks/[^/]+$")


def task_handle(jobs: CloudRunJobs, launcher: str, name: str) -> CloudRunHandle:
    """The handle of the worker whose task is named ``name`` (Cloud Run tells its index).

    Raises:
        pycrew.LogsUnavailableError: Cloud Run does not know the task.
        CloudRunError: the request failed.
    """
    try:
        task = call_api(
            f"get task {name}",
            lambda: jobs.clients.tasks.get_task(name=name, retry=None, timeout=jobs.options.seconds_api_timeout),
            jobs.policy, permission="run.tasks.get", passthrough=(gexc.NotFound,),
        )
    except gexc.NotFound as exc:
        raise LogsUnavailableError(
            f"launcher {launcher!r}: Cloud Run does not know the task {name} (it keeps executions for 7 days); "
            "its entries may still be in Cloud Logging: query resource.type=\"cloud_run_job\" in Logs Explorer"
        ) from exc
    return CloudRunHandle(name.rsplit("/tasks/", 1)[0], int(task.index), instance="", task_count=0)


def task_filter(handle: CloudRunHandle, since: float) -> str:
    """The Cloud Logging filter selecting the entries of ``handle``'s task written after ``since`` (epoch seconds)."""
    parts = handle.execution.split("/")  # projects/P/locations/L/jobs/J/executions/E
    location, job, execution = parts[3], parts[5], parts[7]
    stamp = dt.datetime.fromtimestamp(since, tz=dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return " AND ".join([
        'resource.type="cloud_run_job"',
        f'resource.labels.job_name="{job}"',
        f'resource.labels.location="{location}"',
        f'labels."run.googleapis.com/execution_name"="{execution}"',
        f'labels."run.googleapis.com/task_index"="{handle.index}"',
        f'timestamp>="{stamp}"',
    ])


def entry_text(entry: Any) -> str:
    """One entry's line: a text payload as it is, a JSON payload's ``message`` (or the JSON)."""
    payload = entry.payload
    if isinstance(payload, str):
        return payload
    if isinstance(payload, dict):
        message = payload.get("message")
        return message if isinstance(message, str) else json.dumps(payload, sort_keys=True)
    return "" if payload is None else str(payload)


def task_output(jobs: CloudRunJobs, launcher: str, handle: Any, lines: int | None) -> str:
    """The last ``lines`` lines (``None``: all) the worker behind ``handle`` wrote, one per entry, each ending in a newline.

    Args:
        jobs: the launcher's engine (its clients, project and retry policy).
        launcher: the launcher's name, for messages.
        handle: a :class:`CloudRunHandle` (from the launch hook or the monitor), or a task's full name.
        lines: how many lines from the end, or ``None``.

    Raises:
        pycrew.LogsUnavailableError: ``handle`` is neither a :class:`CloudRunHandle` nor a task
            Cloud Run knows, Cloud Logging refused the query (saying why), or it has no
            entries for the task yet.
        CloudRunError: Cloud Logging failed with transient errors beyond the retry budget.
    """
    if isinstance(handle, str) and TASK_NAME.match(handle):
        handle = task_handle(jobs, launcher, handle)
    if not isinstance(handle, CloudRunHandle):
        raise LogsUnavailableError(
            f"launcher {launcher!r} got {handle!r} as a worker handle; it needs a CloudRunHandle or a task's full "
            "name (projects/P/locations/L/jobs/J/executions/E/tasks/T, the id Monitor.list() shows)"
        )
    query = task_filter(handle, time.time() - SECONDS_LOOKBACK)
    project = handle.execution.split("/")[1]
    client = jobs.clients.logging(project)
    request: dict[str, Any] = {"resource_names": [f"projects/{project}"], "filter_": query}
    if lines is None:
        request.update(order_by="timestamp asc", page_size=PAGE_SIZE_MAX)
    else:
        request.update(order_by="timestamp desc", page_size=min(lines, PAGE_SIZE_MAX), max_results=lines)
    what = f"list the Cloud Logging entries of task {handle.index} of {handle.execution}"
    try:
        entries = call_api(what, lambda: list(client.list_entries(**request)), jobs.policy,
                           permission=PERMISSION, passthrough=REFUSED)
    except REFUSED as exc:
        hint = f"the caller needs {PERMISSION}" if isinstance(exc, gexc.Forbidden | gexc.Unauthorized) else (
            "check the project and logging_endpoint options")
        raise LogsUnavailableError(
            f"launcher {launcher!r}: Cloud Logging refused to {what}: {type(exc).__name__}: {exc.message}; {hint}"
        ) from exc
    if not entries:
        task = f"task {handle.index} of {handle.execution}"
        task = f"worker {handle.instance} ({task})" if handle.instance else task
        raise LogsUnavailableError(
            f"launcher {launcher!r}: Cloud Logging has no entries for {task}: the task has not started yet, wrote nothing, or its lines have "
            f"not reached Cloud Logging yet (that takes a few seconds); filter: {query}"
        )
    if lines is not None:
        entries.reverse()
    return "".join(f"{entry_text(e)}\n" for e in entries)
