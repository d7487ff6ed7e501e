"""The job definition helper, and the per-batch revision that references a batch's secret."""

from __future__ import annotations

from typing import Any

import pytest
from awsbatch_helpers import calls, make_client

from pycrew_awsbatch import AwsApi, AwsBatchClient, AwsBatchError, AwsBatchOptions, jobdefs, plan
from pycrew_emulators.awsbatch import AwsBatchEmulator

ROLE = "arn:aws:iam::123456789012:role/exec"


def offline_api(**extra: Any) -> AwsApi:
    """An API object whose clients are never used for calls (shapes only)."""
    return AwsApi(AwsBatchOptions(job_queue="q", job_definition="d", region="us-east-1",
                                  aws_access_key_id="a", aws_secret_access_key="s", **extra))


def test_register_describe_deregister_round_trip(batch: AwsBatchEmulator, options: dict[str, Any]) -> None:
    client = make_client(options)
    one = client.register_job_definition(
        "pycrew-test-def", "python:3.11-slim", cpus=2, memory="4GiB", gpus=1, job_role_arn=ROLE,
        execution_role_arn=ROLE, log_group="/pycrew/workers", environment={"A": "1"}, tags={"team": "x"},
    )
    two = client.register_job_definition("pycrew-test-def", "python:3.12-slim", cpus=1, memory=1024)
    assert (one["revision"], two["revision"]) == (1, 2)
    assert client.describe_job_definition("pycrew-test-def")["revision"] == 2
    # (moto keeps a name's first platformCapabilities for later revisions: Fargate gets its own name)
    fargate = client.register_job_definition("pycrew-test-fargate", "python:3.12-slim", platform="FARGATE", cpus=0.5,
                                             memory=1024, execution_role_arn=ROLE, assign_public_ip=True)
    latest = client.describe_job_definition(fargate["arn"])
    assert latest["platformCapabilities"] == ["FARGATE"]
    c = latest["containerProperties"]
    assert c["networkConfiguration"] == {"assignPublicIp": "ENABLED"} and c["executionRoleArn"] == ROLE
    assert c["fargatePlatformConfiguration"] == {"platformVersion": "LATEST"}
    client.deregister_job_definition(fargate["arn"])
    first = client.describe_job_definition(one["arn"])
    assert first["containerProperties"]["resourceRequirements"] == [
        {"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "4096"}, {"type": "GPU", "value": "1"},
    ]
    assert first["containerProperties"]["logConfiguration"]["options"]["awslogs-group"] == "/pycrew/workers"
    assert client.describe_job_definition("pycrew-test-def:1")["jobDefinitionArn"] == one["arn"]
    assert client.deregister_job_definition(two["arn"]) == 1
    client.deregister_job_definition(two["arn"])  # deregistering twice is fine
    assert client.describe_job_definition("pycrew-test-def")["revision"] == 1
    assert client.deregister_job_definition("pycrew-test-def", all_revisions=True) == 1
    with pytest.raises(AwsBatchError, match="not found"):
        client.describe_job_definition("pycrew-test-def")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"platform": "FARGATE"}, "execution_role_arn is required"),
        ({"platform": "FARGATE", "execution_role_arn": ROLE, "cpus": 3}, "cpus on Fargate"),
        ({"platform": "FARGATE", "execution_role_arn": ROLE, "gpus": 1}, "Fargate has no GPUs"),
        ({"platform": "LAMBDA"}, "platform"),
        ({"cpus": 0}, "cpus"),
    ],
)
def test_register_refuses_inconsistent_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        jobdefs.register_job_definition(offline_api(), "d", "img", **kwargs)


def container_base(**container: Any) -> dict[str, Any]:
    return {
        "jobDefinitionName": "base", "jobDefinitionArn": "arn:aws:batch:us-east-1:1:job-definition/base:3",
        "revision": 3, "status": "ACTIVE", "type": "container", "containerOrchestrationType": "ECS",
        "tags": {"aws:cloudformation:stack-name": "s", "team": "x"}, "platformCapabilities": ["EC2"],
        "containerProperties": {"image": "python:3.11", "secrets": [{"name": "DB", "valueFrom": "arn:db"}], **container},
    }


def test_the_batch_revision_copies_the_base_and_adds_the_secret_reference() -> None:
    request = jobdefs.derive(offline_api(), container_base(executionRoleArn=ROLE), image="my/image:2",
                             execution_role_arn=None, secret_reference="arn:secret", tags={"pycrew:batch": "b"})
    assert request["jobDefinitionName"] == "base-pycrew-batch"
    assert not {"jobDefinitionArn", "revision", "status", "containerOrchestrationType"} & set(request)
    assert request["tags"] == {"team": "x", "pycrew:batch": "b"}, "aws: tags cannot be set; the others are kept"
    c = request["containerProperties"]
    assert c["image"] == "my/image:2" and c["executionRoleArn"] == ROLE
    assert c["secrets"] == [{"name": "DB", "valueFrom": "arn:db"}, {"name": "PYCREW_TOKEN", "valueFrom": "arn:secret"}]


def test_the_batch_revision_needs_an_execution_role_for_secrets() -> None:
    with pytest.raises(AwsBatchError, match="execution_role_arn"):
        jobdefs.derive(offline_api(), container_base(), image=None, execution_role_arn=None, secret_reference="arn:s", tags={})
    request = jobdefs.derive(offline_api(), container_base(), image=None, execution_role_arn=ROLE, secret_reference="arn:s", tags={})
    assert request["containerProperties"]["executionRoleArn"] == ROLE


def test_multinode_and_eks_definitions_cannot_carry_the_secret() -> None:
    with pytest.raises(AwsBatchError, match="multi-node"):
        jobdefs.derive(offline_api(), {"jobDefinitionName": "m", "type": "multinode", "nodeProperties": {"numNodes": 2}},
                       image=None, execution_role_arn=None, secret_reference="", tags={})
    eks = {"jobDefinitionName": "e", "type": "container",
           "eksProperties": {"podProperties": {"containers": [{"name": "main", "image": "py"}]}}}
    with pytest.raises(AwsBatchError, match="token_store='environment'"):
        jobdefs.derive(offline_api(), eks, image=None, execution_role_arn=None, secret_reference="arn:s", tags={})


def test_ecs_and_eks_definitions_get_the_worker_command_in_their_first_container() -> None:
    ecs = {"jobDefinitionName": "e", "jobDefinitionArn": "arn:e", "type": "container",
           "ecsProperties": {"taskProperties": [{"executionRoleArn": ROLE,
                                                 "containers": [{"name": "main", "image": "py", "essential": True}]}]}}
    request = jobdefs.derive(offline_api(), ecs, image="py:2", execution_role_arn=None, secret_reference="arn:s", tags={})
    container = request["ecsProperties"]["taskProperties"][0]["containers"][0]
    assert container["image"] == "py:2" and container["secrets"] == [{"name": "PYCREW_TOKEN", "valueFrom": "arn:s"}]
    opts = AwsBatchOptions(job_queue="q", job_definition="e", region="us-east-1", cpus=1, memory="1GiB",
                           ecs_properties_override={"taskProperties": [{"containers": [{"environment": [{"name": "X", "value": "1"}]}]}]})
    client = AwsBatchClient("awsbatch", opts, api=offline_api())
    [unit] = plan.plan(calls(2), 10)
    sub = unit.submissions[0]
    over = client.submit_request(unit, 0, sub, "arn:e", ecs, "unit", "c0ffee")["ecsPropertiesOverride"]
    first = over["taskProperties"][0]["containers"][0]
    assert first["name"] == "main" and first["command"][:3] == ["python", "-m", "pycrew.worker"]
    assert first["environment"][0] == {"name": "X", "value": "1"} and first["resourceRequirements"][1]["value"] == "1024"
    eks = {"jobDefinitionName": "k", "type": "container",
           "eksProperties": {"podProperties": {"containers": [{"name": "main", "image": "py"}]}}}
    opts = AwsBatchOptions(job_queue="q", job_definition="k", region="us-east-1", token_store="environment",
                           memory="2GiB", eks_properties_override={"podProperties": {"serviceAccountName": "sa"}})
    client = AwsBatchClient("awsbatch", opts, api=offline_api())
    request = client.submit_request(unit, 0, sub, "arn:k", eks, "unit", "c0ffee")
    pod = request["eksPropertiesOverride"]["podProperties"]
    assert pod["serviceAccountName"] == "sa" and "containerOverrides" not in request
    container = pod["containers"][0]
    assert container["command"] == ["python"] and container["args"][:2] == ["-m", "pycrew.worker"]
    assert {"name": "PYCREW_TOKEN", "value": unit.secret} in container["env"], "EKS: the environment fallback"
    assert container["resources"]["limits"] == {"memory": "2048Mi"}


def test_filter_to_shape_drops_unknown_keys_at_every_level() -> None:
    shape = offline_api().client("batch").meta.service_model.operation_model("RegisterJobDefinition").input_shape
    out = jobdefs.filter_to_shape(
        {"jobDefinitionName": "n", "status": "ACTIVE", "containerProperties": {"image": "i", "bogus": 1,
                                                                               "environment": [{"name": "a", "value": "b", "x": 1}]}},
        shape,
    )
    assert out == {"jobDefinitionName": "n", "containerProperties": {"image": "i", "environment": [{"name": "a", "value": "b"}]}}
