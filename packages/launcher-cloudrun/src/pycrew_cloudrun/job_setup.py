"""The Cloud Run job the workers run as: :class:`JobSetup` gets it, checks it, or creates it from the options."""

from __future__ import annotations

import logging
from typing import Any

from google.api_core import exceptions as gexc
from google.api_core.future import polling

from pycrew_cloudrun import jobspec
from pycrew_cloudrun.batchkey import SecretManagerKeys
from pycrew_cloudrun.engine_base import EngineBase
from pycrew_cloudrun.retry import CloudRunError, call_api

log = logging.getLogger(__name__)


class JobSetup(EngineBase):
    """The job part of :class:`~pycrew_cloudrun.cloudrun.CloudRunJobs`: :meth:`ensure_job`."""

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
