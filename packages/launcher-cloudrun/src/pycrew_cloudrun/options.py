"""The Cloud Run launcher's options: typed and validated when the controller is built."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pycrew import TLS_CA_ENV, TOKEN_ENV, LauncherOptions, OptionsError, require

#: Cloud Run resource ids (jobs): lowercase letters, digits and hyphens, a letter first,
#: no hyphen last, at most 63 characters.
JOB_ID = re.compile(r"^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$")
#: Regions look like ``us-central1``, ``europe-west4``, ``northamerica-northeast1``.
REGION = re.compile(r"^[a-z]+(?:-[a-z]+)+[0-9]+$")
#: Project ids: 6 to 30 characters (optionally ``domain:`` for legacy ids).
PROJECT = re.compile(r"^(?:[a-z][a-z0-9.-]*:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$")
#: CPU limits: ``"1"``, ``"2"``, ``"0.5"``, ``"1000m"``.
CPU = re.compile(r"^(?:[0-9]+(?:\.[0-9]+)?|[0-9]+m)$")
#: Memory limits: ``"512Mi"``, ``"2Gi"``, ``"4G"``.
MEMORY = re.compile(r"^[1-9][0-9]*(?:Ki|Mi|Gi|Ti|k|M|G|T)$")
#: Label keys and values (Google Cloud's rules, ASCII subset).
LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
#: Environment variable names.
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: A Secret Manager secret: its id, or ``projects/<project>/secrets/<id>``.
SECRET = re.compile(r"^(?:projects/[^/\s]+/secrets/)?[A-Za-z0-9_-]{1,255}$")
#: Label keys pycrew sets on the jobs it creates (users must not set them).
RESERVED_LABEL_PREFIXES = ("pycrew", "run.googleapis.com", "cloud.googleapis.com", "serving.knative.dev")
#: Environment variables pycrew or Cloud Run set in a task (users must not set them).
RESERVED_ENV_PREFIXES = ("PYCREW_", "CLOUD_RUN_", "K_")
RESERVED_ENV = frozenset({TOKEN_ENV, TLS_CA_ENV, "PORT"})
#: Cloud Run Jobs' longest task timeout (168 hours).
SECONDS_TIMEOUT_MAX = 7 * 24 * 3600.0


@dataclass(frozen=True)
class CloudRunOptions(LauncherOptions):
    """Options of the ``cloudrun`` launcher: where the Cloud Run job lives and what it runs.

    Workers are the tasks of Cloud Run Jobs executions. pycrew creates one job per
    distinct configuration (``image``, resources, identity, network, labels, env), named
    ``pycrew-<fingerprint>`` unless ``job`` names one, and runs it once per scaling round
    with overrides: the worker arguments, their environment, the task count and timeout.

    Attributes:
        project: the Google Cloud project. Default: ``GOOGLE_CLOUD_PROJECT``,
            ``CLOUDSDK_CORE_PROJECT`` or the Application Default Credentials' project.
        region: the Cloud Run region (``us-central1``); required. Default: the environment
            variable ``CLOUDSDK_RUN_REGION`` (gcloud's ``run/region``), so that ``pycrew monitor
            cloudrun list`` finds the region without options.
        job: the job id to run. If it exists it is used as it is (its image, resources,
            identity and network are the job's; its container command must be the Python
            interpreter). If it does not exist it is created from these options. Default:
            ``pycrew-<fingerprint of the options below>``, created on first use.
        image: the container image of the job pycrew creates (with Python, pycrew and your
            code installed).
        python: the interpreter in the image; the container's command.
        cpu: CPU limit per worker (``"1"``, ``"2"``, ``"4"``, ``"8"``, ``"0.5"``).
        memory: memory limit per worker (``"512Mi"``, ``"2Gi"``).
        max_retries: Cloud Run retries of a failed task (default 0: pycrew retries tasks of
            crashed workers itself, on a new worker).
        parallelism: most tasks of one execution running at once (0: no limit).
        service_account: the identity the workers run as (email).
        vpc_connector: a Serverless VPC Access connector (``projects/P/locations/L/connectors/C``).
        vpc_egress: ``"all-traffic"`` or ``"private-ranges-only"`` through the VPC.
        network: Direct VPC egress: the VPC network.
        subnetwork: Direct VPC egress: the subnetwork.
        network_tags: Direct VPC egress: network tags (for firewall rules).
        execution_environment: ``"gen1"`` or ``"gen2"``.
        labels: labels of the job and of its executions (billing, console filters).
        env: non-secret environment variables of every worker.
        seconds_task_timeout: the Cloud Run task timeout (Cloud Run kills a worker's task
            running longer; not pycrew's per-task ``seconds_timeout``). Default:
            ``seconds_launch + seconds_wall + 60`` if ``seconds_wall`` is finite, else 24 hours.
        token_delivery: how the workers' secret reaches the tasks. ``"secret_manager"``
            (default): a new version of ``secret`` per execution, referenced by version from
            the execution's environment, destroyed when the execution ends. ``"env"``: as a
            plain environment override, visible to anyone who may read the execution
            (``run.executions.get``, e.g. ``roles/run.viewer``).
        secret: the Secret Manager secret holding the per-execution keys (its id in
            ``project``, or ``projects/P/secrets/S``).
        create_secret: create ``secret`` if it does not exist.
        seconds_secret_version_keep: versions of ``secret`` older than this are destroyed
            when a launcher starts (left by controllers that were killed); ``None`` keeps them.
        transport: the client transport, ``"grpc"`` or ``"rest"``.
        api_endpoint: the Cloud Run Admin API endpoint (``http://...`` needs ``"rest"``).
        secret_manager_endpoint: the Secret Manager API endpoint.
        logging_endpoint: the Cloud Logging API endpoint (worker logs are read there).
        client_options: more ``google.api_core.client_options.ClientOptions`` fields.
        credentials: a ``google.auth`` credentials object. Default: Application Default
            Credentials.
        credentials_file: a service account key file; exclusive with ``credentials``.
        seconds_poll: the monitor lists executions at most once per this many seconds.
        seconds_api_timeout: the timeout of one API request.
        api_attempts_max: attempts of a request failing with a transient error (5xx,
            throttling, connection errors) before the launcher gives up.
        seconds_api_retry_max: the most time spent retrying one request.
    """

    owner: ClassVar[str] = "cloudrun"

    project: str | None = None
    region: str | None = field(default_factory=lambda: os.environ.get("CLOUDSDK_RUN_REGION") or None)
    job: str | None = None
    image: str | None = None
    python: str = "python"
    cpu: str | None = None
    memory: str | None = None
    max_retries: int = 0
    parallelism: int = 0
    service_account: str | None = None
    vpc_connector: str | None = None
    vpc_egress: Literal["all-traffic", "private-ranges-only"] | None = None
    network: str | None = None
    subnetwork: str | None = None
    network_tags: tuple[str, ...] = ()
    execution_environment: Literal["gen1", "gen2"] | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    seconds_task_timeout: float | None = None
    token_delivery: Literal["secret_manager", "env"] = "secret_manager"
    secret: str = "pycrew-batch-keys"
    create_secret: bool = True
    seconds_secret_version_keep: float | None = 8 * 24 * 3600.0
    transport: Literal["grpc", "rest"] = "grpc"
    api_endpoint: str | None = None
    secret_manager_endpoint: str | None = None
    logging_endpoint: str | None = None
    client_options: Mapping[str, Any] = field(default_factory=dict)
    credentials: Any = None
    credentials_file: str | None = None
    seconds_poll: float = 1.0
    seconds_api_timeout: float = 60.0
    api_attempts_max: int = 6
    seconds_api_retry_max: float = 120.0

    def validate(self) -> None:
        """Check values beyond their types; raise :class:`pycrew.OptionsError` naming the option."""
        o = self.owner
        require(self.region is not None, o, "region", self.region, "be set to a Cloud Run region such as 'us-central1' (or CLOUDSDK_RUN_REGION in the environment)")
        require(bool(REGION.match(self.region or "")), o, "region", self.region, "be a Cloud Run region such as 'us-central1'")
        if self.project is not None:
            require(bool(PROJECT.match(self.project)), o, "project", self.project, "be a project id (6-30 lowercase letters, digits, hyphens)")
        if self.job is not None:
            require(bool(JOB_ID.match(self.job)), o, "job", self.job, "be a job id: lowercase letters, digits and hyphens, a letter first, at most 63 characters")
        if self.image is not None:
            require(bool(self.image) and not any(c.isspace() for c in self.image), o, "image", self.image, "be a container image reference without spaces")
        require(bool(self.python.strip()), o, "python", self.python, "name the Python interpreter in the image")
        if self.cpu is not None:
            require(bool(CPU.match(self.cpu)), o, "cpu", self.cpu, "be a CPU limit such as '1', '2', '0.5' or '1000m'")
        if self.memory is not None:
            require(bool(MEMORY.match(self.memory)), o, "memory", self.memory, "be a memory limit such as '512Mi' or '2Gi'")
        require(0 <= self.max_retries <= 10, o, "max_retries", self.max_retries, "be between 0 and 10")
        require(self.parallelism >= 0, o, "parallelism", self.parallelism, "be >= 0 (0: no limit)")
        self._validate_network()
        self._validate_labels_and_env()
        if self.seconds_task_timeout is not None:
            require(0 < self.seconds_task_timeout <= SECONDS_TIMEOUT_MAX, o, "seconds_task_timeout", self.seconds_task_timeout, f"be > 0 and <= {SECONDS_TIMEOUT_MAX:g} (168 hours)")
        require(bool(SECRET.match(self.secret)), o, "secret", self.secret, "be a Secret Manager secret id or 'projects/<project>/secrets/<id>'")
        if self.seconds_secret_version_keep is not None:
            require(self.seconds_secret_version_keep >= 3600, o, "seconds_secret_version_keep", self.seconds_secret_version_keep, "be >= 3600 (or None to keep old versions)")
        for name in ("api_endpoint", "secret_manager_endpoint", "logging_endpoint"):
            value = getattr(self, name)
            if value is not None:
                require(bool(value.strip()), o, name, value, "be a host[:port] or URL")
                if value.startswith("http://"):
                    require(self.transport == "rest", o, name, value, "use transport='rest' (gRPC cannot reach a plain http:// endpoint); set transport='rest'")
        if self.credentials is not None and self.credentials_file is not None:
            raise OptionsError("cloudrun options 'credentials' and 'credentials_file' are exclusive; give one")
        require(self.seconds_poll >= 0, o, "seconds_poll", self.seconds_poll, "be >= 0")
        require(self.seconds_api_timeout > 0, o, "seconds_api_timeout", self.seconds_api_timeout, "be > 0")
        require(self.api_attempts_max >= 1, o, "api_attempts_max", self.api_attempts_max, "be >= 1")
        require(self.seconds_api_retry_max >= 0, o, "seconds_api_retry_max", self.seconds_api_retry_max, "be >= 0")

    def _validate_network(self) -> None:
        o = self.owner
        direct = self.network is not None or self.subnetwork is not None
        if self.vpc_connector is not None and direct:
            raise OptionsError(
                "cloudrun option 'vpc_connector' is exclusive with 'network'/'subnetwork' (Direct VPC egress): "
                f"got vpc_connector={self.vpc_connector!r}, network={self.network!r}, subnetwork={self.subnetwork!r}"
            )
        if self.network_tags:
            require(direct, o, "network_tags", self.network_tags, "come with 'network' or 'subnetwork' (Direct VPC egress)")
        if self.vpc_egress is not None:
            require(direct or self.vpc_connector is not None, o, "vpc_egress", self.vpc_egress, "come with 'vpc_connector' or 'network'/'subnetwork'")

    def _validate_labels_and_env(self) -> None:
        o = self.owner
        for key, value in self.labels.items():
            require(bool(LABEL_KEY.match(key)), o, "labels", key, "have keys of lowercase letters, digits, '_' and '-', starting with a letter, at most 63 characters")
            require(not key.startswith(RESERVED_LABEL_PREFIXES), o, "labels", key, f"not use the reserved prefixes {', '.join(RESERVED_LABEL_PREFIXES)}")
            require(bool(LABEL_VALUE.match(value)), o, "labels", value, "have values of lowercase letters, digits, '_' and '-', at most 63 characters")
        for key in self.env:
            require(bool(ENV_NAME.match(key)), o, "env", key, "have names of letters, digits and '_', not starting with a digit")
            require(
                key not in RESERVED_ENV and not key.startswith(RESERVED_ENV_PREFIXES), o, "env", key,
                f"not set variables reserved by pycrew or Cloud Run ({', '.join(sorted(RESERVED_ENV))}, "
                f"{', '.join(p + '*' for p in RESERVED_ENV_PREFIXES)})",
            )

    def parent(self, project: str) -> str:
        """``projects/<project>/locations/<region>``."""
        return f"projects/{project}/locations/{self.region}"

    def secret_name(self, project: str) -> str:
        """The full name of ``secret``: ``projects/<project>/secrets/<id>``."""
        return self.secret if self.secret.startswith("projects/") else f"projects/{project}/secrets/{self.secret}"
