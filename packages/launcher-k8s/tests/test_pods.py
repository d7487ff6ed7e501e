"""Reading pod and Job status as a real cluster reports it (JSON as `kubectl get -o json` shows)."""

from __future__ import annotations

from typing import Any

from pycrew_k8s.pods import job_failure, job_finished, newest, pod_state, timestamp, worker_status


def pod(phase: str = "Pending", state: dict[str, Any] | None = None, conditions: list[dict[str, Any]] | None = None,
        node: str | None = None, **status: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"metadata": {"name": "w-abcde"}, "spec": {}, "status": {"phase": phase, **status}}
    if node:
        out["spec"]["nodeName"] = node
    if state is not None:
        out["status"]["containerStatuses"] = [{"name": "worker", "state": state}]
    if conditions is not None:
        out["status"]["conditions"] = conditions
    return out


def test_running_and_succeeded_pods_have_started() -> None:
    running = pod_state(pod("Running", {"running": {"startedAt": "2025-01-01T00:00:00Z"}}, node="node-1"))
    assert (running.outcome, running.state, running.node, running.reason) == ("started", "Running", "node-1", "")
    assert pod_state(pod("Succeeded", {"terminated": {"exitCode": 0, "reason": "Completed"}})).outcome == "started"


def test_image_pull_errors_fail_with_the_kubelet_message() -> None:
    backoff = pod_state(pod(state={"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "x:1"'}}))
    assert backoff.outcome == "failed" and backoff.reason == 'ImagePullBackOff: Back-off pulling image "x:1"'
    assert backoff.state == "ImagePullBackOff"
    assert pod_state(pod(state={"waiting": {"reason": "ErrImagePull"}})).outcome == "failed"
    assert pod_state(pod(state={"waiting": {"reason": "InvalidImageName", "message": "bad"}})).outcome == "failed"


def test_unschedulable_is_stuck_with_the_scheduler_message() -> None:
    message = "0/3 nodes are available: 3 Insufficient nvidia.com/gpu. preemption: 0/3 nodes are available."
    state = pod_state(pod(conditions=[{"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}]))
    assert state.outcome == "stuck" and state.reason == f"Unschedulable: {message}" and state.state == "Unschedulable"


def test_missing_secret_is_stuck_not_failed() -> None:
    waiting = {"waiting": {"reason": "CreateContainerConfigError", "message": 'secret "db" not found'}}
    state = pod_state(pod(state=waiting, node="n"))
    assert state.outcome == "stuck" and state.reason == 'CreateContainerConfigError: secret "db" not found'


def test_pulling_and_creating_are_on_their_way() -> None:
    assert pod_state(pod(state={"waiting": {"reason": "ContainerCreating"}}, node="n")).outcome == "waiting"
    assert pod_state(pod()).outcome == "waiting"
    assert pod_state(pod(conditions=[{"type": "PodScheduled", "status": "True"}])).state == "Pending"


def test_worker_that_could_not_run_fails_one_that_ran_has_started() -> None:
    no_pycrew = pod_state(pod("Failed", {"terminated": {"exitCode": 1, "reason": "Error"}}))
    assert no_pycrew.outcome == "failed" and no_pycrew.reason == "Error (exit code 1)" and no_pycrew.exit_code == 1
    start_error = pod("Failed", {"terminated": {"exitCode": 128, "reason": "StartError", "message": 'exec: "python": not found'}})
    assert pod_state(start_error).reason == 'StartError: exec: "python": not found (exit code 128)'
    for code in (0, 3, 4, 137, 143):
        state = pod_state(pod("Failed", {"terminated": {"exitCode": code, "reason": "Error"}}))
        assert state.outcome == "started", f"exit code {code} means the worker ran"


def test_evicted_pod_reports_its_own_reason() -> None:
    state = pod_state(pod("Failed", reason="Evicted", message="The node was low on resource: memory."))
    assert state.outcome == "failed" and state.reason == "Evicted: The node was low on resource: memory."


def test_finished_and_failed_jobs() -> None:
    failed = {"status": {"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded",
                                         "message": "Job was active longer than specified deadline"}]}}
    assert job_finished(failed) and job_failure(failed) == "DeadlineExceeded: Job was active longer than specified deadline"
    assert not job_finished({"status": {"active": 1}}) and job_failure({}) == ""
    assert job_finished({"status": {"conditions": [{"type": "SuccessCriteriaMet", "status": "True"}]}})
    assert not job_finished({"status": {"conditions": [{"type": "Failed", "status": "False"}]}})


def test_worker_status_from_the_job_and_its_pod() -> None:
    active: dict[str, Any] = {"metadata": {}, "status": {"active": 1}}
    complete = {"metadata": {}, "status": {"conditions": [{"type": "Complete", "status": "True"}]}}
    failed = {"metadata": {}, "status": {"conditions": [{"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded"}]}}
    deleting = {"metadata": {"deletionTimestamp": "2025-01-01T00:00:00Z"}, "status": {"active": 1}}
    running = pod_state(pod("Running", {"running": {}}))
    assert worker_status(active, None) == ("pending", False)
    assert worker_status(active, pod_state(pod(state={"waiting": {"reason": "ContainerCreating"}}))) == ("pending", False)
    assert worker_status(active, running) == ("running", False)
    assert worker_status(active, pod_state(pod(state={"waiting": {"reason": "InvalidImageName"}}))) == ("failed", True)
    assert worker_status(active, pod_state(pod("Unknown"))) == ("unknown", False)
    assert worker_status(active, pod_state(pod("Succeeded", {"terminated": {"exitCode": 0}}))) == ("done", False)
    assert worker_status(active, pod_state(pod("Failed", {"terminated": {"exitCode": 3}}))) == ("failed", False)
    assert worker_status(complete, None) == ("done", False) and worker_status(failed, None) == ("failed", False)
    assert worker_status(failed, running) == ("failed", False), "a Job past its deadline: its pod is being killed"
    assert worker_status(deleting, running) == ("cancelled", False)


def test_newest_pod_and_timestamps() -> None:
    old = {"metadata": {"name": "a", "creationTimestamp": "2025-01-01T00:00:00Z"}}
    new = {"metadata": {"name": "b", "creationTimestamp": "2025-01-01T00:00:05Z"}}
    assert newest([new, old]) is new and newest([]) is None
    assert timestamp("1970-01-01T00:01:00Z") == 60.0 and timestamp(None) is None and timestamp("soon") is None
