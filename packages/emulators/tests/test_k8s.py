"""Tests of the Kubernetes API emulator, driven only through the official ``kubernetes`` client."""

from __future__ import annotations

import decimal
import json
import time
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import psutil
import pytest

kubernetes = pytest.importorskip("kubernetes")
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from pycrew_emulators.k8s import K8sEmulator, LabelSelector
from pycrew_emulators.k8s_resources import parse_quantity

T = TypeVar("T")
NS = "default"


def wait_until(fn: Callable[[], T], timeout: float = 20.0, what: str = "condition") -> T:
    """Poll ``fn`` until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


def process_gone(pid: int) -> bool:
    """True once ``pid`` no longer runs (gone or a zombie)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def make_job(
    code: str,
    *,
    name: str | None = None,
    generate_name: str | None = "t-",
    labels: dict[str, str] | None = None,
    image: str = "python:3.11",
    env: list[client.V1EnvVar] | None = None,
    env_from: list[client.V1EnvFromSource] | None = None,
    node_selector: dict[str, str] | None = None,
    grace: int | None = None,
    **spec: Any,
) -> client.V1Job:
    """A Job whose single container runs ``python -c code``."""
    spec.setdefault("backoff_limit", 0)
    container = client.V1Container(
        name="main", image=image, command=["python", "-c", code], env=env, env_from=env_from
    )
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=name, generate_name=None if name else generate_name),
        spec=client.V1JobSpec(
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(
                    restart_policy="Never",
                    containers=[container],
                    node_selector=node_selector,
                    termination_grace_period_seconds=grace,
                ),
            ),
            **spec,
        ),
    )


def conditions(job: client.V1Job) -> dict[str, str]:
    """``{type: reason}`` of a Job's true conditions."""
    return {c.type: c.reason for c in job.status.conditions or [] if c.status == "True"}


def finished(batch: client.BatchV1Api, name: str) -> Callable[[], client.V1Job | None]:
    def check() -> client.V1Job | None:
        job = batch.read_namespaced_job(name, NS)
        return job if {"Complete", "Failed"} & set(conditions(job)) else None

    return check


def job_pods(core: client.CoreV1Api, job_name: str) -> list[client.V1Pod]:
    return core.list_namespaced_pod(NS, label_selector=f"job-name={job_name}").items


def running_pod(core: client.CoreV1Api, job_name: str) -> Callable[[], client.V1Pod | None]:
    def check() -> client.V1Pod | None:
        pods = [p for p in job_pods(core, job_name) if p.status.phase == "Running"]
        return pods[0] if pods else None

    return check


def create_raw_job(api: client.ApiClient, body: dict[str, Any]) -> client.V1Job:
    """POST a Job manifest as is, through the client's HTTP layer.

    The typed ``create_namespaced_job`` of kubernetes 37.x validates dict bodies
    client-side (pydantic, extra fields forbidden), so a manifest with an unknown field
    never reaches the server that way; a launcher rendering YAML templates would.
    """
    request = api.param_serialize(
        "POST",
        "/apis/batch/v1/namespaces/{namespace}/jobs",
        path_params={"namespace": NS},
        header_params={"Content-Type": "application/json", "Accept": "application/json"},
        body=body,
        auth_settings=["BearerToken"],
    )
    response = api.call_api(*request)
    response.read()
    return api.response_deserialize(response, {"201": "V1Job"}).data


@pytest.fixture
def apis(k8s_emulator: K8sEmulator) -> Iterator[tuple[client.BatchV1Api, client.CoreV1Api]]:
    with k8s_emulator.api_client() as api:
        yield client.BatchV1Api(api), client.CoreV1Api(api)


# --------------------------------------------------------------------------- tests


def test_fixture_and_version(k8s_emulator: K8sEmulator) -> None:
    assert k8s_emulator.host.startswith("http://127.0.0.1:")
    config = json.loads(k8s_emulator.kubeconfig_path.read_text())
    assert config["current-context"] == "emulator"
    assert config["contexts"][0]["context"]["namespace"] == "default"
    with k8s_emulator.api_client() as api:
        version = client.VersionApi(api).get_code()
    assert (version.major, version.minor) == ("1", "33")


def test_job_completes(apis: tuple[client.BatchV1Api, client.CoreV1Api]) -> None:
    batch, core = apis
    created = batch.create_namespaced_job(NS, make_job("print('hello from pod')", labels={"app": "demo"}))
    name = created.metadata.name
    assert name.startswith("t-") and len(name) == len("t-") + 5
    assert created.spec.backoff_limit == 0 and created.spec.completions == 1
    uid = created.metadata.uid
    assert created.spec.selector.match_labels == {"batch.kubernetes.io/controller-uid": uid}

    job = wait_until(finished(batch, name), what="job finish")
    assert conditions(job) == {"SuccessCriteriaMet": "CompletionsReached", "Complete": "CompletionsReached"}
    assert job.status.succeeded == 1 and not job.status.failed and not job.status.active
    assert job.status.completion_time is not None and job.status.start_time is not None

    (pod,) = job_pods(core, name)
    assert pod.status.phase == "Succeeded"
    assert pod.metadata.labels["app"] == "demo"
    assert pod.metadata.labels["controller-uid"] == uid
    assert pod.metadata.labels["batch.kubernetes.io/job-name"] == name
    owner = pod.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid, owner.controller) == ("Job", name, uid, True)
    term = pod.status.container_statuses[0].state.terminated
    assert (term.exit_code, term.reason) == (0, "Completed")
    assert core.read_namespaced_pod_log(pod.metadata.name, NS) == "hello from pod\n"
    assert core.read_namespaced_pod(pod.metadata.name, NS).spec.node_name


def test_job_fails(apis: tuple[client.BatchV1Api, client.CoreV1Api]) -> None:
    batch, core = apis
    name = batch.create_namespaced_job(NS, make_job("import sys; sys.exit(3)")).metadata.name
    job = wait_until(finished(batch, name), what="job finish")
    assert conditions(job) == {"FailureTarget": "BackoffLimitExceeded", "Failed": "BackoffLimitExceeded"}
    assert job.status.failed == 1 and not job.status.succeeded
    (pod,) = job_pods(core, name)  # backoffLimit 0: exactly one pod
    assert pod.status.phase == "Failed"
    term = pod.status.container_statuses[0].state.terminated
    assert (term.exit_code, term.reason) == (3, "Error")


def test_backoff_limit_retries(apis: tuple[client.BatchV1Api, client.CoreV1Api]) -> None:
    batch, core = apis
    name = batch.create_namespaced_job(NS, make_job("raise SystemExit(1)", backoff_limit=1)).metadata.name
    job = wait_until(finished(batch, name), what="job finish")
    assert "Failed" in conditions(job)
    assert job.status.failed == 2
    assert len(job_pods(core, name)) == 2


def test_delete_background_kills_pod(k8s_emulator: K8sEmulator, apis: tuple[client.BatchV1Api, client.CoreV1Api]) -> None:
    batch, core = apis
    name = batch.create_namespaced_job(NS, make_job("import time; time.sleep(60)")).metadata.name
    pod = wait_until(running_pod(core, name), what="running pod")
    pid = k8s_emulator.pod_pid(pod.metadata.name)
    assert pid is not None and psutil.pid_exists(pid)
    answer = batch.delete_namespaced_job(name, NS, propagation_policy="Background")
    assert (answer if isinstance(answer, dict) else answer.to_dict())["status"] == "Success"
    with pytest.raises(ApiException) as err:
        batch.read_namespaced_job(name, NS)
    assert err.value.status == 404
    wait_until(lambda: process_gone(pid), timeout=10, what="pod process to die")
    wait_until(lambda: not job_pods(core, name), timeout=10, what="pods to be removed")


def test_delete_orphan_leaves_pod_running(
    k8s_emulator: K8sEmulator, apis: tuple[client.BatchV1Api, client.CoreV1Api]
) -> None:
    batch, core = apis
    name = batch.create_namespaced_job(NS, make_job("import time; time.sleep(60)")).metadata.name
    pod = wait_until(running_pod(core, name), what="running pod")
    pid = k8s_emulator.pod_pid(pod.metadata.name)
    assert pid is not None
    batch.delete_namespaced_job(name, NS, propagation_policy="Orphan")
    time.sleep(0.5)  # several controller periods
    (left,) = job_pods(core, name)
    assert left.status.phase == "Running" and not left.metadata.owner_references
    assert not process_gone(pid)
    # Deleting the pod itself (grace 0) kills the process and removes the pod.
    core.delete_namespaced_pod(left.metadata.name, NS, grace_period_seconds=0)
    wait_until(lambda: process_gone(pid), timeout=10, what="pod process to die")
    assert not job_pods(core, name)


def test_delete_foreground_waits_for_pods(
    k8s_emulator: K8sEmulator, apis: tuple[client.BatchV1Api, client.CoreV1Api]
) -> None:
    batch, core = apis
    # The process ignores SIGTERM: it lives until SIGKILL at the end of the grace period.
    code = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(60)"
    name = batch.create_namespaced_job(NS, make_job(code, grace=1)).metadata.name
    pod = wait_until(running_pod(core, name), what="running pod")
    wait_until(lambda: core.read_namespaced_pod_log(pod.metadata.name, NS), what="SIGTERM handler installed")
    pid = k8s_emulator.pod_pid(pod.metadata.name)
    assert pid is not None
    answer = batch.delete_namespaced_job(name, NS, propagation_policy="Foreground")
    assert answer["metadata"]["finalizers"] == ["foregroundDeletion"]
    time.sleep(0.3)
    assert batch.read_namespaced_job(name, NS).metadata.deletion_timestamp is not None
    terminating = core.read_namespaced_pod(pod.metadata.name, NS)
    assert terminating.metadata.deletion_timestamp is not None and not process_gone(pid)
    wait_until(lambda: process_gone(pid), timeout=10, what="SIGKILL after the grace period")
    wait_until(lambda: not batch.list_namespaced_job(NS).items, timeout=10, what="job removal")
    assert not job_pods(core, name)


def test_list_with_label_selectors(apis: tuple[client.BatchV1Api, client.CoreV1Api]) -> None:
    batch, _ = apis
    for name, labels in (("sel-a", {"team": "a"}), ("sel-b", {"team": "b"}), ("sel-c", None)):
        job = make_job("pass", name=name)
        job.metadata.labels = labels
        batch.create_namespaced_job(NS, job)

    def names(selector: str) -> list[str]:
        return sorted(j.metadata.name for j in batch.list_namespaced_job(NS, label_selector=selector).items)

    assert names("team=a") == ["sel-a"]
    assert names("team==b") == ["sel-b"]
    assert names("team!=a") == ["sel-b", "sel-c"]
    assert names("team") == ["sel-a", "sel-b"]
    assert names("!team") == ["sel-c"]
    assert names("team in (a,b),team notin (b)") == ["sel-a"]
    assert names("job-name=sel-c") == ["sel-c"]  # label added by the API server
    all_jobs = batch.list_job_for_all_namespaces(label_selector="team")
    assert len(all_jobs.items) == 2
    page = batch.list_namespaced_job(NS, limit=2)
    assert len(page.items) == 2 and page.metadata._continue
    rest = batch.list_namespaced_job(NS, limit=2, _continue=page.metadata._continue)
    assert [j.metadata.name for j in page.items + rest.items] == ["sel-a", "sel-b", "sel-c"]
    # deletecollection with a selector
    batch.delete_collection_namespaced_job(NS, label_selector="team", propagation_policy="Background")
    assert names("") == ["sel-c"]


def test_label_selector_parser() -> None:
    sel = LabelSelector("a=1, b != 2, c in (x, y), !d, e")
    assert sel.matches({"a": "1", "c": "y", "e": ""})
    assert not sel.matches({"a": "1", "c": "y", "e": "", "d": "z"})
    assert not sel.matches({"a": "1", "b": "2", "c": "x", "e": ""})


def test_watch_sees_added_and_modified(apis: tuple[client.BatchV1Api, client.CoreV1Api]) -> None:
    batch, core = apis
    start_rv = batch.list_namespaced_job(NS).metadata.resource_version
    name = batch.create_namespaced_job(NS, make_job("pass", labels={"w": "1"})).metadata.name
    seen: list[tuple[str, set[str]]] = []
    w = watch.Watch()
    for event in w.stream(
        batch.list_namespaced_job, NS, label_selector=f"job-name={name}", resource_version=start_rv, timeout_seconds=20
    ):
        assert isinstance(event["object"], client.V1Job)
        seen.append((event["type"], set(conditions(event["object"]))))
        if "Complete" in seen[-1][1]:
            w.stop()
    assert seen[0][0] == "ADDED"
    assert seen[-1] == ("MODIFIED", {"SuccessCriteriaMet", "Complete"})
    # Pods: a watch without resourceVersion starts with the current objects, and
    # timeout_seconds ends the stream.
    t0 = time.monotonic()
    events = list(watch.Watch().stream(core.list_namespaced_pod, NS, label_selector="w=1", timeout_seconds=1))
    assert 0.8 < time.monotonic() - t0 < 5
    assert [(e["type"], e["object"].status.phase) for e in events] == [("ADDED", "Succeeded")]


def test_invalid_manifests_are_rejected(apis: tuple[client.BatchV1Api, client.CoreV1Api]) -> None:
    batch, _ = apis
    body = batch.api_client.sanitize_for_serialization(make_job("pass", name="bad"))
    body["spec"]["template"]["spec"]["containers"][0]["bogusField"] = 1
    with pytest.raises(ApiException) as err:
        create_raw_job(batch.api_client, body)
    assert err.value.status == 422
    status = json.loads(err.value.body)
    assert (status["kind"], status["reason"], status["code"]) == ("Status", "Invalid", 422)
    assert "bogusField" in status["message"]

    body = batch.api_client.sanitize_for_serialization(make_job("pass", name="bad"))
    body["spec"]["template"]["spec"]["restartPolicy"] = "Always"  # schema-valid, API-invalid
    with pytest.raises(ApiException) as err:
        create_raw_job(batch.api_client, body)
    assert err.value.status == 422 and "restartPolicy" in json.loads(err.value.body)["message"]

    body = batch.api_client.sanitize_for_serialization(make_job("pass", name="bad"))
    body["spec"]["backoffLimit"] = "six"  # wrong type
    with pytest.raises(ApiException) as err:
        create_raw_job(batch.api_client, body)
    assert err.value.status == 422 and "backoffLimit" in json.loads(err.value.body)["message"]
    with pytest.raises(ApiException) as err:
        batch.create_namespaced_job(NS, make_job("pass", name="Not_A_Name"))
    assert err.value.status == 422
    assert not batch.list_namespaced_job(NS).items
    # A valid raw manifest is accepted.
    body = batch.api_client.sanitize_for_serialization(make_job("pass", name="raw"))
    assert create_raw_job(batch.api_client, body).metadata.name == "raw"

    batch.create_namespaced_job(NS, make_job("pass", name="twice"))
    with pytest.raises(ApiException) as err:
        batch.create_namespaced_job(NS, make_job("pass", name="twice"))
    assert err.value.status == 409 and json.loads(err.value.body)["reason"] == "AlreadyExists"
    with pytest.raises(ApiException) as err:
        batch.read_namespaced_job("missing", NS)
    assert err.value.status == 404 and json.loads(err.value.body)["reason"] == "NotFound"


def test_secret_env_reaches_process(apis: tuple[client.BatchV1Api, client.CoreV1Api]) -> None:
    batch, core = apis
    code = "import os; print(os.environ['TOKEN'], os.environ['S_extra'], os.environ['POD'])"
    env = [
        client.V1EnvVar(
            name="TOKEN", value_from=client.V1EnvVarSource(secret_key_ref=client.V1SecretKeySelector(name="auth", key="token"))
        ),
        client.V1EnvVar(
            name="POD", value_from=client.V1EnvVarSource(field_ref=client.V1ObjectFieldSelector(field_path="metadata.name"))
        ),
    ]
    env_from = [client.V1EnvFromSource(prefix="S_", secret_ref=client.V1SecretEnvSource(name="auth"))]
    # The secret does not exist yet: the pod waits with CreateContainerConfigError.
    job = batch.create_namespaced_job(NS, make_job(code, env=env, env_from=env_from))
    name = job.metadata.name

    def waiting_reason() -> str | None:
        pods = job_pods(core, name)
        statuses = pods[0].status.container_statuses if pods else None
        return statuses[0].state.waiting.reason if statuses and statuses[0].state.waiting else None

    assert wait_until(waiting_reason, what="waiting pod") == "CreateContainerConfigError"
    owner = client.V1OwnerReference(api_version="batch/v1", kind="Job", name=name, uid=job.metadata.uid)
    core.create_namespaced_secret(
        NS,
        client.V1Secret(
            metadata=client.V1ObjectMeta(name="auth", labels={"pycrew": "1"}, owner_references=[owner]),
            string_data={"token": "s3cret", "extra": "more"},
        ),
    )
    secret = core.read_namespaced_secret("auth", NS)
    assert secret.data["token"] == "czNjcmV0" and secret.type == "Opaque"
    assert len(core.list_namespaced_secret(NS, label_selector="pycrew=1").items) == 1
    assert "Complete" in conditions(wait_until(finished(batch, name), what="job finish"))
    (pod,) = job_pods(core, name)
    assert core.read_namespaced_pod_log(pod.metadata.name, NS) == f"s3cret more {pod.metadata.name}\n"
    # The secret is owned by the job: deleting the job (Background) collects it.
    batch.delete_namespaced_job(name, NS, propagation_policy="Background")
    wait_until(lambda: not core.list_namespaced_secret(NS).items, timeout=10, what="secret garbage collection")


def test_api_faults(k8s_emulator: K8sEmulator, apis: tuple[client.BatchV1Api, client.CoreV1Api]) -> None:
    batch, _ = apis
    k8s_emulator.faults.fail_next(1, status=503)
    with pytest.raises(ApiException) as err:
        batch.list_namespaced_job(NS)
    assert err.value.status == 503
    status = json.loads(err.value.body)
    assert (status["kind"], status["status"], status["reason"]) == ("Status", "Failure", "ServiceUnavailable")
    batch.list_namespaced_job(NS)  # the next call succeeds

    k8s_emulator.faults.throttle_next(1)
    with pytest.raises(ApiException) as err:
        batch.create_namespaced_job(NS, make_job("pass"))
    assert err.value.status == 429 and err.value.headers["Retry-After"] == "1"
    assert json.loads(err.value.body)["reason"] == "TooManyRequests"
    assert not batch.list_namespaced_job(NS).items  # the throttled create did nothing

    k8s_emulator.faults.fail_next(1, status=500, only="create_namespaced_job")
    batch.list_namespaced_job(NS)  # other operations are not affected
    with pytest.raises(ApiException) as err:
        batch.create_namespaced_job(NS, make_job("pass"))
    assert err.value.status == 500

    k8s_emulator.faults.delay(0.3)
    t0 = time.monotonic()
    batch.list_namespaced_job(NS)
    assert time.monotonic() - t0 >= 0.3


def test_image_pull_error(k8s_emulator: K8sEmulator, apis: tuple[client.BatchV1Api, client.CoreV1Api]) -> None:
    batch, core = apis
    k8s_emulator.runner.missing_images.add("registry.example/missing:1")
    name = batch.create_namespaced_job(NS, make_job("pass", image="registry.example/missing:1")).metadata.name

    def reason() -> str | None:
        pods = job_pods(core, name)
        statuses = pods[0].status.container_statuses if pods else None
        return statuses[0].state.waiting.reason if statuses and statuses[0].state.waiting else None

    assert wait_until(reason, what="image pull error") in ("ErrImagePull", "ImagePullBackOff")
    wait_until(lambda: reason() == "ImagePullBackOff", timeout=5, what="ImagePullBackOff")
    (pod,) = job_pods(core, name)
    assert pod.status.phase == "Pending"
    with pytest.raises(ApiException) as err:
        core.read_namespaced_pod_log(pod.metadata.name, NS)
    assert err.value.status == 400
    assert not conditions(batch.read_namespaced_job(name, NS))
    # Once the image "appears", the kubelet's next pull attempt succeeds.
    k8s_emulator.runner.missing_images.clear()
    assert "Complete" in conditions(wait_until(finished(batch, name), what="job finish"))


def test_unschedulable(k8s_emulator: K8sEmulator, apis: tuple[client.BatchV1Api, client.CoreV1Api]) -> None:
    batch, core = apis

    def scheduled_condition(job_name: str) -> Callable[[], Any]:
        def check() -> Any:
            pods = job_pods(core, job_name)
            conds = {c.type: c for c in (pods[0].status.conditions or [])} if pods else {}
            return conds.get("PodScheduled")

        return check

    k8s_emulator.unschedulable = True
    name = batch.create_namespaced_job(NS, make_job("pass")).metadata.name
    cond = wait_until(scheduled_condition(name), what="PodScheduled condition")
    assert (cond.status, cond.reason) == ("False", "Unschedulable")
    time.sleep(0.3)
    (pod,) = job_pods(core, name)
    assert pod.status.phase == "Pending" and not pod.spec.node_name
    assert not k8s_emulator.runner.list()  # nothing ever ran
    k8s_emulator.unschedulable = False
    assert "Complete" in conditions(wait_until(finished(batch, name), what="job finish"))

    # A node selector that matches no node.
    name = batch.create_namespaced_job(NS, make_job("pass", node_selector={"gpu": "h100"})).metadata.name
    cond = wait_until(scheduled_condition(name), what="PodScheduled condition")
    assert (cond.status, cond.reason) == ("False", "Unschedulable")
    assert "node affinity/selector" in cond.message



def test_pod_quota_refuses_pods_with_failed_create_events(
    k8s_emulator: K8sEmulator, apis: tuple[client.BatchV1Api, client.CoreV1Api]
) -> None:
    """As the real job controller does when a ResourceQuota refuses its pod: no pod, a Warning
    FailedCreate event on the Job (repeats counted), and the pod once the quota allows it."""
    batch, core = apis
    quota = "exceeded quota: compute-resources, requested: requests.cpu=2, used: requests.cpu=1, limited: requests.cpu=2"
    k8s_emulator.pod_quota = quota
    name = batch.create_namespaced_job(NS, make_job("pass")).metadata.name
    selector = f"involvedObject.kind=Job,involvedObject.name={name},reason=FailedCreate"
    (event,) = wait_until(lambda: core.list_namespaced_event(NS, field_selector=selector).items, what="FailedCreate event")
    assert event.type == "Warning" and event.message.startswith(f'Error creating: pods "{name}-')
    assert event.message.endswith(f'" is forbidden: {quota}') and event.involved_object.kind == "Job"
    assert not job_pods(core, name) and not core.list_namespaced_event(NS, field_selector="reason=Other").items
    wait_until(lambda: core.list_namespaced_event(NS, field_selector=selector).items[0].count >= 2, what="a repeat")
    k8s_emulator.pod_quota = None
    assert "Complete" in conditions(wait_until(finished(batch, name), what="job finish"))

def test_active_deadline(k8s_emulator: K8sEmulator, apis: tuple[client.BatchV1Api, client.CoreV1Api]) -> None:
    batch, core = apis
    job = make_job("import time; time.sleep(60)", active_deadline_seconds=1)
    name = batch.create_namespaced_job(NS, job).metadata.name
    pod = wait_until(running_pod(core, name), what="running pod")
    pid = k8s_emulator.pod_pid(pod.metadata.name)
    job = wait_until(finished(batch, name), what="job finish")
    assert conditions(job)["Failed"] == "DeadlineExceeded"
    assert pid is not None and process_gone(pid)
    assert not job_pods(core, name)  # active pods are deleted


def test_indexed_job_and_ttl(apis: tuple[client.BatchV1Api, client.CoreV1Api]) -> None:
    batch, core = apis
    job = make_job(
        "import os; print('index', os.environ['JOB_COMPLETION_INDEX'])",
        completions=3,
        parallelism=2,
        completion_mode="Indexed",
        ttl_seconds_after_finished=1,
    )
    name = batch.create_namespaced_job(NS, job).metadata.name
    job = wait_until(finished(batch, name), what="job finish")
    assert "Complete" in conditions(job)
    assert job.status.succeeded == 3 and job.status.completed_indexes == "0-2"
    pods = job_pods(core, name)
    logs = sorted(core.read_namespaced_pod_log(p.metadata.name, NS) for p in pods)
    assert logs == ["index 0\n", "index 1\n", "index 2\n"]
    # ttlSecondsAfterFinished: the job and its pods go away by themselves.
    wait_until(lambda: not batch.list_namespaced_job(NS).items, timeout=10, what="TTL deletion")
    wait_until(lambda: not job_pods(core, name), timeout=10, what="pods deleted with the job")


# --------------------------------------------------------------------------- namespaces and resources


def with_resources(job: client.V1Job, requests: dict[str, str] | None = None, limits: dict[str, str] | None = None) -> client.V1Job:
    job.spec.template.spec.containers[0].resources = client.V1ResourceRequirements(requests=requests, limits=limits)
    return job


def refusal(fn: Any, *args: Any) -> tuple[int, dict[str, Any]]:
    with pytest.raises(ApiException) as err:
        fn(*args)
    return err.value.status, json.loads(err.value.body)


def test_parse_quantity() -> None:
    assert parse_quantity("500m") == parse_quantity(0.5) == parse_quantity("0.5")
    assert parse_quantity("1Gi") == 2**30 and parse_quantity("1G") == 10**9 and parse_quantity("1e3") == 1000
    for bad in ("4GBs", "lots", "1.2.3", "1Gx"):
        with pytest.raises(ValueError):
            parse_quantity(bad)


def test_parse_quantity_does_not_depend_on_the_callers_decimal_context() -> None:
    with decimal.localcontext() as context:
        context.prec = 7
        context.traps[decimal.Inexact] = True
        assert parse_quantity("1536Mi") == 1536 * 2**20 and parse_quantity("1e21") == 10**21


def test_create_in_a_missing_namespace_is_not_found(
    k8s_emulator: K8sEmulator, apis: tuple[client.BatchV1Api, client.CoreV1Api]
) -> None:
    batch, core = apis
    status, body = refusal(batch.create_namespaced_job, "nope", make_job("pass"))
    assert (status, body["reason"], body["message"]) == (404, "NotFound", 'namespaces "nope" not found'), body
    assert body["details"] == {"name": "nope", "kind": "namespaces"}
    secret = client.V1Secret(metadata=client.V1ObjectMeta(name="s"), string_data={"k": "v"})
    assert refusal(core.create_namespaced_secret, "nope", secret)[0] == 404
    assert batch.list_namespaced_job("nope").items == []  # listing a missing namespace is empty, as for real
    k8s_emulator.namespaces.add("nope")
    assert batch.create_namespaced_job("nope", make_job("pass")).metadata.namespace == "nope"


@pytest.mark.parametrize(
    ("requests", "limits", "message"),
    [
        ({"cpu": "2"}, {"cpu": "1"}, 'resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1'),
        ({"memory": "2Gi"}, {"memory": "1Gi"},
         'resources.requests: Invalid value: "2Gi": must be less than or equal to memory limit of 1Gi'),
        ({"nvidia.com/gpu": "1"}, {"nvidia.com/gpu": "2"},
         'resources.requests: Invalid value: "1": must be equal to nvidia.com/gpu limit of 2'),
        (None, {"cpu": "-1"}, 'resources.limits[cpu]: Invalid value: "-1": must be greater than or equal to 0'),
    ],
)
def test_invalid_resources_are_refused_as_invalid(
    apis: tuple[client.BatchV1Api, client.CoreV1Api], requests: Any, limits: Any, message: str
) -> None:
    batch, _ = apis
    status, body = refusal(batch.create_namespaced_job, NS, with_resources(make_job("pass", name="res"), requests, limits))
    assert (status, body["reason"]) == (422, "Invalid"), body
    assert body["message"] == f'Job.batch "res" is invalid: spec.template.spec.containers[0].{message}', body
    assert not batch.list_namespaced_job(NS).items


def test_malformed_quantity_is_a_bad_request(apis: tuple[client.BatchV1Api, client.CoreV1Api]) -> None:
    batch, _ = apis
    body = batch.api_client.sanitize_for_serialization(make_job("pass", name="res"))
    body["spec"]["template"]["spec"]["containers"][0]["resources"] = {"requests": {"memory": "4GBs"}}
    status, answer = refusal(create_raw_job, batch.api_client, body)
    assert (status, answer["reason"]) == (400, "BadRequest"), answer
    assert answer["message"].startswith('Job in version "v1" cannot be handled as a Job: quantities must match'), answer


def test_pod_requesting_more_than_the_node_has_is_unschedulable_and_defaults_requests(
    k8s_emulator: K8sEmulator, apis: tuple[client.BatchV1Api, client.CoreV1Api]
) -> None:
    batch, core = apis
    k8s_emulator.node_capacity = {"cpu": "2", "memory": "4Gi", "pods": "110"}
    # Only limits: the pod's requests default to them (3 cpu > 2, 8Gi > 4Gi).
    job = with_resources(make_job("pass"), limits={"cpu": "3", "memory": "8Gi"})
    name = batch.create_namespaced_job(NS, job).metadata.name

    def unschedulable() -> Any:
        pods = job_pods(core, name)
        conds = {c.type: c for c in (pods[0].status.conditions or [])} if pods else {}
        cond = conds.get("PodScheduled")
        return cond if cond is not None and cond.reason == "Unschedulable" else None

    cond = wait_until(unschedulable, what="Unschedulable condition")
    assert cond.message.startswith("0/1 nodes are available: 1 Insufficient cpu, 1 Insufficient memory. preemption:"), cond.message
    (pod,) = job_pods(core, name)
    assert pod.spec.containers[0].resources.requests == {"cpu": "3", "memory": "8Gi"}
    assert pod.status.phase == "Pending" and not pod.spec.node_name and not k8s_emulator.runner.list()
    # A node that fits (as after a scale-up): the pod runs.
    k8s_emulator.node_capacity = {"cpu": "4", "memory": "16Gi", "pods": "110"}
    assert "Complete" in conditions(wait_until(finished(batch, name), what="job finish"))


def test_default_node_capacity_fits_small_pods_not_huge_ones(
    k8s_emulator: K8sEmulator, apis: tuple[client.BatchV1Api, client.CoreV1Api]
) -> None:
    batch, core = apis
    small = batch.create_namespaced_job(NS, with_resources(make_job("pass"), {"cpu": "100m", "memory": "64Mi"})).metadata.name
    huge = batch.create_namespaced_job(NS, with_resources(make_job("pass"), {"cpu": "1000"})).metadata.name
    assert "Complete" in conditions(wait_until(finished(batch, small), what="small job finish"))
    (pod,) = job_pods(core, huge)
    assert pod.status.phase == "Pending" and not pod.spec.node_name


def test_container_above_its_memory_limit_is_oom_killed(apis: tuple[client.BatchV1Api, client.CoreV1Api]) -> None:
    batch, core = apis
    code = "import time; b = bytearray(300 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(30)"
    job = with_resources(make_job(code), limits={"memory": "200Mi"})
    name = batch.create_namespaced_job(NS, job).metadata.name
    job = wait_until(finished(batch, name), what="job failure")
    assert "Failed" in conditions(job)
    (pod,) = job_pods(core, name)
    terminated = pod.status.container_statuses[0].state.terminated
    assert (terminated.reason, terminated.exit_code) == ("OOMKilled", 137), terminated
    assert pod.status.phase == "Failed"
