"""The circuit breaker that stops a launcher from flooding a failing scheduler with submits."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from pycrew.scheduler.errors import SchedulerError


class SubmitBreaker:
    """Counts launches that failed in a row; after ``failures_max`` it opens for ``seconds_pause``.

    While open, :meth:`check` raises at once with the last error, so that a controller
    whose every submit fails (a bad account, a full queue, a dead daemon) does not try
    again and again. After the pause one launch goes through (half-open): its success
    closes the breaker, its failure opens it for another pause.

    Args:
        launcher_name: used in the message.
        failures_max: launches in a row that open the breaker.
        seconds_pause: how long it stays open.
        clock: a monotonic clock (seconds).
    """

    def __init__(
        self, launcher_name: str, failures_max: int, seconds_pause: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.launcher_name = launcher_name
        self.failures_max = failures_max
        self.seconds_pause = seconds_pause
        self._clock = clock
        self._lock = threading.Lock()
        self.failures = 0
        self.opened_at: float | None = None
        self.last_error = ""
        self.last_transient = False  # the last error might pass (the daemon unreachable): so may the breaker's
        self.trips = 0  # how often it opened

    @property
    def is_open(self) -> bool:
        """Whether launches are refused right now."""
        with self._lock:
            return self.opened_at is not None and self._clock() - self.opened_at < self.seconds_pause

    def check(self) -> None:
        """Raise if the breaker is open; let one launch through once the pause is over.

        Raises:
            SchedulerError: the breaker is open (the message has the last error and when
                submitting resumes).
        """
        with self._lock:
            if self.opened_at is None:
                return
            left = self.seconds_pause - (self._clock() - self.opened_at)
            if left <= 0:
                self.opened_at = None  # half-open: this launch decides
                self.failures = self.failures_max - 1
                return
            raise SchedulerError(
                f"{self.launcher_name}: {self.failures} launches in a row failed, so pycrew stops submitting for "
                f"{self.seconds_pause:g} s ({left:.0f} s left; options submit_failures_max, seconds_submit_pause) "
                f"instead of flooding the scheduler. Last error: {self.last_error}",
                transient=self.last_transient,
            )

    def success(self) -> None:
        """A launch went through: close the breaker."""
        with self._lock:
            self.failures = 0
            self.opened_at = None

    def failure(self, error: BaseException) -> None:
        """A launch failed: count it, and open the breaker at ``failures_max``."""
        with self._lock:
            self.failures += 1
            self.last_error = str(error)
            self.last_transient = bool(getattr(error, "transient", False))
            if self.failures >= self.failures_max and self.opened_at is None:
                self.opened_at = self._clock()
                self.trips += 1
