# mypy: disable-error-code="no-untyped-call,import-untyped"
"""call_api: transient faults retried within bounds, permanent ones reported with what to do."""

from __future__ import annotations

import pytest
import requests
from google.api_core import exceptions as gexc

from pycrew_cloudrun.retry import CloudRunError, RetryPolicy, call_api

FAST = RetryPolicy(attempts=4, seconds_total=5.0, seconds_first=0.001, seconds_cap=0.01)


class Flaky:
    """Raises the given errors in turn, then returns "ok"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_throttling_and_server_faults_are_retried() -> None:
    flaky = Flaky(gexc.TooManyRequests("slow down"), gexc.ServiceUnavailable("503"), requests.ConnectionError("reset"))
    assert call_api("run job j", flaky, FAST) == "ok"
    assert flaky.calls == 4


def test_retries_are_bounded_and_the_error_says_so() -> None:
    flaky = Flaky(*[gexc.ServiceUnavailable("down")] * 10)
    with pytest.raises(CloudRunError, match=r"run job j failed after 4 attempt\(s\).*ServiceUnavailable.*api_attempts_max") as info:
        call_api("run job j", flaky, FAST)
    assert flaky.calls == 4 and info.value.attempts == 4 and info.value.operation == "run job j"
    assert info.value.transient, "core tries the launch again for a while (on 33e082d: not transient)"
    with pytest.raises(CloudRunError) as refused:
        call_api("run job j", Flaky(*[requests.ConnectionError("refused")] * 10), FAST)
    assert refused.value.transient, "an API that cannot be reached is transient"


def test_time_budget_bounds_retries() -> None:
    policy = RetryPolicy(attempts=100, seconds_total=0.0, seconds_first=0.5)
    flaky = Flaky(*[gexc.InternalServerError("500")] * 10)
    with pytest.raises(CloudRunError, match="after 1 attempt"):
        call_api("x", flaky, policy)


def test_permission_denied_is_not_retried_and_names_the_permission() -> None:
    flaky = Flaky(gexc.PermissionDenied("denied"))
    with pytest.raises(CloudRunError, match=r"needs run\.jobs\.runWithOverrides.*README"):
        call_api("run job j", flaky, FAST, permission="run.jobs.runWithOverrides")
    assert flaky.calls == 1
    with pytest.raises(CloudRunError) as denied:
        call_api("run job j", Flaky(gexc.PermissionDenied("denied")), FAST)
    assert not denied.value.transient


def test_passthrough_errors_reach_the_caller_unchanged() -> None:
    with pytest.raises(gexc.NotFound):
        call_api("get job j", Flaky(gexc.NotFound("gone")), FAST, passthrough=(gexc.NotFound,))


def test_before_retry_can_adopt_the_result_after_an_ambiguous_fault_only() -> None:
    seen: list[BaseException] = []

    def found(exc: BaseException) -> str | None:
        seen.append(exc)
        return "adopted"

    assert call_api("run", Flaky(gexc.ServiceUnavailable("503")), FAST, before_retry=found) == "adopted"
    seen.clear()
    assert call_api("run", Flaky(gexc.TooManyRequests("429")), FAST, before_retry=found) == "ok"
    assert not seen, "a throttled request was not carried out: no need to look for its result"



def quota_error(reason: str, **metadata: str) -> gexc.TooManyRequests:
    """A 429 as google.api_core builds it from Google's reply, with its ErrorInfo."""
    from google.rpc import error_details_pb2

    info = error_details_pb2.ErrorInfo(reason=reason, domain="googleapis.com", metadata=metadata)
    return gexc.TooManyRequests("Quota exceeded for quota metric 'M' and limit 'L'", error_info=info)


def test_a_rate_limit_is_retried() -> None:
    flaky = Flaky(quota_error("RATE_LIMIT_EXCEEDED", quota_limit="JobRunRequestsPerMinutePerRegion"))
    assert call_api("run job j", flaky, FAST) == "ok"
    assert flaky.calls == 2


def test_a_used_up_resource_quota_is_reported_at_once_naming_it() -> None:
    flaky = Flaky(quota_error("RESOURCE_QUOTA_EXCEEDED", quota_limit="CpuAllocPerProjectRegion", quota_metric="run.googleapis.com/cpu_alloc"))
    with pytest.raises(CloudRunError, match=r"run job j failed: a resource quota \(quota_limit 'CpuAllocPerProjectRegion', quota_metric 'run.googleapis.com/cpu_alloc'\) is used up") as info:
        call_api("run job j", flaky, FAST)
    assert flaky.calls == 1 and not info.value.transient, "a quota that does not refill must not be retried"
