"""A minimal Secret Manager v1 REST stand-in that feeds the Cloud Run emulator's ``secrets``.

There is no Secret Manager emulator. This one serves exactly what pycrew-cloudrun calls,
through the official ``google-cloud-secret-manager`` client's REST transport: get and create
a secret, add a version, list versions (``filter=state:ENABLED`` only), destroy a version.
Every version added is written to ``store[(secret name, version number)]``, the dict the Cloud
Run emulator resolves ``valueSource.secretKeyRef`` from; a destroyed version is removed from
it, as Cloud Run would then fail to read it.

Fault knob: ``fail_next(n, status)`` answers the next ``n`` requests with that HTTP status.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from google.cloud import secretmanager_v1

_STATUS = {400: "FAILED_PRECONDITION", 404: "NOT_FOUND", 409: "ALREADY_EXISTS", 500: "INTERNAL", 503: "UNAVAILABLE", 429: "RESOURCE_EXHAUSTED"}


class _Error(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class _Version:
    number: int
    created: float
    state: int  # SecretVersion.State: 1 ENABLED, 3 DESTROYED


@dataclass
class _Secret:
    name: str
    labels: dict[str, str]
    created: float = field(default_factory=time.time)
    versions: list[_Version] = field(default_factory=list)


class FakeSecretManager:
    """Secret Manager v1 over REST on 127.0.0.1, writing versions into ``store``.

    Args:
        store: ``(secret name, version) -> value``, e.g. the Cloud Run emulator's ``secrets``.
    """

    def __init__(self, store: dict[tuple[str, str], str]) -> None:
        self.store = store
        self.secrets: dict[str, _Secret] = {}
        self.requests: list[str] = []
        self._failures: list[int] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``."""
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> FakeSecretManager:
        """Serve in a thread."""
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        server.daemon_threads = True
        server.fake = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(target=lambda: server.serve_forever(poll_interval=0.05), daemon=True)
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving (idempotent)."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)

    def fail_next(self, n: int = 1, status: int = 503) -> None:
        """Answer the next ``n`` requests with HTTP ``status``."""
        with self._lock:
            self._failures += [status] * n

    def enabled_versions(self, secret: str) -> list[int]:
        """Numbers of the versions of ``secret`` not destroyed."""
        with self._lock:
            s = self.secrets.get(secret)
            return [v.number for v in s.versions if v.state == 1] if s else []

    def add_version(self, secret: str, value: str, created: float | None = None) -> int:
        """Add a version directly (a test's setup), optionally back-dated."""
        with self._lock:
            s = self.secrets.setdefault(secret, _Secret(secret, {}))
            number = len(s.versions) + 1
            s.versions.append(_Version(number, created or time.time(), 1))
            self.store[(secret, str(number))] = value
            return number

    # -- request handling ----------------------------------------------------------------

    def handle(self, method: str, raw_path: str, body: bytes) -> tuple[int, bytes]:
        url = urlsplit(raw_path)
        path = unquote(url.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        self.requests.append(f"{method} {path}")
        try:
            with self._lock:
                if self._failures:
                    raise _Error(self._failures.pop(0), "injected fault")
                return 200, json.dumps(self._route(method, path, query, body)).encode()
        except _Error as exc:
            error = {"error": {"code": exc.status, "message": str(exc), "status": _STATUS.get(exc.status, "UNKNOWN")}}
            return exc.status, json.dumps(error).encode()

    def _route(self, method: str, path: str, query: dict[str, str], body: bytes) -> Any:
        if m := re.fullmatch(r"/v1/(projects/[^/]+)/secrets", path):
            if method == "POST":
                return self._create(f"{m[1]}/secrets/{query.get('secretId', '')}", body)
        if m := re.fullmatch(r"/v1/(projects/[^/]+/secrets/[^/:]+)", path):
            if method == "GET":
                return _secret_json(self._secret(m[1]))
        if m := re.fullmatch(r"/v1/(projects/[^/]+/secrets/[^/:]+):addVersion", path):
            if method == "POST":
                return self._add(m[1], body)
        if m := re.fullmatch(r"/v1/(projects/[^/]+/secrets/[^/:]+)/versions", path):
            if method == "GET":
                return self._list(m[1], query.get("filter", ""))
        if m := re.fullmatch(r"/v1/(projects/[^/]+/secrets/[^/:]+)/versions/([0-9]+):destroy", path):
            if method == "POST":
                return self._destroy(m[1], int(m[2]))
        raise _Error(404, f"the fake Secret Manager does not serve {method} {path}")

    def _secret(self, name: str) -> _Secret:
        if name not in self.secrets:
            raise _Error(404, f"Secret [{name}] not found or has no versions.")
        return self.secrets[name]

    def _create(self, name: str, body: bytes) -> Any:
        if name in self.secrets:
            raise _Error(409, f"Secret [{name}] already exists.")
        sent = json.loads(body or b"{}")
        if "automatic" not in sent.get("replication", {}) and "userManaged" not in sent.get("replication", {}):
            raise _Error(400, "Secret.replication is required")
        self.secrets[name] = _Secret(name, dict(sent.get("labels", {})))
        return _secret_json(self.secrets[name])

    def _add(self, name: str, body: bytes) -> Any:
        secret = self._secret(name)
        data = base64.b64decode(json.loads(body or b"{}").get("payload", {}).get("data", ""))
        version = _Version(len(secret.versions) + 1, time.time(), 1)
        secret.versions.append(version)
        self.store[(name, str(version.number))] = data.decode()
        return _version_json(name, version)

    def _list(self, name: str, filter_: str) -> Any:
        secret = self._secret(name)
        if filter_ not in ("", "state:ENABLED"):
            raise _Error(400, f"the fake supports no filter {filter_!r}")
        versions = [v for v in reversed(secret.versions) if not filter_ or v.state == 1]
        return {"versions": [_version_json(name, v) for v in versions], "totalSize": len(versions)}

    def _destroy(self, name: str, number: int) -> Any:
        secret = self._secret(name)
        version = next((v for v in secret.versions if v.number == number), None)
        if version is None:
            raise _Error(404, f"Secret Version [{name}/versions/{number}] not found.")
        if version.state == 3:
            raise _Error(400, f"Secret Version [{name}/versions/{number}] is in DESTROYED state.")
        version.state = 3
        self.store.pop((name, str(number)), None)
        return _version_json(name, version)


def _when(t: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(t, tz=dt.UTC)


def _secret_json(secret: _Secret) -> Any:
    msg = secretmanager_v1.Secret(
        name=secret.name, labels=secret.labels, create_time=_when(secret.created),
        replication=secretmanager_v1.Replication(automatic=secretmanager_v1.Replication.Automatic()),
    )
    return json.loads(secretmanager_v1.Secret.to_json(msg, use_integers_for_enums=True))


def _version_json(secret: str, version: _Version) -> Any:
    msg = secretmanager_v1.SecretVersion(
        name=f"{secret}/versions/{version.number}", create_time=_when(version.created), state=version.state
    )
    if version.state == 3:
        msg.destroy_time = _when(time.time())
    return json.loads(secretmanager_v1.SecretVersion.to_json(msg, use_integers_for_enums=True))


class _Handler(BaseHTTPRequestHandler):
    def _serve(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        fake: FakeSecretManager = self.server.fake  # type: ignore[attr-defined]
        status, payload = fake.handle(self.command, self.path, body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""
