"""The monitor: pycrew's workers only, per controller; job details with reasons; CloudWatch
log lines; terminating a controller's workers; deleting stale secrets and job definitions."""

from __future__ import annotations

from typing import Any

import pytest
from awsbatch_helpers import SecretInjection, calls, info, make_client

from pycrew.testing.harness import wait_until, with_worker_arg
from pycrew_awsbatch import AwsBatchClient
from pycrew_emulators.awsbatch import AwsBatchEmulator


def stored_secrets(emu: AwsBatchEmulator) -> list[str]:
    sm = emu.boto3_client("secretsmanager", endpoint_url=emu.moto_url)
    return [s["Name"] for s in sm.list_secrets(Filters=[{"Key": "name", "Values": ["pycrew/"]}])["SecretList"]]


def active_revisions(emu: AwsBatchEmulator) -> list[str]:
    batch = emu.boto3_client("batch", endpoint_url=emu.moto_url)
    found = batch.describe_job_definitions(jobDefinitionName="pycrew-worker-pycrew-batch", status="ACTIVE")["jobDefinitions"]
    return [d["jobDefinitionArn"] for d in found if d["status"] == "ACTIVE"]


def test_lists_only_pycrew_workers_per_controller_and_terminates_one_controllers(
    batch: AwsBatchEmulator, options: dict[str, Any]
) -> None:
    batch.faults.stuck = True
    client = make_client(options)
    raw = batch.boto3_client("batch", endpoint_url=batch.moto_url)
    lookalike = raw.submit_job(
        jobName="pycrew-lookalike", jobQueue=batch.job_queue, jobDefinition=batch.job_definition,
        containerOverrides={"command": ["python", "-c", "pass"]},
    )["jobId"]
    first = client.launch(info("c1"), calls(2, controller_id="c1"))
    second = client.launch(info("c2"), calls(1, controller_id="c2"))
    try:
        assert {w.handle for w in client.workers("c1")} == set(first)
        assert {w.handle for w in client.workers("c2")} == set(second)
        everything = client.workers(None)
        assert {w.handle for w in everything} == {*first, *second}, "only pycrew's jobs (by tag), never a lookalike"
        assert lookalike not in {w.id for w in everything}
        assert all(w.reason == "" and w.state == "RUNNABLE" and w.started for w in everything)
        assert client.terminate_controller("c1") == 2
        wait_until(lambda: not client.workers("c1"), 15, "c1's workers are still listed")
        assert {w.handle for w in client.workers("c2")} == set(second), "terminating c1 hit c2"
    finally:
        client.terminate([*first, *second])


def test_details_and_log_lines_of_a_worker_that_could_not_connect(batch: AwsBatchEmulator, options: dict[str, Any]) -> None:
    client = make_client(options)
    call = with_worker_arg(calls(1)[0], "--seconds-launch", "1")
    [handle] = client.launch(info(), [call])
    try:
        batch.wait_for_status(handle, "FAILED", timeout=30)
        details = client.details(handle)
        assert details is not None
        assert (details.status, details.exit_code, details.reason) == ("FAILED", 3, "Essential container in task exited")
        assert details.log_group == "/aws/batch/job" and details.log_stream
        assert details.tags["pycrew:instance"] == call.instance
        lines = wait_until(lambda: client.log_lines(handle), 15, "no log lines reached CloudWatch")
        assert any("could not connect" in line for line in lines), lines
        assert client.log_lines(handle, limit=1) == lines[-1:]
        assert client.details("00000000-0000-0000-0000-000000000000") is None
    finally:
        client.terminate([handle])


def test_details_give_the_reason_of_a_failed_image_pull(batch: AwsBatchEmulator, options: dict[str, Any]) -> None:
    batch.runner.missing_images.add("pycrew/missing:1")
    client = make_client(options, image="pycrew/missing:1")
    handles = client.launch(info(), calls(2))
    try:
        for h in handles:
            batch.wait_for_status(h, "FAILED", timeout=30)
        for handle in handles:  # each child has its own reason (the emulator gives each its own job id)
            details = client.details(handle)
            assert details is not None and details.reason.startswith("CannotPullContainerError"), details
            assert details.tags["pycrew:batch"], "array children report their parent's tags"
        assert client.log_lines(handles[0]) == []
    finally:
        client.terminate(handles)


def test_stale_secrets_and_job_definitions_are_deleted_but_active_batches_kept(
    batch: AwsBatchEmulator, options: dict[str, Any], secret_injection: SecretInjection
) -> None:
    batch.faults.stuck = True
    dead = make_client(options)
    gone = dead.launch(info("dead"), calls(2, controller_id="dead"))
    alive = dead.launch(info("alive"), calls(1, controller_id="alive"))
    try:
        batch.terminate_active_jobs(batch.job_queue)  # ...but not through `dead` (a process that died)
        other = AwsBatchClient("awsbatch", dead.options)  # a monitor in another process
        again = other.launch(info("alive"), calls(1, controller_id="alive"))
        assert len(stored_secrets(batch)) == 3 and len(active_revisions(batch)) == 3
        assert other.delete_stale_resources(older_than=3600) == 0, "nothing is an hour old"
        assert other.delete_stale_resources(older_than=0) == 4, "the two ended batches: 2 secrets + 2 revisions"
        assert len(stored_secrets(batch)) == 1 and len(active_revisions(batch)) == 1, "the queued batch keeps its secret"
        assert other.delete_stale_resources(older_than=0) == 0
        other.terminate(again)
        assert not stored_secrets(batch) and not active_revisions(batch)
    finally:
        dead.terminate([*gone, *alive])


@pytest.mark.parametrize("token_store", ["ssm"])
def test_stale_parameters_are_deleted_too(batch: AwsBatchEmulator, options: dict[str, Any], token_store: str) -> None:
    batch.faults.stuck = True
    client = make_client(options, token_store=token_store)
    handles = client.launch(info(), calls(1))
    batch.terminate_active_jobs(batch.job_queue)
    ssm = batch.boto3_client("ssm", endpoint_url=batch.moto_url)
    assert len(ssm.describe_parameters()["Parameters"]) >= 1
    fresh = AwsBatchClient("awsbatch", client.options)
    assert fresh.delete_stale_resources(older_than=0) == 2
    names = [p["Name"] for p in ssm.describe_parameters()["Parameters"]]
    assert not [n for n in names if n.startswith("/pycrew/")], names
    client.terminate(handles)  # idempotent: the job ended, the parameter is gone
