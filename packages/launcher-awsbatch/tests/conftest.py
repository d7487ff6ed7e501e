"""Fixtures for pycrew-awsbatch's tests: the AWS Batch emulator, plus the ECS agent's secret injection.

The emulator (``pycrew_emulators.awsbatch``: moto's Batch server and a fake Docker Engine
that runs containers as local processes) ignores a job definition's ``secrets``: moto
never resolves them. On AWS the ECS agent reads each ``valueFrom`` (Secrets Manager or
SSM) with the job's execution role and puts the values into the container's
environment, or fails the job with ``ResourceInitializationError`` when it cannot. The
``batch`` fixture adds exactly that to the emulator for the test's duration, by wrapping
the fake Docker Engine's ``create``: the secret mechanism of the launcher then runs end to
end, and nothing else changes.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from awsbatch_helpers import EXECUTION_ROLE, SecretInjection, emulator_options

from pycrew_emulators.awsbatch import AwsBatchEmulator


@pytest.fixture
def secret_injection(awsbatch_emulator: AwsBatchEmulator, monkeypatch: pytest.MonkeyPatch) -> SecretInjection:
    """The emulator's containers get their job definition's secrets (see the module docstring)."""
    injection = SecretInjection(awsbatch_emulator)
    injection.install(monkeypatch)
    return injection


@pytest.fixture
def batch(awsbatch_emulator: AwsBatchEmulator, secret_injection: SecretInjection) -> AwsBatchEmulator:
    """The AWS Batch emulator (fresh queue, knobs reset) with secret injection.

    The moto server lives for the whole session, so secrets, parameters and per-batch
    job definition revisions that an earlier test left (a controller killed on purpose, say) are removed first: each test
    counts only its own.
    """
    _forget_stored_tokens(awsbatch_emulator)
    return awsbatch_emulator


def _forget_stored_tokens(emu: AwsBatchEmulator) -> None:
    sm = emu.boto3_client("secretsmanager", endpoint_url=emu.moto_url)
    for secret in sm.list_secrets(Filters=[{"Key": "name", "Values": ["pycrew/"]}])["SecretList"]:
        sm.delete_secret(SecretId=secret["ARN"], ForceDeleteWithoutRecovery=True)
    ssm = emu.boto3_client("ssm", endpoint_url=emu.moto_url)
    params = ssm.describe_parameters(ParameterFilters=[{"Key": "Path", "Option": "Recursive", "Values": ["/pycrew"]}])
    names = [p["Name"] for p in params.get("Parameters", [])]
    for i in range(0, len(names), 10):
        ssm.delete_parameters(Names=names[i : i + 10])
    batch = emu.boto3_client("batch", endpoint_url=emu.moto_url)
    for definition in batch.describe_job_definitions(status="ACTIVE")["jobDefinitions"]:
        if definition["jobDefinitionName"].endswith("-pycrew-batch"):
            batch.deregister_job_definition(jobDefinition=definition["jobDefinitionArn"])


@pytest.fixture(scope="session")
def execution_role(awsbatch_emulator_session: AwsBatchEmulator) -> str:
    """An IAM role for the job definitions' executionRoleArn (moto does not enforce its policy)."""
    iam = awsbatch_emulator_session.boto3_client("iam")
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"Service": "ecs-tasks.amazonaws.com"}, "Action": "sts:AssumeRole"}],
    }
    try:
        return str(iam.create_role(RoleName=EXECUTION_ROLE, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])
    except iam.exceptions.EntityAlreadyExistsException:
        return str(iam.get_role(RoleName=EXECUTION_ROLE)["Role"]["Arn"])


@pytest.fixture
def options(batch: AwsBatchEmulator, execution_role: str) -> dict[str, Any]:
    """Launcher options for the emulator's fresh queue (Secrets Manager token store)."""
    return emulator_options(batch, execution_role)


@pytest.fixture
def private_state(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Keep the controllers' records out of the real home."""
    monkeypatch.setenv("PYCREW_STATE_DIR", str(tmp_path / "state"))
    yield
