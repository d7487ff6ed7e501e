"""The official Google Cloud clients (Cloud Run, Secret Manager, Cloud Logging), built from the launcher's options.

Default: Application Default Credentials and the gRPC transport. Tests (and users behind
a proxy or a private endpoint) set ``api_endpoint``, ``transport="rest"``,
``client_options`` and ``credentials``.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from google.api_core.client_options import ClientOptions
from google.cloud import run_v2

from pycrew import OptionsError
from pycrew_cloudrun.options import CloudRunOptions

#: The OAuth scope of both APIs.
SCOPES = ("https://www.googleapis.com/auth/cloud-platform",)


def _credentials(options: CloudRunOptions) -> Any:
    if options.credentials is not None:
        return options.credentials
    if options.credentials_file is not None:
        from google.oauth2 import service_account

        try:
            return service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
                options.credentials_file, scopes=SCOPES
            )
        except (OSError, ValueError) as exc:
            raise OptionsError(
                f"cloudrun option 'credentials_file' must be a readable service account key file, got "
                f"{options.credentials_file!r}: {exc}"
            ) from exc
    return None  # the client library finds Application Default Credentials itself


def _client_options(options: CloudRunOptions, endpoint: str | None, run_api: bool = True) -> ClientOptions:
    values = dict(options.client_options)
    if not run_api:
        values.pop("api_endpoint", None)  # an endpoint in client_options is Cloud Run's
    if endpoint is not None:
        values["api_endpoint"] = endpoint
    try:
        return ClientOptions(**values)
    except TypeError as exc:
        raise OptionsError(
            f"cloudrun option 'client_options' must hold fields of google.api_core.client_options.ClientOptions, "
            f"got {sorted(values)}: {exc}"
        ) from exc


def resolve_project(options: CloudRunOptions) -> str:
    """The project: the option, else ``GOOGLE_CLOUD_PROJECT`` / ``CLOUDSDK_CORE_PROJECT``, else ADC's.

    Raises:
        OptionsError: no project can be found.
    """
    if options.project:
        return options.project
    for var in ("GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT"):
        if os.environ.get(var):
            return os.environ[var]
    if options.credentials is None and options.credentials_file is None:
        import google.auth
        from google.auth.exceptions import DefaultCredentialsError

        try:
            _, project = google.auth.default(scopes=SCOPES)
        except DefaultCredentialsError as exc:
            raise OptionsError(
                f"cloudrun option 'project' is not set and Application Default Credentials are not available "
                f"({exc}): set project=, or run `gcloud auth application-default login`"
            ) from exc
        if project:
            return str(project)
    raise OptionsError(
        "cloudrun option 'project' is not set and no default project was found (GOOGLE_CLOUD_PROJECT, "
        "CLOUDSDK_CORE_PROJECT, Application Default Credentials): set project="
    )


class Clients:
    """The Cloud Run v2 ``JobsClient``, ``ExecutionsClient``, ``TasksClient``, the Secret Manager and Cloud Logging clients.

    Each is built on first use and shared by every thread (the clients are thread-safe).
    """

    def __init__(self, options: CloudRunOptions) -> None:
        self.options = options
        self._lock = threading.Lock()
        self._built: dict[str, Any] = {}

    def _get(self, key: str, build: Any) -> Any:
        with self._lock:
            if key not in self._built:
                self._built[key] = build()
            return self._built[key]

    def _run_client(self, cls: type) -> Any:
        o = self.options
        return cls(transport=o.transport, client_options=_client_options(o, o.api_endpoint), credentials=_credentials(o))

    @property
    def jobs(self) -> run_v2.JobsClient:
        """Jobs: create, get, run."""
        client: run_v2.JobsClient = self._get("jobs", lambda: self._run_client(run_v2.JobsClient))
        return client

    @property
    def executions(self) -> run_v2.ExecutionsClient:
        """Executions: list, get, cancel."""
        client: run_v2.ExecutionsClient = self._get("executions", lambda: self._run_client(run_v2.ExecutionsClient))
        return client

    @property
    def tasks(self) -> run_v2.TasksClient:
        """Tasks of an execution: list."""
        client: run_v2.TasksClient = self._get("tasks", lambda: self._run_client(run_v2.TasksClient))
        return client

    @property
    def secrets(self) -> Any:
        """Secret Manager's ``SecretManagerServiceClient``."""

        def build() -> Any:
            from google.cloud import secretmanager_v1

            o = self.options
            return secretmanager_v1.SecretManagerServiceClient(
                transport=o.transport,
                client_options=_client_options(o, o.secret_manager_endpoint, run_api=False),
                credentials=_credentials(o),
            )

        return self._get("secrets", build)

    def logging(self, project: str) -> Any:
        """google-cloud-logging's ``Client`` for ``project`` (only the default of ``list_entries``' resource names).

        ``transport="rest"`` uses its JSON-over-HTTP API (the one an ``http://`` endpoint
        such as the emulator needs), ``"grpc"`` its gRPC one.
        """

        def build() -> Any:
            from google.cloud import logging as cloud_logging

            o = self.options
            client_type: Any = cloud_logging.Client  # untyped in the library
            return client_type(
                project=project,
                credentials=_credentials(o),
                client_options=_client_options(o, o.logging_endpoint, run_api=False),
                # Private in the library, but its only per-client switch (GOOGLE_CLOUD_DISABLE_GRPC is process-wide).
                _use_grpc=o.transport == "grpc",
            )

        return self._get(f"logging:{project}", build)
