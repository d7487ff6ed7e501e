"""The dashboard's HTTP server: the page, its JSON, and ``/metrics``, from the controller's process.

Standard library only (:class:`http.server.ThreadingHTTPServer` on a daemon thread),
plus one more daemon thread that samples the controller once a second. Routes:

- ``/``: the page (one HTML document, inline script and style, nothing fetched elsewhere);
- ``/api/state``: what the page shows, as JSON (the page polls it every second);
- ``/metrics``: Prometheus text format (see :mod:`pycrew.dashboard.prometheus`).

On a loopback address no token is needed, but requests must name a loopback host (so
that a web page cannot read the dashboard through DNS rebinding). On any other address
every request needs the token: ``?token=...`` in the URL (``dashboard_link`` carries it)
or an ``Authorization: Bearer ...`` header.
"""

from __future__ import annotations

import contextlib
import hmac
import ipaddress
import json
import logging
import re
import secrets
import socket
import socketserver
import sys
import threading
import time
import weakref
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

from pycrew.dashboard import prometheus
from pycrew.dashboard.bodies import Pace, Rendered
from pycrew.dashboard.state import DashboardState
from pycrew.errors import ControllerError
from pycrew.network import routable_address

if TYPE_CHECKING:
    from pycrew.control.controller import Controller

log = logging.getLogger(__name__)
#: A token in a logged request line's query (``token=...``), blanked out before logging.
_TOKEN_IN_QUERY = re.compile(r"(\btoken=)[^&\s]*")

#: Seconds between two samples of the controller (throughput points, events, CPU/memory).
SECONDS_SAMPLE = 1.0
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address to listen on) is this machine only."""
    if host.strip("[]").lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _page() -> bytes:
    return resources.files("pycrew.dashboard").joinpath("page.html").read_bytes()


class _Server(ThreadingHTTPServer):
    """One thread per connection, as many as :attr:`connections_max`; every connection is
    closed with the server, so that nothing a client left open outlives the controller.

    A connection that has not yet made an allowed request (with the token, or for a
    loopback host) gives its place to a new one when all are taken, oldest first: clients
    that connect and stall, or trickle a request a byte at a time, cannot lock out the page
    and its scrapers; only connections that were let in count against the others."""

    daemon_threads = True
    dashboard: Dashboard
    #: Connections served at once (a browser tab holds one or two, a Prometheus scraper
    #: one); more are closed as they arrive, so that idle clients cannot pile up threads.
    connections_max = 64
    #: Connections the kernel holds before they are accepted (socketserver's default is 5:
    #: a burst of scrapers or tabs then waited a second for a SYN retry).
    request_queue_size = connections_max
    #: Seconds between two warnings about refused connections.
    seconds_warning = 60.0

    def __init__(self, address: tuple[str, int], ipv6: bool) -> None:
        if ipv6:
            self.address_family = socket.AF_INET6
        self._open: dict[Any, bool] = {}  # connection -> whether it made an allowed request (insertion order: oldest first)
        self._open_lock = threading.Lock()
        self._refused = 0
        self._next_warning = 0.0
        self.pace = Pace()  # (see pycrew.dashboard.bodies)
        super().__init__(address, _Handler)

    def verify_request(self, request: Any, client_address: Any) -> bool:
        with self._open_lock:
            if len(self._open) >= self.connections_max:
                stalled = next((c for c, allowed in self._open.items() if not allowed), None)
                if stalled is not None:  # it has not made an allowed request yet: the new one takes its place
                    del self._open[stalled]
                    with contextlib.suppress(OSError):
                        stalled.shutdown(socket.SHUT_RDWR)  # its thread's read returns, and the thread ends
                    log.debug("dashboard: all %d connections taken; closed one that made no allowed request", self.connections_max)
                    self._open[request] = False
                    return True
                self._refused += 1
                now = time.monotonic()
                if now >= self._next_warning:  # one line a minute, however many are refused
                    log.warning(
                        "dashboard: %d connections are open already; %d new one(s) closed (the last from %s) "
                        "since the last warning; the next is in %g s at the earliest",
                        len(self._open), self._refused, client_address[0], self.seconds_warning,
                    )
                    self._refused, self._next_warning = 0, now + self.seconds_warning
                return False
            self._open[request] = False
        return True

    def allowed(self, request: Any) -> None:
        """``request`` (a connection) made an allowed request: it keeps its place."""
        with self._open_lock:
            if request in self._open:
                self._open[request] = True

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.pop(request, None)
        super().shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection's handler failed outside the answer (socketserver printed a traceback
        to stderr): a client that reset or dropped its connection is a debug line."""
        error = sys.exc_info()[1]
        if isinstance(error, OSError):  # ConnectionResetError, BrokenPipeError, a timeout, a closed socket
            log.debug("dashboard client %s: %s", client_address[0], error)
        else:
            log.error("dashboard: a request from %s failed", client_address[0], exc_info=True)

    def forget_in_fork(self) -> None:
        """In a child forked from the controller's process: close this process's copies of the
        listening socket and the connections, sending nothing (the parent's stay open). A
        long-lived child kept the port, and clients' connections, open after the parent closed them."""
        self._open_lock = threading.Lock()  # a thread the child does not have may have held it
        connections, self._open = list(self._open), {}
        for connection in [self.socket, *connections]:
            with contextlib.suppress(OSError):
                connection.close()

    def close_connections(self) -> None:
        """End every open connection: its thread's read returns and the thread ends."""
        with self._open_lock:
            connections = list(self._open)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def server_bind(self) -> None:
        # HTTPServer.server_bind also looks up the host's fully qualified name, which can
        # wait on DNS; the name is only used in CGI variables, which this server has none of.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "pycrew-dashboard"
    protocol_version = "HTTP/1.1"
    #: Seconds a connection may stay silent (the page polls every second) before it is closed.
    timeout = 60.0
    #: TCP_NODELAY: an answer's headers and body go out in two writes; with Nagle's
    #: algorithm the body of an answer on a kept-alive connection waited for the client's
    #: delayed acknowledgement (about 40 ms a request).
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        """The standard library's request lines, at DEBUG, with any token in them blanked out."""
        shown = tuple(_TOKEN_IN_QUERY.sub(r"\1<token>", a) if isinstance(a, str) else a for a in args)
        log.debug("dashboard %s: " + format, self.client_address[0], *shown)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        if self.close_connection:  # refused (see _allowed): the client hears it, and does not reuse the connection
            self.send_header("Connection", "close")
        if content_type.startswith("text/html"):
            # Nothing may come from elsewhere: inline script and style, requests to this server only.
            self.send_header(
                "Content-Security-Policy",
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            )
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _refuse(self, status: int, message: str) -> None:
        self._send(status, (message + "\n").encode(), "text/plain; charset=utf-8")

    def _allowed(self, query: dict[str, list[str]]) -> bool:
        """Whether the request may be answered; if not, it is refused and its connection closed
        (a client that may not come in does not keep a place: see :class:`_Server`)."""
        dashboard = self.server.dashboard
        if dashboard.token is None:
            host = self.headers.get("Host", "")
            name = host.rsplit(":", 1)[0] if host.count(":") == 1 or host.startswith("[") else host
            if name and not is_loopback(name):
                self.close_connection = True
                self._refuse(
                    HTTPStatus.FORBIDDEN,
                    f"the pycrew dashboard listens on a loopback address and answers only requests for a "
                    f"loopback host name, not Host: {host!r}; open {dashboard.link}",
                )
                return False
            return True
        given = query.get("token", [""])[0]
        auth = self.headers.get("Authorization", "")
        if not given and auth.lower().startswith("bearer "):
            given = auth[7:].strip()
        if given and hmac.compare_digest(given.encode(), dashboard.token.encode()):
            return True
        self.close_connection = True
        self._refuse(
            HTTPStatus.UNAUTHORIZED,
            "the pycrew dashboard needs its token: open the controller's dashboard_link (it ends in ?token=...), "
            "or send the header 'Authorization: Bearer <token>'" + (" (the token given is wrong)" if given else ""),
        )
        return False

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        if not self._allowed(parse_qs(url.query)):
            return  # at once: refused requests taking turns kept allowed ones 2 s each in a flood of them
        self.server.pace.wait()
        self.server.allowed(self.connection)
        dashboard = self.server.dashboard
        try:
            if url.path in ("/", "/index.html"):
                self._send(HTTPStatus.OK, dashboard.page, "text/html; charset=utf-8")
            elif url.path == "/api/state":
                self._send(HTTPStatus.OK, dashboard.state_body.body(), "application/json")
            elif url.path == "/metrics":
                self._send(HTTPStatus.OK, dashboard.metrics_body.body(), prometheus.CONTENT_TYPE)
            else:
                self._refuse(
                    HTTPStatus.NOT_FOUND, f"no such page {url.path!r}: the dashboard serves /, /api/state and /metrics"
                )
        except (BrokenPipeError, ConnectionResetError):  # the browser went away mid-answer: nothing to tell it
            log.debug("dashboard client %s went away", self.client_address[0])
        except ReferenceError:  # its controller was dropped and is being terminated (see pycrew.control.release)
            self._refuse(HTTPStatus.SERVICE_UNAVAILABLE, f"controller {dashboard.name!r} has ended")
        except Exception as exc:
            log.exception("dashboard of controller %r failed to answer %s", dashboard.name, url.path)
            self._refuse(HTTPStatus.INTERNAL_SERVER_ERROR, f"the dashboard failed: {type(exc).__name__}: {exc}")

    def do_HEAD(self) -> None:
        """As GET, without the body (uptime checks, ``curl -I``)."""
        self.do_GET()


class Dashboard:
    """The live page and ``/metrics`` of one controller (built by the controller's ``start``).

    Args:
        controller: the controller to show.
        port: the port to listen on; 0 picks a free one.
        host: the address to listen on; on anything but a loopback address every request
            needs the token in :attr:`link`.

    Raises:
        ControllerError: the address cannot be listened on (naming the options to change).
    """

    def __init__(self, controller: Controller, port: int, host: str) -> None:
        self.name = controller.name
        self.host = host
        self.token: str | None = None if is_loopback(host) else secrets.token_urlsafe(24)
        listen = host.strip("[]")
        try:
            self.server = _Server((listen, port), ipv6=":" in listen)
        except OSError as exc:
            raise ControllerError(
                f"controller {controller.name!r}: the dashboard cannot listen on {host}:{port}: {exc}; "
                "choose another port with dashboard=<port> (dashboard=True picks a free one) "
                "or another address with dashboard_host="
            ) from exc
        self.server.dashboard = self
        self.port: int = self.server.server_address[1]
        self.page = _page()
        # Weakly, as the dispatcher does: its threads must not keep a dropped controller (pycrew.control.release).
        self._controller = weakref.proxy(controller)
        self.state = DashboardState(self._controller)
        state = self.state  # (the bodies hold the state, not this dashboard)
        self.state_body = Rendered(lambda: json.dumps(state.snapshot(), allow_nan=False, default=str).encode())
        self.metrics_body = Rendered(lambda: prometheus.render(state).encode())
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def link(self) -> str:
        """The page's URL (with ``?token=...`` when one is needed)."""
        host = self.host.strip("[]")
        if host in ("0.0.0.0", "::", ""):  # every interface: name one others can reach
            host = routable_address()
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}/" + (f"?token={self.token}" if self.token else "")

    def start(self) -> None:
        """Serve and sample on daemon threads; the controller hands each resolved task to :attr:`state`."""
        # Rebound, not changed in place: the dispatcher's thread may be iterating the old list.
        self._controller._result_listeners = [*self._controller._result_listeners, self.state.on_result]
        serve = threading.Thread(
            target=self.server.serve_forever, args=(0.1,), name=f"pycrew-dashboard-{self.name}", daemon=True
        )
        sample = threading.Thread(target=self._sample, name=f"pycrew-dashboard-sampler-{self.name}", daemon=True)
        self._threads = [serve, sample]
        for thread in self._threads:
            thread.start()
        log.info("controller %r: dashboard at %s", self.name, self.link.split("?")[0] + (
            " (it needs the token in the controller's dashboard_link)" if self.token else ""))

    def _sample(self) -> None:
        while not self._stop.is_set():
            try:
                self.state.sample(time.monotonic())
            except ReferenceError:  # its controller was dropped: it closes this at once
                return
            except Exception:  # keep the page alive; the log says what went wrong
                log.exception("dashboard of controller %r: sampling failed", self.name)
            self._stop.wait(SECONDS_SAMPLE)

    def close(self) -> None:
        """Stop serving and sampling, and close the port (idempotent; never raises)."""
        self._stop.set()
        with contextlib.suppress(ReferenceError):  # a dropped controller's: it has no listeners to mind
            listeners = self._controller._result_listeners
            self._controller._result_listeners = [f for f in listeners if f != self.state.on_result]
        try:
            if self._threads:
                self.server.shutdown()
            self.server.server_close()
            self.server.close_connections()
        except OSError as exc:
            log.warning("dashboard of controller %r: closing its port failed: %s", self.name, exc)
        for thread in self._threads:
            thread.join(timeout=5.0)

    def forget_in_fork(self) -> None:
        """In a child forked from the controller's process: close this process's copies of
        the port and the connections (the parent's keep serving); this copy never serves."""
        self._threads = []
        self._stop.set()
        self.server.forget_in_fork()
