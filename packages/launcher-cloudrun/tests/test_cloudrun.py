# mypy: disable-error-code="no-untyped-call,import-untyped"
"""The launcher against the Cloud Run emulator: job, runs, token delivery, termination, monitor, faults."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from fake_secretmanager import FakeSecretManager
from google.api_core import exceptions as gexc
from google.cloud import run_v2

import pycrew
from pycrew.testing import tasks
from pycrew.testing.harness import unreachable_url, wait_until, with_worker_arg
from pycrew_cloudrun import CloudRunError, CloudRunHandle, CloudRunJobs, CloudRunOptions, jobspec, runs
from pycrew_cloudrun.tag import TAG_ENV
from pycrew_emulators.cloudrun import CloudRunEmulator

SECRET = "projects/test-project/secrets/pycrew-batch-keys"


@pytest.fixture
def controllers(cloudrun_options: dict[str, Any]) -> Iterator[list[pycrew.Controller]]:
    """Controllers a test makes; each is terminated at teardown."""
    made: list[pycrew.Controller] = []
    yield made
    for c in made:
        c.terminate()


def make_controller(made: list[pycrew.Controller], options: dict[str, Any], **kw: Any) -> pycrew.Controller:
    c = pycrew.controller("cloudrun", host="127.0.0.1", **{**options, **kw})
    made.append(c)
    return c


def stuck_calls(c: pycrew.Controller, n: int) -> list[pycrew.WorkerCall]:
    """A batch of n worker calls (one batch key) whose workers never connect and wait 120 s."""
    url = unreachable_url(c)
    calls = [c.launcher.call(worker=k + 1, url=url, batch=("k" * 64, "feed-", k, n)) for k in range(n)]
    return [with_worker_arg(call, "--seconds-launch", "120") for call in calls]


def jobs_for(options: dict[str, Any]) -> CloudRunJobs:
    return CloudRunJobs(CloudRunOptions.from_mapping(options))


def live_tasks(emulator: CloudRunEmulator, execution: str) -> list[int]:
    return [t.index for t in emulator.tasks_client().list_tasks(parent=execution) if "completion_time" not in t]


# -- the job -----------------------------------------------------------------------------


def test_job_is_created_once_from_the_options_and_reused(cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any]) -> None:
    first, second = jobs_for(cloudrun_options), jobs_for(cloudrun_options)
    name = first.ensure_job()
    assert second.ensure_job() == name == first.job_name
    job = cloudrun_emulator.jobs_client().get_job(name=name)
    assert job.template.template.max_retries == 0
    assert job.template.labels["pycrew-launcher"] == "cloudrun"
    assert list(job.template.template.containers[0].command) == ["python"]
    (listed,) = cloudrun_emulator.jobs_client().list_jobs(parent=cloudrun_emulator.parent())
    assert listed.name == name


def test_named_job_is_used_as_it_is(cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any], controllers: list[pycrew.Controller]) -> None:
    container = run_v2.Container(image="other:1", command=["python"])
    job = run_v2.Job(template=run_v2.ExecutionTemplate(template=run_v2.TaskTemplate(containers=[container], max_retries=0)))
    cloudrun_emulator.jobs_client().create_job(parent=cloudrun_emulator.parent(), job=job, job_id="team-job").result(timeout=30)
    c = make_controller(controllers, cloudrun_options, job="team-job", image=None, workers=1)
    assert c.submit(divmod, 7, 2).result(timeout=30) == (3, 1)
    (execution,) = cloudrun_emulator.executions_client().list_executions(parent=f"{cloudrun_emulator.parent()}/jobs/team-job")
    assert execution.template.containers[0].image == "other:1"


def test_missing_job_without_image_is_a_clear_error(cloudrun_options: dict[str, Any]) -> None:
    jobs = jobs_for({**cloudrun_options, "job": "nowhere", "image": None})
    with pytest.raises(CloudRunError, match=r"jobs/nowhere does not exist and the cloudrun option 'image' is not set"):
        jobs.ensure_job()


def test_deleted_job_is_created_again(cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any], controllers: list[pycrew.Controller]) -> None:
    c = make_controller(controllers, cloudrun_options, workers=1, seconds_idle=0.5)
    assert c.submit(abs, -1).result(timeout=30) == 1
    wait_until(lambda: c.summary().controller.workers_online == 0, 30, "the worker did not idle out")
    name = jobs_for(cloudrun_options).job_name
    cloudrun_emulator.jobs_client().delete_job(name=name).result(timeout=30)
    assert c.submit(abs, -2).result(timeout=30) == 2
    assert cloudrun_emulator.jobs_client().get_job(name=name).name == name


# -- runs and the token ------------------------------------------------------------------


def test_batch_is_one_execution_whose_key_is_a_secret_reference(
    cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any], secret_manager: FakeSecretManager, controllers: list[pycrew.Controller]
) -> None:
    c = make_controller(controllers, cloudrun_options, workers=3).start()
    jobs = jobs_for(cloudrun_options)
    calls = stuck_calls(c, 3)
    handles = jobs.launch(calls)
    assert [h.instance for h in handles] == [call.instance for call in calls] == ["feed-0", "feed-1", "feed-2"]
    assert len({h.execution for h in handles}) == 1 and [h.index for h in handles] == [0, 1, 2]
    execution = cloudrun_emulator.executions_client().get_execution(name=handles[0].execution)
    assert execution.task_count == 3
    assert "k" * 64 not in repr(execution), "the batch key shows in the execution"
    env = {e.name: e for e in execution.template.containers[0].env}
    ref = env[pycrew.TOKEN_ENV].value_source.secret_key_ref
    assert (ref.secret, ref.version) == (SECRET, "1") and not env[pycrew.TOKEN_ENV].value
    assert env[TAG_ENV].value.startswith("pycrew:1;c=" + c.id)
    assert "--index-env" in execution.template.containers[0].args
    assert cloudrun_emulator.secrets[(SECRET, "1")] == "k" * 64
    wait_until(lambda: len(live_tasks(cloudrun_emulator, execution.name)) == 3, 30, "tasks did not start")
    listed = {w.instance: w for w in jobs.workers(c.id)}
    assert sorted(str(i) for i in listed) == ["feed-0", "feed-1", "feed-2"] and listed["feed-2"].worker == 3
    assert listed["feed-0"].handle == handles[0] and listed["feed-0"].state == "RUNNING" and listed["feed-0"].log
    jobs.terminate(handles)
    assert cloudrun_emulator.wait_execution(execution.name, timeout=30) == "cancelled"
    assert secret_manager.enabled_versions(SECRET) == [], "the execution's secret version outlived it"
    assert not jobs.workers(c.id)


def test_env_delivery_shows_the_key_in_the_execution(
    cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any], secret_manager: FakeSecretManager, controllers: list[pycrew.Controller]
) -> None:
    options = {**cloudrun_options, "token_delivery": "env"}
    c = make_controller(controllers, options, workers=2)
    assert sorted(c.map(abs, [-1, -2, -3], timeout=30)) == [1, 2, 3]
    (execution, *_) = cloudrun_emulator.executions_client().list_executions(parent=f"{cloudrun_emulator.parent()}/jobs/-")
    env = {e.name: e.value for e in execution.template.containers[0].env}
    assert len(env[pycrew.TOKEN_ENV]) == 64, "token_delivery='env' passes the batch key as a plain value (documented)"
    assert secret_manager.requests == [], "env delivery needs no Secret Manager"


def test_tls_workers_connect(cloudrun_options: dict[str, Any], controllers: list[pycrew.Controller]) -> None:
    c = make_controller(controllers, cloudrun_options, workers=2, tls="automatic")
    assert sorted(c.map(abs, [-1, -2], timeout=30)) == [1, 2]


def test_timeout_override_follows_seconds_wall(cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any], controllers: list[pycrew.Controller]) -> None:
    c = make_controller(controllers, cloudrun_options, workers=1, seconds_wall=100, seconds_launch=30)
    assert c.submit(abs, -1).result(timeout=30) == 1
    (execution,) = cloudrun_emulator.executions_client().list_executions(parent=f"{cloudrun_emulator.parent()}/jobs/-")
    assert execution.template.timeout.total_seconds() == 190


def test_batch_beyond_the_task_limit_is_cut_into_executions(
    cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any], controllers: list[pycrew.Controller], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(runs, "TASK_COUNT_MAX", 2)
    c = make_controller(controllers, cloudrun_options, workers=3)
    results = [c.submit(tasks.sleep_then_report, 1.0) for _ in range(3)]
    assert len({f.result(timeout=30) for f in results}) == 3, "three workers ran the tasks"
    executions = list(cloudrun_emulator.executions_client().list_executions(parent=f"{cloudrun_emulator.parent()}/jobs/-"))
    assert sorted(e.task_count for e in executions) == [1, 2]


def test_lone_calls_get_one_execution_each(cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any], controllers: list[pycrew.Controller]) -> None:
    c = make_controller(controllers, cloudrun_options, workers=2).start()
    url = unreachable_url(c)
    calls = [c.launcher.call(worker=k + 1, url=url) for k in range(2)]
    jobs = jobs_for(cloudrun_options)
    handles = jobs.launch(calls)
    assert len({h.execution for h in handles}) == 2 and all(h.task_count == 1 for h in handles)
    execution = cloudrun_emulator.executions_client().get_execution(name=handles[0].execution)
    assert calls[0].token not in repr(execution)
    jobs.terminate(handles)
    assert {cloudrun_emulator.wait_execution(h.execution) for h in handles} <= {"cancelled", "failed"}


# -- termination -------------------------------------------------------------------------


def test_one_worker_of_an_execution_is_not_cancelled_alone(
    cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any], controllers: list[pycrew.Controller]
) -> None:
    c = make_controller(controllers, cloudrun_options, workers=2).start()
    jobs = jobs_for(cloudrun_options)
    handles = jobs.launch(stuck_calls(c, 2))
    execution = handles[0].execution
    wait_until(lambda: live_tasks(cloudrun_emulator, execution) == [0, 1], 30, "tasks did not start")
    jobs.terminate(handles[:1])
    time.sleep(0.3)
    assert live_tasks(cloudrun_emulator, execution) == [0, 1], "Cloud Run cannot stop one task: its sibling must live on"
    jobs.terminate(handles[1:])  # now every live task is asked to stop: the execution is cancelled
    assert cloudrun_emulator.wait_execution(execution, timeout=30) == "cancelled"
    jobs.terminate(handles)  # and again: silent


def test_monitor_in_another_process_cancels_an_execution_whose_live_workers_it_stops(
    cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any], controllers: list[pycrew.Controller]
) -> None:
    c = make_controller(controllers, cloudrun_options, workers=2).start()
    handles = jobs_for(cloudrun_options).launch(stuck_calls(c, 2))
    wait_until(lambda: len(live_tasks(cloudrun_emulator, handles[0].execution)) == 2, 30, "tasks did not start")
    monitor = pycrew.Monitor("cloudrun", **cloudrun_options)
    listed = monitor.list(c.id)
    assert len(listed) == 2
    monitor.terminate(listed)
    assert cloudrun_emulator.wait_execution(handles[0].execution, timeout=30) == "cancelled"


def test_terminate_reaches_tasks_that_never_started(
    cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any], controllers: list[pycrew.Controller]
) -> None:
    cloudrun_emulator.faults.stuck = True  # tasks stay pending: no capacity
    c = make_controller(controllers, cloudrun_options, workers=2).start()
    jobs = jobs_for(cloudrun_options)
    handles = jobs.launch(stuck_calls(c, 2))
    assert [w.state for w in jobs.workers(c.id)] == ["PENDING", "PENDING"]
    jobs.terminate(handles)
    assert cloudrun_emulator.wait_execution(handles[0].execution, timeout=30) == "cancelled"
    cloudrun_emulator.faults.stuck = False
    assert cloudrun_emulator.run_ids(handles[0].execution) == {0: [], 1: []}, "a cancelled pending task started"


def test_terminate_rejects_foreign_handles(cloudrun_options: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="CloudRunHandle"):
        jobs_for(cloudrun_options).terminate(["projects/p/locations/l/jobs/j/executions/e"])


def test_terminate_of_a_deleted_execution_is_silent(cloudrun_options: dict[str, Any], caplog: pytest.LogCaptureFixture) -> None:
    gone = CloudRunHandle("projects/test-project/locations/us-central1/jobs/j/executions/e", 0, "i", 2)
    jobs_for(cloudrun_options).terminate([gone])
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]


# -- the monitor's execution view ----------------------------------------------------------


def test_executions_lists_counts_and_cancels(cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any], controllers: list[pycrew.Controller]) -> None:
    c = make_controller(controllers, cloudrun_options, workers=2).start()
    jobs = jobs_for(cloudrun_options)
    handles = jobs.launch(stuck_calls(c, 2))
    wait_until(lambda: [e.running for e in jobs.executions(c.id)] == [2], 30, "the execution did not start")
    (info,) = jobs.executions(c.id)
    assert (info.name, info.state, info.task_count, info.controller_id) == (handles[0].execution, "RUNNING", 2, c.id)
    assert info.labels["pycrew-launcher"] == "cloudrun" and info.age is not None and info.log
    assert jobs.executions("someone-else") == []
    assert jobs.executions(labels={"pycrew-launcher": "cloudrun"}) == [info]
    assert jobs.executions(labels={"team": "other"}) == []
    jobs.cancel_executions([info.name])
    assert cloudrun_emulator.wait_execution(info.name, timeout=30) == "cancelled"
    assert jobs.executions(c.id) == []
    (done,) = jobs.executions(c.id, include_done=True)
    assert (done.state, done.cancelled) == ("CANCELLED", 2)


# -- faults ------------------------------------------------------------------------------


def test_throttled_and_failing_requests_are_retried(
    cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any], secret_manager: FakeSecretManager, controllers: list[pycrew.Controller]
) -> None:
    cloudrun_emulator.faults.throttle_next(2, only="RunJob")
    cloudrun_emulator.faults.fail_next(1, status=503, only="CreateJob")
    cloudrun_emulator.faults.fail_next(1, status=500, only="ListExecutions")
    secret_manager.fail_next(1, status=503)
    c = make_controller(controllers, cloudrun_options, workers=1)
    assert c.submit(abs, -5).result(timeout=60) == 5
    assert pycrew.Monitor("cloudrun", **cloudrun_options).list(None) is not None
    injected = [(op, f.status) for op, f in cloudrun_emulator.faults.injected]
    assert injected == [("CreateJob", 503), ("RunJob", 429), ("RunJob", 429), ("ListExecutions", 500)]


def test_persistent_faults_end_in_a_clear_error(cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any]) -> None:
    jobs = jobs_for({**cloudrun_options, "api_attempts_max": 3})
    jobs.ensure_job()
    cloudrun_emulator.faults.fail_next(10, status=503, only="ListExecutions")
    with pytest.raises(CloudRunError, match=r"list executions in .* failed after 3 attempt\(s\).*ServiceUnavailable"):
        jobs.workers(None)


def test_persistent_launch_faults_become_a_launch_error(cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any], controllers: list[pycrew.Controller]) -> None:
    cloudrun_emulator.faults.fail_next(100, status=503, only="RunJob")
    # 503s are an unavailable platform: tried again for seconds_unreachable (0 here: at once)
    c = make_controller(controllers, {**cloudrun_options, "api_attempts_max": 2}, workers=1, launch_max=2, seconds_unreachable=0)
    c.push(abs, (-1,))
    with pytest.raises(pycrew.LaunchError, match=r"run job .* failed after 2 attempt\(s\)"):
        c.wait(timeout=60)


def test_a_permission_refused_over_rest_names_the_permission(
    cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any], controllers: list[pycrew.Controller]
) -> None:
    """Over REST a 403 is google.api_core's Forbidden, not PermissionDenied (gRPC's): before,
    the LaunchError said only "see the message above"."""
    cloudrun_emulator.faults.fail_next(1, status=403, code="PERMISSION_DENIED", message="Permission denied on resource",
                                       only="RunJob")
    c = make_controller(controllers, cloudrun_options, workers=1, launch_max=1)
    c.push(abs, (-1,))
    with pytest.raises(pycrew.LaunchError, match=r"lacks a permission \(it needs run\.jobs\.runWithOverrides\)"):
        c.wait(timeout=60)


def test_ambiguous_run_failure_adopts_the_execution_it_started(
    cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any], controllers: list[pycrew.Controller], monkeypatch: pytest.MonkeyPatch
) -> None:
    c = make_controller(controllers, cloudrun_options, workers=2).start()
    jobs = jobs_for(cloudrun_options)
    real = jobs._run_once
    calls_made: list[str] = []

    def run_then_fail(request: run_v2.RunJobRequest) -> str:
        name = real(request)
        calls_made.append(name)
        if len(calls_made) == 1:
            raise gexc.ServiceUnavailable("the reply was lost")
        return name

    monkeypatch.setattr(jobs, "_run_once", run_then_fail)
    handles = jobs.launch(stuck_calls(c, 2))
    assert calls_made and handles[0].execution == calls_made[0] and len(calls_made) == 1
    executions = list(cloudrun_emulator.executions_client().list_executions(parent=f"{cloudrun_emulator.parent()}/jobs/-"))
    assert len(executions) == 1, "the run was retried although it had started an execution"
    jobs.terminate(handles)


def test_a_run_sent_again_after_a_lost_reply_cancels_the_execution_the_first_had_started(
    cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any], controllers: list[pycrew.Controller], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reply to RunJob is lost and the lookup for its execution times out too: the run is
    sent again, which starts a second execution. Before, the first went on unknown to pycrew:
    its workers were the ones that connected, and terminate() cancelled only the second."""
    c = make_controller(controllers, cloudrun_options, workers=2).start()
    jobs = jobs_for(cloudrun_options)
    real_run, executions = jobs._run_once, jobs.clients.executions
    started: list[str] = []

    def run_then_lose_the_reply(request: run_v2.RunJobRequest) -> str:
        started.append(real_run(request))
        if len(started) == 1:
            raise gexc.ServiceUnavailable("the reply was lost")
        return started[-1]

    real_list, listed = executions.list_executions, []

    def list_times_out_once(*args: Any, **kwargs: Any) -> Any:
        listed.append(args)
        if len(listed) == 1:
            raise gexc.DeadlineExceeded("the lookup timed out")
        return real_list(*args, **kwargs)

    monkeypatch.setattr(jobs, "_run_once", run_then_lose_the_reply)
    monkeypatch.setattr(executions, "list_executions", list_times_out_once)
    handles = jobs.launch(stuck_calls(c, 2))
    try:
        assert len(started) == 2 and {h.execution for h in handles} == {started[1]}, (started, handles)
        assert cloudrun_emulator.wait_execution(started[0], timeout=30) == "cancelled", "the twin still runs"
    finally:
        jobs.terminate(handles)


def test_old_secret_versions_are_swept_and_new_ones_kept(cloudrun_options: dict[str, Any], secret_manager: FakeSecretManager) -> None:
    old = secret_manager.add_version(SECRET, "old", created=time.time() - 9 * 24 * 3600)
    recent = secret_manager.add_version(SECRET, "recent")
    jobs_for(cloudrun_options).ensure_job()
    assert secret_manager.enabled_versions(SECRET) == [recent] and old != recent


def test_missing_secret_without_create_is_a_clear_error(cloudrun_options: dict[str, Any], controllers: list[pycrew.Controller]) -> None:
    c = make_controller(controllers, cloudrun_options, workers=1, create_secret=False).start()
    with pytest.raises(CloudRunError, match=r"pycrew-batch-keys \(cloudrun option 'secret'\) does not exist and create_secret is False"):
        jobs_for({**cloudrun_options, "create_secret": False}).launch([c.launcher.call(worker=1)])


def test_job_made_from_other_options_under_the_default_name_is_refused(cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any]) -> None:
    jobs = jobs_for(cloudrun_options)
    container = run_v2.Container(image="x:1", command=["python"])
    job = run_v2.Job(template=run_v2.ExecutionTemplate(template=run_v2.TaskTemplate(containers=[container])))
    job_id = jobspec.job_id(jobs.options)
    cloudrun_emulator.jobs_client().create_job(parent=cloudrun_emulator.parent(), job=job, job_id=job_id).result(timeout=30)
    with pytest.raises(CloudRunError, match="was not made by pycrew from these options"):
        jobs.ensure_job()


def test_a_handle_reads_as_its_execution_and_task_in_messages() -> None:
    """Core names workers it could not terminate by str(handle): on 33e082d two Cloud Run
    workers read as the same cut-off "CloudRunHandle(execution='projects/test-project/...'."""
    name = "projects/p/locations/us-central1/jobs/pycrew-ab12/executions/pycrew-ab12-x7k2p"
    handles = [CloudRunHandle(name, i, f"i{i}", 2) for i in range(2)]
    assert [str(h) for h in handles] == ["execution pycrew-ab12-x7k2p task 0", "execution pycrew-ab12-x7k2p task 1"]
