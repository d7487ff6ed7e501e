"""AwsBatchClient against the emulator: submissions, retries under faults, termination, clean-up."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from awsbatch_helpers import SecretInjection, calls, emulator_options, info, make_client
from botocore.exceptions import ConnectionClosedError

from pycrew.testing.harness import with_worker_arg
from pycrew_awsbatch import AwsBatchError, plan
from pycrew_awsbatch.api import classify
from pycrew_emulators.awsbatch import AwsBatchEmulator


def jobs(emu: AwsBatchEmulator, status: str) -> list[dict[str, Any]]:
    batch = emu.boto3_client("batch", endpoint_url=emu.moto_url)
    return list(batch.list_jobs(jobQueue=emu.job_queue, jobStatus=status)["jobSummaryList"])


def test_a_batch_of_five_is_two_arrays_and_a_plain_job_in_call_order(batch: AwsBatchEmulator, options: dict[str, Any]) -> None:
    batch.faults.stuck = True  # keep them queued: this test looks at the submissions only
    client = make_client(options, array_size_max=2)
    handles = client.launch(info(), calls(5))
    try:
        parents = {h.split(":")[0] for h in handles}
        assert len(parents) == 3 and [h.count(":") for h in handles] == [1, 1, 1, 1, 0], handles
        assert handles[0].endswith(":0") and handles[1].endswith(":1") and handles[2].endswith(":0")
        described = client.describe(sorted(parents))
        sizes = sorted((d.get("arrayProperties") or {}).get("size", 1) for d in described.values())
        assert sizes == [1, 2, 2]
        plain = described[handles[4]]
        env = {e["name"]: e["value"] for e in plain["container"]["environment"]}
        assert env["PYCREW_BATCH_INDEX"] == "4" and "PYCREW_TOKEN" not in env
        assert plain["tags"]["pycrew:instance"] == "feedbeef0001-4" and plain["tags"]["pycrew:worker"] == "5"
        assert "timeout" not in plain, "seconds_wall=inf: no attemptDurationSeconds"
        listed = {w.handle: w for w in client.workers("c0ffee")}
        assert set(listed) == set(handles)
        assert [listed[h].instance for h in handles] == [c.instance for c in calls(5)]
        assert [listed[h].worker for h in handles] == [1, 2, 3, 4, 5]
        assert all(w.state == "RUNNABLE" for w in listed.values())
    finally:
        client.terminate(handles)
    assert client.pending_batches() == 0


def test_requests_carry_resources_timeout_priority_share_and_retry(batch: AwsBatchEmulator, options: dict[str, Any]) -> None:
    client = make_client(
        options, cpus=2, memory="3GiB", scheduling_priority=7, share_identifier="team_a",
        retry_strategy={"attempts": 2}, tags={"project": "x"}, env={"FOO": "bar"}, propagate_tags=False,
    )
    base = client.base_definition()
    one = calls(1)[0]
    call = with_worker_arg(one, "--seconds-wall", "600")
    [unit] = plan.plan([call], 10)
    request = client.submit_request(unit, 0, unit.submissions[0], "arn:def", base, "unit", "c0ffee")
    assert request["containerOverrides"]["resourceRequirements"] == [
        {"type": "VCPU", "value": "2"}, {"type": "MEMORY", "value": "3072"},
    ]
    assert request["containerOverrides"]["command"][:3] == ["python", "-m", "pycrew.worker"]
    assert {"name": "FOO", "value": "bar"} in request["containerOverrides"]["environment"]
    assert request["timeout"] == {"attemptDurationSeconds": 660}
    assert (request["schedulingPriorityOverride"], request["shareIdentifier"], request["retryStrategy"]) == (7, "team_a", {"attempts": 2})
    assert request["tags"]["project"] == "x" and request["propagateTags"] is False
    assert one.token not in json.dumps(request)


def test_throttling_and_server_errors_are_retried_with_backoff(batch: AwsBatchEmulator, options: dict[str, Any]) -> None:
    sleeps: list[float] = []
    client = make_client(options, sleeps)
    batch.faults.stuck = True
    batch.faults.throttle_next(2, only="SubmitJob")
    batch.faults.fail_next(1, status=503, code="ServiceUnavailable", only="RegisterJobDefinition")
    batch.faults.fail_next(1, status=500, code="ServerException", only="DescribeJobs")
    handles = client.launch(info(), calls(2))
    try:
        assert len(handles) == 2
        assert len(sleeps) == 3 and sleeps[1] > 0 and all(s <= 10 for s in sleeps), sleeps
        assert len(jobs(batch, "RUNNABLE")) + len(jobs(batch, "SUBMITTED")) >= 1
        client.terminate(handles)  # its DescribeJobs gets the 500 first
        assert len(sleeps) == 4
    finally:
        client.terminate(handles)


def test_exhausted_retries_fail_clearly_and_leave_nothing(batch: AwsBatchEmulator, options: dict[str, Any], secret_injection: SecretInjection) -> None:
    client = make_client(options, api_attempts_max=3)
    batch.faults.throttle_next(10, only="SubmitJob")
    with pytest.raises(AwsBatchError) as err:
        client.launch(info(), calls(2))
    text = str(err.value)
    assert "batch SubmitJob failed after 3 attempt(s)" in text and "ThrottlingException" in text and "api_attempts_max" in text
    assert err.value.attempts == 3
    assert err.value.transient, "core tries the launch again for a while (on 33e082d: not transient)"
    sm = batch.boto3_client("secretsmanager", endpoint_url=batch.moto_url)
    assert not sm.list_secrets(Filters=[{"Key": "name", "Values": ["pycrew/"]}])["SecretList"], "the secret leaked"
    batch_api = batch.boto3_client("batch", endpoint_url=batch.moto_url)
    revisions = batch_api.describe_job_definitions(jobDefinitionName="pycrew-worker-pycrew-batch", status="ACTIVE")["jobDefinitions"]
    assert not revisions, "the per-batch job definition revision leaked"


def test_time_budget_bounds_the_retries(batch: AwsBatchEmulator, options: dict[str, Any]) -> None:
    client = make_client(options, seconds_api_retry=0.05)
    batch.faults.fail_next(10, status=502, code="BadGateway", only="DescribeJobs")
    with pytest.raises(AwsBatchError, match=r"failed after .* attempt"):
        client.describe(["nope"])


def test_an_endpoint_that_cannot_be_reached_is_transient_and_says_so(options: dict[str, Any]) -> None:
    """On 33e082d: "AWS kept failing; retry later", and not transient (a short outage failed the work)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    client = make_client({**options, "endpoint_url": f"http://127.0.0.1:{closed}"}, api_attempts_max=2)
    with pytest.raises(AwsBatchError, match="AWS could not be reached") as err:
        client.describe(["nope"])
    assert err.value.transient


def test_terminate_with_aws_failing_gives_up_after_one_job_s_retries(batch: AwsBatchEmulator, options: dict[str, Any]) -> None:
    """Before, each job got a whole retry budget of its own (N jobs: N times seconds_api_retry, past
    seconds_terminate), and the error was not transient (an ERROR with a traceback in core)."""
    batch.faults.stuck = True  # the jobs stay queued
    client = make_client(options, api_attempts_max=2)
    handles = client.launch(info(), calls(3))
    try:
        batch.faults.fail_next(100, status=500, code="ServerException", only=["CancelJob", "TerminateJob"])
        with pytest.raises(AwsBatchError, match=r"could not terminate 3 of 3 AWS Batch job\(s\) \(2 more not tried") as err:
            client.terminate(handles)
        assert err.value.transient, "core keeps the handles and tries again at the last termination"
        assert len(batch.faults.injected) == 2, f"one job's 2 attempts, then no more: {batch.faults.injected}"
    finally:
        batch.faults.reset()
        batch.faults.stuck = False
        client.terminate(handles)


def test_a_lost_submit_response_does_not_submit_twice(batch: AwsBatchEmulator, options: dict[str, Any]) -> None:
    batch.faults.stuck = True
    client = make_client(options)
    lost = []

    def lose_first_response(**kwargs: Any) -> None:
        if not lost:
            lost.append(1)
            raise ConnectionClosedError(endpoint_url="http://emulator")

    client.api.client("batch").meta.events.register("after-call.batch.SubmitJob", lose_first_response)
    handles = client.launch(info(), calls(1))
    try:
        assert lost and len(jobs(batch, "RUNNABLE") + jobs(batch, "SUBMITTED") + jobs(batch, "PENDING")) == 1
    finally:
        client.terminate(handles)


def test_client_errors_are_not_retried_and_name_the_problem(batch: AwsBatchEmulator, options: dict[str, Any]) -> None:
    sleeps: list[float] = []
    with pytest.raises(AwsBatchError, match="no-such-queue") as err:
        make_client(options, sleeps, job_queue="no-such-queue").launch(info(), calls(1))
    assert err.value.code == "ClientException" and not sleeps and not err.value.transient
    with pytest.raises(AwsBatchError, match="job definition 'missing-def' not found"):
        make_client(options, job_definition="missing-def").launch(info(), calls(1))


def test_secrets_need_an_execution_role(batch: AwsBatchEmulator, options: dict[str, Any]) -> None:
    no_role = {k: v for k, v in options.items() if k != "execution_role_arn"}
    with pytest.raises(AwsBatchError, match="execution_role_arn"):
        make_client(no_role).launch(info(), calls(1))


def test_classify_retryable_errors() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError

    def err(code: str, status: int) -> ClientError:
        return ClientError({"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "Op")

    assert classify(err("TooManyRequestsException", 429)) == (True, False)
    assert classify(err("ThrottlingException", 400)) == (True, False)
    assert classify(err("ServerException", 500)) == (True, True)
    assert classify(err("ClientException", 400)) == (False, False)
    assert classify(EndpointConnectionError(endpoint_url="x")) == (True, False)
    assert classify(ValueError("x")) == (False, False)


def test_terminate_cancels_queued_jobs_and_deletes_the_batch_secret(
    batch: AwsBatchEmulator, options: dict[str, Any], secret_injection: SecretInjection
) -> None:
    batch.faults.stuck = True
    client = make_client(options)
    handles = client.launch(info(), calls(3))
    sm = batch.boto3_client("secretsmanager", endpoint_url=batch.moto_url)
    assert len(sm.list_secrets(Filters=[{"Key": "name", "Values": ["pycrew/"]}])["SecretList"]) == 1
    client.terminate(handles[:2])
    assert client.pending_batches() == 1, "one worker of the batch is still queued: keep its secret"
    client.terminate(handles[2:])
    for h in handles:
        job = batch.wait_for_status(h, "FAILED", timeout=10)
        assert job["statusReason"] == "terminated by pycrew"
        assert batch.pid_of(h) is None, "a cancelled job never starts"
    assert not sm.list_secrets(Filters=[{"Key": "name", "Values": ["pycrew/"]}])["SecretList"]
    assert client.pending_batches() == 0


def test_terminate_stops_running_workers_and_is_idempotent(
    batch: AwsBatchEmulator, options: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    client = make_client(options)
    handles = client.launch(info(), calls(2))
    for h in handles:
        batch.wait_for_status(h, "RUNNING", timeout=30)
    client.terminate(handles)
    for h in handles:
        assert batch.wait_for_status(h, "FAILED", timeout=15)["container"]["exitCode"] == 137
    with caplog.at_level(logging.DEBUG, logger="pycrew_awsbatch"):
        client.terminate(handles)
        client.terminate([*handles, *handles, "00000000-0000-0000-0000-000000000000", "nope:3"])
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    with pytest.raises(ValueError, match="job ids"):
        client.terminate(["two words"])


def test_environment_token_store_is_visible_and_needs_no_secret(batch: AwsBatchEmulator, execution_role: str) -> None:
    batch.faults.stuck = True
    client = make_client(emulator_options(batch, execution_role, token_store="environment", execution_role_arn=None))
    handles = client.launch(info(), calls(2))
    try:
        job = client.describe([handles[0].split(":")[0]])[handles[0].split(":")[0]]
        env = {e["name"]: e["value"] for e in job["container"]["environment"]}
        assert env["PYCREW_TOKEN"] == "b" * 64, "the documented fallback: the batch key in the overrides"
        assert job["jobDefinition"] == batch.job_definition_arn, "no per-batch job definition needed"
    finally:
        client.terminate(handles)
