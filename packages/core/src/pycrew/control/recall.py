"""Taking back tasks that wait behind a long one on a worker (dispatcher thread).

Short tasks are prefetched: a worker holds up to about ``seconds_prefetch`` of them by the
moving average of run times. When one of them turns out long, the tasks sent behind it
wait on its worker while other workers may have nothing to do. At each tick, when the
queue is empty and some worker is idle, every connection that holds more than one task
and whose oldest one has run longer than :data:`SECONDS_RECALL` (and four times the
average) is sent a RECALL of the others. Its worker gives back those it has not started
(RETURNED): they go to the front of the queue, unpenalised, and that connection gets no
more tasks until its long task ends. A worker that never answers (an older version)
keeps its tasks, as before.

The same frames even out the end of a batch. When a worker has nothing to do and nothing
is queued (its last result came back, it has just connected, another's results came back
while it idles, or at a tick while it idles),
the first connection found holding at least :data:`SECONDS_STEAL` of unstarted work (by
the average) is asked for the newer half of it: the idle worker runs that half instead of
waiting while another works through its prefetched tail alone.

And when results show tasks longer than the average their worker was sent them by (a
batch prefetched by the average of short tasks), a connection holding more than twice
its prefetch window now (:meth:`Assignment._limit`) gives back everything beyond that
window: the tasks return to the front of the queue, in order, and every worker takes them
from there by the window that fits them. Otherwise one worker runs its backlog in a row
while the others take the tasks after it, and a caller that reads results in order
(``map``) holds every result of the later tasks until the backlog is done (100 results of
20 MB each on 2 workers: 1 GB).
"""

from __future__ import annotations

import collections
import heapq
from collections.abc import Callable, Iterator

from pycrew.control.conn import READY, Conn
from pycrew.control.tasks import Task
from pycrew.wire import protocol as p

#: How long a connection's oldest task must have run before the tasks behind it are recalled.
SECONDS_RECALL = 0.05
#: Unstarted work (by the moving average) a connection must hold for an idle worker to take
#: half of it at the end of a batch: less is not worth a round trip.
SECONDS_STEAL = 0.002
#: After a search for work to take found none, how long idle workers wait before the next one.
SECONDS_STEAL_PAUSE = 0.001


class Recall:
    """Recalling tasks from a worker stuck on a long one (mixed into Dispatcher)."""

    conns: dict[int, Conn]
    queue: collections.deque[Task]
    ewma: float | None
    tasks_running: int
    _ready: list[tuple[int, int, int]]
    _holding: set[int]  # link ids of connections sent more than one task (maybe stuck)
    _steal_pause_until: float
    _send: Callable[[Conn, bytes], None]
    _offer: Callable[[Conn], None]
    _on_result: Callable[[Task, p.Payload | None, Conn | None, tuple[str, str, str] | None], None]
    remove_queued: Callable[[Callable[[Task], bool]], list[Task]]
    _limit: Callable[[], int]  # see pycrew.control.assignment

    def _idle_worker(self) -> bool:
        """Whether the least loaded ready connection holds no task (drops stale heap heads)."""
        heap = self._ready
        while heap:
            _, link_id, version = heap[0]
            conn = self.conns.get(link_id)
            if conn is None or conn.ready_version != version or conn.state != READY:
                heapq.heappop(heap)
                continue
            return not conn.in_flight
        return False

    def _holders(self) -> Iterator[Conn]:
        """The ready connections in ``_holding`` that still hold two tasks or more (it forgets the others)."""
        for link_id in list(self._holding):
            conn = self.conns.get(link_id)
            if conn is None or conn.state != READY or len(conn.in_flight) < 2:
                self._holding.discard(link_id)
                continue
            yield conn

    def _recall_stuck(self, now: float) -> None:
        """Recall the tasks waiting behind a long one, if a worker is idle (each tick)."""
        if self.queue or not self._holding or not self._idle_worker():
            return
        after = max(SECONDS_RECALL, 4.0 * (self.ewma or 0.0))
        for conn in self._holders():
            if conn.recalling or now - conn.progress < after:
                continue
            conn.recalling = True
            ids = list(conn.in_flight)[1:]  # the first is the one running
            self._send(conn, p.encode_ids(p.RECALL, ids))
        self._steal_for_idle(now)  # a worker is idle: a tail another still works through

    def _went_idle(self, conn: Conn, now: float) -> None:
        """``conn`` has just become ready (connected, or results came back): if nothing is
        queued and it, or another worker, holds nothing, take work for the idle one.

        Another's results matter too: they update the moving average, and a tail that was
        not worth taking by the old average may be now (a batch of long tasks prefetched to
        one worker by the average of short ones, while a worker that connected later waits).
        """
        if self.queue or not self._holding:
            return
        if not conn.in_flight or self._idle_worker():
            self._steal_for_idle(now)

    def _trim(self, conn: Conn) -> None:
        """Recall what ``conn`` holds beyond its prefetch window when that is less than half
        of what it holds (its results just came, and with them a new average)."""
        limit = self._limit()
        if conn.recalling or len(conn.in_flight) <= 2 * limit + 1:
            return
        conn.recalling = True
        self._send(conn, p.encode_ids(p.RECALL, list(conn.in_flight)[limit:]))

    def _steal_for_idle(self, now: float) -> None:
        """A worker went idle with the queue empty: recall the newer half of another's unstarted tasks.

        Takes the first connection in ``_holding`` worth it; a search that finds none pauses
        the next ones for :data:`SECONDS_STEAL_PAUSE`, so the end of a batch on many workers
        does not scan every connection per result.
        """
        ewma = self.ewma
        if not ewma or now < self._steal_pause_until:
            return
        for conn in self._holders():
            held = len(conn.in_flight)
            if conn.recalling or (held - 1) * ewma < SECONDS_STEAL:
                continue
            conn.recalling = True
            ids = list(conn.in_flight)[held - held // 2 :]  # the newest: the last to start there
            self._send(conn, p.encode_ids(p.RECALL, ids))
            return
        self._steal_pause_until = now + SECONDS_STEAL_PAUSE

    def recall_to_cancel(self, predicate: Callable[[Task], bool], message: str) -> None:
        """Cancel the tasks matching ``predicate`` that have not started, and only those (for
        ``shutdown(cancel_futures=True)``, as ``concurrent.futures`` cancels what has not
        started and lets the running tasks finish).

        Queued ones resolve as cancelled at once. Those sent ahead to a worker are recalled:
        the ones it gives back unstarted resolve as cancelled (:meth:`_returned`); the ones it
        started run on. A future counts as running from when its task is sent to a worker.
        """
        for task in self.remove_queued(lambda t: not t.resolved and predicate(t)):
            self._on_result(task, None, None, ("cancel", message, "CancelledError"))
        for conn in list(self.conns.values()):
            if conn.state != READY:
                continue
            ids = [task_id for task_id, t in conn.in_flight.items() if not t.resolved and predicate(t)]
            if ids:
                for task_id in ids:
                    conn.in_flight[task_id].cancel_back = message
                conn.recalling = True
                self._send(conn, p.encode_ids(p.RECALL, ids))

    def _put_back(self, back: list[Task]) -> None:
        """Put returned tasks back at the front of the queue, in submission order among the
        queued tasks submitted before the last of them (two workers' returns come one after
        the other: the second's newer tasks must not go ahead of the first's)."""
        if not back:
            return
        queue = self.queue
        last = max(task.id for task in back)
        ahead: list[Task] = []
        while queue and queue[0].id < last:
            ahead.append(queue.popleft())
        queue.extendleft(reversed(sorted(ahead + back, key=_task_id)))

    def _returned(self, conn: Conn, ids: list[int]) -> None:
        """A worker gave back recalled tasks it had not started: queue them first, unpenalised."""
        conn.recalling = False
        back: list[Task] = []
        for task_id in ids:
            task = conn.in_flight.pop(task_id, None)
            if task is None:  # not sent to this worker, or its result already came
                continue
            self.tasks_running -= 1
            conn.bytes_in_flight -= len(task.payload)
            if not conn.ending:  # an ending worker gets nothing more
                conn.tasks_left += 1
            if task.resolved:  # cancelled meanwhile
                continue
            task.attempts -= 1  # it never ran
            if task.cancel_back is not None:  # recalled to be cancelled: see recall_to_cancel
                self._on_result(task, None, None, ("cancel", task.cancel_back, "CancelledError"))
                continue
            back.append(task)
        if conn.stop_by is not None and not any(t.resolved for t in conn.in_flight.values()):
            conn.stop_by = None  # (a cancelled task given back: it takes new tasks again, see Assignment)
        self._put_back(back)
        if conn.in_flight:
            conn.stalled = True  # offered again when its long task's result comes
            conn.ready_version += 1  # and its entry in the ready heap is void until then
        else:
            self._offer(conn)


def _task_id(task: Task) -> int:
    return task.id
