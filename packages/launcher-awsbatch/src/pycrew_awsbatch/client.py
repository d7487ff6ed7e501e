""":class:`AwsBatchClient`: launch and terminate pycrew workers as AWS Batch jobs.

One client serves one set of launcher options in one process, from several threads. It
keeps the base job definition (described once) and, per launched batch, the secret and
job definition revision to delete when every worker of the batch has been terminated.
The monitor's side (listing, details, logs, clean-up) is in :mod:`pycrew_awsbatch.monitor`.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pycrew import TOKEN_ENV, LauncherInfo, WorkerCall, WorkerInfo
from pycrew_awsbatch import jobdefs, overrides, plan
from pycrew_awsbatch.api import AwsApi, AwsBatchError
from pycrew_awsbatch.options import AwsBatchOptions
from pycrew_awsbatch.tokens import TokenStore, token_store

log = logging.getLogger(__name__)

#: Job statuses before a container starts (CancelJob reaches these).
QUEUED = ("SUBMITTED", "PENDING", "RUNNABLE")
#: Job statuses with a container (only TerminateJob reaches these).
STARTED = ("STARTING", "RUNNING")
ACTIVE = QUEUED + STARTED
FINAL = ("SUCCEEDED", "FAILED")
#: DescribeJobs takes at most this many ids per call.
DESCRIBE_MAX = 100


@dataclass
class _Batch:
    """What one launched unit left in AWS besides its jobs."""

    secret: str
    definition: str
    outstanding: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class LaunchedWorker:
    """A worker this client launched and has not terminated yet (see :meth:`AwsBatchClient.launched`).

    Attributes:
        handle: its job id (``<array job id>:<index>`` for an array child).
        instance: the worker's instance id.
        worker: its slot.
        controller: the controller's name.
        controller_id: the controller's id.
    """

    handle: str
    instance: str
    worker: int
    controller: str
    controller_id: str


class AwsBatchClient:
    """Workers as AWS Batch jobs for one launcher configuration.

    Args:
        launcher_name: the registered launcher name (``"awsbatch"``).
        options: the :class:`~pycrew_awsbatch.AwsBatchOptions`.
        api: an :class:`~pycrew_awsbatch.api.AwsApi` to use (default: one for ``options``).
    """

    def __init__(self, launcher_name: str, options: AwsBatchOptions, api: AwsApi | None = None) -> None:
        self.launcher_name = launcher_name
        self.options = options
        self.api = api or AwsApi(options)
        self.store: TokenStore = token_store(options.token_store, self.api, launcher_name, options.kms_key_id)
        self._lock = threading.Lock()
        self._base: dict[str, Any] | None = None
        self._batches: dict[str, _Batch] = {}
        self._batch_of: dict[str, str] = {}
        self._launched: dict[str, LaunchedWorker] = {}

    # -- the base job definition ---------------------------------------------------------

    def base_definition(self) -> dict[str, Any]:
        """The ``job_definition`` option's job definition (described once, then cached)."""
        with self._lock:
            if self._base is not None:
                return self._base
        base = jobdefs.describe_job_definition(self.api, self.options.job_definition)
        if jobdefs.definition_kind(base) == "multinode":
            raise AwsBatchError(
                f"awsbatch option job_definition={self.options.job_definition!r} is a multi-node parallel job "
                f"definition; pycrew workers need a container (EC2/Fargate), ECS- or EKS-properties job definition"
            )
        with self._lock:
            self._base = base
        return base

    def needs_own_definition(self) -> bool:
        """Whether each batch gets its own job definition revision (secret, image or role)."""
        o = self.options
        return self.store.uses_secrets or o.image is not None or o.execution_role_arn is not None

    # -- launch --------------------------------------------------------------------------

    def launch(self, launcher: LauncherInfo, calls: Sequence[WorkerCall]) -> list[str]:
        """Submit the batch; return one handle per call: ``<job id>`` or ``<array job id>:<index>``.

        On any failure, everything this call created (jobs, secrets, job definition
        revisions) is removed again before the error propagates.

        Raises:
            AwsBatchError: an AWS call failed (the message names it and AWS's reason).
        """
        if not calls:
            return []
        base = self.base_definition()
        by_instance: dict[str, str] = {}
        for unit in plan.plan(calls, self.options.array_size_max):
            handles = self._launch_unit(launcher, unit, base)
            for sub_calls, sub_handles in handles:
                for call, handle in zip(sub_calls, sub_handles, strict=True):
                    by_instance[call.instance] = handle
        return [by_instance[c.instance] for c in calls]

    def _launch_unit(
        self, launcher: LauncherInfo, unit: plan.Unit, base: dict[str, Any]
    ) -> list[tuple[tuple[WorkerCall, ...], list[str]]]:
        first = unit.submissions[0].calls[0]
        controller_id = first.controller_id or launcher.controller_id or ""
        controller = first.controller or launcher.controller or ""
        resource_tags = {
            **self.options.tags,
            plan.LAUNCHER_TAG: self.launcher_name,
            plan.CONTROLLER_ID_TAG: plan.tag_value(controller_id),
            plan.BATCH_TAG: unit.key,
            plan.QUEUE_TAG: plan.tag_value(self.options.job_queue),
            plan.CREATED_TAG: str(int(time.time())),
        }
        batch = _Batch(secret="", definition="")
        done: list[tuple[tuple[WorkerCall, ...], list[str]]] = []
        try:
            if self.store.uses_secrets:
                batch.secret = self.store.create(self.store.secret_name(controller_id, unit.key), unit.secret, resource_tags)
            definition = str(base["jobDefinitionArn"])
            if self.needs_own_definition():
                request = jobdefs.derive(
                    self.api, base, image=self.options.image, execution_role_arn=self.options.execution_role_arn,
                    secret_reference=batch.secret, tags=resource_tags,
                )
                batch.definition = definition = str(self.api.call("batch", "register_job_definition", **request)["jobDefinitionArn"])
            for index, sub in enumerate(unit.submissions):
                request = self.submit_request(unit, index, sub, definition, base, controller, controller_id)
                job_id = self._submit(request)
                handles = [f"{job_id}:{i}" for i in range(sub.size)] if sub.array else [job_id]
                done.append((sub.calls, handles))
                log.debug("%s: submitted %s (%d worker(s))", self.launcher_name, job_id, sub.size)
        except BaseException:
            submitted = [h for _, hs in done for h in hs]
            if submitted:
                log.warning("%s: terminating %d worker(s) of a batch whose submission failed", self.launcher_name, len(submitted))
            self._cleanup_failed(submitted, batch)
            raise
        with self._lock:
            key = f"{controller_id}/{unit.key}"
            batch.outstanding = {h for _, hs in done for h in hs}
            self._batches[key] = batch
            for h in batch.outstanding:
                self._batch_of[h] = key
            for sub_calls, sub_handles in done:
                for call, h in zip(sub_calls, sub_handles, strict=True):
                    self._launched[h] = LaunchedWorker(h, call.instance, call.worker, controller, controller_id)
        return done

    def _cleanup_failed(self, handles: list[str], batch: _Batch) -> None:
        try:
            if handles:
                self._stop(handles, "pycrew: the rest of the batch failed to submit")
            self._delete_batch_resources(batch)
        except AwsBatchError as exc:  # the launch error matters more; this one is logged
            log.warning("%s: cleaning up after a failed launch failed too: %s", self.launcher_name, exc)

    def submit_request(
        self,
        unit: plan.Unit,
        index: int,
        sub: plan.Submission,
        definition: str,
        base: dict[str, Any],
        controller: str,
        controller_id: str,
    ) -> dict[str, Any]:
        """The SubmitJob request of one submission (no secret in it unless token_store='environment')."""
        o = self.options
        env = {**o.env, **sub.env}
        if not self.store.uses_secrets:
            env[TOKEN_ENV] = unit.secret  # the documented fallback: DescribeJobs shows it
        command = [o.python, *sub.args]
        request: dict[str, Any] = {
            "jobName": plan.job_name(controller, unit, index),
            "jobQueue": o.job_queue,
            "jobDefinition": definition,
            "tags": {**o.tags, **plan.submission_tags(self.launcher_name, controller_id, controller, unit, sub)},
            "propagateTags": o.propagate_tags,
        }
        if sub.array:
            request["arrayProperties"] = {"size": sub.size}
        timeout = o.timeout_seconds(sub.calls[0].seconds_wall)
        if timeout is not None:
            request["timeout"] = {"attemptDurationSeconds": timeout}
        if o.share_identifier is not None:
            request["shareIdentifier"] = o.share_identifier
        if o.scheduling_priority is not None:
            request["schedulingPriorityOverride"] = o.scheduling_priority
        if o.retry_strategy is not None:
            request["retryStrategy"] = copy.deepcopy(o.retry_strategy)
        kind = jobdefs.definition_kind(base)
        if kind == "ecs":
            request["ecsPropertiesOverride"] = overrides.ecs_override(o, base, command, env)
        elif kind == "eks":
            request["eksPropertiesOverride"] = overrides.eks_override(o, base, command, env)
        else:
            request["containerOverrides"] = overrides.container_override(o, command, env)
        return request

    def _submit(self, request: dict[str, Any]) -> str:
        """SubmitJob under the retry policy; after an ambiguous failure, first look for the job by its unique name."""
        batch = self.api.client("batch")

        def attempt(ambiguous: bool) -> str:
            if ambiguous:
                found = batch.list_jobs(
                    jobQueue=request["jobQueue"], filters=[{"name": "JOB_NAME", "values": [request["jobName"]]}]
                ).get("jobSummaryList", [])
                if found:
                    log.info("%s: job %s exists although SubmitJob failed: using it", self.launcher_name, request["jobName"])
                    return str(found[0]["jobId"])
            return str(batch.submit_job(**request)["jobId"])

        return self.api.retry(attempt, "batch", "submit_job")

    # -- terminate -----------------------------------------------------------------------

    def terminate(self, handles: Sequence[Any], reason: str = "terminated by pycrew") -> None:
        """Stop the workers behind ``handles``: CancelJob if queued, TerminateJob if started.

        Workers that already ended, or that AWS does not know, are skipped silently. When
        every worker of a batch has been terminated, its secret and job definition
        revision are deleted.

        Raises:
            ValueError: a handle is not a job id.
            AwsBatchError: an AWS call failed (after the others were attempted).
        """
        ids = list(dict.fromkeys(_check_handle(h) for h in handles))
        if not ids:
            return
        try:
            self._stop(ids, reason)
        finally:
            # Also after a failed stop: a queued job whose secret is gone fails when it
            # starts (ResourceInitializationError) instead of running without a controller.
            self._release(ids)

    def _stop(self, ids: list[str], reason: str) -> None:
        statuses = self.statuses(ids)
        errors: list[AwsBatchError] = []
        untried = 0
        for k, job_id in enumerate(ids):
            status = statuses.get(job_id)
            if status is None or status in FINAL:
                continue  # gone or ended: nothing to do, nothing to say
            try:
                if status in QUEUED:
                    self.api.call("batch", "cancel_job", jobId=job_id, reason=reason)
                # Also for queued jobs: CancelJob does nothing to a job that reached
                # STARTING since the describe; TerminateJob stops it (or is a no-op).
                self.api.call("batch", "terminate_job", jobId=job_id, reason=reason)
            except AwsBatchError as exc:
                errors.append(exc)
                if exc.transient:  # AWS unavailable: each other job would spend a whole retry budget too
                    untried = sum(1 for j in ids[k + 1 :] if statuses.get(j) not in (None, *FINAL))
                    break
        if errors:
            more = f" ({untried} more not tried: AWS was unavailable)" if untried else ""
            raise AwsBatchError(
                f"could not terminate {len(errors) + untried} of {len(ids)} AWS Batch job(s){more}: {errors[0]}",
                errors[0].operation, errors[0].code, errors[0].attempts, transient=errors[0].transient,
            )

    def statuses(self, ids: Sequence[str]) -> dict[str, str]:
        """``{job id: status}`` from DescribeJobs (chunks of 100); unknown ids are absent."""
        return {job_id: str(job.get("status")) for job_id, job in self.describe(ids).items()}

    def describe(self, ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """``{job id: description}`` from DescribeJobs (chunks of 100); unknown ids are absent."""
        out: dict[str, dict[str, Any]] = {}
        ids = list(dict.fromkeys(ids))
        for start in range(0, len(ids), DESCRIBE_MAX):
            reply = self.api.call("batch", "describe_jobs", jobs=ids[start : start + DESCRIBE_MAX])
            for job in reply.get("jobs", []):
                out[str(job["jobId"])] = dict(job)
        return out

    def launched(self, controller_id: str | None = None) -> list[LaunchedWorker]:
        """Workers this client launched (for one controller, or all) and was not asked to terminate.

        The monitor describes those that left the active statuses, to report how they ended.
        """
        with self._lock:
            return [w for w in self._launched.values() if controller_id is None or w.controller_id == controller_id]

    def _release(self, ids: list[str]) -> None:
        finished: list[_Batch] = []
        with self._lock:
            for job_id in ids:
                self._launched.pop(job_id, None)
                key = self._batch_of.pop(job_id, None)
                batch = self._batches.get(key) if key else None
                if batch is None:
                    continue
                batch.outstanding.discard(job_id)
                if not batch.outstanding:
                    finished.append(self._batches.pop(key or ""))
        for batch in finished:
            self._delete_batch_resources(batch)

    def _delete_batch_resources(self, batch: _Batch) -> None:
        if batch.secret:
            self.store.delete(batch.secret)
        if batch.definition:
            jobdefs.deregister_job_definition(self.api, batch.definition)

    # -- the monitor and the job definition helper (see pycrew_awsbatch.monitor / .jobdefs) --

    @classmethod
    def from_options(cls, launcher_name: str = "awsbatch", **options: Any) -> AwsBatchClient:
        """A client for options given as keywords: ``AwsBatchClient.from_options(job_queue=..., ...)``."""
        return cls(launcher_name, AwsBatchOptions.from_mapping(options))

    def workers(self, controller_id: str | None = None) -> list[WorkerInfo]:
        """pycrew's workers in the queue: one controller's, or all of this launcher's (``None``)."""
        from pycrew_awsbatch import monitor

        return monitor.workers(self, controller_id)

    def details(self, job_id: str) -> Any:
        """A :class:`~pycrew_awsbatch.monitor.JobDetails` of one job or array child (``None`` if unknown)."""
        from pycrew_awsbatch import monitor

        return monitor.details(self, job_id)

    def log_lines(self, job_id: str, limit: int | None = None) -> list[str]:
        """The CloudWatch Logs lines of one job or array child (see :func:`pycrew_awsbatch.monitor.log_lines`)."""
        from pycrew_awsbatch import monitor

        return monitor.log_lines(self, job_id, limit)

    def terminate_controller(self, controller_id: str, reason: str = "terminated by pycrew") -> int:
        """Terminate every worker of one controller (e.g. an orphan's); return how many."""
        handles = [w.handle for w in self.workers(controller_id)]
        self.terminate(handles, reason)
        return len(handles)

    def delete_stale_resources(self, older_than: float = 3600.0) -> int:
        """Delete secrets and job definition revisions left by batches without active jobs."""
        from pycrew_awsbatch import monitor

        return monitor.delete_stale_resources(self, older_than)

    def register_job_definition(self, name: str, image: str, **kwargs: Any) -> dict[str, Any]:
        """Register a job definition for workers (see :func:`pycrew_awsbatch.jobdefs.register_job_definition`)."""
        return jobdefs.register_job_definition(self.api, name, image, **kwargs)

    def describe_job_definition(self, reference: str) -> dict[str, Any]:
        """Describe a job definition: ``name`` (latest ACTIVE revision), ``name:revision`` or ARN."""
        return jobdefs.describe_job_definition(self.api, reference)

    def deregister_job_definition(self, reference: str, all_revisions: bool = False) -> int:
        """Deregister a job definition revision, or every ACTIVE revision of a name; idempotent."""
        return jobdefs.deregister_job_definition(self.api, reference, all_revisions)

    def pending_batches(self) -> int:
        """How many launched batches still hold a secret or job definition revision here."""
        with self._lock:
            return len(self._batches)


def _check_handle(handle: Any) -> str:
    if not isinstance(handle, str) or not handle or any(ch.isspace() for ch in handle) or len(handle) > 200:
        raise ValueError(f"awsbatch handles are AWS Batch job ids ('<job id>' or '<array job id>:<index>'), got {handle!r}")
    return handle
