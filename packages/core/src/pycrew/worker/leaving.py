"""A worker told to end by SIGTERM or SIGINT leaves politely: :class:`Leaving`.

Platforms end a job with SIGTERM and, a grace period later, SIGKILL: ``scancel`` and a
job's wall time on SLURM (``KillWait``, 30 s by default), a pod's deletion on Kubernetes
(``terminationGracePeriodSeconds``, 30 s), Batch's ``TerminateJob``, Cloud Run's scale-in
(10 s), and ``pycrew monitor terminate``. LSF's ``bkill`` sends SIGINT, then SIGTERM and
SIGKILL (``JOB_TERMINATE_INTERVAL``, 10 s, apart), and Ctrl-C in a terminal is SIGINT: a
task would otherwise see it as a ``KeyboardInterrupt`` and resolve as an error it did not
cause. A worker that gets either signal:

1. starts no new task, and tells the controller at once (a LEAVING frame), giving back the
   tasks it holds but has not started: they go to other workers now, unpenalised;
2. lets its running task go on: if it ends within the grace period, its result is
   delivered as usual;
3. then says goodbye (BYE), runs its exit handlers and ends by the signal it got (so the
   platform records the job as cancelled or killed, as before).

If the platform's SIGKILL comes first, the controller counts the running task as crashed
once (as for any worker lost during a task: a task longer than a job's wall time cannot
retry forever) and says in the message that its worker was ending. A second signal ends
the worker at once (by that signal, without waiting for the task), as a second Ctrl-C
does elsewhere (and as LSF's SIGTERM after its SIGINT means).

A thread of the worker reacts to the signal (see :class:`Leaving`), so this happens at
once while the task sleeps, waits or runs C code that releases the GIL; a C call that
holds the GIL delays it until the call returns.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import signal
import threading
from collections.abc import Callable
from types import FrameType

from pycrew.wire import clock
from pycrew.wire import protocol as p
from pycrew.worker import exiting, forks

log = logging.getLogger("pycrew.worker")

SIGNALS = exiting.ENDING_SIGNALS


class Leaving:
    """A worker process's SIGTERM and SIGINT handling (see the module's documentation).

    The kernel hands a signal sent to the process to any of its threads; Python then runs
    the handler on the main thread at its next bytecode, so a task sleeping in the main
    thread would not notice before its sleep ends. Instead the signal's number is written
    to a pipe (:func:`signal.set_wakeup_fd`) that a thread of the worker reads, whatever
    the main thread does. If a task installs its own wakeup descriptor (an asyncio loop
    with signal handlers), the Python handler passes the number on to that pipe itself.

    Args:
        take_unstarted: removes and returns the ids of the tasks the worker holds but has
            not started (it starts no other afterwards: it checks :attr:`reason` first).
        send: sends one frame to the controller.
        wake: wakes the worker's main thread if it waits for tasks.
        wall_end: when (``clock.monotonic``) the worker's ``seconds_wall`` ends: a signal
            after it came, most likely, from the platform's time limit while a task ran.
    """

    def __init__(
        self, take_unstarted: Callable[[], list[int]], send: Callable[[bytes], None], wake: Callable[[], None],
        wall_end: float = math.inf,
    ) -> None:
        self.reason = ""  # why the worker leaves, once it was told to: it takes no more tasks
        self.signum = 0  # the signal that told it to
        self.wall_end = wall_end
        self._take_unstarted = take_unstarted
        self._send = send
        self._wake = wake
        self._pipe_w = -1
        self._handler = self._on_signal  # one bound method, so that "is" finds it installed

    def install(self) -> None:
        """Handle SIGTERM and SIGINT from now on (main thread only; a worker that owns its process)."""
        read, self._pipe_w = os.pipe()
        os.set_blocking(self._pipe_w, False)
        signal.set_wakeup_fd(self._pipe_w, warn_on_full_buffer=False)
        for signum in SIGNALS:
            signal.signal(signum, self._handler)
        forks.own_wakeup_fd(self._pipe_w)  # not a child's a task forks
        threading.Thread(target=self._watch, args=(read,), name="pycrew-worker-signals", daemon=True).start()

    def handlers(self) -> dict[int, object]:
        """The handlers :meth:`install` set, to put back after a task that replaced them
        (see :meth:`pycrew.worker.execution.TaskRunner.keep_handlers`). A wakeup descriptor
        a task replaced needs no such care: the handler then passes the number on itself."""
        return dict.fromkeys(SIGNALS, self._handler)

    def exit_code(self) -> int:
        """The worker's exit code: 0, or 128 + the signal that told it to leave (the process
        then ends by that signal, see :func:`pycrew.worker.exiting.exit_process`)."""
        return 128 + self.signum if self.signum else 0

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # The watcher thread got this signal's number through the wakeup descriptor, unless
        # a task replaced it: then pass the number on (only a write here: the main thread may
        # have been interrupted anywhere, even inside the channel's send).
        current = signal.set_wakeup_fd(self._pipe_w, warn_on_full_buffer=False)
        if current == self._pipe_w:
            return
        if current != -1:
            signal.set_wakeup_fd(current)  # the task's own: leave it in place
        with contextlib.suppress(OSError):
            os.write(self._pipe_w, bytes((signum,)))

    def _watch(self, read: int) -> None:
        while True:
            try:
                data = os.read(read, 512)
            except OSError:
                return
            for signum in data:  # every handled signal's number (SIGUSR1 interrupts tasks, too)
                if signum in SIGNALS:
                    self._signalled(signum)

    def _signalled(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self.reason:
            log.warning("pycrew worker: %s after being told to leave; exiting now (a running task is lost)", name)
            exiting.exit_process(128 + signum)
        self.signum = signum
        if clock.monotonic() >= self.wall_end:  # it would have left by itself, but a task ran on
            self.reason = (
                f"the worker got {name} after its seconds_wall (on a scheduler: the job's time limit less "
                f"seconds_walltime_margin), during a task: its platform's time limit, most likely (a task longer "
                "than a worker's life cannot finish: give the workers more time)"
            )
        else:
            self.reason = f"the worker got {name} (its platform or a user ends it)"
        unstarted = self._take_unstarted()
        log.info("pycrew worker leaving (%s); %d unstarted task(s) given back", self.reason, len(unstarted))
        self._send(p.encode_json(p.LEAVING, {"reason": self.reason, "unstarted": unstarted}))
        self._wake()
