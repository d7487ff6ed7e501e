"""The AWS Batch launcher's options: typed, validated, and turned into request fields."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pycrew import TLS_CA_ENV, TLS_SERVER_NAME_ENV, TOKEN_ENV, LauncherOptions, OptionsError, require

#: AWS Batch arrays hold 2..10,000 children.
ARRAY_SIZE_MAX = 10_000
#: Tags per job (AWS limit); pycrew sets at most this many of its own.
TAGS_MAX = 50
PYCREW_TAGS_MAX = 9
#: ``4096``, ``"4096"``, ``"4G"``, ``"4GiB"``, ``"512M"``, ``"1.5GB"``.
_MEMORY = re.compile(r"^\s*([0-9]+(?:\.[0-9]+)?)\s*(?:([KMGT])(?:I?B)?)?\s*$", re.IGNORECASE)
_MEBIBYTES = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}
_REGION = re.compile(r"^[a-z]{2}(?:-[a-z]+)+-[0-9]+$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::[0-9]{12}:role/.+$")
_SHARE = re.compile(r"^[A-Za-z0-9_]{1,255}$")
_TAG_TEXT = re.compile(r"^[\w\s.:/=+\-@]*$")


def memory_mebibytes(value: int | str) -> int:
    """Memory as whole MiB, the unit AWS Batch's ``MEMORY`` resource requirement uses.

    An integer (or a string without unit) is MiB; units ``K``, ``M``, ``G``, ``T`` (with an
    optional ``B`` or ``iB``) are binary: ``"4G"``, ``"4GB"`` and ``"4GiB"`` are all 4096 MiB.
    Fractions are rounded up.

    >>> memory_mebibytes("1.5GiB"), memory_mebibytes(512), memory_mebibytes("2048")
    (1536, 512, 2048)

    Raises:
        ValueError: the value is not a positive size.
    """
    if isinstance(value, bool):
        raise ValueError(f"not a memory size: {value!r}")
    if isinstance(value, int):
        if value < 1:
            raise ValueError(f"memory must be >= 1 MiB, got {value!r}")
        return value
    match = _MEMORY.match(value)
    if match is None:
        raise ValueError(f"not a memory size: {value!r} (write e.g. 4096, '4GiB' or '512M')")
    number, unit = float(match.group(1)), (match.group(2) or "M").upper()
    mib = math.ceil(number * _MEBIBYTES[unit])
    if mib < 1:
        raise ValueError(f"memory must be >= 1 MiB, got {value!r}")
    return mib


def _format_number(value: float) -> str:
    """``2`` for 2.0, ``0.25`` for 0.25: how AWS writes resource values."""
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@dataclass(frozen=True)
class AwsBatchOptions(LauncherOptions):
    """Options of the ``awsbatch`` launcher.

    Each scaling round of ``n >= 2`` workers is one array job (more than
    ``array_size_max`` workers are cut into several arrays); a single worker is a plain
    job. Resources are per worker (per array child) and override the job definition's.

    Attributes:
        job_queue: the job queue (name or ARN). Required.
        job_definition: the base job definition (``name``, ``name:revision`` or ARN) whose
            image, roles, logging and defaults the workers use. Required.
        region: the AWS region (default: the profile's or ``AWS_REGION``).
        profile: a named profile of the AWS config files.
        endpoint_url: another endpoint for every AWS API (a VPC endpoint, an emulator).
        aws_access_key_id: explicit credentials (default: boto3's chain: environment,
            profile, instance or container role); with ``aws_secret_access_key`` and
            optionally ``aws_session_token``. Hidden from ``repr``.
        aws_secret_access_key: see ``aws_access_key_id``.
        aws_session_token: see ``aws_access_key_id``.
        image: a container image that replaces the job definition's (the launcher
            registers a job definition revision per batch with it).
        python: the Python interpreter in the image (``python``, ``python3``, a path).
        cpus: vCPUs per worker (``VCPU`` resource requirement); Fargate accepts 0.25, 0.5,
            1, 2, 4, 8, 16.
        memory: memory per worker: MiB as an integer, or a size with a binary unit
            (``"4GiB"``, ``"512M"``; ``G`` means GiB).
        gpus: GPUs per worker (``GPU`` resource requirement; EC2 compute only).
        env: extra environment variables of the workers (not secret: DescribeJobs shows them).
        tags: extra tags of the jobs (and of the per-batch secret and job definition).
        token_store: where the workers' secret travels: ``"secretsmanager"`` (default: a
            Secrets Manager secret per batch, referenced from a per-batch job definition
            revision), ``"ssm"`` (a SecureString parameter instead), or ``"environment"``
            (the token in the job's container overrides: readable by anyone allowed to call
            batch:DescribeJobs; for test accounts and emulators only).
        execution_role_arn: the ECS execution role that reads the secret when a container
            starts (needs secretsmanager:GetSecretValue or ssm:GetParameters on pycrew's
            secrets); default: the job definition's.
        kms_key_id: a KMS key for the secrets (default: the account's AWS-managed key).
        share_identifier: the fair-share identifier (queues with a scheduling policy).
        scheduling_priority: the scheduling priority override, 0..9999.
        retry_strategy: AWS Batch's ``retryStrategy`` (``{"attempts": 1..10,
            "evaluateOnExit": [...]}``). pycrew relaunches lost workers itself; leave it unset
            unless the job definition's strategy must be overridden.
        propagate_tags: copy the job's tags to its ECS task.
        eks_properties_override: passed as ``eksPropertiesOverride`` (EKS job definitions);
            the worker's command and environment are put into its first container.
        ecs_properties_override: passed as ``ecsPropertiesOverride`` (ECS-properties job
            definitions); the worker's command and environment go into its first container.
        seconds_wall_margin: the job timeout (``attemptDurationSeconds``) is the
            controller's ``seconds_wall`` plus this margin (at least 60 s), so a worker that
            overruns is stopped by AWS too. No timeout when ``seconds_wall`` is infinite.
        array_size_max: the largest array per submission, 2..10,000.
        api_attempts_max: attempts per AWS API call when AWS throttles or fails (5xx).
        seconds_api_retry: total time allowed for those attempts of one call.
        seconds_api_timeout: read timeout of one AWS API request.
    """

    owner: ClassVar[str] = "awsbatch"

    job_queue: str = ""
    job_definition: str = ""
    region: str | None = None
    profile: str | None = None
    endpoint_url: str | None = None
    aws_access_key_id: str | None = field(default=None, repr=False)
    aws_secret_access_key: str | None = field(default=None, repr=False)
    aws_session_token: str | None = field(default=None, repr=False)
    image: str | None = None
    python: str = "python"
    cpus: float | None = None
    memory: int | str | None = None
    gpus: int | None = None
    env: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    token_store: Literal["secretsmanager", "ssm", "environment"] = "secretsmanager"
    execution_role_arn: str | None = None
    kms_key_id: str | None = None
    share_identifier: str | None = None
    scheduling_priority: int | None = None
    retry_strategy: dict[str, Any] | None = None
    propagate_tags: bool = True
    eks_properties_override: dict[str, Any] | None = None
    ecs_properties_override: dict[str, Any] | None = None
    seconds_wall_margin: float = 60.0
    array_size_max: int = ARRAY_SIZE_MAX
    api_attempts_max: int = 8
    seconds_api_retry: float = 60.0
    seconds_api_timeout: float = 60.0

    def validate(self) -> None:
        """Check values beyond their types; raise :class:`pycrew.OptionsError` naming the option."""
        o = self.owner
        require(bool(self.job_queue.strip()), o, "job_queue", self.job_queue, "name a job queue (its name or ARN)")
        require(
            bool(self.job_definition.strip()), o, "job_definition", self.job_definition,
            "name a job definition (name, name:revision or ARN; see pycrew_awsbatch.register_job_definition)",
        )
        require(self.region is None or bool(_REGION.match(self.region)), o, "region", self.region, "be an AWS region such as 'us-east-1'")
        require(
            self.endpoint_url is None or self.endpoint_url.startswith(("http://", "https://")),
            o, "endpoint_url", self.endpoint_url, "be an http:// or https:// URL",
        )
        require(
            (self.aws_access_key_id is None) == (self.aws_secret_access_key is None),
            o, "aws_access_key_id", "<hidden>", "come with aws_secret_access_key (give both or neither)",
        )
        require(
            self.aws_session_token is None or self.aws_access_key_id is not None,
            o, "aws_session_token", "<hidden>", "come with aws_access_key_id and aws_secret_access_key",
        )
        require(
            self.profile is None or self.aws_access_key_id is None,
            o, "profile", self.profile, "not be combined with explicit aws_access_key_id (choose one)",
        )
        require(self.profile is None or bool(self.profile.strip()), o, "profile", self.profile, "be a profile name")
        require(self.image is None or bool(self.image.strip()), o, "image", self.image, "be a container image reference")
        require(bool(self.python.strip()), o, "python", self.python, "be the Python interpreter in the image (e.g. 'python3')")
        if self.cpus is not None:
            ok = math.isfinite(self.cpus) and self.cpus > 0 and float(self.cpus * 4).is_integer()
            require(ok, o, "cpus", self.cpus, "be a positive number of vCPUs in steps of 0.25")
        if self.memory is not None:
            try:
                memory_mebibytes(self.memory)
            except ValueError as exc:
                raise OptionsError(f"{o} option 'memory' must be MiB or a size like '4GiB', got {self.memory!r}: {exc}") from None
        require(self.gpus is None or self.gpus >= 1, o, "gpus", self.gpus, "be >= 1 (or None for no GPU)")
        self._validate_env()
        self._validate_tags()
        require(
            self.execution_role_arn is None or bool(_ROLE_ARN.match(self.execution_role_arn)),
            o, "execution_role_arn", self.execution_role_arn, "be an IAM role ARN (arn:aws:iam::123456789012:role/name)",
        )
        require(self.kms_key_id is None or bool(self.kms_key_id.strip()), o, "kms_key_id", self.kms_key_id, "be a KMS key id or ARN")
        require(
            self.kms_key_id is None or self.token_store != "environment",
            o, "kms_key_id", self.kms_key_id, "be used with token_store 'secretsmanager' or 'ssm'",
        )
        require(
            self.share_identifier is None or bool(_SHARE.match(self.share_identifier)),
            o, "share_identifier", self.share_identifier, "be 1..255 letters, digits or underscores",
        )
        require(
            self.scheduling_priority is None or 0 <= self.scheduling_priority <= 9999,
            o, "scheduling_priority", self.scheduling_priority, "be between 0 and 9999",
        )
        if self.retry_strategy is not None:
            extra = set(self.retry_strategy) - {"attempts", "evaluateOnExit"}
            require(not extra, o, "retry_strategy", self.retry_strategy, "have only the keys 'attempts' and 'evaluateOnExit'")
            attempts = self.retry_strategy.get("attempts", 1)
            require(
                isinstance(attempts, int) and not isinstance(attempts, bool) and 1 <= attempts <= 10,
                o, "retry_strategy", self.retry_strategy, "have 'attempts' between 1 and 10",
            )
        require(
            self.eks_properties_override is None or self.ecs_properties_override is None,
            o, "eks_properties_override", "...", "not be combined with ecs_properties_override",
        )
        require(
            self.eks_properties_override is None or self.token_store == "environment",
            o, "eks_properties_override", "...",
            "be used with token_store='environment' (AWS Batch injects secrets into EKS pods only from Kubernetes secrets)",
        )
        require(
            math.isfinite(self.seconds_wall_margin) and self.seconds_wall_margin >= 0,
            o, "seconds_wall_margin", self.seconds_wall_margin, "be a finite number >= 0",
        )
        require(
            2 <= self.array_size_max <= ARRAY_SIZE_MAX, o, "array_size_max", self.array_size_max,
            f"be between 2 and {ARRAY_SIZE_MAX} (AWS Batch's array size limits)",
        )
        require(1 <= self.api_attempts_max <= 50, o, "api_attempts_max", self.api_attempts_max, "be between 1 and 50")
        for name in ("seconds_api_retry", "seconds_api_timeout"):
            value = getattr(self, name)
            require(math.isfinite(value) and value > 0, o, name, value, "be a finite number > 0")

    def _validate_env(self) -> None:
        o = self.owner
        for key in self.env:
            require(bool(_ENV_NAME.match(key)), o, "env", key, "have names made of letters, digits and underscores")
            require(key != TOKEN_ENV, o, "env", key, f"not set {TOKEN_ENV} (the launcher hands each worker its token)")
            require(
                key not in (TLS_CA_ENV, TLS_SERVER_NAME_ENV), o, "env", key,
                f"not set {key} (pycrew passes it to each worker from the controller's TLS settings)",
            )
            require(not key.startswith("AWS_BATCH"), o, "env", key, "not set AWS_BATCH* variables (reserved by AWS Batch)")

    def _validate_tags(self) -> None:
        o = self.owner
        require(
            len(self.tags) <= TAGS_MAX - PYCREW_TAGS_MAX, o, "tags", len(self.tags),
            f"have at most {TAGS_MAX - PYCREW_TAGS_MAX} entries (AWS allows {TAGS_MAX}, pycrew sets up to {PYCREW_TAGS_MAX})",
        )
        for key, value in self.tags.items():
            require(1 <= len(key) <= 128 and bool(_TAG_TEXT.match(key)), o, "tags", key, "have keys of 1..128 letters, digits, spaces or _.:/=+-@")
            require(len(value) <= 256 and bool(_TAG_TEXT.match(value)), o, "tags", value, "have values of up to 256 letters, digits, spaces or _.:/=+-@")
            require(not key.lower().startswith(("aws:", "pycrew:")), o, "tags", key, "not use the reserved prefixes 'aws:' and 'pycrew:'")

    # -- request fields ------------------------------------------------------------------

    def resource_requirements(self) -> list[dict[str, str]]:
        """The ``resourceRequirements`` override of a worker's container (empty: the job definition's)."""
        out: list[dict[str, str]] = []
        if self.cpus is not None:
            out.append({"type": "VCPU", "value": _format_number(self.cpus)})
        if self.memory is not None:
            out.append({"type": "MEMORY", "value": str(memory_mebibytes(self.memory))})
        if self.gpus is not None:
            out.append({"type": "GPU", "value": str(self.gpus)})
        return out

    def timeout_seconds(self, seconds_wall: float) -> int | None:
        """``attemptDurationSeconds`` for workers with ``seconds_wall``; None if unlimited."""
        if not math.isfinite(seconds_wall):
            return None
        return max(60, math.ceil(seconds_wall + self.seconds_wall_margin))
