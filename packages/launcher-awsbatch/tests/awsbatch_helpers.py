"""Helpers of pycrew-awsbatch's tests: the ECS agent's secret injection for the emulator,
options that reach it, and worker calls that never connect (for launch/terminate tests)."""

from __future__ import annotations

from typing import Any

import pytest

import pycrew
from pycrew_awsbatch import AwsApi, AwsBatchClient, AwsBatchOptions
from pycrew_emulators.awsbatch import AwsBatchEmulator

EXECUTION_ROLE = "pycrew-test-execution-role"


def _job_id(env: list[str]) -> str | None:
    for item in env:
        name, _, value = item.partition("=")
        if name == "AWS_BATCH_JOB_ID":
            return value
    return None


class SecretInjection:
    """Resolves job definition ``secrets`` into container environments, as the ECS agent does.

    Attributes:
        resolved: ``(job id, variable names)`` per container that got secrets.
        failures: ``(job id, message)`` per container whose secrets could not be read.
    """

    def __init__(self, emulator: AwsBatchEmulator) -> None:
        self.emulator = emulator
        self.batch = emulator.boto3_client("batch", endpoint_url=emulator.moto_url)
        self.secretsmanager = emulator.boto3_client("secretsmanager", endpoint_url=emulator.moto_url)
        self.ssm = emulator.boto3_client("ssm", endpoint_url=emulator.moto_url)
        self.resolved: list[tuple[str, list[str]]] = []
        self.failures: list[tuple[str, str]] = []

    def secrets_of(self, job_id: str) -> list[dict[str, str]]:
        """The ``secrets`` of the job definition the job was submitted with."""
        jobs = self.batch.describe_jobs(jobs=[job_id])["jobs"]
        if not jobs:
            return []
        arn = jobs[0]["jobDefinition"]
        found = self.batch.describe_job_definitions(jobDefinitions=[arn])["jobDefinitions"]
        if not found:
            return []
        return list((found[0].get("containerProperties") or {}).get("secrets") or [])

    def value(self, reference: str) -> str:
        """The value behind a ``valueFrom`` (Secrets Manager ARN, or SSM name/ARN)."""
        if reference.startswith("arn:aws:secretsmanager:"):
            return str(self.secretsmanager.get_secret_value(SecretId=reference)["SecretString"])
        name = reference.split(":parameter", 1)[1] if reference.startswith("arn:aws:ssm:") else reference
        return str(self.ssm.get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"])

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        docker = self.emulator.docker
        assert docker is not None
        original = docker.create

        def create(name: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
            env = list(body.get("Env") or [])
            job_id = _job_id(env)
            if job_id:
                try:
                    values = {s["name"]: self.value(s["valueFrom"]) for s in self.secrets_of(job_id)}
                except Exception as exc:
                    message = f"ResourceInitializationError: unable to pull secrets or registry auth: {exc}"
                    self.failures.append((job_id, message))
                    docker._set_job_info(job_id, reason=message)
                    return 500, {"message": message}
                if values:
                    self.resolved.append((job_id, sorted(values)))
                    body = {**body, "Env": [*env, *(f"{k}={v}" for k, v in values.items())]}
            return original(name, body)

        monkeypatch.setattr(docker, "create", create)


def emulator_options(emulator: AwsBatchEmulator, execution_role: str, **extra: Any) -> dict[str, Any]:
    """Launcher options that reach the emulator (explicit endpoint, region and dummy keys)."""
    return {
        "job_queue": emulator.job_queue,
        "job_definition": emulator.job_definition,
        "endpoint_url": emulator.endpoint_url,
        "region": emulator.region,
        "aws_access_key_id": emulator.access_key,
        "aws_secret_access_key": emulator.secret_key,
        "execution_role_arn": execution_role,
        "python": "python",
        **extra,
    }


UNREACHABLE = "tcp://127.0.0.1:9"  # the discard port: nothing listens there


def make_client(options: dict[str, Any], sleeps: list[float] | None = None, **extra: Any) -> AwsBatchClient:
    opts = AwsBatchOptions.from_mapping({**options, **extra})
    api = AwsApi(opts, sleep=sleeps.append if sleeps is not None else (lambda _s: None))
    return AwsBatchClient("awsbatch", opts, api=api)


def calls(n: int, seconds_launch: float = 300, controller_id: str = "c0ffee") -> list[pycrew.WorkerCall]:
    """n worker calls of one batch whose workers never connect (they wait ``seconds_launch``)."""
    prefix = "feedbeef0001-"
    out = []
    for k in range(n):
        args = ("-m", "pycrew.worker", "--url", UNREACHABLE, "--instance", f"{prefix}{k}", "--worker", str(k + 1),
                "--launcher", "awsbatch", "--controller", "unit", "--controller-id", controller_id,
                "--seconds-idle", "inf", "--seconds-wall", "inf", "--tasks-max", "inf", "--seconds-launch", str(seconds_launch))
        out.append(pycrew.WorkerCall(
            args=args, python="python", env={}, token="0" * 64, name=f"w{k}", launcher="awsbatch", worker=k + 1,
            instance=f"{prefix}{k}", controller="unit", controller_id=controller_id,
            batch_key="b" * 64 if n > 1 else "", batch_index=k, batch_size=n, instance_prefix=prefix if n > 1 else "",
            seconds_launch=seconds_launch,
        ))
    return out


def info(controller_id: str = "c0ffee") -> pycrew.LauncherInfo:
    return pycrew.LauncherInfo("awsbatch", AwsBatchOptions(job_queue="q", job_definition="d"), "unit", controller_id)
