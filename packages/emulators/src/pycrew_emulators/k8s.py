"""A Kubernetes API emulator whose pods really run, as local processes.

Serves the part of the Kubernetes REST API that a job launcher and monitor use, over
plain HTTP on 127.0.0.1, so that the official ``kubernetes`` Python client can drive it:

* ``GET /version``
* batch/v1 Jobs: create (incl. ``generateName`` and ``dryRun``), get (also ``/status``),
  list and watch (namespaced and for all namespaces; label and field selectors,
  ``limit``/``continue``), delete (``propagationPolicy`` Orphan/Background/Foreground,
  ``gracePeriodSeconds``), deletecollection.
* core/v1 Pods: get, list/watch, delete, deletecollection, ``log`` (``tailLines``,
  ``limitBytes``, ``follow``, ``previous``). Pods are created by Jobs only.
* core/v1 Secrets: create, get, list/watch, delete, deletecollection.
* core/v1 Events: get, list/watch (field selectors on ``involvedObject.*``, ``reason``,
  ``type``); only the job controller's ``FailedCreate`` events are recorded.

Every manifest received is validated with ``kubernetes-validate`` (strict: unknown
fields are errors) plus the few semantic checks of the real API server that a launcher
can trip over (names, restartPolicy, images, selectors); failures are answered with a
422 ``Status`` of reason ``Invalid``.

A controller thread plays the job controller, scheduler, kubelet and garbage collector:
Jobs create pods (``backoffLimit``, ``completions``/``parallelism``, Indexed mode with
``JOB_COMPLETION_INDEX``, ``activeDeadlineSeconds``, ``ttlSecondsAfterFinished``,
``suspend`` at creation); pods run ``containers[0]`` through a
:class:`~pycrew_emulators.runner.JobRunner` with ``env``/``envFrom`` resolved (Secrets,
``fieldRef``) and ``$(VAR)`` references expanded; dependents whose owners are gone are
garbage-collected (pods and secrets with ``ownerReferences``).

Fault knobs (see :class:`K8sEmulator`): queued API errors / throttling and response
delay through :class:`~pycrew_emulators.faults.Faults` (answered as Kubernetes
``Status`` objects); image pull errors through ``runner.missing_images``; unschedulable
pods (``unschedulable`` knob, or a ``nodeSelector`` that the single emulated node does
not match, or requests above the node's ``node_capacity``); ``stuck`` pods that never leave ``ContainerCreating``; ``pod_quota``: a
ResourceQuota refuses the Jobs' pods (the job controller records ``FailedCreate`` events
on the Job, as the real one does, and creates no pod).

Resources (:mod:`pycrew_emulators.k8s_resources`): malformed quantities (400), requests
above limits (422), requests defaulted from limits, the scheduler's ``Insufficient cpu``,
and ``OOMKilled`` (exit code 137) for a container above its memory limit. Namespaces: a
create outside :attr:`K8sEmulator.namespaces` is 404 ``namespaces "x" not found``.

Not emulated: authentication (any token is accepted), namespaces as API objects (the
``namespaces`` knob says which exist), PATCH/PUT, other resource kinds, pods created directly, init and
sidecar containers (only ``containers[0]`` runs), volumes, CPU limits, probes,
``podFailurePolicy``, ``successPolicy``, ``backoffLimitPerIndex``, exponential
back-off of pod re-creation, managedFields. Comments marked "Guess:" describe behaviour
chosen without being checked against a real cluster.
"""

from __future__ import annotations

import base64
import binascii
import copy
import importlib
import json
import logging
import random
import re
import signal
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import parse_qs, urlsplit

from pycrew_emulators import k8s_resources
from pycrew_emulators.faults import Faults
from pycrew_emulators.runner import ContainerSpec, JobRunner, RunState

if TYPE_CHECKING:
    import kubernetes.client

__all__ = ["ApiError", "K8sEmulator", "LabelSelector"]

_log = logging.getLogger(__name__)

Obj = dict[str, Any]

#: Name of the single emulated node.
NODE_NAME = "pycrew-emulator-node"
#: Pod and host IP reported in pod status. Guess/deviation: real pods get their own
#: cluster IPs; every emulated pod runs on this machine, so loopback is what works.
POD_IP = "127.0.0.1"
_NAME_CHARS = "bcdfghjklmnpqrstvwxz2456789"  # the API server's generateName alphabet
_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_VAR_REF = re.compile(r"\$\$|\$\(([^)]*)\)")
_JOB_INDEX_KEY = "batch.kubernetes.io/job-completion-index"


@dataclass(frozen=True)
class _Kind:
    """One served resource type."""

    resource: str  # plural, as in URLs
    singular: str
    group: str  # "" for core
    kind: str
    api_version: str

    @property
    def qualified(self) -> str:
        """``jobs.batch`` / ``pods``, as in the API server's messages."""
        return f"{self.resource}.{self.group}" if self.group else self.resource

    @property
    def kind_group(self) -> str:
        """``Job.batch`` / ``Pod``, as in "is invalid" messages."""
        return f"{self.kind}.{self.group}" if self.group else self.kind


KINDS = {
    "jobs": _Kind("jobs", "job", "batch", "Job", "batch/v1"),
    "pods": _Kind("pods", "pod", "", "Pod", "v1"),
    "secrets": _Kind("secrets", "secret", "", "Secret", "v1"),
    "events": _Kind("events", "event", "", "Event", "v1"),
}

_ROUTES = [
    re.compile(r"^/apis/batch/v1(?:/namespaces/(?P<ns>[^/]+))?/(?P<res>jobs)(?:/(?P<name>[^/]+)(?:/(?P<sub>status))?)?/?$"),
    re.compile(
        r"^/api/v1(?:/namespaces/(?P<ns>[^/]+))?/(?P<res>pods|secrets|events)(?:/(?P<name>[^/]+)(?:/(?P<sub>log|status))?)?/?$"
    ),
]

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "AlreadyExists",
    410: "Expired",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def _ts(t: float | None = None) -> str:
    """RFC 3339 timestamp with second precision, as metav1.Time serialises."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() if t is None else t))


def _parse_ts(s: str) -> float:
    return time.mktime(time.strptime(s, "%Y-%m-%dT%H:%M:%SZ")) - time.timezone


class ApiError(Exception):
    """An error answered as a Kubernetes ``Status`` object."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str | None = None,
        details: Obj | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = reason or _REASONS.get(code, "Unknown")
        self.details = details
        self.headers = headers or {}

    def status(self) -> Obj:
        """The ``Status`` body."""
        body: Obj = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }
        if self.details is not None:
            body["details"] = self.details
        return body


def _not_found(kind: _Kind, name: str) -> ApiError:
    return ApiError(
        404,
        f'{kind.qualified} "{name}" not found',
        details={"name": name, "group": kind.group, "kind": kind.resource},
    )


def _invalid(kind: _Kind, name: str, causes: list[tuple[str, str]]) -> ApiError:
    """422 Invalid with ``(field, message)`` causes."""
    text = ", ".join(f"{f}: {m}" for f, m in causes)
    return ApiError(
        422,
        f'{kind.kind_group} "{name}" is invalid: {text}',
        details={
            "name": name,
            "group": kind.group,
            "kind": kind.kind,
            "causes": [{"reason": "FieldValueInvalid", "message": m, "field": f} for f, m in causes],
        },
    )


# --------------------------------------------------------------------------- selectors


class LabelSelector:
    """A parsed label selector string (``a=b,c!=d,e in (x,y),f notin (z),g,!h``)."""

    def __init__(self, text: str | None) -> None:
        self.requirements: list[tuple[str, str, frozenset[str]]] = []
        for part in _split_top_level(text or ""):
            self.requirements.append(self._parse(part))

    @staticmethod
    def _parse(part: str) -> tuple[str, str, frozenset[str]]:
        m = re.fullmatch(r"\s*([^\s!=(),]+)\s+(in|notin)\s*\(([^)]*)\)\s*", part)
        if m:
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            return m.group(1), m.group(2), values
        m = re.fullmatch(r"\s*([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)\s*", part)
        if m:
            op = "!=" if m.group(2) == "!=" else "="
            return m.group(1), op, frozenset([m.group(3)])
        m = re.fullmatch(r"\s*(!?)\s*([^\s!=(),]+)\s*", part)
        if m:
            return m.group(2), "!exists" if m.group(1) else "exists", frozenset()
        raise ApiError(400, f"unable to parse requirement: {part!r}")

    def matches(self, labels: dict[str, str] | None) -> bool:
        """Whether ``labels`` satisfy every requirement."""
        labels = labels or {}
        for key, op, values in self.requirements:
            present = key in labels
            ok = {
                "=": present and labels.get(key) in values,
                "in": present and labels.get(key) in values,
                "!=": not present or labels.get(key) not in values,
                "notin": not present or labels.get(key) not in values,
                "exists": present,
                "!exists": not present,
            }[op]
            if not ok:
                return False
        return True


def _split_top_level(text: str) -> list[str]:
    parts, depth, cur = [], 0, []
    for ch in text:
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p for p in (s.strip() for s in parts) if p]


def _involved(key: str) -> Callable[[Obj], str]:
    """A field selector's getter of an event's ``involvedObject.<key>``."""
    return lambda o: str(o["involvedObject"].get(key, ""))


_FIELD_GETTERS: dict[str, dict[str, Callable[[Obj], str]]] = {
    "jobs": {"status.successful": lambda o: str(o.get("status", {}).get("succeeded", 0))},
    "pods": {
        "spec.nodeName": lambda o: o["spec"].get("nodeName", ""),
        "spec.restartPolicy": lambda o: o["spec"].get("restartPolicy", ""),
        "status.phase": lambda o: o["status"].get("phase", ""),
        "status.podIP": lambda o: o["status"].get("podIP", ""),
    },
    "secrets": {"type": lambda o: o.get("type", "")},
    "events": {
        **{f"involvedObject.{k}": _involved(k) for k in ("kind", "name", "namespace", "uid")},
        "reason": lambda o: o.get("reason", ""),
        "type": lambda o: o.get("type", ""),
    },
}


def _field_selector(resource: str, text: str | None) -> Callable[[Obj], bool]:
    """Equality-based field selector (``metadata.name=x,status.phase!=Running``)."""
    getters: dict[str, Callable[[Obj], str]] = {
        "metadata.name": lambda o: o["metadata"]["name"],
        "metadata.namespace": lambda o: o["metadata"]["namespace"],
        **_FIELD_GETTERS[resource],
    }
    reqs = []
    for part in _split_top_level(text or ""):
        m = re.fullmatch(r"\s*([^\s!=]+)\s*(==|=|!=)\s*(\S*)\s*", part)
        if not m:
            raise ApiError(400, f"invalid field selector: {part!r}")
        if m.group(1) not in getters:
            raise ApiError(400, f'field label not supported: {m.group(1)}')
        reqs.append((getters[m.group(1)], m.group(2) == "!=", m.group(3)))
    return lambda o: all((get(o) != value) if neg else (get(o) == value) for get, neg, value in reqs)


# --------------------------------------------------------------------------- runtime state


class _ConfigError(Exception):
    """A container cannot be created (missing Secret or key): CreateContainerConfigError."""


@dataclass
class _PodRuntime:
    """What the emulated kubelet knows about a pod beyond its API object."""

    run_id: str | None = None
    previous_run_id: str | None = None
    attempts: int = 0
    restarts: int = 0
    last_state: Obj = field(default_factory=dict)
    retry_at: float = 0.0
    config_error: str | None = None
    kill_at: float | None = None
    oom_killed: bool = False  # the current container was killed for exceeding its memory limit


@dataclass
class _JobRuntime:
    """What the emulated job controller tracks beyond the Job object."""

    seen: set[str] = field(default_factory=set)  # uids of pods it created
    succeeded: set[str] = field(default_factory=set)
    failed: set[str] = field(default_factory=set)
    succeeded_indexes: set[int] = field(default_factory=set)
    finished_at: float | None = None


@dataclass
class _Event:
    rv: int
    resource: str
    namespace: str
    type: str
    obj: Obj


# --------------------------------------------------------------------------- HTTP layer


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def do_GET(self) -> None:
        self.server.emulator._handle(self, "GET")

    def do_POST(self) -> None:
        self.server.emulator._handle(self, "POST")

    def do_DELETE(self) -> None:
        self.server.emulator._handle(self, "DELETE")

    def do_PUT(self) -> None:
        self.server.emulator._handle(self, "PUT")

    def do_PATCH(self) -> None:
        self.server.emulator._handle(self, "PATCH")

    def log_message(self, format: str, *args: Any) -> None:
        _log.debug("k8s emulator: " + format, *args)

    def send_json(self, code: int, body: Obj, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def send_text(self, text: str) -> None:
        data = text.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def start_chunked(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.wfile.flush()

    def chunk(self, data: bytes) -> None:
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

    def end_chunked(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    emulator: K8sEmulator


# --------------------------------------------------------------------------- the emulator


class K8sEmulator:
    """An in-process Kubernetes API server + controllers whose pods run via a JobRunner.

    Args:
        runner: Runs the pods' containers; default: a new :class:`JobRunner`, closed by
            :meth:`stop`.
        faults: API fault knobs; default: a new :class:`Faults`.
        kubernetes_version: ``major.minor`` reported by ``/version`` and used for schema
            validation.
        tick: Controller period in seconds (it also wakes on API writes and process exits).

    Knobs (settable at any time): ``unschedulable`` (new pods stay Pending/Unschedulable),
    ``stuck`` (pods are scheduled but stay in ContainerCreating), ``node_labels`` (labels
    of the single node, matched against ``nodeSelector``), ``node_capacity`` (resources of
    that node, default this machine's CPUs and memory: a pod requesting more stays
    Unschedulable with ``Insufficient cpu``), ``namespaces`` (those that exist: ``default``
    and the ``kube-*`` ones; creating in another is 404 NotFound), ``pod_quota`` (what a
    ResourceQuota answers to every new pod, e.g. ``"exceeded quota: compute-resources,
    requested: requests.cpu=2, used: requests.cpu=1, limited: requests.cpu=2"``; ``None``:
    no quota), ``faults`` and ``runner.missing_images``.
    """

    def __init__(
        self,
        runner: JobRunner | None = None,
        faults: Faults | None = None,
        kubernetes_version: str = "1.33",
        tick: float = 0.1,
    ) -> None:
        # Imported here so that importing this module (and the pytest plugin) works
        # without the k8s extra; creating an emulator needs it.
        self._validator: Any = importlib.import_module("kubernetes_validate")
        self._own_runner = runner is None
        self.runner = runner if runner is not None else JobRunner()
        self.faults = faults if faults is not None else Faults()
        self.kubernetes_version = kubernetes_version
        self.tick = tick
        self.node_labels: dict[str, str] = {
            "kubernetes.io/hostname": NODE_NAME,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
        }
        #: What a ResourceQuota answers to new pods (the text after ``forbidden: ``), or None.
        self.pod_quota: str | None = None
        #: Namespaces that exist: creating an object elsewhere is answered 404 NotFound.
        self.namespaces: set[str] = {"default", "kube-system", "kube-public", "kube-node-lease"}
        #: What the single node has (quantities by resource): a pod requesting more of one stays
        #: Pending, Unschedulable (``Insufficient cpu``). Default: this machine's CPUs and memory.
        self.node_capacity: dict[str, str] = k8s_resources.default_node_capacity()
        #: Path of the kubeconfig written by :meth:`write_kubeconfig`.
        self.kubeconfig_path: Path | None = None
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._rv = 1
        self._store: dict[str, dict[tuple[str, str], Obj]] = {r: {} for r in KINDS}
        self._events: deque[_Event] = deque(maxlen=10_000)
        self._pods: dict[str, _PodRuntime] = {}  # by pod uid
        self._jobs: dict[str, _JobRuntime] = {}  # by job uid
        self._server: _Server | None = None
        self._threads: list[threading.Thread] = []
        self._tmpdir: tempfile.TemporaryDirectory[str] | None = None
        self.runner.on_exit(lambda _run_id, _state: self._wake.set())

    # ------------------------------------------------------------------ knobs and lifecycle

    @property
    def unschedulable(self) -> bool:
        """New pods cannot be scheduled: they stay Pending with PodScheduled=False/Unschedulable."""
        return self.faults.unschedulable

    @unschedulable.setter
    def unschedulable(self, value: bool) -> None:
        self.faults.unschedulable = value
        self._wake.set()

    @property
    def stuck(self) -> bool:
        """Pods are scheduled but their container never starts (waiting ContainerCreating)."""
        return self.faults.stuck

    @stuck.setter
    def stuck(self, value: bool) -> None:
        self.faults.stuck = value
        self._wake.set()

    @property
    def host(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:PORT``."""
        if self._server is None:
            raise RuntimeError("emulator not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> K8sEmulator:
        """Start the HTTP server and the controller thread (port chosen by the OS)."""
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.emulator = self
        for target, name in ((self._server.serve_forever, "k8s-emulator-http"), (self._control_loop, "k8s-emulator-ctl")):
            t = threading.Thread(target=target, name=name, daemon=True)
            t.start()
            self._threads.append(t)
        return self

    def stop(self) -> None:
        """Stop serving, end watches, kill every pod process. Idempotent."""
        if self._stopping.is_set():
            return
        self._stopping.set()
        self._wake.set()
        with self._changed:
            self._changed.notify_all()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        for t in self._threads:
            t.join(timeout=10)
        with self._lock:
            run_ids = [r for rt in self._pods.values() for r in (rt.run_id, rt.previous_run_id) if r]
        for run_id in run_ids:
            self.runner.kill(run_id, signal.SIGKILL)
        if self._own_runner:
            self.runner.close()
        if self._tmpdir is not None:
            self._tmpdir.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def write_kubeconfig(self, path: str | Path | None = None, namespace: str = "default") -> Path:
        """Write a kubeconfig (context ``emulator``) pointing at this server; return its path."""
        if path is None:
            if self._tmpdir is None:
                self._tmpdir = tempfile.TemporaryDirectory(prefix="pycrew-k8s-")
            path = Path(self._tmpdir.name) / "kubeconfig"
        path = Path(path)
        config = {  # JSON is valid YAML
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emulator", "cluster": {"server": self.host}}],
            "users": [{"name": "emulator", "user": {"token": "pycrew-emulator-token"}}],
            "contexts": [
                {"name": "emulator", "context": {"cluster": "emulator", "user": "emulator", "namespace": namespace}}
            ],
            "current-context": "emulator",
            "preferences": {},
        }
        path.write_text(json.dumps(config, indent=2))
        self.kubeconfig_path = path
        return path

    def api_client(self) -> kubernetes.client.ApiClient:
        """A ``kubernetes.client.ApiClient`` loaded from this emulator's kubeconfig."""
        import kubernetes.config

        if self.kubeconfig_path is None:
            self.write_kubeconfig()
        return kubernetes.config.new_client_from_config(config_file=str(self.kubeconfig_path), context="emulator")

    # ------------------------------------------------------------------ test helpers

    def get_object(self, resource: str, name: str, namespace: str = "default") -> Obj | None:
        """A deep copy of a stored object (``resource``: jobs, pods or secrets), or None."""
        with self._lock:
            obj = self._store[resource].get((namespace, name))
            return copy.deepcopy(obj) if obj is not None else None

    def pod_run_id(self, name: str, namespace: str = "default") -> str | None:
        """The runner run id of a pod's current container, or None if it never started."""
        with self._lock:
            pod = self._store["pods"].get((namespace, name))
            rt = self._pods.get(pod["metadata"]["uid"]) if pod else None
            return rt.run_id if rt else None

    def pod_pid(self, name: str, namespace: str = "default") -> int | None:
        """PID of a pod's container main process, or None."""
        run_id = self.pod_run_id(name, namespace)
        return self.runner.state(run_id).pid if run_id else None

    # ------------------------------------------------------------------ store primitives

    def _put(self, resource: str, obj: Obj, event: str) -> Obj:
        """Store ``obj`` with a new resourceVersion and record a watch event. Needs the lock."""
        self._rv += 1
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self._rv)
        self._store[resource][(meta["namespace"], meta["name"])] = obj
        self._record(resource, event, obj)
        return obj

    def _remove(self, resource: str, obj: Obj) -> None:
        """Remove ``obj`` for good (DELETED event). Needs the lock."""
        meta = obj["metadata"]
        if self._store[resource].pop((meta["namespace"], meta["name"]), None) is None:
            return
        self._rv += 1
        meta["resourceVersion"] = str(self._rv)
        self._record(resource, "DELETED", obj)
        if resource == "pods":
            self._pods.pop(meta["uid"], None)
        elif resource == "jobs":
            self._jobs.pop(meta["uid"], None)
        self._wake.set()

    def _record(self, resource: str, event: str, obj: Obj) -> None:
        self._events.append(_Event(self._rv, resource, obj["metadata"]["namespace"], event, copy.deepcopy(obj)))
        self._changed.notify_all()

    def _objects(self, resource: str, namespace: str | None) -> list[Obj]:
        return [
            o
            for (ns, _), o in sorted(self._store[resource].items(), key=lambda kv: kv[0])
            if namespace is None or ns == namespace
        ]

    def _get(self, resource: str, namespace: str, name: str) -> Obj:
        obj = self._store[resource].get((namespace, name))
        if obj is None:
            raise _not_found(KINDS[resource], name)
        return obj

    def _generate_name(self, resource: str, namespace: str, base: str) -> str:
        for _ in range(100):
            name = base[:58] + "".join(random.choices(_NAME_CHARS, k=5))
            if (namespace, name) not in self._store[resource]:
                return name
        raise ApiError(409, f"could not generate a unique name from {base!r}", reason="AlreadyExists")

    # ------------------------------------------------------------------ request dispatch

    def _handle(self, h: _Handler, method: str) -> None:
        url = urlsplit(h.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        length = int(h.headers.get("Content-Length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            route = self._route(url.path)
            self.faults.sleep()
            fault = self.faults.take_api_fault(self._operation(method, url.path, route))
            if fault is not None:
                headers = {"Retry-After": "1"} if fault.status == 429 else {}
                details = {"retryAfterSeconds": 1} if fault.status == 429 else None
                # The Fault's platform-neutral ``code`` is replaced by the Kubernetes reason.
                raise ApiError(fault.status, fault.message, details=details, headers=headers)
            if url.path.rstrip("/") == "/version":
                if method != "GET":
                    raise ApiError(405, "method not allowed")
                h.send_json(200, self._version())
                return
            if route is None:
                raise ApiError(404, "the server could not find the requested resource")
            body = self._decode_body(raw) if method in ("POST", "DELETE") else None
            self._dispatch(h, method, route, query, body)
        except ApiError as err:
            h.send_json(err.code, err.status(), err.headers)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:
            _log.exception("k8s emulator: internal error")
            err = ApiError(500, f"emulator internal error: {exc!r}")
            try:
                h.send_json(500, err.status())
            except OSError:
                pass

    @staticmethod
    def _route(path: str) -> dict[str, str | None] | None:
        for pattern in _ROUTES:
            m = pattern.match(path)
            if m:
                return m.groupdict()
        return None

    @staticmethod
    def _operation(method: str, path: str, route: dict[str, str | None] | None) -> str:
        """The official client's method name for a request (used by ``Faults(only=...)``).

        Watches count as their list operation (``list_namespaced_job`` with ``watch=true``).
        """
        if path.rstrip("/") == "/version":
            return "get_code"
        if route is None:
            return f"{method} {path}"
        singular = KINDS[route["res"] or ""].singular
        ns, name, sub = route["ns"], route["name"], route["sub"]
        if name is None:
            verb = {"GET": "list", "POST": "create", "DELETE": "delete_collection"}.get(method, method.lower())
            if ns is None:
                return f"{verb}_{singular}_for_all_namespaces"
            return f"{verb}_namespaced_{singular}"
        verb = {"GET": "read", "DELETE": "delete", "PUT": "replace", "PATCH": "patch"}.get(method, method.lower())
        return f"{verb}_namespaced_{singular}" + (f"_{sub}" if sub else "")

    @staticmethod
    def _decode_body(raw: bytes) -> Obj | None:
        if not raw.strip():
            return None
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise ApiError(400, f"the body of the request was in an unknown format: {exc}") from None
        if not isinstance(body, dict):
            raise ApiError(400, "the body of the request must be a JSON object")
        return body

    def _dispatch(
        self, h: _Handler, method: str, route: dict[str, str | None], query: dict[str, str], body: Obj | None
    ) -> None:
        resource, ns, name, sub = route["res"] or "", route["ns"], route["name"], route["sub"]
        kind = KINDS[resource]
        if name is None:
            if method == "GET" and query.get("watch") in ("true", "1"):
                self._watch(h, resource, ns, query)
            elif method == "GET":
                h.send_json(200, self._list(resource, ns, query))
            elif method == "POST" and ns is not None and resource in ("jobs", "secrets"):
                h.send_json(201, self._create(resource, ns, body or {}, dry_run="dryRun" in query))
            elif method == "DELETE" and ns is not None:
                h.send_json(200, self._delete_collection(resource, ns, query, body))
            else:
                raise ApiError(405, f"{method} is not supported on {kind.resource} by the emulator")
            return
        assert ns is not None
        if sub == "log":
            if method != "GET":
                raise ApiError(405, "method not allowed")
            self._logs(h, ns, name, query)
        elif method == "GET":
            with self._lock:
                h.send_json(200, self._get(resource, ns, name))
        elif method == "DELETE" and sub is None:
            h.send_json(200, self._delete(resource, ns, name, query, body))
        else:
            raise ApiError(405, f"{method} is not supported on {kind.resource} by the emulator")

    def _version(self) -> Obj:
        major, minor = self.kubernetes_version.split(".")[:2]
        return {
            "major": major,
            "minor": minor,
            "emulationMajor": major,
            "emulationMinor": minor,
            "minCompatibilityMajor": major,
            "minCompatibilityMinor": str(int(minor) - 1),
            "gitVersion": f"v{major}.{minor}.0+pycrew-emulator",
            "gitCommit": "0" * 40,
            "gitTreeState": "clean",
            "buildDate": "2025-01-01T00:00:00Z",
            "goVersion": "go1.24.0",
            "compiler": "gc",
            "platform": "linux/amd64",
        }

    # ------------------------------------------------------------------ list and watch

    def _list(self, resource: str, ns: str | None, query: dict[str, str]) -> Obj:
        kind = KINDS[resource]
        labels = LabelSelector(query.get("labelSelector"))
        fields = _field_selector(resource, query.get("fieldSelector"))
        try:
            limit = int(query.get("limit") or 0)
            after = tuple(json.loads(base64.urlsafe_b64decode(query["continue"]))) if query.get("continue") else ()
        except ValueError:
            raise ApiError(400, "invalid limit or continue token") from None
        with self._lock:
            items = [
                o
                for o in self._objects(resource, ns)
                if labels.matches(o["metadata"].get("labels")) and fields(o)
            ]
            meta: Obj = {"resourceVersion": str(self._rv)}
            items = [o for o in items if _key(o) > after] if after else items
            if limit and len(items) > limit:
                meta["continue"] = base64.urlsafe_b64encode(json.dumps(_key(items[limit - 1])).encode()).decode()
                meta["remainingItemCount"] = len(items) - limit
                items = items[:limit]
            # Items of a typed list carry no kind/apiVersion, as in the real API.
            out = [{k: v for k, v in o.items() if k not in ("kind", "apiVersion")} for o in items]
            return {"kind": f"{kind.kind}List", "apiVersion": kind.api_version, "metadata": meta, "items": copy.deepcopy(out)}

    def _watch(self, h: _Handler, resource: str, ns: str | None, query: dict[str, str]) -> None:
        """Stream ``{"type", "object"}`` JSON lines until ``timeoutSeconds`` or stop.

        Without ``resourceVersion`` (or with "0") the current objects come first as
        ADDED events, like the real API server; otherwise events after that version
        (410 Expired if it is older than the retained history).
        """
        labels = LabelSelector(query.get("labelSelector"))
        fields = _field_selector(resource, query.get("fieldSelector"))
        timeout = float(query.get("timeoutSeconds") or 1800)
        deadline = time.monotonic() + timeout
        rv_text = query.get("resourceVersion") or "0"

        def wanted(res: str, obj: Obj) -> bool:
            return (
                res == resource
                and (ns is None or obj["metadata"]["namespace"] == ns)
                and labels.matches(obj["metadata"].get("labels"))
                and fields(obj)
            )

        with self._lock:
            pending: list[tuple[str, Obj]] = []
            if rv_text == "0":
                cursor = self._rv
                pending = [("ADDED", copy.deepcopy(o)) for o in self._objects(resource, ns) if wanted(resource, o)]
            else:
                try:
                    cursor = int(rv_text)
                except ValueError:
                    raise ApiError(400, f"invalid resource version {rv_text!r}") from None
                oldest = self._events[0].rv if self._events else self._rv + 1
                if cursor < oldest - 1 and cursor < self._rv:
                    gone = ApiError(410, f"too old resource version: {cursor} ({self._rv})", reason="Expired")
                    pending = [("ERROR", gone.status())]
                    deadline = 0.0  # send the error, then end the stream
        h.start_chunked("application/json")
        try:
            while True:
                for event_type, obj in pending:
                    h.chunk(json.dumps({"type": event_type, "object": obj}).encode() + b"\n")
                pending = []
                with self._changed:
                    while True:
                        remaining = deadline - time.monotonic()
                        if self._stopping.is_set() or remaining <= 0:
                            break
                        new = []
                        for e in reversed(self._events):  # newest first, stop at the cursor
                            if e.rv <= cursor:
                                break
                            new.append(e)
                        new.reverse()
                        if new:
                            cursor = new[-1].rv
                            pending = [(e.type, e.obj) for e in new if wanted(e.resource, e.obj)]
                            if pending:
                                break
                            continue
                        self._changed.wait(min(remaining, 1.0))
                if not pending:
                    break
            h.end_chunked()
        except OSError:  # the client went away
            h.close_connection = True

    # ------------------------------------------------------------------ create

    def _create(self, resource: str, ns: str, body: Obj, dry_run: bool = False) -> Obj:
        kind = KINDS[resource]
        obj = copy.deepcopy(body)
        if obj.get("kind", kind.kind) != kind.kind or obj.get("apiVersion", kind.api_version) != kind.api_version:
            raise ApiError(
                400, f"the API version in the data ({obj.get('apiVersion')}) does not match the expected API version ({kind.api_version})"
            )
        obj["kind"], obj["apiVersion"] = kind.kind, kind.api_version
        meta = obj.setdefault("metadata", {})
        if meta.get("namespace", ns) != ns:
            raise ApiError(
                400, "the namespace of the provided object does not match the namespace sent on the request"
            )
        meta["namespace"] = ns
        self._validate_schema(kind, obj)
        if resource == "jobs":
            bad_quantity = k8s_resources.decode_error(obj["spec"]["template"].get("spec") or {})
            if bad_quantity is not None:
                # Guess: the wording of the decoder's error around apimachinery's message.
                raise ApiError(400, f'{kind.kind} in version "v1" cannot be handled as a {kind.kind}: {bad_quantity}')
        if ns not in self.namespaces:  # the NamespaceLifecycle admission plugin
            raise ApiError(404, f'namespaces "{ns}" not found', details={"name": ns, "kind": "namespaces"})
        obj.pop("status", None)  # status is not settable on create
        for server_field in ("uid", "resourceVersion", "creationTimestamp", "deletionTimestamp", "generation", "selfLink"):
            meta.pop(server_field, None)
        with self._lock:
            if not meta.get("name") and meta.get("generateName"):
                meta["name"] = self._generate_name(resource, ns, meta["generateName"])
            self._validate_semantics(kind, obj)
            if resource == "jobs":
                self._default_job(obj)
            else:
                self._default_secret(obj)
            if (ns, meta["name"]) in self._store[resource]:
                raise ApiError(
                    409,
                    f'{kind.qualified} "{meta["name"]}" already exists',
                    details={"name": meta["name"], "group": kind.group, "kind": kind.resource},
                )
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = _ts()
            if resource == "jobs":
                meta["generation"] = 1
                self._label_job(obj)
            if dry_run:
                return obj
            if resource == "jobs":
                self._jobs[meta["uid"]] = _JobRuntime()
            self._put(resource, obj, "ADDED")
            self._wake.set()
            return copy.deepcopy(obj)

    def _validate_schema(self, kind: _Kind, obj: Obj) -> None:
        """Strict OpenAPI schema validation with kubernetes-validate.

        Guess/deviation: a real API server answers unknown fields with 400 BadRequest
        ("strict decoding error") only with ``fieldValidation=Strict`` (by default it
        drops them with a warning), and type errors with 400 too; here both are 422
        Invalid, which is what a launcher must never trigger either way.
        """
        name = obj["metadata"].get("name") or obj["metadata"].get("generateName") or ""
        try:
            self._validator.validate(obj, self.kubernetes_version, strict=True)
        except self._validator.ValidationError as exc:
            path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in exc.path).lstrip(".")
            raise _invalid(kind, name, [(path or "<root>", exc.message)]) from None

    def _validate_semantics(self, kind: _Kind, obj: Obj) -> None:
        """The API server's own validation rules that matter for launchers (422 Invalid)."""
        meta = obj["metadata"]
        name = meta.get("name") or ""
        causes: list[tuple[str, str]] = []
        if not name:
            causes.append(("metadata.name", "Required value: name or generateName is required"))
        elif not _DNS1123_SUBDOMAIN.match(name) or len(name) > 253:
            causes.append(
                (
                    "metadata.name",
                    (
                        f'Invalid value: "{name}": a lowercase RFC 1123 subdomain must consist of lower '
                        "case alphanumeric characters, '-' or '.', and must start and end with an "
                        "alphanumeric character"
                    ),
                )
            )
        elif kind.resource == "jobs" and len(name) > 63:
            # The name becomes the job-name label value, limited to 63 characters.
            causes.append(("metadata.name", f'Invalid value: "{name}": must be no more than 63 characters'))
        if kind.resource == "jobs":
            causes += self._job_causes(obj["spec"])
            causes += k8s_resources.resource_causes(obj["spec"]["template"].get("spec") or {}, "spec.template.spec")
        elif kind.resource == "secrets":
            for key in list(obj.get("data") or {}) + list(obj.get("stringData") or {}):
                if not _SECRET_KEY.match(key):
                    causes.append((f"data[{key}]", f'Invalid value: "{key}": a valid config key must consist of alphanumeric characters, \'-\', \'_\' or \'.\''))
        if causes:
            raise _invalid(kind, name, causes)

    @staticmethod
    def _job_causes(spec: Obj) -> list[tuple[str, str]]:
        causes: list[tuple[str, str]] = []
        pod_spec = spec["template"].get("spec") or {}
        policy = pod_spec.get("restartPolicy", "Always")
        if policy not in ("Never", "OnFailure"):
            causes.append(
                ("spec.template.spec.restartPolicy", f'Unsupported value: "{policy}": supported values: "OnFailure", "Never"')
            )
        containers = pod_spec.get("containers") or []
        if not containers:
            causes.append(("spec.template.spec.containers", "Required value"))
        for i, c in enumerate(containers):
            if not c.get("image"):
                causes.append((f"spec.template.spec.containers[{i}].image", "Required value"))
        for f in ("parallelism", "completions", "backoffLimit", "ttlSecondsAfterFinished"):
            if spec.get(f) is not None and spec[f] < 0:
                causes.append((f"spec.{f}", f"Invalid value: {spec[f]}: must be greater than or equal to 0"))
        if spec.get("activeDeadlineSeconds") is not None and spec["activeDeadlineSeconds"] <= 0:
            causes.append(("spec.activeDeadlineSeconds", "Invalid value: must be greater than 0"))
        if spec.get("completionMode", "NonIndexed") not in ("NonIndexed", "Indexed"):
            causes.append(("spec.completionMode", f'Unsupported value: "{spec["completionMode"]}"'))
        if spec.get("completionMode") == "Indexed" and spec.get("completions") is None:
            causes.append(("spec.completions", "Required value: when completion mode is Indexed"))
        if spec.get("selector") is not None and not spec.get("manualSelector"):
            causes.append(("spec.selector", "Invalid value: `selector` will be auto-generated"))
        return causes

    @staticmethod
    def _default_job(job: Obj) -> None:
        """Fill the defaults the real API server adds to a Job."""
        spec = job["spec"]
        if spec.get("completions") is None and spec.get("parallelism") is None:
            spec["completions"] = 1
        spec.setdefault("parallelism", 1)
        spec.setdefault("backoffLimit", 6)
        spec.setdefault("completionMode", "NonIndexed")
        spec.setdefault("suspend", False)
        spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
        pod_spec = spec["template"].setdefault("spec", {})
        pod_spec.setdefault("dnsPolicy", "ClusterFirst")
        pod_spec.setdefault("schedulerName", "default-scheduler")
        pod_spec.setdefault("securityContext", {})
        pod_spec.setdefault("terminationGracePeriodSeconds", 30)
        for c in pod_spec["containers"]:
            tag = c["image"].rsplit("/", 1)[-1]
            c.setdefault("imagePullPolicy", "Always" if ":" not in tag or tag.endswith(":latest") else "IfNotPresent")
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            c.setdefault("resources", {})

    @staticmethod
    def _label_job(job: Obj) -> None:
        """Selector and template labels the API server adds (needs the uid)."""
        uid, name = job["metadata"]["uid"], job["metadata"]["name"]
        spec = job["spec"]
        if not spec.get("manualSelector"):
            spec["selector"] = {"matchLabels": {"batch.kubernetes.io/controller-uid": uid}}
        tmeta = spec["template"].setdefault("metadata", {})
        tmeta.setdefault("labels", {}).update(
            {
                "batch.kubernetes.io/controller-uid": uid,
                "batch.kubernetes.io/job-name": name,
                "controller-uid": uid,
                "job-name": name,
            }
        )
        job["metadata"].setdefault("labels", {})
        for k in ("batch.kubernetes.io/controller-uid", "batch.kubernetes.io/job-name", "controller-uid", "job-name"):
            job["metadata"]["labels"].setdefault(k, tmeta["labels"][k])
        job["status"] = {}

    @staticmethod
    def _default_secret(secret: Obj) -> None:
        """stringData is merged into data (base64), as the API server does; type defaults to Opaque."""
        data = secret.setdefault("data", {})
        for key, value in data.items():
            try:
                base64.b64decode(value or "", validate=True)
            except (binascii.Error, ValueError):
                raise ApiError(400, f"illegal base64 data in secret key {key!r}") from None
        for key, value in (secret.pop("stringData", None) or {}).items():
            data[key] = base64.b64encode(value.encode()).decode()
        secret.setdefault("type", "Opaque")

    # ------------------------------------------------------------------ delete

    @staticmethod
    def _delete_options(query: dict[str, str], body: Obj | None) -> tuple[str | None, int | None]:
        body = body or {}
        policy = query.get("propagationPolicy") or body.get("propagationPolicy")
        if policy is None and (body.get("orphanDependents") is not None or query.get("orphanDependents")):
            orphan = body.get("orphanDependents", query.get("orphanDependents") in ("true", "1"))
            policy = "Orphan" if orphan else "Background"
        if policy not in (None, "Orphan", "Background", "Foreground"):
            raise ApiError(400, f"unknown propagationPolicy {policy!r}")
        grace = query.get("gracePeriodSeconds", body.get("gracePeriodSeconds"))
        return policy, None if grace is None else int(grace)

    def _delete(self, resource: str, ns: str, name: str, query: dict[str, str], body: Obj | None) -> Obj:
        policy, grace = self._delete_options(query, body)
        with self._lock:
            obj = self._get(resource, ns, name)
            return self._delete_obj(resource, obj, policy, grace)

    def _delete_collection(self, resource: str, ns: str, query: dict[str, str], body: Obj | None) -> Obj:
        """Delete every matching object; answer the list of what was deleted (like the real API)."""
        listed = self._list(resource, ns, query)
        policy, grace = self._delete_options(query, body)
        with self._lock:
            for item in listed["items"]:
                obj = self._store[resource].get((ns, item["metadata"]["name"]))
                if obj is not None:
                    self._delete_obj(resource, obj, policy, grace)
        return listed

    def _delete_obj(self, resource: str, obj: Obj, policy: str | None, grace: int | None) -> Obj:
        """Delete one object. Needs the lock. Returns the API's answer."""
        kind, meta = KINDS[resource], obj["metadata"]
        success = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {"name": meta["name"], "group": kind.group, "kind": kind.resource, "uid": meta["uid"]},
        }
        if resource == "pods":
            return copy.deepcopy(self._delete_pod(obj, grace))
        if resource == "jobs":
            # Real batch/v1 Jobs default to orphaning their pods.
            policy = policy or "Orphan"
            if meta.get("deletionTimestamp"):
                return copy.deepcopy(obj)
            if policy == "Foreground":
                # The job stays, with a finalizer, until its pods are gone (see _sync_job).
                meta["deletionTimestamp"] = _ts()
                meta["deletionGracePeriodSeconds"] = 0
                meta["finalizers"] = [*meta.get("finalizers", []), "foregroundDeletion"]
                self._put(resource, obj, "MODIFIED")
                self._wake.set()
                return copy.deepcopy(obj)
            if policy == "Orphan":
                self._orphan_dependents(meta["namespace"], meta["uid"])
            # Background: the garbage collector deletes the dependents afterwards.
        elif policy == "Orphan":
            self._orphan_dependents(meta["namespace"], meta["uid"])
        # Guess: the real API server answers the Job object itself while an "orphan"
        # finalizer is pending; here orphaning is synchronous and a Status is returned.
        self._remove(resource, obj)
        return success

    def _orphan_dependents(self, namespace: str, owner_uid: str) -> None:
        for resource in ("pods", "secrets"):
            for dep in self._objects(resource, namespace):
                refs = dep["metadata"].get("ownerReferences") or []
                kept = [r for r in refs if r.get("uid") != owner_uid]
                if len(kept) != len(refs):
                    if kept:
                        dep["metadata"]["ownerReferences"] = kept
                    else:
                        del dep["metadata"]["ownerReferences"]
                    self._put(resource, dep, "MODIFIED")

    def _delete_pod(self, pod: Obj, grace: int | None) -> Obj:
        """Graceful pod deletion: SIGTERM, SIGKILL after the grace period. Needs the lock.

        A pod whose process runs keeps existing (with deletionTimestamp) until the
        process exits; otherwise it is removed at once.
        """
        meta = pod["metadata"]
        rt = self._pods.setdefault(meta["uid"], _PodRuntime())
        if grace is None:
            grace = int(pod["spec"].get("terminationGracePeriodSeconds", 30))
        running = rt.run_id is not None and self.runner.state(rt.run_id).status == "running"
        if not running or grace == 0:
            if running:
                assert rt.run_id is not None
                self.runner.kill(rt.run_id, signal.SIGKILL)
            self._remove("pods", pod)
            return pod
        now = time.time()
        if meta.get("deletionTimestamp") and rt.kill_at is not None and rt.kill_at <= now + grace:
            return pod
        meta["deletionTimestamp"] = _ts(now + grace)
        meta["deletionGracePeriodSeconds"] = grace
        rt.kill_at = now + grace
        assert rt.run_id is not None
        self.runner.kill(rt.run_id, signal.SIGTERM)
        self._put("pods", pod, "MODIFIED")
        self._wake.set()
        return pod

    # ------------------------------------------------------------------ logs

    def _logs(self, h: _Handler, ns: str, name: str, query: dict[str, str]) -> None:
        with self._lock:
            pod = self._get("pods", ns, name)
            container = pod["spec"]["containers"][0]
            if query.get("container") not in (None, container["name"]):
                raise ApiError(400, f'container {query["container"]} is not valid for pod {name}')
            rt = self._pods.get(pod["metadata"]["uid"], _PodRuntime())
            run_id = rt.previous_run_id if query.get("previous") in ("true", "1") else rt.run_id
            if query.get("previous") in ("true", "1") and run_id is None:
                raise ApiError(400, f'previous terminated container "{container["name"]}" in pod "{name}" not found')
            if run_id is None or self.runner.state(run_id).status == "failed_to_start":
                waiting = _container_status(pod).get("state", {}).get("waiting", {})
                raise ApiError(
                    400,
                    f'container "{container["name"]}" in pod "{name}" is waiting to start: '
                    f'{waiting.get("reason", "ContainerCreating")}',
                )
        tail = int(query["tailLines"]) if query.get("tailLines") else None
        limit = int(query["limitBytes"]) if query.get("limitBytes") else None

        def cut(text: str) -> str:
            if tail is not None:
                text = "".join(text.splitlines(keepends=True)[-tail:] if tail else [])
            if limit is not None:
                text = text.encode()[:limit].decode(errors="ignore")
            return text

        if query.get("follow") not in ("true", "1"):
            h.send_text(cut(self.runner.logs(run_id)))
            return
        h.start_chunked("text/plain")
        try:
            first, sent = True, 0
            while not self._stopping.is_set():
                done = self.runner.state(run_id).done
                text = self.runner.logs(run_id)
                if first:
                    h.chunk(cut(text).encode())
                    first, sent = False, len(text)
                elif len(text) > sent:
                    h.chunk(text[sent:].encode())
                    sent = len(text)
                with self._lock:
                    if done or (ns, name) not in self._store["pods"]:
                        break
                time.sleep(0.1)
            h.end_chunked()
        except OSError:
            h.close_connection = True

    # ------------------------------------------------------------------ controllers

    def _control_loop(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(self.tick)
            self._wake.clear()
            if self._stopping.is_set():
                break
            try:
                with self._lock:
                    self._reconcile()
            except Exception:
                _log.exception("k8s emulator: controller error")

    def _reconcile(self) -> None:
        """One pass of job controller, scheduler/kubelet and garbage collector."""
        now = time.time()
        for pod in self._objects("pods", None):
            self._sync_pod(pod, now)
        for job in self._objects("jobs", None):
            self._sync_job(job, now)
        self._collect_garbage()

    # -- pods (scheduler + kubelet)

    def _unschedulable_message(self, pod: Obj) -> str | None:
        if self.unschedulable:
            return "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
        selector = pod["spec"].get("nodeSelector") or {}
        if any(self.node_labels.get(k) != v for k, v in selector.items()):
            return (
                "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. "
                "preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling."
            )
        short = k8s_resources.insufficient(pod["spec"], self.node_capacity)
        if short:
            return (
                f"0/1 nodes are available: {', '.join(f'1 Insufficient {name}' for name in short)}. "
                "preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod."
            )
        return None

    def _sync_pod(self, pod: Obj, now: float) -> None:
        meta, spec = pod["metadata"], pod["spec"]
        rt = self._pods.setdefault(meta["uid"], _PodRuntime())
        state = self.runner.state(rt.run_id) if rt.run_id else None
        if meta.get("deletionTimestamp"):
            if state is not None and state.status == "running":
                if rt.kill_at is not None and now >= rt.kill_at:
                    assert rt.run_id is not None
                    self.runner.kill(rt.run_id, signal.SIGKILL)
                return
            self._remove("pods", pod)
            return
        if pod["status"].get("phase") in ("Succeeded", "Failed"):
            return
        scheduled_now = False
        if not spec.get("nodeName"):
            message = self._unschedulable_message(pod)
            if message is not None:
                cond = {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": message}
                self._update_status("pods", pod, {"phase": "Pending", "conditions": _merge_conditions(pod["status"], [cond], now), "qosClass": "BestEffort"})
                return
            spec["nodeName"] = NODE_NAME
            scheduled_now = True
        container = spec["containers"][0]
        image_retry = (
            state is not None
            and state.status == "failed_to_start"
            and state.reason.startswith("ImagePullBackOff")
            and now >= rt.retry_at
            and container["image"] not in self.runner.missing_images
        )
        if (state is None or image_retry) and not self.stuck:
            state = self._start_container(pod, rt, now) or state
        if (
            state is not None
            and state.status in ("exited", "failed_to_start")
            and state.exit_code != 0
            and not state.reason.startswith("ImagePullBackOff")
            and spec.get("restartPolicy") == "OnFailure"
            and not self._job_finished_for(pod)
        ):
            # Guess: restarted at once, without the kubelet's CrashLoopBackOff delay.
            rt.restarts += 1
            rt.last_state = {"terminated": _terminated(state, rt.run_id, reason="OOMKilled" if rt.oom_killed else None)}
            rt.oom_killed = False
            rt.previous_run_id, rt.run_id = rt.run_id, None
            state = self._start_container(pod, rt, now) or state
        if state is not None and state.status == "running":
            self._enforce_memory_limit(pod, rt, state)
        self._update_status("pods", pod, self._pod_status(pod, rt, state, now), spec_changed=scheduled_now)

    def _enforce_memory_limit(self, pod: Obj, rt: _PodRuntime, state: RunState) -> None:
        """The kernel's OOM killer in the container's cgroup: SIGKILL when its processes use more
        resident memory than the limit (checked every tick; real: at once, on allocation)."""
        limit = k8s_resources.memory_limit(pod["spec"])
        if limit is None or state.pid is None or rt.oom_killed or rt.run_id is None:
            return
        if k8s_resources.tree_rss(state.pid) > limit:
            rt.oom_killed = True
            self.runner.kill(rt.run_id, signal.SIGKILL)

    def _job_finished_for(self, pod: Obj) -> bool:
        for ref in pod["metadata"].get("ownerReferences") or []:
            job = self._store["jobs"].get((pod["metadata"]["namespace"], ref.get("name", "")))
            if job is not None and job["metadata"]["uid"] == ref.get("uid"):
                return any(c["type"] in ("FailureTarget", "Failed") for c in job["status"].get("conditions", []))
        return False

    def _start_container(self, pod: Obj, rt: _PodRuntime, now: float) -> RunState | None:
        try:
            cspec = self._container_spec(pod)
        except _ConfigError as exc:
            rt.config_error = str(exc)
            return None
        rt.config_error = None
        rt.attempts += 1
        meta = pod["metadata"]
        rt.run_id = self.runner.start(cspec, run_id=f"k8s-{meta['namespace']}-{meta['name']}-{rt.attempts}")
        rt.retry_at = now + 1.0  # image pull retry period (real: exponential back-off from 10 s)
        return self.runner.state(rt.run_id)

    def _container_spec(self, pod: Obj) -> ContainerSpec:
        """containers[0] of ``pod`` as a ContainerSpec, env resolved (raises _ConfigError)."""
        meta = pod["metadata"]
        c = pod["spec"]["containers"][0]
        env: dict[str, str] = {"HOSTNAME": meta["name"]}
        for src in c.get("envFrom") or []:
            prefix = src.get("prefix", "")
            if "secretRef" in src:
                ref = src["secretRef"]
                secret = self._store["secrets"].get((meta["namespace"], ref.get("name", "")))
                if secret is None:
                    if ref.get("optional"):
                        continue
                    raise _ConfigError(f'secret "{ref.get("name")}" not found')
                for key, value in (secret.get("data") or {}).items():
                    env[prefix + key] = base64.b64decode(value).decode(errors="replace")
            elif not (src.get("configMapRef") or {}).get("optional"):
                raise _ConfigError("configmaps are not emulated")
        for var in c.get("env") or []:
            value = self._env_value(pod, var)
            if value is not None:
                env[var["name"]] = value if "valueFrom" in var else _expand(value, env)
        return ContainerSpec(
            image=c["image"],
            command=[_expand(s, env) for s in c.get("command") or []],
            args=[_expand(s, env) for s in c.get("args") or []],
            env=env,
            working_dir=c.get("workingDir"),
            name=f"{meta['namespace']}/{meta['name']}",
        )

    def _env_value(self, pod: Obj, var: Obj) -> str | None:
        source = var.get("valueFrom")
        if source is None:
            return var.get("value", "")
        meta = pod["metadata"]
        if "secretKeyRef" in source:
            ref = source["secretKeyRef"]
            secret = self._store["secrets"].get((meta["namespace"], ref.get("name", "")))
            data = (secret or {}).get("data") or {}
            if ref.get("key") in data:
                return base64.b64decode(data[ref["key"]]).decode(errors="replace")
            if ref.get("optional"):
                return None
            if secret is None:
                raise _ConfigError(f'secret "{ref.get("name")}" not found')
            raise _ConfigError(f"couldn't find key {ref.get('key')} in Secret {meta['namespace']}/{ref.get('name')}")
        if "fieldRef" in source:
            path = source["fieldRef"]["fieldPath"]
            m = re.fullmatch(r"metadata\.(labels|annotations)\['([^']+)'\]", path)
            if m:
                return (meta.get(m.group(1)) or {}).get(m.group(2), "")
            simple = {
                "metadata.name": meta["name"],
                "metadata.namespace": meta["namespace"],
                "metadata.uid": meta["uid"],
                "spec.nodeName": pod["spec"].get("nodeName", ""),
                "spec.serviceAccountName": pod["spec"].get("serviceAccountName", "default"),
                "status.hostIP": POD_IP,
                "status.hostIPs": POD_IP,
                "status.podIP": POD_IP,
                "status.podIPs": POD_IP,
            }
            if path in simple:
                return simple[path]
            raise _ConfigError(f"unsupported fieldRef {path!r} (emulator)")
        if (source.get("configMapKeyRef") or {}).get("optional"):
            return None
        raise _ConfigError(f"unsupported env source {sorted(source)} (emulator)")

    def _pod_status(self, pod: Obj, rt: _PodRuntime, state: RunState | None, now: float) -> Obj:
        c = pod["spec"]["containers"][0]
        image = c["image"]
        cs: Obj = {
            "name": c["name"],
            "image": image,
            "imageID": "",
            "ready": False,
            "restartCount": rt.restarts,
            "started": False,
            "state": {},
            "lastState": rt.last_state,
        }
        phase = "Pending"
        created = state is not None and state.status in ("running", "exited")
        if created:
            cs["imageID"] = f"{image}@sha256:{'0' * 64}"
            cs["containerID"] = f"containerd://{uuid.uuid5(uuid.NAMESPACE_OID, rt.run_id or '').hex}"
        if state is None:
            if rt.config_error:
                cs["state"] = {"waiting": {"reason": "CreateContainerConfigError", "message": rt.config_error}}
            else:
                cs["state"] = {"waiting": {"reason": "ContainerCreating"}}
        elif state.status == "failed_to_start" and state.reason.startswith("ImagePullBackOff"):
            # ErrImagePull for the first second after a failed pull, then ImagePullBackOff.
            fresh = state.finished_at is not None and now - state.finished_at < 1.0
            reason = "ErrImagePull" if fresh else "ImagePullBackOff"
            message = (
                f'failed to pull and unpack image "{image}": not found'
                if fresh
                else f'Back-off pulling image "{image}"'
            )
            cs["state"] = {"waiting": {"reason": reason, "message": message}}
        elif state.status == "failed_to_start":
            # Guess: like containerd's StartError for a missing executable.
            phase = "Failed"
            cs["state"] = {"terminated": _terminated(state, rt.run_id, exit_code=128, reason="StartError")}
        elif state.status == "running":
            phase = "Running"
            cs.update(ready=True, started=True, state={"running": {"startedAt": _ts(state.started_at)}})
        else:
            phase = "Succeeded" if state.exit_code == 0 else "Failed"
            cs["state"] = {"terminated": _terminated(state, rt.run_id, reason="OOMKilled" if rt.oom_killed else None)}
        not_ready = f"containers with unready status: [{c['name']}]"
        ready_reason = {"Succeeded": "PodCompleted", "Failed": "PodFailed"}.get(phase, "ContainersNotReady")
        ready = phase == "Running"
        conds = [
            {"type": "PodReadyToStartContainers", "status": "True" if created else "False"},
            {"type": "Initialized", "status": "True"},
            {"type": "Ready", "status": "True"} if ready else {"type": "Ready", "status": "False", "reason": ready_reason, "message": not_ready},
            {"type": "ContainersReady", "status": "True"} if ready else {"type": "ContainersReady", "status": "False", "reason": ready_reason, "message": not_ready},
            {"type": "PodScheduled", "status": "True"},
        ]
        status = {
            "phase": phase,
            "conditions": _merge_conditions(pod["status"], conds, now),
            "hostIP": POD_IP,
            "hostIPs": [{"ip": POD_IP}],
            "podIP": POD_IP,
            "podIPs": [{"ip": POD_IP}],
            "startTime": pod["status"].get("startTime", _ts(now)),
            "containerStatuses": [cs],
            "qosClass": "BestEffort",
        }
        return status

    def _update_status(self, resource: str, obj: Obj, status: Obj, spec_changed: bool = False) -> None:
        """Replace ``obj``'s status; MODIFIED event only if something changed. Needs the lock."""
        if obj.get("status") == status and not spec_changed:
            return
        obj["status"] = status
        if self._store[resource].get((obj["metadata"]["namespace"], obj["metadata"]["name"])) is obj:
            self._put(resource, obj, "MODIFIED")

    # -- jobs (job controller)

    def _sync_job(self, job: Obj, now: float) -> None:
        meta, spec = job["metadata"], job["spec"]
        uid = meta["uid"]
        rt = self._jobs.setdefault(uid, _JobRuntime())
        pods = [p for p in self._objects("pods", meta["namespace"]) if _owned_by(p, uid)]
        if meta.get("deletionTimestamp"):  # foreground deletion in progress
            for p in pods:
                if not p["metadata"].get("deletionTimestamp"):
                    self._delete_pod(p, None)
            for s in self._objects("secrets", meta["namespace"]):
                if _owned_by(s, uid):
                    self._remove("secrets", s)
            if not any(_owned_by(p, uid) for p in self._objects("pods", meta["namespace"])):
                self._remove("jobs", job)
            return
        conditions: list[Obj] = job["status"].get("conditions", [])
        types = {c["type"] for c in conditions if c["status"] == "True"}
        if types & {"Complete", "Failed"}:
            ttl = spec.get("ttlSecondsAfterFinished")
            if rt.finished_at is None:
                rt.finished_at = now
            if ttl is not None and now >= rt.finished_at + ttl:
                # Guess: the TTL controller deletes with Foreground propagation.
                self._delete_obj("jobs", job, "Foreground", None)
            return
        status = copy.deepcopy(job["status"])
        new_conditions = [c for c in conditions if c["type"] != "Suspended"]
        if spec.get("suspend"):
            # Only creation-time suspension: PATCH is not emulated.
            new_conditions.append({"type": "Suspended", "status": "True", "reason": "JobSuspended", "message": "Job suspended"})
            status["conditions"] = _merge_conditions(job["status"], new_conditions, now)
            self._update_status("jobs", job, status)
            return
        status.setdefault("startTime", _ts(now))
        indexed = spec.get("completionMode") == "Indexed"
        restarts = 0
        for p in pods:
            phase = p["status"].get("phase")
            restarts += self._pods.get(p["metadata"]["uid"], _PodRuntime()).restarts
            if phase == "Succeeded":
                rt.succeeded.add(p["metadata"]["uid"])
                if indexed:
                    rt.succeeded_indexes.add(int(p["metadata"]["labels"][_JOB_INDEX_KEY]))
            elif phase == "Failed":
                rt.failed.add(p["metadata"]["uid"])
        present = {p["metadata"]["uid"] for p in pods}
        rt.failed |= rt.seen - present - rt.succeeded  # pods that vanished unfinished

        def active_pods() -> list[Obj]:
            return [
                p
                for p in self._objects("pods", meta["namespace"])
                if _owned_by(p, uid)
                and p["status"].get("phase") not in ("Succeeded", "Failed")
                and not p["metadata"].get("deletionTimestamp")
            ]

        active = active_pods()
        completions = spec.get("completions")
        succeeded = len(rt.succeeded_indexes) if indexed else len(rt.succeeded)
        target = {c["type"] for c in new_conditions} & {"FailureTarget", "SuccessCriteriaMet"}
        start = _parse_ts(status["startTime"])
        if not target:
            failure = None
            if spec.get("activeDeadlineSeconds") is not None and now - start >= spec["activeDeadlineSeconds"]:
                failure = ("DeadlineExceeded", "Job was active longer than specified deadline")
            elif len(rt.failed) + restarts > spec["backoffLimit"]:
                failure = ("BackoffLimitExceeded", "Job has reached the specified backoff limit")
            if failure is not None:
                # Since 1.31 FailureTarget comes first; Failed once no pod is terminating.
                new_conditions.append({"type": "FailureTarget", "status": "True", "reason": failure[0], "message": failure[1]})
                for p in active:
                    self._delete_pod(p, None)
            elif (completions is not None and succeeded >= completions) or (completions is None and succeeded and not active):
                new_conditions.append(
                    {"type": "SuccessCriteriaMet", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods"}
                )
            else:
                self._create_missing_pods(job, rt, active, succeeded)
        active = active_pods()
        terminating = [p for p in self._objects("pods", meta["namespace"]) if _owned_by(p, uid) and p["metadata"].get("deletionTimestamp")]
        rt.failed |= rt.seen - {p["metadata"]["uid"] for p in self._objects("pods", meta["namespace"]) if _owned_by(p, uid)} - rt.succeeded
        final = {c["type"]: c for c in new_conditions}
        if not active and not terminating:
            if "FailureTarget" in final and "Failed" not in final:
                fc = final["FailureTarget"]
                new_conditions.append({"type": "Failed", "status": "True", "reason": fc["reason"], "message": fc["message"]})
                rt.finished_at = now
            elif "SuccessCriteriaMet" in final and "Complete" not in final:
                new_conditions.append(
                    {"type": "Complete", "status": "True", "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods"}
                )
                status["completionTime"] = _ts(now)
                rt.finished_at = now
        for key, value in (("active", len(active)), ("succeeded", len(rt.succeeded)), ("failed", len(rt.failed))):
            if value:
                status[key] = value
            else:
                status.pop(key, None)
        status["ready"] = sum(1 for p in active if p["status"].get("phase") == "Running")
        status["terminating"] = len(terminating)
        status["uncountedTerminatedPods"] = {}
        if indexed:
            status["completedIndexes"] = _format_indexes(rt.succeeded_indexes)
        status["conditions"] = _merge_conditions(job["status"], new_conditions, now)
        if not status["conditions"]:
            del status["conditions"]
        self._update_status("jobs", job, status)

    def _create_missing_pods(self, job: Obj, rt: _JobRuntime, active: list[Obj], succeeded: int) -> None:
        spec = job["spec"]
        parallelism, completions = spec["parallelism"], spec.get("completions")
        if spec.get("completionMode") == "Indexed":
            busy = {int(p["metadata"]["labels"][_JOB_INDEX_KEY]) for p in active}
            todo = [i for i in range(completions) if i not in rt.succeeded_indexes and i not in busy]
            for index in todo[: max(0, parallelism - len(active))]:
                self._create_job_pod(job, rt, index)
            return
        if completions is None:  # work queue: no new pods once one succeeded
            want = 0 if succeeded else parallelism - len(active)
        else:
            want = min(parallelism, completions - succeeded) - len(active)
        for _ in range(max(0, want)):
            self._create_job_pod(job, rt, None)

    def _create_job_pod(self, job: Obj, rt: _JobRuntime, index: int | None) -> None:
        jmeta, template = job["metadata"], job["spec"]["template"]
        tmeta = template.get("metadata") or {}
        labels = dict(tmeta.get("labels") or {})
        annotations = dict(tmeta.get("annotations") or {})
        pod_spec = copy.deepcopy(template["spec"])
        base = f"{jmeta['name']}-"
        if index is not None:
            labels[_JOB_INDEX_KEY] = annotations[_JOB_INDEX_KEY] = str(index)
            base = f"{jmeta['name']}-{index}-"
            pod_spec["hostname"] = pod_spec.get("hostname") or f"{jmeta['name']}-{index}"
            for c in pod_spec["containers"]:
                c.setdefault("env", []).append(
                    {"name": "JOB_COMPLETION_INDEX", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": f"metadata.labels['{_JOB_INDEX_KEY}']"}}}
                )
        if self.pod_quota is not None:
            self._refuse_pod(job, self._generate_name("pods", jmeta["namespace"], base), self.pod_quota)
            return
        k8s_resources.default_requests(pod_spec)
        pod_spec.setdefault("serviceAccountName", "default")
        pod_spec.setdefault("serviceAccount", pod_spec["serviceAccountName"])
        pod_spec.setdefault("enableServiceLinks", True)
        pod_spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
        pod_spec.setdefault("priority", 0)
        pod: Obj = {
            "kind": "Pod",
            "apiVersion": "v1",
            "metadata": {
                "name": self._generate_name("pods", jmeta["namespace"], base),
                "generateName": base,
                "namespace": jmeta["namespace"],
                "uid": str(uuid.uuid4()),
                "creationTimestamp": _ts(),
                "labels": labels,
                "ownerReferences": [
                    {"apiVersion": "batch/v1", "kind": "Job", "name": jmeta["name"], "uid": jmeta["uid"], "controller": True, "blockOwnerDeletion": True}
                ],
            },
            "spec": pod_spec,
            "status": {"phase": "Pending", "qosClass": "BestEffort"},
        }
        if annotations:
            pod["metadata"]["annotations"] = annotations
        rt.seen.add(pod["metadata"]["uid"])
        self._put("pods", pod, "ADDED")
        self._wake.set()

    def _refuse_pod(self, job: Obj, name: str, why: str) -> None:
        """The quota admission refused a pod of ``job``: a ``FailedCreate`` Warning event on the Job,
        counted up when it repeats (the event recorder's aggregation). Needs the lock.

        Guess/deviation: the real job controller retries with a growing back-off (10 s, 20 s,
        ...); here every pass retries, so the event is updated at most once a second.
        """
        jmeta, now = job["metadata"], time.time()
        message = f'Error creating: pods "{name}" is forbidden: {why}'
        for event in self._objects("events", jmeta["namespace"]):
            if event["involvedObject"]["uid"] == jmeta["uid"] and event["reason"] == "FailedCreate":
                if now - _parse_ts(event["lastTimestamp"]) >= 1.0:
                    event.update(message=message, count=event["count"] + 1, lastTimestamp=_ts(now))
                    self._put("events", event, "MODIFIED")
                return
        self._put("events", {
            "kind": "Event",
            "apiVersion": "v1",
            "metadata": {"name": f"{jmeta['name']}.{uuid.uuid4().hex[:16]}", "namespace": jmeta["namespace"],
                         "uid": str(uuid.uuid4()), "creationTimestamp": _ts(now)},
            "involvedObject": {"kind": "Job", "namespace": jmeta["namespace"], "name": jmeta["name"], "uid": jmeta["uid"],
                               "apiVersion": "batch/v1", "resourceVersion": jmeta.get("resourceVersion", "")},
            "reason": "FailedCreate",
            "message": message,
            "source": {"component": "job-controller"},
            "firstTimestamp": _ts(now),
            "lastTimestamp": _ts(now),
            "count": 1,
            "type": "Warning",
            "eventTime": None,
            "reportingComponent": "job-controller",
            "reportingInstance": "",
        }, "ADDED")

    # -- garbage collector

    def _collect_garbage(self) -> None:
        """Delete pods and secrets none of whose owners exist any more.

        Guess: only owners of kinds the emulator stores (Job, Pod, Secret) are resolved;
        dependents of any other kind of owner are never collected.
        """
        existing = {o["metadata"]["uid"] for r in KINDS for o in self._store[r].values()}
        for resource in ("pods", "secrets"):
            for obj in self._objects(resource, None):
                refs = [r for r in obj["metadata"].get("ownerReferences") or [] if r.get("kind") in ("Job", "Pod", "Secret")]
                if refs and not any(r.get("uid") in existing for r in refs) and not obj["metadata"].get("deletionTimestamp"):
                    if resource == "pods":
                        self._delete_pod(obj, None)
                    else:
                        self._remove(resource, obj)


# --------------------------------------------------------------------------- helpers


def _key(obj: Obj) -> tuple[str, str]:
    return obj["metadata"]["namespace"], obj["metadata"]["name"]


def _owned_by(obj: Obj, uid: str) -> bool:
    return any(r.get("uid") == uid for r in obj["metadata"].get("ownerReferences") or [])


def _expand(text: str, env: dict[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: ``$$`` escapes, unknown references stay as they are."""

    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        return env.get(m.group(1), m.group(0))

    return _VAR_REF.sub(repl, text)


def _terminated(state: RunState, run_id: str | None, exit_code: int | None = None, reason: str | None = None) -> Obj:
    out: Obj = {
        "exitCode": state.exit_code if exit_code is None else exit_code,
        "reason": reason or state.reason or ("Completed" if state.exit_code == 0 else "Error"),
        "startedAt": _ts(state.started_at or state.finished_at),
        "finishedAt": _ts(state.finished_at),
    }
    if run_id and state.status == "exited":
        out["containerID"] = f"containerd://{uuid.uuid5(uuid.NAMESPACE_OID, run_id).hex}"
    if state.status == "failed_to_start":
        out["message"] = state.reason
    return out


def _container_status(pod: Obj) -> Obj:
    statuses = pod["status"].get("containerStatuses") or [{}]
    return statuses[0]


def _merge_conditions(old_status: Obj, new: list[Obj], now: float) -> list[Obj]:
    """Add timestamps, keeping lastTransitionTime where a condition's status is unchanged."""
    old = {c["type"]: c for c in old_status.get("conditions") or []}
    out = []
    for cond in new:
        prev = old.get(cond["type"])
        same = prev is not None and prev["status"] == cond["status"]
        stamped = {**cond, "lastProbeTime": prev.get("lastProbeTime") if same else None}
        stamped["lastTransitionTime"] = prev["lastTransitionTime"] if same and prev else _ts(now)
        if stamped["lastProbeTime"] is None:
            if cond["type"] in ("Complete", "Failed", "FailureTarget", "SuccessCriteriaMet", "Suspended"):
                stamped["lastProbeTime"] = stamped["lastTransitionTime"]
            else:
                del stamped["lastProbeTime"]
        out.append(stamped)
    return out


def _format_indexes(indexes: set[int]) -> str:
    """``{0,1,2,5}`` -> ``"0-2,5"``, as in status.completedIndexes."""
    parts: list[str] = []
    run: list[int] = []
    for i in sorted(indexes):
        if run and i == run[-1] + 1:
            run.append(i)
            continue
        if run:
            parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
        run = [i]
    if run:
        parts.append(f"{run[0]}-{run[-1]}" if len(run) > 1 else str(run[0]))
    return ",".join(parts)

