"""The results API of a controller: pop, collect, wait, and the summaries."""

from __future__ import annotations

import threading
import time
from typing import Literal

from pycrew.control import callbacks, termination
from pycrew.control.progress import ProgressBar
from pycrew.control.state import ControllerState
from pycrew.errors import ControllerError, OptionsError
from pycrew.options import as_seconds
from pycrew.results import ControllerSummary, Summary, TaskResult, WorkerSummary


def check_wait_timeout(timeout: object) -> float | None:
    """A ``wait`` timeout as a float (see :func:`~pycrew.options.as_seconds`), or an
    OptionsError if it is not a number of seconds >= 0 (or None)."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0:
        raise OptionsError(f"wait timeout must be a number of seconds >= 0, or None to wait without limit; got {timeout!r}")
    return float(as_seconds(timeout))


class Collecting(ControllerState):
    """Results waiting for ``pop``, counts, and waiting for tasks to resolve."""

    def ready(self) -> int:
        """Results waiting for :meth:`pop`."""
        return len(self._results)

    def _launch_failed(self) -> bool:
        """Whether a LaunchError ended the launches: its futures fail first, then the error is set."""
        return self.launcher.error is not None or bool(self._abandoned)

    def _launch_error(self) -> BaseException | None:
        """The LaunchError that ended the launches, if any. In the moment between its futures
        failing and it being set (dispatcher thread), wait for it: a caller that saw a future
        fail with it must get it from ``submit`` too, as from a broken executor."""
        error = self.launcher.error
        deadline = time.monotonic() + 5.0
        while error is None and self._abandoned and time.monotonic() < deadline:
            time.sleep(0.0005)
            error = self.launcher.error
        return error

    def unresolved(self) -> int:
        """Tasks pushed or submitted and not yet resolved (a ``map`` still submitting its
        input counts as one more, so that ``wait("all")`` waits for the rest of it).

        Futures failed by a :class:`~pycrew.LaunchError` are not counted: their tasks will
        never run. Tasks still held when the controller was terminated are (they did not resolve).
        """
        return max(0, self.pushed - self.resolved - self._abandoned) + self._feeders_elsewhere()

    def _feeders_elsewhere(self) -> int:
        """The maps still submitting, but for the one whose input (a generator) calls this:
        ``wait()`` there must not wait for its own map's input to end."""
        here = threading.current_thread()
        return sum(getattr(feeder, "thread", None) is not here for feeder in list(self._feeders))

    def pop(self) -> TaskResult | None:
        """The next resolved pushed task's result, or ``None`` if none is ready (also once
        the controller ended, by ``shutdown()`` or ``terminate()``, with every task resolved).

        Raises:
            LaunchError: workers could not be launched.
            ControllerError: the controller was terminated before every task resolved, or
                its dispatcher failed.
        """
        if self._results:
            self.popped += 1
            return self._results.popleft()
        if self._started and not self._ended_cleanly():
            self._check()
        return None

    def collect(self) -> list[TaskResult]:
        """Every resolved pushed task's result available now (may be empty); raises as :meth:`pop`."""
        out = []
        while self._results:
            out.append(self._results.popleft())
        self.popped += len(out)
        if not out and self._started and not self._ended_cleanly():
            self._check()
        return out

    def _ended_cleanly(self) -> bool:
        """Terminated with every task resolved and nothing failed: ``pop`` and ``collect``
        then return nothing, as they would have just before (a ``while c.pop()`` loop after
        ``shutdown()`` raised "was terminated" once the results ran out)."""
        dispatcher = self._dispatcher
        return (
            self._terminated and self.unresolved() == 0 and not self._abandoned and self.launcher.error is None
            and (dispatcher is None or dispatcher.error is None) and self._forked_message() is None
        )

    def wait(self, mode: Literal["all", "one"] = "all", timeout: float | None = None, progress: bool = False) -> bool:
        """Block until every task resolved (``"all"``) or a result is ready to pop (``"one"``).

        Returns:
            ``True`` if the condition holds, ``False`` if ``timeout`` seconds passed first.

        Raises:
            LaunchError: workers could not be launched (``launch_max`` failures in a row).
        """
        if mode not in ("all", "one"):
            raise OptionsError(f"wait mode must be 'all' or 'one', got {mode!r}")
        timeout = check_wait_timeout(timeout)
        if (forked := self._forked_message()) is not None:
            raise ControllerError(forked)
        if not self._started:
            return self.unresolved() == 0

        def ready() -> bool:  # futures failed by a LaunchError: raise it (_check), as when they were pending
            if mode == "all":
                return self.unresolved() == 0 and not self._abandoned
            return bool(self._results) or (self.unresolved() == 0 and not self._abandoned)

        deadline = None if timeout is None else time.monotonic() + timeout
        bar = ProgressBar(self, self.pushed, desc=f"{self.name} wait") if progress else None
        step = 0.2 if bar is not None else 0.5
        try:
            while True:
                with self._cv:
                    self._waiters += 1
                    try:
                        while not ready():
                            if self._terminated:  # raise once its futures are resolved (below)
                                break
                            self._check()
                            remaining = step if deadline is None else min(step, deadline - time.monotonic())
                            if remaining <= 0:
                                return False
                            self._cv.wait(remaining)
                            if bar is not None:
                                bar.bar.total = self.pushed
                                bar.refresh()
                    finally:
                        self._waiters -= 1
                if self._terminated and not ready():
                    self._await_termination(deadline)
                    self._check()  # raises: terminated
                if mode == "one":
                    return True
                # Every task resolved: their futures' done-callbacks (run on their own
                # thread) have run when this returns, and whatever they submitted is waited for.
                if not callbacks.drain(self, None if deadline is None else max(0.0, deadline - time.monotonic())):
                    return False
                if ready():
                    return True
        finally:
            if bar is not None:
                bar.close()

    def _await_termination(self, deadline: float | None) -> None:
        """Another thread's ``terminate()`` in progress: wait until it has resolved every
        future it ends (after the workers' termination, which takes a slow platform seconds),
        so that a ``wait()`` it interrupts raises with every future done. Not on the thread
        that terminates (a done-callback, a signal handler), and not past ``deadline``."""
        if self._terminating is threading.current_thread():
            return
        limit = termination.seconds_awaiting_termination(self.options.seconds_terminate)
        if deadline is not None:
            limit = min(limit, max(0.0, deadline - time.monotonic()))
        self._terminate_done.wait(limit)

    def summary(self) -> Summary:
        """Controller, worker and launcher summaries (crew's three summaries in one)."""
        d = self._dispatcher
        # One consistent picture while the dispatcher moves tasks on, without a lock on its
        # path: read from the end of a task's way (resolved) to its start (pushed), so that a
        # task is counted once or, moving meanwhile, in a later stage than it was; resolved is
        # the sum of the status counts (counted as a result is settled: see Resolving._settle).
        popped = self.popped
        c = dict(self._status_counts)
        resolved = sum(c.values())
        abandoned = self._abandoned + self._ended_held
        queued = len(d.queue) + len(d.submissions) if d else 0
        if queued and self.launcher.error is not None:  # after a LaunchError none goes to a worker: never to resolve
            abandoned, queued = abandoned + queued, 0
        pushed = self.pushed
        # running: what is neither queued, resolved nor abandoned: on a worker, crashed out and
        # held for why (see crash_hold), handed to the backup, or on its way between two of these.
        # Not a task resolved already that its worker still holds (cancelled or timed out).
        running = max(0, pushed - resolved - abandoned - queued)
        ended = self._terminated  # its workers were told to stop and its links closed: none is online
        controller = ControllerSummary(
            controller=self.name,
            launcher=self.spec.name,
            pushed=pushed,
            queued=queued,
            running=running,
            resolved=resolved,
            popped=min(popped, resolved),  # (popped a moment before its status was counted)
            success=c["success"],
            error=c["error"],
            crash=c["crash"],
            cancel=c["cancel"],
            timeout=c["timeout"],
            abandoned=abandoned,
            retries=d.retries if d else 0,
            workers_online=0 if ended else self.launcher.online(),
            workers_launching=0 if ended else self.launcher.launching(),
            seconds=time.monotonic() - self._t0 if self._started else 0.0,
        )
        complete = dict(self._slot_complete)  # before what was sent: a task is sent before it completes
        assigned = dict(d.assigned_by_slot) if d else {}
        holding = dict.fromkeys(self._slot_complete, 0)  # its worker's tasks now, not resolved yet
        if d and not ended:
            for conn in list(d.conns.values()):
                if conn.slot is not None:  # (a task resolved in flight is a cancel it has not stopped: stop_by)
                    in_flight = conn.in_flight
                    holding[conn.slot] += (len(in_flight) if conn.stop_by is None
                                           else sum(not t.resolved for t in list(in_flight.values())))
        workers = tuple(
            WorkerSummary(
                worker=s.index,
                online=s.state == "connected" and not ended,
                instances=s.instances,
                launches=s.launches,
                launch_failures=s.launch_failures,
                assigned=max(assigned.get(s.index, 0), complete[s.index]),
                complete=complete[s.index],
                crashes=s.crashes,
                seconds_busy=self._slot_seconds[s.index],
                instance=s.instance or s.last_instance,
                host=s.host,
                pid=s.pid,
                exit_reason=s.exit_reason,
                initializing=s.state == "launching" and s.initializing_since > 0 and not ended,
                seconds_initializer=s.seconds_initializer,
                running=holding[s.index],
            )
            for s in self.launcher.slots
        )
        return Summary(controller=controller, workers=workers, launcher=self.launcher.summary())
