"""Where the workers' secret travels: one secret per batch in Secrets Manager or SSM.

AWS Batch hands a secret to a container only through the job definition's ``secrets``
(``{"name": "PYCREW_TOKEN", "valueFrom": <secret ARN or parameter name>}``), resolved by the
ECS agent with the job's execution role when the container starts; submit-time overrides
cannot carry secrets, and everything in them is readable through DescribeJobs. So each
batch of workers gets:

- a secret holding the batch key (arrays: every child derives its own token from it and
  its index) or the single worker's token, created here, and
- a job definition revision that references it (see :mod:`pycrew_awsbatch.jobdefs`).

Both are deleted when every worker of the batch has been terminated, or later by
:meth:`pycrew_awsbatch.AwsBatchClient.delete_stale_resources`.

The ``environment`` store is the documented fallback: no secret; the token sits in the
container overrides where anyone with batch:DescribeJobs can read it.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from pycrew_awsbatch.api import AwsApi, AwsBatchError, error_code
from pycrew_awsbatch.plan import LAUNCHER_TAG

_NAME_UNSAFE = re.compile(r"[^A-Za-z0-9_+=.@-]")


@dataclass(frozen=True)
class StoredToken:
    """One of pycrew's stored secrets, as :meth:`TokenStore.list` sees it.

    Attributes:
        reference: what a job definition's ``valueFrom`` names (an ARN or a parameter name).
        name: the secret's or parameter's name.
        tags: its tags.
        created: when it was created (epoch seconds), if known.
    """

    reference: str
    name: str
    tags: dict[str, str]
    created: float | None


def _epoch(value: Any) -> float | None:
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, (int, float)):
        return float(value)
    return None


class TokenStore:
    """The ``environment`` store, and the base class of the secret stores.

    Args:
        api: the AWS API of the launcher's options.
        launcher_name: the launcher's name (tags and secrets carry it).
        kms_key_id: an optional KMS key for the secret stores.
    """

    #: The ``token_store`` option value.
    kind: ClassVar[str] = "environment"
    #: Whether workers get the secret through a job definition's ``secrets``.
    uses_secrets: ClassVar[bool] = False

    def __init__(self, api: AwsApi, launcher_name: str, kms_key_id: str | None = None) -> None:
        self.api = api
        self.launcher_name = launcher_name
        self.kms_key_id = kms_key_id

    def secret_name(self, controller_id: str, unit: str) -> str:
        """The secret's name for one batch (``unit``) of one controller."""
        return f"pycrew/{_NAME_UNSAFE.sub('-', controller_id or 'none')}/{_NAME_UNSAFE.sub('-', unit)}"

    def create(self, name: str, value: str, tags: dict[str, str]) -> str:
        """Store ``value``; return the reference for a job definition's ``valueFrom`` ("" here)."""
        return ""

    def delete(self, reference: str) -> None:
        """Delete a stored secret; a secret that is already gone is fine."""

    def list(self) -> list[StoredToken]:
        """pycrew's stored secrets of this launcher (none here)."""
        return []


class SecretsManagerStore(TokenStore):
    """One Secrets Manager secret per batch, named ``pycrew/<controller id>/<batch>``."""

    kind: ClassVar[str] = "secretsmanager"
    uses_secrets: ClassVar[bool] = True

    def create(self, name: str, value: str, tags: dict[str, str]) -> str:
        """Create the secret (idempotent on retries: one client request token); return its ARN."""
        request: dict[str, Any] = {
            "Name": name,
            "SecretString": value,
            "ClientRequestToken": str(uuid.uuid4()),
            "Description": "pycrew worker token of one batch of AWS Batch workers; deleted with them",
            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
        }
        if self.kms_key_id:
            request["KmsKeyId"] = self.kms_key_id
        client = self.api.client("secretsmanager")

        def attempt(ambiguous: bool) -> str:
            try:
                return str(client.create_secret(**request)["ARN"])
            except Exception as exc:
                if ambiguous and error_code(exc) == "ResourceExistsException":
                    return str(client.describe_secret(SecretId=name)["ARN"])  # our earlier attempt made it
                raise

        return self.api.retry(attempt, "secretsmanager", "create_secret")

    def delete(self, reference: str) -> None:
        """Delete at once, without the recovery window (the token is worthless afterwards)."""
        client = self.api.client("secretsmanager")

        def attempt(_ambiguous: bool) -> None:
            try:
                client.delete_secret(SecretId=reference, ForceDeleteWithoutRecovery=True)
            except Exception as exc:
                if error_code(exc) == "ResourceNotFoundException":
                    return  # already gone
                if error_code(exc) == "InvalidRequestException" and "deletion" in str(exc).lower():
                    return  # already scheduled for deletion
                raise

        self.api.retry(attempt, "secretsmanager", "delete_secret")

    def list(self) -> list[StoredToken]:
        """Secrets named ``pycrew/...`` tagged with this launcher's name."""
        out: list[StoredToken] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {"Filters": [{"Key": "name", "Values": ["pycrew/"]}, {"Key": "tag-key", "Values": [LAUNCHER_TAG]}]}
            if token:
                params["NextToken"] = token
            page = self.api.call("secretsmanager", "list_secrets", **params)
            for s in page.get("SecretList", []):
                tags = {t["Key"]: t["Value"] for t in s.get("Tags", [])}
                if tags.get(LAUNCHER_TAG) == self.launcher_name and str(s.get("Name", "")).startswith("pycrew/"):
                    out.append(StoredToken(str(s["ARN"]), str(s["Name"]), tags, _epoch(s.get("CreatedDate"))))
            token = page.get("NextToken")
            if not token:
                return out


class SsmParameterStore(TokenStore):
    """One SSM SecureString parameter per batch, named ``/pycrew/<controller id>/<batch>``."""

    kind: ClassVar[str] = "ssm"
    uses_secrets: ClassVar[bool] = True

    def secret_name(self, controller_id: str, unit: str) -> str:
        """``/pycrew/<controller id>/<batch>`` (a parameter path)."""
        return "/" + super().secret_name(controller_id, unit)

    def create(self, name: str, value: str, tags: dict[str, str]) -> str:
        """Create the parameter; return its name (``valueFrom`` accepts it within one region)."""
        request: dict[str, Any] = {
            "Name": name,
            "Value": value,
            "Type": "SecureString",
            "Description": "pycrew worker token of one batch of AWS Batch workers",
            "Tags": [{"Key": k, "Value": v} for k, v in tags.items()],
        }
        if self.kms_key_id:
            request["KeyId"] = self.kms_key_id
        client = self.api.client("ssm")

        def attempt(ambiguous: bool) -> str:
            try:
                client.put_parameter(**request)
            except Exception as exc:
                if not (ambiguous and error_code(exc) == "ParameterAlreadyExists"):
                    raise
            return name

        return self.api.retry(attempt, "ssm", "put_parameter")

    def delete(self, reference: str) -> None:
        """Delete the parameter; one that is already gone is fine."""
        client = self.api.client("ssm")

        def attempt(_ambiguous: bool) -> None:
            try:
                client.delete_parameter(Name=reference)
            except Exception as exc:
                if error_code(exc) != "ParameterNotFound":
                    raise

        self.api.retry(attempt, "ssm", "delete_parameter")

    def list(self) -> list[StoredToken]:
        """Parameters under ``/pycrew/`` tagged with this launcher's name."""
        out: list[StoredToken] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {
                "ParameterFilters": [
                    {"Key": "Path", "Option": "Recursive", "Values": ["/pycrew"]},
                    {"Key": f"tag:{LAUNCHER_TAG}", "Values": [self.launcher_name]},
                ],
            }
            if token:
                params["NextToken"] = token
            page = self.api.call("ssm", "describe_parameters", **params)
            for p in page.get("Parameters", []):
                name = str(p["Name"])
                tags = {
                    t["Key"]: t["Value"]
                    for t in self.api.call("ssm", "list_tags_for_resource", ResourceType="Parameter", ResourceId=name).get("TagList", [])
                }
                if tags.get(LAUNCHER_TAG) == self.launcher_name:
                    out.append(StoredToken(name, name, tags, _epoch(p.get("LastModifiedDate"))))
            token = page.get("NextToken")
            if not token:
                return out


STORES: dict[str, type[TokenStore]] = {s.kind: s for s in (TokenStore, SecretsManagerStore, SsmParameterStore)}


def token_store(kind: str, api: AwsApi, launcher_name: str, kms_key_id: str | None = None) -> TokenStore:
    """The store for the ``token_store`` option value ``kind``.

    Raises:
        AwsBatchError: unknown kind (the options' validation normally catches it first).
    """
    cls = STORES.get(kind)
    if cls is None:
        raise AwsBatchError(f"unknown awsbatch token_store {kind!r}; choose one of {sorted(STORES)}")
    return cls(api, launcher_name, kms_key_id)
