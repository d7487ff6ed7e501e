"""The launch check of :class:`~pycrew_k8s.launcher.K8sLauncher`: :class:`StartCheck`, :class:`PodStartError`.

After a batch's Jobs are created, its pods are watched for up to ``seconds_launch_check``
(less if the controller terminates meanwhile: it then deletes the Jobs with its others):
pods that cannot start (image pull errors, unschedulable, configuration errors, pods a
ResourceQuota refuses) raise :class:`PodStartError` with the platform's reason and a hint
at what to change. A Job deleted from outside pycrew meanwhile is not waited for: the
monitor reports it (see :mod:`pycrew_k8s.vanished`).
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from typing import Any

from pycrew import PycrewError, WorkerCall
from pycrew_k8s import manifests
from pycrew_k8s.api import K8sApiError, RetryPolicy, request
from pycrew_k8s.cluster import Cluster
from pycrew_k8s.launcher_base import LauncherBase
from pycrew_k8s.listing import JOB_NAME_LABEL
from pycrew_k8s.options import K8sOptions
from pycrew_k8s.pods import PodState, newest, pod_state
from pycrew_k8s.quota import is_quota_refusal, quota_hint

log = logging.getLogger("pycrew_k8s.launcher")

#: The scheduler's "1 Insufficient cpu" (also memory, nvidia.com/gpu, ...) in an Unschedulable message.
_INSUFFICIENT = re.compile(r"\d+ Insufficient ([A-Za-z0-9./_-]+?)(?=[,.]?(?:\s|$))")
#: A Job without a pod this long into the launch check has its events read (then once a second).
SECONDS_EVENTS = 1.0


class PodStartError(PycrewError):
    """The pods of a launch could not start; the message carries the platform's reason.

    Attributes:
        reason: the platform's reason and message (``ImagePullBackOff: ...``).
        pod: the pod's name (``""`` if the Job created none).
        job: the Job's ``namespace/name``.
    """

    def __init__(self, message: str, reason: str, pod: str, job: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.pod = pod
        self.job = job


def _hint(reason: str, options: K8sOptions, namespace: str) -> str:
    if reason.startswith("FailedCreate") and is_quota_refusal(reason):
        return quota_hint(reason, namespace)
    if reason.startswith("FailedCreate"):
        return (
            "The API server refused the Job's pod (an admission policy, such as PodSecurity or a LimitRange): "
            "change what its message names (resources, pod_spec_extra, container_extra, ...)"
        )
    if reason.startswith(("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull")):
        return f"Check the image option ({options.image!r}: registry, name, tag) and image_pull_secrets"
    short = _INSUFFICIENT.findall(reason) if reason.startswith("Unschedulable") else []
    asked = "; ".join(filter(None, (_resource_request(resource, options) for resource in dict.fromkeys(short))))
    if asked:
        return (
            f"No node has room for what each worker requests ({asked}): lower {'them' if ';' in asked else 'it'}, "
            "or use nodes that large (node_selector, tolerations); if other pods fill the nodes, run fewer workers; on a cluster that adds "
            "nodes on demand set fail_unschedulable=False and raise seconds_launch"
        )
    if reason.startswith("Unschedulable"):
        return (
            "No node fits the pod: check cpu, memory, gpus, node_selector, tolerations and affinity against the "
            "cluster's nodes; on a cluster that adds nodes on demand set fail_unschedulable=False and raise seconds_launch"
        )
    if reason.startswith(("CreateContainerConfigError", "CreateContainerError", "RunContainerError")):
        return "Does every Secret and ConfigMap the pod uses exist (env_from_secrets, env_from_config_maps, volumes)?"
    return f"Does the image have the interpreter {options.python!r} (the python option) with pycrew installed?"


def _resource_request(resource: str, options: K8sOptions) -> str:
    """What the options request of ``resource`` (``Insufficient cpu: the cpu option asks for cpu=64``), for a
    scheduler's ``Insufficient <resource>``; empty if they request none of it."""
    requests = options.resources_manifest()
    quantity = (requests.get("requests") or {}).get(resource) or (requests.get("limits") or {}).get(resource)
    if options.resources is not None:
        option = "resources"
    elif resource == options.gpu_resource:
        option = "gpus"
    elif resource in ("cpu", "memory"):
        option = resource if getattr(options, resource) is not None else f"{resource}_limit"
    else:
        option = ""
    if quantity is None or not option:
        return ""
    return f"Insufficient {resource}: the {option} option asks for {resource}={quantity}"


class StartCheck(LauncherBase):
    """The launch check part of :class:`~pycrew_k8s.launcher.K8sLauncher` (see there)."""

    def _check_start(self, cluster: Cluster, namespace: str, batch: str, jobs: list[str], calls: Sequence[WorkerCall]) -> None:
        """Watch the batch's pods until all started (or ended), one cannot start, or ``seconds_launch_check`` passed.

        A pod that ended (its worker exited, or its container could not run) is left to the
        monitor, which reports it to core's launch watch with its exit code. A Job without a
        pod gets its events read: pods refused by a ResourceQuota fail the launch at once if
        no pod of the batch exists; otherwise the monitor reports those Jobs. Jobs deleted from
        outside pycrew (:meth:`_deleted_jobs`, once a second) are left to the monitor too.
        """
        window = min(self.options.seconds_launch_check, calls[0].seconds_launch)
        if window <= 0:
            return
        began = time.monotonic()
        deadline, events_due = began + window, began + SECONDS_EVENTS
        jobs_due, deleted = began + SECONDS_EVENTS, set[str]()
        pause = 0.1
        while True:
            states = self._batch_states(cluster, namespace, batch, jobs)
            if time.monotonic() >= jobs_due:
                jobs_due = time.monotonic() + SECONDS_EVENTS
                deleted |= self._deleted_jobs(cluster, namespace, batch, [j for j in jobs if j not in deleted])
            states = {j: s for j, s in states.items() if j not in deleted}
            blocked: list[tuple[str, PodState]] = []
            if any(s is None for s in states.values()) and time.monotonic() >= events_due:
                events_due = time.monotonic() + SECONDS_EVENTS
                refused = self._create_failures(cluster, namespace)
                blocked = [(j, PodState("", "Pending", "failed", refused[(namespace, j)], state="FailedCreate"))
                           for j, s in states.items() if s is None and (namespace, j) in refused]
            started = [j for j, s in states.items() if s is not None and s.outcome == "started"]
            ended = [j for j, s in states.items() if s is not None and s.outcome == "failed" and s.phase == "Failed"]
            failed = [(j, s) for j, s in states.items() if s is not None and s.outcome == "failed" and s.phase != "Failed"]
            if (blocked and len(blocked) == len(states)) or (failed and not started):
                raise self._start_error(namespace, failed or blocked, len(jobs))
            if len(started) + len(ended) + len(blocked) + len(deleted) == len(jobs):
                for job, state in blocked:
                    log.warning("k8s: worker Job %s/%s has no pod: %s", namespace, job, state.reason)
                return
            if failed:
                for job, state in failed:
                    log.warning("k8s: worker Job %s/%s could not start: %s", namespace, job, state.reason)
                return
            if time.monotonic() >= deadline:
                break
            if self.cancelled(calls[0].controller_id):  # the controller terminates: it deletes these Jobs now
                log.info("k8s: batch %s: the controller is terminating; no longer watching its pods start", batch)
                return
            time.sleep(max(0.0, min(pause, deadline - time.monotonic())))
            pause = min(pause * 1.5, 1.0)
        stuck = [(j, s) for j, s in states.items() if s is not None and s.outcome == "stuck"]
        if not self.options.fail_unschedulable:
            stuck = [(j, s) for j, s in stuck if not s.reason.startswith("Unschedulable")]
        if started or any(s is not None and s.outcome == "waiting" for s in states.values()):
            # Some pods are on their way (a partly full cluster): the stuck ones are the
            # controller's to time out; terminating them logs their reason.
            for job, state in stuck:
                log.info("k8s: worker Job %s/%s is not starting yet: %s", namespace, job, state.reason)
            return
        if stuck:
            raise self._start_error(namespace, stuck, len(jobs), seconds=window)
        log.debug("k8s: batch %s not running yet after %g s; the controller's seconds_launch decides", batch, window)

    def _deleted_jobs(self, cluster: Cluster, namespace: str, batch: str, jobs: list[str]) -> set[str]:
        """The ``jobs`` deleted from outside pycrew (``kubectl delete``, a cleanup) during the check: missing
        from the batch's listing, and a read finds nothing. Best effort, one attempt each: ``set()`` on errors."""
        if not jobs:
            return set()
        once = RetryPolicy(1, self.policy.seconds_timeout, self.policy.seconds_timeout)
        try:
            listed = {str((j.get("metadata") or {}).get("name", "")) for j in self._items(
                cluster.batch.list_namespaced_job, namespace, policy=once, label_selector=f"{manifests.BATCH}={batch}")}
            gone = {j for j in jobs if j not in listed and request(
                cluster.batch.read_namespaced_job, j, namespace, policy=once, namespace=namespace, missing_ok=True) is None}
        except K8sApiError as exc:  # asked again a second later; the monitor reports them anyway
            log.debug("k8s: could not list the Jobs of batch %s during the launch check: %s", batch, exc)
            return set()
        for job in sorted(gone):
            log.info("k8s: worker Job %s/%s was deleted from outside pycrew during the launch check", namespace, job)
        return gone

    def _batch_states(self, cluster: Cluster, namespace: str, batch: str, jobs: list[str]) -> dict[str, PodState | None]:
        pods = list(self._items(cluster.core.list_namespaced_pod, namespace, label_selector=f"{manifests.BATCH}={batch}"))
        by_job: dict[str, list[dict[str, Any]]] = {}
        for pod in pods:
            by_job.setdefault(((pod.get("metadata") or {}).get("labels") or {}).get(JOB_NAME_LABEL, ""), []).append(pod)
        states: dict[str, PodState | None] = {}
        for job in jobs:
            latest = newest(by_job.get(job, []))
            states[job] = pod_state(latest) if latest is not None else None
        return states

    def _start_error(
        self, namespace: str, failed: list[tuple[str, PodState]], total: int, seconds: float | None = None
    ) -> PodStartError:
        job, state = failed[0]
        more = f" (and {len(failed) - 1} more of the batch's {total} pods)" if len(failed) > 1 else ""
        still = f" for {seconds:g} s (seconds_launch_check)" if seconds is not None else ""
        what = f"worker pod {state.name} of Job {namespace}/{job}" if state.name else f"worker Job {namespace}/{job}"
        reason = state.reason.rstrip().rstrip(".")  # the scheduler's message ends with one
        message = f"{what} could not start{still}{more}: {reason}. {_hint(state.reason, self.options, namespace)}"
        return PodStartError(message, state.reason, state.name, f"{namespace}/{job}")
