"""K8sLauncher against the Kubernetes API emulator: Jobs, Secrets, terminate, launch checks, monitor, logs."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import pytest

import pycrew
from pycrew_emulators.k8s import K8sEmulator
from pycrew_k8s import K8sApiError, K8sOptions, PodStartError, worker_logs
from pycrew_k8s.launcher import K8sLauncher, parse_handle

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float = 20.0, what: str = "condition") -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)


def calls(n: int = 1, code_url: str = "tcp://127.0.0.1:9", seconds_launch: str = "60.0", controller_id: str = "c0ffee0000000001") -> list[pycrew.WorkerCall]:
    """Worker calls whose workers never find a controller (they wait ``seconds_launch``, then exit 3)."""
    out = []
    for k in range(n):
        instance = f"abcdef012345-{k}"
        command = pycrew.WorkerCommand(url=code_url, instance=instance, worker=k + 1, launcher="k8s", controller="tests",
                                       controller_id=controller_id, seconds_launch=float(seconds_launch))
        out.append(pycrew.WorkerCall.from_command(command, python="python", env={}, token=f"token-{k}-secret", name=f"w{k}"))
    return out


def launcher(k8s_options: dict[str, Any], **changes: Any) -> K8sLauncher:
    return K8sLauncher("k8s", K8sOptions.from_mapping({**k8s_options, **changes}))


def jobs_left(emulator: K8sEmulator) -> list[str]:
    return [name for (_, name) in emulator._store["jobs"]]


# -- launch ---------------------------------------------------------------------------------------


def test_launch_creates_one_job_and_owned_secret_per_worker(k8s: K8sLauncher, emulator: K8sEmulator) -> None:
    batch = calls(3)
    handles = k8s.launch(batch)
    try:
        assert len(handles) == 3 and all(h.startswith("default/pycrew-tests-abcdef012345-") for h in handles)
        for call, handle in zip(batch, handles, strict=True):
            _, name = parse_handle(handle)
            job = emulator.get_object("jobs", name)
            secret = emulator.get_object("secrets", name)
            assert job is not None and secret is not None
            assert job["metadata"]["labels"]["pycrew.io/instance"] == call.instance, "handles must follow call order"
            assert secret["metadata"]["ownerReferences"][0]["uid"] == job["metadata"]["uid"]
            assert base64.b64decode(secret["data"]["token"]).decode() == call.token
            assert call.token not in json.dumps(job), "the token must only be in the Secret"
            pods = wait_for(lambda name=name: [p for (_, p) in emulator._store["pods"] if p.startswith(name)], what="pod")
            assert call.token not in json.dumps(emulator.get_object("pods", pods[0]))
    finally:
        k8s.terminate(handles)


def test_launch_of_nothing_is_nothing(k8s: K8sLauncher) -> None:
    assert k8s.launch([]) == []


def test_launch_without_image_says_what_to_set(k8s_options: dict[str, Any]) -> None:
    with pytest.raises(pycrew.OptionsError, match="'image' is required"):
        launcher({k: v for k, v in k8s_options.items() if k != "image"}).launch(calls(1))


def test_missing_image_fails_the_launch_with_the_pull_error(k8s_options: dict[str, Any], emulator: K8sEmulator, missing_image: str) -> None:
    with pytest.raises(PodStartError) as err:
        launcher(k8s_options, image=missing_image).launch(calls(2))
    assert err.value.reason.startswith(("ErrImagePull", "ImagePullBackOff")), err.value
    assert missing_image in str(err.value) and "image option" in str(err.value)
    assert err.value.job.startswith("default/pycrew-tests-") and err.value.pod.startswith(err.value.job.split("/")[1])
    wait_for(lambda: not jobs_left(emulator), what="the failed launch's Jobs to be deleted")


def test_unschedulable_pods_fail_the_launch_with_the_scheduler_message(k8s_options: dict[str, Any], emulator: K8sEmulator) -> None:
    k8s = launcher(k8s_options, node_selector={"disktype": "ssd"}, seconds_launch_check=1)
    started = time.monotonic()
    with pytest.raises(PodStartError) as err:
        k8s.launch(calls(1))
    assert err.value.reason.startswith("Unschedulable: 0/1 nodes are available"), err.value
    assert "node_selector" in str(err.value) and time.monotonic() - started < 10
    assert not jobs_left(emulator)


def test_unschedulable_pods_are_left_to_the_controller_when_asked(k8s_options: dict[str, Any], emulator: K8sEmulator) -> None:
    emulator.unschedulable = True
    k8s = launcher(k8s_options, seconds_launch_check=0.5, fail_unschedulable=False)
    handles = k8s.launch(calls(1))
    try:
        info = wait_for(lambda: [w for w in k8s.workers("c0ffee0000000001") if w.state == "Unschedulable"], what="listing")
        assert info[0].reason.startswith("Unschedulable: 0/1 nodes are available: 1 Insufficient cpu")
    finally:
        k8s.terminate(handles)


def test_worker_without_interpreter_is_returned_for_the_monitor_to_report(k8s_options: dict[str, Any], emulator: K8sEmulator) -> None:
    """A pod that ended is the monitor's to report (core's launch watch then says "the worker failed
    before it connected", as for Cloud Run and AWS Batch), not the launch hook's to raise."""
    k8s = launcher(k8s_options, python="/no/such/python")
    handles = k8s.launch(calls(1))
    try:
        [ended] = wait_for(lambda: [w for w in k8s.workers(None) if w.ended], what="the worker to be listed ended")
        assert (ended.handle, ended.status, ended.exit_code, ended.queued) == (handles[0], "failed", 128, False), ended
        assert ended.reason.startswith("StartError") and "/no/such/python" in ended.reason, ended
    finally:
        k8s.terminate(handles)


def test_worker_that_exits_at_once_is_returned_and_listed_failed_with_its_log(
    k8s_options: dict[str, Any], emulator: K8sEmulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker that cannot import pycrew, reported Failed before Running (as a real kubelet's
    once-a-second relist reports a container that lived 50 ms); the emulator's kubelet reports
    Running for a moment, so the check looks only once the pod has failed. Before, the launch hook
    raised: core's LaunchError then blamed "the launcher's call to the platform"."""
    original = K8sLauncher._batch_states

    def after_failure(self: K8sLauncher, *args: Any) -> Any:
        wait_for(lambda: [p for p in emulator._store["pods"].values() if p["status"].get("phase") == "Failed"],
                 what="the pod to fail")
        return original(self, *args)

    monkeypatch.setattr(K8sLauncher, "_batch_states", after_failure)
    broken = [pycrew.WorkerCall(**{**calls(1)[0].__dict__, "args": ("-m", "no_such_module_pycrew", "--seconds-launch", "30")})]
    k8s = launcher(k8s_options)
    handles = k8s.launch(broken)
    try:
        [ended] = [w for w in k8s.workers(None) if w.ended]
        assert (ended.handle, ended.status, ended.exit_code) == (handles[0], "failed", 1), ended
        assert "No module named no_such_module_pycrew" in k8s.logs(handles[0], tail_lines=5)
    finally:
        k8s.terminate(handles)


def test_unschedulable_message_and_hint_are_joined_by_one_period(k8s_options: dict[str, Any], emulator: K8sEmulator) -> None:
    """The scheduler's message ends with a period: it read "... for incoming pod.. No node fits the pod"."""
    emulator.unschedulable = True
    with pytest.raises(PodStartError) as err:
        launcher(k8s_options, seconds_launch_check=0.5).launch(calls(1))
    assert "victims found for incoming pod. No node fits the pod" in str(err.value), err.value
    assert ".." not in str(err.value) and err.value.reason.endswith("incoming pod."), err.value


QUOTA = "exceeded quota: compute-resources, requested: requests.cpu=2, used: requests.cpu=1, limited: requests.cpu=2"


def test_pods_a_quota_refuses_fail_the_launch_within_seconds_naming_the_quota(
    k8s_options: dict[str, Any], emulator: K8sEmulator
) -> None:
    """A ResourceQuota admits the Job and refuses its pods: the job controller's FailedCreate
    events say so. Before, the launch check waited its whole window (15 s) for pods."""
    emulator.pod_quota = QUOTA
    started = time.monotonic()
    with pytest.raises(PodStartError) as err:
        launcher(k8s_options).launch(calls(2))
    assert time.monotonic() - started < 5, "the quota should be reported within seconds, not after seconds_launch_check"
    message = str(err.value)
    assert err.value.reason.startswith("FailedCreate: Error creating: pods") and QUOTA in err.value.reason, message
    assert "ResourceQuota 'compute-resources', not a missing permission" in message, message
    assert "allows requests.cpu=2, requests.cpu=1 is in use, and this asks for requests.cpu=2 more" in message, message
    assert "Run fewer workers" in message and "kubectl describe resourcequota compute-resources -n default" in message
    assert err.value.pod == "" and err.value.job.startswith("default/pycrew-tests-"), err.value
    wait_for(lambda: not jobs_left(emulator), what="the failed launch's Jobs to be deleted")


def test_monitor_lists_a_job_whose_pod_a_quota_refuses_as_failed(k8s_options: dict[str, Any], emulator: K8sEmulator) -> None:
    """So that core's launch watch fails such a launch at once (e.g. the workers of a batch beyond
    the quota while the others run), instead of after seconds_launch with "no pod yet"."""
    emulator.pod_quota = QUOTA
    k8s = launcher(k8s_options, seconds_launch_check=0)
    handles = k8s.launch(calls(1))
    try:
        [refused] = wait_for(lambda: [w for w in k8s.workers(None) if w.state == "FailedCreate"], what="FailedCreate")
        assert (refused.handle, refused.status, refused.queued, refused.ended) == (handles[0], "failed", True, True)
        assert QUOTA in refused.reason and "Run fewer workers" in refused.reason, refused
        emulator.faults.fail_next(1, status=403, only="list_namespaced_event")  # events are optional (RBAC)
        assert [w.state for w in k8s.workers(None)] == ["Pending"] and k8s.events_forbidden
    finally:
        k8s.terminate(handles)


def test_missing_secret_of_the_user_fails_after_the_check(k8s_options: dict[str, Any], emulator: K8sEmulator) -> None:
    with pytest.raises(PodStartError) as err:
        launcher(k8s_options, env_from_secrets=("no-such-secret",), seconds_launch_check=1).launch(calls(1))
    assert err.value.reason == 'CreateContainerConfigError: secret "no-such-secret" not found', err.value
    assert "env_from_secrets" in str(err.value)


def test_check_off_returns_at_once(k8s_options: dict[str, Any], emulator: K8sEmulator, missing_image: str) -> None:
    k8s = launcher(k8s_options, image=missing_image, seconds_launch_check=0)
    handles = k8s.launch(calls(1))
    try:
        listed = wait_for(lambda: [w for w in k8s.workers(None) if "ImagePull" in w.state], what="the pull error")
        assert missing_image in listed[0].reason, listed
        assert (listed[0].status, listed[0].queued, listed[0].exit_code) == ("failed", True, None), listed
        assert [w.id for w in pycrew.Monitor("k8s", **k8s_options).list()] == [listed[0].id], "its Job stays: it is listed"
    finally:
        k8s.terminate(handles)


def test_stuck_pod_is_returned_for_the_controller_to_time_out(k8s_options: dict[str, Any], emulator: K8sEmulator) -> None:
    emulator.stuck = True
    k8s = launcher(k8s_options, seconds_launch_check=0.5)
    handles = k8s.launch(calls(1))
    try:
        assert [w.state for w in k8s.workers(None)] == ["ContainerCreating"]
    finally:
        k8s.terminate(handles)
    assert not k8s.workers(None)


# -- terminate ------------------------------------------------------------------------------------


def test_terminate_deletes_job_pod_and_secret_and_is_idempotent(k8s: K8sLauncher, emulator: K8sEmulator, caplog: pytest.LogCaptureFixture) -> None:
    handles = k8s.launch(calls(2))
    names = [parse_handle(h)[1] for h in handles]
    k8s.terminate(handles)
    assert not jobs_left(emulator)
    wait_for(lambda: not emulator._store["pods"] and not emulator._store["secrets"], what="pods and Secrets to go")
    with caplog.at_level("DEBUG", logger="pycrew_k8s"):
        k8s.terminate(handles)
        k8s.terminate([handles[0], handles[0], "default/never-existed"])
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")], caplog.records
    assert names


def test_terminate_reaches_pending_pods(k8s_options: dict[str, Any], emulator: K8sEmulator, caplog: pytest.LogCaptureFixture) -> None:
    emulator.unschedulable = True
    k8s = launcher(k8s_options, seconds_launch_check=0, fail_unschedulable=False)
    handles = k8s.launch(calls(1))
    wait_for(lambda: [w for w in k8s.workers(None) if w.state == "Unschedulable"], what="unschedulable pod")
    with caplog.at_level("WARNING", logger="pycrew_k8s"):
        k8s.terminate(handles)
    assert not jobs_left(emulator) and not k8s.workers(None)
    assert any("never started: Unschedulable" in r.getMessage() for r in caplog.records), "the reason should be logged"


def test_terminate_rejects_foreign_handles(k8s: K8sLauncher) -> None:
    with pytest.raises(ValueError, match="namespace/job-name"):
        k8s.terminate(["--all"])


# -- API faults -------------------------------------------------------------------------------------


def test_transient_api_errors_are_retried(k8s_options: dict[str, Any], emulator: K8sEmulator) -> None:
    k8s = launcher(k8s_options, seconds_launch_check=0)
    emulator.faults.fail_next(2, status=503, only="create_namespaced_job")
    emulator.faults.throttle_next(2, only="create_namespaced_secret")
    emulator.faults.fail_next(1, status=500, only="delete_namespaced_job")
    emulator.faults.fail_next(1, status=502, only="list_namespaced_job")
    handles = k8s.launch(calls(1))
    assert [w.instance for w in k8s.workers(None)] == ["abcdef012345-0"]
    k8s.terminate(handles)
    assert not jobs_left(emulator)
    assert len(emulator.faults.injected) == 6 and emulator.faults.pending_count() == 0


def test_persistent_api_errors_end_in_a_clear_error_and_leave_nothing(k8s_options: dict[str, Any], emulator: K8sEmulator) -> None:
    k8s = launcher(k8s_options, api_attempts_max=3, seconds_launch_check=0)
    emulator.faults.fail_next(100, status=503, only="create_namespaced_secret")
    started = time.monotonic()
    with pytest.raises(K8sApiError) as err:
        k8s.launch(calls(2))
    assert time.monotonic() - started < 10
    message = str(err.value)
    assert "create_namespaced_secret" in message and "after 3 attempts" in message and "HTTP 503" in message, message
    assert err.value.status == 503 and err.value.attempts == 3
    assert not jobs_left(emulator), "the Job of a failed launch must be deleted"


def test_throttling_is_retried_within_the_time_budget(k8s_options: dict[str, Any], emulator: K8sEmulator) -> None:
    k8s = launcher(k8s_options, seconds_api_retry=2.5, api_attempts_max=50, seconds_launch_check=0)
    emulator.faults.throttle_next(100, only="create_namespaced_job")
    started = time.monotonic()
    with pytest.raises(K8sApiError) as err:
        k8s.launch(calls(1))
    assert time.monotonic() - started < 6, "seconds_api_retry bounds the retries"
    assert err.value.status == 429 and "TooManyRequests" in str(err.value)


def test_permission_errors_are_not_retried_and_name_the_permissions(k8s_options: dict[str, Any], emulator: K8sEmulator) -> None:
    emulator.faults.fail_next(1, status=403, only="create_namespaced_job")
    with pytest.raises(K8sApiError) as err:
        launcher(k8s_options).launch(calls(1))
    assert err.value.attempts == 1 and "jobs.batch" in str(err.value) and "Role" in str(err.value)


def test_unreachable_api_server_is_reported(k8s_options: dict[str, Any], emulator: K8sEmulator, tmp_path: Any) -> None:
    config = json.loads(emulator.kubeconfig_path.read_text())  # type: ignore[union-attr]
    config["clusters"][0]["cluster"]["server"] = "http://127.0.0.1:9"
    path = tmp_path / "dead-kubeconfig"
    path.write_text(json.dumps(config))
    k8s = launcher(k8s_options, kubeconfig=str(path), api_attempts_max=2, seconds_api_retry=2)
    with pytest.raises(K8sApiError) as err:
        k8s.workers(None)
    assert err.value.status is None and "no answer" in str(err.value) and "reachable" in str(err.value)


def test_missing_kubeconfig_and_context_are_clear(k8s_options: dict[str, Any], tmp_path: Any) -> None:
    from pycrew_k8s import K8sConfigError

    with pytest.raises(K8sConfigError, match="no such file"):
        launcher(k8s_options, kubeconfig=str(tmp_path / "nope")).workers(None)
    with pytest.raises(K8sConfigError, match=r"no context .prod.*contexts: emulator"):
        launcher(k8s_options, context="prod").workers(None)


# -- monitor and logs ---------------------------------------------------------------------------------


def test_monitor_lists_pycrew_workers_only_with_state_and_reason(k8s_options: dict[str, Any], emulator: K8sEmulator) -> None:
    k8s = launcher(k8s_options)
    mine = k8s.launch(calls(2, controller_id="aaaa000000000001"))
    other = k8s.launch(calls(1, controller_id="bbbb000000000002"))
    try:
        listed = k8s.workers("aaaa000000000001")
        assert sorted(w.handle for w in listed) == sorted(mine)
        w = listed[0]
        assert (w.launcher, w.controller, w.controller_id, w.state, w.host) == (
            "k8s", "tests", "aaaa000000000001", "Running", "pycrew-emulator-node")
        assert w.instance in ("abcdef012345-0", "abcdef012345-1") and w.worker in (1, 2)
        assert w.age is not None and w.age < 60 and w.log is not None and w.log.startswith("kubectl logs")
        assert {x.handle for x in k8s.workers(None)} == set(mine + other)
    finally:
        k8s.terminate(mine + other)


def test_monitor_lists_every_namespace_when_asked(k8s_options: dict[str, Any], emulator: K8sEmulator) -> None:
    emulator.namespaces |= {"team-a", "team-b"}
    a = launcher(k8s_options, namespace="team-a", seconds_launch_check=0).launch(calls(1))
    b = launcher(k8s_options, namespace="team-b", seconds_launch_check=0).launch(calls(1))
    try:
        assert [w.handle for w in launcher(k8s_options, namespace="team-a").workers(None)] == a
        every = launcher(k8s_options, all_namespaces=True)
        assert sorted(w.handle for w in every.workers(None)) == sorted(a + b)
    finally:
        every.terminate(a + b)
    assert not jobs_left(emulator)


def test_finished_workers_are_listed_as_ended(k8s_options: dict[str, Any], emulator: K8sEmulator) -> None:
    """Before, a finished Job's worker was left out of the listing, and every worker's status was
    "unknown": ``pycrew monitor k8s list --ended`` showed nothing, and core could not see a
    worker that exited before it connected (it waited out seconds_launch)."""
    k8s = launcher(k8s_options)
    handles = k8s.launch(calls(1, seconds_launch="1.0"))  # no controller: the worker exits after 1 s
    try:
        running = wait_for(lambda: [w for w in k8s.workers(None) if w.state == "Running"], what="the worker to run")
        assert running[0].status == "running" and not running[0].ended, running
        [ended] = wait_for(lambda: [w for w in k8s.workers(None) if w.ended], what="the worker to end")
        assert (ended.status, ended.exit_code, ended.queued) == ("failed", 3, False), ended
        assert "exit code 3" in ended.reason and ended.handle == handles[0], ended
        assert jobs_left(emulator), "the finished Job stays until seconds_ttl"
        monitor = pycrew.Monitor("k8s", **k8s_options)
        assert monitor.list() == [] and [w.id for w in monitor.list(ended=True)] == [ended.id]
    finally:
        k8s.terminate(handles)
    [deleting] = [w for w in k8s.workers(None) if w.handle == handles[0]] or [None]
    assert deleting is None or (deleting.status, deleting.state) == ("cancelled", "Terminating"), deleting


def test_worker_logs_reads_the_pod_log(k8s_options: dict[str, Any], emulator: K8sEmulator) -> None:
    k8s = launcher(k8s_options)
    handles = k8s.launch(calls(1, seconds_launch="1.0"))
    try:
        text = wait_for(lambda: worker_logs(handles[0], k8s_options), what="a log line")
        assert "pycrew worker abcdef012345-0 could not connect to tcp://127.0.0.1:9" in text, text
        assert worker_logs(handles[0], K8sOptions.from_mapping(k8s_options), tail_lines=1).count("\n") <= 1
    finally:
        k8s.terminate(handles)
    with pytest.raises(K8sApiError, match="has no pod"):
        worker_logs("default/pycrew-never-was", k8s_options)
