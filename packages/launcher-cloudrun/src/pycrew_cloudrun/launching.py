"""Launching workers: :class:`Launching` runs the job once per batch and finds the executions it started.

One scaling round is one execution of the job, run with overrides: the worker's arguments
(shared by every task: each task computes its instance id from ``CLOUD_RUN_TASK_INDEX``),
its environment, ``task_count`` = the number of workers, and the task timeout. The round's
secret (its batch key) reaches the tasks through :mod:`pycrew_cloudrun.batchkey`.

After a run request whose reply was lost, the execution it may have started is found by
its tag, and twins (a retried request started a second one) are cancelled.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from google.api_core import exceptions as gexc
from google.cloud import run_v2

from pycrew import WorkerCall
from pycrew_cloudrun import jobspec, runs, tag
from pycrew_cloudrun.job_setup import JobSetup
from pycrew_cloudrun.records import CloudRunHandle, execution_tag, timestamp
from pycrew_cloudrun.retry import CloudRunError, call_api
from pycrew_cloudrun.vanished import LaunchedExecution

log = logging.getLogger(__name__)

#: At most this many launched executions are remembered for the monitor's listing (the oldest are dropped).
LAUNCHED_MAX = 1000


class Launching(JobSetup):
    """The launch part of :class:`~pycrew_cloudrun.cloudrun.CloudRunJobs`: :meth:`launch`, :meth:`find_execution`."""

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
                self._remember_launch(execution, run.tag)
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

    def _remember_launch(self, execution: str, found: tag.ExecutionTag) -> None:
        with self._lock:
            self._launched[execution] = LaunchedExecution(execution, found)
            while len(self._launched) > LAUNCHED_MAX:
                self._launched.pop(next(iter(self._launched)))
