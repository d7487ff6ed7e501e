"""Workers as tasks of Cloud Run Jobs executions: :class:`CloudRunJobs` launches, cancels and lists them.

One scaling round is one execution of the job, run with overrides: the worker's arguments
(shared by every task: each task computes its instance id from ``CLOUD_RUN_TASK_INDEX``),
its environment, ``task_count`` = the number of workers, and the task timeout. The round's
secret (its batch key) reaches the tasks through :mod:`pycrew_cloudrun.batchkey`.

Cloud Run cancels whole executions, never one task. So the controller's terminating some
workers of a multi-task execution (with the handles its launches returned) is remembered
(per execution, in this process); the execution is cancelled as soon as every task still
running is one pycrew asked to stop. Until then those workers stop on their own: a worker
whose launch timed out has had its token revoked and exits after ``seconds_launch``; one
that left (idle, wall time, task count) has already exited, which ends its task. A monitor's
request (handles from its listing) is granted at once or refused, never deferred: see
:mod:`pycrew_cloudrun.stopping`.

The monitor lists live tasks (pending, running) of every pycrew execution, and the ended
tasks (failed, succeeded, cancelled) of executions this process launched, until it cancels
them or for :data:`SECONDS_ENDED_KEEP` after they completed: with the task's ``Completed``
condition message and ``last_attempt_result`` (status message, exit code), so that core
fails a launch whose task could not start (a missing image, a missing interpreter) at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core.future import polling
from google.cloud import run_v2

from pycrew import PycrewError, WorkerCall, WorkerInfo
from pycrew_cloudrun import jobspec, runs, stopping, tag
from pycrew_cloudrun.batchkey import KeyDelivery, PlainEnvKeys, SecretManagerKeys
from pycrew_cloudrun.clients import Clients, resolve_project
from pycrew_cloudrun.options import CloudRunOptions
from pycrew_cloudrun.records import (
    CloudRunHandle,
    ExecutionInfo,
    completed_condition,
    execution_done,
    execution_info,
    execution_tag,
    task_state,
    timestamp,
)
from pycrew_cloudrun.retry import CloudRunError, RetryPolicy, call_api
from pycrew_cloudrun.stopping import NotTerminatedError

log = logging.getLogger(__name__)

#: Ended tasks of executions this process launched are listed this long after the execution completed.
SECONDS_ENDED_KEEP = 120.0
#: At most this many launched executions are remembered for that (the oldest are dropped).
LAUNCHED_MAX = 1000
_STATUS = {"PENDING": "pending", "RUNNING": "running", "SUCCEEDED": "done", "FAILED": "failed", "CANCELLED": "cancelled"}


class CloudRunJobs:
    """Launch, terminate and list pycrew's workers on Cloud Run Jobs, for one set of options.

    Thread-safe: core calls it from its launch pool. It remembers, in this process, which
    job it runs, which workers it was asked to stop (see the module docstring) and which
    Secret Manager version belongs to which execution.

    Args:
        options: the launcher's options.
        launcher_name: the registered launcher name, for :class:`pycrew.WorkerInfo`.
    """

    def __init__(self, options: CloudRunOptions, launcher_name: str = "cloudrun") -> None:
        self.options = options
        self.launcher_name = launcher_name
        self.clients = Clients(options)
        self.policy = RetryPolicy(attempts=options.api_attempts_max, seconds_total=options.seconds_api_retry_max)
        self._lock = threading.Lock()
        self._job_lock = threading.Lock()
        self._project: str | None = None
        self._job: str | None = None
        self._container = ""
        self._keys: KeyDelivery | None = None
        self._requested: dict[str, set[int]] = {}
        self._receipts: dict[str, str] = {}
        self._listing: dict[str | None, tuple[float, list[WorkerInfo]]] = {}
        self._launched: dict[str, float] = {}  # executions this process ran and did not cancel -> when

    # -- basics --------------------------------------------------------------------------

    @property
    def project(self) -> str:
        """The project (the option, or found from the environment / ADC)."""
        if self._project is None:
            self._project = resolve_project(self.options)
        return self._project

    @property
    def parent(self) -> str:
        """``projects/<project>/locations/<region>``."""
        return self.options.parent(self.project)

    @property
    def job_name(self) -> str:
        """The full name of the job the workers run as."""
        return f"{self.parent}/jobs/{jobspec.job_id(self.options)}"

    def _timeout(self) -> float:
        return self.options.seconds_api_timeout

    @property
    def keys(self) -> KeyDelivery:
        """How a run's secret reaches its tasks (``token_delivery``)."""
        with self._lock:
            if self._keys is None:
                o = self.options
                if o.token_delivery == "env":
                    self._keys = PlainEnvKeys()
                else:
                    self._keys = SecretManagerKeys(
                        self.clients.secrets, o.secret_name(self.project), self.policy, create=o.create_secret,
                        labels={jobspec.LAUNCHER_LABEL: "cloudrun"}, timeout=o.seconds_api_timeout,
                    )
            return self._keys

    # -- the job -------------------------------------------------------------------------

    def ensure_job(self) -> str:
        """The job's full name; get it, or create it from the options, on first use.

        Raises:
            CloudRunError: the job cannot be found or created.
        """
        with self._job_lock:
            if self._job is not None:
                return self._job
            name = self.job_name
            try:
                job = call_api(
                    f"get job {name}",
                    lambda: self.clients.jobs.get_job(name=name, retry=None, timeout=self._timeout()),
                    self.policy, permission="run.jobs.get", passthrough=(gexc.NotFound,),
                )
                self._check_existing(job)
            except gexc.NotFound:
                job = self._create_job(name)
            containers = job.template.template.containers
            self._container = containers[0].name if containers else ""
            self._job = name
        self._sweep_secret_versions()
        return name

    def _check_existing(self, job: Any) -> None:
        if self.options.job is None and job.labels.get(jobspec.CONFIG_LABEL) != jobspec.fingerprint(self.options):
            raise CloudRunError(
                f"the job {job.name} exists but was not made by pycrew from these options (label "
                f"{jobspec.CONFIG_LABEL}={job.labels.get(jobspec.CONFIG_LABEL)!r}): delete it, or name another job with job="
            )
        containers = job.template.template.containers
        if self.options.job is not None and containers and not containers[0].command:
            log.warning(
                "cloudrun: job %s has no container command; pycrew passes the worker's arguments (-m pycrew.worker "
                "...) as args, so the image's entrypoint must be the Python interpreter (or set the job's command: "
                "gcloud run jobs update %s --command=python)", job.name, self.options.job,
            )

    def _create_job(self, name: str) -> Any:
        if not self.options.image:
            raise CloudRunError(
                f"the job {name} does not exist and the cloudrun option 'image' is not set, so pycrew cannot create "
                f"it: set image= (an image with Python and pycrew installed), or job= to the id of an existing job"
            )
        job_id = name.rsplit("/", 1)[-1]
        what = f"create job {name}"
        try:
            op = call_api(
                what,
                lambda: self.clients.jobs.create_job(
                    parent=self.parent, job=jobspec.build_job(self.options), job_id=job_id, retry=None, timeout=self._timeout()
                ),
                self.policy, permission="run.jobs.create (and iam.serviceAccounts.actAs on the job's service account)",
                passthrough=(gexc.AlreadyExists, gexc.Conflict),
            )
        except (gexc.AlreadyExists, gexc.Conflict):  # another launcher created it meanwhile
            return call_api(f"get job {name}", lambda: self.clients.jobs.get_job(name=name, retry=None, timeout=self._timeout()), self.policy)
        wait = polling.DEFAULT_POLLING.with_delay(initial=0.2, maximum=5.0)
        job = call_api(
            f"wait for {what}",
            lambda: op.result(timeout=10 * self._timeout(), polling=wait),  # type: ignore[no-untyped-call]
            self.policy,
        )
        log.info("cloudrun: created job %s", name)
        return job

    def _sweep_secret_versions(self) -> None:
        keep = self.options.seconds_secret_version_keep
        keys = self.keys
        if keep is None or not isinstance(keys, SecretManagerKeys):
            return
        try:
            keys.sweep(keep)
        except CloudRunError as exc:  # cleaning up is not worth failing a launch: say so and go on
            log.warning("cloudrun: could not destroy old versions of %s: %s", keys.secret, exc)

    # -- launch ----------------------------------------------------------------------------

    def launch(self, calls: Sequence[WorkerCall]) -> list[CloudRunHandle]:
        """Start ``calls`` as one execution (an array batch) or one per call; handles in call order.

        Raises:
            CloudRunError: the job could not be made or run; executions of this batch already
                started are cancelled first.
        """
        if not calls:
            return []
        handles: dict[str, CloudRunHandle] = {}
        started: list[str] = []
        try:
            job = self.ensure_job()
            for run in runs.plan_runs(calls):
                execution = self._run(job, run)
                started.append(execution)
                self._remember_launch(execution)
                for k, call in enumerate(run.calls):
                    handles[call.instance] = CloudRunHandle(execution, k, call.instance, len(run.calls))
        except BaseException:
            for execution in started:
                log.warning("cloudrun: cancelling execution %s of a batch whose launch failed", execution)
                try:
                    self._cancel(execution)
                except CloudRunError as exc:
                    log.warning("cloudrun: could not cancel %s: %s", execution, exc)
            raise
        finally:
            self.forget_listing()
        return [handles[c.instance] for c in calls]

    def _run(self, job: str, run: runs.Run) -> str:
        """Run the job once for ``run``; the execution's name."""
        token_env, receipt = self.keys.token_env(run.secret)
        text = run.tag.encode()
        env = [run_v2.EnvVar(name=k, value=v) for k, v in sorted(run.env.items())]
        env += [run_v2.EnvVar(name=tag.TAG_ENV, value=text), token_env]
        timeout = jobspec.task_timeout(self.options, run.calls[0])
        since = time.time() - 300  # clocks differ: any execution of the last minutes may be this run's
        unsure: list[BaseException] = []  # lookups after a lost reply that failed: a retry may run it twice
        try:
            for again in (True, False):
                request = run_v2.RunJobRequest(
                    name=job, overrides=jobspec.overrides(run.args, env, len(run.calls), timeout, self._container)
                )
                try:
                    name = call_api(
                        f"run job {job} ({len(run.calls)} task(s))",
                        lambda request=request: self._run_once(request),  # type: ignore[misc]
                        self.policy, permission="run.jobs.runWithOverrides", passthrough=(gexc.NotFound,),
                        before_retry=lambda _exc, job=job: self.find_execution(job, text, since, unsure),  # type: ignore[misc]
                    )
                    break
                except gexc.NotFound as exc:
                    if not again or self.options.job is not None:
                        raise CloudRunError(
                            f"run job {job} failed: the job does not exist ({exc}); check the project, region and job options"
                        ) from exc
                    log.info("cloudrun: running job %s: not found; looking it up again (and creating it if it is gone)", job)
                    with self._job_lock:
                        self._job = None
                    job = self.ensure_job()
            if not name:
                name = self.find_execution(job, text, since) or ""
            if not name:
                raise CloudRunError(f"run job {job} returned no execution name, and no execution carries this run's tag")
            if unsure:
                self._cancel_twins(job, text, since, name)
        except BaseException:
            if receipt is not None:
                self._release(receipt)
            raise
        if receipt is not None:
            with self._lock:
                self._receipts[name] = receipt
        log.debug("cloudrun: started execution %s with %d task(s)", name, len(run.calls))
        return name

    def _run_once(self, request: run_v2.RunJobRequest) -> str:
        op = self.clients.jobs.run_job(request=request, retry=None, timeout=self._timeout())
        metadata = op.metadata
        return str(metadata.name) if metadata is not None else ""

    def find_execution(self, job: str, text: str, since: float = 0.0, failures: list[BaseException] | None = None) -> str | None:
        """The execution of ``job`` whose tag is ``text``, created after ``since`` (epoch seconds).

        Used after an ambiguous run failure (the request may have started an execution whose
        reply was lost); ``None`` if there is none, or the listing failed (logged, and added
        to ``failures``).
        """
        try:
            found = self._executions_tagged(job, text, since)
        except (gexc.GoogleAPICallError, OSError) as exc:  # best effort: the caller retries the run
            log.debug("cloudrun: could not look for this run's execution: %s", exc)
            if failures is not None:
                failures.append(exc)
            return None
        if found:
            log.info("cloudrun: the failed run request did start %s; using it", found[0])
        return found[0] if found else None

    def _executions_tagged(self, job: str, text: str, since: float) -> list[str]:
        """Every execution of ``job`` whose tag is ``text``, newest first; pages are read
        newest first until one holds only executions created before ``since``."""
        pager = self.clients.executions.list_executions(
            request={"parent": job, "page_size": 100}, retry=None, timeout=self._timeout()
        )
        out = []
        for page in pager.pages:
            recent = False
            for execution in page.executions:
                recent = recent or (timestamp(execution.create_time) or since) >= since
                found = execution_tag(execution)
                if found is not None and found.encode() == text:
                    out.append(str(execution.name))
            if not recent:
                break
        return out

    def _cancel_twins(self, job: str, text: str, since: float, kept: str) -> None:
        """After a run request whose reply was lost was sent again without knowing whether it
        had started an execution: cancel any other execution of this run (its workers would
        be refused, and terminate() would never reach it)."""
        try:
            twins = [e for e in self._executions_tagged(job, text, since) if e != kept]
        except (gexc.GoogleAPICallError, OSError) as exc:
            log.warning("cloudrun: a run request of job %s was sent again after its reply was lost, and its executions "
                        "cannot be listed (%s): if it had started one, `pycrew monitor cloudrun list` shows it", job, exc)
            return
        for twin in twins:
            log.warning("cloudrun: the run request whose reply was lost had started %s too; cancelling it (kept %s)", twin, kept)
            try:
                self._cancel(twin)
            except CloudRunError as exc:
                log.warning("cloudrun: could not cancel %s: %s", twin, exc)

    # -- terminate -------------------------------------------------------------------------

    def terminate(self, handles: Sequence[Any]) -> None:
        """Stop the workers behind ``handles``; gone ones are fine (see the module docstring).

        The controller's own handles (from :meth:`launch`) of a task whose execution has
        other live tasks are remembered, and the execution is cancelled once all its live
        tasks were asked to stop. A monitor's handles (from :meth:`workers`) are terminated
        at once by cancelling their execution when every other live task of it is an orphan
        or asked to stop too; otherwise nothing of that execution is cancelled, and
        :class:`~pycrew_cloudrun.stopping.NotTerminatedError` says so.

        Raises:
            ValueError: a handle is not a :class:`CloudRunHandle`.
            NotTerminatedError: some of a monitor's tasks could not be terminated alone (the
                other executions were still handled; the message says which were not).
            CloudRunError: a request failed (the others were still tried).
        """
        bad = [h for h in handles if not isinstance(h, CloudRunHandle)]
        if bad:
            raise ValueError(f"cloudrun handles must be CloudRunHandle objects (from the launch hook or the monitor), got {bad!r}")
        groups: dict[str, tuple[int, set[int], bool]] = {}
        for h in handles:
            count, indexes, listed = groups.get(h.execution, (h.task_count, set(), False))
            groups[h.execution] = (count, indexes | {h.index}, listed or h.listed)
        errors: list[CloudRunError] = []
        try:
            for execution, (count, indexes, listed) in groups.items():
                try:
                    self._terminate_tasks(execution, count, indexes, listed)
                except CloudRunError as exc:
                    errors.append(exc)
        finally:
            self.forget_listing()
        if errors:
            message = "; ".join(str(e) for e in errors)
            refused = [e for e in errors if isinstance(e, NotTerminatedError)]
            if len(refused) == len(errors):
                done = len(groups) - len(refused)
                tail = f" (the tasks of the other {done} execution(s) asked were terminated)" if done else ""
                raise NotTerminatedError(message + tail, [t for e in refused for t in e.tasks])
            raise CloudRunError(message)

    def _terminate_tasks(self, execution: str, count: int, indexes: set[int], listed: bool) -> None:
        """Stop tasks ``indexes`` of ``execution``; ``listed``: a monitor asks (see :meth:`terminate`)."""
        with self._lock:
            before = set(self._requested.get(execution, ()))
            wanted = before | indexes
            self._requested[execution] = set(wanted)
        if wanted >= set(range(count)):
            self._cancel(execution)
            return
        try:
            tasks = self._list_tasks(execution)
        except gexc.NotFound:
            self._forget(execution)
            return
        live = {t.index: t for t in tasks if task_state(t) in ("PENDING", "RUNNING")}
        if not live:
            self._forget(execution)
        elif set(live) <= wanted:
            self._cancel(execution)
        elif not set(live) & wanted:
            pass  # the tasks asked to stop have ended already
        elif not listed:
            log.info(
                "cloudrun: %s: Cloud Run cancels whole executions and %d other task(s) of it still run, so it is not "
                "cancelled now; the %d worker(s) asked to stop exit by themselves (idle, seconds_launch, wall time) "
                "and the execution is cancelled once all its running tasks were asked to stop",
                execution, len(set(live) - wanted), len(set(live) & wanted),
            )
        else:
            self._stop_for_monitor(execution, live, wanted, indexes, indexes - before)

    def _stop_for_monitor(
        self, execution: str, live: Mapping[int, Any], wanted: set[int], requested: set[int], new: set[int]
    ) -> None:
        """A monitor asked to stop tasks ``requested`` of ``execution`` (``wanted``: with those asked
        before), not all its ``live`` ones: cancel it if the others are orphans, else raise and forget
        the ``new`` requests (refused, not deferred).

        Raises:
            NotTerminatedError: the others belong to a controller that has not ended.
        """
        try:
            orphaned = execution in stopping.orphaned_executions(self.launcher_name, self.options)
            why = "which has not ended as far as this machine's controller records tell (it runs, or it ran elsewhere)"
        except PycrewError as exc:  # cannot tell: do not cancel what may be another controller's work
            orphaned = False
            why = f"and whether that controller has ended could not be told ({exc})"
        if orphaned:
            log.info("cloudrun: cancelling %s: its controller has ended, so its other live task(s) are orphans", execution)
            self._cancel(execution)
            return
        with self._lock:
            if execution in self._requested:
                self._requested[execution] -= new
        controller = "unknown (the execution could not be read)"
        try:
            found = execution_tag(call_api(
                f"get execution {execution}",
                lambda: self.clients.executions.get_execution(name=execution, retry=None, timeout=self._timeout()),
                self.policy, permission="run.executions.get",
            ))
            if found is not None:
                controller = f"{found.controller!r} (id {found.controller_id})"
        except CloudRunError as exc:  # only the message's detail is missing
            log.debug("cloudrun: could not read %s for its controller: %s", execution, exc)
        asked = [live[i].name for i in sorted(live) if i in requested]
        others = [live[i].name for i in sorted(live) if i not in wanted]
        raise NotTerminatedError(
            stopping.not_terminated_message(self.launcher_name, execution, asked, others, controller, why), asked
        )

    def _remember_launch(self, execution: str) -> None:
        with self._lock:
            self._launched[execution] = time.time()
            while len(self._launched) > LAUNCHED_MAX:
                self._launched.pop(next(iter(self._launched)))

    def _cancel(self, execution: str) -> None:
        """Cancel an execution (its pending and running tasks); ended or deleted ones are fine."""
        with self._lock:
            self._launched.pop(execution, None)  # pycrew stops it: its tasks' ends are no news
        client = self.clients.executions
        try:
            call_api(
                f"cancel execution {execution}",
                lambda: client.cancel_execution(name=execution, retry=None, timeout=self._timeout()),
                self.policy, permission="run.executions.cancel",
                passthrough=(gexc.NotFound, gexc.FailedPrecondition, gexc.BadRequest),
            )
        except gexc.NotFound:
            pass  # deleted: nothing runs
        except (gexc.FailedPrecondition, gexc.BadRequest) as exc:  # refused: fine if it has ended
            try:
                current = call_api(
                    f"get execution {execution}",
                    lambda: client.get_execution(name=execution, retry=None, timeout=self._timeout()),
                    self.policy, permission="run.executions.get", passthrough=(gexc.NotFound,),
                )
            except gexc.NotFound:
                current = None
            if current is not None and not execution_done(current):
                raise CloudRunError(f"cancel execution {execution} failed: {type(exc).__name__}: {exc}") from exc
        self._forget(execution)

    def _forget(self, execution: str) -> None:
        """The execution has ended or was cancelled: drop what is remembered, destroy its key."""
        with self._lock:
            self._requested.pop(execution, None)
            receipt = self._receipts.pop(execution, None)
        if receipt is not None:
            self._release(receipt)

    def _release(self, receipt: str) -> None:
        try:
            self.keys.release(receipt)
        except CloudRunError as exc:  # the sweep destroys it later; the run itself is unaffected
            log.warning("cloudrun: could not destroy the secret version %s: %s", receipt, exc)

    def _list_tasks(self, execution: str) -> list[Any]:
        return call_api(
            f"list tasks of {execution}",
            lambda: list(self.clients.tasks.list_tasks(
                request={"parent": execution, "page_size": 1000}, retry=None, timeout=self._timeout()
            )),
            self.policy, permission="run.tasks.list", passthrough=(gexc.NotFound,),
        )

    # -- the monitor -----------------------------------------------------------------------

    def forget_listing(self) -> None:
        """Drop the monitor's cached listing (after a launch or a termination)."""
        with self._lock:
            self._listing.clear()

    def _list_executions(self) -> list[Any]:
        """Every execution of every job in the region (``jobs/-``), newest first."""
        parent = f"{self.parent}/jobs/-"
        return call_api(
            f"list executions in {self.parent}",
            lambda: list(self.clients.executions.list_executions(
                request={"parent": parent, "page_size": 100}, retry=None, timeout=self._timeout()
            )),
            self.policy, permission="run.executions.list",
        )

    def _pycrew_executions(
        self, controller_id: str | None, include_done: bool, labels: Mapping[str, str] | None = None
    ) -> list[tuple[Any, tag.ExecutionTag]]:
        """pycrew's executions (those with a tag), all or one controller's, with these labels."""
        result = []
        for execution in self._list_executions():
            if labels and any(execution.labels.get(k) != v for k, v in labels.items()):
                continue
            if execution_done(execution):
                self._ended(execution.name)
                if not include_done:
                    continue
            found = execution_tag(execution)
            if found is not None and (controller_id is None or found.controller_id == controller_id):
                result.append((execution, found))
        return result

    def executions(
        self, controller_id: str | None = None, include_done: bool = False, labels: Mapping[str, str] | None = None
    ) -> list[ExecutionInfo]:
        """pycrew's executions in the region, newest first.

        Args:
            controller_id: only this controller's (default: every controller's).
            include_done: also executions that have ended (Cloud Run keeps them for 7 days).
            labels: only executions with these labels (their job's, e.g. ``{"team": "ml"}``).

        Raises:
            CloudRunError: the listing failed.
        """
        return [execution_info(e, t) for e, t in self._pycrew_executions(controller_id, include_done, labels)]

    def cancel_executions(self, names: Sequence[str]) -> None:
        """Cancel whole executions by name (ended or deleted ones are fine).

        Raises:
            CloudRunError: a cancellation failed.
        """
        try:
            for name in names:
                self._cancel(name)
        finally:
            self.forget_listing()

    def _ended(self, execution: str) -> None:
        with self._lock:
            known = execution in self._receipts or execution in self._requested
        if known:
            self._forget(execution)

    def workers(self, controller_id: str | None) -> list[WorkerInfo]:
        """The monitor: pycrew's workers (tasks), all or one controller's.

        Live ones (pending or running tasks) of every pycrew execution, and ended ones of the
        executions this process launched and did not cancel, up to :data:`SECONDS_ENDED_KEEP`
        after they completed (see the module docstring). Listed at most once per
        ``seconds_poll`` (launches and terminations refresh it).

        Raises:
            CloudRunError: the listing failed.
        """
        now = time.monotonic()
        with self._lock:
            cached = self._listing.get(controller_id)
        if cached is not None and now - cached[0] < self.options.seconds_poll:
            return list(cached[1])
        result: list[WorkerInfo] = []
        with self._lock:
            launched = set(self._launched)
        for execution, found in self._pycrew_executions(controller_id, include_done=bool(launched)):
            mine = execution.name in launched
            if execution_done(execution):
                completed = timestamp(execution.completion_time) if "completion_time" in execution else None
                if not mine:
                    continue
                if completed is not None and time.time() - completed > SECONDS_ENDED_KEEP:
                    with self._lock:
                        self._launched.pop(execution.name, None)
                    continue
            try:
                tasks = self._list_tasks(execution.name)
            except gexc.NotFound:
                continue  # deleted since it was listed
            result += [
                self._worker_info(execution, found, t) for t in tasks if mine or task_state(t) in ("PENDING", "RUNNING")
            ]
        with self._lock:
            self._listing[controller_id] = (now, result)
        return list(result)

    def _worker_info(self, execution: Any, found: tag.ExecutionTag, task: Any) -> WorkerInfo:
        """A task as a :class:`pycrew.WorkerInfo` (an ended one with its message and exit code)."""
        instance = found.instance_of(task.index)
        cond = completed_condition(task.conditions)
        state = task_state(task)
        reasons = [cond.message if cond is not None else ""]
        exit_code: int | None = None
        if state in ("SUCCEEDED", "FAILED", "CANCELLED") and "last_attempt_result" in task:
            result = task.last_attempt_result
            reasons.append(result.status.message)
            if result.term_signal:
                exit_code = 128 + result.term_signal
            elif state != "CANCELLED" and (result.exit_code or result.status.code == 0):
                exit_code = result.exit_code  # unset (0) when the container did not exit by itself
        return WorkerInfo(
            id=task.name,
            handle=CloudRunHandle(execution.name, task.index, instance or "", execution.task_count, listed=True),
            launcher=self.launcher_name,
            controller=found.controller or None,
            controller_id=found.controller_id,
            instance=instance,
            worker=found.slot_of(task.index),
            state=state,
            started=timestamp(task.start_time) or timestamp(execution.create_time),
            reason="; ".join(dict.fromkeys(r for r in reasons if r)),
            log=task.log_uri or execution.log_uri or None,
            status=_STATUS.get(state, "unknown"),
            exit_code=exit_code,
        )
