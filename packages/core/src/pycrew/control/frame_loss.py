"""When a task frame sent to a worker counts as lost (links that can lose frames: NNG's).

A polyamorous NNG pipe discards a message it cannot queue; the worker's heartbeats report how
many task frames it received, and a worker behind the count once the frames had time to arrive
is replaced, its tasks requeued (see :mod:`pycrew.control.dispatcher`). Time to arrive grows
with the bytes: a 300 MB argument took longer than two heartbeats to arrive, counted as lost,
and went to a new worker to be "lost" again, for good (a probe, on 5b5e0b7).
"""

from __future__ import annotations

from pycrew.control.conn import Conn

#: The slowest link a worker is expected on: a frame not acknowledged after two heartbeats
#: and its bytes at this rate is lost.
BYTES_PER_SECOND = 1_000_000
#: A worker that lost a task's frame is replaced and the task requeued unpenalised, unless the
#: task had been sent this many times: then the loss counts a crash (``crashes_max`` ends it).
BLAMED_AT_ATTEMPT = 3


def had_time_to_arrive(conn: Conn, interval: float, now: float) -> bool:
    """Whether ``conn``'s unacknowledged task frames (sent last at ``conn.last_task_send``)
    had time to arrive: two heartbeat intervals (a worker back from a long call into C code
    reports old counts) and the bytes of the tasks it holds at :data:`BYTES_PER_SECOND`."""
    return now - conn.last_task_send > 2 * interval + conn.bytes_in_flight / BYTES_PER_SECOND


def blamed(conn: Conn) -> bool:
    """Whether the loss counts against the tasks ``conn`` holds (one was sent that often)."""
    return any(task.attempts >= BLAMED_AT_ATTEMPT for task in conn.in_flight.values())
