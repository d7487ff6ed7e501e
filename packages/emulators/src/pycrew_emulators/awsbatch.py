"""AWS Batch emulator: moto's Batch server, running jobs as local processes.

Three parts, all on 127.0.0.1:

* **moto server** (a subprocess: ``python -m pycrew_emulators.awsbatch serve-moto``) with
  moto's real Batch state machine, in docker mode, with ``DOCKER_HOST`` pointing at
* **a fake Docker Engine API** (:class:`FakeDockerEngine`, in the test process) that
  implements only the calls moto's Batch backend makes and runs each "container"'s
  ``Cmd``/``Env`` through a :class:`~pycrew_emulators.runner.JobRunner`, and
* **a fault proxy** (:class:`FaultProxy`) in front of moto: clients use its URL as
  ``endpoint_url``; it injects API errors, throttling and delays from
  :class:`~pycrew_emulators.faults.Faults`.

moto is used as is, except for a few small patches applied in the moto subprocess
(:func:`_patch_moto`), each filling a documented gap between moto 5.x and AWS Batch:

* a job leaves ``RUNNABLE`` only when its queue has an ``ENABLED`` compute environment
  (AWS: a ``DISABLED`` environment gets no jobs placed) and the emulator's
  ``faults.stuck`` knob is off and ``docker.blocked_reason`` is empty; otherwise it
  stays ``RUNNABLE`` (with ``blocked_reason`` as its ``statusReason``, as AWS reports a
  blocked queue);
* a job terminated/cancelled before it started goes ``FAILED`` without ever starting its
  container (moto would start it and kill it at once);
* terminating an array parent terminates its children; a parent whose children all
  ended is ``SUCCEEDED`` only if all of them succeeded, else ``FAILED``;
* ``describe_jobs`` reports ``container.exitCode`` and a ``statusReason`` for stopped
  jobs (``"Essential container in task exited"``, ``"CannotPullContainerError: ..."``,
  ``"CannotStartContainerError: ..."``, ``"OutOfMemoryError: Container killed due to
  memory usage"`` (also as ``container.reason``), or the terminate reason);
* a container gets its job's ``MEMORY`` requirement (the container overrides', else the
  job definition's) as its hard memory limit (Docker's ``HostConfig.Memory``), as the ECS
  agent gives it; the fake Docker Engine SIGKILLs a container whose processes use more;
* containers get ``AWS_BATCH_JOB_ARRAY_INDEX`` (array children),
  ``AWS_BATCH_JOB_ATTEMPT``, ``AWS_BATCH_JQ_NAME`` and ``AWS_BATCH_CE_NAME`` like on AWS.

Status progression uses moto's state manager with ``progression=manual, times=1``: every
job walks SUBMITTED → PENDING → RUNNABLE → STARTING → RUNNING in order, as fast as
moto's job thread goes, and then SUCCEEDED/FAILED when the process exits (moto polls the
container every 0.5 s). Known remaining gaps (see README): logs reach CloudWatch Logs
only when the container has exited; retry strategies are ignored; one attempt only.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

from pycrew_emulators.faults import Fault, Faults
from pycrew_emulators.k8s_resources import tree_rss
from pycrew_emulators.runner import ContainerSpec, JobRunner

__all__ = ["DOCKER_API_VERSION", "AwsBatchEmulator", "FakeDockerEngine", "FaultProxy"]

_log = logging.getLogger(__name__)

#: Docker Engine API version the fake engine reports (docker SDK 7.x negotiates it).
DOCKER_API_VERSION = "1.45"

_FINAL = ("SUCCEEDED", "FAILED")

#: What AWS Batch says of a job whose container went over its memory limit, as its
#: ``statusReason`` and its container's ``reason`` (exit code 137).
OUT_OF_MEMORY = "OutOfMemoryError: Container killed due to memory usage"


# --------------------------------------------------------------------------- helpers


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class _Handler(BaseHTTPRequestHandler):
    """Shared bits of the two small HTTP servers (HTTP/1.1 keep-alive, JSON replies)."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("%s: " + format, type(self).__name__, *args)

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            while True:
                size = int(self.rfile.readline().strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any) -> None:
        self._send(status, json.dumps(obj).encode(), {"Content-Type": "application/json"})


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # moto's job threads and boto3 clients connect in bursts

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionResetError, BrokenPipeError, TimeoutError)):
            _log.debug("client %s went away: %r", client_address, exc)
            return
        super().handle_error(request, client_address)


# --------------------------------------------------------------------------- fake Docker


@dataclass
class _Container:
    id: str
    name: str
    image: str
    entrypoint: list[str]
    cmd: list[str]
    env: dict[str, str]
    working_dir: str | None
    created: float
    run_id: str | None = None
    start_error: str = ""
    memory: int = 0  # HostConfig.Memory: the hard limit in bytes (0: none)
    oom_killed: bool = False


@dataclass
class FakeDockerEngine:
    """The subset of the Docker Engine API that moto's Batch backend uses.

    Runs containers through ``runner``; images are not pulled (``runner.missing_images``
    makes ``create`` fail with "No such image" and the pull fail, as on a registry
    without the image). Reports ``Config.Tty=true`` so logs are plain text (stdout and
    stderr interleaved, each line stamped with the container's start time: a guess, the
    runner does not time-stamp lines).

    Also serves two private endpoints for the patched moto (``/pycrew/placement`` and
    ``/pycrew/jobs/{job_id}``). Unknown requests get a 404 and are recorded in
    :attr:`unhandled`.
    """

    runner: JobRunner
    faults: Faults
    moto_url: str = ""
    #: When set, jobs stay RUNNABLE with this ``statusReason``, as AWS Batch reports a
    #: queue blocked at its head (``"MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - ..."``).
    blocked_reason: str = ""
    unhandled: list[str] = field(default_factory=list)
    _containers: dict[str, _Container] = field(default_factory=dict)
    _job_info: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _server: _Server | None = None
    _thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    @property
    def docker_host(self) -> str:
        """Value for ``DOCKER_HOST``."""
        return f"tcp://127.0.0.1:{self.port}"

    def start(self) -> FakeDockerEngine:
        engine = self

        class Handler(_DockerHandler):
            pass

        Handler.engine = engine
        self._server = _Server(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-docker", daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def containers(self) -> list[dict[str, Any]]:
        """A summary of every container created so far (for debugging and tests)."""
        with self._lock:
            items = list(self._containers.values())
        return [
            {
                "id": c.id,
                "name": c.name,
                "job_id": c.env.get("AWS_BATCH_JOB_ID"),
                "run_id": c.run_id,
                "state": self.runner.state(c.run_id) if c.run_id else None,
            }
            for c in items
        ]

    def run_id_for_job(self, job_id: str) -> str | None:
        """The runner's run id of a Batch job's container (None if never started)."""
        with self._lock:
            return self._job_info.get(job_id, {}).get("run_id")

    # ---- operations (called by the handler)

    def create(self, name: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        image = str(body.get("Image", ""))
        env = dict(e.split("=", 1) if "=" in e else (e, "") for e in body.get("Env") or [])
        if image in self.runner.missing_images:
            # The docker SDK then tries to pull, which fails too (see pull()).
            job_id = env.get("AWS_BATCH_JOB_ID")
            if job_id:
                msg = f"pull access denied for {image}, repository does not exist or may require 'docker login'"
                self._set_job_info(
                    job_id,
                    reason=f"CannotPullContainerError: Error response from daemon: {msg}",
                )
            return 404, {"message": f"No such image: {image}"}
        # moto points MOTO_HOST at Docker's host alias; local processes reach moto directly.
        for k, v in list(env.items()):
            if "host.docker.internal" in v:
                env[k] = v.replace("http://host.docker.internal", "http://127.0.0.1").replace(
                    "host.docker.internal", "127.0.0.1"
                )
        cid = uuid.uuid4().hex + uuid.uuid4().hex
        c = _Container(
            id=cid,
            name=name or cid[:12],
            image=image,
            entrypoint=list(body.get("Entrypoint") or []),
            cmd=list(body.get("Cmd") or []),
            env=env,
            working_dir=body.get("WorkingDir") or None,
            created=time.time(),
            memory=int((body.get("HostConfig") or {}).get("Memory") or 0),
        )
        with self._lock:
            self._containers[cid] = c
        return 201, {"Id": cid, "Warnings": []}

    def pull(self, image: str) -> tuple[int, dict[str, Any]]:
        bare = image.removesuffix(":latest")
        if image in self.runner.missing_images or bare in self.runner.missing_images:
            msg = f"pull access denied for {bare}, repository does not exist or may require 'docker login'"
            return 404, {"message": msg}
        return 200, {"status": f"Downloaded newer image for {image}"}

    def start_container(self, cid: str) -> tuple[int, dict[str, Any] | None]:
        c = self._get(cid)
        if c is None:
            return 404, {"message": f"No such container: {cid}"}
        if c.run_id is not None:
            return 304, None
        spec = ContainerSpec(
            image=c.image,
            command=c.entrypoint,
            args=c.cmd,
            env=c.env,
            working_dir=c.working_dir,
            name=c.name,
        )
        run_id = self.runner.start(spec, run_id=f"docker-{cid[:12]}")
        c.run_id = run_id
        job_id = c.env.get("AWS_BATCH_JOB_ID")
        if job_id:
            self._set_job_info(job_id, run_id=run_id)
        st = self.runner.state(run_id)
        if st.status == "failed_to_start":
            c.start_error = st.reason
            msg = f"failed to create task for container: OCI runtime create failed: {st.reason}"
            if job_id:
                self._set_job_info(
                    job_id,
                    reason=f"CannotStartContainerError: Error response from daemon: {msg}",
                )
            return 400, {"message": msg}
        return 204, None

    def inspect(self, cid: str) -> tuple[int, dict[str, Any]]:
        c = self._get(cid)
        if c is None:
            return 404, {"message": f"No such container: {cid}"}
        state: dict[str, Any] = {
            "Status": "created",
            "Running": False,
            "Paused": False,
            "Restarting": False,
            "OOMKilled": False,
            "Dead": False,
            "Pid": 0,
            "ExitCode": 0,
            "Error": "",
            "StartedAt": "0001-01-01T00:00:00Z",
            "FinishedAt": "0001-01-01T00:00:00Z",
        }
        if c.run_id is not None:
            st = self.runner.state(c.run_id)
            if st.status == "failed_to_start":
                state.update(ExitCode=127, Error=c.start_error)
            else:
                state["Pid"] = st.pid or 0
                if st.started_at:
                    state["StartedAt"] = _rfc3339(st.started_at)
                if st.status == "running":
                    state.update(Status="running", Running=True)
                    self._enforce_memory_limit(c, st.pid)
                elif st.status == "exited":
                    state.update(Status="exited", ExitCode=st.exit_code or 0, Pid=0, OOMKilled=c.oom_killed)
                    if st.finished_at:
                        state["FinishedAt"] = _rfc3339(st.finished_at)
        return 200, {
            "Id": c.id,
            "Name": "/" + c.name,
            "Created": _rfc3339(c.created),
            "Image": c.image,
            "State": state,
            "Config": {
                "Tty": True,
                "Image": c.image,
                "Entrypoint": c.entrypoint or None,
                "Cmd": c.cmd,
                "Env": [f"{k}={v}" for k, v in c.env.items()],
                "WorkingDir": c.working_dir or "",
                "Labels": {},
            },
            "HostConfig": {"LogConfig": {"Type": "json-file", "Config": {}}},
            "NetworkSettings": {
                "IPAddress": "127.0.0.1",
                "Networks": {"bridge": {"IPAddress": "127.0.0.1"}},
            },
        }

    def _enforce_memory_limit(self, c: _Container, pid: int | None) -> None:
        """The kernel's OOM killer in the container's cgroup: SIGKILL when its processes use more
        resident memory than ``HostConfig.Memory``. Checked whenever the container is inspected
        (moto does every 0.5 s while it runs; real: at once, on allocation)."""
        if not c.memory or not pid or c.oom_killed or c.run_id is None or tree_rss(pid) <= c.memory:
            return
        c.oom_killed = True
        job_id = c.env.get("AWS_BATCH_JOB_ID")
        if job_id:  # AWS Batch's words for it, as the job's statusReason and its container's reason
            self._set_job_info(job_id, reason=OUT_OF_MEMORY, container_reason=OUT_OF_MEMORY)
        self.runner.kill(c.run_id, signal.SIGKILL)

    def logs(self, cid: str, query: dict[str, str]) -> tuple[int, bytes]:
        c = self._get(cid)
        if c is None:
            return 404, json.dumps({"message": f"No such container: {cid}"}).encode()
        # With a TTY, Docker has a single stream, served as stdout.
        if c.run_id is None or query.get("stdout", "0") in ("0", "false", "False"):
            return 200, b""
        text = self.runner.logs(c.run_id)
        if query.get("timestamps", "0") in ("1", "true", "True"):
            st = self.runner.state(c.run_id)
            stamp = _rfc3339(st.started_at or c.created)
            text = "".join(f"{stamp} {line}\n" for line in text.splitlines())
        return 200, text.encode()

    def wait(self, cid: str) -> tuple[int, dict[str, Any]]:
        c = self._get(cid)
        if c is None:
            return 404, {"message": f"No such container: {cid}"}
        code = 127 if c.start_error else 0
        if c.run_id is not None and not c.start_error:
            while self._server is not None:
                rc = self.runner.wait(c.run_id, timeout=1.0)
                if self.runner.state(c.run_id).done:
                    code = rc if rc is not None else 0
                    break
        job_id = c.env.get("AWS_BATCH_JOB_ID")
        if job_id and not c.start_error:
            self._set_job_info(job_id, exit_code=code, reason="Essential container in task exited")
        return 200, {"StatusCode": code, "Error": None}

    def kill(self, cid: str, sig: str) -> tuple[int, dict[str, Any] | None]:
        c = self._get(cid)
        if c is None:
            return 404, {"message": f"No such container: {cid}"}
        if c.run_id is not None:
            self.runner.kill(c.run_id, _signum(sig))
        # Docker answers 409 for a container that is not running; moto only kills
        # running ones, and a race with the exit should not fail the job: answer 204.
        return 204, None

    def remove(self, cid: str) -> tuple[int, dict[str, Any] | None]:
        c = self._get(cid)
        if c is None:
            return 404, {"message": f"No such container: {cid}"}
        if c.run_id is not None:
            # Docker refuses to remove a running container without force=1; moto kills
            # then removes at once, racing the exit: kill and wait instead.
            self.runner.kill(c.run_id)
            self.runner.wait(c.run_id, timeout=10)
        with self._lock:
            self._containers.pop(cid, None)
        return 204, None

    def job_info(self, job_id: str) -> dict[str, Any]:
        with self._lock:
            return dict(self._job_info.get(job_id, {}))

    # ---- internals

    def _get(self, cid: str) -> _Container | None:
        with self._lock:
            if cid in self._containers:
                return self._containers[cid]
            for c in self._containers.values():  # by name or id prefix, as Docker allows
                if c.name == cid or (len(cid) >= 12 and c.id.startswith(cid)):
                    return c
        return None

    def _set_job_info(self, job_id: str, **info: Any) -> None:
        with self._lock:
            current = self._job_info.setdefault(job_id, {})
            if "reason" in info and "reason" in current:
                info.pop("reason")  # the first reason (e.g. the pull error) wins
            current.update(info)


def _signum(sig: str) -> int:
    if not sig:
        return int(signal.SIGKILL)
    if sig.isdigit():
        return int(sig)
    name = sig.upper()
    if not name.startswith("SIG"):
        name = "SIG" + name
    return int(getattr(signal, name, signal.SIGKILL))


class _DockerHandler(_Handler):
    engine: FakeDockerEngine

    def _route(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        path = re.sub(r"^/v\d+\.\d+", "", parsed.path)
        query = {k: v[-1] for k, v in urllib.parse.parse_qs(parsed.query).items()}
        body = self._body()
        e = self.engine
        m = re.fullmatch(r"/containers/([^/]+)(?:/(\w+))?", path)
        method = self.command
        if method in ("GET", "HEAD") and path == "/_ping":
            self._send(
                200,
                b"OK",
                {"Content-Type": "text/plain", "Api-Version": DOCKER_API_VERSION},
            )
        elif method == "GET" and path == "/version":
            self._json(200, _version())
        elif method == "POST" and path == "/containers/create":
            self._json(*e.create(query.get("name", ""), json.loads(body or b"{}")))
        elif method == "POST" and path == "/images/create":
            image = query.get("fromImage", "")
            if query.get("tag"):
                image = f"{image}:{query['tag']}"
            self._json(*e.pull(image))
        elif m and method == "POST" and m.group(2) == "start":
            self._reply(*e.start_container(m.group(1)))
        elif m and method == "GET" and m.group(2) == "json":
            self._json(*e.inspect(m.group(1)))
        elif m and method == "GET" and m.group(2) == "logs":
            status, data = e.logs(m.group(1), query)
            self._send(status, data, {"Content-Type": "application/vnd.docker.raw-stream"})
        elif m and method == "POST" and m.group(2) == "wait":
            self._json(*e.wait(m.group(1)))
        elif m and method == "POST" and m.group(2) == "kill":
            self._reply(*e.kill(m.group(1), query.get("signal", "")))
        elif m and method == "DELETE" and m.group(2) is None:
            self._reply(*e.remove(m.group(1)))
        elif method == "GET" and path == "/pycrew/placement":
            self._json(200, {"placeable": not e.faults.stuck and not e.blocked_reason, "reason": e.blocked_reason})
        elif method == "GET" and path.startswith("/pycrew/jobs/"):
            key = urllib.parse.unquote(path[len("/pycrew/jobs/") :])
            self._json(200, e.job_info(key))
        else:
            with e._lock:
                e.unhandled.append(f"{method} {self.path}")
            _log.warning("fake docker: unhandled %s %s", method, self.path)
            self._json(404, {"message": "page not found"})

    def _reply(self, status: int, obj: dict[str, Any] | None) -> None:
        if obj is None:
            self._send(status)
        else:
            self._json(status, obj)

    do_GET = do_POST = do_DELETE = do_HEAD = do_PUT = _route


def _version() -> dict[str, Any]:
    return {
        "Platform": {"Name": "pycrew fake Docker Engine"},
        "Version": "26.1.0",
        "ApiVersion": DOCKER_API_VERSION,
        "MinAPIVersion": "1.24",
        "GitCommit": "pycrew",
        "GoVersion": "go1.22",
        "Os": "linux",
        "Arch": "amd64",
        "KernelVersion": os.uname().release,
        "BuildTime": "2024-01-01T00:00:00.000000000+00:00",
    }


# --------------------------------------------------------------------------- fault proxy


def _batch_operations() -> dict[str, str]:
    """Map Batch REST paths (``/v1/submitjob``) to operation names (``SubmitJob``)."""
    import botocore.session  # type: ignore[import-untyped]

    model = botocore.session.get_session().get_service_model("batch")
    return {model.operation_model(n).http["requestUri"].lower(): n for n in model.operation_names}


@dataclass
class FaultProxy:
    """HTTP proxy in front of moto that injects :class:`Faults` into API calls.

    Errors are answered in the AWS JSON error form (``x-amzn-ErrorType`` header and a
    ``{"__type", "message"}`` body), which boto3 parses for Batch (rest-json) and
    CloudWatch Logs (json) alike. ``/moto-api/`` calls are never faulted.
    """

    upstream_port: int
    faults: Faults
    _ops: dict[str, str] = field(default_factory=_batch_operations)
    _server: _Server | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.server_address[1])

    def operation(self, path: str, target: str | None) -> str:
        """The AWS operation name of a request (``SubmitJob``, ``GetLogEvents``...)."""
        if target:
            return target.rsplit(".", 1)[-1]
        p = urllib.parse.urlsplit(path).path.lower().rstrip("/")
        return self._ops.get(p, p)

    def start(self) -> FaultProxy:
        proxy = self

        class Handler(_ProxyHandler):
            pass

        Handler.proxy = proxy
        self._server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="batch-fault-proxy", daemon=True).start()
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _ProxyHandler(_Handler):
    proxy: FaultProxy

    def _forward(self) -> None:
        p = self.proxy
        body = self._body()
        if not self.path.startswith("/moto-api"):
            op = p.operation(self.path, self.headers.get("X-Amz-Target"))
            fault = p.faults.take_api_fault(op)
            p.faults.sleep()
            if fault is not None:
                self._fault(fault)
                return
        headers = {
            k: v
            for k, v in self.headers.items()
            if k.lower() not in ("connection", "content-length", "transfer-encoding", "keep-alive")
        }
        headers["Content-Length"] = str(len(body))
        conn = http.client.HTTPConnection("127.0.0.1", p.upstream_port, timeout=120)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            out = {
                k: v
                for k, v in resp.getheaders()
                if k.lower()
                not in (
                    "connection",
                    "content-length",
                    "transfer-encoding",
                    "keep-alive",
                    "server",
                    "date",
                )
            }
            self._send(resp.status, data, out)
        except OSError as exc:
            self._fault(Fault(502, "BadGateway", f"moto server unreachable: {exc}"))
        finally:
            conn.close()

    def _fault(self, fault: Fault) -> None:
        body = json.dumps({"__type": fault.code, "message": fault.message}).encode()
        self._send(
            fault.status,
            body,
            {
                "Content-Type": "application/x-amz-json-1.1",
                "x-amzn-ErrorType": fault.code,
                "x-amzn-RequestId": str(uuid.uuid4()),
            },
        )

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _forward


# --------------------------------------------------------------------------- emulator


@dataclass
class AwsBatchEmulator:
    """A running AWS Batch emulator: moto server + fake Docker API + fault proxy.

    Use :meth:`start` (or the ``awsbatch_emulator`` fixture); :meth:`close` stops
    everything and kills every job process.

    Attributes:
        endpoint_url: URL for boto3 clients (the fault proxy); serves Batch, CloudWatch
            Logs, IAM and every other service moto has.
        moto_url: moto's own URL (no faults).
        region: AWS region used.
        job_queue: name of the ready-to-use job queue; ``job_queue_arn`` its ARN.
        job_definition: name of a container job definition (image ``python:3.11``,
            command ``python -c pass``); ``job_definition_arn`` its ARN.
        compute_environment: name of the queue's (UNMANAGED) compute environment.
        runner: the :class:`JobRunner` running the containers.
        faults: the :class:`Faults` knobs (API faults via the proxy; ``stuck`` keeps new
            jobs in RUNNABLE; ``runner.missing_images`` makes image pulls fail).
        docker: the :class:`FakeDockerEngine`.
    """

    region: str = "us-east-1"
    runner: JobRunner = field(default_factory=JobRunner)
    faults: Faults = field(default_factory=Faults)
    endpoint_url: str = ""
    moto_url: str = ""
    job_queue: str = ""
    job_queue_arn: str = ""
    job_definition: str = ""
    job_definition_arn: str = ""
    compute_environment: str = ""
    compute_environment_arn: str = ""
    service_role_arn: str = ""
    docker: FakeDockerEngine | None = None
    proxy: FaultProxy | None = None
    log_path: Path | None = None
    _proc: subprocess.Popen[bytes] | None = None
    _own_log_dir: Path | None = None
    _counter: int = 0
    _moto_clients: dict[str, Any] = field(default_factory=dict)

    access_key: str = "testing"
    secret_key: str = "testing"

    # ---- lifecycle

    @classmethod
    def start(
        cls,
        region: str = "us-east-1",
        runner: JobRunner | None = None,
        log_dir: str | Path | None = None,
        startup_timeout: float = 60.0,
    ) -> AwsBatchEmulator:
        """Start moto, the fake Docker API and the proxy; create CE, queue and job def.

        ``log_dir`` receives the moto server's output (``moto.log``); default: a temp dir.
        On any failure everything started so far is stopped again.
        """
        emu = cls(region=region, runner=runner or JobRunner())
        try:
            emu._start(log_dir, startup_timeout)
        except BaseException:
            emu.close()
            raise
        return emu

    def _start(self, log_dir: str | Path | None, startup_timeout: float) -> None:
        self.docker = FakeDockerEngine(self.runner, self.faults).start()
        if log_dir is None:
            log_dir = self._own_log_dir = Path(tempfile.mkdtemp(prefix="pycrew-moto-"))
        log_dir = Path(log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / "moto.log"
        last_error = ""
        for _attempt in range(3):  # the free port may be taken between probe and bind
            port = _free_port()
            env = dict(os.environ)
            env.update(
                DOCKER_HOST=self.docker.docker_host,
                MOTO_PORT=str(port),
                PYTHONUNBUFFERED="1",
            )
            for k in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH", "DOCKER_CONTEXT"):
                env.pop(k, None)
            with open(self.log_path, "ab") as log:
                self._proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "pycrew_emulators.awsbatch",
                        "serve-moto",
                        "-H",
                        "127.0.0.1",
                        "-p",
                        str(port),
                    ],
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                    start_new_session=True,
                )
            self.moto_url = f"http://127.0.0.1:{port}"
            if self._wait_ready(startup_timeout):
                break
            last_error = self.log_path.read_text(errors="replace")[-2000:]
            self._stop_moto()
        else:
            raise RuntimeError(f"moto server did not start:\n{last_error}")
        self.docker.moto_url = self.moto_url
        self.proxy = FaultProxy(port, self.faults).start()
        self.endpoint_url = f"http://127.0.0.1:{self.proxy.port}"
        self.set_transition("manual", times=1)
        self._setup_resources()

    def _wait_ready(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"{self.moto_url}/moto-api/data.json", timeout=2):
                    return True
            except OSError:
                time.sleep(0.1)
        return False

    def _setup_resources(self) -> None:
        iam = self.boto3_client("iam")
        role = iam.create_role(
            RoleName="pycrew-batch-service-role",
            AssumeRolePolicyDocument=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "batch.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
        )
        self.service_role_arn = role["Role"]["Arn"]
        (
            self.compute_environment,
            self.compute_environment_arn,
            self.job_queue,
            self.job_queue_arn,
        ) = self.new_queue()
        jd = self.boto3_client("batch").register_job_definition(
            jobDefinitionName="pycrew-worker",
            type="container",
            containerProperties={
                "image": "python:3.11",
                "command": ["python", "-c", "pass"],
                "resourceRequirements": [
                    {"type": "VCPU", "value": "1"},
                    {"type": "MEMORY", "value": "512"},
                ],
            },
        )
        self.job_definition = jd["jobDefinitionName"]
        self.job_definition_arn = jd["jobDefinitionArn"]

    def new_queue(self, name: str | None = None) -> tuple[str, str, str, str]:
        """Create a fresh UNMANAGED compute environment and a job queue on it.

        Returns ``(ce_name, ce_arn, queue_name, queue_arn)``.
        """
        self._counter += 1
        name = name or f"pycrew-{self._counter}-{uuid.uuid4().hex[:6]}"
        batch = self.boto3_client("batch")
        ce = batch.create_compute_environment(
            computeEnvironmentName=f"{name}-ce",
            type="UNMANAGED",
            state="ENABLED",
            serviceRole=self.service_role_arn,
        )
        q = batch.create_job_queue(
            jobQueueName=f"{name}-queue",
            state="ENABLED",
            priority=1,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce["computeEnvironmentArn"]}],
        )
        return (
            ce["computeEnvironmentName"],
            ce["computeEnvironmentArn"],
            q["jobQueueName"],
            q["jobQueueArn"],
        )

    def close(self) -> None:
        """Stop moto, the proxy and the fake Docker API; kill every job process. Idempotent."""
        self._stop_moto()
        if self.proxy is not None:
            self.proxy.close()
        self.runner.close()
        if self.docker is not None:
            self.docker.close()
        if self._own_log_dir is not None:
            shutil.rmtree(self._own_log_dir, ignore_errors=True)
            self._own_log_dir = None

    def _stop_moto(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)

    def __repr__(self) -> str:
        return (
            f"AwsBatchEmulator(endpoint_url={self.endpoint_url!r}, region={self.region!r}, "
            f"job_queue={self.job_queue!r}, job_definition={self.job_definition!r})"
        )

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- clients and helpers

    @property
    def env(self) -> dict[str, str]:
        """Environment variables that point boto3 (>= 1.28) at the emulator."""
        return {
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_REGION": self.region,
            "AWS_ENDPOINT_URL": self.endpoint_url,
        }

    def boto3_client(self, service: str, **kwargs: Any) -> Any:
        """A boto3 client for ``service`` talking to the emulator with dummy credentials.

        ``kwargs`` go to ``Session.client`` (e.g. ``config=botocore.config.Config(...)``).
        """
        import boto3  # type: ignore[import-untyped]

        session = boto3.session.Session(
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            region_name=self.region,
        )
        kwargs.setdefault("endpoint_url", self.endpoint_url)
        return session.client(service, **kwargs)

    def set_transition(self, progression: str = "manual", times: int = 1, seconds: float = 1.0) -> None:
        """Configure moto's state manager for ``batch::job``.

        ``manual``/``times=1`` (the default set at start): every status in order, as fast
        as moto's job thread goes. ``time``/``seconds``: each status lasts at least
        ``seconds`` (moto's job thread polls every 0.5 s). ``immediate``: a describe
        right after submit may already say RUNNING.
        """
        transition: dict[str, Any] = {"progression": progression}
        if progression == "manual":
            transition["times"] = times
        elif progression == "time":
            transition["seconds"] = seconds
        data = json.dumps({"model_name": "batch::job", "transition": transition}).encode()
        req = urllib.request.Request(
            f"{self.moto_url}/moto-api/state-manager/set-transition",
            data=data,
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=10):
            pass

    def wait_for_status(
        self,
        job_id: str,
        statuses: str | tuple[str, ...] = _FINAL,
        timeout: float = 30.0,
        poll: float = 0.1,
    ) -> dict[str, Any]:
        """Poll ``describe_jobs`` (without faults) until the job has one of ``statuses``.

        Returns the job description; raises ``TimeoutError`` with the last status.
        """
        wanted = (statuses,) if isinstance(statuses, str) else tuple(statuses)
        client = self._moto_client("batch")
        deadline = time.monotonic() + timeout
        job: dict[str, Any] = {}
        while True:
            jobs = client.describe_jobs(jobs=[job_id])["jobs"]
            job = jobs[0] if jobs else {}
            if job.get("status") in wanted:
                return job
            if time.monotonic() > deadline:
                raise TimeoutError(f"job {job_id} is {job.get('status')!r}, not in {wanted} after {timeout}s")
            time.sleep(poll)

    def status_history(self, job_id: str, until: tuple[str, ...] = _FINAL, timeout: float = 30.0) -> list[str]:
        """Poll quickly and return the distinct statuses seen, in order, until one in ``until``."""
        client = self._moto_client("batch")
        seen: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            jobs = client.describe_jobs(jobs=[job_id])["jobs"]
            status = jobs[0]["status"] if jobs else None
            if status and (not seen or seen[-1] != status):
                seen.append(status)
            if status in until:
                return seen
            time.sleep(0.02)
        raise TimeoutError(f"job {job_id}: statuses seen {seen}")

    def pid_of(self, job_id: str) -> int | None:
        """PID of the process running a job's container (None if it never started)."""
        assert self.docker is not None
        run_id = self.docker.run_id_for_job(job_id)
        return self.runner.state(run_id).pid if run_id else None

    def terminate_active_jobs(self, queue: str | None = None, timeout: float = 15.0) -> None:
        """Terminate every unfinished job of ``queue`` (default: all queues) and wait for them."""
        client = self._moto_client("batch")
        queues = [queue] if queue else [q["jobQueueName"] for q in client.describe_job_queues().get("jobQueues", [])]
        active: list[str] = []
        for q in queues:
            for status in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING"):
                for j in client.list_jobs(jobQueue=q, jobStatus=status).get("jobSummaryList", []):
                    active.append(j["jobId"])
        for job_id in active:
            client.terminate_job(jobId=job_id, reason="pycrew emulator teardown")
        for job_id in active:
            with contextlib.suppress(TimeoutError):
                self.wait_for_status(job_id, _FINAL, timeout=timeout)

    def _moto_client(self, service: str) -> Any:
        # Kept per service: building a boto3 client takes 50-300 ms, which delayed the first
        # describe of status_history past short-lived statuses (boto3 clients are thread-safe).
        client = self._moto_clients.get(service)
        if client is None:
            client = self._moto_clients[service] = self.boto3_client(service, endpoint_url=self.moto_url)
        return client


# --------------------------------------------------------------------------- moto patches


def _patch_moto() -> None:
    """Patch moto's Batch backend in the moto server process (see module docstring).

    Written against moto 5.x (checked with 5.2.5); each patch asserts that what it wraps
    exists, so a moto change fails loudly at server start instead of silently.
    """
    from moto import settings
    from moto.batch import models as bm
    from moto.moto_api._internal.managed_state_model import ManagedState

    Job: Any = bm.Job
    # moto thinks it runs inside Docker here and would shell out to curl to find its
    # host address (for the containers' MOTO_HOST): the "containers" are local processes.
    assert hasattr(settings, "moto_server_host")
    settings.moto_server_host = lambda: "http://127.0.0.1"  # type: ignore[assignment]
    for attr in ("_mark_stopped", "describe", "terminate", "_get_container_property"):
        assert hasattr(Job, attr), f"moto Batch Job has no {attr}: unsupported moto version"
    before_start = ("SUBMITTED", "PENDING", "RUNNABLE")
    order = {s: i for i, s in enumerate(("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING"))}
    docker_url = "http://" + os.environ["DOCKER_HOST"].split("://", 1)[1]

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 only

    def ask(path: str) -> dict[str, Any] | None:
        for attempt in range(3):
            try:
                with opener.open(docker_url + path, timeout=5) as r:
                    return dict(json.loads(r.read()))
            except (OSError, ValueError) as exc:
                print(f"pycrew: fake docker {path} failed ({attempt}): {exc!r}", file=sys.stderr)
                time.sleep(0.1)
        return None

    def placeable(job: Any) -> bool:
        envs = getattr(job.job_queue, "environments", [])
        if not any(getattr(ce, "state", "ENABLED") == "ENABLED" for ce in envs):
            return False
        # Fail closed: if the fake Docker API cannot be asked, the job waits in RUNNABLE.
        answer = ask("/pycrew/placement") or {}
        blocked = str(answer.get("reason") or "")
        if blocked and not getattr(job, "stop", False):  # AWS's word on a blocked queue, while it lasts
            job.job_stopped_reason = job.__dict__["_pycrew_blocked"] = blocked
        elif job.__dict__.pop("_pycrew_blocked", None) == job.job_stopped_reason:
            job.job_stopped_reason = None
        return bool(answer.get("placeable", False))

    class _Abort(Exception):
        pass

    status_property: Any = ManagedState.status
    base_get = status_property.fget
    base_set = status_property.fset
    assert base_get is not None and base_set is not None

    def lock_of(job: Any) -> threading.RLock:
        # One lock per job: moto's status getter writes ``_status`` before the gate below
        # decides, and both the job thread and API threads read the status.
        lock: threading.RLock = job.__dict__.setdefault("_pycrew_status_lock", threading.RLock())
        return lock

    def get_status(self: Any) -> str | None:
        with lock_of(self):
            return _get_status(self)

    def _get_status(self: Any) -> str | None:
        children = getattr(self, "_child_jobs", None)
        if children:
            done = [c.job_stopped for c in children]
            if all(done):
                ok = all(c.status == "SUCCEEDED" for c in children)
                if not self.job_stopped:
                    self.job_stopped = True
                    self.job_stopped_at = max(c.job_stopped_at for c in children)
                self._status = "SUCCEEDED" if ok else "FAILED"
                return "SUCCEEDED" if ok else "FAILED"
        current = self._status
        if (
            current in before_start
            and getattr(self, "stop", False)
            and threading.get_ident() == getattr(self, "ident", None)
        ):
            # Terminated/cancelled before starting: end FAILED, never start a container.
            self._mark_stopped(success=False)
            raise _Abort(f"job {self.job_id} stopped before starting")
        tick, progressed = self._tick, self._time_progressed
        new = base_get(self)
        if (
            current in order
            and new in order
            and order[current] <= order["RUNNABLE"] < order[new]
            and not placeable(self)
        ):
            # Hold in RUNNABLE, and give back the progression moto just consumed
            # (manual tick / timer) so the job moves on as soon as it is placeable.
            self._status = "RUNNABLE"
            self._tick, self._time_progressed = tick, progressed
            return "RUNNABLE"
        # moto mixes plain strings and JobStatus (a str Enum) members: return the plain value.
        value: str | None = getattr(new, "value", new)
        return value

    def set_status(self: Any, value: str) -> None:
        with lock_of(self):
            base_set(self, value)

    Job.status = property(get_status, set_status)

    orig_mark_stopped = Job._mark_stopped

    def mark_stopped(self: Any, success: bool = True) -> None:
        if not self.job_stopped and self.job_stopped_reason is None:
            info = ask(f"/pycrew/jobs/{urllib.parse.quote(self.job_id, safe='')}") or {}
            reason = info.get("reason")
            if reason:
                self.job_stopped_reason = reason
            if info.get("container_reason"):
                self.__dict__["_pycrew_container_reason"] = str(info["container_reason"])
        orig_mark_stopped(self, success)

    Job._mark_stopped = mark_stopped

    orig_describe = Job.describe

    def describe(self: Any) -> dict[str, Any]:
        result: dict[str, Any] = orig_describe(self)
        if self.job_stopped and self.exit_code is not None and isinstance(result.get("container"), dict):
            result["container"].setdefault("exitCode", self.exit_code)
        container_reason = self.__dict__.get("_pycrew_container_reason")
        if container_reason and isinstance(result.get("container"), dict):
            result["container"]["reason"] = container_reason
            for attempt in result.get("attempts") or []:
                attempt.setdefault("container", {})["reason"] = container_reason
        return result

    Job.describe = describe

    orig_terminate = Job.terminate

    def terminate(self: Any, reason: str) -> None:
        orig_terminate(self, reason)
        for child in self._child_jobs or []:
            child.terminate(reason)

    Job.terminate = terminate

    orig_prop = Job._get_container_property

    def get_container_property(self: Any, p: str, default: Any) -> Any:
        value = orig_prop(self, p, default)
        if p != "environment":
            return value
        env: list[dict[str, str]] = []
        names: set[str] = set()
        for item in value:  # moto appends AWS_BATCH_JOB_ID on every call: dedupe
            # Array children share one override list in moto, so an AWS_BATCH_JOB_ID in it
            # may be a sibling's: each job gets its own id below.
            if item["name"] not in names and item["name"] != "AWS_BATCH_JOB_ID":
                names.add(item["name"])
                env.append(item)
        extra = {
            "AWS_BATCH_JOB_ID": self.job_id,
            "AWS_BATCH_JOB_ATTEMPT": "1",
            "AWS_BATCH_JQ_NAME": self.job_queue.name,
        }
        envs = getattr(self.job_queue, "environments", [])
        if envs:
            extra["AWS_BATCH_CE_NAME"] = envs[0].name
        index = (self.array_properties or {}).get("index")
        if index is not None:
            extra["AWS_BATCH_JOB_ARRAY_INDEX"] = str(index)
        env.extend({"name": k, "value": v} for k, v in extra.items() if k not in names)
        return env

    Job._get_container_property = get_container_property

    from docker.models.containers import ContainerCollection  # type: ignore[import-untyped]

    orig_run = ContainerCollection.run
    assert callable(orig_run)

    def memory_mib(job: Any) -> int | None:
        """The job's MEMORY requirement: its container overrides', else its job definition's."""
        for req in (job.container_overrides or {}).get("resourceRequirements") or []:
            if str(req.get("type", "")).upper() == "MEMORY":
                return int(float(req["value"]))
        value = (job.container_overrides or {}).get("memory") or job.job_definition._get_resource_requirement("memory")
        return int(float(value)) if value else None

    def run_container(self: Any, image: str, command: Any = None, **kwargs: Any) -> Any:
        job = threading.current_thread()  # moto starts a job's containers in its own thread (Job.run)
        if isinstance(job, Job) and job.job_definition.container_properties and "mem_limit" not in kwargs:
            mib = memory_mib(job)
            if mib:
                kwargs["mem_limit"] = f"{mib}m"
        return orig_run(self, image, command, **kwargs)

    ContainerCollection.run = run_container

    # Our _Abort is caught by Job.run's generic handler, which logs it as an error.
    bm.logger.addFilter(lambda record: "stopped before starting" not in record.getMessage())


def _serve_moto(argv: list[str]) -> None:
    """Entry point of the moto subprocess: patch moto, then run ``moto_server``."""
    _patch_moto()
    from moto.server import main

    main(argv)


def _main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "serve-moto":
        raise SystemExit("usage: python -m pycrew_emulators.awsbatch serve-moto [moto_server args]")
    _serve_moto(argv[1:])


if __name__ == "__main__":
    _main()
