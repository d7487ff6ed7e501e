"""The Cloud Run job pycrew creates from the options, and the per-run overrides of each launch."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from google.cloud import run_v2

from pycrew import WorkerCall
from pycrew_cloudrun.options import SECONDS_TIMEOUT_MAX, CloudRunOptions

#: The options that shape the job; a change of any of them makes another job.
TEMPLATE_FIELDS = (
    "image", "python", "cpu", "memory", "max_retries", "parallelism", "service_account", "vpc_connector",
    "vpc_egress", "network", "subnetwork", "network_tags", "execution_environment", "labels", "env",
)
#: The label every job pycrew creates carries (and so every execution of it).
LAUNCHER_LABEL = "pycrew-launcher"
#: The label holding the fingerprint of the options the job was made from.
CONFIG_LABEL = "pycrew-config"
#: The name of the worker container in jobs pycrew creates.
CONTAINER_NAME = "worker"
#: The task timeout when the workers have no wall time limit: 24 hours.
SECONDS_TIMEOUT_DEFAULT = 24 * 3600.0
#: Extra time a task gets beyond the worker's own limits, before Cloud Run kills it.
SECONDS_TIMEOUT_MARGIN = 60.0


def fingerprint(options: CloudRunOptions) -> str:
    """12 hex digits identifying the job-shaping options (see :data:`TEMPLATE_FIELDS`)."""
    spec: dict[str, Any] = {}
    for name in TEMPLATE_FIELDS:
        value = getattr(options, name)
        if isinstance(value, Mapping):
            value = sorted(value.items())
        elif isinstance(value, tuple):
            value = list(value)
        spec[name] = value
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:12]


def job_id(options: CloudRunOptions) -> str:
    """The job to run: the ``job`` option, or ``pycrew-<fingerprint>``."""
    return options.job or f"pycrew-{fingerprint(options)}"


def labels(options: CloudRunOptions) -> dict[str, str]:
    """Labels of the job pycrew creates and of its executions."""
    return {LAUNCHER_LABEL: "cloudrun", CONFIG_LABEL: fingerprint(options), **dict(options.labels)}


def duration(seconds: float) -> dt.timedelta:
    """Whole seconds (rounded up), for a protobuf ``Duration`` field."""
    return dt.timedelta(seconds=math.ceil(seconds))


def build_job(options: CloudRunOptions) -> run_v2.Job:
    """The job pycrew creates when none exists: one worker container running ``python``.

    Raises:
        ValueError: the options have no ``image``.
    """
    if not options.image:
        raise ValueError("the cloudrun option 'image' is needed to create a job")
    limits = {k: v for k, v in (("cpu", options.cpu), ("memory", options.memory)) if v is not None}
    container = run_v2.Container(
        name=CONTAINER_NAME,
        image=options.image,
        command=[options.python],
        # Run by hand without pycrew's overrides, the job prints the worker's usage and ends.
        args=["-m", "pycrew.worker", "--help"],
        env=[run_v2.EnvVar(name=k, value=v) for k, v in sorted(options.env.items())],
        resources=run_v2.ResourceRequirements(limits=limits) if limits else None,
    )
    task: dict[str, Any] = {
        "containers": [container],
        "max_retries": options.max_retries,
        "timeout": duration(options.seconds_task_timeout or SECONDS_TIMEOUT_DEFAULT),
    }
    if options.service_account:
        task["service_account"] = options.service_account
    if options.execution_environment:
        task["execution_environment"] = f"EXECUTION_ENVIRONMENT_{options.execution_environment.upper()}"
    vpc = vpc_access(options)
    if vpc is not None:
        task["vpc_access"] = vpc
    tags = labels(options)
    return run_v2.Job(
        labels=tags,
        template=run_v2.ExecutionTemplate(
            labels=tags, parallelism=options.parallelism, task_count=1, template=run_v2.TaskTemplate(**task)
        ),
    )


def vpc_access(options: CloudRunOptions) -> run_v2.VpcAccess | None:
    """The VPC settings (connector, or Direct VPC egress), if any."""
    if not (options.vpc_connector or options.network or options.subnetwork):
        return None
    vpc: dict[str, Any] = {}
    if options.vpc_connector:
        vpc["connector"] = options.vpc_connector
    if options.network or options.subnetwork:
        vpc["network_interfaces"] = [
            run_v2.VpcAccess.NetworkInterface(
                network=options.network or "", subnetwork=options.subnetwork or "", tags=list(options.network_tags)
            )
        ]
    if options.vpc_egress:
        vpc["egress"] = "ALL_TRAFFIC" if options.vpc_egress == "all-traffic" else "PRIVATE_RANGES_ONLY"
    return run_v2.VpcAccess(**vpc)


def task_timeout(options: CloudRunOptions, call: WorkerCall) -> float:
    """The task timeout of a run: the option, else the worker's own limits plus a margin.

    ``seconds_launch + seconds_wall + 60`` when the worker has a wall time limit, else 24
    hours; never more than Cloud Run's 168 hours.
    """
    if options.seconds_task_timeout is not None:
        return options.seconds_task_timeout
    wall = call.seconds_wall
    if not math.isfinite(wall):
        return SECONDS_TIMEOUT_DEFAULT
    launch = call.seconds_launch if math.isfinite(call.seconds_launch) else 0.0
    return min(SECONDS_TIMEOUT_MAX, launch + wall + SECONDS_TIMEOUT_MARGIN)


def overrides(
    args: Sequence[str],
    env: Sequence[run_v2.EnvVar],
    task_count: int,
    timeout: float,
    container: str = "",
) -> run_v2.RunJobRequest.Overrides:
    """The overrides of one run: the worker's arguments and environment, task count and timeout."""
    override = run_v2.RunJobRequest.Overrides
    return override(
        container_overrides=[override.ContainerOverride(name=container, args=list(args), env=list(env))],
        task_count=task_count,
        timeout=duration(timeout),
    )
