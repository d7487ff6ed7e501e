"""Admitting a worker (dispatcher thread): its HELLO checked, then its WELCOME.

A connection proves which launched instance it is with the instance's token (an HMAC of
the dispatcher's challenge); a token is used up by the first connection that proves it.
A worker that proved its token but speaks another wire protocol (it runs another pycrew
version than the controller), or runs another Python minor version or cloudpickle major
version (see :mod:`pycrew.wire.runtime`), would fail every task, or worse: it is refused at once with
a STOP saying why, and its launch counts as failed (``on_refused``), so that a controller
whose workers all run another version raises a :class:`~pycrew.LaunchError` that says so
within seconds, instead of failing tasks.

With an initializer (the controller's ``initializer`` option), the WELCOME carries it and
the connection is INITIALIZING until the worker reports (INITIALIZED): on success it is
READY and offered tasks; on failure, or if the worker is lost, dropped or told to end
meanwhile, its launch counts as failed (``on_refused``, with the remote traceback), as a
worker that could not start: ``launch_max`` failures in a row raise a LaunchError quoting it.
The launch's ``seconds_launch`` ends with the HELLO (``on_initializing``); the scaler then
holds the initializer to ``seconds_initializer``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from pycrew.control.beat_rate import BeatRate
from pycrew.control.conn import CLOSED, INITIALIZING, READY, Conn, DispatcherSettings
from pycrew.control.launch_reports import INITIALIZER_PREFIX, REFUSED_PREFIX
from pycrew.wire import protocol as p
from pycrew.wire import runtime
from pycrew.wire.transport import Server

log = logging.getLogger("pycrew.control.dispatcher")


class Admission:
    """How the dispatcher admits workers (mixed into Dispatcher)."""

    settings: DispatcherSettings
    beats: BeatRate  # see pycrew.control.upkeep
    server: Server
    # instance -> (token, slot) of instances launched and not connected yet
    tokens: dict[str, tuple[str, int]]
    _on_connect: Callable[[str, dict[str, Any]], None]
    _on_refused: Callable[[str, str, bool], None] | None
    _on_initializing: Callable[[str], None] | None
    _drop: Callable[..., None]  # see pycrew.control.upkeep
    _send: Callable[[Conn, bytes], None]
    _visit_at: Callable[[Conn, float], None]
    _offer: Callable[[Conn], None]  # see pycrew.control.assignment
    _went_idle: Callable[[Conn, float], None]  # see pycrew.control.recall
    _welcome_frame: bytes | None = None  # see _welcome
    conns: dict[int, Conn]  # link id -> connection (see pycrew.control.dispatcher)
    _holding: set[int]  # see pycrew.control.recall
    # Connections in `conns` that proved a token (kept as they come and go: a tick counting
    # them scanned every connection, 450 us per tick at 5,000 workers).
    workers_admitted = 0

    def _hello(self, conn: Conn, hello: p.Hello) -> None:
        instance = hello.instance
        entry = self.tokens.get(instance)
        if entry is None:
            self._drop(conn, f"unknown instance {instance!r} (never launched, already connected once, or revoked)")
            return
        token, slot = entry
        if not p.verify_mac(token, conn.nonce, instance, hello.mac):
            self._drop(conn, f"bad token for instance {instance!r}")
            return
        del self.tokens[instance]  # used up: the instance may not connect again
        if hello.version != p.PROTOCOL_VERSION:
            self._refuse(conn, hello)
            return
        unfit = runtime.mismatch(hello.python, hello.cloudpickle)
        if unfit is not None:
            self._refuse(conn, hello, unfit)
            return
        conn.state = READY if self.settings.initializer is None else INITIALIZING
        conn.next_beat = time.monotonic() + self.beats.interval
        self._visit_at(conn, conn.next_beat)
        conn.link.limit = self.settings.bytes_max
        self.server.admitted(conn.link)
        conn.instance = instance
        self.workers_admitted += 1
        conn.slot = slot
        conn.host = hello.host
        conn.pid = hello.pid
        if hello.tasks_max is not None:
            conn.tasks_left = hello.tasks_max
        conn.info = {"host": conn.host, "pid": conn.pid, "slot": slot}
        if hello.nonce is not None:  # proof that this is the controller that launched it
            self._send(conn, p.encode_proof(token, hello.nonce, instance))
        self._send(conn, self._welcome())
        if conn.state == INITIALIZING:
            if self._on_initializing is not None:
                self._on_initializing(instance)
            return
        self._admitted(conn)

    def _welcome(self) -> bytes:
        """The WELCOME frame, the same for every worker: encoded once (it may carry a large initializer)."""
        frame = self._welcome_frame
        if frame is None:
            body: dict[str, object] = {
                **self.beats.settings(),  # the current ones: see pycrew.control.beat_rate
                "seconds_busy_silence": self.settings.seconds_busy_silence,
                "bytes_max": self.settings.bytes_max,
            }
            if self.settings.initializer is not None:
                body["initializer"] = self.settings.initializer
            frame = self._welcome_frame = p.encode_json(p.WELCOME, body)
        return frame

    def _admitted(self, conn: Conn) -> None:
        """The worker takes tasks from now on."""
        assert conn.instance is not None
        instance = conn.instance
        self._offer(conn)
        self._went_idle(conn, time.monotonic())  # it may find the queue empty, all prefetched
        self._on_connect(instance, conn.info)

    def _initialized(self, conn: Conn, report: p.InitReport) -> None:
        """The worker's report on its initializer (INITIALIZED)."""
        if conn.state != INITIALIZING:
            if conn.state == READY:
                self._drop(conn, "it reported an initializer it was not sent, or twice")
            return
        if report.status == "success":
            log.debug("worker %s (instance %s) ran its initializer in %.3f s", conn.slot, conn.instance, report.seconds)
            conn.info["seconds_initializer"] = report.seconds  # (for the slot's summary)
            conn.state = READY
            self._admitted(conn)
            return
        said = f"{report.error_type}: {report.error}" if report.error_type else report.error
        trace = report.traceback.rstrip()
        self._initializer_ended(conn, f"{said} (after {report.seconds:.3g} s)" + (f"\n{trace}" if trace else ""))

    def _initializer_ended(self, conn: Conn, why: str, explain: bool = False, stop: bool = True) -> None:
        """A worker's initializer failed, or the worker went before it reported: its launch failed.

        Args:
            why: what happened (a first line, then the remote traceback if any).
            explain: ask the launcher's monitor what became of the worker (it was lost).
            stop: tell the worker to stop (its link is still open).
        """
        reason = f"{INITIALIZER_PREFIX}{why}"
        told = self._on_refused is not None and conn.instance is not None  # the scaler warns of the failed launch
        log.log(logging.DEBUG if told else logging.WARNING, "worker %s (instance %s): %s", conn.slot, conn.instance,
                reason.partition("\n")[0])
        if stop:
            self._send(conn, p.encode_json(p.STOP, {"reason": "its initializer failed"}))
        conn.state = CLOSED
        conn.link.close()
        if self._on_refused is not None and conn.instance is not None:
            self._on_refused(conn.instance, reason, explain)

    def _refuse(self, conn: Conn, hello: p.Hello, unfit: str | None = None) -> None:
        """Refuse a worker that proved its token but speaks another wire protocol, or runs
        another Python minor version or cloudpickle major version (``unfit``: which, said)."""
        theirs = f"pycrew {hello.pycrew}" if hello.pycrew else "an older pycrew"
        said = "no wire protocol version" if hello.version is None else f"wire protocol {hello.version}"
        reason = REFUSED_PREFIX + (unfit or (
            f"it runs {theirs} ({said}) and this controller runs pycrew {p.PYCREW_VERSION} "
            f"(wire protocol {p.PROTOCOL_VERSION})"
        ))
        conn.instance = hello.instance
        log.warning("refusing worker connection %s (instance %s): %s", conn.link.id, conn.instance, reason)
        self._send(conn, p.encode_json(p.STOP, {"reason": reason}))
        conn.state = CLOSED  # it proved its token: not the rate-limited drop of a stranger
        conn.link.close()
        if self._on_refused is not None:
            self._on_refused(hello.instance, reason, False)

    def _forget(self, link_id: int) -> Conn | None:
        """Take a connection out of the table, closed or lost; returns it if it was there."""
        conn = self.conns.pop(link_id, None)
        self._holding.discard(link_id)  # (else only forgotten once the queue empties: see Recall._holders)
        if conn is not None and conn.instance is not None:
            self.workers_admitted -= 1
        return conn
