"""Results on their way out of a worker: batched, flushed in time, split to fit the frame limit.

Results of short tasks travel in batches (one RESULTS frame per
:attr:`ResultBatcher.FLUSH_SECONDS` or :attr:`ResultBatcher.FLUSH_COUNT` results). A batch
never waits for a longer task: when the task that started after it has run
``FLUSH_SECONDS``, the flusher thread sends it. No frame exceeds the controller's
``bytes_max``: a batch is split, and a single result that cannot fit has already become
an error result (see :meth:`pycrew.worker.execution.TaskRunner.limit_results`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from pycrew.wire import clock
from pycrew.wire import protocol as p

if TYPE_CHECKING:
    from pycrew.worker.execution import TaskRunner

log = logging.getLogger("pycrew.worker")

#: Bytes a RESULTS frame spends on each record besides its payload (id and length).
RECORD_HEADER = len(p.encode_records(p.RESULTS, [(0, b"")])) - 1
#: Bytes of ``bytes_max`` left to the transport's own headers (NNG's Pair1 adds 4).
FRAME_HEADROOM = 64
#: A result this large goes to the flusher thread when a task waits to run, even after a
#: CPU-bound task (see pycrew.worker.pace): sending it is mostly the kernel's copy and the
#: controller's reading, during which the main thread would idle (a 20 MB result: ~40 ms).
HAND_OFF_BYTES = 1 << 20


def fit_frames(bytes_max: object, batcher: ResultBatcher, runner: TaskRunner, instance: str) -> None:
    """Fit every RESULTS frame under the dispatcher's ``bytes_max`` (None: an older dispatcher)."""
    if bytes_max is None:
        return
    if not isinstance(bytes_max, int) or isinstance(bytes_max, bool) or bytes_max < 4 * FRAME_HEADROOM:
        log.warning("pycrew worker %s: ignoring bytes_max=%r from the controller (not an integer >= %d)",
                    instance, bytes_max, 4 * FRAME_HEADROOM)
        return
    frame_max = bytes_max - FRAME_HEADROOM
    batcher.frame_max = frame_max
    runner.limit_results(bytes_max, frame_max - 1 - RECORD_HEADER)


class ResultBatcher:
    """The results a worker has not sent yet, and the thread that sends them when a task runs long.

    ``lock`` guards the waiting results and is held while a batch is sent, so batches leave
    in the order they were taken (the main thread's final flush, and the BYE after it,
    come after anything the flusher took).

    Args:
        send: sends one frame (never raises).
        send_parts: sends the frame made of these parts (never raises; see ``Channel.send_parts``).
            Without it, ``send`` sends them joined.
        running_since: when the task running now started (``clock.monotonic()``), or
            ``None`` while no task runs.
        gone: set when the link to the controller is gone (the flusher then stops).
    """

    FLUSH_COUNT = p.RESULTS_UNSENT_MAX
    FLUSH_SECONDS = 0.002

    def __init__(
        self,
        send: Callable[[bytes], None],
        running_since: Callable[[], float | None],
        gone: threading.Event,
        send_parts: Callable[[list[bytes]], None] | None = None,
    ) -> None:
        self._send = send
        self._send_parts = send_parts or (lambda parts: send(b"".join(parts)))
        self._running_since = running_since
        self._gone = gone
        self.results: list[tuple[int, bytes]] = []
        self.since = 0.0  # when the oldest waiting result was added
        self.lock = threading.Lock()
        # The flusher sleeps on a plain lock used as a binary semaphore (:meth:`_ring`
        # releases it), not on a Condition: see _ring.
        self._bell = threading.Lock()
        self._bell.acquire()
        self.armed = False  # the flusher watches the running task (see run_flusher)
        self.urgent = False  # the flusher sends the waiting results at once (see hand_off)
        self.prompt = False  # the next result goes at once, from this thread (a time-limited task's: see add)
        self.stopped = False
        self.frame_max: int | None = None  # largest frame the dispatcher accepts (None: unknown)

    def add(self, task_id: int, result: bytes, started: float, finished: float, more_waiting: bool) -> None:
        """Queue one task's result; send the batch unless it should wait for more.

        A batch goes when no task is waiting to run (``more_waiting`` false), when it is
        full, when its oldest result is ``FLUSH_SECONDS`` old, or when this task ran longer
        than that (the dispatcher can then refill this worker at once); and with the result
        of a task that had a time limit (``prompt``, see ``CommsThread._deadline_set``).
        """
        with self.lock:
            if not self.results:
                self.since = finished
            self.results.append((task_id, result))
            prompt, self.prompt = self.prompt, False
            if (
                prompt
                or not more_waiting
                or len(self.results) >= self.FLUSH_COUNT
                or finished - self.since > self.FLUSH_SECONDS
                or finished - started > self.FLUSH_SECONDS
            ):
                self._send_waiting()

    def hand_off(self, task_id: int, result: bytes) -> None:
        """Queue one task's result for the flusher thread to send at once (the next task starts
        meanwhile); a time-limited task's (``prompt``) goes from this thread, before the next
        task can hold the GIL."""
        with self.lock:
            self.results.append((task_id, result))
            if self.prompt:
                self.prompt = False
                self._send_waiting()
                return
            self.urgent = True
        self._ring()

    def arm(self) -> None:
        """Have the flusher watch the task starting now: results wait while it runs."""
        with self.lock:
            if not self.results or self.armed:
                return
            self.armed = True
        self._ring()

    def _ring(self) -> None:
        """Wake the flusher (or have its next wait return at once).

        A release of the held bell; a second ring before the flusher wakes finds it
        released already. The flusher looks at the state again after every wake, so an
        extra ring costs it one look. Right after a 10 ms sleep this costs the calling
        thread ~10 us against ~30 us for ``Condition.notify``, whose Python code runs
        cold then; the gap between two 10 ms tasks shrank by ~13 us.
        """
        try:
            self._bell.release()
        except RuntimeError:  # rung already, not yet heard
            pass

    def run_flusher(self) -> None:
        """Send waiting results once the running task has run ``FLUSH_SECONDS`` (a thread's target).

        The main thread cannot know how long the next task runs; rather than holding
        finished results until it ends, this thread sends them if it has not ended soon.
        While results keep coming fast, the main thread sends them first and this thread
        only looks at the clock.
        """
        bell = self._bell
        while True:
            wait = -1.0  # until rung
            with self.lock:
                if self.stopped or self._gone.is_set():
                    return
                started = self._running_since()
                if self.urgent:
                    self._send_waiting()
                    continue
                if not self.results or started is None:
                    self.armed = False  # the main thread re-arms when a task starts with results waiting
                else:
                    now = clock.monotonic()
                    if now >= started + self.FLUSH_SECONDS:
                        self._send_waiting()
                        continue
                    wait = started + self.FLUSH_SECONDS - now
            bell.acquire(timeout=wait)

    def flush(self) -> None:
        """Send every waiting result now."""
        with self.lock:
            if self.results:
                self._send_waiting()

    def _send_waiting(self) -> None:
        """Send every waiting result (caller holds ``lock``)."""
        batch, self.results, self.urgent = self.results, [], False
        self.send_records(batch)

    def stop(self) -> None:
        """End the flusher thread."""
        with self.lock:
            self.stopped = True
        self._ring()

    def send_records(self, results: list[tuple[int, bytes]]) -> None:
        """Send ``results`` in RESULTS frames of at most ``frame_max`` bytes (caller holds ``lock``).

        Every record fits in one frame by itself (the task runner makes larger results
        error results); records go together while their frame stays under the limit.
        """
        limit = self.frame_max
        if limit is None:
            self._send_batch(results, any(len(r[1]) >= p.LARGE_PAYLOAD for r in results))
            return
        batch: list[tuple[int, bytes]] = []
        size = 1
        large = False
        for record in results:
            grow = RECORD_HEADER + len(record[1])
            if batch and size + grow > limit:
                self._send_batch(batch, large)
                batch, size, large = [], 1, False
            batch.append(record)
            size += grow
            large = large or grow >= p.LARGE_PAYLOAD
        if batch:
            self._send_batch(batch, large)

    def _send_batch(self, batch: list[tuple[int, bytes]], large: bool) -> None:
        """One RESULTS frame; large results go as parts of it, not copied into it."""
        if large:
            self._send_parts(p.record_parts(p.RESULTS, batch))
        else:
            self._send(p.encode_records(p.RESULTS, batch))
