"""AwsBatchOptions: types, validation with clear messages, and the request fields they make."""

from __future__ import annotations

import math
from typing import Any

import pytest

import pycrew
from pycrew_awsbatch import AwsBatchOptions, memory_mebibytes

BASE = {"job_queue": "q", "job_definition": "pycrew-worker"}


def opts(**kw: Any) -> AwsBatchOptions:
    return AwsBatchOptions.from_mapping({**BASE, **kw})


@pytest.mark.parametrize(
    ("value", "mib"),
    [(512, 512), ("512", 512), ("4G", 4096), ("4GB", 4096), ("4GiB", 4096), ("1.5g", 1536), ("512M", 512), ("1T", 1048576), ("100K", 1)],
)
def test_memory_units_are_binary_and_rounded_up_to_mib(value: int | str, mib: int) -> None:
    assert memory_mebibytes(value) == mib


@pytest.mark.parametrize("value", ["", "lots", "4 X", "-1G", 0, -5, "0"])
def test_memory_rejects_non_sizes(value: int | str) -> None:
    with pytest.raises(ValueError):
        memory_mebibytes(value)


def test_resource_requirements_follow_cpus_memory_gpus() -> None:
    assert opts().resource_requirements() == []
    assert opts(cpus=0.25, memory="2GiB", gpus=1).resource_requirements() == [
        {"type": "VCPU", "value": "0.25"},
        {"type": "MEMORY", "value": "2048"},
        {"type": "GPU", "value": "1"},
    ]
    assert opts(cpus=2).resource_requirements() == [{"type": "VCPU", "value": "2"}]


def test_timeout_is_seconds_wall_plus_margin_and_at_least_a_minute() -> None:
    assert opts().timeout_seconds(math.inf) is None
    assert opts().timeout_seconds(10) == 70
    assert opts(seconds_wall_margin=0).timeout_seconds(10) == 60
    assert opts(seconds_wall_margin=5).timeout_seconds(3600.2) == 3606


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ({"job_queue": " "}, "job_queue"),
        ({"job_definition": ""}, "job_definition"),
        ({"region": "US East"}, "region"),
        ({"endpoint_url": "localhost:4566"}, "endpoint_url"),
        ({"aws_access_key_id": "AKIA"}, "aws_access_key_id"),
        ({"aws_session_token": "t"}, "aws_session_token"),
        ({"profile": "p", "aws_access_key_id": "a", "aws_secret_access_key": "s"}, "profile"),
        ({"python": ""}, "python"),
        ({"cpus": 0}, "cpus"),
        ({"cpus": 0.3}, "cpus"),
        ({"memory": "lots"}, "memory"),
        ({"gpus": 0}, "gpus"),
        ({"env": {"PYCREW_TOKEN": "x"}}, "env"),
        ({"env": {"PYCREW_TLS_CA": "x"}}, "env"),
        ({"env": {"PYCREW_TLS_SERVER_NAME": "x"}}, "env"),
        ({"env": {"AWS_BATCH_JOB_ID": "x"}}, "env"),
        ({"env": {"1BAD": "x"}}, "env"),
        ({"tags": {"pycrew:batch": "x"}}, "tags"),
        ({"tags": {"aws:x": "x"}}, "tags"),
        ({"tags": {"k": "v" * 257}}, "tags"),
        ({"tags": {f"k{i}": "v" for i in range(42)}}, "tags"),
        ({"token_store": "vault"}, "token_store"),
        ({"execution_role_arn": "my-role"}, "execution_role_arn"),
        ({"kms_key_id": "k", "token_store": "environment"}, "kms_key_id"),
        ({"share_identifier": "a b"}, "share_identifier"),
        ({"scheduling_priority": 10000}, "scheduling_priority"),
        ({"retry_strategy": {"attempts": 11}}, "retry_strategy"),
        ({"retry_strategy": {"tries": 2}}, "retry_strategy"),
        ({"eks_properties_override": {}, "ecs_properties_override": {}}, "eks_properties_override"),
        ({"eks_properties_override": {}}, "eks_properties_override"),
        ({"seconds_wall_margin": -1}, "seconds_wall_margin"),
        ({"array_size_max": 1}, "array_size_max"),
        ({"array_size_max": 10001}, "array_size_max"),
        ({"api_attempts_max": 0}, "api_attempts_max"),
        ({"seconds_api_retry": math.inf}, "seconds_api_retry"),
    ],
)
def test_bad_values_fail_naming_the_option(bad: dict[str, Any], named: str) -> None:
    with pytest.raises(pycrew.OptionsError) as err:
        opts(**bad)
    assert named in str(err.value), str(err.value)


def test_unknown_option_suggests_the_close_one() -> None:
    with pytest.raises(pycrew.OptionsError, match="did you mean 'job_queue'"):
        AwsBatchOptions.from_mapping({**BASE, "job_queu": "x"})


def test_credentials_are_hidden_from_repr() -> None:
    o = opts(aws_access_key_id="AKIAEXAMPLE", aws_secret_access_key="SECRETEXAMPLE", aws_session_token="TOKENEXAMPLE")
    assert "EXAMPLE" not in repr(o)


def test_defaults_pick_secrets_manager_and_full_size_arrays() -> None:
    o = opts()
    assert (o.token_store, o.array_size_max, o.python, o.propagate_tags) == ("secretsmanager", 10000, "python", True)
