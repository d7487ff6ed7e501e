"""A worker's Job deleted from outside pycrew before its worker connects fails its launch at once.

``kubectl delete job`` (background propagation) or a cleanup script removes the Job and its
pod from the API at once: before, the monitor simply did not list the worker any more, so
core waited ``seconds_launch`` and then blamed the network ("the workers cannot reach
tcp://..."). Now the launcher remembers the Jobs it launched, confirms a missing one gone
with a direct read (404), and lists it as ``cancelled`` (state ``Deleted``) with that reason.
The emulator's ``stuck`` knob holds pods in ContainerCreating, so no worker connects.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from test_e2e import wait_for

import pycrew
from pycrew_emulators.k8s import K8sEmulator
from pycrew_k8s import K8sOptions
from pycrew_k8s.launcher import K8sLauncher, parse_handle


@pytest.fixture(autouse=True)
def _state_dir(pycrew_tmp_state_dir: Any) -> None:
    """Controller records in a private directory."""


def calls(n: int) -> list[pycrew.WorkerCall]:
    """Worker calls whose workers never find a controller (they would wait 60 s)."""
    out = []
    for k in range(n):
        command = pycrew.WorkerCommand(url="tcp://127.0.0.1:9", instance=f"0ddba11c0ffe-{k}", worker=k + 1, launcher="k8s",
                                       controller="tests", controller_id="c0ffee0000000002", seconds_launch=60.0)
        out.append(pycrew.WorkerCall.from_command(command, python="python", env={}, token=f"token-{k}-secret", name=f"w{k}"))
    return out


def delete_from_outside(emulator: K8sEmulator, name: str) -> None:
    """``kubectl delete job NAME`` (background propagation: the Job goes at once, its pod after it)."""
    with emulator.api_client() as api:
        client.BatchV1Api(api).delete_namespaced_job(name, "default", propagation_policy="Background")


def jobs_left(emulator: K8sEmulator) -> list[str]:
    return [name for (_, name) in emulator._store["jobs"]]


@pytest.fixture
def stuck_launcher(k8s_options: dict[str, Any], emulator: K8sEmulator) -> Iterator[K8sLauncher]:
    """A launcher whose pods stay in ContainerCreating (no launch check): no worker ever runs."""
    emulator.stuck = True
    k8s = K8sLauncher("k8s", K8sOptions.from_mapping({**k8s_options, "seconds_launch_check": 0}))
    yield k8s
    emulator.stuck = False


@pytest.mark.parametrize("check", [{"seconds_launch_check": 0}, {}], ids=["no launch check", "default launch check"])
def test_a_job_deleted_from_outside_before_its_worker_connects_fails_the_launch_at_once(
    k8s_options: dict[str, Any], emulator: K8sEmulator, check: dict[str, Any]
) -> None:
    """With the default launch check (15 s), the Job is deleted while the launch hook still
    watches its pod: the hook stops waiting for it, and the monitor reports it."""
    emulator.stuck = True  # pods stay in ContainerCreating: no worker connects
    deleted: list[tuple[str, float]] = []
    stop = threading.Event()

    def cleanup() -> None:  # deletes every Job whose pod and Secret exist (its launch is done), as a script would
        with emulator.api_client() as api:
            batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
            while not stop.is_set():
                pods = {p.metadata.labels.get("batch.kubernetes.io/job-name") for p in core.list_namespaced_pod("default").items}
                secrets = {s.metadata.name for s in core.list_namespaced_secret("default").items}
                for job in batch.list_namespaced_job("default").items:
                    if job.metadata.name in pods and job.metadata.name in secrets:
                        batch.delete_namespaced_job(job.metadata.name, "default", propagation_policy="Background")
                        deleted.append((job.metadata.name, time.monotonic()))
                time.sleep(0.2)

    janitor = threading.Thread(target=cleanup, daemon=True)
    c = pycrew.controller("k8s", workers=1, host="127.0.0.1", seconds_launch=60, launch_max=2, **{**k8s_options, **check})
    started = time.monotonic()
    try:
        janitor.start()
        future = c.submit(abs, -1)
        with pytest.raises(pycrew.LaunchError) as err:
            future.result(timeout=30)
        failed = time.monotonic()
    finally:
        stop.set()
        janitor.join(timeout=10)
        c.terminate()
        emulator.stuck = False
    message = str(err.value)
    assert failed - started < 30, f"the LaunchError came after {failed - started:.1f} s"
    assert len(deleted) == 2, f"each of the two launches had its Job deleted once: {deleted}"
    assert failed - deleted[-1][1] < 10, f"the second deletion failed its launch after {failed - deleted[-1][1]:.1f} s"
    assert "launch_max=2" in message, message
    assert "the worker was cancelled before it connected" in message, message
    assert f"its Job default/{deleted[-1][0]} was deleted from outside pycrew" in message, message
    assert "cannot reach" not in message and "seconds_launch" not in message.split("last reason:")[-1], message
    wait_for(lambda: not jobs_left(emulator) and not emulator._store["pods"] and not emulator._store["secrets"],
             what="every Job, pod and Secret to go")
    wait_for(lambda: not emulator.runner.alive(), what="no worker process left")


def test_only_jobs_deleted_from_outside_are_reported_not_those_pycrew_terminated(
    stuck_launcher: K8sLauncher, emulator: K8sEmulator
) -> None:
    k8s = stuck_launcher
    ours, theirs = k8s.launch(calls(2))
    k8s.terminate([ours])  # pycrew's own deletion: no news
    delete_from_outside(emulator, parse_handle(theirs)[1])
    listed = k8s.workers("c0ffee0000000002")
    assert [(w.handle, w.status, w.state, w.ended) for w in listed] == [(theirs, "cancelled", "Deleted", True)], listed
    [worker] = listed
    assert (worker.instance, worker.worker, worker.controller, worker.controller_id) == (
        "0ddba11c0ffe-1", 2, "tests", "c0ffee0000000002"
    ), worker
    assert f"its Job {theirs} was deleted from outside pycrew" in worker.reason, worker.reason
    assert not k8s.workers("another-controller"), "another controller's listing shows none of them"
    assert [w.handle for w in k8s.workers(None)] == [theirs], "so does the listing of every controller"
    k8s.terminate([theirs])  # the controller terminates the worker whose launch failed: forgotten
    assert not k8s.workers(None)


def test_a_job_missing_from_the_listing_but_still_there_is_not_reported(
    stuck_launcher: K8sLauncher, emulator: K8sEmulator
) -> None:
    """Absence from a listing (which may lag or page) is never enough: only a read that finds
    nothing is. A Job relabelled from outside (as ``kubectl label`` does) is not listed any
    more, yet a read finds it: nothing is reported, until it is really deleted."""
    k8s = stuck_launcher
    [handle] = k8s.launch(calls(1))
    name = parse_handle(handle)[1]
    try:
        with emulator._lock:  # kubectl label job NAME pycrew.io/launcher=elsewhere --overwrite
            job = emulator._store["jobs"][("default", name)]
            job["metadata"]["labels"]["pycrew.io/launcher"] = "elsewhere"
            emulator._put("jobs", job, "MODIFIED")
        for _ in range(3):
            assert k8s.workers(None) == [], "a Job a read still finds is not reported"
        delete_from_outside(emulator, name)
        [worker] = k8s.workers(None)
        assert (worker.handle, worker.status, worker.state) == (handle, "cancelled", "Deleted"), worker
    finally:
        k8s.terminate([handle])


def test_deleted_jobs_are_reported_for_a_while_then_forgotten_and_the_memory_is_bounded(
    stuck_launcher: K8sLauncher, emulator: K8sEmulator
) -> None:
    from pycrew_k8s.vanished import LaunchedJobs

    k8s = stuck_launcher
    k8s.launched = LaunchedJobs(limit=2, seconds_keep=1.0)
    handles = k8s.launch(calls(3))  # the first is dropped: at most 2 are remembered
    try:
        for handle in handles:
            delete_from_outside(emulator, parse_handle(handle)[1])
        assert sorted(w.handle for w in k8s.workers(None)) == sorted(handles[1:])
        time.sleep(1.2)
        assert k8s.workers(None) == [], "reported for seconds_keep, then forgotten"
    finally:
        k8s.terminate(handles)
