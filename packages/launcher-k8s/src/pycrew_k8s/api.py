"""Calling the Kubernetes API: bounded retries with back-off, and errors that say what to do.

Every request goes through :func:`request`. Transient failures (HTTP 429, 500, 502, 503,
504, no connection) are retried with exponential back-off and jitter, honouring
``Retry-After``, within ``api_attempts_max`` attempts and ``seconds_api_retry`` seconds; then,
and for every other failure at once, :class:`K8sApiError` is raised with the operation, the
namespace, the server's status and message, and a hint. Replies are read as plain JSON
(``_preload_content=False``), so that the client's strict model parsing never rejects a
newer server's reply.
"""

from __future__ import annotations

import json
import logging
import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pycrew import PycrewError
from pycrew_k8s.quota import is_quota_refusal, quota_hint

log = logging.getLogger(__name__)

#: HTTP statuses worth retrying: throttling, server errors, gateway trouble.
TRANSIENT_STATUSES = frozenset({429, 500, 502, 503, 504})
#: The NamespaceLifecycle admission's answer to a create in a namespace that does not exist.
_MISSING_NAMESPACE = re.compile(r'namespaces "([^"]+)" not found')


class K8sApiError(PycrewError):
    """A Kubernetes API request failed (after retries, if the failure was transient).

    Attributes:
        operation: the client method (``create_namespaced_job``).
        status: the HTTP status (``None`` if no answer came).
        reason: the API's reason (``NotFound``, ``Forbidden``, ``ServiceUnavailable``, ...).
        attempts: how many times the request was sent.
    """

    def __init__(self, message: str, operation: str, status: int | None = None, reason: str = "", attempts: int = 1) -> None:
        super().__init__(message)
        self.operation = operation
        self.status = status
        self.reason = reason
        self.attempts = attempts

    @property
    def transient(self) -> bool:
        """Whether the API could not be reached, or answered that it is overloaded or restarting
        (no answer, 429, 502, 503, 504): core then tries the launch again for a while (see
        the controller option ``seconds_unreachable``) instead of failing the work."""
        return self.status is None or self.status in (429, 502, 503, 504)


@dataclass(frozen=True)
class RetryPolicy:
    """How one request is retried.

    Attributes:
        attempts_max: most attempts of one request.
        seconds_total: most time from the first attempt to the last retry.
        seconds_timeout: timeout of each attempt (the client's ``_request_timeout``).
        seconds_first: the first pause; each next one doubles, up to ``seconds_cap``.
        seconds_cap: the longest pause.
    """

    attempts_max: int = 5
    seconds_total: float = 30.0
    seconds_timeout: float = 30.0
    seconds_first: float = 0.2
    seconds_cap: float = 5.0

    def pause(self, attempt: int, retry_after: float | None) -> float:
        """The pause after failed attempt ``attempt`` (1-based): back-off with jitter, or ``Retry-After``."""
        backoff = float(min(self.seconds_cap, self.seconds_first * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0))
        if retry_after is not None:
            return float(max(backoff, min(retry_after, self.seconds_cap * 2)))
        return backoff


def _status_of(exc: BaseException) -> tuple[int | None, str, str, float | None]:
    """``(status, reason, message, retry_after)`` of a client exception (status ``None``: no answer)."""
    status = getattr(exc, "status", None)
    if not isinstance(status, int) or status == 0:
        return None, "", str(exc) or type(exc).__name__, None
    body = getattr(exc, "body", None)
    reason, message = str(getattr(exc, "reason", "") or ""), ""
    try:
        parsed = json.loads(body) if body else {}
        if isinstance(parsed, dict):
            reason = str(parsed.get("reason") or reason)
            message = str(parsed.get("message") or "")
    except ValueError:
        message = str(body)[:500]
    retry_after: float | None = None
    headers = getattr(exc, "headers", None)
    if headers is not None:
        try:
            value = headers.get("Retry-After")
            retry_after = float(value) if value is not None else None
        except (TypeError, ValueError):
            retry_after = None
    return status, reason, message or reason or f"HTTP {status}", retry_after


def _hint(status: int | None, operation: str, namespace: str | None, message: str = "") -> str:
    where = f" in namespace {namespace!r}" if namespace else ""
    if status is None:
        return (
            "Check that the API server in the kubeconfig (or the in-cluster address) is reachable from here "
            "and that the options kubeconfig/context point at the right cluster."
        )
    if status == 401:
        return "The API server refused the credentials: renew them (e.g. the cloud CLI's login) or check the kubeconfig user."
    if status == 403 and is_quota_refusal(message):  # a ResourceQuota answers 403 Forbidden too
        return quota_hint(message, namespace) + "."
    if status == 403:
        return (
            f"The identity in use lacks a permission{where}: pycrew needs create/get/list/delete on jobs.batch, "
            f"create on secrets, and get/list on pods and pods/log (see the README's Role)."
        )
    missing = _MISSING_NAMESPACE.search(message) if status == 404 else None
    if missing is not None:
        return (
            f"The namespace {missing.group(1)!r} does not exist: set the namespace option to an existing one "
            f"(`kubectl get namespaces`) or create it (`kubectl create namespace {missing.group(1)}`); without "
            "the option, the kubeconfig context's namespace is used (in a pod, the pod's own)."
        )
    if status == 404 and operation.startswith("create_"):
        return (f"Does the namespace {namespace!r} exist? " if namespace else "Does the namespace exist? ") + "Set the namespace option."
    if status in (400, 422) and ".resources" in message:
        return (
            "The API server refused the worker container's resources: check the options cpu, memory, cpu_limit, "
            "memory_limit and gpus (or resources), which set its requests and limits."
        )
    if status in (400, 422):
        return "The API server rejected the manifest: check the launcher options it names (image, resources, volumes, ...)."
    if status in TRANSIENT_STATUSES:
        return "The API server is overloaded or unavailable; raise api_attempts_max or seconds_api_retry if this persists."
    return ""


def request(
    operation: Callable[..., Any],
    *args: Any,
    policy: RetryPolicy,
    namespace: str | None = None,
    what: str = "",
    missing_ok: bool = False,
    raw: bool = False,
    **kwargs: Any,
) -> Any:
    """Call a client method with retries; return its reply as parsed JSON (``None`` if absent).

    Args:
        operation: a bound method of ``BatchV1Api`` or ``CoreV1Api``.
        args: its positional arguments.
        policy: the retry policy.
        namespace: the namespace, for messages.
        what: what the request does, for messages (``"creating the Job of worker 3"``).
        missing_ok: a 404 answer returns ``None`` instead of raising (deletes, reads of gone objects).
        raw: return the reply as text, not parsed JSON (logs).
        kwargs: its keyword arguments (``_request_timeout`` and ``_preload_content`` are added).

    Raises:
        K8sApiError: the request failed for good.
    """
    from kubernetes.client.exceptions import ApiException
    from urllib3.exceptions import HTTPError

    name = getattr(operation, "__name__", "request")
    started = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            reply = operation(*args, _request_timeout=policy.seconds_timeout, _preload_content=False, **kwargs)
            return _parse(reply, raw)
        except Exception as exc:
            if not isinstance(exc, (ApiException, HTTPError, OSError)):
                if isinstance(exc, ValueError):  # the client's own validation of a request (pydantic)
                    raise K8sApiError(
                        f"the kubernetes client rejected {name} ({what or 'a request'}) before sending it: "
                        f"{str(exc)[:1000]}",
                        name,
                    ) from exc
                raise
            status, reason, message, retry_after = _status_of(exc)
            if status == 404 and missing_ok:
                return None
            elapsed = time.monotonic() - started
            transient = status is None or status in TRANSIENT_STATUSES
            pause = policy.pause(attempt, retry_after)
            if transient and attempt < policy.attempts_max and elapsed + pause <= policy.seconds_total:
                log.info("k8s: %s failed (%s %s: %s); retry %d in %.1f s", name, status or "no answer", reason, message, attempt, pause)
                time.sleep(pause)
                continue
            doing = f" ({what})" if what else ""
            where = f" in namespace {namespace!r}" if namespace else ""
            answer = f"HTTP {status} {reason}: {message}" if status is not None else f"no answer: {message}"
            tries = f" after {attempt} attempts over {elapsed:.1f} s" if attempt > 1 else ""
            hint = _hint(status, name, namespace, message)
            raise K8sApiError(
                f"Kubernetes API request {name}{doing}{where} failed{tries}: {answer.rstrip('.')}. {hint}".rstrip(),
                name, status, reason, attempt,
            ) from exc


def _parse(reply: Any, raw: bool = False) -> Any:
    """The JSON of a raw reply (``_preload_content=False``), or the reply itself if already parsed."""
    data = getattr(reply, "data", None)
    if isinstance(data, (bytes, bytearray)):
        if raw:
            return data.decode(errors="replace")
        if not data.strip():
            return None
        try:
            return json.loads(data)
        except ValueError:
            return data.decode(errors="replace")
    return reply
