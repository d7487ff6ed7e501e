"""The dispatcher's upkeep of its workers: losing and dropping them, requeueing their
tasks, heartbeats, time limits and cancelling (all on the dispatcher's thread)."""

from __future__ import annotations

import collections
import heapq
import logging
import time
from collections.abc import Callable

from pycrew.control.beat_rate import BeatRate
from pycrew.control.conn import CHALLENGED, CLOSED, INITIALIZING, LEAVING, READY, Conn, DispatcherSettings
from pycrew.control.crash_hold import CrashHold
from pycrew.control.launch_reports import WALL_FIRST
from pycrew.control.tasks import ById, Task
from pycrew.loglimit import LogLimiter
from pycrew.wire import protocol as p
from pycrew.wire.transport import Server, busy_not_gone

log = logging.getLogger("pycrew.control.dispatcher")

#: The longest a dispatcher loop turn normally takes (its select waits at most 0.25 s),
#: and a gap between two upkeep ticks that means the loop could not run (see _credit_stall).
SECONDS_TURN = 0.25
SECONDS_STALL = 1.0
#: States of an authenticated connection that heartbeats keep alive.
LIVE = (READY, INITIALIZING)


class Upkeep(CrashHold):
    """What the dispatcher does to keep its connections healthy (mixed into Dispatcher)."""

    settings: DispatcherSettings
    conns: dict[int, Conn]
    queue: collections.deque[Task]
    retries: int
    tasks_running: int  # the sum of every connection's in_flight, kept up to date
    server: Server
    _on_result: Callable[[Task, p.Payload | None, Conn | None, tuple[str, str, str] | None], None]
    _on_disconnect: Callable[[str, bool, str], None]
    _on_ending: Callable[[str, str], None] | None
    _on_tick: Callable[[float], None]
    on_silent: Callable[[str], None] | None  # see pycrew.control.crash_watch (CrashWatch.silent)
    _recall_stuck: Callable[[float], None]  # see pycrew.control.recall
    _returned: Callable[[Conn, list[int]], None]  # see pycrew.control.recall
    refused: LogLimiter  # warnings about connections that never authenticated, per dispatcher
    _initializer_ended: Callable[..., None]  # see pycrew.control.admission
    workers_admitted: int  # see pycrew.control.admission
    _forget: Callable[[int], Conn | None]  # see pycrew.control.admission
    _welcome_frame: bytes | None  # see pycrew.control.admission

    # -- leaving, losing, dropping ----------------------------------------------------

    def _take_in_flight(self, conn: Conn) -> list[Task]:
        """Empty ``conn``'s in_flight (keeping the running count) and return its tasks in order."""
        tasks = list(conn.in_flight.values())
        self.tasks_running -= len(tasks)
        conn.in_flight.clear()
        conn.bytes_in_flight = 0
        return tasks

    def _requeue(self, tasks: list[Task], blame_first: bool, reason: str, lost: str | None = None,
                 stuck: Task | None = None) -> None:
        """Put a lost worker's unresolved tasks back at the front of the queue (``lost``: the
        instance of a worker whose connection was lost: a task crashed out waits for why).

        ``blame_first``: the worker died, and the first of them, the one it ran, counts a crash.
        Unless it held several: a worker sends the results of short tasks in batches, so the
        tasks before the one that killed it may have ended unheard of. Then none is blamed
        (an innocent task would crash out, the culprit go on killing workers); each becomes a
        *suspect*, which runs alone on a worker (see Assignment._assign), where a death is its own.
        ``tasks`` are all it held, in order, resolved ones too (a cancelled task it still ran may
        be the one that killed it). It had not started those past the results it may have held
        unsent: they go back unpenalised, as given-back tasks do; so do those after ``stuck``, the
        task it was replaced for not stopping in its time limit, which they waited behind (a worker
        sends every result it holds before a task with a time limit starts: that task ran).
        """
        back: list[Task] = []
        several = len(tasks) > 1
        started = p.RESULTS_UNSENT_MAX + 1 if stuck is None else next(i for i, t in enumerate(tasks) if t is stuck) + 1
        ran, unstarted = tasks[:started], tasks[started:]
        for task in ran:
            if task.resolved:
                continue
            if task.cancel_back is not None and task is not tasks[0]:  # maybe never started (see _cancel_back)
                self._cancel_back(task)
                continue
            if blame_first and several:
                task.suspect = True
            elif blame_first:
                task.crashes += 1
                if task.crashes >= self.settings.crashes_max:
                    error = ("crash", f"its worker died {task.crashes} time(s) while running it ({reason})", "TaskCrashError")
                    self._hold_crash(lost, task, error, time.monotonic())
                    continue
            self.retries += 1
            back.append(task)
        self._unstarted_back(unstarted, back)

    def _unstarted_back(self, tasks: list[Task], back: list[Task]) -> None:
        """Put tasks a worker did not start back at the front of the queue (after ``back``),
        unpenalised: their attempt not counted. But not one recalled to be cancelled if not
        started (``shutdown(cancel_futures=True)``: see Recall.recall_to_cancel): cancelled."""
        for task in tasks:
            if not task.resolved:
                task.attempts -= 1
                if task.cancel_back is not None:
                    self._cancel_back(task)
                else:
                    back.append(task)
        self.queue.extendleft(reversed(back))

    def _cancel_back(self, task: Task) -> None:
        """A task recalled to be cancelled if not started whose worker went before it gave the
        task back: cancelled, not run again (but for the one it ran: see _requeue)."""
        self._on_result(task, None, None, ("cancel", task.cancel_back or "", "CancelledError"))

    def _leaving(self, conn: Conn) -> None:
        """The worker said goodbye (BYE): it ends between tasks, after its last result.

        What it still holds never ran: tasks it had not started (the goodbye lists them) and
        tasks that crossed the goodbye on the wire. They go back to the front of the queue
        unpenalised, as given-back tasks do: not retries, their attempt not counted.
        """
        if conn.state != READY:
            return
        conn.state = LEAVING
        self._unstarted_back(self._take_in_flight(conn), [])
        why = conn.exit_reason or "the worker said goodbye"
        if not conn.served and self.queue and why.startswith(p.WALL_REACHED):
            why = WALL_FIRST + why  # its start takes longer than seconds_wall: the next one's will too
        if conn.instance:
            self._on_disconnect(conn.instance, False, why)
        conn.link.close()
        conn.state = CLOSED

    def _ending(self, conn: Conn, reason: str, unstarted: list[int]) -> None:
        """The worker ends after its running task (told to by its platform or a user: SIGTERM).

        It is sent nothing more; the tasks it had not started go to the front of the queue
        now, unpenalised, and its owner hears of it (``on_ending``: its place in the pool can
        be filled at once). Its running task's result may still come, then its goodbye; if
        its link goes first (the platform killed it), that task counts a crash, as any other.
        """
        if conn.state != READY:
            return
        log.info("worker %s is ending: %s", conn.instance, reason)
        first, conn.ending = not conn.ending, True
        conn.exit_reason = reason
        conn.tasks_left = 0
        self._returned(conn, unstarted)
        if first and conn.instance and self._on_ending is not None:
            self._on_ending(conn.instance, reason)

    def _lost(self, conn: Conn) -> None:
        """The link of ``conn`` is gone."""
        if conn.state == INITIALIZING:
            said = f": it said {conn.exit_reason!r}" if conn.exit_reason else " (it crashed, exited or was killed)"
            self._initializer_ended(conn, f"the worker's connection was lost while its initializer ran{said}", True, False)
        elif conn.state == READY:
            tasks = self._take_in_flight(conn)
            if conn.ending:  # the task's error says why (see _ending)
                reason = f"it was ending ({conn.exit_reason}) and was killed before its task ended"
                self._requeue(tasks, blame_first=True, reason=reason, lost=conn.instance)
            else:
                reason = "its connection was lost without a goodbye (crashed or killed)"
                self._requeue(tasks, blame_first=True, reason="connection lost", lost=conn.instance)
            if conn.instance:
                self._on_disconnect(conn.instance, True, reason)
        conn.state = CLOSED

    def _drop(self, conn: Conn, reason: str, blame: bool = True, stuck: Task | None = None) -> None:
        """Close a connection that misbehaved or timed out (its unresolved tasks are requeued;
        ``stuck``: the task it did not stop, which those after it waited behind, unstarted)."""
        if conn.state == CHALLENGED:  # never authenticated: anyone can cause this, so rate-limited
            self.refused.warning("dropping connection %s before authentication: %s", conn.link.id, reason)
        else:
            log.warning("dropping worker connection %s (instance %s): %s", conn.link.id, conn.instance, reason)
        if conn.state == READY:
            tasks = self._take_in_flight(conn)
            self._requeue(tasks, blame_first=blame, reason=reason, stuck=stuck)
            if conn.instance:
                self._on_disconnect(conn.instance, True, f"dropped by the dispatcher: {reason}")
        elif conn.state == INITIALIZING:
            self._initializer_ended(conn, f"the worker was dropped while its initializer ran: {reason}", True, False)
        conn.state = CLOSED
        conn.link.close()

    def _stop_conn(self, conn: Conn, reason: str) -> None:
        self._send(conn, p.encode_json(p.STOP, {"reason": reason}))
        self._drop(conn, reason)

    def _send(self, conn: Conn, frame: bytes) -> None:
        conn.link.send(frame)

    # -- periodic ---------------------------------------------------------------------

    # Each tick looks only at the connections that have something due: a heap of visits
    # (when each connection next needs a look: its heartbeat, its heartbeat or HELLO
    # deadline, its removal once closed) and the set of connections running a task with a
    # time limit or holding a cancelled one. Idle or busy, a thousand workers cost a tick
    # only the few whose time has come. Each connection has one live visit (``visit_at``);
    # an entry whose time is not its connection's ``visit_at`` is stale and skipped.

    _visits: list[tuple[float, int]]  # (when, link id)
    _watched: set[int]  # link ids whose tasks have time limits, or that must give a task back
    _holding: set[int]  # link ids of connections sent more than one task (see pycrew.control.recall)
    _maintained_at: float  # when _maintain last ran (see _credit_stall)
    beats: BeatRate  # the heartbeats' interval and timeout now

    def _init_upkeep(self) -> None:
        settings = self.settings
        self._visits = []
        self._watched = set()
        self._crash_held = {}
        self._maintained_at = time.monotonic()
        self.beats = BeatRate(settings.seconds_heartbeat, settings.seconds_heartbeat_timeout, settings.heartbeats_per_second)

    def _visit_at(self, conn: Conn, when: float) -> None:
        """Look at ``conn`` at (the first tick after) ``when`` instead of its earlier plan."""
        conn.visit_at = when
        heapq.heappush(self._visits, (when, conn.link.id))

    def _watch(self, conn: Conn) -> None:
        """Check ``conn``'s running task against its time limit, or its cancel deadline, every tick."""
        self._watched.add(conn.link.id)

    def _maintain(self, now: float) -> None:
        gap = now - self._maintained_at
        self._maintained_at = now
        if gap > SECONDS_STALL:
            self._credit_stall(now, gap - SECONDS_TURN)
        if self._watched:  # first: a task past its time limit is its worker's reason to go
            for link_id in list(self._watched):
                conn = self.conns.get(link_id)
                if conn is None or conn.state != READY or not conn.in_flight:
                    self._watched.discard(link_id)  # nothing running: a new task with a limit re-adds it
                else:
                    self._overdue(conn, now)
        visits = self._visits
        while visits and visits[0][0] <= now:
            when, link_id = heapq.heappop(visits)
            conn = self.conns.get(link_id)
            if conn is not None and conn.visit_at == when:
                self._visit(conn, now)
        # Workers only: connections not authenticated (anyone can open thousands) get no beats,
        # and stretched everyone's silence timeout (2,500 of them: 5 s became 45 s).
        if self.beats.update(self.workers_admitted, now):
            self._new_beat_rate(now, self.workers_admitted)
        self._recall_stuck(now)
        if self._crash_held:
            self._crashes_overdue(now)
        self.server.maintain(now)
        self._on_tick(now)

    def _new_beat_rate(self, now: float, workers: int) -> None:
        """The heartbeats' interval changed (the number of workers did): new workers hear of
        it in their WELCOME, connected ones in the next beat each gets, which comes no later
        than it did (a shorter interval brings every connection's next beat forward)."""
        self._welcome_frame = None
        log.info(
            "%d worker connections: heartbeats every %g s, silence timeout %g s (see pycrew.control.beat_rate)",
            workers, self.beats.interval, self.beats.timeout,
        )
        soon = now + self.beats.interval
        for conn in self.conns.values():
            if conn.state in LIVE and conn.next_beat > soon:
                conn.next_beat = soon
                if conn.visit_at > soon:
                    self._visit_at(conn, soon)

    def _credit_stall(self, now: float, seconds: float) -> None:
        """The loop did not turn for ``seconds``: another thread of this process held the GIL
        (a long call into C code), or one turn took that long (a huge result to unpickle).
        Silence then is no worker's fault: every deadline that counts from a worker's last
        word moves on by the stall."""
        if seconds > self.beats.interval:
            log.warning(
                "the dispatcher could not run for %.1f s (a long call into C code holding the GIL in this process, "
                "a very large result to unpickle, or a turn of its own with that much to do); the workers' silence "
                "meanwhile is not held against them", seconds,
            )
        for conn in self.conns.values():
            conn.last_seen = min(now, conn.last_seen + seconds)
            conn.progress = min(now, conn.progress + seconds)
            if conn.state == CHALLENGED:
                conn.opened = min(now, conn.opened + seconds)
            if conn.stop_by is not None:
                conn.stop_by += seconds

    def _busy_silence(self, conn: Conn, silent: float) -> bool:
        """Whether a worker silent past ``seconds_heartbeat_timeout`` is busy, not gone: it
        runs a task, has been silent for at most ``seconds_busy_silence``, and its machine
        still acknowledges what the dispatcher sends (its heartbeats)."""
        settings = self.settings
        initializing = conn.state == INITIALIZING
        if not (conn.in_flight or initializing):
            return False
        if not busy_not_gone(conn.link, silent, settings.seconds_busy_silence, self.beats.interval):
            return False
        if conn.silence_noted != conn.last_seen:  # once per silence
            conn.silence_noted = conn.last_seen
            what = "its initializer" if initializing else f"task {next(iter(conn.in_flight.values())).name!r}"
            log.warning(
                "worker %s (instance %s) has sent nothing for %.1f s while running %s, but its machine still "
                "acknowledges the connection: it probably holds the GIL in a long call into C code (or the "
                "job is suspended); waiting for it up to seconds_busy_silence=%g s",
                conn.slot, conn.instance, silent, what, settings.seconds_busy_silence,
            )
        if self.on_silent is not None and conn.instance:  # or it died, and a process it forked holds the socket
            self.on_silent(conn.instance)
        return True

    def _visit(self, conn: Conn, now: float) -> None:
        """Heartbeats and deadlines of one connection whose visit is due; plan its next one."""
        settings = self.settings
        hb = self.beats.interval
        timeout = self.beats.silence_limit(now)
        busy = False
        if conn.state == CHALLENGED and now - conn.opened > settings.seconds_auth:
            self._drop(conn, "no HELLO in time")
        elif conn.state in LIVE:
            # Each connection beats on its own schedule (from when it connected), so a
            # thousand workers do not all get a beat, and all answer, in the same tick.
            silent = now - conn.last_seen
            if silent > timeout and not (busy := self._busy_silence(conn, silent)):
                self._drop(conn, f"no heartbeat for {silent:.1f} s")
            elif now >= conn.next_beat:  # beats go on to a busy worker: its machine's answers are the sign of life
                conn.next_beat = now + hb
                self._send(conn, self.beats.frame)
        if conn.state == CHALLENGED:
            when = conn.opened + settings.seconds_auth
        elif conn.state in LIVE:
            when = min(conn.next_beat, now + hb if busy else conn.last_seen + timeout)
        elif conn.state == CLOSED and now - conn.last_seen > hb:
            self._forget(conn.link.id)
            return
        else:  # closed lately (kept a heartbeat interval for its late frames), or leaving
            when = conn.last_seen + hb
        self._visit_at(conn, max(when, now + 1e-6))  # later than now: this tick's loop ends

    def _overdue(self, conn: Conn, now: float) -> bool:
        """Replace a worker that kept a cancelled or timed-out task past the grace period."""
        grace = self.settings.seconds_grace
        if conn.stop_by is not None and now > conn.stop_by:  # (which task holds it is not known: a result may wait unsent)
            self._drop(conn, f"the worker did not stop a cancelled task within {grace:g} s", blame=False)
            return True
        head = next(iter(conn.in_flight.values()))
        limit = head.seconds_timeout
        if limit is not None and not head.resolved and now - conn.progress > limit + grace:
            message = (
                f"the task ran longer than seconds_timeout={limit:g} s and its worker did not stop it; "
                "the worker was replaced"
            )
            self._on_result(head, None, conn, ("timeout", message, "TaskTimeoutError"))
            self._drop(conn, f"task {head.name!r} exceeded seconds_timeout={limit:g} s", blame=False, stuck=head)
            return True
        return False

    def cancel(self, predicate: Callable[[Task], bool], message: str) -> int:
        """Cancel queued and running tasks matching ``predicate`` (dispatcher thread).

        Queued tasks are removed; running ones resolve as ``cancel`` at once and their
        workers are told to stop them (and replaced if they do not within the grace period).
        """
        on = isinstance(predicate, ById) and [c for c in self.conns.values() if predicate.id in c.in_flight]
        count = 0 if on else self._cancel_held(lambda t: not t.resolved and predicate(t), message)  # crashed out, held
        for task in [] if on else self.remove_queued(lambda t: not t.resolved and predicate(t)):
            self._on_result(task, None, None, ("cancel", message, "CancelledError"))
            count += 1
        now = time.monotonic()
        for conn in on or list(self.conns.values()):
            if conn.state != READY:
                continue
            ids = [tid for tid, t in conn.in_flight.items() if not t.resolved and predicate(t)]
            for tid in ids:
                self._on_result(conn.in_flight[tid], None, conn, ("cancel", message, "CancelledError"))
            if ids:
                count += len(ids)
                self._send(conn, p.encode_ids(p.CANCEL, ids))
                conn.stop_by = now + self.settings.seconds_grace
                self._watch(conn)
        return count

    # -- queries (dispatcher thread) -----------------------------------------------------

    def running(self) -> int:
        """Tasks sent to workers and not given back (kept as they come and go, not counted)."""
        return self.tasks_running

    def remove_queued(self, predicate: Callable[[Task], bool]) -> list[Task]:
        """Remove and return queued tasks matching ``predicate`` (dispatcher thread)."""
        keep: collections.deque[Task] = collections.deque()
        out: list[Task] = []
        for task in self.queue:
            (out if predicate(task) else keep).append(task)
        self.queue = keep
        return out
