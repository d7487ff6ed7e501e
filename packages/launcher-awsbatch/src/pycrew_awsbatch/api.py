"""AWS API calls with bounded retries: :class:`AwsApi` and :class:`AwsBatchError`.

boto3's own retries are switched off (one attempt per request), so that this module decides
what is retried and for how long: throttling, server errors (5xx) and connection failures
are retried with exponential backoff and jitter, up to ``api_attempts_max`` attempts and
``seconds_api_retry`` seconds in total; then :class:`AwsBatchError` says which call failed,
how often, and why. Every other error (a missing queue, missing permissions) is raised at
once with AWS's code and message and, where one is known, a hint. So is a connection failure
to the endpoint of a region botocore does not know (a mistyped ``region``):
:class:`AwsRegionError` names the nearest known regions instead of retrying for minutes.
"""

from __future__ import annotations

import difflib
import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from pycrew import OptionsError, PycrewError
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


class AwsRegionError(AwsBatchError, OptionsError):
    """The AWS region is one botocore does not know, and its endpoint could not be reached.

    Raised at the first connection failure instead of retrying (a typo never heals); it is
    an :class:`pycrew.OptionsError` too. A region botocore knows stays transient.

    Attributes:
        region: the region in use.
        nearest: the known regions closest to it, closest first.
    """

    def __init__(self, message: str, operation: str, region: str, nearest: tuple[str, ...], attempts: int) -> None:
        super().__init__(message, operation, "UnknownRegion", attempts)
        self.region = region
        self.nearest = nearest


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
        self._known_regions: dict[str, frozenset[str]] = {}

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
                if code in ("EndpointConnectionError", "ConnectTimeoutError"):
                    unknown = self.unknown_region(service, name, f"{code}: {message}", attempts)
                    if unknown is not None:
                        raise unknown from exc
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


    def known_regions(self, service: str) -> frozenset[str]:
        """The regions botocore knows for ``service`` or for AWS Batch, in every partition (empty if it cannot tell)."""
        with self._lock:
            if service not in self._known_regions:
                session = self._session
                known: set[str] = set()
                try:
                    for partition in session.get_available_partitions():
                        for name in {service, "batch"}:
                            known.update(session.get_available_regions(name, partition_name=partition))
                except Exception as exc:  # botocore's data unreadable: every region counts as known (stays transient)
                    log.debug("cannot list botocore's regions: %s", exc)
                    known = set()
                self._known_regions[service] = frozenset(known)
            return self._known_regions[service]

    def unknown_region(self, service: str, operation: str, failure: str, attempts: int) -> AwsRegionError | None:
        """The error for a connection failure of ``service`` whose region botocore does not know, or
        ``None`` when the region is known (the failure is transient) or the endpoint does not come
        from the region (``endpoint_url``, or one from the AWS config or environment)."""
        client = self._clients.get(service)
        if client is None or self.options.endpoint_url is not None:
            return None
        region = str(client.meta.region_name or "")
        known = self.known_regions(service)
        if not region or not known or region in known or region not in str(client.meta.endpoint_url):
            return None
        nearest = tuple(difflib.get_close_matches(region, sorted(known), n=3, cutoff=0.5))
        where = ("the awsbatch option 'region'" if self.options.region is not None
                 else "the AWS region from the environment or profile (AWS_REGION, AWS_DEFAULT_REGION, the profile's "
                      "region; the awsbatch option 'region' is not set)")
        try:
            import botocore  # type: ignore[import-untyped,unused-ignore]

            version = f" {botocore.__version__}"
        except ImportError:  # pragma: no cover - boto3 depends on it
            version = ""
        return AwsRegionError(
            f"AWS {operation} failed: {where} is {region!r}, a region botocore{version} does not know for "
            f"AWS Batch, and its endpoint {client.meta.endpoint_url} cannot be reached ({failure}); "
            + (f"nearest known regions: {', '.join(nearest)}. " if nearest else "")
            + "Set region= to the region of your job queue (e.g. 'us-east-1'); if it is a region newer than "
            "this botocore, upgrade boto3 and botocore, or set endpoint_url= to the region's AWS Batch endpoint",
            operation, region, nearest, attempts,
        )


def _camel(snake: str) -> str:
    """``submit_job`` -> ``SubmitJob`` (AWS's operation names, for messages)."""
    return "".join(part.capitalize() for part in snake.split("_"))
