"""The API helper: which failures are retried, how long, and what the final error says."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from pycrew_k8s.api import K8sApiError, RetryPolicy, request

FAST = RetryPolicy(attempts_max=4, seconds_total=5.0, seconds_timeout=1.0, seconds_first=0.01, seconds_cap=0.02)


class Reply:
    def __init__(self, body: Any) -> None:
        self.data = json.dumps(body).encode()


def api_error(status: int, reason: str, message: str, retry_after: str | None = None) -> ApiException:
    exc = ApiException(status=status, reason=reason)
    exc.body = json.dumps({"kind": "Status", "reason": reason, "message": message, "code": status})
    exc.headers = {"Retry-After": retry_after} if retry_after else {}
    return exc


class Flaky:
    """A client method that fails with ``errors`` first, then answers ``{"ok": true}``."""

    __name__ = "create_namespaced_job"

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls: list[dict[str, Any]] = []

    def __call__(self, *args: Any, **kwargs: Any) -> Reply:
        self.calls.append(kwargs)
        if self.errors:
            raise self.errors.pop(0)
        return Reply({"ok": True})


def test_transient_errors_are_retried_until_success() -> None:
    fn = Flaky(api_error(503, "ServiceUnavailable", "busy"), api_error(429, "TooManyRequests", "slow down"), ConnectionResetError())
    assert request(fn, "ns", {}, policy=FAST) == {"ok": True}
    assert len(fn.calls) == 4
    assert fn.calls[0]["_preload_content"] is False and fn.calls[0]["_request_timeout"] == 1.0


def test_exhausted_retries_say_what_failed_where_and_how_often() -> None:
    fn = Flaky(*[api_error(503, "ServiceUnavailable", "etcd is down")] * 10)
    with pytest.raises(K8sApiError) as err:
        request(fn, "ns", {}, policy=FAST, namespace="science", what="the Job of worker 1")
    message = str(err.value)
    assert message.startswith("Kubernetes API request create_namespaced_job (the Job of worker 1) in namespace 'science' failed after 4 attempts")
    assert "HTTP 503 ServiceUnavailable: etcd is down" in message and (err.value.status, err.value.attempts) == (503, 4)


def test_other_errors_fail_at_once_with_a_hint() -> None:
    fn = Flaky(api_error(403, "Forbidden", 'jobs.batch is forbidden: User "me" cannot create resource "jobs"'))
    with pytest.raises(K8sApiError, match=r"(?s)cannot create resource.*lacks a permission in namespace .ns.") as err:
        request(fn, "ns", {}, policy=FAST, namespace="ns")
    assert err.value.attempts == 1 and len(fn.calls) == 1
    with pytest.raises(K8sApiError, match="Does the namespace 'nope' exist\\? Set the namespace option"):
        request(Flaky(api_error(404, "NotFound", "the server could not find the requested resource")), "nope", {},
                policy=FAST, namespace="nope")


def test_missing_namespace_is_named_with_the_option_and_how_to_create_it() -> None:
    """Before, a create in a namespace that does not exist asked "Does the namespace 'nope' exist?",
    although the API server had said so; now the hint says it, the option, and the kubectl commands."""
    with pytest.raises(K8sApiError) as err:
        request(Flaky(api_error(404, "NotFound", 'namespaces "nope" not found')), "nope", {}, policy=FAST, namespace="nope")
    message = str(err.value)
    assert "namespaces \"nope\" not found. The namespace 'nope' does not exist: set the namespace option" in message, message
    assert "`kubectl create namespace nope`" in message and "Does the namespace" not in message, message


def test_refused_resources_name_the_resource_options() -> None:
    message = ('Job.batch "x" is invalid: spec.template.spec.containers[0].resources.requests: Invalid value: "1": '
               "must be equal to nvidia.com/gpu limit of 2")
    with pytest.raises(K8sApiError) as err:
        request(Flaky(api_error(422, "Invalid", message)), "ns", {}, policy=FAST, namespace="ns")
    text = str(err.value)
    assert message in text and "check the options cpu, memory, cpu_limit, memory_limit and gpus (or resources)" in text, text


@pytest.mark.parametrize(
    ("message", "says"),
    [
        ('jobs.batch "x" is forbidden: exceeded quota: compute-resources, requested: limits.memory=2Gi, '
         "used: limits.memory=8Gi, limited: limits.memory=8Gi",
         "allows limits.memory=8Gi, limits.memory=8Gi is in use, and this asks for limits.memory=2Gi more. Run fewer "
         "workers (workers=), request less per worker"),
        ('pods "x" is forbidden: failed quota: compute-resources: must specify limits.cpu for: worker; limits.memory for: worker',
         "refuses pods that do not set what it limits (must specify limits.cpu for: worker; limits.memory for: worker)"),
    ],
    ids=["exceeded", "limits required"],
)
def test_quota_refusals_get_a_quota_hint_not_a_permission_one(message: str, says: str) -> None:
    """A ResourceQuota answers 403 Forbidden, as RBAC does: it was told as a missing permission."""
    with pytest.raises(K8sApiError) as err:
        request(Flaky(api_error(403, "Forbidden", message)), "ns", {}, policy=FAST, namespace="science")
    text = str(err.value)
    assert "ResourceQuota 'compute-resources', not a missing permission" in text and says in text, text
    assert "lacks a permission" not in text and "kubectl describe resourcequota compute-resources -n science" in text, text
    assert err.value.status == 403 and err.value.attempts == 1


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (ConnectionRefusedError(111, "Connection refused"), True),  # no answer: the API server is down
        (api_error(503, "ServiceUnavailable", "restarting"), True),
        (api_error(429, "TooManyRequests", "slow down"), True),
        (api_error(500, "InternalError", "a bug"), False),
        (api_error(403, "Forbidden", "no"), False),
    ],
    ids=["no answer", "503", "429", "500", "403"],
)
def test_an_api_that_cannot_be_reached_is_a_transient_error(error: BaseException, transient: bool) -> None:
    """Core tries a launch again for minutes when its error is transient (a restarting API
    server). On 33e082d no K8sApiError was: a 20 s outage failed the work in 16 s."""
    with pytest.raises(K8sApiError) as err:
        request(Flaky(*[error] * 10), "ns", {}, policy=FAST)
    assert err.value.transient is transient


def test_missing_objects_can_be_fine() -> None:
    assert request(Flaky(api_error(404, "NotFound", "gone")), "x", policy=FAST, missing_ok=True) is None


def test_client_side_validation_errors_are_reported_not_retried() -> None:
    fn = Flaky(ValueError("1 validation error for V1Job\nspec.bogus\n  Extra inputs are not permitted"))
    with pytest.raises(K8sApiError, match=r"(?s)client rejected create_namespaced_job.*Extra inputs"):
        request(fn, "ns", {}, policy=FAST)
    assert len(fn.calls) == 1


def test_time_budget_bounds_the_retries() -> None:
    slow = RetryPolicy(attempts_max=100, seconds_total=0.05, seconds_timeout=1.0, seconds_first=0.02, seconds_cap=0.04)
    fn = Flaky(*[api_error(500, "InternalError", "boom")] * 100)
    with pytest.raises(K8sApiError):
        request(fn, "ns", {}, policy=slow)
    assert 2 <= len(fn.calls) < 10


def test_retry_after_is_honoured_within_a_cap() -> None:
    policy = RetryPolicy(seconds_first=0.1, seconds_cap=2.0)
    assert policy.pause(1, 3.0) == 3.0
    assert policy.pause(1, 60.0) == 4.0
    assert 0.05 <= policy.pause(1, None) <= 0.1 and policy.pause(10, None) <= 2.0


def test_logs_come_back_as_text() -> None:
    class Log:
        __name__ = "read_namespaced_pod_log"

        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            return type("R", (), {"data": b"42\n"})()

    assert request(Log(), "pod", "ns", policy=FAST, raw=True) == "42\n"


def test_one_attempt_is_one_connection_to_an_api_server_that_hangs_up(tmp_path: Any) -> None:
    """The kubernetes client's urllib3 pool retried every request 3 more times on its own,
    under the launcher's retries: on 33e082d an API server that was down saw ~20 connection
    attempts per request (and the log three urllib3 warnings for each attempt)."""
    import socket
    import threading

    from pycrew_k8s.cluster import _make
    from pycrew_k8s.options import K8sOptions

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    accepted = []

    def hang_up() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            accepted.append(1)
            conn.close()  # no answer

    threading.Thread(target=hang_up, daemon=True).start()
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "down",
        "clusters": [{"name": "down", "cluster": {"server": f"http://127.0.0.1:{listener.getsockname()[1]}"}}],
        "users": [{"name": "down", "user": {"token": "t"}}],
        "contexts": [{"name": "down", "context": {"cluster": "down", "user": "down"}}],
    }))
    cluster = _make(K8sOptions(image="python:3.11", kubeconfig=str(kubeconfig)))
    try:
        policy = RetryPolicy(attempts_max=2, seconds_total=5.0, seconds_timeout=2.0, seconds_first=0.01, seconds_cap=0.02)
        with pytest.raises(K8sApiError) as err:
            request(cluster.batch.list_namespaced_job, "default", policy=policy)
        assert err.value.transient and err.value.attempts == 2
        assert len(accepted) == 2, f"{len(accepted)} connections for 2 attempts"
    finally:
        cluster.close()
        listener.close()
