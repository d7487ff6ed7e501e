"""A region botocore does not know fails at its first connection failure, naming the nearest; a known one stays transient.

No AWS and no emulator: a made-up region's endpoint (``batch.us-nowhere-1.amazonaws.com``)
never resolves, and the other cases stand the request in with one that fails as botocore's
would when the endpoint cannot be reached.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, NoReturn

import pytest
from botocore.exceptions import EndpointConnectionError

import pycrew
from pycrew_awsbatch import AwsApi, AwsBatchError, AwsBatchOptions

MADE_UP = "us-nowhere-1"


@pytest.fixture(autouse=True)
def no_aws_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No AWS config, endpoint or region from the environment of the machine running the tests."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_BATCH", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("PYCREW_STATE_DIR", str(tmp_path / "state"))


def options(**extra: Any) -> dict[str, Any]:
    return {"job_queue": "q", "job_definition": "d", "aws_access_key_id": "AKIDEXAMPLE", "aws_secret_access_key": "x",
            "token_store": "environment", **extra}


def unreachable(_ambiguous: bool) -> NoReturn:
    raise EndpointConnectionError(endpoint_url="https://batch.example.invalid/v1/describejobs")


def test_a_region_botocore_does_not_know_fails_at_the_first_call_naming_the_nearest() -> None:
    sleeps: list[float] = []
    api = AwsApi(AwsBatchOptions.from_mapping(options(region=MADE_UP)), sleep=sleeps.append)
    started = time.monotonic()
    with pytest.raises(pycrew.OptionsError) as err:
        api.call("batch", "describe_jobs", jobs=["nope"])  # the real endpoint: its name does not resolve
    message = str(err.value)
    assert time.monotonic() - started < 10 and sleeps == [], f"retried ({sleeps}) instead of failing at once: {message}"
    assert isinstance(err.value, AwsBatchError) and not err.value.transient, "a typo never heals: not transient"
    for part in ("option 'region'", repr(MADE_UP), "does not know", "us-west-1", "endpoint_url"):
        assert part in message, f"{part!r} missing from: {message}"


def test_a_mistyped_region_fails_the_launch_within_seconds() -> None:
    c = pycrew.controller("awsbatch", host="127.0.0.1", launch_max=2, seconds_launch=60, **options(region=MADE_UP))
    started = time.monotonic()
    try:
        c.start()
        c.push(abs, (-1,))
        with pytest.raises(pycrew.LaunchError) as err:
            c.wait(timeout=30)
    finally:
        c.terminate()
    seconds = time.monotonic() - started
    assert seconds < 20, f"the launch failed after {seconds:.1f} s, not within seconds: {err.value}"
    assert MADE_UP in str(err.value) and "nearest known regions: us-west-1" in str(err.value), str(err.value)


def test_a_known_region_that_cannot_be_reached_stays_transient() -> None:
    api = AwsApi(AwsBatchOptions.from_mapping(options(region="us-east-1", api_attempts_max=2)), sleep=lambda _s: None)
    api.client("batch")
    with pytest.raises(AwsBatchError, match="AWS could not be reached") as err:
        api.retry(unreachable, "batch", "describe_jobs")
    assert err.value.transient and err.value.attempts == 2
    assert not isinstance(err.value, pycrew.OptionsError)


def test_an_unknown_region_with_an_endpoint_url_stays_transient() -> None:
    """New regions appear before botocore knows them: with an endpoint given, the region does not decide where to call."""
    opts = options(region="us-newest-9", endpoint_url="http://127.0.0.1:9", api_attempts_max=2)
    api = AwsApi(AwsBatchOptions.from_mapping(opts), sleep=lambda _s: None)
    api.client("batch")
    with pytest.raises(AwsBatchError, match="AWS could not be reached") as err:
        api.retry(unreachable, "batch", "describe_jobs")
    assert err.value.transient
