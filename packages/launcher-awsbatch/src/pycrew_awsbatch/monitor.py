"""The monitor's side of the awsbatch launcher: list pycrew's workers, job details, logs, clean-up.

Listing costs one ListJobs call per active status (SUBMITTED, PENDING, RUNNABLE, STARTING,
RUNNING; paginated; always with ``jobStatus``, since ListJobs without it means RUNNING only
on AWS and everything on moto), then DescribeJobs (100 ids per call) for the jobs named
``pycrew...`` to read their tags, then, per active array job, one ListJobs call per status
its ``statusSummary`` shows children in. Only jobs tagged ``pycrew:launcher=<launcher>``
are listed: another user's job in the same queue never shows up.

Workers that this process launched and has not terminated yet, and that are no longer
active, are described too (DescribeJobs, 100 per call) and listed as ended (``status``
``failed`` or ``done``) with AWS's ``statusReason``, the container's ``reason`` and exit
code, and the last lines of a failed worker's CloudWatch log: so a controller learns at
once that a worker could not start (``CannotPullContainerError``,
``CannotStartContainerError``, ...) instead of waiting ``seconds_launch``. Ended jobs of
other processes are not listed (a queue keeps them for days; AWS lists them by status only).

A job's details are read in :mod:`pycrew_awsbatch.job_details`, its log lines in
:mod:`pycrew_awsbatch.cloudwatch_logs`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from typing import Any

from pycrew import WorkerInfo
from pycrew_awsbatch import jobdefs, plan
from pycrew_awsbatch.api import AwsBatchError
from pycrew_awsbatch.client import ACTIVE, FINAL, QUEUED, AwsBatchClient
from pycrew_awsbatch.cloudwatch_logs import LOG_PAGE_MAX, log_lines
from pycrew_awsbatch.job_details import DEFAULT_LOG_GROUP, JobDetails, _log_group, _log_stream, _seconds, details

__all__ = [
    "DEFAULT_LOG_GROUP",
    "LOG_PAGE_MAX",
    "LOG_TAIL_LINES",
    "NEVER_STARTS",
    "JobDetails",
    "delete_stale_resources",
    "details",
    "ended_workers",
    "list_jobs",
    "log_lines",
    "never_starts",
    "pycrew_jobs",
    "worker_status",
    "workers",
]

log = logging.getLogger(__name__)

#: Lines of a failed worker's CloudWatch log quoted in its ``reason``.
LOG_TAIL_LINES = 10


#: The starts of the ``statusReason`` AWS Batch gives a RUNNABLE job that blocks its queue
#: for a reason that does not pass by itself ("Jobs stuck in a RUNNABLE status" in the
#: AWS Batch user guide): the job asks for more vCPUs, memory or GPUs than any attached
#: compute environment can give (``MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT``,
#: ``MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE``), the service role lacks a
#: permission (``MISCONFIGURATION:SERVICE_ROLE_PERMISSIONS``), or every compute
#: environment is invalid (``ACTION_REQUIRED``). ``CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY``
#: passes when capacity frees up, and is not here.
NEVER_STARTS = ("MISCONFIGURATION:", "ACTION_REQUIRED")


def worker_status(status: str) -> str:
    """An AWS Batch job status as :attr:`pycrew.WorkerInfo.status`."""
    if status in QUEUED or status == "STARTING":
        return "pending"
    return {"RUNNING": "running", "SUCCEEDED": "done", "FAILED": "failed"}.get(status, "unknown")


def never_starts(status: str, reason: str) -> str | None:
    """Why a job in ``status`` with AWS's ``statusReason`` will not start as submitted, else ``None``.

    >>> never_starts("RUNNABLE", "ACTION_REQUIRED - CE(s) associated with the job queue are invalid.")[:44]
    'pending for good: AWS Batch says "ACTION_REQ'
    >>> never_starts("RUNNABLE", "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - no Spot capacity") is None
    True
    """
    text = reason.strip()
    if status != "RUNNABLE" or not text.upper().startswith(NEVER_STARTS):
        return None
    return (
        f'pending for good: AWS Batch says "{text}"; fix the job queue\'s compute environments or the '
        "launcher's options (vcpus, memory, gpus, job_queue)"
    )


def _status_and_reason(job: dict[str, Any]) -> tuple[str, str]:
    """A listed job's :attr:`~pycrew.WorkerInfo.status` and ``reason``, a blocked queue's included."""
    status, reason = str(job["status"]), str(job.get("statusReason") or "")
    hopeless = never_starts(status, reason)  # failed, yet queued: it waits until cancelled
    return ("failed", hopeless) if hopeless else (worker_status(status), reason)


def list_jobs(client: AwsBatchClient, status: str, array_job_id: str | None = None) -> Iterator[dict[str, Any]]:
    """ListJobs summaries of the queue (or of one array's children) in one status, all pages."""
    token: str | None = None
    while True:
        params: dict[str, Any] = {"jobStatus": status}
        if array_job_id:
            params["arrayJobId"] = array_job_id
        else:
            params["jobQueue"] = client.options.job_queue
        if token:
            params["nextToken"] = token
        page = client.api.call("batch", "list_jobs", **params)
        yield from page.get("jobSummaryList", [])
        token = page.get("nextToken")
        if not token:
            return


def pycrew_jobs(client: AwsBatchClient, controller_id: str | None = None) -> list[dict[str, Any]]:
    """Active top-level jobs (plain jobs and array parents) of this launcher, described."""
    summaries: dict[str, dict[str, Any]] = {}
    for status in ACTIVE:
        for s in list_jobs(client, status):
            job_id = str(s["jobId"])
            # Children of arrays are reached through their parent (moto also lists them here).
            if ":" not in job_id and str(s.get("jobName", "")).startswith("pycrew"):
                summaries[job_id] = s
    out = []
    for job in client.describe(list(summaries)).values():
        tags = job.get("tags") or {}
        if tags.get(plan.LAUNCHER_TAG) != client.launcher_name:
            continue
        if controller_id is not None and tags.get(plan.CONTROLLER_ID_TAG) != controller_id:
            continue
        if job.get("status") in ACTIVE or (job.get("arrayProperties") or {}).get("size"):
            out.append(job)
    return out


def workers(client: AwsBatchClient, controller_id: str | None) -> list[WorkerInfo]:
    """pycrew's workers in the queue: all of this launcher's, or one controller's."""
    result: list[WorkerInfo] = []
    for job in pycrew_jobs(client, controller_id):
        tags = job.get("tags") or {}
        common: dict[str, Any] = {
            "launcher": client.launcher_name,
            "controller": tags.get(plan.CONTROLLER_TAG) or None,
            "controller_id": tags.get(plan.CONTROLLER_ID_TAG) or None,
        }
        size = (job.get("arrayProperties") or {}).get("size")
        if not size:
            if job.get("status") not in ACTIVE:
                continue
            worker = tags.get(plan.WORKER_TAG, "")
            status, reason = _status_and_reason(job)
            result.append(
                WorkerInfo(
                    id=str(job["jobId"]), handle=str(job["jobId"]), instance=tags.get(plan.INSTANCE_TAG),
                    worker=int(worker) if worker.isdigit() else None, state=str(job["status"]),
                    started=_seconds(job.get("startedAt")) or _seconds(job.get("createdAt")),
                    reason=reason, log=_log_stream(job), status=status, queued=status == "failed", **common,
                )
            )
            continue
        prefix = tags.get(plan.PREFIX_TAG, "")
        offset = int(tags.get(plan.OFFSET_TAG, "0") or 0)
        slots = plan.decode_slots(tags.get(plan.WORKERS_TAG, ""))
        summary = (job.get("arrayProperties") or {}).get("statusSummary") or {}
        if summary and not any(summary.get(s) for s in ACTIVE):
            continue  # every child has ended (the summary may lag, so otherwise ask for every status)
        children: dict[str, dict[str, Any]] = {}
        for status in ACTIVE:
            for child in list_jobs(client, status, array_job_id=str(job["jobId"])):
                children[str(child["jobId"])] = child
        for child_id, child in children.items():
            index = (child.get("arrayProperties") or {}).get("index")
            if index is None:
                index = int(child_id.rsplit(":", 1)[1])
            status, reason = _status_and_reason(child)
            result.append(
                WorkerInfo(
                    id=child_id, handle=child_id, instance=f"{prefix}{int(index) + offset}" if prefix else None,
                    worker=slots[int(index)] if int(index) < len(slots) else None, state=str(child["status"]),
                    started=_seconds(child.get("startedAt")) or _seconds(child.get("createdAt")),
                    reason=reason, status=status, queued=status == "failed", **common,
                )
            )
    listed = {w.id for w in result}
    return result + ended_workers(client, controller_id, skip=listed)


def ended_workers(client: AwsBatchClient, controller_id: str | None, skip: set[str] | frozenset[str] = frozenset()) -> list[WorkerInfo]:
    """Workers this client launched (and did not terminate) whose jobs have ended, with why.

    ``reason`` joins AWS's ``statusReason`` and the container's ``reason``; for a job that
    failed with an exit code, the last :data:`LOG_TAIL_LINES` lines of its log follow.
    """
    launched = {w.handle: w for w in client.launched(controller_id) if w.handle not in skip}
    if not launched:
        return []
    out: list[WorkerInfo] = []
    for job_id, job in client.describe(list(launched)).items():
        status = str(job.get("status", ""))
        mine = launched.get(job_id)
        if status not in FINAL or mine is None:
            continue
        container = job.get("container") or {}
        code = container.get("exitCode")
        exit_code = int(code) if isinstance(code, int) else None
        reasons = [str(r) for r in (job.get("statusReason"), container.get("reason")) if r]
        reason = "; ".join(dict.fromkeys(reasons))
        if status == "FAILED" and exit_code:
            tail = _log_tail(client, job)
            if tail:
                reason = f"{reason}; its log ends with:\n{tail}" if reason else f"its log ends with:\n{tail}"
        out.append(
            WorkerInfo(
                id=job_id, handle=job_id, launcher=client.launcher_name, controller=mine.controller or None,
                controller_id=mine.controller_id or None, instance=mine.instance, worker=mine.worker, state=status,
                started=_seconds(job.get("startedAt")) or _seconds(job.get("createdAt")), reason=reason,
                log=_log_stream(job), status=worker_status(status), exit_code=exit_code,
            )
        )
    return out


def _log_tail(client: AwsBatchClient, job: dict[str, Any]) -> str:
    """The last lines of a job's CloudWatch log, or ``""`` (best effort: the reason is enough)."""
    stream = _log_stream(job)
    if not stream:
        return ""
    params: dict[str, Any] = {
        "logGroupName": _log_group(job), "logStreamName": stream, "startFromHead": False, "limit": LOG_TAIL_LINES,
    }
    try:
        page = client.api.call("logs", "get_log_events", **params)
    except AwsBatchError as exc:  # no log (yet), or no permission: the status reason still explains it
        log.debug("%s: no log tail for %s: %s", client.launcher_name, job.get("jobId"), exc)
        return ""
    lines = [str(e.get("message", "")).rstrip("\n") for e in page.get("events", [])]
    return "\n".join(lines[-LOG_TAIL_LINES:])


def delete_stale_resources(client: AwsBatchClient, older_than: float = 3600.0) -> int:
    """Delete pycrew's secrets and job definition revisions of this queue whose batches have
    no active job any more and that are older than ``older_than`` seconds; return how many.

    Resources of batches still queued or running are kept, as are resources of other
    queues (the ``pycrew:job-queue`` tag) and of other launchers.
    """
    active = {str((j.get("tags") or {}).get(plan.BATCH_TAG)) for j in pycrew_jobs(client)}
    queue = plan.tag_value(client.options.job_queue)
    now = time.time()
    deleted = 0

    def stale(tags: dict[str, str], created: float | None) -> bool:
        return (
            tags.get(plan.LAUNCHER_TAG) == client.launcher_name
            and tags.get(plan.QUEUE_TAG) == queue
            and tags.get(plan.BATCH_TAG) not in active
            and created is not None
            and now - created >= older_than
        )

    for secret in client.store.list():
        if stale(secret.tags, secret.created):
            client.store.delete(secret.reference)
            deleted += 1
    base = client.base_definition()
    for definition in jobdefs.active_revisions(client.api, jobdefs.derived_name(base)):
        tags = definition.get("tags") or {}
        created = tags.get(plan.CREATED_TAG, "")
        if stale(tags, float(created) if created.isdigit() else None):
            deleted += jobdefs.deregister_job_definition(client.api, str(definition["jobDefinitionArn"]))
    return deleted
