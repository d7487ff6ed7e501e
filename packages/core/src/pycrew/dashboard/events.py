"""The launcher's events, derived by watching the worker slots (launch, connect, exit, failures).

The launcher keeps counters per slot (launches, connections, crashes, failed launches)
and the last launch error. :class:`SlotWatcher` compares them with what it saw on its
previous look (once a second, on the dashboard's own thread) and turns the differences
into events. Counters rather than states, so that a worker that launches, connects and
exits between two looks still shows all three.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pycrew.control.scaler import Scaler
    from pycrew.control.slots import Slot

#: Events kept (the oldest are dropped first).
EVENTS_MAX = 200
#: How long a failed launch waits for the platform's reason before it takes the last one known.
SECONDS_REASON_GRACE = 5.0
CRASH_DETAIL = "lost without a goodbye: crashed, killed, or silent for seconds_heartbeat_timeout"
EXIT_DETAIL = "said goodbye: seconds_idle, seconds_wall or tasks_max reached, or asked to stop"


@dataclass
class LaunchEvent:
    """One thing that happened to a worker slot.

    Attributes:
        time: when the dashboard saw it (epoch seconds; at most a second late).
        kind: ``launch``, ``connect``, ``exit``, ``crash``, ``launch failure`` or ``launch error``.
        worker: the slot (1..workers), ``None`` for launcher-wide events.
        instance: the worker instance, when known.
        detail: what the dashboard knows about it (host and pid, exit reason, the
            platform's reason for a failed launch).
    """

    time: float
    kind: str
    worker: int | None
    instance: str | None
    detail: str

    def as_json(self) -> dict[str, Any]:
        """The event as a JSON-ready dict."""
        return {
            "time": self.time,
            "kind": self.kind,
            "worker": self.worker,
            "instance": self.instance,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class _Seen:
    launches: int
    instances: int
    launch_failures: int
    crashes: int
    connected: bool
    instance: str | None


def _seen(slot: Slot) -> _Seen:
    # Read without a lock from the dispatcher's thread's objects: each attribute read is
    # atomic, and a half-updated slot is seen whole on the next look (counters only grow).
    return _Seen(
        slot.launches,
        slot.instances,
        slot.launch_failures,
        slot.crashes,
        slot.state == "connected",
        slot.instance or slot.last_instance,
    )


class SlotWatcher:
    """Turns the launcher's per-slot counters into :class:`LaunchEvent` records."""

    def __init__(self, launcher: Scaler, launch_max: int) -> None:
        self.launcher = launcher
        self.launch_max = launch_max
        self.events: collections.deque[LaunchEvent] = collections.deque(maxlen=EVENTS_MAX)
        self._seen: dict[int, _Seen] = {}
        self._last_error = launcher.last_launch_error
        self._gave_up = False
        self._waiting: list[tuple[LaunchEvent, str, float]] = []  # failed launches waiting for a reason

    def _add(self, kind: str, worker: int | None, instance: str | None, detail: str) -> LaunchEvent:
        event = LaunchEvent(time.time(), kind, worker, instance, detail)
        self.events.append(event)
        return event

    def look(self, now: float) -> None:
        """Compare every slot with the previous look and record what changed (``now``: monotonic)."""
        for slot in self.launcher.slots:
            seen = _seen(slot)
            before = self._seen.get(slot.index, _Seen(0, 0, 0, 0, False, None))
            self._seen[slot.index] = seen
            self._slot_events(slot, before, seen, now)
        self._reasons(now)
        error = self.launcher.error
        if error is not None and not self._gave_up:
            self._gave_up = True
            text = " ".join(str(error).split())
            self._add("launch error", None, None, f"the launcher gave up: {text[:400]}{'…' if len(text) > 400 else ''}")

    def _slot_events(self, slot: Slot, before: _Seen, seen: _Seen, now: float) -> None:
        new_instances = seen.instances - before.instances
        exits = int(before.connected) + new_instances - int(seen.connected)
        crashes = min(max(0, seen.crashes - before.crashes), max(0, exits))
        exits_left = max(0, exits)
        if before.connected and exits_left:  # the instance seen connected last time is gone
            last = exits_left == 1  # the slot keeps the reason of its last exit only
            self._exit(slot.index, before.instance, crashed=crashes > 0, reason=slot.exit_reason if last else "")
            crashes -= int(crashes > 0)
            exits_left -= 1
        launches = max(0, seen.launches - before.launches)
        for i in range(launches):  # only the newest one's instance is known
            instance = seen.instance if i == launches - 1 else None
            self._add("launch", slot.index, instance, f"launch {before.launches + i + 1} of slot {slot.index}")
        for i in range(max(0, new_instances)):
            if i == new_instances - 1:  # the slot holds its newest instance's host and pid only
                self._add("connect", slot.index, seen.instance, f"host {slot.host}, pid {slot.pid}")
            else:
                self._add("connect", slot.index, None, "an earlier instance, replaced within the same second")
        failures = max(0, seen.launch_failures - before.launch_failures)
        for i in range(failures):
            in_a_row = max(1, slot.failures - (failures - 1 - i))
            said = f"failed launch {in_a_row} in a row (launch_max={self.launch_max})"
            event = self._add("launch failure", slot.index, None, f"{said}; waiting for the reason")
            self._waiting.append((event, said, now + SECONDS_REASON_GRACE))
        for i in range(exits_left):  # a worker that came and went between two looks
            last = i == exits_left - 1
            self._exit(slot.index, seen.instance, crashed=crashes > 0, reason=slot.exit_reason if last else "")
            crashes -= int(crashes > 0)

    def _exit(self, worker: int, instance: str | None, crashed: bool, reason: str = "") -> None:
        """An exit event; ``reason`` is the worker's own (its goodbye) or how it was lost, when known."""
        self._add("crash" if crashed else "exit", worker, instance, reason or (CRASH_DETAIL if crashed else EXIT_DETAIL))

    def _reasons(self, now: float) -> None:
        """Give failed launches the platform's reason: a new last_launch_error, or after a grace period the last one."""
        error = self.launcher.last_launch_error
        changed = error != self._last_error
        self._last_error = error
        if changed and not self._waiting and error:
            self._add("launch error", None, None, error)
            return
        keep = []
        for event, said, deadline in self._waiting:
            if changed or now >= deadline:
                event.detail = f"{said}: {error or 'the launcher reported no reason'}"
            else:
                keep.append((event, said, deadline))
        self._waiting = keep

    def recent(self) -> list[dict[str, Any]]:
        """The events, newest first, as JSON-ready dicts."""
        return [e.as_json() for e in reversed(list(self.events))]
