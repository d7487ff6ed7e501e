"""What AWS Batch says about one job or array child: :class:`JobDetails`, :func:`details`.

DescribeJobs gives its status, reason, exit code and times; its CloudWatch Logs group and
stream are found from its container (or its last attempt's).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pycrew_awsbatch.client import AwsBatchClient

#: CloudWatch Logs group of Batch jobs without their own log configuration.
DEFAULT_LOG_GROUP = "/aws/batch/job"


@dataclass(frozen=True)
class JobDetails:
    """One job (or array child) as DescribeJobs reports it.

    Attributes:
        id: the job id (``<array job id>:<index>`` for a child).
        name: the job name.
        status: SUBMITTED, PENDING, RUNNABLE, STARTING, RUNNING, SUCCEEDED or FAILED.
        reason: ``statusReason`` (why it stopped or waits), if any.
        exit_code: the container's exit code, once it has one.
        created: submission time (epoch seconds).
        started: start time, if it started.
        stopped: stop time, if it stopped.
        log_group: the CloudWatch Logs group of its output.
        log_stream: its log stream, once it has started.
        attempts: how many attempts AWS made.
        tags: the job's tags (array children: the parent's).
    """

    id: str
    name: str
    status: str
    reason: str
    exit_code: int | None
    created: float | None
    started: float | None
    stopped: float | None
    log_group: str
    log_stream: str | None
    attempts: int
    tags: dict[str, str]


def _seconds(ms: Any) -> float | None:
    return float(ms) / 1000.0 if isinstance(ms, (int, float)) and ms > 0 else None


def _log_group(job: dict[str, Any]) -> str:
    config = (job.get("container") or {}).get("logConfiguration") or {}
    if config.get("logDriver") == "awslogs":
        return str((config.get("options") or {}).get("awslogs-group") or DEFAULT_LOG_GROUP)
    return DEFAULT_LOG_GROUP


def _log_stream(job: dict[str, Any]) -> str | None:
    stream = (job.get("container") or {}).get("logStreamName")
    if not stream:
        for attempt in reversed(job.get("attempts") or []):
            stream = (attempt.get("container") or {}).get("logStreamName")
            if stream:
                break
    return str(stream) if stream else None


def details(client: AwsBatchClient, job_id: str) -> JobDetails | None:
    """What AWS says about one job or array child (``None`` if it does not know it)."""
    job = client.describe([job_id]).get(job_id)
    if job is None:
        return None
    tags = dict(job.get("tags") or {})
    if not tags and ":" in job_id:
        parent = client.describe([job_id.rsplit(":", 1)[0]]).get(job_id.rsplit(":", 1)[0])
        tags = dict((parent or {}).get("tags") or {})
    code = (job.get("container") or {}).get("exitCode")
    return JobDetails(
        id=job_id, name=str(job.get("jobName", "")), status=str(job.get("status", "")),
        reason=str(job.get("statusReason") or ""), exit_code=int(code) if isinstance(code, int) else None,
        created=_seconds(job.get("createdAt")), started=_seconds(job.get("startedAt")),
        stopped=_seconds(job.get("stoppedAt")), log_group=_log_group(job), log_stream=_log_stream(job),
        attempts=len(job.get("attempts") or []), tags=tags,
    )
