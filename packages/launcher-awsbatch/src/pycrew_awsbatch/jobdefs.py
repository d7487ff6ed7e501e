"""Job definitions: the helper that registers, describes and deregisters them, and the
per-batch revision that carries the reference to a batch's secret.

AWS Batch takes secrets only from a job definition (``containerProperties.secrets``), never
from submit-time overrides. So for each batch the launcher registers a revision of
``<base name>-pycrew-batch``: a copy of the base job definition (the ``job_definition`` option)
plus ``{"name": "PYCREW_TOKEN", "valueFrom": <the batch's secret>}`` (and the ``image`` and
``execution_role_arn`` options, if given). The revision is deregistered with the batch.
"""

from __future__ import annotations

import copy
import math
from typing import Any, Literal

from pycrew import TOKEN_ENV
from pycrew_awsbatch.api import AwsApi, AwsBatchError
from pycrew_awsbatch.options import memory_mebibytes

#: Suffix of the job definitions the launcher registers per batch.
DERIVED_SUFFIX = "-pycrew-batch"
#: vCPU values Fargate accepts.
FARGATE_CPUS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


def definition_kind(definition: dict[str, Any]) -> Literal["container", "ecs", "eks", "multinode"]:
    """Which kind of job definition this is (where the worker's container is described)."""
    if definition.get("eksProperties"):
        return "eks"
    if definition.get("ecsProperties"):
        return "ecs"
    if definition.get("nodeProperties") or definition.get("type") == "multinode":
        return "multinode"
    return "container"


def filter_to_shape(value: Any, shape: Any) -> Any:
    """``value`` with every key the botocore input ``shape`` does not know removed (recursively).

    Describe replies carry read-only fields (``jobDefinitionArn``, ``revision``, ``status``,
    ``containerOrchestrationType``...) that RegisterJobDefinition rejects.
    """
    kind = getattr(shape, "type_name", "")
    if kind == "structure" and isinstance(value, dict):
        members = shape.members
        return {k: filter_to_shape(v, members[k]) for k, v in value.items() if k in members}
    if kind == "list" and isinstance(value, list):
        return [filter_to_shape(v, shape.member) for v in value]
    if kind == "map" and isinstance(value, dict):
        return {k: filter_to_shape(v, shape.value) for k, v in value.items()}
    return value


def describe_job_definition(api: AwsApi, reference: str) -> dict[str, Any]:
    """The job definition ``reference`` names: ``name`` (its latest ACTIVE revision), ``name:revision`` or ARN.

    Raises:
        AwsBatchError: it does not exist (or has no ACTIVE revision), or the call failed.
    """
    found: list[dict[str, Any]]
    if reference.startswith("arn:"):
        found = api.call("batch", "describe_job_definitions", jobDefinitions=[reference]).get("jobDefinitions", [])
    elif ":" in reference:  # name:revision, looked up by name (moto does not take name:revision here)
        name, _, revision = reference.partition(":")
        found = [d for d in _revisions(api, name, None) if str(d.get("revision")) == revision]
    else:
        found = [d for d in _revisions(api, reference, "ACTIVE") if d.get("status", "ACTIVE") == "ACTIVE"]
    if not found:
        raise AwsBatchError(
            f"job definition {reference!r} not found (or not ACTIVE) in region {api.client('batch').meta.region_name}: "
            f"check the awsbatch option job_definition, or register one with pycrew_awsbatch.register_job_definition()",
            "batch DescribeJobDefinitions", "NotFound",
        )
    latest: dict[str, Any] = max(found, key=lambda d: int(d.get("revision", 0)))
    return dict(latest)


def register_job_definition(
    api: AwsApi,
    name: str,
    image: str,
    *,
    platform: Literal["EC2", "FARGATE"] = "EC2",
    cpus: float = 1.0,
    memory: int | str = "2GiB",
    gpus: int | None = None,
    job_role_arn: str | None = None,
    execution_role_arn: str | None = None,
    log_group: str | None = None,
    log_stream_prefix: str = "pycrew",
    assign_public_ip: bool = False,
    environment: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
    propagate_tags: bool = True,
) -> dict[str, Any]:
    """Register a container job definition for pycrew workers; return ``{name, arn, revision}``.

    Args:
        api: the launcher's AWS API (``AwsBatchClient(options).api``).
        name: the job definition's name (letters, digits, ``-``, ``_``; up to 128).
        image: the container image; it needs Python with pycrew installed.
        platform: ``"EC2"`` or ``"FARGATE"`` (Fargate needs ``execution_role_arn`` and takes
            vCPUs 0.25, 0.5, 1, 2, 4, 8 or 16 with matching memory).
        cpus: default vCPUs per worker.
        memory: default memory per worker (MiB, or ``"4GiB"``...).
        gpus: GPUs per worker (EC2 only).
        job_role_arn: the IAM role the workers' code runs as (its AWS permissions).
        execution_role_arn: the ECS execution role: pulls private images, writes logs, and
            reads pycrew's per-batch secret (needs secretsmanager:GetSecretValue on
            ``arn:aws:secretsmanager:*:*:secret:pycrew/*``, or ssm:GetParameters on
            ``parameter/pycrew/*``).
        log_group: a CloudWatch Logs group for the workers' output (default: Batch's
            ``/aws/batch/job``); it must exist.
        log_stream_prefix: the stream prefix with ``log_group``.
        assign_public_ip: Fargate only: give each task a public IP (needed in public
            subnets without a NAT gateway, to pull images and reach the controller).
        environment: default (non-secret) environment variables.
        tags: tags of the job definition.
        propagate_tags: copy job tags to the ECS tasks.

    Raises:
        ValueError: inconsistent arguments (Fargate without execution role, GPUs on Fargate,
            a vCPU value Fargate does not offer).
        AwsBatchError: AWS refused or failed the registration.
    """
    if platform not in ("EC2", "FARGATE"):
        raise ValueError(f"platform must be 'EC2' or 'FARGATE', got {platform!r}")
    if not (math.isfinite(cpus) and cpus > 0):
        raise ValueError(f"cpus must be > 0, got {cpus!r}")
    resources = [{"type": "VCPU", "value": _number(cpus)}, {"type": "MEMORY", "value": str(memory_mebibytes(memory))}]
    if gpus is not None:
        if platform == "FARGATE":
            raise ValueError("gpus: Fargate has no GPUs; use platform='EC2'")
        resources.append({"type": "GPU", "value": str(gpus)})
    container: dict[str, Any] = {"image": image, "resourceRequirements": resources}
    if environment:
        container["environment"] = [{"name": k, "value": v} for k, v in environment.items()]
    if job_role_arn:
        container["jobRoleArn"] = job_role_arn
    if execution_role_arn:
        container["executionRoleArn"] = execution_role_arn
    if log_group:
        container["logConfiguration"] = {
            "logDriver": "awslogs",
            "options": {"awslogs-group": log_group, "awslogs-stream-prefix": log_stream_prefix},
        }
    if platform == "FARGATE":
        if not execution_role_arn:
            raise ValueError("execution_role_arn is required on Fargate (it pulls the image and reads pycrew's secret)")
        if float(cpus) not in FARGATE_CPUS:
            raise ValueError(f"cpus on Fargate must be one of {FARGATE_CPUS}, got {cpus!r}")
        container["networkConfiguration"] = {"assignPublicIp": "ENABLED" if assign_public_ip else "DISABLED"}
        container["fargatePlatformConfiguration"] = {"platformVersion": "LATEST"}
    request: dict[str, Any] = {
        "jobDefinitionName": name,
        "type": "container",
        "containerProperties": container,
        "platformCapabilities": [platform],
        "propagateTags": propagate_tags,
    }
    if tags:
        request["tags"] = dict(tags)
    reply = api.call("batch", "register_job_definition", **request)
    return {"name": reply["jobDefinitionName"], "arn": reply["jobDefinitionArn"], "revision": reply["revision"]}


def deregister_job_definition(api: AwsApi, reference: str, all_revisions: bool = False) -> int:
    """Deregister a job definition revision (``name:revision`` or ARN), or with ``all_revisions``
    every ACTIVE revision of a name. Already inactive revisions are fine. Returns how many
    DeregisterJobDefinition calls AWS accepted.

    Raises:
        AwsBatchError: the call failed for another reason.
    """
    if all_revisions:
        name = reference.rsplit("/", 1)[-1].split(":")[0]
        revisions = [d["jobDefinitionArn"] for d in active_revisions(api, name)]
    else:
        revisions = [reference]
    done = 0
    for arn in revisions:
        try:
            api.call("batch", "deregister_job_definition", jobDefinition=arn)
            done += 1
        except AwsBatchError as exc:
            if exc.code != "ClientException":
                raise
            found = api.call("batch", "describe_job_definitions", jobDefinitions=[arn]).get("jobDefinitions", [])
            if found and found[0].get("status") == "ACTIVE":
                raise
    return done


def active_revisions(api: AwsApi, name: str) -> list[dict[str, Any]]:
    """Every ACTIVE revision of the job definition ``name``."""
    return [d for d in _revisions(api, name, "ACTIVE") if d.get("status", "ACTIVE") == "ACTIVE"]


def _revisions(api: AwsApi, name: str, status: str | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        params: dict[str, Any] = {"jobDefinitionName": name}
        if status:
            params["status"] = status
        if token:
            params["nextToken"] = token
        page = api.call("batch", "describe_job_definitions", **params)
        out += page.get("jobDefinitions", [])
        token = page.get("nextToken")
        if not token:
            return out


def derived_name(base: dict[str, Any]) -> str:
    """``<base name>-pycrew-batch`` (at most 128 characters), the name of the per-batch revisions.

    Never the base's own name: the base's latest ACTIVE revision must stay the user's.
    """
    return f"{str(base['jobDefinitionName'])[: 128 - len(DERIVED_SUFFIX)]}{DERIVED_SUFFIX}"


def derive(
    api: AwsApi,
    base: dict[str, Any],
    *,
    image: str | None,
    execution_role_arn: str | None,
    secret_reference: str,
    tags: dict[str, str],
) -> dict[str, Any]:
    """The RegisterJobDefinition request of a batch's revision of ``base``.

    Raises:
        AwsBatchError: the base cannot carry a secret (no execution role; EKS; multi-node).
    """
    request = copy.deepcopy(base)
    request["jobDefinitionName"] = derived_name(base)
    base_tags = {k: v for k, v in (base.get("tags") or {}).items() if not k.lower().startswith("aws:")}
    request["tags"] = {**base_tags, **tags}
    kind = definition_kind(base)
    where = f"job definition {base.get('jobDefinitionArn', base.get('jobDefinitionName'))!r}"
    if kind == "multinode":
        raise AwsBatchError(f"{where} is a multi-node parallel job definition; pycrew workers need a container job definition")
    if kind == "container":
        props = request.setdefault("containerProperties", {})
        container, holder = props, props
    elif kind == "ecs":
        holder = request["ecsProperties"]["taskProperties"][0]
        container = holder["containers"][0]
    else:
        if secret_reference:
            raise AwsBatchError(f"{where} is an EKS job definition: use token_store='environment' (Batch takes no secrets for EKS pods)")
        container, holder = request["eksProperties"]["podProperties"]["containers"][0], {}
    if image:
        container["image"] = image
    if execution_role_arn and kind != "eks":
        holder["executionRoleArn"] = execution_role_arn
    if secret_reference:
        if not holder.get("executionRoleArn"):
            raise AwsBatchError(
                f"{where} has no executionRoleArn, which AWS Batch needs to read pycrew's per-batch secret: set the "
                f"awsbatch option execution_role_arn (a role with secretsmanager:GetSecretValue or ssm:GetParameters "
                f"on pycrew's secrets), or register the job definition with one"
            )
        secrets = [s for s in container.get("secrets") or [] if s.get("name") != TOKEN_ENV]
        container["secrets"] = [*secrets, {"name": TOKEN_ENV, "valueFrom": secret_reference}]
    shape = api.client("batch").meta.service_model.operation_model("RegisterJobDefinition").input_shape
    return dict(filter_to_shape(request, shape))


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
