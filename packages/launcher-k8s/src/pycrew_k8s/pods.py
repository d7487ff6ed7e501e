"""Reading pod and Job status: is a worker's pod running, still on its way, or failed, and why.

Functions here take the API's JSON (dicts, as ``kubectl get -o json`` shows them) and
never talk to a cluster. The launch check and the monitor share them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

#: Waiting reasons that mean the container will not start: the launch failed.
FATAL_WAITING = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull", "CrashLoopBackOff"})
#: Waiting reasons that may clear by themselves (a Secret created a moment later) but
#: usually mean a configuration error when they persist.
STUCK_WAITING = frozenset({"CreateContainerConfigError", "CreateContainerError", "RunContainerError"})
#: Exit codes of a worker that could not run: Python's error (e.g. ``No module named
#: pycrew``), pycrew's "no token" (2), a shell's "cannot execute" / "not found" (126, 127),
#: and container runtimes' start failures (128).
FAILED_START_EXIT_CODES = frozenset({1, 2, 126, 127, 128})
FAILED_START_REASONS = frozenset({"StartError", "ContainerCannotRun"})
#: Job conditions after which no pod of the Job runs any more.
FINISHED_CONDITIONS = frozenset({"Complete", "Failed", "FailureTarget", "SuccessCriteriaMet"})

Outcome = Literal["started", "waiting", "stuck", "failed"]


@dataclass(frozen=True)
class PodState:
    """What a worker's pod is doing.

    Attributes:
        name: the pod's name.
        phase: ``Pending``, ``Running``, ``Succeeded``, ``Failed`` or ``Unknown``.
        outcome: for the launch check: ``started`` (the worker process ran), ``waiting``
            (on its way: scheduling, pulling, creating), ``stuck`` (unschedulable or a
            configuration error, which may still clear) or ``failed`` (it will not start).
        reason: the platform's reason and message, e.g. ``ImagePullBackOff: Back-off pulling
            image "x"`` or ``Unschedulable: 0/3 nodes are available: ...`` (empty if none).
        node: the node it is scheduled on, if any.
        state: a short state for the monitor (``Running``, ``Pending``, the waiting reason).
        exit_code: the container's exit code once it ended.
    """

    name: str
    phase: str
    outcome: Outcome
    reason: str = ""
    node: str | None = None
    state: str = ""
    exit_code: int | None = None


def _text(reason: str | None, message: str | None) -> str:
    reason, message = (reason or "").strip(), (message or "").strip()
    return f"{reason}: {message}" if reason and message else reason or message


def _container(pod: dict[str, Any]) -> dict[str, Any]:
    statuses = (pod.get("status") or {}).get("containerStatuses") or []
    for status in statuses:
        if status.get("name") == "worker":
            return dict(status)
    return dict(statuses[0]) if statuses else {}


def _unschedulable(status: dict[str, Any]) -> str | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False" and cond.get("reason") == "Unschedulable":
            return _text("Unschedulable", cond.get("message"))
    return None


def pod_state(pod: dict[str, Any]) -> PodState:
    """Classify a pod (see :class:`PodState`)."""
    meta, status = pod.get("metadata") or {}, pod.get("status") or {}
    name = str(meta.get("name", ""))
    phase = str(status.get("phase") or "Pending")
    node = (pod.get("spec") or {}).get("nodeName") or None
    container = _container(pod)
    state = container.get("state") or {}
    waiting, terminated = state.get("waiting") or {}, state.get("terminated") or {}
    if phase in ("Running", "Succeeded"):
        return PodState(name, phase, "started", node=node, state=phase, exit_code=terminated.get("exitCode"))
    if phase == "Failed":
        code = terminated.get("exitCode")
        if terminated:
            why = _text(terminated.get("reason") or "Error", terminated.get("message"))
            reason = f"{why} (exit code {code})" if code is not None else why
        else:  # evicted, deadline exceeded, node lost: the pod's own reason
            reason = _text(status.get("reason") or "Failed", status.get("message"))
        could_not_run = not terminated or terminated.get("reason") in FAILED_START_REASONS or code in FAILED_START_EXIT_CODES
        return PodState(name, phase, "failed" if could_not_run else "started", reason, node, "Failed", code)
    if waiting.get("reason") in FATAL_WAITING:
        return PodState(name, phase, "failed", _text(waiting.get("reason"), waiting.get("message")), node, str(waiting["reason"]))
    if waiting.get("reason") in STUCK_WAITING:
        return PodState(name, phase, "stuck", _text(waiting.get("reason"), waiting.get("message")), node, str(waiting["reason"]))
    unschedulable = _unschedulable(status)
    if unschedulable is not None:
        return PodState(name, phase, "stuck", unschedulable, node, "Unschedulable")
    reason = _text(waiting.get("reason"), waiting.get("message"))
    return PodState(name, phase, "waiting", reason, node, str(waiting.get("reason") or phase))


def job_finished(job: dict[str, Any]) -> bool:
    """Whether the Job has ended (or is ending): none of its pods will run again."""
    conditions = (job.get("status") or {}).get("conditions") or []
    return any(c.get("type") in FINISHED_CONDITIONS and c.get("status") == "True" for c in conditions)


def worker_status(job: dict[str, Any], state: PodState | None) -> tuple[str, bool]:
    """A worker's :attr:`pycrew.WorkerInfo.status` from its Job and its newest pod, and whether it
    is *queued*: it will not start (an invalid image name, a bad configuration) but its Job stays."""
    if (job.get("metadata") or {}).get("deletionTimestamp"):
        return "cancelled", False
    if state is not None and state.phase in ("Succeeded", "Failed"):
        return ("done" if state.phase == "Succeeded" else "failed"), False
    if job_finished(job):  # its pod is gone (deleted, or never created)
        return ("failed" if job_failure(job) else "done"), False
    if state is None:
        return "pending", False
    if state.outcome == "failed":
        return "failed", True
    return {"Running": "running", "Pending": "pending"}.get(state.phase, "unknown"), False


def job_failure(job: dict[str, Any]) -> str:
    """The reason and message of a Job's ``Failed`` (or ``FailureTarget``) condition, if any."""
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") in ("Failed", "FailureTarget") and cond.get("status") == "True":
            return _text(cond.get("reason"), cond.get("message"))
    return ""


def create_failures(events: list[dict[str, Any]]) -> dict[tuple[str, str], str]:
    """``FailedCreate: <message>`` of the newest ``FailedCreate`` event of each Job ``(namespace, name)``.

    The job controller records that Warning on a Job whose pod the API server refused (a
    ResourceQuota, PodSecurity, a LimitRange): the Job then has no pod, and nothing else says why.
    """
    found: dict[tuple[str, str], tuple[str, str]] = {}
    for event in events:
        involved, meta = event.get("involvedObject") or {}, event.get("metadata") or {}
        if event.get("reason") != "FailedCreate" or involved.get("kind") != "Job":
            continue
        key = (str(involved.get("namespace") or meta.get("namespace") or ""), str(involved.get("name") or ""))
        when = str(event.get("lastTimestamp") or event.get("eventTime") or meta.get("creationTimestamp") or "")
        if key not in found or when >= found[key][0]:
            found[key] = (when, str(event.get("message") or "").strip())
    return {key: _text("FailedCreate", message) for key, (_, message) in found.items()}


def timestamp(text: str | None) -> float | None:
    """An RFC 3339 time (``2025-01-01T12:00:00Z``) as epoch seconds; ``None`` if absent or bad."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def newest(pods: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The most recently created pod (a Job with ``backoffLimit: 0`` has one; a replaced pod two)."""
    if not pods:
        return None
    return max(pods, key=lambda p: ((p.get("metadata") or {}).get("creationTimestamp") or "", (p.get("metadata") or {}).get("name", "")))
