"""How a worker judges its controller's silence (see docs/concepts.md, "Heartbeats").

A controller that has sent nothing for ``seconds_heartbeat_timeout`` is gone, unless its
machine still acknowledges the worker's heartbeats: then its process is up but cannot
run (another of its threads holds the GIL in a long call into C code, or it is stopped),
and the worker waits for it up to ``seconds_busy_silence``. And silence the worker did
not hear because its own thread could not run (its task held the GIL) is not counted.
"""

from __future__ import annotations

import logging
from typing import Any

from pycrew.wire import clock, transport

log = logging.getLogger("pycrew.worker")


class ControllerSilence:
    """The worker's comms thread's view of its controller's silence."""

    def __init__(self) -> None:
        self.seconds_heartbeat_timeout = 20.0  # until the controller's WELCOME says (configure)
        self.seconds_busy_silence = 600.0
        self._turn = clock.monotonic()
        self._noted = -1.0

    def configure(self, welcome: dict[str, Any]) -> None:
        """Take the controller's settings from its WELCOME (older controllers send fewer)."""
        self.seconds_heartbeat_timeout = float(welcome.get("seconds_heartbeat_timeout", self.seconds_heartbeat_timeout))
        self.seconds_busy_silence = float(welcome.get("seconds_busy_silence", self.seconds_busy_silence))

    def credit(self, now: float, last_seen: float, seconds_heartbeat: float) -> float | None:
        """``last_seen`` moved on by the time the calling thread could not run since its
        last turn, or ``None`` if it ran as usual (its turns wait at most two heartbeat
        intervals: a read, or the lock another reader holds)."""
        gap, self._turn = now - self._turn, now
        if gap > 2 * seconds_heartbeat + 1.0:
            return min(now, last_seen + gap - seconds_heartbeat)
        return None

    def gone(self, now: float, last_seen: float, channel: transport.Channel | None, seconds_heartbeat: float) -> bool:
        """Whether a controller last heard from at ``last_seen`` is gone."""
        silent = now - last_seen
        if silent <= self.seconds_heartbeat_timeout:
            return False
        if not transport.busy_not_gone(channel, silent, self.seconds_busy_silence, seconds_heartbeat):
            return True
        if self._noted != last_seen:  # once per silence
            self._noted = last_seen
            log.warning(
                "the controller has sent nothing for %.1f s, but its machine still acknowledges the connection "
                "(its process is up and cannot run: a long call into C code, or stopped); waiting for it up to "
                "seconds_busy_silence=%g s", silent, self.seconds_busy_silence,
            )
        return False
