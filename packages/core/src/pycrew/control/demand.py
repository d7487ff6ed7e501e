"""When pushed tasks that found no worker with room make the controller scale out (dispatcher thread).

Scaling at the next tick would wait up to 0.1 s, so the dispatcher calls ``on_demand``
:data:`SECONDS_DEMAND` after pushes left tasks queued: a loop of pushes goes out as one
batch of launches (one job array on a scheduler), not one launch per push.

For remote launchers a launch is a submission to a scheduler or a cloud API, and workers
take seconds to start, so the window stays open while pushes keep coming (each one
extends it by :data:`SECONDS_DEMAND`), up to ``demand_window_max`` after the first: a loop
whose tasks pickle slowly (large arguments) still becomes one array. While the window is
open the tick does not scale either (:attr:`DemandWindow.demand_pending`).
"""

from __future__ import annotations

from collections.abc import Callable

#: How long after a push that left tasks queued the controller scales out.
SECONDS_DEMAND = 0.005
#: The longest the window stays open for remote launchers while pushes keep coming.
SECONDS_DEMAND_REMOTE_MAX = 0.1


class DemandWindow:
    """The scale-out window of pushed tasks (mixed into Dispatcher)."""

    def _init_demand(self) -> None:
        # Called (dispatcher thread) when the window closes: the controller scales out then.
        self.on_demand: Callable[[float], None] | None = None
        #: How long after the first push the window may stay open (SECONDS_DEMAND: it never extends).
        self.demand_window_max = SECONDS_DEMAND
        self._demand_at: float | None = None
        self._demand_first = 0.0

    @property
    def demand_pending(self) -> bool:
        """Whether pushed tasks wait for the window to close before the controller scales out."""
        return self._demand_at is not None

    def _pushed_and_queued(self, now: float) -> None:
        """Pushes arrived and left tasks queued: open the window, or extend it up to its maximum."""
        if self.on_demand is None:
            return
        if self._demand_at is None:
            self._demand_first = now
        self._demand_at = min(self._demand_first + self.demand_window_max, now + SECONDS_DEMAND)

    def _demand_due(self, now: float) -> None:
        """Close the window if its time has come, and scale out."""
        if self._demand_at is not None and now >= self._demand_at:
            self._demand_at = None
            if self.on_demand is not None:
                self.on_demand(now)
