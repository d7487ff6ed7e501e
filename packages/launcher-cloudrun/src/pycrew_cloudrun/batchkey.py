"""How a run's secret (the batch key of an array launch, or a lone worker's token) reaches its tasks.

Every task of an execution gets the same arguments and environment, so the secret of one
run is shared by its tasks: an array launch's batch key, from which each task derives its
own token (HMAC of its instance id, see :meth:`pycrew.WorkerCall.array_environment`).
Anything in a run's overrides is shown by the Cloud Run console and returned by
``executions.get`` to anyone with ``run.executions.get`` (``roles/run.viewer``), so:

- :class:`SecretManagerKeys` (``token_delivery="secret_manager"``, the default) adds the
  secret as a new version of one Secret Manager secret and passes only a reference
  (``valueSource.secretKeyRef`` with that version number); Cloud Run resolves it when a
  task starts. The version is destroyed when the execution has ended or was cancelled.
- :class:`PlainEnvKeys` (``token_delivery="env"``) passes it as a plain value: no Secret
  Manager needed, but visible to every reader of the execution.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

from google.api_core import exceptions as gexc
from google.cloud import run_v2

from pycrew import TOKEN_ENV
from pycrew_cloudrun.retry import CloudRunError, RetryPolicy, call_api

log = logging.getLogger(__name__)


class KeyDelivery(Protocol):
    """Puts a run's secret where its tasks find it as ``PYCREW_TOKEN``."""

    def token_env(self, secret: str) -> tuple[run_v2.EnvVar, str | None]:
        """The env entry carrying ``secret``, and a receipt to :meth:`release` (or ``None``)."""
        ...

    def release(self, receipt: str) -> None:
        """The run has ended: remove what :meth:`token_env` stored (idempotent)."""
        ...


class PlainEnvKeys:
    """The secret as a plain environment value of the run (visible with ``run.executions.get``)."""

    def token_env(self, secret: str) -> tuple[run_v2.EnvVar, str | None]:
        """``PYCREW_TOKEN=<secret>``; nothing to release."""
        return run_v2.EnvVar(name=TOKEN_ENV, value=secret), None

    def release(self, receipt: str) -> None:
        """Nothing was stored."""


class SecretManagerKeys:
    """One Secret Manager version per run, referenced by number; destroyed when the run ends.

    Args:
        client: a ``secretmanager_v1.SecretManagerServiceClient``.
        secret: the secret's full name, ``projects/<project>/secrets/<id>``.
        policy: retries of transient faults.
        create: create the secret if it does not exist.
        labels: labels of a secret this class creates.
        timeout: the timeout of one request.
    """

    def __init__(
        self,
        client: Any,
        secret: str,
        policy: RetryPolicy,
        create: bool = True,
        labels: dict[str, str] | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.client = client
        self.secret = secret
        self.policy = policy
        self.create = create
        self.labels = labels or {}
        self.timeout = timeout
        self._ready = False

    def ensure_secret(self) -> None:
        """Check that the secret exists; create it (automatic replication) if allowed.

        Raises:
            CloudRunError: it does not exist and may not be created, or a request failed.
        """
        if self._ready:
            return
        from google.cloud import secretmanager_v1

        try:
            call_api(
                f"get Secret Manager secret {self.secret}",
                lambda: self.client.get_secret(name=self.secret, retry=None, timeout=self.timeout),
                self.policy, permission="secretmanager.secrets.get", passthrough=(gexc.NotFound,),
            )
        except gexc.NotFound:
            if not self.create:
                raise CloudRunError(
                    f"the Secret Manager secret {self.secret} (cloudrun option 'secret') does not exist and "
                    f"create_secret is False: create it (gcloud secrets create {self.secret.rsplit('/', 1)[-1]} "
                    f"--replication-policy=automatic) or set create_secret=True"
                ) from None
            project, _, secret_id = self.secret.removeprefix("projects/").partition("/secrets/")
            secret = secretmanager_v1.Secret(
                replication=secretmanager_v1.Replication(automatic=secretmanager_v1.Replication.Automatic()),
                labels=self.labels,
            )
            try:
                call_api(
                    f"create Secret Manager secret {self.secret}",
                    lambda: self.client.create_secret(
                        parent=f"projects/{project}", secret_id=secret_id, secret=secret, retry=None, timeout=self.timeout
                    ),
                    self.policy, permission="secretmanager.secrets.create", passthrough=(gexc.AlreadyExists, gexc.Conflict),
                )
                log.info("cloudrun: created the Secret Manager secret %s for the workers' keys", self.secret)
            except (gexc.AlreadyExists, gexc.Conflict):
                pass  # another launcher created it meanwhile: just as good
        self._ready = True

    def token_env(self, secret: str) -> tuple[run_v2.EnvVar, str | None]:
        """Add ``secret`` as a new version; the env entry references that version by number."""
        from google.cloud import secretmanager_v1

        self.ensure_secret()
        payload = secretmanager_v1.SecretPayload(data=secret.encode())
        version = call_api(
            f"add a version to Secret Manager secret {self.secret}",
            lambda: self.client.add_secret_version(parent=self.secret, payload=payload, retry=None, timeout=self.timeout),
            self.policy, permission="secretmanager.versions.add",
        )
        number = str(version.name).rsplit("/", 1)[-1]
        ref = run_v2.SecretKeySelector(secret=self.secret, version=number)
        return run_v2.EnvVar(name=TOKEN_ENV, value_source=run_v2.EnvVarSource(secret_key_ref=ref)), str(version.name)

    def release(self, receipt: str) -> None:
        """Destroy the version (already destroyed or gone: fine).

        Raises:
            CloudRunError: the request failed.
        """
        try:
            call_api(
                f"destroy Secret Manager version {receipt}",
                lambda: self.client.destroy_secret_version(name=receipt, retry=None, timeout=self.timeout),
                self.policy, permission="secretmanager.versions.destroy",
                passthrough=(gexc.NotFound, gexc.FailedPrecondition, gexc.BadRequest),
            )
        except (gexc.NotFound, gexc.FailedPrecondition, gexc.BadRequest):
            log.debug("cloudrun: secret version %s was already destroyed", receipt)

    def sweep(self, seconds_keep: float) -> int:
        """Destroy enabled versions older than ``seconds_keep`` (left by killed controllers).

        Returns:
            how many versions were destroyed.
        """
        self.ensure_secret()
        cutoff = time.time() - seconds_keep
        versions = call_api(
            f"list versions of Secret Manager secret {self.secret}",
            lambda: list(self.client.list_secret_versions(
                request={"parent": self.secret, "filter": "state:ENABLED"}, retry=None, timeout=self.timeout
            )),
            self.policy, permission="secretmanager.versions.list",
        )
        old = [v.name for v in versions if v.create_time is not None and v.create_time.timestamp() < cutoff and v.state == v.State.ENABLED]
        for name in old:
            self.release(name)
        if old:
            log.info("cloudrun: destroyed %d version(s) of %s older than %g s", len(old), self.secret, seconds_keep)
        return len(old)
