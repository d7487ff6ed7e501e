"""Interval timers a task leaves running must not end its worker during a later task.

``signal.alarm`` and ``signal.setitimer`` are per process. A task that starts one and
returns before it fires without cancelling it (a timeout helper whose ``finally`` never
ran, a sampling profiler left on) leaves a signal due: SIGALRM, SIGVTALRM and SIGPROF
end a process by default, so the worker would die during whatever task ran then, and
that task be counted as a crash. The worker therefore handles the three signals (where
nothing else did): a stray one cancels its timer, the worker keeps serving, and the task
during or after which it went off carries a ``RuntimeWarning`` saying so.

A task that installs its own handler still gets its own signals while it runs: the
worker's handlers come back after it (see :meth:`TaskRunner.keep_handlers`). Nothing of
this costs a task anything until a stray signal comes.
"""

from __future__ import annotations

import signal
from types import FrameType

#: The signals of the process's interval timers, and which timer each belongs to.
TIMERS: dict[int, int] = {
    signal.SIGALRM: signal.ITIMER_REAL,
    signal.SIGVTALRM: signal.ITIMER_VIRTUAL,
    signal.SIGPROF: signal.ITIMER_PROF,
}


class StrayTimers:
    """The worker's handler of timer signals nobody is waiting for (main thread only)."""

    def __init__(self) -> None:
        #: Warnings for the task during or after which a stray signal came (taken by the runner).
        self.notes: list[str] = []

    def install(self) -> dict[int, object]:
        """Handle each timer signal still at its default action; return the handlers installed."""
        handler = self._on_signal  # one bound method, so that "is" finds it installed
        installed: dict[int, object] = {}
        for signum in TIMERS:
            if signal.getsignal(signum) == signal.SIG_DFL:  # leave a handler someone chose alone
                signal.signal(signum, handler)
                installed[signum] = handler
        return installed

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only the work the main thread can do anywhere: no logging here (the runner logs).
        signal.setitimer(TIMERS[signum], 0)
        name = signal.Signals(signum).name
        self.notes.append(
            f"RuntimeWarning: {name} arrived from a timer that an earlier task left running "
            "(signal.alarm or signal.setitimer, never cancelled); it would have ended the worker, "
            "so pycrew cancelled the timer"
        )
