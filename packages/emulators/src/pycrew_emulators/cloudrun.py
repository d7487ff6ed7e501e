"""Emulator of the Cloud Run Admin API v2 (jobs, executions, tasks, operations).

No Cloud Run emulator exists, so this one speaks the REST/JSON dialect that the official
``google-cloud-run`` client's REST transport uses, and runs each task of an execution
as a local process through :class:`~pycrew_emulators.runner.JobRunner`, with the
``CLOUD_RUN_*`` environment a real task sees.

Implemented (paths under ``/v2/projects/P/locations/L``)::

    POST   /jobs?jobId=J                        create (LRO of Job)
    GET    /jobs[?pageSize&pageToken]           list
    GET    /jobs/J                              get
    DELETE /jobs/J                              delete (LRO of Job)
    POST   /jobs/J:run                          run with overrides (LRO of Execution)
    GET    /jobs/J/executions                   list (J may be "-": every job)
    GET    /jobs/J/executions/E                 get
    DELETE /jobs/J/executions/E                 delete (LRO of Execution)
    POST   /jobs/J/executions/E:cancel          cancel (LRO of Execution)
    GET    /jobs/J/executions/E/tasks[/T]       list / get tasks
    GET    /operations/O                        poll an LRO

plus Cloud Logging's ``POST /v2/entries:list`` over the tasks' output (one entry per line,
resource ``cloud_run_job``; see :mod:`pycrew_emulators.cloudrun_logging` for the filters it
understands), and an emulator-only ``GET /emulator/logs/<resource name>`` serving task
output (``log_uri`` of executions and tasks points there). Anything else answers 501
``UNIMPLEMENTED`` (update_job, IAM, listing/deleting/waiting operations).

Every message is built with the client's own proto classes and serialized with
protobuf's JSON printer, so replies are always valid for the client's strict LRO parser.
Requests are parsed strictly too (an unknown field is a 400 ``INVALID_ARGUMENT``, as
on the real API).

Fault knobs (:attr:`CloudRunEmulator.faults`, a :class:`~pycrew_emulators.faults.Faults`):
``fail_next`` / ``throttle_next`` answer the next calls with that HTTP status in Google's
JSON error form (429 becomes ``RESOURCE_EXHAUSTED`` with a ``RATE_LIMIT_EXCEEDED``
``ErrorInfo``, or ``RESOURCE_QUOTA_EXCEEDED`` for ``code="RESOURCE_QUOTA_EXCEEDED"``: a
used-up allocation quota rather than a rate limit), the operation names passed to
``only=`` are the RPC names (``"RunJob"``, ``"GetExecution"``, ``"GetOperation"``...);
``delay`` slows every reply; ``stuck = True`` holds every task pending (not started) until
it is set back to False; images in ``runner.missing_images`` fail to pull: the task fails
to start and the execution fails with a condition message.

A failed task says why the way Cloud Run v2 does: its ``Completed`` condition (state
``CONDITION_FAILED``; message ``Image '<image>' not found.`` with reason
``CONTAINER_MISSING``, ``The container failed to start: ...`` for a command that cannot
run, or ``The container exited with an exit code of N.``) and its ``last_attempt_result``
(a ``status`` with that message, and ``exit_code``, or ``term_signal`` for a container that
was killed: at most one of the two is set, as documented). The execution's ``Completed``
condition quotes the first failed task's message. A task whose processes use more memory
than its container's ``resources.limits["memory"]`` is SIGKILLed (documented: such
instances are terminated), with the message ``Memory limit of N MiB exceeded with M MiB
used. ...`` (the line Cloud Run logs for it; as the task's message: GUESS).

Emulator-only: :attr:`CloudRunEmulator.secrets` stands in for Secret Manager, for env
vars with ``valueSource.secretKeyRef``: ``secrets[("projects/P/secrets/S", "latest")] =
"value"`` (a version may also be a number; "latest" falls back to the highest numbered
version stored).

Behaviours marked GUESS in comments are not checked against the real service.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import re
import signal
import string
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self
from urllib.parse import parse_qs, unquote, urlsplit

import proto
from google.api_core.client_options import ClientOptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import run_v2
from google.longrunning import operations_pb2
from google.protobuf import json_format
from google.rpc import status_pb2

from pycrew_emulators.cloudrun_logging import InvalidLogQuery, TaskLogStore
from pycrew_emulators.faults import Fault, Faults
from pycrew_emulators.k8s_resources import QuantityError, parse_quantity, tree_rss
from pycrew_emulators.runner import ContainerSpec, JobRunner, RunState

__all__ = ["CloudRunApiError", "CloudRunEmulator"]

_log = logging.getLogger(__name__)

_State = run_v2.Condition.State

#: Google status name -> HTTP status (google.rpc.Code mapping used by Google's REST APIs).
_HTTP_OF_STATUS = {
    "INVALID_ARGUMENT": 400,
    "FAILED_PRECONDITION": 400,
    "OUT_OF_RANGE": 400,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "NOT_FOUND": 404,
    "ALREADY_EXISTS": 409,
    "ABORTED": 409,
    "RESOURCE_EXHAUSTED": 429,
    "CANCELLED": 499,
    "UNKNOWN": 500,
    "INTERNAL": 500,
    "DATA_LOSS": 500,
    "UNIMPLEMENTED": 501,
    "UNAVAILABLE": 503,
    "DEADLINE_EXCEEDED": 504,
}
_STATUS_OF_HTTP = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    500: "INTERNAL",
    501: "UNIMPLEMENTED",
    502: "UNAVAILABLE",  # GUESS: a bad gateway is never produced by Google as such
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}

# Documented Cloud Run resource-name rule: lowercase letters, digits, hyphens; starts
# with a letter, does not end with a hyphen, at most 63 characters.
_JOB_ID = re.compile(r"^[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?$")
# Documented: v2 rejects labels in these namespaces.
_RESERVED_LABEL_PREFIXES = (
    "run.googleapis.com",
    "cloud.googleapis.com",
    "serving.knative.dev",
    "autoscaling.knative.dev",
)
_DEFAULT_MAX_RETRIES = 3  # documented default of TaskTemplate.max_retries
_DEFAULT_TIMEOUT = dt.timedelta(seconds=600)  # documented default task timeout (10 min)
_TERMINAL = ("succeeded", "failed", "cancelled")


class CloudRunApiError(Exception):
    """An error reply in Google's JSON error form (``{"error": {code, message, status}}``)."""

    def __init__(
        self,
        status: str,
        message: str,
        http_status: int | None = None,
        details: list[dict[str, Any]] | None = None,
    ):
        super().__init__(message)
        self.status = status
        self.message = message
        self.http_status = http_status or _HTTP_OF_STATUS.get(status, 500)
        self.details = details or []

    def body(self) -> dict[str, Any]:
        """The JSON error body."""
        error: dict[str, Any] = {
            "code": self.http_status,
            "message": self.message,
            "status": self.status,
        }
        if self.details:
            error["details"] = self.details
        return {"error": error}


def _not_found(kind: str, name: str) -> CloudRunApiError:
    # GUESS: wording modelled on the real service's NOT_FOUND messages.
    parts = name.split("/")
    return CloudRunApiError(
        "NOT_FOUND",
        f"Resource '{parts[-1]}' of kind '{kind}' in region '{parts[3] if len(parts) > 3 else ''}' "
        f"in project '{parts[1] if len(parts) > 1 else ''}' does not exist.",
    )


def _ts(t: float | None) -> dt.datetime | None:
    return None if t is None else dt.datetime.fromtimestamp(t, tz=dt.UTC)


def _msg(cls: type[proto.Message], **kwargs: Any) -> Any:
    """Build a proto-plus message, leaving out fields given as None."""
    return cls(**{k: v for k, v in kwargs.items() if v is not None})


def _copy(msg: Any) -> Any:
    cls = type(msg)
    return cls.deserialize(cls.serialize(msg))


def _short(name: str) -> str:
    return name.rsplit("/", 1)[-1]


# --------------------------------------------------------------------------- state


@dataclass
class _Task:
    index: int
    name: str
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    status: str = "pending"  # pending | running | succeeded | failed | cancelled
    attempt: int = 0  # CLOUD_RUN_TASK_ATTEMPT of the current (or last) attempt
    run_id: str | None = None
    run_ids: list[str] = field(default_factory=list)
    deadline: float | None = None
    timed_out: bool = False
    start_time: float | None = None
    completion_time: float | None = None
    exit_code: int | None = None
    message: str = ""
    reason: int = 0  # Condition.CommonReason of a failure
    over_memory: str = ""  # the current attempt was killed for using more memory than its limit: why


@dataclass
class _Execution:
    name: str
    job_name: str
    labels: dict[str, str]
    template: Any  # run_v2.TaskTemplate, overrides applied
    task_count: int
    parallelism: int
    env: dict[str, str]
    start_error: str = ""  # a task cannot start (e.g. missing secret): why
    start_error_reason: int = 0
    uid: str = field(default_factory=lambda: str(uuid.uuid4()))
    create_time: float = field(default_factory=time.time)
    start_time: float | None = None
    completion_time: float | None = None
    cancel_requested: bool = False
    tasks: list[_Task] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(t.status == status for t in self.tasks)

    @property
    def terminal(self) -> bool:
        return all(t.status in _TERMINAL for t in self.tasks)

    @property
    def outcome(self) -> str:
        """running | cancelled | failed | succeeded."""
        if not self.terminal:
            return "running"
        if self.cancel_requested and self.count("cancelled"):
            return "cancelled"
        return "failed" if self.count("failed") else "succeeded"


@dataclass
class _Job:
    job: Any  # run_v2.Job as created (server fields filled)
    execution_count: int = 0
    latest_execution: str = ""


@dataclass
class _Operation:
    name: str
    render: Callable[[], Any]  # the Job / Execution, as metadata and response
    is_done: Callable[[], bool]
    first_reply_pending: bool = False


# --------------------------------------------------------------------------- emulator


class CloudRunEmulator:
    """A Cloud Run Admin API v2 server on ``127.0.0.1`` whose tasks run as local processes.

    Args:
        project: Default project of :meth:`parent` (any project/location in a path works).
        region: Default location.
        runner: Runner for the tasks; default: a new :class:`JobRunner`, closed by
            :meth:`close` (a given runner is left open).
        faults: Fault knobs; default: a new :class:`Faults`.

    Use as a context manager, or :meth:`start` then :meth:`close`.
    """

    def __init__(
        self,
        project: str = "test-project",
        region: str = "us-central1",
        runner: JobRunner | None = None,
        faults: Faults | None = None,
    ) -> None:
        self.project = project
        self.region = region
        self._own_runner = runner is None
        self.runner = runner if runner is not None else JobRunner()
        self.faults = faults if faults is not None else Faults()
        #: Emulator-only Secret Manager stand-in: ``(secret name, version) -> value``.
        self.secrets: dict[tuple[str, str], str] = {}
        #: The tasks' output as Cloud Logging entries (served on ``POST /v2/entries:list``).
        self.log_entries = TaskLogStore(self.runner)
        self._lock = threading.RLock()
        self._jobs: dict[str, _Job] = {}
        self._executions: dict[str, _Execution] = {}
        self._operations: dict[str, _Operation] = {}
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._threads: list[threading.Thread] = []
        self.runner.on_exit(self._on_run_exit)

    # ------------------------------------------------------------------ lifecycle

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``, the ``api_endpoint`` for the client."""
        if self._server is None:
            raise RuntimeError("emulator not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        """Start the HTTP server (port 0) and the task monitor, each in a thread."""
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.emulator = self  # type: ignore[attr-defined]
        self._server = server
        for target, name in (
            (lambda: server.serve_forever(poll_interval=0.05), "cloudrun-http"),
            (self._monitor, "cloudrun-monitor"),
        ):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def close(self) -> None:
        """Stop the server and the monitor; kill every task process. Idempotent."""
        self._stopping.set()
        self._wake.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()
        with self._lock:
            run_ids = [
                rid
                for e in self._executions.values()
                for t in e.tasks
                for rid in t.run_ids
            ]
        for rid in run_ids:
            self.runner.kill(rid)
        if self._own_runner:
            self.runner.close()
        else:
            for rid in run_ids:
                self.runner.wait(rid, timeout=10)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ client helpers

    def parent(self) -> str:
        """``projects/{project}/locations/{region}``."""
        return f"projects/{self.project}/locations/{self.region}"

    def client_options(self) -> ClientOptions:
        """Client options pointing the official client at this emulator."""
        return ClientOptions(api_endpoint=self.endpoint)

    def _client(self, cls: type) -> Any:
        return cls(
            transport="rest",
            client_options=self.client_options(),
            credentials=AnonymousCredentials(),
        )

    def jobs_client(self) -> run_v2.JobsClient:
        """An official ``JobsClient`` (REST transport, anonymous credentials)."""
        return self._client(run_v2.JobsClient)

    def executions_client(self) -> run_v2.ExecutionsClient:
        """An official ``ExecutionsClient`` (REST transport, anonymous credentials)."""
        return self._client(run_v2.ExecutionsClient)

    def tasks_client(self) -> run_v2.TasksClient:
        """An official ``TasksClient`` (REST transport, anonymous credentials)."""
        return self._client(run_v2.TasksClient)

    # ------------------------------------------------------------------ test helpers

    def run_ids(self, execution: str) -> dict[int, list[str]]:
        """Runner ids of every attempt of every task of an execution, by task index."""
        with self._lock:
            exe = self._executions[execution]
            return {t.index: list(t.run_ids) for t in exe.tasks}

    def logs(self, name: str) -> str:
        """Output of a task (all attempts) or of an execution (all tasks)."""
        with self._lock:
            if name in self._executions:
                run_ids = [
                    rid for t in self._executions[name].tasks for rid in t.run_ids
                ]
            else:
                exe = self._executions.get(name.rsplit("/tasks/", 1)[0])
                task = (
                    next((t for t in exe.tasks if t.name == name), None)
                    if exe
                    else None
                )
                if task is None:
                    raise KeyError(name)
                run_ids = list(task.run_ids)
        return "".join(self.runner.logs(rid) for rid in run_ids)

    def wait_execution(self, execution: str, timeout: float = 30.0) -> str:
        """Wait until an execution has ended; return its outcome (or "running" on timeout)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                exe = self._executions[execution]
                if exe.terminal or time.monotonic() >= deadline:
                    return exe.outcome
            time.sleep(0.02)

    # ------------------------------------------------------------------ HTTP dispatch

    _P = r"/v2/(?P<name>projects/[^/]+/locations/[^/]+"
    _ROUTES: tuple[tuple[str, str, str, str], ...] = (
        ("POST", _P + r")/jobs$", "CreateJob", "_create_job"),
        ("GET", _P + r")/jobs$", "ListJobs", "_list_jobs"),
        ("GET", _P + r"/jobs/[^/:]+)$", "GetJob", "_get_job"),
        ("DELETE", _P + r"/jobs/[^/:]+)$", "DeleteJob", "_delete_job"),
        ("POST", _P + r"/jobs/[^/:]+):run$", "RunJob", "_run_job"),
        (
            "GET",
            _P + r"/jobs/[^/:]+)/executions$",
            "ListExecutions",
            "_list_executions",
        ),
        (
            "GET",
            _P + r"/jobs/[^/:]+/executions/[^/:]+)$",
            "GetExecution",
            "_get_execution",
        ),
        (
            "DELETE",
            _P + r"/jobs/[^/:]+/executions/[^/:]+)$",
            "DeleteExecution",
            "_delete_execution",
        ),
        (
            "POST",
            _P + r"/jobs/[^/:]+/executions/[^/:]+):cancel$",
            "CancelExecution",
            "_cancel_execution",
        ),
        (
            "GET",
            _P + r"/jobs/[^/:]+/executions/[^/:]+)/tasks$",
            "ListTasks",
            "_list_tasks",
        ),
        (
            "GET",
            _P + r"/jobs/[^/:]+/executions/[^/:]+/tasks/[^/:]+)$",
            "GetTask",
            "_get_task",
        ),
        ("GET", _P + r"/operations/[^/:]+)$", "GetOperation", "_get_operation"),
        ("POST", r"/v2/(?P<name>entries):list$", "ListLogEntries", "_list_log_entries"),
    )

    def handle(self, method: str, raw_path: str, body: bytes) -> tuple[int, str, bytes]:
        """Serve one request; return ``(http status, content type, body)``."""
        url = urlsplit(raw_path)
        path = unquote(url.path)
        if method == "GET" and path.startswith("/emulator/logs/"):
            try:
                text = self.logs(path.removeprefix("/emulator/logs/"))
            except KeyError:
                return 404, "text/plain", b"no such task or execution\n"
            return 200, "text/plain; charset=utf-8", text.encode()
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        try:
            for route_method, pattern, rpc, handler in self._ROUTES:
                match = re.match(pattern, path)
                if route_method == method and match:
                    self.faults.sleep()
                    fault = self.faults.take_api_fault(rpc)
                    if fault is not None:
                        raise _fault_error(fault)
                    reply = getattr(self, handler)(match["name"], query, body)
                    return 200, "application/json", reply.encode()
            raise CloudRunApiError(
                "UNIMPLEMENTED", f"The emulator does not implement {method} {path}."
            )
        except CloudRunApiError as exc:
            return exc.http_status, "application/json", json.dumps(exc.body()).encode()
        except Exception as exc:
            _log.exception("cloudrun emulator: %s %s failed", method, path)
            err = CloudRunApiError("INTERNAL", f"emulator error: {exc!r}")
            return 500, "application/json", json.dumps(err.body()).encode()

    # ------------------------------------------------------------------ serialization

    @staticmethod
    def _json(msg: Any) -> str:
        return type(msg).to_json(msg, use_integers_for_enums=True, indent=0)

    @staticmethod
    def _parse(message_type: type[proto.Message], body: bytes) -> Any:
        try:
            return message_type.from_json(body.decode() or "{}")
        except (json_format.ParseError, UnicodeDecodeError, ValueError) as exc:
            raise CloudRunApiError(
                "INVALID_ARGUMENT", f"Invalid JSON payload received. {exc}"
            ) from None

    def _new_operation(
        self,
        parent: str,
        render: Callable[[], Any],
        is_done: Callable[[], bool],
        first_reply_pending: bool = False,
    ) -> str:
        op = _Operation(
            f"{parent}/operations/{uuid.uuid4()}", render, is_done, first_reply_pending
        )
        with self._lock:
            self._operations[op.name] = op
            return self._render_operation(op)

    def _render_operation(self, op: _Operation) -> str:
        """An ``google.longrunning.Operation`` whose metadata (and, once done, response) is the resource."""
        with self._lock:
            msg = op.render()
            done = op.is_done() and not op.first_reply_pending
            op.first_reply_pending = False
        pb = operations_pb2.Operation(name=op.name, done=done)
        pb.metadata.Pack(type(msg).pb(msg))
        if done:
            pb.response.Pack(type(msg).pb(msg))
        return json_format.MessageToJson(pb, indent=0, use_integers_for_enums=True)

    def _get_operation(self, name: str, query: dict[str, str], body: bytes) -> str:
        with self._lock:
            op = self._operations.get(name)
        if op is None:
            raise _not_found("OPERATION", name)
        return self._render_operation(op)

    # ------------------------------------------------------------------ Cloud Logging

    def _list_log_entries(self, name: str, query: dict[str, str], body: bytes) -> str:
        try:
            return self.log_entries.list_entries(body)
        except InvalidLogQuery as exc:
            raise CloudRunApiError("INVALID_ARGUMENT", str(exc)) from None

    # ------------------------------------------------------------------ jobs

    def _job(self, name: str) -> _Job:
        job = self._jobs.get(name)
        if job is None:
            raise _not_found("JOB", name)
        return job

    def _render_job(self, j: _Job) -> Any:
        job = _copy(j.job)
        job.execution_count = j.execution_count
        exe = self._executions.get(j.latest_execution)
        if exe is not None:
            status = {
                "running": "EXECUTION_RUNNING"
                if exe.start_time
                else "EXECUTION_PENDING",
                "succeeded": "EXECUTION_SUCCEEDED",
                "failed": "EXECUTION_FAILED",
                "cancelled": "EXECUTION_CANCELLED",
            }[exe.outcome]
            # GUESS: ExecutionReference.name holds the short execution id, like Execution.job.
            job.latest_created_execution = _msg(
                run_v2.ExecutionReference,
                name=_short(exe.name),
                create_time=_ts(exe.create_time),
                completion_time=_ts(exe.completion_time),
                completion_status=run_v2.ExecutionReference.CompletionStatus[status],
            )
        return job

    def _create_job(self, parent: str, query: dict[str, str], body: bytes) -> str:
        job_id = query.get("jobId", "")
        if not _JOB_ID.match(job_id):
            raise CloudRunApiError(
                "INVALID_ARGUMENT",
                f"Invalid jobId '{job_id}': must match {_JOB_ID.pattern}.",
            )
        job = self._parse(run_v2.Job, body)
        containers = job.template.template.containers
        if not containers or not containers[0].image:
            raise CloudRunApiError(
                "INVALID_ARGUMENT",
                "template.template.containers[0].image: a container image is required.",
            )
        for key in [*job.labels, *job.template.labels]:
            if key.split("/")[0] in _RESERVED_LABEL_PREFIXES:
                raise CloudRunApiError(
                    "INVALID_ARGUMENT", f"Label '{key}' uses a reserved namespace."
                )
        now = time.time()
        job.name = f"{parent}/jobs/{job_id}"
        job.uid = str(uuid.uuid4())
        job.generation = 1
        job.observed_generation = 1
        job.create_time = job.update_time = _ts(now)
        job.etag = f'"{uuid.uuid4().hex[:16]}"'
        job.reconciling = False
        # Documented defaults, filled in the stored job as the real API shows them.
        job.template.task_count = job.template.task_count or 1
        if "max_retries" not in job.template.template:
            job.template.template.max_retries = _DEFAULT_MAX_RETRIES
        if "timeout" not in job.template.template:
            job.template.template.timeout = _DEFAULT_TIMEOUT
        job.terminal_condition = _msg(
            run_v2.Condition,
            type_="Ready",
            state=_State.CONDITION_SUCCEEDED,
            last_transition_time=_ts(now),
        )
        with self._lock:
            if job.name in self._jobs:
                raise CloudRunApiError(
                    "ALREADY_EXISTS", f"Resource '{job_id}' already exists."
                )
            entry = _Job(job)
            if query.get("validateOnly") != "true":
                self._jobs[job.name] = entry
        # GUESS: the real create LRO takes a few seconds; here the job is ready at once,
        # but the first reply says "not done" so that clients go through their polling.
        return self._new_operation(
            parent,
            lambda: self._render_job(entry),
            lambda: True,
            first_reply_pending=True,
        )

    def _list_jobs(self, parent: str, query: dict[str, str], body: bytes) -> str:
        with self._lock:
            jobs = [
                self._render_job(j)
                for n, j in sorted(self._jobs.items())
                if n.startswith(parent + "/")
            ]
        page, token = _page(jobs, query)
        return self._json(run_v2.ListJobsResponse(jobs=page, next_page_token=token))

    def _get_job(self, name: str, query: dict[str, str], body: bytes) -> str:
        with self._lock:
            return self._json(self._render_job(self._job(name)))

    def _delete_job(self, name: str, query: dict[str, str], body: bytes) -> str:
        # GUESS: deleting a job also deletes its executions, killing running tasks.
        with self._lock:
            entry = self._job(name)
            snapshot = self._render_job(entry)
            del self._jobs[name]
            doomed = [e for e in self._executions.values() if e.job_name == name]
            for exe in doomed:
                del self._executions[exe.name]
        self._kill_executions(doomed)
        return self._new_operation(
            _location(name), lambda: snapshot, lambda: True, first_reply_pending=True
        )

    def _run_job(self, name: str, query: dict[str, str], body: bytes) -> str:
        request = self._parse(run_v2.RunJobRequest, body)
        overrides = request.overrides
        with self._lock:
            entry = self._job(name)
            job = entry.job
            template = _copy(job.template.template)
            by_name = {c.name: c for c in template.containers}
            for co in overrides.container_overrides:
                # GUESS: an override without a name applies to the first (main) container.
                target = by_name.get(co.name) if co.name else template.containers[0]
                if target is None:
                    raise CloudRunApiError(
                        "INVALID_ARGUMENT",
                        f"Container '{co.name}' in overrides not found in the job.",
                    )
                if co.clear_args:
                    target.args = []
                elif co.args:
                    target.args = list(co.args)
                env = {e.name: _copy(e) for e in target.env}
                env.update({e.name: _copy(e) for e in co.env})
                target.env = list(env.values())
            if "timeout" in overrides:
                template.timeout = overrides.timeout
            task_count = overrides.task_count or job.template.task_count or 1
            suffix = "".join(
                random.choices(string.ascii_lowercase + string.digits, k=5)
            )
            job_id = _short(name)
            exe_name = f"{name}/executions/{job_id}-{suffix}"
            env, error, reason = self._resolve_env(template.containers[0], name)
            exe = _Execution(
                name=exe_name,
                job_name=name,
                # Documented: Cloud Billing and Logging see only the template's labels
                # (gcloud --labels writes both job and template labels). GUESS: the
                # execution's labels are exactly job.template.labels; the job's own
                # labels are not copied.
                labels=dict(job.template.labels),
                template=template,
                task_count=task_count,
                parallelism=job.template.parallelism,
                env=env,
                start_error=error,
                start_error_reason=reason,
            )
            # GUESS: task ids are "<execution id>-task<index>".
            exe.tasks = [
                _Task(i, f"{exe_name}/tasks/{_short(exe_name)}-task{i}")
                for i in range(task_count)
            ]
            if request.validate_only:
                return self._new_operation(
                    _location(name), lambda: self._render_execution(exe), lambda: True
                )
            self._executions[exe_name] = exe
            entry.execution_count += 1
            entry.latest_execution = exe_name
            self._tick()
        # The operation ends with the execution (succeeded, failed or cancelled). GUESS,
        # supported by client code in the wild: a failed execution does not set the
        # operation's error; the response is the Execution with its counts.
        return self._new_operation(
            _location(name), lambda: self._render_execution(exe), lambda: exe.terminal
        )

    def _resolve_env(
        self, container: Any, job_name: str
    ) -> tuple[dict[str, str], str, int]:
        """Plain and secret env values of a container; an error message for a missing secret."""
        env: dict[str, str] = {}
        for var in container.env:
            if "value_source" not in var:
                env[var.name] = var.value
                continue
            ref = var.value_source.secret_key_ref
            secret = (
                ref.secret
                if ref.secret.startswith("projects/")
                else f"projects/{job_name.split('/')[1]}/secrets/{ref.secret}"
            )
            version = ref.version or "latest"
            value = self.secrets.get((secret, version))
            if value is None and version == "latest":
                numbered = [
                    (int(v), s)
                    for (n, v), s in self.secrets.items()
                    if n == secret and v.isdigit()
                ]
                value = max(numbered)[1] if numbered else None
            if value is None:
                # GUESS: the real service may reject this earlier (at create or run).
                reason = run_v2.Condition.CommonReason.SECRETS_ACCESS_CHECK_FAILED
                return (
                    env,
                    f"Secret {secret}/versions/{version} was not found (env var {var.name}).",
                    reason,
                )
            env[var.name] = value
        return env, "", 0

    # ------------------------------------------------------------------ executions

    def _execution(self, name: str) -> _Execution:
        exe = self._executions.get(name)
        if exe is None:
            raise _not_found("EXECUTION", name)
        return exe

    def _log_uri(self, name: str) -> str:
        # The real log_uri is a Cloud Console link; here it serves the task output.
        return f"{self.endpoint}/emulator/logs/{name}"

    def _render_execution(self, exe: _Execution) -> Any:
        return _msg(
            run_v2.Execution,
            name=exe.name,
            uid=exe.uid,
            generation=1,
            labels=exe.labels,
            create_time=_ts(exe.create_time),
            start_time=_ts(exe.start_time),
            completion_time=_ts(exe.completion_time),
            update_time=_ts(exe.completion_time or exe.start_time or exe.create_time),
            job=_short(exe.job_name),  # GUESS: the short job id, not the full name
            parallelism=exe.parallelism,
            task_count=exe.task_count,
            template=exe.template,
            reconciling=not exe.terminal,
            conditions=self._execution_conditions(exe),
            observed_generation=1,
            running_count=exe.count("running"),
            succeeded_count=exe.count("succeeded"),
            failed_count=exe.count("failed"),
            cancelled_count=exe.count("cancelled"),
            retried_count=sum(t.attempt > 0 for t in exe.tasks),
            log_uri=self._log_uri(exe.name),
            etag=f'"{exe.uid[:8]}-{len(exe.tasks)}"',
        )

    def _execution_conditions(self, exe: _Execution) -> list[Any]:
        """GUESS: condition types, states and messages are modelled on real replies
        (``Completed`` is the terminal one), not copied from them."""
        cond = run_v2.Condition
        started = exe.start_time is not None
        when = _ts(exe.completion_time or exe.start_time or exe.create_time)
        outcome = exe.outcome
        completed = _msg(cond, type_="Completed", last_transition_time=when)
        if outcome == "succeeded":
            completed.state = _State.CONDITION_SUCCEEDED
            completed.message = f"Execution completed successfully in {round((exe.completion_time or 0) - (exe.start_time or exe.create_time))}s."
        elif outcome == "cancelled":
            completed.state = _State.CONDITION_FAILED
            completed.execution_reason = cond.ExecutionReason.CANCELLED
            completed.message = "The execution was cancelled."
        elif outcome == "failed":
            failed = [t for t in exe.tasks if t.status == "failed"]
            completed.state = _State.CONDITION_FAILED
            completed.message = f"Task {_short(failed[0].name)} failed with message: {failed[0].message}"
            if len(failed) > 1:
                completed.message += (
                    f" ({len(failed)} of {exe.task_count} tasks failed.)"
                )
            if failed[0].reason:
                completed.reason = failed[0].reason
            else:
                completed.execution_reason = cond.ExecutionReason.NON_ZERO_EXIT_CODE
        else:
            completed.state = (
                _State.CONDITION_RECONCILING if started else _State.CONDITION_PENDING
            )
            if exe.cancel_requested:
                completed.execution_reason = cond.ExecutionReason.CANCELLING
        ok = _State.CONDITION_SUCCEEDED
        return [
            completed,
            _msg(
                cond,
                type_="ResourcesAvailable",
                state=ok if started else _State.CONDITION_PENDING,
                last_transition_time=when,
            ),
            _msg(
                cond,
                type_="Started",
                state=ok if started else _State.CONDITION_PENDING,
                last_transition_time=when,
            ),
        ]

    def _list_executions(self, parent: str, query: dict[str, str], body: bytes) -> str:
        with self._lock:
            if _short(parent) != "-":
                self._job(parent)
            prefix = (
                parent.rsplit("/", 1)[0] + "/"
                if _short(parent) == "-"
                else parent + "/executions/"
            )
            # GUESS: newest first.
            found = sorted(
                (e for n, e in self._executions.items() if n.startswith(prefix)),
                key=lambda e: -e.create_time,
            )
            items = [self._render_execution(e) for e in found]
        page, token = _page(items, query)
        return self._json(
            run_v2.ListExecutionsResponse(executions=page, next_page_token=token)
        )

    def _get_execution(self, name: str, query: dict[str, str], body: bytes) -> str:
        with self._lock:
            return self._json(self._render_execution(self._execution(name)))

    def _cancel_execution(self, name: str, query: dict[str, str], body: bytes) -> str:
        with self._lock:
            exe = self._execution(name)
            if exe.terminal:
                # GUESS: cancelling a finished execution is refused.
                raise CloudRunApiError(
                    "FAILED_PRECONDITION",
                    f"Execution '{_short(name)}' has already completed.",
                )
            exe.cancel_requested = True
        self._kill_executions([exe])
        return self._new_operation(
            _location(name), lambda: self._render_execution(exe), lambda: exe.terminal
        )

    def _delete_execution(self, name: str, query: dict[str, str], body: bytes) -> str:
        # GUESS: deleting a running execution kills its tasks first.
        with self._lock:
            exe = self._execution(name)
            exe.cancel_requested = not exe.terminal
        self._kill_executions([exe])
        with self._lock:
            snapshot = self._render_execution(exe)
            self._executions.pop(name, None)
        return self._new_operation(
            _location(name), lambda: snapshot, lambda: True, first_reply_pending=True
        )

    def _kill_executions(self, executions: list[_Execution]) -> None:
        """Mark the executions cancelled, kill their running tasks and wait for them."""
        with self._lock:
            run_ids: list[str] = []
            for exe in executions:
                exe.cancel_requested = exe.cancel_requested or not exe.terminal
                for t in exe.tasks:
                    if t.status == "running" and t.run_id:
                        run_ids.append(t.run_id)
        for rid in run_ids:
            self.runner.kill(
                rid
            )  # SIGKILL. GUESS: the real service sends SIGTERM first.
        for rid in run_ids:
            self.runner.wait(rid, timeout=5)
        with self._lock:
            self._tick(executions)

    # ------------------------------------------------------------------ tasks

    def _render_task(self, exe: _Execution, t: _Task) -> Any:
        cond = run_v2.Condition
        state = {
            "pending": _State.CONDITION_PENDING,
            "running": _State.CONDITION_RECONCILING,
            "succeeded": _State.CONDITION_SUCCEEDED,
            "failed": _State.CONDITION_FAILED,
            "cancelled": _State.CONDITION_FAILED,
        }[t.status]
        completed = _msg(
            cond,
            type_="Completed",
            state=state,
            message=t.message,
            last_transition_time=_ts(t.completion_time or t.start_time),
        )
        if t.status == "cancelled":
            completed.execution_reason = cond.ExecutionReason.CANCELLED
        elif t.status == "failed" and t.reason:
            completed.reason = t.reason
        result = None
        if t.exit_code is not None or t.status == "failed":
            # Documented: at most one of exit_code and term_signal is set; exit_code is unset
            # when the container could not exit by itself (it did not start, or was killed).
            code = t.exit_code or 0
            signalled = code > 128
            result = run_v2.TaskAttemptResult(
                exit_code=0 if signalled else code,
                term_signal=code - 128 if signalled else 0,
                status=status_pb2.Status(
                    code=0 if t.status == "succeeded" else 2, message=t.message
                ),
            )
        tmpl = exe.template
        return _msg(
            run_v2.Task,
            name=t.name,
            uid=t.uid,
            generation=1,
            labels=exe.labels,
            create_time=_ts(exe.create_time),
            scheduled_time=_ts(t.start_time),
            start_time=_ts(t.start_time),
            completion_time=_ts(t.completion_time),
            update_time=_ts(t.completion_time or t.start_time or exe.create_time),
            job=_short(exe.job_name),
            execution=_short(exe.name),
            containers=list(tmpl.containers),
            max_retries=tmpl.max_retries,
            timeout=tmpl.timeout,
            service_account=tmpl.service_account,
            execution_environment=tmpl.execution_environment,
            reconciling=t.status not in _TERMINAL,
            conditions=[completed],
            observed_generation=1,
            index=t.index,
            retried=t.attempt,
            last_attempt_result=result,
            log_uri=self._log_uri(t.name),
        )

    def _list_tasks(self, parent: str, query: dict[str, str], body: bytes) -> str:
        with self._lock:
            exe = self._execution(parent)
            items = [self._render_task(exe, t) for t in exe.tasks]
        page, token = _page(items, query)
        return self._json(run_v2.ListTasksResponse(tasks=page, next_page_token=token))

    def _get_task(self, name: str, query: dict[str, str], body: bytes) -> str:
        with self._lock:
            exe = self._execution(name.rsplit("/tasks/", 1)[0])
            task = next((t for t in exe.tasks if t.name == name), None)
            if task is None:
                raise _not_found("TASK", name)
            return self._json(self._render_task(exe, task))

    # ------------------------------------------------------------------ task scheduling

    def _on_run_exit(self, run_id: str, state: RunState) -> None:
        self._wake.set()

    def _monitor(self) -> None:
        """Advance every execution: exits, timeouts, retries, starts (every 0.1 s or on exit)."""
        while not self._stopping.is_set():
            self._wake.wait(0.1)
            self._wake.clear()
            if self._stopping.is_set():
                return
            try:
                with self._lock:
                    self._tick()
                self.log_entries.collect()
            except Exception:
                _log.exception("cloudrun emulator: monitor tick failed")

    def _tick(self, executions: list[_Execution] | None = None) -> None:
        """One scheduling step (call with the lock held)."""
        now = time.time()
        for exe in (
            executions if executions is not None else list(self._executions.values())
        ):
            if exe.completion_time is not None:
                continue
            for t in exe.tasks:
                if t.status == "running" and t.run_id:
                    state = self.runner.state(t.run_id)
                    if state.done:
                        self._attempt_ended(exe, t, state)
                    elif (
                        t.deadline is not None and now > t.deadline and not t.timed_out
                    ):
                        t.timed_out = True
                        # The exit is handled on a later tick.
                        self.runner.kill(t.run_id)
                    elif state.pid is not None:
                        self._enforce_memory_limit(exe, t, state.pid)
            if exe.cancel_requested:
                for t in exe.tasks:
                    if t.status == "pending":
                        t.status, t.message, t.completion_time = (
                            "cancelled",
                            "The task was cancelled.",
                            now,
                        )
            elif not self.faults.stuck:
                limit = exe.parallelism or exe.task_count  # 0: as many as possible
                for t in exe.tasks:
                    if exe.count("running") >= limit:
                        break
                    if t.status == "pending":
                        self._start_attempt(exe, t, now)
            if exe.terminal:
                exe.completion_time = now

    def _start_attempt(self, exe: _Execution, t: _Task, now: float) -> None:
        if exe.start_time is None:
            exe.start_time = now
        if exe.start_error:
            t.status, t.message, t.reason, t.completion_time = (
                "failed",
                exe.start_error,
                exe.start_error_reason,
                now,
            )
            return
        # Only the first container runs: sidecar containers are not emulated.
        container = exe.template.containers[0]
        env = {
            **exe.env,
            "CLOUD_RUN_JOB": _short(exe.job_name),
            "CLOUD_RUN_EXECUTION": _short(exe.name),
            "CLOUD_RUN_TASK_INDEX": str(t.index),
            "CLOUD_RUN_TASK_COUNT": str(exe.task_count),
            "CLOUD_RUN_TASK_ATTEMPT": str(t.attempt),
        }
        spec = ContainerSpec(
            image=container.image,
            command=list(container.command),
            args=list(container.args),
            env=env,
            working_dir=container.working_dir or None,
            name=_short(t.name),
        )
        run_id = self.runner.start(
            spec, run_id=f"{_short(t.name)}-{t.attempt}-{t.uid[:8]}"
        )
        t.run_id = run_id
        t.run_ids.append(run_id)
        self.log_entries.track(run_id, exe.name, t.index, t.attempt)
        t.status, t.start_time, t.timed_out = "running", now, False
        timeout = exe.template.timeout
        t.deadline = now + timeout.total_seconds() if timeout else None
        state = self.runner.state(run_id)
        if state.done:
            self._attempt_ended(exe, t, state)

    def _enforce_memory_limit(self, exe: _Execution, t: _Task, pid: int) -> None:
        """Documented: "Cloud Run instances that exceed their allowed memory limit are terminated"
        (the container's ``resources.limits["memory"]``). Its processes' resident memory is
        checked every tick (real: the kernel, at once, on allocation); one above the limit is
        SIGKILLed. Only an explicit limit is enforced (real: 512 MiB by default)."""
        limit = _memory_limit(exe.template.containers[0])
        if limit is None or t.over_memory or t.run_id is None:
            return
        used = tree_rss(pid)
        if used > limit:
            # GUESS: the task's message is the line Cloud Run logs for such an instance.
            t.over_memory = (
                f"Memory limit of {limit // 2**20} MiB exceeded with {round(used / 2**20)} MiB used. "
                "Consider increasing the memory limit, see https://cloud.google.com/run/docs/configuring/memory-limits"
            )
            self.runner.kill(t.run_id, signal.SIGKILL)

    def _attempt_ended(self, exe: _Execution, t: _Task, state: RunState) -> None:
        now = time.time()
        t.exit_code = state.exit_code
        over_memory, t.over_memory = t.over_memory, ""
        if exe.cancel_requested:
            t.status, t.message = "cancelled", "The task was cancelled."
        elif state.status == "failed_to_start":
            # GUESS: a container that cannot start is not retried.
            t.status = "failed"
            if state.reason.startswith("ImagePullBackOff"):
                t.message = f"Image '{exe.template.containers[0].image}' not found."
                t.reason = run_v2.Condition.CommonReason.CONTAINER_MISSING
            else:
                t.message = f"The container failed to start: {state.reason}"
        elif state.exit_code == 0 and not t.timed_out:
            t.status, t.message = "succeeded", ""
        else:
            # GUESS: message wording.
            if t.timed_out:
                t.message = f"The configured timeout was reached ({exe.template.timeout.total_seconds():g}s)."
            elif over_memory:
                t.message = over_memory
            else:
                t.message = (
                    f"The container exited with an exit code of {state.exit_code}."
                )
            if t.attempt < exe.template.max_retries:
                # GUESS: retried at once; the real service may back off between attempts.
                t.attempt += 1
                t.status, t.run_id = "pending", None
                return
            t.status = "failed"
        t.completion_time = now


def _memory_limit(container: Any) -> int | None:
    """A container's memory limit in bytes (``resources.limits["memory"]``), if it has a valid one."""
    value = container.resources.limits.get("memory") if "resources" in container else None
    try:
        return int(parse_quantity(value)) if value else None
    except QuantityError:  # the real API refuses it when the job is created; this emulator does not check
        return None


def _location(name: str) -> str:
    return "/".join(name.split("/")[:4])


def _page(items: list[Any], query: dict[str, str]) -> tuple[list[Any], str]:
    """Offset pagination: ``pageSize`` (0/absent: everything) and an opaque ``pageToken``."""
    try:
        start = int(query.get("pageToken") or 0)
        size = int(query.get("pageSize") or 0)
    except ValueError:
        raise CloudRunApiError(
            "INVALID_ARGUMENT", "Invalid page token or size."
        ) from None
    end = len(items) if size <= 0 else min(start + size, len(items))
    return items[start:end], (str(end) if end < len(items) else "")


def _fault_error(fault: Fault) -> CloudRunApiError:
    """An injected fault in Google's form; 429 becomes a quota error (a rate limit, or a
    used-up resource quota for ``code="RESOURCE_QUOTA_EXCEEDED"``)."""
    status = (
        fault.code
        if fault.code in _HTTP_OF_STATUS
        else _STATUS_OF_HTTP.get(fault.status, "UNKNOWN")
    )
    details = []
    if fault.status == 429:
        details = [
            {
                "@type": "type.googleapis.com/google.rpc.ErrorInfo",
                "reason": "RESOURCE_QUOTA_EXCEEDED" if fault.code == "RESOURCE_QUOTA_EXCEEDED" else "RATE_LIMIT_EXCEEDED",
                "domain": "googleapis.com",
                "metadata": {"service": "run.googleapis.com"},
            }
        ]
    return CloudRunApiError(
        status, fault.message, http_status=fault.status, details=details
    )


class _Handler(BaseHTTPRequestHandler):
    server_version = "pycrew-cloudrun-emulator"

    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        emulator: CloudRunEmulator = self.server.emulator  # type: ignore[attr-defined]
        status, ctype, payload = emulator.handle(self.command, self.path, body)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_DELETE = do_PATCH = _serve

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("cloudrun emulator: " + format, *args)
