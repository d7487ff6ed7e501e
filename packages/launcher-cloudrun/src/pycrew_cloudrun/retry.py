"""Calling the Google Cloud APIs: transient faults retried with backoff, others reported clearly.

Every request of the launcher goes through :func:`call_api` with the client library's own
retries turned off (``retry=None``), so that one bounded policy applies everywhere: at most
``attempts`` tries and ``seconds_total`` of waiting, exponential backoff with jitter.

Google answers both a rate limit and a used-up allocation quota with 429 /
``RESOURCE_EXHAUSTED``; the error's ``google.rpc.ErrorInfo`` tells them apart (reason
``RATE_LIMIT_EXCEEDED`` or ``RESOURCE_QUOTA_EXCEEDED``). A rate limit refills with time and
is retried; a resource quota does not, and is reported at once (:func:`resource_quota`).
Without an ``ErrorInfo`` a 429 counts as a rate limit.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import requests
from google.api_core import exceptions as gexc
from google.auth import exceptions as auth_exceptions

from pycrew import PycrewError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Errors worth another try: throttling, server faults, timeouts, broken connections.
TRANSIENT: tuple[type[BaseException], ...] = (
    gexc.TooManyRequests,  # HTTP 429 over REST
    gexc.ResourceExhausted,  # RESOURCE_EXHAUSTED over gRPC
    gexc.ServiceUnavailable,
    gexc.InternalServerError,
    gexc.BadGateway,
    gexc.GatewayTimeout,
    gexc.DeadlineExceeded,
    gexc.Aborted,
    requests.ConnectionError,
    requests.Timeout,
    auth_exceptions.TransportError,
)
#: Transient errors after which the request may have been carried out (not throttling).
AMBIGUOUS: tuple[type[BaseException], ...] = tuple(
    t for t in TRANSIENT if t not in (gexc.TooManyRequests, gexc.ResourceExhausted)
)


class CloudRunError(PycrewError):
    """A Cloud Run or Secret Manager request failed; the message says which, why, and what to do.

    Attributes:
        operation: what was being done (``"run job pycrew-1a2b"``).
        attempts: how many times the request was tried.
    """

    def __init__(self, message: str, operation: str = "", attempts: int = 0, transient: bool = False) -> None:
        super().__init__(message)
        self.operation = operation
        self.attempts = attempts
        #: The API could not be reached or stayed unavailable past the retry budget: core then
        #: tries the launch again for a while instead of failing the work.
        self.transient = transient


@dataclass(frozen=True)
class RetryPolicy:
    """How transient faults are retried.

    Attributes:
        attempts: at most this many tries (>= 1).
        seconds_total: never wait longer than this in all (the next pause must fit in it).
        seconds_first: the first pause; each next one doubles, up to ``seconds_cap``.
        seconds_cap: the longest pause.
    """

    attempts: int = 6
    seconds_total: float = 120.0
    seconds_first: float = 0.5
    seconds_cap: float = 10.0

    def pause(self, attempt: int) -> float:
        """The pause after failed try ``attempt`` (1-based): exponential, with 50-100 % jitter."""
        base = min(self.seconds_cap, self.seconds_first * 2 ** (attempt - 1))
        return float(base * (0.5 + random.random() / 2))


#: ``google.rpc.ErrorInfo`` reason of a used-up allocation quota (google.api.ErrorReason).
RESOURCE_QUOTA_EXCEEDED = "RESOURCE_QUOTA_EXCEEDED"


def resource_quota(exc: BaseException) -> str | None:
    """The quota a 429 / ``RESOURCE_EXHAUSTED`` error says is used up, if it is an allocation
    quota (``ErrorInfo`` reason ``RESOURCE_QUOTA_EXCEEDED``), not a rate limit; else ``None``.

    Named by its ``quota_limit`` and ``quota_metric`` when the error carries them (Google's
    message, quoted with it, names it too).
    """
    if not isinstance(exc, gexc.TooManyRequests | gexc.ResourceExhausted) or exc.reason != RESOURCE_QUOTA_EXCEEDED:
        return None
    meta = exc.metadata or {}
    named = [f"{key} {meta[key]!r}" for key in ("quota_limit", "quota_metric") if meta.get(key)]
    service = f" of {meta['service']}" if meta.get("service") else ""
    return f"a resource quota{service} ({', '.join(named)})" if named else f"a resource quota{service}"


def hint(exc: BaseException, permission: str = "") -> str:
    """What to do about a permanent API error."""
    if isinstance(exc, gexc.Forbidden):  # gRPC's PermissionDenied is one; REST's 403 is Forbidden itself
        need = f" (it needs {permission})" if permission else ""
        return f"the caller's identity lacks a permission{need}: grant the roles listed in the pycrew-cloudrun README"
    if isinstance(exc, gexc.Unauthorized):
        return "no valid credentials: run `gcloud auth application-default login`, or set credentials / credentials_file"
    if isinstance(exc, gexc.NotFound):
        return "check the project, region and names in the options"
    if isinstance(exc, gexc.BadRequest | gexc.FailedPrecondition):
        return "the request was refused as invalid: check the options named in the message"
    if isinstance(exc, requests.ConnectionError | auth_exceptions.TransportError):
        return "the API endpoint cannot be reached: check the network, proxy settings and api_endpoint"
    if isinstance(exc, TRANSIENT):
        return "the API is unavailable or throttling: retry later, or raise api_attempts_max / seconds_api_retry_max"
    return "see the message above"


def call_api(
    what: str,
    request: Callable[[], T],
    policy: RetryPolicy,
    *,
    permission: str = "",
    passthrough: tuple[type[BaseException], ...] = (),
    before_retry: Callable[[BaseException], T | None] | None = None,
) -> T:
    """Run ``request()``; retry transient faults under ``policy``; report the rest clearly.

    Args:
        what: what the request does, for messages (``"run job pycrew-1a2b"``).
        request: the API call (with the library's own retries off).
        policy: attempts and time budget.
        permission: the IAM permission the request needs, named when it is denied.
        passthrough: errors the caller handles itself (e.g. ``NotFound``): raised unchanged.
        before_retry: called after an ambiguous fault (the request may have been carried
            out, e.g. a 503 after the server acted) before the next try; a non-``None``
            result is returned instead of trying again (e.g. the execution was found).

    Raises:
        CloudRunError: a permanent error, or transient ones beyond the policy's budget.
    """
    start = time.monotonic()
    attempt = 0
    while True:
        attempt += 1
        try:
            return request()
        except passthrough:
            raise
        except TRANSIENT as exc:
            quota = resource_quota(exc)
            if quota is not None and isinstance(exc, gexc.GoogleAPICallError):  # no refill with time: do not retry
                raise CloudRunError(
                    f"{what} failed: {quota} is used up ({type(exc).__name__}: {exc.message}); it does not refill with time "
                    f"as a rate limit does: free some of it (end executions that hold it) or ask for more (Cloud "
                    f"console, IAM & Admin > Quotas), then try again",
                    what, attempt,
                ) from exc
            elapsed = time.monotonic() - start
            pause = policy.pause(attempt)
            if attempt >= policy.attempts or elapsed + pause > policy.seconds_total:
                raise CloudRunError(
                    f"{what} failed after {attempt} attempt(s) in {elapsed:.1f} s: {type(exc).__name__}: {exc}; "
                    f"{hint(exc, permission)}",
                    what, attempt, transient=True,
                ) from exc
            log.info("cloudrun: %s: %s: %s; retrying in %.1f s (attempt %d of %d)", what, type(exc).__name__, exc, pause, attempt, policy.attempts)
            time.sleep(pause)
            if before_retry is not None and isinstance(exc, AMBIGUOUS):
                found = before_retry(exc)
                if found is not None:
                    return found
        except gexc.GoogleAPICallError as exc:
            raise CloudRunError(f"{what} failed: {type(exc).__name__}: {exc}; {hint(exc, permission)}", what, attempt) from exc
        except auth_exceptions.DefaultCredentialsError as exc:
            raise CloudRunError(
                f"{what} failed: no Application Default Credentials ({exc}); run `gcloud auth application-default "
                f"login` or set the cloudrun option credentials / credentials_file", what, attempt,
            ) from exc
