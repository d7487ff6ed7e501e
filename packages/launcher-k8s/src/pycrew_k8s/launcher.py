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
  without a pod, the job controller's ``FailedCreate`` event, e.g. a ResourceQuota's refusal).
"""

from __future__ import annotations

import logging
import re
import secrets
import time
from collections.abc import Iterator, Sequence
from typing import Any

from pycrew import OptionsError, PycrewError, WorkerCall, WorkerInfo
from pycrew_k8s import manifests
from pycrew_k8s.api import K8sApiError, RetryPolicy, request
from pycrew_k8s.cluster import Cluster, connect
from pycrew_k8s.listing import JOB_NAME_LABEL, job_key, pods_by_job, worker_info
from pycrew_k8s.options import K8sOptions
from pycrew_k8s.pods import PodState, create_failures, job_finished, newest, pod_state
from pycrew_k8s.quota import is_quota_refusal, quota_hint

log = logging.getLogger(__name__)

#: A handle: ``<namespace>/<job name>``.
_HANDLE = re.compile(r"^([a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)/([a-z0-9](?:[-a-z0-9.]{0,251}[a-z0-9])?)$")
#: The field selector of the job controller's events about pods it could not create.
FAILED_CREATE = "involvedObject.kind=Job,reason=FailedCreate"
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


def parse_handle(handle: Any) -> tuple[str, str]:
    """``(namespace, job name)`` of a handle ``"namespace/name"``.

    Raises:
        ValueError: ``handle`` is not a k8s launcher's handle.
    """
    match = _HANDLE.fullmatch(handle) if isinstance(handle, str) else None
    if match is None:
        raise ValueError(f"k8s handles look like 'namespace/job-name', got {handle!r}")
    return match.group(1), match.group(2)


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


class K8sLauncher:
    """Launch, terminate and list pycrew workers as Kubernetes Jobs.

    Args:
        name: the launcher's registered name (``"k8s"``).
        options: the launcher's options.
    """

    def __init__(self, name: str, options: K8sOptions) -> None:
        self.name = name
        self.options = options
        self.policy = RetryPolicy(options.api_attempts_max, options.seconds_api_retry, options.seconds_api_timeout)
        #: Listing events was refused (403): they are optional (see the README's Role), not asked for again.
        self.events_forbidden = False

    @property
    def cluster(self) -> Cluster:
        """The connection (made on first use, shared by every launcher with the same connection options)."""
        return connect(self.options)

    def namespace(self) -> str:
        """The namespace Jobs go to: the option, else the configuration's."""
        return self.options.namespace or self.cluster.namespace

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
        return [f"{namespace}/{name}" for name in created]

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

    def _check_start(self, cluster: Cluster, namespace: str, batch: str, jobs: list[str], calls: Sequence[WorkerCall]) -> None:
        """Watch the batch's pods until all started (or ended), one cannot start, or ``seconds_launch_check`` passed.

        A pod that ended (its worker exited, or its container could not run) is left to the
        monitor, which reports it to core's launch watch with its exit code. A Job without a
        pod gets its events read: pods refused by a ResourceQuota fail the launch at once if
        no pod of the batch exists; otherwise the monitor reports those Jobs.
        """
        window = min(self.options.seconds_launch_check, calls[0].seconds_launch)
        if window <= 0:
            return
        began = time.monotonic()
        deadline, events_due = began + window, began + SECONDS_EVENTS
        pause = 0.1
        while True:
            states = self._batch_states(cluster, namespace, batch, jobs)
            blocked: list[tuple[str, PodState]] = []
            if any(s is None for s in states.values()) and time.monotonic() >= events_due:
                events_due = time.monotonic() + SECONDS_EVENTS
                refused = self._create_failures(cluster, namespace)
                blocked = [(j, PodState("", "Pending", "failed", refused[(namespace, j)], state="FailedCreate"))
                           for j, s in states.items() if s is None and (namespace, j) in refused]
            started = [j for j, s in states.items() if s is not None and s.outcome == "started"]
            ended = [j for j, s in states.items() if s is not None and s.outcome == "failed" and s.phase == "Failed"]
            failed = [(j, s) for j, s in states.items() if s is not None and s.outcome == "failed" and s.phase != "Failed"]
            if len(blocked) == len(jobs) or (failed and not started):
                raise self._start_error(namespace, failed or blocked, len(jobs))
            if len(started) + len(ended) + len(blocked) == len(jobs):
                for job, state in blocked:
                    log.warning("k8s: worker Job %s/%s has no pod: %s", namespace, job, state.reason)
                return
            if failed:
                for job, state in failed:
                    log.warning("k8s: worker Job %s/%s could not start: %s", namespace, job, state.reason)
                return
            if time.monotonic() >= deadline:
                break
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

    def _create_failures(self, cluster: Cluster, namespace: str | None) -> dict[tuple[str, str], str]:
        """Why Jobs in ``namespace`` (``None``: all) have no pod: :func:`~pycrew_k8s.pods.create_failures` of
        their events. Best effort, one attempt: ``{}`` if events cannot be listed (listing them is optional)."""
        if self.events_forbidden:
            return {}
        once = RetryPolicy(1, self.policy.seconds_timeout, self.policy.seconds_timeout)
        try:
            if namespace is None:
                events = self._items(cluster.core.list_event_for_all_namespaces, policy=once, field_selector=FAILED_CREATE)
            else:
                events = self._items(cluster.core.list_namespaced_event, namespace, policy=once, field_selector=FAILED_CREATE)
            return create_failures(list(events))
        except K8sApiError as exc:  # a diagnosis only
            if exc.status == 403:
                self.events_forbidden = True
                log.info("k8s: may not list events (%s): why a Job created no pod (e.g. a ResourceQuota) is not "
                         "reported; grant list on events (see the README's Role)", exc)
            else:
                log.debug("k8s: could not list the events of Jobs without a pod: %s", exc)
            return {}

    # -- terminate -------------------------------------------------------------------------------

    def terminate(self, handles: Sequence[Any]) -> None:
        """Delete the workers' Jobs (background propagation); Jobs already gone are fine.

        Raises:
            ValueError: a handle is not ``"namespace/job"``.
            K8sApiError: a deletion failed for another reason (the others are still tried).
        """
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

    def _items(self, operation: Any, *args: Any, policy: RetryPolicy | None = None, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item of a list request, page by page."""
        token: str | None = None
        while True:
            page: dict[str, Any] = request(operation, *args, policy=policy or self.policy, limit=500, _continue=token,
                                           **kwargs) or {}
            yield from page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return

    def workers(self, controller_id: str | None) -> list[WorkerInfo]:
        """pycrew's workers of this launcher (of one controller, or all), with state, node, age and reason;
        those whose Job has finished or is being deleted too, as ended (``status`` done, failed, cancelled),
        and those whose pod the API server refuses (a ResourceQuota) as failed and ``queued``."""
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
        return [worker_info(self.name, job, by_job.get(job_key(job), []), refused.get(job_key(job), "")) for job in jobs]

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
