"""Tests of the Cloud Run Admin API v2 emulator, driven only through the official client."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest

run_v2 = pytest.importorskip("google.cloud.run_v2")

from google.api_core import exceptions
from google.api_core.future.polling import DEFAULT_POLLING

from pycrew_emulators.cloudrun import CloudRunEmulator

pytestmark = pytest.mark.timeout(60)

#: LRO polling fast enough for tests (the client's default first waits 1 s).
FAST = DEFAULT_POLLING.with_delay(initial=0.05, maximum=0.2, multiplier=1.5)
State = run_v2.Condition.State

TASK_SCRIPT = """\
import json, os, sys, time
idx, attempt = os.environ["CLOUD_RUN_TASK_INDEX"], os.environ["CLOUD_RUN_TASK_ATTEMPT"]
record = {
    "args": sys.argv[1:],
    "env": {k: v for k, v in os.environ.items() if k.startswith(("CLOUD_RUN_", "X_"))},
    "pid": os.getpid(),
}
with open(os.path.join(os.environ["OUT"], f"task-{idx}-{attempt}.json"), "w") as f:
    json.dump(record, f)
print("task", idx, "attempt", attempt, flush=True)
mode = sys.argv[1] if len(sys.argv) > 1 else "ok"
if mode == "sleep":
    time.sleep(60)
if mode == "fail" or (mode == "fail-odd" and int(idx) % 2):
    sys.exit(3)
"""


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """Directory the tasks write their records to."""
    d = tmp_path / "out"
    d.mkdir()
    return d


def create_job(
    emu: CloudRunEmulator,
    job_id: str,
    out: Path,
    *,
    args: list[str] | None = None,
    task_count: int = 1,
    max_retries: int = 0,
    env: list[Any] | None = None,
    labels: dict[str, str] | None = None,
    image: str = "us-docker.pkg.dev/test/pycrew/worker:latest",
) -> Any:
    """Create a job running TASK_SCRIPT through the client; return the created Job."""
    script = out.parent / "task.py"
    script.write_text(TASK_SCRIPT)
    container = run_v2.Container(
        image=image,
        command=["python", str(script)],
        args=args or [],
        env=[run_v2.EnvVar(name="OUT", value=str(out)), *(env or [])],
    )
    job = run_v2.Job(
        labels=labels or {},
        template=run_v2.ExecutionTemplate(
            labels=labels or {},
            task_count=task_count,
            template=run_v2.TaskTemplate(
                containers=[container], max_retries=max_retries
            ),
        ),
    )
    op = emu.jobs_client().create_job(parent=emu.parent(), job=job, job_id=job_id)
    return op.result(timeout=10, polling=FAST)


def run(emu: CloudRunEmulator, job_id: str, **overrides: Any) -> Any:
    """Run a job (optionally with overrides); return the LRO."""
    request = run_v2.RunJobRequest(name=f"{emu.parent()}/jobs/{job_id}")
    if overrides:
        request.overrides = run_v2.RunJobRequest.Overrides(**overrides)
    return emu.jobs_client().run_job(request=request)


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll ``predicate`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            assert value, "condition not reached in time"
            return value
        time.sleep(0.05)


def completed(execution: Any) -> Any:
    """The execution's ``Completed`` condition."""
    return next(c for c in execution.conditions if c.type_ == "Completed")


def records(out: Path) -> dict[str, dict[str, Any]]:
    """Task records by file stem (``task-<index>-<attempt>``)."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(out.glob("task-*.json"))}


def test_job_create_get_list_delete(
    cloudrun_emulator: CloudRunEmulator, out: Path
) -> None:
    emu = cloudrun_emulator
    jobs = emu.jobs_client()
    created = create_job(emu, "job-a", out, labels={"team": "crew"})
    assert created.name == f"{emu.parent()}/jobs/job-a"
    assert created.uid and created.template.template.max_retries == 0
    for job_id in ("job-b", "job-c"):
        create_job(emu, job_id, out)

    got = jobs.get_job(name=created.name)
    assert got.labels == {"team": "crew"}
    assert got.template.task_count == 1
    assert got.template.template.timeout == timedelta(seconds=600)  # documented default
    assert got.terminal_condition.state == State.CONDITION_SUCCEEDED

    pager = jobs.list_jobs(
        request=run_v2.ListJobsRequest(parent=emu.parent(), page_size=2)
    )
    assert [len(page.jobs) for page in pager.pages] == [2, 1]
    assert sorted(
        j.name.rsplit("/", 1)[1] for j in jobs.list_jobs(parent=emu.parent())
    ) == ["job-a", "job-b", "job-c"]

    with pytest.raises(exceptions.Conflict):
        create_job(emu, "job-a", out)
    with pytest.raises(exceptions.BadRequest):
        create_job(emu, "Bad_Name", out)

    deleted = jobs.delete_job(name=created.name).result(timeout=10, polling=FAST)
    assert deleted.name == created.name
    with pytest.raises(exceptions.NotFound):
        jobs.get_job(name=created.name)
    with pytest.raises(exceptions.NotFound):
        run(emu, "job-a")
    with pytest.raises(exceptions.NotFound):
        emu.executions_client().get_execution(
            name=f"{emu.parent()}/jobs/job-b/executions/job-b-zzzzz"
        )


def test_run_with_overrides_runs_every_task(
    cloudrun_emulator: CloudRunEmulator, out: Path
) -> None:
    emu = cloudrun_emulator
    emu.secrets[(f"projects/{emu.project}/secrets/token", "latest")] = "s3cret"
    secret_env = run_v2.EnvVar(
        name="X_SECRET",
        value_source=run_v2.EnvVarSource(
            secret_key_ref=run_v2.SecretKeySelector(secret="token", version="latest")
        ),
    )
    create_job(
        emu,
        "work",
        out,
        args=["fail"],
        env=[run_v2.EnvVar(name="X_PLAIN", value="job"), secret_env],
        labels={"team": "crew"},
    )
    override = run_v2.RunJobRequest.Overrides.ContainerOverride(
        args=["ok", "extra"],
        env=[
            run_v2.EnvVar(name="X_PLAIN", value="override"),
            run_v2.EnvVar(name="X_NEW", value="1"),
        ],
    )
    op = run(
        emu,
        "work",
        container_overrides=[override],
        task_count=3,
        timeout=timedelta(seconds=30),
    )
    name = op.metadata.name  # available at once
    assert name.startswith(f"{emu.parent()}/jobs/work/executions/work-")

    execution = op.result(timeout=20, polling=FAST)
    assert execution.name == name
    assert (
        execution.task_count,
        execution.succeeded_count,
        execution.failed_count,
    ) == (3, 3, 0)
    assert execution.job == "work"
    assert execution.labels == {"team": "crew"}
    assert execution.template.containers[0].args == ["ok", "extra"]
    assert execution.template.timeout == timedelta(seconds=30)
    assert (
        not execution.reconciling and execution.completion_time and execution.start_time
    )
    assert completed(execution).state == State.CONDITION_SUCCEEDED

    recs = records(out)
    assert sorted(recs) == ["task-0-0", "task-1-0", "task-2-0"]
    short = name.rsplit("/", 1)[1]
    for i in range(3):
        rec = recs[f"task-{i}-0"]
        assert rec["args"] == ["ok", "extra"]
        assert rec["env"] == {
            "CLOUD_RUN_JOB": "work",
            "CLOUD_RUN_EXECUTION": short,
            "CLOUD_RUN_TASK_INDEX": str(i),
            "CLOUD_RUN_TASK_COUNT": "3",
            "CLOUD_RUN_TASK_ATTEMPT": "0",
            "X_PLAIN": "override",
            "X_NEW": "1",
            "X_SECRET": "s3cret",
        }
    assert len({r["pid"] for r in recs.values()}) == 3

    tasks = list(emu.tasks_client().list_tasks(parent=name))
    assert [t.index for t in tasks] == [0, 1, 2]
    assert all(
        t.retried == 0 and t.execution == short and t.labels == {"team": "crew"}
        for t in tasks
    )
    assert emu.tasks_client().get_task(name=tasks[1].name).index == 1
    with urllib.request.urlopen(tasks[1].log_uri, timeout=5) as reply:
        assert reply.read().decode() == "task 1 attempt 0\n"

    listed = list(
        emu.executions_client().list_executions(parent=f"{emu.parent()}/jobs/work")
    )
    assert [e.name for e in listed] == [name]
    assert (
        emu.jobs_client().get_job(name=f"{emu.parent()}/jobs/work").execution_count == 1
    )


def test_failed_task_is_retried_then_counted(
    cloudrun_emulator: CloudRunEmulator, out: Path
) -> None:
    emu = cloudrun_emulator
    create_job(emu, "flaky", out, args=["fail-odd"], task_count=2, max_retries=1)
    execution = run(emu, "flaky").result(timeout=20, polling=FAST)
    assert (
        execution.succeeded_count,
        execution.failed_count,
        execution.retried_count,
    ) == (1, 1, 1)
    cond = completed(execution)
    assert cond.state == State.CONDITION_FAILED
    assert "exit code of 3" in cond.message
    assert sorted(records(out)) == ["task-0-0", "task-1-0", "task-1-1"]
    tasks = {t.index: t for t in emu.tasks_client().list_tasks(parent=execution.name)}
    assert (tasks[0].retried, tasks[1].retried) == (0, 1)
    assert tasks[1].last_attempt_result.exit_code == 3

    # maxRetries 0: a failed task runs once.
    create_job(emu, "once", out, args=["fail"], max_retries=0)
    execution = run(emu, "once").result(timeout=20, polling=FAST)
    assert (execution.failed_count, execution.retried_count) == (1, 0)
    assert len(emu.run_ids(execution.name)[0]) == 1


def test_cancel_kills_running_task(
    cloudrun_emulator: CloudRunEmulator, out: Path
) -> None:
    emu = cloudrun_emulator
    executions = emu.executions_client()
    create_job(emu, "sleeper", out, args=["sleep"])
    op = run(emu, "sleeper")
    name = op.metadata.name
    wait_for(lambda: executions.get_execution(name=name).running_count == 1)
    wait_for(lambda: records(out))  # the process is up and running its code
    pid = emu.runner.state(emu.run_ids(name)[0][0]).pid
    assert pid is not None and psutil.Process(pid).is_running()

    cancelled = executions.cancel_execution(name=name).result(timeout=10, polling=FAST)
    assert not psutil.pid_exists(pid)
    assert (
        cancelled.cancelled_count,
        cancelled.running_count,
        cancelled.failed_count,
    ) == (1, 0, 0)
    cond = completed(cancelled)
    assert cond.execution_reason == run_v2.Condition.ExecutionReason.CANCELLED
    # The run LRO ends too.
    assert op.result(timeout=5, polling=FAST).cancelled_count == 1

    with pytest.raises(exceptions.BadRequest):  # already finished
        executions.cancel_execution(name=name)
    executions.delete_execution(name=name).result(timeout=10, polling=FAST)
    with pytest.raises(exceptions.NotFound):
        executions.get_execution(name=name)


def test_timeout_kills_task(cloudrun_emulator: CloudRunEmulator, out: Path) -> None:
    emu = cloudrun_emulator
    create_job(emu, "slow", out, args=["sleep"])
    execution = run(emu, "slow", timeout=timedelta(seconds=1)).result(
        timeout=20, polling=FAST
    )
    assert execution.failed_count == 1
    assert "timeout" in completed(execution).message
    pid = records(out)["task-0-0"]["pid"]
    assert not psutil.pid_exists(pid)
    [task] = emu.tasks_client().list_tasks(parent=execution.name)
    result = task.last_attempt_result  # documented: at most one of exit_code and term_signal
    assert (result.term_signal, result.exit_code) == (9, 0), result
    assert "timeout" in result.status.message and result.status.code != 0


def test_api_faults(cloudrun_emulator: CloudRunEmulator, out: Path) -> None:
    emu = cloudrun_emulator
    jobs = emu.jobs_client()
    job = create_job(emu, "faulty", out)

    emu.faults.fail_next(1, status=503)
    with pytest.raises(exceptions.ServiceUnavailable):
        jobs.get_job(name=job.name)
    assert jobs.get_job(name=job.name).name == job.name  # only the next call failed

    emu.faults.throttle_next(1)
    with pytest.raises(exceptions.TooManyRequests) as info:
        jobs.get_job(name=job.name)
    assert info.value.reason == "RATE_LIMIT_EXCEEDED"

    emu.faults.fail_next(1, status=500, only="RunJob")
    jobs.get_job(name=job.name)  # not a RunJob: unaffected
    with pytest.raises(exceptions.InternalServerError):
        run(emu, "faulty")

    emu.faults.delay(0.3)
    started = time.monotonic()
    jobs.get_job(name=job.name)
    assert time.monotonic() - started >= 0.3
    emu.faults.delay(0)

    # Google's JSON error form, as seen on the wire.
    with pytest.raises(urllib.error.HTTPError) as http_error:
        urllib.request.urlopen(
            f"{emu.endpoint}/v2/{emu.parent()}/jobs/missing", timeout=5
        )
    body = json.loads(http_error.value.read())
    assert (
        body["error"]["code"] == 404
        and body["error"]["status"] == "NOT_FOUND"
        and body["error"]["message"]
    )


def test_image_pull_failure_fails_execution(
    cloudrun_emulator: CloudRunEmulator, out: Path
) -> None:
    emu = cloudrun_emulator
    create_job(
        emu, "noimage", out, image="us-docker.pkg.dev/test/missing:1", max_retries=3
    )
    emu.runner.missing_images.add("us-docker.pkg.dev/test/missing:1")
    execution = run(emu, "noimage").result(timeout=20, polling=FAST)
    assert (execution.failed_count, execution.succeeded_count) == (1, 0)
    cond = completed(execution)
    assert cond.state == State.CONDITION_FAILED
    assert "us-docker.pkg.dev/test/missing:1" in cond.message
    assert cond.reason == run_v2.Condition.CommonReason.CONTAINER_MISSING
    (run_id,) = emu.run_ids(execution.name)[0]
    assert emu.runner.state(run_id).status == "failed_to_start"
    assert records(out) == {}
    [task] = emu.tasks_client().list_tasks(parent=execution.name)
    assert completed(task).message == "Image 'us-docker.pkg.dev/test/missing:1' not found."
    assert task.last_attempt_result.status.message == completed(task).message
    assert task.last_attempt_result.exit_code == 0, "no exit code: the container never ran"


def test_stuck_tasks_stay_pending_until_released(
    cloudrun_emulator: CloudRunEmulator, out: Path
) -> None:
    emu = cloudrun_emulator
    executions = emu.executions_client()
    create_job(emu, "held", out, task_count=2)
    emu.faults.stuck = True
    name = run(emu, "held").metadata.name
    time.sleep(0.3)
    execution = executions.get_execution(name=name)
    assert (execution.running_count, execution.succeeded_count) == (0, 0)
    assert completed(execution).state == State.CONDITION_PENDING
    assert all(not t.start_time for t in emu.tasks_client().list_tasks(parent=name))
    assert records(out) == {}

    emu.faults.stuck = False
    assert emu.wait_execution(name, timeout=10) == "succeeded"
    assert executions.get_execution(name=name).succeeded_count == 2


def test_a_task_over_its_memory_limit_is_killed_and_says_so(cloudrun_emulator: CloudRunEmulator) -> None:
    """Documented: "Cloud Run instances that exceed their allowed memory limit are terminated"."""
    emu = cloudrun_emulator
    fill = "import time; b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(60)"
    container = run_v2.Container(
        image="us-docker.pkg.dev/test/pycrew/worker:latest",
        command=["python", "-c", fill],
        resources=run_v2.ResourceRequirements(limits={"memory": "200Mi"}),
    )
    job = run_v2.Job(template=run_v2.ExecutionTemplate(template=run_v2.TaskTemplate(containers=[container])))
    emu.jobs_client().create_job(parent=emu.parent(), job=job, job_id="greedy").result(timeout=10, polling=FAST)
    execution = run(emu, "greedy").result(timeout=30, polling=FAST)
    assert execution.failed_count == 1, execution
    [task] = emu.tasks_client().list_tasks(parent=execution.name)
    result = task.last_attempt_result
    assert (result.term_signal, result.exit_code) == (9, 0), result
    assert completed(task).message.startswith("Memory limit of 200 MiB exceeded with "), completed(task).message
    assert "Memory limit of 200 MiB exceeded" in completed(execution).message
