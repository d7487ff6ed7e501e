"""AWS API calls with bounded retries: :class:`AwsApi` and :class:`AwsBatchError`.

boto3's own retries are switched off (one attempt per request), so that this module decides
what is retried and for how long: throttling, server errors (5xx) and connection failures
are retried with exponential backoff and jitter, up to ``api_attempts_max`` attempts and
``seconds_api_retry`` seconds in total; then :class:`AwsBatchError` says which call failed,
how often, and why. Every other error (a missing queue, missing permissions) is raised at
once with AWS's code and message and, where one is known, a hint.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from pycrew import PycrewError
from pycrew_awsbatch.options import AwsBatchOptions

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Error codes that mean "slow down": the request was not carried out.
THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "TooManyRequestsException",
    "RequestLimitExceeded", "RequestThrottled", "RequestThrottledException", "SlowDown",
    "ProvisionedThroughputExceededException", "TransactionInProgressException", "PriorRequestNotComplete",
})
#: Error codes of transient server-side failures (the request may or may not have been carried out).
TRANSIENT_CODES = frozenset({
    "InternalError", "InternalFailure", "InternalServerError", "InternalServiceError", "ServerException",
    "ServiceUnavailable", "ServiceUnavailableException", "RequestTimeout", "RequestTimeoutException",
    "BadGateway", "GatewayTimeout",
})
_HINTS = {
    "AccessDeniedException": "the AWS identity in use lacks an IAM permission for this call (see the launcher's README, 'IAM permissions')",
    "AccessDenied": "the AWS identity in use lacks an IAM permission for this call (see the launcher's README, 'IAM permissions')",
    "UnrecognizedClientException": "the AWS credentials are not valid in this region/account",
    "InvalidClientTokenId": "the AWS access key is not valid",
    "ExpiredTokenException": "the AWS session token has expired: refresh the credentials",
}


class AwsBatchError(PycrewError):
    """An AWS API call of the awsbatch launcher failed (after retries, where retrying made sense).

    Attributes:
        operation: ``"<service> <Operation>"``, e.g. ``"batch SubmitJob"``.
        code: AWS's error code (``"ClientException"``, ``"ThrottlingException"``), or the
            exception's class name for errors without one.
        attempts: how many attempts were made.
    """

    def __init__(self, message: str, operation: str = "", code: str = "", attempts: int = 0, transient: bool = False) -> None:
        super().__init__(message)
        self.operation = operation
        self.code = code
        self.attempts = attempts
        #: AWS could not be reached, or kept throttling or failing past the retry budget: core
        #: then tries the launch again for a while instead of failing the work.
        self.transient = transient


def error_code(exc: BaseException) -> str:
    """AWS's error code of a botocore ``ClientError`` (``""`` for other exceptions)."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Code", "") or "")
    return ""


def error_message(exc: BaseException) -> str:
    """AWS's error message of a ``ClientError``, else ``str(exc)``."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        message = response.get("Error", {}).get("Message")
        if message:
            return str(message)
    return str(exc)


def _status(exc: BaseException) -> int:
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return 0


def classify(exc: BaseException) -> tuple[bool, bool]:
    """``(retry, ambiguous)`` for an exception of a boto3 call.

    ``retry``: worth another attempt (throttling, 5xx, connection trouble). ``ambiguous``:
    AWS may have carried out the request anyway (a 5xx or a lost response), so a retry of a
    non-idempotent call must first check whether it already happened.
    """
    from botocore import exceptions as bx  # type: ignore[import-untyped,unused-ignore]

    if isinstance(exc, bx.ClientError):
        code, status = error_code(exc), _status(exc)
        if code in THROTTLING_CODES or status == 429:
            return True, False
        if code in TRANSIENT_CODES or status >= 500:
            return True, True
        return False, False
    if isinstance(exc, (bx.EndpointConnectionError, bx.ConnectTimeoutError)):
        return True, False  # never reached AWS
    if isinstance(exc, (bx.ReadTimeoutError, bx.ConnectionClosedError, bx.ConnectionError, bx.HTTPClientError)):
        return True, True
    return False, False


class AwsApi:
    """boto3 clients for one set of launcher options, and calls through the retry policy.

    Thread-safe: the boto3 session is built once under a lock; boto3 clients are thread-safe.

    Args:
        options: the launcher's options (region, credentials, endpoint, retry limits).
        sleep: the function that waits between attempts (tests pass a fake).
    """

    def __init__(self, options: AwsBatchOptions, sleep: Callable[[float], None] = time.sleep) -> None:
        self.options = options
        self.sleep = sleep
        self._lock = threading.Lock()
        self._session: Any = None
        self._clients: dict[str, Any] = {}

    def client(self, service: str) -> Any:
        """The boto3 client of ``service`` (``"batch"``, ``"logs"``, ``"secretsmanager"``, ``"ssm"``).

        Raises:
            AwsBatchError: boto3 cannot build a client (no region, unknown profile).
        """
        with self._lock:
            if service in self._clients:
                return self._clients[service]
            try:
                import boto3  # type: ignore[import-untyped,unused-ignore]
                from botocore.config import Config  # type: ignore[import-untyped,unused-ignore]
                from botocore.exceptions import BotoCoreError, NoRegionError, ProfileNotFound  # type: ignore[import-untyped,unused-ignore]
            except ImportError as exc:  # pragma: no cover - boto3 is a dependency
                raise AwsBatchError("the awsbatch launcher needs boto3: pip install boto3") from exc
            o = self.options
            try:
                if self._session is None:
                    self._session = boto3.session.Session(
                        aws_access_key_id=o.aws_access_key_id,
                        aws_secret_access_key=o.aws_secret_access_key,
                        aws_session_token=o.aws_session_token,
                        region_name=o.region,
                        profile_name=o.profile,
                    )
                config = Config(
                    retries={"total_max_attempts": 1, "mode": "standard"},
                    connect_timeout=min(10.0, o.seconds_api_timeout),
                    read_timeout=o.seconds_api_timeout,
                    user_agent_extra="pycrew-awsbatch/0.1.0",
                )
                client = self._session.client(service, endpoint_url=o.endpoint_url, config=config)
            except ProfileNotFound as exc:
                raise AwsBatchError(f"awsbatch option 'profile': {exc}; check ~/.aws/config", f"{service} client") from exc
            except NoRegionError as exc:
                raise AwsBatchError(
                    "no AWS region configured: set the awsbatch option region='us-east-1' (or AWS_REGION, or a "
                    "profile with a region)", f"{service} client",
                ) from exc
            except BotoCoreError as exc:
                raise AwsBatchError(f"cannot create the AWS {service} client: {exc}", f"{service} client") from exc
            self._clients[service] = client
            return client

    def call(self, service: str, operation: str, **params: Any) -> dict[str, Any]:
        """Call ``client(service).<operation>(**params)`` (snake_case name) under the retry policy."""
        method = getattr(self.client(service), operation)
        return self.retry(lambda _ambiguous: dict(method(**params)), service, operation)

    def retry(self, attempt: Callable[[bool], T], service: str, operation: str) -> T:
        """Run ``attempt`` until it succeeds, retrying throttling, 5xx and connection errors.

        ``attempt`` gets ``True`` when the previous attempt failed ambiguously (AWS may have
        done it): a non-idempotent call checks first whether its effect already exists.

        Raises:
            AwsBatchError: a non-retryable error, or retries exhausted (attempts or time).
        """
        from botocore.exceptions import NoCredentialsError  # type: ignore[import-untyped,unused-ignore]

        name = f"{service} {_camel(operation)}"
        o = self.options
        started = time.monotonic()
        ambiguous = False
        delay = 0.2
        attempts = 0
        while True:
            attempts += 1
            try:
                return attempt(ambiguous)
            except AwsBatchError:
                raise
            except NoCredentialsError as exc:
                raise AwsBatchError(
                    "no AWS credentials found: set the awsbatch option profile=..., or AWS_PROFILE, or "
                    "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run where an instance/container role is available",
                    name, "NoCredentialsError", attempts,
                ) from exc
            except Exception as exc:
                retry, was_ambiguous = classify(exc)
                code = error_code(exc) or type(exc).__name__
                message = error_message(exc)
                elapsed = time.monotonic() - started
                if not retry:
                    hint = _HINTS.get(code)
                    raise AwsBatchError(
                        f"AWS {name} failed: {code}: {message}" + (f" ({hint})" if hint else ""), name, code, attempts,
                    ) from exc
                ambiguous = ambiguous or was_ambiguous
                wait = random.uniform(0.5, 1.0) * delay
                if attempts >= o.api_attempts_max or elapsed + wait > o.seconds_api_retry:
                    if code in THROTTLING_CODES:
                        why = "AWS kept throttling the requests"
                    elif code in ("EndpointConnectionError", "ConnectTimeoutError"):
                        why = "AWS could not be reached (check the network, region and endpoint_url)"
                    else:
                        why = "AWS kept failing"
                    raise AwsBatchError(
                        f"AWS {name} failed after {attempts} attempt(s) in {elapsed:.1f} s: {code}: {message}. "
                        f"{why}; retry later, or allow more with the awsbatch options api_attempts_max "
                        f"(now {o.api_attempts_max}) and seconds_api_retry (now {o.seconds_api_retry:g})",
                        name, code, attempts, transient=True,
                    ) from exc
                log.info("AWS %s: %s (%s), attempt %d; retrying in %.2f s", name, code, message, attempts, wait)
                self.sleep(wait)
                delay = min(delay * 2, 10.0)


def _camel(snake: str) -> str:
    """``submit_job`` -> ``SubmitJob`` (AWS's operation names, for messages)."""
    return "".join(part.capitalize() for part in snake.split("_"))
