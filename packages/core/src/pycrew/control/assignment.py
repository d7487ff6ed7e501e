"""Assigning queued tasks to workers: the prefetch window and the ready heap (dispatcher thread).

A worker is sent more tasks while it holds fewer than the window (``prefetch_max``, and
about ``seconds_prefetch`` of work by the moving average of run times) and fewer than
``bytes_prefetch`` payload bytes: large arguments go a few at a time, whatever their count.

Ready workers wait in a heap, least loaded first: a connection is offered when it
authenticates, when results or acknowledgements give it room, and after it was given tasks,
so assigning never scans every connection. Stale entries (an older version of a
connection's entry, or a connection gone) are skipped when popped.

One turn of the loop assigns for at most :data:`SECONDS_ASSIGN_TURN`, then the loop turns
again at once: a burst of 100,000 tasks over 1,000 workers took 5 s in one call, and for
that long no result, heartbeat, cancel or ``terminate()`` was seen.
"""

from __future__ import annotations

import collections
import heapq
import time
from collections.abc import Callable

from pycrew.control.conn import READY, Conn, DispatcherSettings
from pycrew.control.tasks import Task
from pycrew.wire import protocol as p

#: Results this large on average (bytes) keep a second task on each worker however long
#: tasks run (see ``Assignment._limit``): a 20 MB result takes ~40 ms to reach the controller.
BYTES_RESULT_OVERLAP = 1 << 20
#: The longest one turn of the loop spends assigning (seconds; checked between two workers' batches).
SECONDS_ASSIGN_TURN = 0.05


class Assignment:
    """How the dispatcher hands queued tasks to workers (mixed into Dispatcher)."""

    settings: DispatcherSettings
    conns: dict[int, Conn]
    queue: collections.deque[Task]
    ewma: float | None
    result_bytes: float | None  # moving average of result sizes (see record_result_bytes)
    _ready: list[tuple[int, int, int]]
    _ready_limit: int
    _assign_more: bool  # the last turn stopped assigning at SECONDS_ASSIGN_TURN: the loop turns again at once
    _holding: set[int]
    _on_result: Callable[[Task, p.Payload | None, Conn | None, tuple[str, str, str] | None], None]
    _send: Callable[[Conn, bytes], None]
    _watch: Callable[[Conn], None]
    tasks_running: int
    assigned_by_slot: dict[int, int]

    def record_seconds(self, seconds: float) -> None:
        """Feed a task's run time into the moving average that sizes prefetching."""
        self.ewma = seconds if self.ewma is None else 0.8 * self.ewma + 0.2 * seconds

    def record_result_bytes(self, frame_bytes: int, results: int) -> None:
        """Feed a RESULTS frame's size per result into the moving average of result sizes."""
        size = frame_bytes / results
        self.result_bytes = size if self.result_bytes is None else 0.8 * self.result_bytes + 0.2 * size

    def _limit(self) -> int:
        if self.ewma is None:
            return 1
        if self.ewma <= 0:
            return self.settings.prefetch_max
        # Tasks shorter than seconds_prefetch keep one more in flight than they need, so
        # the next one is already on the worker when the current one ends; longer tasks go
        # one at a time, so none waits behind a long one while another worker is free ...
        limit = max(1, min(self.settings.prefetch_max, 1 + int(self.settings.seconds_prefetch / self.ewma)))
        if limit == 1 and (self.result_bytes or 0.0) >= BYTES_RESULT_OVERLAP:
            # ... unless their results are large: sending one takes tens of milliseconds,
            # which the worker spends on its next task if it holds one (as a process pool's
            # worker does, whose next call waits in its queue).
            return min(2, self.settings.prefetch_max)
        return limit

    def _offer(self, conn: Conn) -> None:
        """Put ``conn`` in the ready heap with its current load (its older entry goes stale)."""
        if conn.state != READY or conn.stalled or conn.tasks_left <= 0:
            return
        conn.ready_version += 1
        heapq.heappush(self._ready, (len(conn.in_flight), conn.link.id, conn.ready_version))
        if len(self._ready) > 4 * len(self.conns) + 64:  # mostly stale entries: start afresh
            self._rebuild_ready()

    def _rebuild_ready(self) -> None:
        entries = []
        for conn in self.conns.values():
            if conn.state == READY and not conn.stalled and conn.tasks_left > 0:
                conn.ready_version += 1
                entries.append((len(conn.in_flight), conn.link.id, conn.ready_version))
        heapq.heapify(entries)
        self._ready = entries

    def _assign(self) -> None:
        self._assign_more = False
        started = time.monotonic()
        limit = self._limit()
        if limit > self._ready_limit:  # a wider prefetch window: workers that were full may have room
            self._rebuild_ready()
        self._ready_limit = limit
        heap = self._ready
        if not heap:
            return
        queue = self.queue
        conns = self.conns
        bytes_prefetch = self.settings.bytes_prefetch
        # The heap may hold stale entries, so this share errs on the small side; a worker that
        # still has room after its share is offered again and may take more in this same turn.
        share = max(1, -(-len(queue) // len(heap)))
        while queue and heap:
            _, link_id, version = heapq.heappop(heap)
            conn = conns.get(link_id)
            if conn is None or conn.ready_version != version or conn.state != READY:
                continue
            if conn.stop_by is not None:  # a cancelled task it has not stopped yet (it may be replaced for it):
                continue  # nothing more until it does (offered again as its results come: see _results)
            if conn.alone is not None:  # it runs a suspect task: nothing else until that ends
                if conn.alone in conn.in_flight:
                    continue  # offered again when its result comes
                conn.alone = None
            if conn.link.unacked_max is not None and conn.frames_sent - conn.frames_acked >= conn.link.unacked_max:
                continue  # offered again when the worker acknowledges
            room = min(limit - len(conn.in_flight), conn.tasks_left)  # (tasks_left: those it may still be sent)
            if room <= 0:
                continue  # offered again when results give it room
            n = min(share, room)
            batch: list[tuple[int, bytes]] = []
            large = False  # a payload that goes as a part of the frame, not copied into it
            full = False  # holds bytes_prefetch of payloads: offered again when results come back
            while len(batch) < n and queue:
                task = queue[0]
                if task.resolved:
                    queue.popleft()
                    continue
                if conn.in_flight and (task.suspect or conn.bytes_in_flight + len(task.payload) > bytes_prefetch):
                    full = True  # (a suspect goes to a worker with nothing else: see Upkeep._requeue)
                    break
                queue.popleft()
                if task.future is not None and not task.running:
                    if not task.future.set_running_or_notify_cancel():  # cancelled, or finished by its caller
                        why = "cancelled" if task.future.cancelled() else "finished by its caller (set_result)"
                        self._on_result(task, None, None, ("cancel", f"{why} before it started", "CancelledError"))
                        continue
                task.running = True
                task.attempts += 1
                conn.in_flight[task.id] = task
                conn.bytes_in_flight += len(task.payload)
                self.tasks_running += 1
                if task.seconds_timeout is not None:
                    self._watch(conn)
                batch.append((task.id, task.payload))
                large = large or len(task.payload) >= p.LARGE_PAYLOAD
                if task.suspect:
                    conn.alone = task.id
                    full = True
                    break
            if batch:
                if len(conn.in_flight) == len(batch):
                    conn.progress = time.monotonic()
                conn.tasks_left -= len(batch)
                if conn.slot is not None:
                    self.assigned_by_slot[conn.slot] = self.assigned_by_slot.get(conn.slot, 0) + len(batch)
                conn.frames_sent += 1
                if large:
                    conn.link.send_parts(p.record_parts(p.TASKS, batch))
                else:
                    self._send(conn, p.encode_records(p.TASKS, batch))
                conn.last_task_send = time.monotonic()  # (after: a large frame may take long to queue)
                if len(conn.in_flight) > 1:
                    self._holding.add(conn.link.id)  # see pycrew.control.recall
            if not full and len(conn.in_flight) < limit and conn.tasks_left > 0:
                self._offer(conn)
            if batch and time.monotonic() - started > SECONDS_ASSIGN_TURN:
                self._assign_more = bool(queue and heap)
                return
