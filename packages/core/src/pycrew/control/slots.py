"""The scaler's slots: the ``workers`` places a worker can occupy, and their census."""

from __future__ import annotations

from typing import Any

IDLE, LAUNCHING, CONNECTED = "idle", "launching", "connected"


class SlotCensus:
    """How many slots are in each state, and which are launching, kept as states change.

    The dispatcher's tick asks for the supply (launching or connected) and looks at the
    launching slots only: with thousands of workers connected, neither scans every slot.
    """

    __slots__ = ("counts", "launching")

    def __init__(self) -> None:
        self.counts = {IDLE: 0, LAUNCHING: 0, CONNECTED: 0}
        self.launching: dict[int, Slot] = {}  # by slot index, in the order they started launching


class Slot:
    """One of the ``workers`` places a worker can occupy (its state is counted in ``census``)."""

    __slots__ = (
        "_census",
        "_state",
        "crashes",
        "exit_reason",
        "failures",
        "handle",
        "handle_known",
        "hook_since",
        "host",
        "index",
        "initializing_since",
        "instance",
        "instances",
        "last_handle",
        "last_handle_known",
        "last_instance",
        "launch_failures",
        "launched_at",
        "launches",
        "pid",
        "retry_after",
        "seconds_initializer",
        "wall_exits",
    )

    def __init__(self, index: int, census: SlotCensus) -> None:
        self.index = index
        self._census = census
        self._state = IDLE
        self._census.counts[IDLE] += 1
        self.exit_reason = ""  # why the last instance of this slot left (its BYE reason, or how it was lost)
        self.instance: str | None = None
        self.handle: Any = None
        self.handle_known = False
        self.launched_at = 0.0
        self.hook_since = 0.0  # when its launch hook was called (see pycrew.control.overdue_launch)
        self.initializing_since = 0.0  # when its worker connected and began the initializer (0: it has not)
        self.failures = 0
        self.launches = 0
        self.launch_failures = 0
        self.instances = 0
        self.retry_after = 0.0
        self.host: str | None = None
        self.pid: int | None = None
        self.last_instance: str | None = None
        self.last_handle: Any = None  # the handle of the latest instance whose launch returned one (kept for logs)
        self.last_handle_known = False
        self.crashes = 0
        self.seconds_initializer = 0.0  # what its workers' initializers took, by their reports
        self.wall_exits = 0  # its workers in a row that reached seconds_wall before their first task (see Scaler)

    @property
    def state(self) -> str:
        """``idle``, ``launching`` or ``connected``."""
        return self._state

    @state.setter
    def state(self, state: str) -> None:
        census = self._census
        census.counts[self._state] -= 1
        census.counts[state] += 1
        if state == LAUNCHING:
            census.launching[self.index] = self
        elif self._state == LAUNCHING:
            del census.launching[self.index]
        self._state = state
