"""How often heartbeats go each way, given how many workers are connected: :class:`BeatRate`.

Heartbeats are most of an idle dispatcher's work that grows with the number of workers
(at the default 2 s: 2.9 % of a core at a thousand idle workers, 15.5 % at five thousand,
docs/benchmarks.md), for nothing but proof of life. Past ``heartbeats_per_second`` beats
each way (500 by default: a thousand workers at 2 s), the interval grows with the number of
connections, as dask's scheduler does (``heartbeat_interval``), and the silence timeout
with it in the same ratio: at five thousand workers a beat each way every 10 s, and a
worker (or the controller) silent for 100 s is gone. ``seconds_heartbeat`` and
``seconds_heartbeat_timeout`` stay the floor.

Every heartbeat of the dispatcher carries the current interval and timeout (see
``pycrew.wire.protocol.encode_pace``), and so does the WELCOME of a new worker. The rate changes only when it is off by half
(1.5 times) or more, so a pool that breathes around a threshold does not send a PACE to
every worker at each breath. When the interval shortens, workers still beat at the old
pace until their frame arrives and they next wake: for the old timeout, the dispatcher
holds the old timeout against them.
"""

from __future__ import annotations

from pycrew.wire import protocol as p

#: The rate changes when the wanted interval is this many times longer or shorter than the current one.
HYSTERESIS = 1.5


class BeatRate:
    """The dispatcher's current heartbeat interval and silence timeout (dispatcher thread).

    Args:
        seconds_heartbeat: the configured interval, the shortest used.
        seconds_heartbeat_timeout: the configured timeout, the shortest used.
        heartbeats_per_second: beats each way per second the interval is stretched to stay under.
    """

    def __init__(self, seconds_heartbeat: float, seconds_heartbeat_timeout: float, heartbeats_per_second: float) -> None:
        if not heartbeats_per_second > 0:
            raise ValueError(f"heartbeats_per_second must be > 0, not {heartbeats_per_second!r}")
        self.base = seconds_heartbeat
        self.base_timeout = seconds_heartbeat_timeout
        self.per_second = heartbeats_per_second
        self.interval = seconds_heartbeat
        self.timeout = seconds_heartbeat_timeout
        self._old_timeout = seconds_heartbeat_timeout  # held against silence until _old_until (see above)
        self._old_until = 0.0
        self.frame = p.encode_pace(self.interval, self.timeout)  # the dispatcher's heartbeat

    def wanted(self, connections: int) -> float:
        """The interval for ``connections`` connected workers."""
        return max(self.base, connections / self.per_second)

    def update(self, connections: int, now: float) -> bool:
        """Follow the number of connections; whether the interval (and timeout) changed."""
        wanted = self.wanted(connections)
        if max(wanted / self.interval, self.interval / wanted) < HYSTERESIS:
            return False
        if wanted < self.interval:  # workers beat at the old pace until they hear of the new one
            self._old_timeout, self._old_until = self.timeout, now + self.timeout
        self.interval = wanted
        self.timeout = self.base_timeout * wanted / self.base
        self.frame = p.encode_pace(self.interval, self.timeout)
        return True

    def silence_limit(self, now: float) -> float:
        """How long a worker may be silent at ``now`` before it is gone (or busy: see upkeep)."""
        return max(self.timeout, self._old_timeout) if now < self._old_until else self.timeout

    def settings(self) -> dict[str, float]:
        """The values a worker is told (its WELCOME, a PACE frame)."""
        return {"seconds_heartbeat": self.interval, "seconds_heartbeat_timeout": self.timeout}
