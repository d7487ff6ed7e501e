"""CloudRunOptions validation, the job pycrew builds from them, and the run's task timeout."""

from __future__ import annotations

import math
from typing import Any

import pytest
from google.cloud import run_v2

import pycrew
from pycrew_cloudrun import CloudRunOptions
from pycrew_cloudrun.jobspec import build_job, fingerprint, job_id, task_timeout


def options(**kw: Any) -> CloudRunOptions:
    return CloudRunOptions.from_mapping({"project": "my-project", "region": "us-central1", **kw})


def test_region_is_required_with_an_example(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CLOUDSDK_RUN_REGION", raising=False)
    with pytest.raises(pycrew.OptionsError, match=r"'region' must be set to a Cloud Run region such as 'us-central1'"):
        CloudRunOptions(project="my-project")


def test_region_defaults_to_gclouds_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CLOUDSDK_RUN_REGION", "europe-west4")
    assert CloudRunOptions(project="my-project").region == "europe-west4"


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ({"region": "Central"}, "region"),
        ({"project": "X"}, "project"),
        ({"job": "Job_1"}, "job"),
        ({"image": "a b"}, "image"),
        ({"cpu": "two"}, "cpu"),
        ({"memory": "4 GB"}, "memory"),
        ({"max_retries": 11}, "max_retries"),
        ({"parallelism": -1}, "parallelism"),
        ({"labels": {"Team": "x"}}, "labels"),
        ({"labels": {"pycrew-run": "x"}}, "labels"),
        ({"labels": {"team": "UPPER"}}, "labels"),
        ({"env": {"PYCREW_TOKEN": "x"}}, "env"),
        ({"env": {"CLOUD_RUN_TASK_INDEX": "1"}}, "env"),
        ({"env": {"1X": "1"}}, "env"),
        ({"seconds_task_timeout": 0}, "seconds_task_timeout"),
        ({"seconds_task_timeout": 8 * 24 * 3600.0}, "seconds_task_timeout"),
        ({"secret": "a/b"}, "secret"),
        ({"api_endpoint": "http://127.0.0.1:1"}, "api_endpoint"),
        ({"network_tags": ("t",)}, "network_tags"),
        ({"vpc_egress": "all-traffic"}, "vpc_egress"),
        ({"vpc_connector": "c", "subnetwork": "s"}, "vpc_connector"),
        ({"credentials": object(), "credentials_file": "/k.json"}, "credentials_file"),
        ({"token_delivery": "argv"}, "token_delivery"),
    ],
)
def test_bad_values_name_the_option(bad: dict[str, Any], named: str) -> None:
    with pytest.raises(pycrew.OptionsError) as info:
        options(**bad)
    assert named in str(info.value), str(info.value)


def test_http_endpoint_with_rest_transport_is_fine() -> None:
    o = options(api_endpoint="http://127.0.0.1:1", transport="rest", labels={"team": "ml"}, env={"MODE": "x"})
    assert o.parent("p") == "projects/p/locations/us-central1"
    assert o.secret_name("p") == "projects/p/secrets/pycrew-batch-keys"
    assert options(secret="projects/q/secrets/s").secret_name("p") == "projects/q/secrets/s"


def test_fingerprint_follows_the_job_shaping_options_only() -> None:
    base = options(image="img:1")
    assert fingerprint(base) == fingerprint(options(image="img:1", seconds_poll=5, api_endpoint="x:1"))
    assert fingerprint(base) != fingerprint(options(image="img:2"))
    assert fingerprint(base) != fingerprint(options(image="img:1", labels={"team": "ml"}))
    assert job_id(base) == f"pycrew-{fingerprint(base)}"
    assert job_id(options(job="mine")) == "mine"


def test_job_has_no_retries_python_command_labels_and_resources() -> None:
    o = options(
        image="img:1", python="python3", cpu="2", memory="4Gi", service_account="w@p.iam.gserviceaccount.com",
        network="default", subnetwork="sub", network_tags=("pycrew",), vpc_egress="all-traffic",
        execution_environment="gen2", labels={"team": "ml"}, env={"MODE": "x"}, parallelism=3,
    )
    job = build_job(o)
    task = job.template.template
    (container,) = task.containers
    assert "max_retries" in task and task.max_retries == 0
    assert list(container.command) == ["python3"] and container.image == "img:1"
    assert dict(container.resources.limits) == {"cpu": "2", "memory": "4Gi"}
    assert [(e.name, e.value) for e in container.env] == [("MODE", "x")]
    assert job.template.labels["pycrew-launcher"] == "cloudrun" and job.template.labels["team"] == "ml"
    assert job.template.labels["pycrew-config"] == fingerprint(o) and dict(job.labels) == dict(job.template.labels)
    assert task.service_account == "w@p.iam.gserviceaccount.com"
    assert task.execution_environment == run_v2.ExecutionEnvironment.EXECUTION_ENVIRONMENT_GEN2
    (nic,) = task.vpc_access.network_interfaces
    assert (nic.network, nic.subnetwork, list(nic.tags)) == ("default", "sub", ["pycrew"])
    assert task.vpc_access.egress == run_v2.VpcAccess.VpcEgress.ALL_TRAFFIC
    assert job.template.parallelism == 3


def test_job_needs_an_image() -> None:
    with pytest.raises(ValueError, match="'image'"):
        build_job(options())


def _call(**seconds: float) -> pycrew.WorkerCall:
    command = pycrew.WorkerCommand(url="tcp://127.0.0.1:9", instance="ab12", **seconds)
    return pycrew.WorkerCall.from_command(command, python="python", env={}, token="t", name="w")


def test_task_timeout_follows_the_workers_limits() -> None:
    call = _call(seconds_wall=100.0, seconds_launch=30.0)
    assert task_timeout(options(), call) == 190.0
    assert task_timeout(options(), _call(seconds_wall=math.inf, seconds_launch=30.0)) == 24 * 3600.0
    assert task_timeout(options(seconds_task_timeout=50.0), call) == 50.0
    assert task_timeout(options(), _call(seconds_wall=1e9)) == 7 * 24 * 3600.0
    assert task_timeout(options(), _call(seconds_wall=100.0, seconds_launch=math.inf)) == 160.0
