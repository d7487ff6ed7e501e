"""The monitor's view of one worker: a :class:`pycrew.WorkerInfo` from its Job, its pods and,
for a Job without a pod, the job controller's ``FailedCreate`` event (a ResourceQuota's refusal).

Functions here take the API's JSON and never talk to a cluster.
"""

from __future__ import annotations

from typing import Any

from pycrew import WorkerInfo
from pycrew_k8s import manifests
from pycrew_k8s.pods import job_failure, job_finished, newest, pod_state, timestamp, worker_status
from pycrew_k8s.quota import quota_hint

#: The label the Job controller puts on its pods.
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"


def job_key(job: dict[str, Any]) -> tuple[str, str]:
    """``(namespace, name)`` of a Job."""
    meta = job.get("metadata") or {}
    return str(meta.get("namespace", "")), str(meta.get("name", ""))


def pods_by_job(pods: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """Pods by their Job's ``(namespace, name)`` (the Job controller's label)."""
    by_job: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for pod in pods:
        meta = pod.get("metadata") or {}
        by_job.setdefault((meta.get("namespace", ""), (meta.get("labels") or {}).get(JOB_NAME_LABEL, "")), []).append(pod)
    return by_job


def worker_info(launcher: str, job: dict[str, Any], pods: list[dict[str, Any]], refused: str = "") -> WorkerInfo:
    """One worker: live, or ended (its Job finished or being deleted) until the Job is gone (``seconds_ttl``).

    Args:
        launcher: the launcher's name.
        job: the worker's Job.
        pods: the Job's pods.
        refused: why the Job has no pod (``FailedCreate: ...``), if it has none: the worker is
            then ``failed`` and ``queued`` (it will not start while the Job stays), with a quota hint.
    """
    meta = job.get("metadata") or {}
    namespace, name = job_key(job)
    labels, notes = meta.get("labels") or {}, meta.get("annotations") or {}
    pod = newest(pods)
    state = pod_state(pod) if pod is not None else None
    status, queued = worker_status(job, state)
    finished = job_finished(job)
    reason = state.reason if state is not None else "" if finished else "no pod yet"
    if refused and state is None and status == "pending":  # the Job controller cannot create its pod
        status, queued, shown = "failed", True, "FailedCreate"
        hint = quota_hint(refused, namespace)
        reason = f"{refused.rstrip('.')}. {hint}" if hint else refused
    elif status == "cancelled":
        shown = "Terminating"
    elif state is not None:
        shown = state.state
    else:
        shown = ("Complete" if status == "done" else "Failed") if finished else "Pending"
    worker = labels.get(manifests.WORKER, "")
    return WorkerInfo(
        id=name,
        handle=f"{namespace}/{name}",
        launcher=launcher,
        controller=notes.get(manifests.CONTROLLER_NAME_ANNOTATION) or labels.get(manifests.CONTROLLER),
        controller_id=labels.get(manifests.CONTROLLER_ID),
        instance=labels.get(manifests.INSTANCE),
        worker=int(worker) if worker.isdigit() else None,
        state=shown,
        host=state.node if state is not None else None,
        started=timestamp(meta.get("creationTimestamp")),
        reason=reason or job_failure(job),
        log=f"kubectl logs --namespace {namespace} {state.name}" if state is not None else None,
        status=status,
        exit_code=state.exit_code if state is not None and status in ("done", "failed") and not queued else None,
        queued=queued,
    )
