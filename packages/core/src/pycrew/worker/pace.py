"""What the last task was like, and so who does the work between two tasks: :class:`Pace`.

Between two tasks a worker reads the next one and sends the last one's result. Tasks
that *wait* (a sleep, I/O, a subprocess, a C extension that releases the interpreter
lock; the main thread spent less than a quarter of the task's time on the CPU: a
CPU-bound task that shares its core with other work is still CPU-bound) leave the GIL
free while they run, so the worker's other threads do that work meanwhile: the comms
thread reads once a task has run :attr:`Pace.READ_HANDOVER` (the next task is then in
hand when this one ends), and the flusher thread sends a result while the next task
runs. Around CPU-bound tasks another thread would have to take the GIL from the task,
and each forced switch costs the task more than the work it moves (about 0.7 ms per
10 ms task here): the main thread does it all between tasks, and the comms thread takes
over reading only after :attr:`Pace.READ_HANDOVER_BUSY` (to see a cancel or a STOP).
The last task decides for the next one.
"""

from __future__ import annotations

from pycrew.wire import clock


class Pace:
    """The worker's record of its last task (the main thread writes it, the comms thread reads it)."""

    #: How long a task runs before the comms thread reads, after tasks that wait ...
    READ_HANDOVER = 0.002
    #: ... and after CPU-bound ones.
    READ_HANDOVER_BUSY = 0.1
    #: The comms thread's nap while tasks shorter than READ_HANDOVER come and go (a look at
    #: each one's READ_HANDOVER would find the next one running; the main thread reads).
    SHORT_TASKS_NAP = 0.05
    #: A task at least this long is timed (CPU against wall time) to tell whether it waited.
    WAITING_TASK_MIN = 0.0005
    #: Between two tasks, the main thread reads what has arrived (without waiting) when nobody
    #: has read for this long: a CANCEL, RECALL or STOP waits no longer than this (and a task)
    #: behind a run of short prefetched tasks, for one system call per interval.
    READ_INTERVAL = 0.01

    def __init__(self) -> None:
        self.waits = False  # the last task waited (see above)
        self.last_ran = 0.0  # seconds the last task ran
        self._timed = False  # the last task was long enough to time the next one
        self._cpu = 0.0

    def task_starts(self) -> None:
        """Note the main thread's CPU time as a task starts (a system call: not before short tasks)."""
        self._cpu = clock.thread_time() if self._timed else 0.0

    def task_ended(self, ran: float) -> bool:
        """Note that a task ran ``ran`` seconds; whether it waited."""
        long = ran > self.WAITING_TASK_MIN
        self.waits = self._timed and long and clock.thread_time() - self._cpu < ran / 4
        self._timed = long
        self.last_ran = ran
        return self.waits

    def handover(self) -> float:
        """How long a task runs before the comms thread reads."""
        return self.READ_HANDOVER if self.waits else self.READ_HANDOVER_BUSY

    def nap(self, running: bool, task_started: float, now: float) -> float:
        """How long the comms thread may sleep before it looks at the running task again."""
        if not running:
            return 0.05  # soon enough to notice a task start (and its time limit)
        if self.last_ran < self.READ_HANDOVER:
            return self.SHORT_TASKS_NAP
        return max(0.001, task_started + self.handover() - now)
