"""Controllers on the k8s launcher end to end (the emulator's pods are local processes).

What the conformance suite does not cover: launch errors that name the platform's reason,
API faults during a controller's work, the deadline from seconds_wall, finished Jobs
going away with their Secrets, and a deleted pod's worker leaving politely while its
replacement starts.
"""

from __future__ import annotations

import os
import time
from typing import Any

import pytest

import pycrew
from pycrew_emulators.k8s import K8sEmulator


def wait_for(condition: Any, timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        time.sleep(0.05)
    return value


@pytest.fixture(autouse=True)
def _state_dir(pycrew_tmp_state_dir: Any) -> None:
    """Controller records in a private directory."""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ({"image": "MISSING"}, "ErrImagePull"),
        ({"node_selector": {"disktype": "ssd"}, "seconds_launch_check": 1.0}, "Unschedulable: 0/1 nodes are available"),
    ],
)
def test_launch_error_names_the_platforms_reason(
    k8s_options: dict[str, Any], missing_image: str, bad: dict[str, Any], reason: str
) -> None:
    bad = {k: (missing_image if v == "MISSING" else v) for k, v in bad.items()}
    message, _ = launch_error(k8s_options, seconds_launch=10, **bad)
    assert "launch_max=2" in message and "PodStartError" in message, message
    assert reason in message.replace("ImagePullBackOff", "ErrImagePull"), message


def launch_error(k8s_options: dict[str, Any], **options: Any) -> tuple[str, float]:
    """The LaunchError of a controller whose one worker cannot start, and how long it took."""
    started = time.monotonic()
    c = pycrew.controller("k8s", **{"workers": 1, "host": "127.0.0.1", "launch_max": 2, "seconds_launch": 30, **k8s_options, **options})
    try:
        c.push(os.getpid)
        with pytest.raises(pycrew.LaunchError) as err:
            c.wait(timeout=60)
    finally:
        c.terminate()
    return str(err.value), time.monotonic() - started


@pytest.mark.parametrize("python", ["exit1.sh", "/no/such/python"], ids=["exits 1", "no interpreter"])
def test_worker_that_ended_before_connecting_is_reported_as_on_other_cloud_launchers(
    k8s_options: dict[str, Any], tmp_path: Any, python: str
) -> None:
    """As Cloud Run and AWS Batch report it: the worker failed before it connected, its exit code,
    the platform's reason and the end of its log. Before, the launch hook raised, so core blamed
    "the launcher's call to the platform"; the message showed the worker command twice and joined
    the log lines as "log:; Traceback ...; ModuleNotFoundError ..."."""
    if python == "exit1.sh":
        script = tmp_path / "exit1.sh"
        script.write_text('#!/bin/sh\necho "Traceback (most recent call last):" >&2\n'
                          'echo "ModuleNotFoundError: No module named \'pycrew\'" >&2\nexit 1\n')
        script.chmod(0o755)
        python, code, says = str(script), 1, ["Error", "\n    Traceback (most recent call last):\n    ModuleNotFoundError"]
    else:
        code, says = 128, ["StartError", "/no/such/python"]
    message, seconds = launch_error(k8s_options, python=python)
    assert f"last reason: the worker failed before it connected (exit code {code})" in message, message
    assert all(s in message for s in says), message
    assert "launch hook failed" not in message and "launcher's call to the platform" not in message, message
    assert message.count("-m pycrew.worker") == 1, f"the worker command should appear once: {message}"
    assert "log:;" not in message and "; Traceback" not in message, message
    assert seconds < 20, f"a worker that ended is reported at once, not after seconds_launch: {seconds:.1f} s"


def test_pods_a_quota_refuses_fail_the_work_within_seconds_naming_the_quota(
    k8s_options: dict[str, Any], emulator: K8sEmulator
) -> None:
    quota = "exceeded quota: compute-resources, requested: requests.cpu=1, used: requests.cpu=4, limited: requests.cpu=4"
    emulator.pod_quota = quota
    message, seconds = launch_error(k8s_options, cpu=1)
    assert quota in message and "ResourceQuota 'compute-resources', not a missing permission" in message, message
    assert "Run fewer workers" in message and "no pod yet" not in message, message
    assert seconds < 15, f"two launches refused by a quota should fail within seconds: {seconds:.1f} s"


def first_launch_error(k8s_options: dict[str, Any], **options: Any) -> tuple[str, float]:
    """The LaunchError of a controller with 1 worker and launch_max=1 submitting one task, and its time."""
    started = time.monotonic()
    c = pycrew.controller("k8s", workers=1, host="127.0.0.1", launch_max=1, **{**k8s_options, **options})
    try:
        future = c.submit(os.getpid)
        with pytest.raises(pycrew.LaunchError) as err:
            future.result(timeout=60)
    finally:
        c.terminate()
    return str(err.value), time.monotonic() - started


def test_missing_namespace_fails_within_seconds_naming_the_namespace_option(k8s_options: dict[str, Any]) -> None:
    message, seconds = first_launch_error(k8s_options, namespace="nope")
    assert 'HTTP 404 NotFound: namespaces "nope" not found' in message, message
    assert "The namespace 'nope' does not exist: set the namespace option" in message, message
    assert "kubectl create namespace nope" in message, message
    assert seconds < 10, f"a missing namespace should fail the first launch at once: {seconds:.1f} s"


def test_pod_larger_than_any_node_fails_naming_the_option_and_its_request(
    k8s_options: dict[str, Any], emulator: K8sEmulator
) -> None:
    """Before, the hint listed every option that could matter (cpu, memory, gpus, node_selector, ...);
    now it names the resource the scheduler found short and what the options request of it."""
    emulator.node_capacity = {"cpu": "2", "memory": "4Gi", "pods": "110"}
    message, seconds = first_launch_error(k8s_options, cpu=64, seconds_launch_check=2)
    assert "Unschedulable: 0/1 nodes are available: 1 Insufficient cpu" in message, message
    assert "No node has room for what each worker requests (Insufficient cpu: the cpu option asks for cpu=64)" in message, message
    assert seconds < 10, f"the launch check ends after seconds_launch_check=2: {seconds:.1f} s"


def test_controller_rides_out_api_faults(k8s_options: dict[str, Any], emulator: K8sEmulator) -> None:
    emulator.faults.fail_next(2, status=503, only="create_namespaced_job")
    emulator.faults.throttle_next(1, only="create_namespaced_secret")
    emulator.faults.fail_next(2, status=500, only="list_namespaced_pod")
    with pycrew.controller("k8s", workers=2, host="127.0.0.1", **k8s_options) as c:
        assert sorted(c.map(abs, range(-10, 0))) == list(range(1, 11))
        summary = c.summary().launcher
    assert summary["launch_failures"] == 0, summary
    assert emulator.faults.pending_count() == 0


def test_deadline_from_seconds_wall_and_cleanup_after_ttl(k8s_options: dict[str, Any], emulator: K8sEmulator) -> None:
    options = {**k8s_options, "seconds_ttl": 1, "seconds_deadline_margin": 30}
    with pycrew.controller("k8s", workers=1, host="127.0.0.1", seconds_wall=100, seconds_idle=1, **options) as c:
        c.submit(os.getpid).result(timeout=30)
        jobs = [job for (_, job) in emulator._store["jobs"]]
        assert len(jobs) == 1
        job = emulator.get_object("jobs", jobs[0])
        assert job is not None and job["spec"]["activeDeadlineSeconds"] == 130
        assert emulator.get_object("secrets", jobs[0]) is not None
        # seconds_idle=1: the worker exits; after seconds_ttl the Job, its pod and its Secret are gone
        wait_for(lambda: not emulator._store["jobs"] and not emulator._store["secrets"] and not emulator._store["pods"],
                 what="the finished Job, pod and Secret to be deleted after seconds_ttl")


def test_a_deleted_pod_finishes_its_task_while_a_replacement_runs_the_rest(
    k8s_options: dict[str, Any], emulator: K8sEmulator, tmp_path: Any
) -> None:
    """``kubectl delete pod``: SIGTERM, then SIGKILL after the grace period. The worker gives
    back what it has not started and finishes its running task; its replacement, launched at
    once, runs the rest meanwhile (with ``workers=1`` it could run nowhere else)."""
    from kubernetes import client

    marker, release = tmp_path / "started", tmp_path / "release"

    def long_task(marker: str, release: str) -> str:
        import os
        import pathlib
        import time

        pathlib.Path(marker).write_text(os.environ["HOSTNAME"])
        deadline = time.monotonic() + 120
        while not os.path.exists(release) and time.monotonic() < deadline:
            time.sleep(0.02)
        return os.environ["HOSTNAME"]

    def where(i: int) -> tuple[int, str]:
        import os

        return i, os.environ["HOSTNAME"]

    with pycrew.controller("k8s", workers=1, host="127.0.0.1", **k8s_options) as c:
        long = c.submit(long_task, str(marker), str(release))
        pod = wait_for(lambda: marker.exists() and marker.read_text(), 60, "the long task to start")
        tail = [c.submit(where, i) for i in range(5)]
        with emulator.api_client() as api:
            client.CoreV1Api(api).delete_namespaced_pod(pod, "default", grace_period_seconds=60)
        results = [f.result(timeout=120) for f in tail]
        assert [i for i, _ in results] == list(range(5))
        assert {host for _, host in results}.isdisjoint({pod}), "the deleted pod ran a task after its SIGTERM"
        assert not long.done(), "the running task should still be running (it waits for its release)"
        release.write_text("go")
        assert long.result(timeout=60) == pod, "the running task's result is delivered within the grace period"
        wait_for(lambda: emulator.get_object("pods", pod) is None, 30, "the deleted pod to go")
        s = c.summary()
    assert s.controller.retries == 0 and s.controller.crash == 0, s.controller
    assert s.workers[0].instances == 2 and s.workers[0].crashes == 0, s.workers[0]
    assert "SIGTERM" in s.workers[0].exit_reason, s.workers[0].exit_reason


def test_a_task_whose_pod_was_oom_killed_says_so(k8s_options: dict[str, Any]) -> None:
    """On 955853b the TaskCrashError said only "connection lost": core did not ask the monitor why the worker died."""

    def fill_memory(mib: int) -> None:  # (a closure: sent by value) the emulator, as the kubelet, OOM-kills it
        import time

        block = bytearray(mib * 2**20)
        block[::4096] = b"x" * len(block[::4096])
        time.sleep(60)

    with pycrew.controller("k8s", workers=1, host="127.0.0.1", crashes_max=1, memory_limit="200Mi", **k8s_options) as c:
        future = c.submit(fill_memory, 300)
        with pytest.raises(pycrew.TaskCrashError) as raised:
            future.result(timeout=120)
        message = str(raised.value)
        assert "(connection lost); the platform reports the worker as " in message and "OOMKilled" in message, message
        assert "137" in message, message
