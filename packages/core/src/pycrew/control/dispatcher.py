"""The dispatcher: one thread that owns the listening socket, the task queue and the workers.

Workers dial one listening address (see :mod:`pycrew.wire.transport`); each connection is a
:class:`~pycrew.wire.transport.Link`. Everything about connections and the queue happens on the
dispatcher's thread; other threads hand it work through thread-safe deques and wake it through
a self-pipe, so a ``push`` never takes a lock the dispatcher holds for long.

Reliability: the ``nng`` transport's polyamorous pair socket may discard a message it cannot
deliver to a pipe (it queues two). NNG workers acknowledge every TASKS frame, at most
``Link.unacked_max`` frames go unacknowledged per pipe, and every worker heartbeat reports how
many task frames it received: a worker behind the count is disconnected and its tasks requeued
without penalty. (The ``socket`` transport never discards; the check costs nothing there.)
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import selectors
import threading
import time
from collections.abc import Callable
from typing import Any

from pycrew.control import callbacks, frame_loss
from pycrew.control.admission import Admission
from pycrew.control.assignment import Assignment
from pycrew.control.conn import CHALLENGED, CLOSED, INITIALIZING, READY, Conn, DispatcherSettings
from pycrew.control.demand import DemandWindow
from pycrew.control.quoting import said
from pycrew.control.recall import Recall
from pycrew.control.submissions import Submissions
from pycrew.control.tasks import Task
from pycrew.control.upkeep import Upkeep
from pycrew.loglimit import LogLimiter
from pycrew.wire import protocol as p
from pycrew.wire import transport
from pycrew.wire.transport import Link

log = logging.getLogger(__name__)


class Dispatcher(Admission, Assignment, Recall, Submissions, Upkeep, DemandWindow):
    """Owns the socket and the queue; resolves tasks through ``on_result``.

    Callbacks (all called on the dispatcher thread):
        on_result(task, payload_or_None, conn_info, local): a task finished or failed.
        on_connect(instance, info): a worker authenticated.
        on_disconnect(instance, crashed, reason): a worker left (``crashed``: without saying bye;
            ``reason``: the worker's own when it said bye, else what the dispatcher saw).
        on_tick(now): periodic maintenance (auto-scaling).
        on_ending(instance, reason): a worker ends after its running task (LEAVING): it takes no more
            tasks, so its place can be filled now; on_disconnect follows when it goes.
        on_refused(instance, reason, explain): a worker proved its token but was refused (another
            pycrew version), or its initializer failed (or it went while that ran): its launch
            failed; ``explain``: ask the launcher's monitor why (see pycrew.control.admission).
        on_initializing(instance): a worker authenticated and runs the controller's initializer;
            on_connect (or on_refused) follows when it reports.
        on_failure(error, tasks): the loop died of ``error``; ``tasks`` (queued, submitted, in flight,
            unresolved) are the owner's to resolve; called again, from the submitting thread, for later ones.

    No frame can end the loop: a frame that cannot be handled closes its own connection.
    """

    def __init__(
        self,
        settings: DispatcherSettings,
        on_result: Callable[[Task, p.Payload | None, Conn | None, tuple[str, str, str] | None], None],
        on_connect: Callable[[str, dict[str, Any]], None],
        on_disconnect: Callable[[str, bool, str], None],
        on_tick: Callable[[float], None],
        on_failure: Callable[[BaseException, list[Task]], None] | None = None,
        on_ending: Callable[[str, str], None] | None = None,
        on_refused: Callable[[str, str, bool], None] | None = None,
        on_initializing: Callable[[str], None] | None = None,
    ) -> None:
        self.settings = settings
        self._on_result = on_result
        self._on_connect = on_connect
        self._on_disconnect = on_disconnect
        self._on_tick = on_tick
        self._on_failure = on_failure
        self._on_ending = on_ending
        self._on_refused = on_refused
        self._on_initializing = on_initializing
        # instance -> (token, slot) of instances launched and not connected yet: used up by the
        # connection that proves it, revoked when its launch fails (at most the workers launching).
        self.tokens: dict[str, tuple[str, int]] = {}
        self.finished = False  # the loop has ended (stopped, or died of ``error``)
        self.refused = LogLimiter(log)
        self.conns: dict[int, Conn] = {}
        self.tasks_running = 0  # tasks in the connections' in_flight (see running())
        self.assigned_by_slot: dict[int, int] = {}  # tasks sent to each slot's workers (summary()'s assigned)
        self.on_silent: Callable[[str], None] | None = None  # a busy worker went silent: ask the platform
        # The task whose result the loop is unpickling (a __reduce__ of the user's runs then):
        # if that never returns, terminate() ends its future all the same (see _held_tasks).
        self.resolving: Task | None = None
        self._init_upkeep()  # see pycrew.control.upkeep
        # Connections that may have room for tasks, least loaded first: (tasks in flight, link id, version),
        # current while its version is the connection's ready_version (older ones are skipped when popped).
        # (Re)offered when it authenticates, when results or acknowledgements give it room, after it was given tasks.
        self._ready: list[tuple[int, int, int]] = []
        self._ready_limit = 0
        self._assign_more = False
        self._holding: set[int] = set()
        self._steal_pause_until = 0.0
        self.queue: collections.deque[Task] = collections.deque()
        self.submissions: collections.deque[Task] = collections.deque()
        self.inbox: collections.deque[Callable[[], None]] = collections.deque()
        self._wake_pending = False
        self._unheard = 0  # submissions since the last wake (see submit)
        self._idle = False  # nothing queued or running, a worker ready, after the last step
        self._init_demand()  # see pycrew.control.demand
        self._stop = False
        self.ewma: float | None = None
        self.result_bytes: float | None = None
        self.retries = 0
        self.error: BaseException | None = None
        self._rfd, self._wfd = os.pipe()
        # Held to write to the wake pipe and to close it: a late wake() must never write to a
        # reused number (a subprocess's error pipe, a user's file).
        self._pipe_lock = threading.Lock()
        os.set_blocking(self._rfd, False)
        try:
            self.server = transport.listen(
                settings.transport, settings.url, settings.tls, settings.bytes_max, settings.seconds_auth, self.wake
            )
        except BaseException:
            self._close_pipe()
            raise
        self._io: list[tuple[Callable[[int], None], int]] = []
        self.thread = threading.Thread(target=self._run, name="pycrew-dispatcher", daemon=True)

    # -- other threads --------------------------------------------------------------

    @property
    def address(self) -> str:
        """The URL workers dial, with the real port when port 0 was asked for."""
        return self.server.address

    def start(self) -> None:
        """Start the dispatcher thread."""
        self.thread.start()

    def wake(self) -> None:
        """Make the dispatcher thread look at its queues now."""
        if not self._wake_pending:
            self._wake_pending = True
            with self._pipe_lock, contextlib.suppress(OSError):  # full: the loop is awake already
                if self._wfd >= 0:  # else closed: the loop has ended, nothing left to wake
                    os.write(self._wfd, b"x")

    def call_soon(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the dispatcher thread (any thread)."""
        self.inbox.append(fn)
        self.wake()

    def authorize(self, instance: str, token: str, slot: int) -> None:
        """Allow one connection from ``instance`` proving ``token`` (any thread)."""
        self.tokens[instance] = (token, slot)

    def revoke(self, instance: str) -> None:
        """Forget an instance: it may no longer connect; if connected, disconnect it."""

        def do() -> None:
            self.tokens.pop(instance, None)
            for conn in list(self.conns.values()):
                if conn.instance == instance and conn.state != CLOSED:
                    self._stop_conn(conn, "revoked")

        self.call_soon(do)

    def stop(self, timeout: float = 5.0) -> None:
        """Tell every worker to stop, then close the socket and end the thread."""
        self._stop = True
        self.wake()
        if self.thread.is_alive() and threading.current_thread() is not self.thread:
            self.thread.join(min(timeout, threading.TIMEOUT_MAX))  # (seconds_terminate may be 1e10)
        self.server.close()
        if not self.thread.is_alive():  # else the loop closes the pipe as it ends
            self._close_pipe()

    def drop_instance(self, instance: str, reason: str) -> None:
        """Drop the connection of worker ``instance``, if it is open (dispatcher thread)."""
        for conn in list(self.conns.values()):
            if conn.instance == instance and conn.state in (READY, INITIALIZING):
                self._drop(conn, reason)

    def _close_pipe(self) -> None:
        """Close the wake pipe (once; later wakes write nothing)."""
        with self._pipe_lock:
            fds, self._rfd, self._wfd = (self._rfd, self._wfd), -1, -1
        for fd in fds:
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)

    def forget_in_fork(self) -> None:
        """In a child forked from this process: close the copies of the sockets and the wake
        pipe (see :meth:`pycrew.wire.transport.Server.forget_in_fork`); this copy never runs."""
        self.server.forget_in_fork()
        self._pipe_lock = threading.Lock()  # another thread may have held it at the fork
        self._close_pipe()  # the numbers may be reused: a late wake() must not write there

    # -- the loop -------------------------------------------------------------------

    def _run(self) -> None:
        callbacks.defer_on_this_thread()  # a future's done-callbacks must not hold this loop up
        sel = selectors.DefaultSelector()
        rfd = self._rfd  # open until this loop ends (see stop)
        sel.register(rfd, selectors.EVENT_READ, None)
        self.server.attach(sel, self)
        next_tick = 0.0
        try:
            while not self._stop:
                now = time.monotonic()
                due = next_tick if self._demand_at is None else min(next_tick, self._demand_at)
                timeout = 0.0 if self._assign_more and self.queue else max(0.0, min(due - now, 0.25))
                events = sel.select(timeout)
                self._wake_pending = False
                io = []
                for key, mask in events:
                    if key.data is None:  # the wake pipe: empty it before looking at the queues
                        with contextlib.suppress(BlockingIOError):
                            os.read(rfd, 4096)
                    else:
                        io.append((key.data, mask))
                self._io = io
                self._step()
                now = time.monotonic()
                if now >= next_tick:
                    next_tick = now + 0.1
                    self._maintain(now)  # it scales out too, unless the demand window is open
                self._demand_due(now)
        except BaseException as exc:  # whatever ends the loop must not hang the user
            log.exception("the pycrew dispatcher failed")
            self.error = exc
        finally:
            self._end_crash_holds()  # (see pycrew.control.crash_hold)
            self.finished = True
            reason = "controller terminated" if self.error is None else f"the controller's dispatcher failed: {self.error!r}"
            for conn in list(self.conns.values()):
                with contextlib.suppress(Exception):  # best effort: the workers time out otherwise
                    self._send(conn, p.encode_json(p.STOP, {"reason": reason}))
            sel.close()
            if self._stop:  # stop() asked, and may have stopped waiting for this thread
                self._close_pipe()
            if self.error is not None:
                self._abandon(self._held_tasks())

    def _held_tasks(self) -> list[Task]:
        """Every unresolved task this dispatcher holds (after the loop ended; if it has not, one
        by one from the queue, so that none it moves there meanwhile is cleared unseen)."""
        tasks: list[Task] = []
        for _ in range(2):  # (twice: a loop still running moves submissions to the queue)
            with contextlib.suppress(IndexError):
                while True:
                    tasks.append(self.queue.popleft())
            tasks += self._drain_submissions()
        tasks += self._crash_held_tasks()
        for conn in self.conns.values():
            tasks.extend(self._take_in_flight(conn))
        held = [t for t in tasks if not t.resolved]
        stuck = self.resolving  # the loop did not end: it is still unpickling this task's result
        elsewhere = threading.current_thread() is not self.thread  # (not an observer of its result terminating)
        if stuck is not None and elsewhere and self.thread.is_alive() and (stuck.future is None or not stuck.future.done()):
            held.append(stuck)
        return held

    def _step(self) -> None:
        arrived = self._queue_submissions()
        while self.inbox:  # a call sees every task pushed before it was made: queue those first
            call = self.inbox.popleft()
            arrived = self._queue_submissions() or arrived
            call()
        io, self._io = self._io, []
        for callback, mask in io:
            callback(mask)
        self.server.poll()
        if self.queue:
            self._assign()
            if arrived and self.queue:
                self._pushed_and_queued(time.monotonic())
        # Idle with a worker ready: only then does a yield in submit() start tasks sooner.
        # With none, the tasks wait for a launch, and a loop of pushes must reach the
        # scaler as one batch (one job array), which a yield could split in two.
        self._idle = not self.queue and not self.tasks_running and bool(self._ready)

    # -- the transport's reports (transport.Handler) ----------------------------------

    def link_opened(self, link: Link) -> None:
        """A worker connected: challenge it."""
        conn = Conn(link, time.monotonic())
        self.conns[link.id] = conn
        self._visit_at(conn, conn.opened + self.settings.seconds_auth)
        self._send(conn, p.encode_challenge(conn.nonce))

    def frame_received(self, link: Link, frame: p.Frame) -> None:
        """Handle one frame from a worker."""
        conn = self.conns.get(link.id)
        if conn is None or conn.state == CLOSED:
            return
        try:
            self._handle(conn, frame)
        except p.ProtocolError as exc:
            self._drop(conn, f"protocol error: {exc}")
        except Exception as exc:  # no frame may end the loop: this connection goes instead
            log.exception("handling a frame from worker connection %s (instance %s) failed", link.id, conn.instance)
            self._drop(conn, f"its frame could not be handled: {said(exc)}")

    def frame_arriving(self, link: Link) -> None:
        """A large frame is arriving from a worker: it is alive (a 400 MB result took longer
        than the silence timeout to arrive on NNG), and the time it takes is not its task's
        (a task that returned 300 MB in its time limit was timed out as the result arrived)."""
        conn = self.conns.get(link.id)
        if conn is not None and conn.state in (READY, INITIALIZING):
            conn.last_seen = now = time.monotonic()
            if conn.in_flight:
                conn.progress = now

    def link_closed(self, link: Link) -> None:
        """A worker's connection is gone."""
        if (lost := self._forget(link.id)) is not None:
            self._lost(lost)

    def _handle(self, conn: Conn, frame: p.Frame) -> None:
        kind = p.kind(frame)
        conn.last_seen = time.monotonic()
        if conn.state == CHALLENGED:
            if kind != p.HELLO:
                self._drop(conn, "first frame was not HELLO")
                return
            self._hello(conn, p.parse_hello(frame))
            return
        if kind == p.RESULTS:
            records = p.decode_records(frame)
            if records:
                self.record_result_bytes(len(frame), len(records))
            self._results(conn, records)
        elif kind == p.BEAT:
            if len(frame) >= 9:
                received = int.from_bytes(frame[1:9], "little")
                if received > conn.frames_acked and conn.link.unacked_max is not None:
                    self._offer(conn)  # acknowledged frames may let it take more
                conn.frames_acked = max(conn.frames_acked, received)
                if conn.link.unacked_max is not None and received < conn.frames_sent:
                    if frame_loss.had_time_to_arrive(conn, self.beats.interval, time.monotonic()):
                        lost = f"lost task frames ({received} of {conn.frames_sent} arrived)"
                        self._drop(conn, lost, blame=frame_loss.blamed(conn))
        elif kind == p.RETURNED:
            self._returned(conn, p.decode_ids(frame))
        elif kind == p.LEAVING:
            why, unstarted = p.parse_leaving(frame)
            if conn.state == INITIALIZING:  # it would end right after: not a worker to wait for
                self._initializer_ended(conn, f"the worker was told to end while its initializer ran: {why}")
            self._ending(conn, why, unstarted)
        elif kind == p.INITIALIZED:
            self._initialized(conn, p.parse_initialized(frame))
        elif kind == p.BYE:
            body = p.decode_json(frame)
            reason = body.get("reason")
            conn.exit_reason = reason[:500] if isinstance(reason, str) else ""
            log.debug("worker %s says bye: %s", conn.instance, conn.exit_reason)
            self._leaving(conn)
        else:
            self._drop(conn, f"unexpected frame kind {kind}")

    def _results(self, conn: Conn, records: list[tuple[int, p.Payload]]) -> None:
        for task_id, payload in records:
            task = conn.in_flight.pop(task_id, None)
            if task is not None:
                self.tasks_running -= 1
                conn.bytes_in_flight -= len(task.payload)
            if task is None or task.resolved:
                continue  # cancelled or timed out meanwhile; its result is not wanted
            self.resolving = task
            self._on_result(task, payload, conn, None)
        self.resolving = None
        conn.progress = now = time.monotonic()
        conn.served = True
        conn.stalled = conn.recalling = False  # its long task (if any) has ended: see recall
        if not conn.in_flight:  # every task sent came back, so every frame sent arrived
            conn.frames_acked = conn.frames_sent
        if conn.stop_by is not None and not any(t.resolved for t in conn.in_flight.values()):
            conn.stop_by = None
        self._trim(conn)  # a backlog sent by an average of shorter tasks: see recall
        self._offer(conn)
        self._went_idle(conn, now)  # the end of a batch: see recall
        # The queue is assigned once per loop turn, after every frame that arrived was
        # read: fewer, fuller TASKS frames, and never a burst of frames to one NNG pipe
        # (whose queue would discard them).
