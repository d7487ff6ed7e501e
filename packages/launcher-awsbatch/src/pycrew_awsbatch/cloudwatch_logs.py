"""The CloudWatch Logs lines of a job: :func:`log_lines` (the whole stream, or only its end)."""

from __future__ import annotations

from typing import Any

from pycrew_awsbatch.api import AwsBatchError
from pycrew_awsbatch.client import AwsBatchClient
from pycrew_awsbatch.job_details import details

#: The largest ``limit`` GetLogEvents accepts (a page also stops at 1 MB).
LOG_PAGE_MAX = 10_000


def log_lines(client: AwsBatchClient, job_id: str, limit: int | None = None) -> list[str]:
    """The CloudWatch Logs lines of a job (oldest first; at most the last ``limit``).

    Without ``limit`` the whole stream is read from its head. With it, only its end:
    GetLogEvents with ``startFromHead=False`` returns the newest page (at most ``limit``
    events, in time order), and earlier pages follow through ``nextBackwardToken`` until
    ``limit`` lines are found or the stream's head is reached. So the tail of a long log
    costs one call, not one per 10,000 lines of the whole stream.

    Empty for a job that has not started or whose log has not reached CloudWatch yet.

    Raises:
        ValueError: ``limit`` is below 1.
        AwsBatchError: the job is unknown, or a call failed.
    """
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be an int >= 1 or None (the whole log), got {limit!r}")
    job = details(client, job_id)
    if job is None:
        raise AwsBatchError(f"AWS Batch does not know the job {job_id!r} (jobs are kept for a few days after they end)")
    if not job.log_stream:
        return []
    stream = {"logGroupName": job.log_group, "logStreamName": job.log_stream}
    if limit is None:
        return _read_forward(client, stream)
    return _read_backward(client, stream, limit)


def _log_page(client: AwsBatchClient, params: dict[str, Any]) -> dict[str, Any] | None:
    """One GetLogEvents page; ``None`` if the stream does not exist (yet)."""
    try:
        return client.api.call("logs", "get_log_events", **params)
    except AwsBatchError as exc:
        if exc.code == "ResourceNotFoundException":
            return None
        raise


def _messages(page: dict[str, Any]) -> list[str]:
    return [str(e.get("message", "")).rstrip("\n") for e in page.get("events", [])]


def _read_forward(client: AwsBatchClient, stream: dict[str, Any]) -> list[str]:
    """Every line of a stream, from its head (forward tokens need ``startFromHead=True``)."""
    lines: list[str] = []
    token: str | None = None
    while True:
        params: dict[str, Any] = {**stream, "startFromHead": True}
        if token:
            params["nextToken"] = token
        page = _log_page(client, params)
        if page is None:
            return lines
        lines += _messages(page)
        next_token = page.get("nextForwardToken")
        if not page.get("events") or not next_token or next_token == token:
            return lines
        token = next_token


def _read_backward(client: AwsBatchClient, stream: dict[str, Any], limit: int) -> list[str]:
    """The last ``limit`` lines of a stream, newest page first, through backward tokens."""
    pages: list[list[str]] = []
    count = 0
    token: str | None = None
    while count < limit:
        params: dict[str, Any] = {**stream, "startFromHead": False, "limit": min(limit - count, LOG_PAGE_MAX)}
        if token:
            params["nextToken"] = token
        page = _log_page(client, params)
        if page is None:
            break
        found = _messages(page)
        if not found:
            break
        pages.append(found)
        count += len(found)
        next_token = page.get("nextBackwardToken")
        if not next_token or next_token == token:
            break
        token = next_token
    lines = [line for found in reversed(pages) for line in found]
    return lines[-limit:]
