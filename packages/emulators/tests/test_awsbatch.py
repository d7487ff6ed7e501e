"""Tests of the AWS Batch emulator, driven through boto3 only."""

from __future__ import annotations

import time
from pathlib import Path

import psutil
import pytest

pytest.importorskip("moto")
botocore_config = pytest.importorskip("botocore.config")
botocore_exceptions = pytest.importorskip("botocore.exceptions")

from pycrew_emulators.awsbatch import AwsBatchEmulator

NO_RETRIES = botocore_config.Config(retries={"total_max_attempts": 1})
RETRIES = botocore_config.Config(retries={"mode": "standard", "total_max_attempts": 4})


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def submit(emu: AwsBatchEmulator, code: str, name: str = "job", **kwargs: object) -> str:
    overrides = {"command": ["python", "-c", code]}
    reply = emu.boto3_client("batch").submit_job(
        jobName=name,
        jobQueue=emu.job_queue,
        jobDefinition=emu.job_definition,
        containerOverrides=overrides,
        **kwargs,
    )
    return str(reply["jobId"])


def test_job_runs_and_statuses_progress(awsbatch_emulator: AwsBatchEmulator, tmp_path: Path) -> None:
    emu = awsbatch_emulator
    # Each status lasts >= 1 s, so the first describe may come up to ~2 s after the submit
    # (a loaded CI machine once took longer than the 0.6 s that 0.3 s per status allowed).
    emu.set_transition("time", seconds=1.0)
    out = tmp_path / "out.txt"
    job_id = submit(emu, f"import os; open({str(out)!r}, 'w').write(os.environ['AWS_BATCH_JOB_ID'])")
    seen = emu.status_history(job_id)
    # Every status in order; SUBMITTED may pass before the first describe on a busy machine.
    order = ["SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED"]
    assert seen in (order, order[1:]), seen
    assert out.read_text() == job_id
    job = emu.boto3_client("batch").describe_jobs(jobs=[job_id])["jobs"][0]
    assert job["status"] == "SUCCEEDED"
    assert job["container"]["exitCode"] == 0
    assert job["statusReason"] == "Essential container in task exited"
    assert job["startedAt"] <= job["stoppedAt"]


def test_nonzero_exit_fails_with_exit_code(awsbatch_emulator: AwsBatchEmulator) -> None:
    emu = awsbatch_emulator
    job_id = submit(emu, "import sys; sys.exit(3)")
    job = emu.wait_for_status(job_id, "FAILED")
    assert job["container"]["exitCode"] == 3
    batch = emu.boto3_client("batch")
    listed = batch.list_jobs(jobQueue=emu.job_queue, jobStatus="FAILED")["jobSummaryList"]
    assert [(j["jobId"], j["container"]["exitCode"]) for j in listed] == [(job_id, 3)]


def test_terminate_job_kills_the_process(awsbatch_emulator: AwsBatchEmulator) -> None:
    emu = awsbatch_emulator
    job_id = submit(emu, "import time; print('started', flush=True); time.sleep(60)")
    emu.wait_for_status(job_id, "RUNNING")
    deadline = time.monotonic() + 10
    while (pid := emu.pid_of(job_id)) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pid is not None and not gone(pid)
    emu.boto3_client("batch").terminate_job(jobId=job_id, reason="test says stop")
    job = emu.wait_for_status(job_id, "FAILED", timeout=10)
    assert job["statusReason"] == "test says stop"
    assert job["container"]["exitCode"] == 137
    assert gone(pid)


def test_logs_reach_cloudwatch(awsbatch_emulator: AwsBatchEmulator) -> None:
    emu = awsbatch_emulator
    job_id = submit(
        emu,
        "import sys; print('to stdout'); print('to stderr', file=sys.stderr); print('last')",
    )
    job = emu.wait_for_status(job_id, "SUCCEEDED")
    stream = job["container"]["logStreamName"]
    assert stream == f"{emu.job_definition}/default/{job_id}"
    events = emu.boto3_client("logs").get_log_events(logGroupName="/aws/batch/job", logStreamName=stream)["events"]
    assert [e["message"] for e in events] == ["to stdout", "to stderr", "last"]


def test_array_job_runs_children_with_index(awsbatch_emulator: AwsBatchEmulator, tmp_path: Path) -> None:
    emu = awsbatch_emulator
    code = (
        f"import os; open(os.path.join({str(tmp_path)!r}, os.environ['AWS_BATCH_JOB_ARRAY_INDEX']), 'w')"
        ".write(os.environ['AWS_BATCH_JOB_ID'])"
    )
    parent = submit(emu, code, arrayProperties={"size": 3})
    job = emu.wait_for_status(parent, "SUCCEEDED")
    assert job["arrayProperties"]["size"] == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0", "1", "2"]
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == {str(i): f"{parent}:{i}" for i in range(3)}, (
        "each child sees its own AWS_BATCH_JOB_ID"
    )
    children = emu.boto3_client("batch").list_jobs(arrayJobId=parent, jobStatus="SUCCEEDED")["jobSummaryList"]
    assert sorted(c["jobId"] for c in children) == [f"{parent}:{i}" for i in range(3)]


def test_array_job_fails_if_a_child_fails(awsbatch_emulator: AwsBatchEmulator) -> None:
    emu = awsbatch_emulator
    parent = submit(
        emu,
        "import os, sys; sys.exit(int(os.environ['AWS_BATCH_JOB_ARRAY_INDEX']) == 1)",
        arrayProperties={"size": 2},
    )
    job = emu.wait_for_status(parent, ("SUCCEEDED", "FAILED"))
    assert job["status"] == "FAILED"
    assert job["arrayProperties"]["statusSummary"]["FAILED"] == 1


def test_throttling_fault(awsbatch_emulator: AwsBatchEmulator) -> None:
    emu = awsbatch_emulator
    emu.faults.throttle_next(1)
    with pytest.raises(botocore_exceptions.ClientError) as info:
        emu.boto3_client("batch", config=NO_RETRIES).describe_job_queues(jobQueues=[emu.job_queue])
    assert info.value.response["Error"]["Code"] == "ThrottlingException"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
    # boto3's own retries get through a throttled answer.
    emu.faults.throttle_next(1)
    queues = emu.boto3_client("batch", config=RETRIES).describe_job_queues(jobQueues=[emu.job_queue])
    assert queues["jobQueues"][0]["jobQueueName"] == emu.job_queue
    assert [op for op, _ in emu.faults.injected] == ["DescribeJobQueues"] * 2


def test_server_error_fault_only_for_one_operation(
    awsbatch_emulator: AwsBatchEmulator,
) -> None:
    emu = awsbatch_emulator
    emu.faults.fail_next(1, status=503, code="ServiceUnavailable", message="try later", only="SubmitJob")
    batch = emu.boto3_client("batch", config=NO_RETRIES)
    batch.describe_job_queues(jobQueues=[emu.job_queue])  # not faulted
    with pytest.raises(botocore_exceptions.ClientError) as info:
        batch.submit_job(jobName="job", jobQueue=emu.job_queue, jobDefinition=emu.job_definition)
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 503
    assert info.value.response["Error"] == {
        "Code": "ServiceUnavailable",
        "Message": "try later",
    }
    emu.faults.fail_next(1, status=500, code="ServerException")
    job_id = emu.boto3_client("batch", config=RETRIES).submit_job(
        jobName="job", jobQueue=emu.job_queue, jobDefinition=emu.job_definition
    )["jobId"]
    emu.wait_for_status(job_id, "SUCCEEDED")


def test_delay_fault(awsbatch_emulator: AwsBatchEmulator) -> None:
    emu = awsbatch_emulator
    batch = emu.boto3_client("batch")
    emu.faults.delay(0.3)
    t0 = time.monotonic()
    batch.describe_job_queues(jobQueues=[emu.job_queue])
    assert time.monotonic() - t0 >= 0.3


def test_stuck_jobs_stay_runnable(awsbatch_emulator: AwsBatchEmulator) -> None:
    emu = awsbatch_emulator
    emu.faults.stuck = True
    held = submit(emu, "pass", name="held")
    cancelled = submit(emu, "pass", name="cancelled")
    emu.wait_for_status(held, "RUNNABLE")
    emu.wait_for_status(cancelled, "RUNNABLE")
    time.sleep(1.0)  # moto's job thread polls every 0.5 s
    batch = emu.boto3_client("batch")
    assert {j["jobId"] for j in batch.list_jobs(jobQueue=emu.job_queue, jobStatus="RUNNABLE")["jobSummaryList"]} == {
        held,
        cancelled,
    }
    batch.cancel_job(jobId=cancelled, reason="gave up waiting")
    job = emu.wait_for_status(cancelled, "FAILED", timeout=10)
    assert job["statusReason"] == "gave up waiting"
    emu.faults.stuck = False
    emu.wait_for_status(held, "SUCCEEDED")
    assert emu.pid_of(cancelled) is None, emu.docker and emu.docker.containers()  # its container never started
    assert emu.pid_of(held) is not None


def test_disabled_compute_environment_keeps_jobs_runnable(
    awsbatch_emulator: AwsBatchEmulator,
) -> None:
    emu = awsbatch_emulator
    batch = emu.boto3_client("batch")
    batch.update_compute_environment(computeEnvironment=emu.compute_environment, state="DISABLED")
    job_id = submit(emu, "pass")
    emu.wait_for_status(job_id, "RUNNABLE")
    time.sleep(0.7)
    assert emu.wait_for_status(job_id, "RUNNABLE", timeout=0)["status"] == "RUNNABLE"
    batch.update_compute_environment(computeEnvironment=emu.compute_environment, state="ENABLED")
    emu.wait_for_status(job_id, "SUCCEEDED")


def test_image_pull_error_fails_the_job(awsbatch_emulator: AwsBatchEmulator) -> None:
    emu = awsbatch_emulator
    emu.runner.missing_images.add("ghcr.io/nope/missing:1")
    batch = emu.boto3_client("batch")
    jd = batch.register_job_definition(
        jobDefinitionName="missing-image",
        type="container",
        containerProperties={
            "image": "ghcr.io/nope/missing:1",
            "command": ["python", "-c", "pass"],
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "512"},
            ],
        },
    )
    job_id = batch.submit_job(jobName="job", jobQueue=emu.job_queue, jobDefinition=jd["jobDefinitionArn"])["jobId"]
    job = emu.wait_for_status(job_id)
    assert job["status"] == "FAILED"
    assert job["statusReason"].startswith("CannotPullContainerError:"), job["statusReason"]
    assert emu.pid_of(job_id) is None


def test_missing_executable_fails_the_job(awsbatch_emulator: AwsBatchEmulator) -> None:
    emu = awsbatch_emulator
    job_id = emu.boto3_client("batch").submit_job(
        jobName="job",
        jobQueue=emu.job_queue,
        jobDefinition=emu.job_definition,
        containerOverrides={"command": ["no-such-executable-here"]},
    )["jobId"]
    job = emu.wait_for_status(job_id)
    assert job["status"] == "FAILED"
    assert job["statusReason"].startswith("CannotStartContainerError:"), job["statusReason"]


def test_standalone_emulator_leaves_no_process(tmp_path: Path) -> None:
    emu = AwsBatchEmulator.start(log_dir=tmp_path)
    pids: list[int] = []
    try:
        assert emu._proc is not None
        pids.append(emu._proc.pid)
        job_id = emu.boto3_client("batch").submit_job(
            jobName="job",
            jobQueue=emu.job_queue,
            jobDefinition=emu.job_definition,
            containerOverrides={"command": ["python", "-c", "import time; time.sleep(60)"]},
        )["jobId"]
        emu.wait_for_status(job_id, "RUNNING")
        deadline = time.monotonic() + 10
        while (pid := emu.pid_of(job_id)) is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert pid is not None
        pids.append(pid)
    finally:
        emu.close()
    assert all(gone(p) for p in pids)
    emu.close()  # idempotent


def test_a_container_over_its_memory_requirement_is_oom_killed(awsbatch_emulator: AwsBatchEmulator) -> None:
    """AWS Batch: MEMORY is the container's hard limit; above it the job fails with exit code 137
    and OutOfMemoryError, as its statusReason and its container's reason."""
    emu = awsbatch_emulator
    fill = "import time; b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(60)"
    overrides = {"command": ["python", "-c", fill], "resourceRequirements": [{"type": "MEMORY", "value": "200"}]}
    job_id = emu.boto3_client("batch").submit_job(
        jobName="greedy", jobQueue=emu.job_queue, jobDefinition=emu.job_definition, containerOverrides=overrides
    )["jobId"]
    job = emu.wait_for_status(job_id, "FAILED")
    assert job["statusReason"] == "OutOfMemoryError: Container killed due to memory usage", job
    assert job["container"]["reason"] == job["statusReason"] and job["container"]["exitCode"] == 137, job["container"]


def test_a_container_within_its_memory_requirement_runs(awsbatch_emulator: AwsBatchEmulator) -> None:
    emu = awsbatch_emulator
    job_id = submit(emu, "b = bytearray(50 * 2**20); b[::4096] = b'x' * len(b[::4096])")
    job = emu.wait_for_status(job_id, "SUCCEEDED")
    assert "reason" not in job["container"], job["container"]
