"""End to end on the AWS Batch emulator: ``pycrew.controller("awsbatch", ...)`` runs tasks on
workers that (moto's) AWS Batch started, with their token from Secrets Manager / SSM."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from awsbatch_helpers import SecretInjection, emulator_options

import pycrew
from pycrew.testing.harness import wait_until
from pycrew_awsbatch import AwsBatchClient, AwsBatchOptions
from pycrew_emulators.awsbatch import AwsBatchEmulator

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("private_state")]


def _where() -> dict[str, Any]:
    import os
    import socket

    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "job": os.environ.get("AWS_BATCH_JOB_ID"),
        "token_visible": "PYCREW_TOKEN" in os.environ,
    }


#: Runs on a worker (who and where am I?): defined here, so cloudpickle sends it by value.
where = _where
where.__module__ = "__main__"


def controller(options: dict[str, Any], **kw: Any) -> pycrew.Controller:
    return pycrew.controller("awsbatch", host="127.0.0.1", seconds_launch=60, **options, **kw)


def secret_values(emu: AwsBatchEmulator) -> list[str]:
    """Every value stored in the emulator's Secrets Manager and SSM under pycrew/."""
    sm = emu.boto3_client("secretsmanager", endpoint_url=emu.moto_url)
    values = [
        sm.get_secret_value(SecretId=s["ARN"])["SecretString"]
        for s in sm.list_secrets(Filters=[{"Key": "name", "Values": ["pycrew/"]}])["SecretList"]
    ]
    ssm = emu.boto3_client("ssm", endpoint_url=emu.moto_url)
    params = ssm.describe_parameters(ParameterFilters=[{"Key": "Path", "Option": "Recursive", "Values": ["/pycrew"]}])
    values += [ssm.get_parameter(Name=p["Name"], WithDecryption=True)["Parameter"]["Value"] for p in params["Parameters"]]
    return values


def visible_to_describe(emu: AwsBatchEmulator, job_ids: list[str]) -> str:
    """What DescribeJobs and DescribeJobDefinitions show about the jobs (as one JSON text)."""
    batch = emu.boto3_client("batch", endpoint_url=emu.moto_url)
    jobs = batch.describe_jobs(jobs=job_ids)["jobs"]
    defs = batch.describe_job_definitions(jobDefinitions=sorted({j["jobDefinition"] for j in jobs}))["jobDefinitions"]
    return json.dumps({"jobs": jobs, "definitions": defs}, default=str)


def test_tasks_run_in_array_children_that_the_monitor_lists(
    batch: AwsBatchEmulator, options: dict[str, Any], secret_injection: SecretInjection
) -> None:
    client = AwsBatchClient("awsbatch", AwsBatchOptions.from_mapping(options))
    # Both launched by start() in one call: two submits could reach the scaler in two rounds
    # (each its own array) when the machine is busy.
    with controller(options, workers=2, workers_at_start=2) as c:
        futures = [c.submit(where) for _ in range(2)]
        wait_until(lambda: c.summary().controller.workers_online == 2, 60, lambda: f"workers not online: {c.summary()}")
        results = [f.result(timeout=60) for f in futures]
        listed = {w.id: w for w in client.workers(c.id)}
        secrets = secret_values(batch)
        shown = visible_to_describe(batch, [*listed, *{i.split(":")[0] for i in listed}])
        summary = c.summary()
    assert len(listed) == 2 and all(":" in i for i in listed), f"one array of 2 children expected: {listed}"
    online = {w.instance for w in summary.workers if w.instance}
    assert {w.instance for w in listed.values()} == online
    assert all(w.state == "RUNNING" and w.controller_id == c.id for w in listed.values())
    for r in results:
        assert r["job"] in listed, f"task ran in {r['job']}, not listed: {sorted(listed)}"
        assert not r["token_visible"], "the worker left its token in os.environ"
    assert secret_injection.resolved, "no container got its token from the job definition's secrets"
    assert len(secrets) == 1, f"one secret (the batch key) per batch: {len(secrets)}"
    assert secrets[0] not in shown, "the batch key is visible through DescribeJobs/DescribeJobDefinitions"
    wait_until(lambda: not secret_values(batch), 30, "the batch's secret outlived its workers")
    wait_until(lambda: not client.workers(c.id), 30, "jobs outlived the controller")
    assert client.pending_batches() == 0


@pytest.mark.parametrize("token_store", ["ssm", "environment"])
def test_other_token_stores_run_workers(
    batch: AwsBatchEmulator, execution_role: str, token_store: str, secret_injection: SecretInjection
) -> None:
    options = emulator_options(batch, execution_role, token_store=token_store)
    with controller(options, workers=1) as c:
        result = c.submit(where).result(timeout=60)
        stored = secret_values(batch)
    assert result["job"] and not result["token_visible"]
    if token_store == "ssm":
        assert len(stored) == 1 and secret_injection.resolved
    else:
        assert not stored and not secret_injection.resolved
    wait_until(lambda: not secret_values(batch), 30, "the batch's parameter outlived its worker")


def test_a_round_of_five_in_arrays_of_two_and_a_remainder_all_connect(batch: AwsBatchEmulator, execution_role: str) -> None:
    options = emulator_options(batch, execution_role, array_size_max=2)
    client = AwsBatchClient("awsbatch", AwsBatchOptions.from_mapping(options))
    with controller(options, workers=5) as c:
        for i in range(5):
            c.submit(time_sleep, 0.2 + i * 0)
        wait_until(lambda: c.summary().controller.workers_online == 5, 90, lambda: f"not all 5 online: {c.summary()}")
        listed = client.workers(c.id)
        online = {w.instance for w in c.summary().workers if w.online}
    assert {w.instance for w in listed} == online and len(online) == 5
    assert len({w.id.split(":")[0] for w in listed}) == 3, f"2 arrays of 2 and 1 plain job: {[w.id for w in listed]}"
    assert sorted(w.worker for w in listed if w.worker) == [1, 2, 3, 4, 5]


def time_sleep(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


time_sleep.__module__ = "__main__"


def test_monitor_terminate_also_deletes_stale_secrets(
    batch: AwsBatchEmulator, options: dict[str, Any], monkeypatch: pytest.MonkeyPatch, pycrew_tmp_state_dir: Path
) -> None:
    from awsbatch_helpers import calls, info

    from pycrew_awsbatch import plugin

    batch.faults.stuck = True
    ended = pycrew.controller("local", workers=1).start()
    ended.terminate()  # its record now says it ended: workers launched with its id are orphans
    gone = ended.id
    launcher = AwsBatchClient("awsbatch", AwsBatchOptions.from_mapping(options))  # a process that then dies
    launcher.launch(info(gone), calls(2, controller_id=gone))
    assert len(secret_values(batch)) == 1
    monkeypatch.setattr(plugin, "SECONDS_STALE", 0.0)
    monitor = pycrew.Monitor("awsbatch", **options)
    orphans = [w for w in monitor.orphans() if w.controller_id == gone]
    assert len(orphans) == 2
    monitor.terminate(orphans)
    wait_until(lambda: not monitor.list(gone), 15, "the orphans are still listed")
    assert len(secret_values(batch)) == 1, "their batch was still active during the first sweep"
    monitor.terminate(orphans)  # again (idempotent): now the batch has no active job
    assert secret_values(batch) == [], "a monitor's terminate deletes secrets of batches without active jobs"
