"""A launch that took longer than ``seconds_launch``: :func:`launch_overdue`.

Two things can take too long: the worker, to connect once the launch hook handed back its
handle (a failed launch: it is ended, and the slot launches again after a backoff), or the
launch hook itself, which has not returned (``sbatch`` against a scheduler daemon that does
not answer, a cloud API that hangs). A new call then would wait on the same platform, and
each retry added one more (``launch_max`` submits in flight at once against a daemon
already too busy to answer, each the scheduler layer tries ``command_attempts`` times). So
the failure is counted (the :class:`~pycrew.LaunchError` still comes after ``launch_max``
of them in a row, ``launch_max`` x ``seconds_launch`` after the call) but the slot waits on
for the same call, its token still valid: when the call returns, its worker has
``seconds_launch`` to connect and is used as any other. A parked slot (``launch_max``
failures while other workers serve) waits on for its call without counting.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from pycrew.control.launch_reports import not_connected
from pycrew.control.slots import CONNECTED

if TYPE_CHECKING:
    from pycrew.control.scaler import Scaler
    from pycrew.control.slots import Slot

log = logging.getLogger("pycrew.control.scaler")


def launch_overdue(scaler: Scaler, slot: Slot, now: float) -> None:
    """The launch in ``slot`` (launching) has run past ``seconds_launch`` at ``now`` (dispatcher thread)."""
    options = scaler.options
    reason = not_connected(options.seconds_launch, slot.handle_known, now - slot.hook_since)
    parked = slot.failures >= options.launch_max and scaler.census.counts[CONNECTED] > 0  # (see launch_watch)
    if slot.handle_known or (slot.failures + 1 >= options.launch_max and not parked):  # the last of launch_max
        scaler._launch_failed(slot, reason, now)
        return
    if parked:  # other workers serve the tasks: wait on for the call, counting nothing more
        slot.launched_at = now
        log.info("worker %d of %r (parked): %s; waiting on for that call", slot.index, scaler.info.controller, reason)
        return
    slot.failures += 1
    slot.launch_failures += 1  # (summary's count: one per seconds_launch overdue, as the warnings say)
    slot.launched_at = now  # the next seconds_launch
    scaler.last_launch_error = reason
    log.warning(
        "worker %d of %r: failed launch %d of %d: %s; waiting on for that call instead of making another "
        "(its worker is used if it returns in time)", slot.index, scaler.info.controller, slot.failures,
        options.launch_max, reason,
    )
