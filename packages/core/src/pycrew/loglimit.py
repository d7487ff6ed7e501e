"""Warnings that anyone on the network can cause, logged at a bounded rate.

Every connection the dispatcher refuses (garbage bytes, a bad preamble, a wrong token)
is worth a warning, but a flood of them must not flood the log: the first
``burst`` in each ``seconds`` window are logged, the rest are counted and summarized in
one line when the window ends.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any


class LogLimiter:
    """Log at most ``burst`` messages per ``seconds`` through ``logger``; count the rest."""

    def __init__(self, logger: logging.Logger, burst: int = 20, seconds: float = 60.0) -> None:
        self.logger = logger
        self.burst = burst
        self.seconds = seconds
        self._window = 0.0
        self._logged = 0
        self._suppressed = 0
        self._lock = threading.Lock()

    def warning(self, message: str, *args: Any) -> None:
        """A warning, unless ``burst`` were logged in this window already."""
        now = time.monotonic()
        with self._lock:
            if now - self._window >= self.seconds:
                if self._suppressed:
                    self.logger.warning(
                        "%d more refused connection(s) in the last %.0f s were not logged one by one",
                        self._suppressed, now - self._window,
                    )
                self._window, self._logged, self._suppressed = now, 0, 0
            if self._logged >= self.burst:
                self._suppressed += 1
                return
            self._logged += 1
        self.logger.warning(message, *args)
