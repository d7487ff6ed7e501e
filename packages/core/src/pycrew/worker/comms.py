"""The worker's comms thread: heartbeats, time limits, and reading when the main thread does not.

Who reads the worker's frames: on an interruptible channel (the socket transport) the main
thread reads its own frames while it is idle, so a task goes from the socket to the task
runner without a thread hand-off, and between two tasks what has arrived when nobody has read
for ``Pace.READ_INTERVAL`` (a run of short prefetched tasks: a CANCEL, RECALL or STOP waits no
longer). The comms thread reads only while the worker is not serving (the handshake, and after
the serving loop ended), while a task has run for a while (``Pace.handover()``: to see CANCEL
and STOP, and to have the next task in hand when this one ends, see :mod:`pycrew.worker.pace`),
and when nobody has read for a heartbeat interval. Whoever reads holds the worker's ``reader``
lock; the idle main thread interrupts the comms thread's read to take the role back. On other
channels the comms thread reads everything and hands tasks over through the worker's ``cv``
(:mod:`pycrew.worker.loop` has both). This thread also enforces the running
task's time limit (interrupting it at its deadline), so it must never sleep, nor block in
a read, past a deadline: one set while it reads (the main thread started a task) cuts an
interruptible read short (:meth:`CommsThread._deadline_set`), and on a channel that cannot
be interrupted its reads last at most :data:`UNINTERRUPTIBLE_READ_MAX` while a task waits
to start or is starting (its limit not known yet).
"""

from __future__ import annotations

import collections
import math
import threading
from collections.abc import Callable

from pycrew.wire import clock, transport
from pycrew.wire.protocol import Payload
from pycrew.worker.execution import TaskRunner
from pycrew.worker.pace import Pace
from pycrew.worker.results import ResultBatcher
from pycrew.worker.silence import ControllerSilence

#: Longest read of a comms thread that cannot be interrupted while a task waits to start or
#: is starting: a time limit that task sets during the read is enforced this late at most.
UNINTERRUPTIBLE_READ_MAX = 0.1


class CommsThread:
    """The comms thread's loop (mixed into :class:`pycrew.worker.loop.Worker`)."""

    channel: transport.Channel | None
    gone: threading.Event
    welcomed: threading.Event
    reader: threading.Lock
    silence: ControllerSilence
    runner: TaskRunner
    pace: Pace
    tasks: collections.deque[tuple[int, Payload]]
    seconds_heartbeat: float
    last_seen: float
    last_read: float
    task_started: float
    running: bool
    direct: bool
    serving: bool
    main_wants_read: bool
    comms_reading: bool
    comms_read_until: float
    batcher: ResultBatcher

    _send: Callable[[bytes], None]
    _beat: Callable[[], bytes]
    _controller_gone: Callable[[str], None]
    _read_one: Callable[[float], bool]

    def _limit_unknown(self) -> bool:
        """Whether a task was handed over whose time limit is not known yet: it waits to
        start, or it is starting (a running task's limit is set before it is called)."""
        return bool(self.tasks) or (self.running and self.runner.current is None)

    def _comms_reads(self, now: float) -> bool:
        """Whether the comms thread should read now (see above)."""
        if not self.direct or not self.serving:
            return True
        if self.main_wants_read:
            return False
        if self.running and now - self.task_started >= self.pace.handover():
            return True
        return now - self.last_read >= self.seconds_heartbeat

    def _comms(self) -> None:
        next_beat = clock.monotonic()
        while not self.gone.is_set():
            now = clock.monotonic()
            if (credited := self.silence.credit(now, self.last_seen, self.seconds_heartbeat)) is not None:
                self.last_seen = credited  # this thread could not run: the controller's words wait unread
            if self.welcomed.is_set() and now >= next_beat:
                next_beat = now + self.seconds_heartbeat
                self._send(self._beat())
                if self.silence.gone(now, self.last_seen, self.channel, self.seconds_heartbeat):
                    self._controller_gone(f"no heartbeat from the controller for {now - self.last_seen:.1f} s")
                    return
            deadline = self.runner.deadline
            if deadline is not None and now >= deadline and self.runner.current is not None:
                self.runner.interrupt(self.runner.current, "timeout", "the task ran longer than its seconds_timeout")
                deadline = None
            wait = clock.capped(min(self.seconds_heartbeat, max(0.0, next_beat - now) or self.seconds_heartbeat))
            if deadline is not None:
                wait = min(wait, max(0.001, deadline - now))
            elif self._limit_unknown() and self.channel is not None and not self.channel.interruptible:
                wait = min(wait, UNINTERRUPTIBLE_READ_MAX)  # a time limit set meanwhile is seen within this
            if not self._comms_reads(now):
                nap = self.pace.nap(self.running, self.task_started, now)
                self.gone.wait(min(wait, nap))
                continue
            if not self.reader.acquire(timeout=wait):
                continue
            try:
                self.comms_read_until = math.inf  # until this read's end is known: see _deadline_set
                self.comms_reading = True
                # The idle main thread asked for the role meanwhile, or began serving (which reads
                # comms_reading after it set serving: either it interrupts this read or this sees it).
                if self.main_wants_read or not self._comms_reads(clock.monotonic()):
                    continue
                if (deadline := self.runner.deadline) is not None:  # a task started since ``wait`` was reckoned
                    wait = min(wait, max(0.001, deadline - clock.monotonic()))
                self.comms_read_until = clock.monotonic() + wait
                if not self._read_one(wait):
                    return
            finally:
                self.comms_reading = False
                self.reader.release()

    def _deadline_set(self, deadline: float) -> None:
        """The task starting now must end by ``deadline`` (main thread): a read of the comms
        thread, which enforces it, that would block past it is cut short.

        The results waiting go now, and this task's goes as soon as it ends (not batched):
        the dispatcher, which replaces a worker whose task outlives its limit by the grace
        period, takes the first task it has no result of for the running one. A result left
        waiting behind a task that holds the GIL (which keeps the flusher thread from
        sending it) made it charge that task's time to a task that had ended (timed out, its
        worker replaced) or miss the limit of the task that ran."""
        self.batcher.prompt = True
        self.batcher.flush()
        channel = self.channel
        if self.comms_reading and self.comms_read_until > deadline and channel is not None and channel.interruptible:
            channel.interrupt()
