"""The Kubernetes launcher: one Job per worker, its token in a Secret owned by the Job.

:class:`K8sLauncher` does the work of the three hooks for one launcher configuration:

- **launch**: create each worker's Job, then its Secret (owned by the Job, so that it is
  garbage-collected with it); then watch the batch's pods for up to
  ``seconds_launch_check`` and raise :class:`PodStartError` with the platform's reason if
  they cannot start (image pull errors, unschedulable, configuration errors, pods a
  ResourceQuota refuses). A failed launch deletes the Jobs it created. A pod that ended
  (a worker that exited at once) is returned: the monitor reports it, as it reports every
  worker that ended before it connected, with its exit code and core quotes its log.
- **terminate**: delete the Jobs with background propagation (their pods and Secrets go
  too); Jobs already gone are fine. Pods that never started are logged with their reason.
- **list**: pycrew's Jobs by label, with their pod's state, node, age and reason (for a Job
  without a pod, the job controller's ``FailedCreate`` event, e.g. a ResourceQuota's refusal);
  and the Jobs this process launched that were deleted from outside pycrew, as ``cancelled``
  (see :mod:`pycrew_k8s.vanished`), so that a launch whose Job was deleted fails at once.

:class:`K8sLauncher` is put together from :class:`~pycrew_k8s.launcher_base.LauncherBase`
(options, connection, paging, events) and :class:`~pycrew_k8s.start_check.StartCheck` (the
launch check, :class:`PodStartError`); launching, terminating and listing are here.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Sequence
from typing import Any

from pycrew import OptionsError, WorkerCall, WorkerInfo
from pycrew_k8s import manifests
from pycrew_k8s.api import K8sApiError, RetryPolicy, request
from pycrew_k8s.cluster import Cluster
from pycrew_k8s.launcher_base import FAILED_CREATE
from pycrew_k8s.listing import JOB_NAME_LABEL, job_key, pods_by_job, worker_info
from pycrew_k8s.pods import job_finished, newest, pod_state
from pycrew_k8s.start_check import SECONDS_EVENTS, PodStartError, StartCheck

__all__ = ["FAILED_CREATE", "JOB_NAME_LABEL", "SECONDS_EVENTS", "K8sLauncher", "PodStartError", "parse_handle"]

log = logging.getLogger(__name__)

#: A handle: ``<namespace>/<job name>``.
_HANDLE = re.compile(r"^([a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)/([a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?)$")


def parse_handle(handle: Any) -> tuple[str, str]:
    """``(namespace, job name)`` of a handle ``"namespace/name"``.

    Raises:
        ValueError: ``handle`` is not a k8s launcher's handle.
    """
    match = _HANDLE.fullmatch(handle) if isinstance(handle, str) else None
    if match is None:
        raise ValueError(f"k8s handles look like 'namespace/job-name', got {handle!r}")
    return match.group(1), match.group(2)


class K8sLauncher(StartCheck):
    """Launch, terminate and list pycrew workers as Kubernetes Jobs.

    Args:
        name: the launcher's registered name (``"k8s"``).
        options: the launcher's options.
    """

    # -- launch --------------------------------------------------------------------------------

    def launch(self, calls: Sequence[WorkerCall]) -> list[str]:
        """Create one Job and one Secret per call; return handles ``"namespace/job"`` in call order.

        Raises:
            OptionsError: the image option is not set.
            K8sApiError: the API refused a request (after retries for transient errors).
            PodStartError: the batch's pods cannot start (see ``seconds_launch_check``).
        """
        if not calls:
            return []
        if not self.options.image:
            raise OptionsError(
                "k8s option 'image' is required to launch workers: an image with Python and pycrew (and your "
                "code's dependencies) installed, e.g. image='ghcr.io/me/worker:1.0'"
            )
        cluster, namespace = self.cluster, self.namespace()
        batch = secrets.token_hex(6)
        created: list[str] = []
        try:
            for call in calls:
                name = manifests.job_name(call)
                uid = self._create_job(cluster, namespace, call, name, batch)
                created.append(name)
                self._create_secret(cluster, namespace, call, name, batch, uid)
            log.debug("k8s: created %d Job(s) in %s, batch %s", len(created), namespace, batch)
            self._check_start(cluster, namespace, batch, created, calls)
        except BaseException:
            if created:
                log.info("k8s: deleting the %d Job(s) of a failed launch", len(created))
                self._delete_jobs(cluster, namespace, created, quiet=True)
            raise
        handles = [f"{namespace}/{name}" for name in created]
        self.launched.remember(calls, handles)
        return handles

    def _create_job(self, cluster: Cluster, namespace: str, call: WorkerCall, name: str, batch: str) -> str:
        """Create the Job; return its uid. A name that exists is this launch's own (retried) create."""
        body = manifests.job(call, name, namespace, batch, self.options)
        what = f"the Job of worker {call.worker}"
        try:
            reply = request(cluster.batch.create_namespaced_job, namespace, body, policy=self.policy,
                            namespace=namespace, what=what, field_validation="Strict")
        except K8sApiError as exc:
            if exc.status != 409 or exc.attempts < 2:
                raise
            # An earlier attempt went through although its answer was lost; the random
            # name is this launch's, but check the batch label all the same.
            reply = request(cluster.batch.read_namespaced_job, name, namespace, policy=self.policy, namespace=namespace)
            if ((reply.get("metadata") or {}).get("labels") or {}).get(manifests.BATCH) != batch:
                raise
        return str(reply["metadata"]["uid"])

    def _create_secret(self, cluster: Cluster, namespace: str, call: WorkerCall, name: str, batch: str, uid: str) -> None:
        """Create the worker's token Secret, owned by its Job (uid ``uid``)."""
        body = manifests.secret(call, name, namespace, batch, uid, self.options)
        try:
            request(cluster.core.create_namespaced_secret, namespace, body, policy=self.policy, namespace=namespace,
                    what=f"the token Secret of worker {call.worker}", field_validation="Strict")
        except K8sApiError as exc:
            if exc.status != 409 or exc.attempts < 2:
                raise
            # An earlier attempt went through although its answer was lost: the Secret is ours.

    # -- terminate -------------------------------------------------------------------------------

    def terminate(self, handles: Sequence[Any]) -> None:
        """Delete the workers' Jobs (background propagation); Jobs already gone are fine.

        Raises:
            ValueError: a handle is not ``"namespace/job"``.
            K8sApiError: a deletion failed for another reason (the others are still tried).
        """
        self.launched.forget(h for h in handles if isinstance(h, str))  # pycrew's own deletions are no news
        by_namespace: dict[str, list[str]] = {}
        for handle in handles:
            namespace, name = parse_handle(handle)
            names = by_namespace.setdefault(namespace, [])
            if name not in names:
                names.append(name)
        if not by_namespace:
            return
        cluster = self.cluster
        for namespace, names in by_namespace.items():
            self._report_unstarted(cluster, namespace, names)
            self._delete_jobs(cluster, namespace, names)

    def _delete_jobs(self, cluster: Cluster, namespace: str, names: Sequence[str], quiet: bool = False) -> None:
        first: K8sApiError | None = None
        for name in names:
            try:
                request(cluster.batch.delete_namespaced_job, name, namespace, policy=self.policy, namespace=namespace,
                        what="terminating a worker", missing_ok=True, propagation_policy="Background")
            except K8sApiError as exc:
                log.warning("k8s: could not delete worker Job %s/%s: %s", namespace, name, exc)
                first = first or exc
        if first is not None and not quiet:
            raise first

    def _report_unstarted(self, cluster: Cluster, namespace: str, names: Sequence[str]) -> None:
        """Log why workers about to be deleted never started (e.g. after the launch timed out)."""
        once = RetryPolicy(1, self.policy.seconds_timeout, self.policy.seconds_timeout)
        for start in range(0, len(names), 50):  # keeps the selector, and so the URL, short
            chunk = names[start : start + 50]
            try:
                reply = request(cluster.core.list_namespaced_pod, namespace, policy=once, namespace=namespace,
                                label_selector=f"{JOB_NAME_LABEL} in ({','.join(chunk)})")
            except K8sApiError as exc:  # a diagnosis only: the deletion matters
                log.debug("k8s: could not read the pods of Jobs about to be deleted: %s", exc)
                return
            for pod in (reply or {}).get("items") or []:
                state = pod_state(pod)
                # (a pod that ended, e.g. its worker exited 1, was reported by core with its exit code and log)
                if state.outcome in ("failed", "stuck") and state.phase != "Failed":
                    job = ((pod.get("metadata") or {}).get("labels") or {}).get(JOB_NAME_LABEL)
                    log.warning("k8s: terminating worker Job %s/%s, whose pod never started: %s", namespace, job, state.reason)

    # -- the monitor -------------------------------------------------------------------------------

    def workers(self, controller_id: str | None) -> list[WorkerInfo]:
        """pycrew's workers of this launcher (of one controller, or all), with state, node, age and reason;
        those whose Job has finished or is being deleted too, as ended (``status`` done, failed, cancelled),
        those whose pod the API server refuses (a ResourceQuota) as failed and ``queued``, and those this
        process launched whose Job was deleted from outside pycrew as ``cancelled`` (see :mod:`pycrew_k8s.vanished`)."""
        cluster = self.cluster
        selector = manifests.selector(self.name, controller_id)
        namespace = None if self.options.all_namespaces else self.namespace()
        if namespace is None:
            jobs = list(self._items(cluster.batch.list_job_for_all_namespaces, label_selector=selector))
            pods = list(self._items(cluster.core.list_pod_for_all_namespaces, label_selector=selector))
        else:
            jobs = list(self._items(cluster.batch.list_namespaced_job, namespace, label_selector=selector))
            pods = list(self._items(cluster.core.list_namespaced_pod, namespace, label_selector=selector))
        by_job = pods_by_job(pods)
        live = [j for j in jobs if not job_finished(j) and not (j.get("metadata") or {}).get("deletionTimestamp")]
        refused: dict[tuple[str, str], str] = {}
        if any(not by_job.get(job_key(j)) for j in live):  # why a Job has no pod: its events say
            refused = self._create_failures(cluster, namespace)
        listed = [worker_info(self.name, job, by_job.get(job_key(job), []), refused.get(job_key(job), "")) for job in jobs]
        return listed + self._deleted_from_outside(cluster, controller_id, namespace, jobs)

    def _deleted_from_outside(
        self, cluster: Cluster, controller_id: str | None, namespace: str | None, jobs: list[dict[str, Any]]
    ) -> list[WorkerInfo]:
        """The Jobs this process launched that are missing from ``jobs`` (the listing of ``namespace``,
        ``None``: all) and that a read finds deleted, as ended workers (see :mod:`pycrew_k8s.vanished`).

        A listed Job that has finished or is being deleted is forgotten: the listing reports its end.
        """
        self.launched.forget("/".join(job_key(j)) for j in jobs if job_finished(j) or (j.get("metadata") or {}).get("deletionTimestamp"))
        once = RetryPolicy(1, self.policy.seconds_timeout, self.policy.seconds_timeout)
        for job in self.launched.unlisted(controller_id, namespace, {"/".join(job_key(j)) for j in jobs}):
            try:  # absence from a listing is not enough (it may lag): only a 404 says the Job is gone
                found = request(cluster.batch.read_namespaced_job, job.name, job.namespace, policy=once,
                                namespace=job.namespace, what=f"the Job of worker {job.worker}", missing_ok=True)
            except K8sApiError as exc:  # asked again at the next listing
                log.debug("k8s: could not read Job %s, missing from the listing: %s", job.handle, exc)
                continue
            if found is None:
                log.info("k8s: worker Job %s was deleted from outside pycrew", job.handle)
                self.launched.confirm_gone(job.handle)
        return self.launched.gone(self.name, controller_id)

    def logs(self, handle: str, tail_lines: int | None = None) -> str:
        """The log of a worker's pod (its newest pod), stdout and stderr.

        Raises:
            ValueError: ``handle`` is not ``"namespace/job"``.
            K8sApiError: no pod (not created yet, or deleted after ``seconds_ttl``), or the API failed.
        """
        namespace, name = parse_handle(handle)
        cluster = self.cluster
        pods = list(self._items(cluster.core.list_namespaced_pod, namespace, label_selector=f"{JOB_NAME_LABEL}={name}"))
        pod = newest(pods)
        if pod is None:
            raise K8sApiError(
                f"worker Job {handle} has no pod: not created yet, or deleted with its Job (seconds_ttl after it ended)",
                "read_namespaced_pod_log", 404, "NotFound",
            )
        pod_name = str(pod["metadata"]["name"])
        extra: dict[str, Any] = {"tail_lines": tail_lines} if tail_lines is not None else {}
        text = request(cluster.core.read_namespaced_pod_log, pod_name, namespace, policy=self.policy, namespace=namespace,
                       what=f"the log of pod {pod_name}", container=manifests.CONTAINER, raw=True, **extra)
        return str(text or "")
