"""A worker told to end by SIGTERM leaves politely: :class:`Leaving`.

Platforms end a job with SIGTERM and, a grace period later, SIGKILL: ``scancel`` and a
job's wall time on SLURM (``KillWait``, 30 s by default), a pod's deletion on Kubernetes
(``terminationGracePeriodSeconds``, 30 s), Batch's ``TerminateJob``, Cloud Run's scale-in
(10 s), and ``pycrew monitor terminate``. A worker that gets SIGTERM:

1. starts no new task, and tells the controller at once (a LEAVING frame), giving back the
   tasks it holds but has not started: they go to other workers now, unpenalised;
2. lets its running task go on: if it ends within the grace period, its result is
   delivered as usual;
3. then says goodbye (BYE) and exits 0, running its exit handlers.

If the platform's SIGKILL comes first, the controller counts the running task as crashed
once (as for any worker lost during a task: a task longer than a job's wall time cannot
retry forever) and says in the message that its worker was ending. A second SIGTERM ends
the worker at once (exit code 143), as a second Ctrl-C does elsewhere.

Python runs signal handlers on the main thread between bytecodes, so while a task is
inside one long call into C code (that does not check for signals) the handler, and the
message to the controller, wait for that call to return.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType

from pycrew.wire import protocol as p
from pycrew.worker import exiting

log = logging.getLogger("pycrew.worker")

#: The worker's reason for leaving after a SIGTERM, as the controller reports it.
REASON_SIGTERM = "the worker got SIGTERM (its platform or a user ends it)"
#: Exit code after a second SIGTERM (the shell's convention for "ended by signal 15").
EXIT_TERMINATED = 128 + signal.SIGTERM


class Leaving:
    """A worker process's SIGTERM handling (see the module's documentation).

    Args:
        take_unstarted: removes and returns the ids of the tasks the worker holds but has
            not started (it starts no other afterwards: it checks :attr:`reason` first).
        send: sends one frame to the controller.
        wake: wakes the worker's main thread if it waits for tasks.
    """

    def __init__(self, take_unstarted: Callable[[], list[int]], send: Callable[[bytes], None], wake: Callable[[], None]) -> None:
        self.reason = ""  # why the worker leaves, once it was told to: it takes no more tasks
        self._take_unstarted = take_unstarted
        self._send = send
        self._wake = wake
        self._asked = threading.Event()

    def install(self) -> None:
        """Handle SIGTERM from now on (main thread only; a worker that owns its process)."""
        signal.signal(signal.SIGTERM, self._on_sigterm)
        threading.Thread(target=self._run, name="pycrew-worker-leaving", daemon=True).start()

    def _on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        # Only a flag and an event here: the thread does the sending (the main thread may
        # have been interrupted anywhere, even inside the channel's send).
        if self.reason:
            log.warning("pycrew worker: a second SIGTERM; exiting now (the running task is lost)")
            exiting.exit_process(EXIT_TERMINATED)
        self.reason = REASON_SIGTERM
        self._asked.set()

    def _run(self) -> None:
        self._asked.wait()
        unstarted = self._take_unstarted()
        log.info("pycrew worker leaving (%s); %d unstarted task(s) given back", self.reason, len(unstarted))
        self._send(p.encode_json(p.LEAVING, {"reason": self.reason, "unstarted": unstarted}))
        self._wake()
