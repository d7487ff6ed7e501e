"""A local worker's handle: its pid and creation time."""

from __future__ import annotations

from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class LocalHandle:
    """A local worker: its pid and the process's creation time (guards against pid reuse)."""

    pid: int
    create_time: float

    def process(self) -> psutil.Process | None:
        """The process if it still runs and is the one launched, else ``None``."""
        try:
            proc = psutil.Process(self.pid)
            if abs(proc.create_time() - self.create_time) > 0.01:
                return None
            return proc
        except psutil.Error:
            return None
