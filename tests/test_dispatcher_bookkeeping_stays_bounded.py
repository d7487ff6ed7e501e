"""State the controller keeps per worker or per connection is let go with them.

From a probe of a long-lived controller (each test failed on d9529bb): the scaler kept an
entry per failed launch for good (126 after 5 rounds of a flaky initializer), and the
dispatcher kept the id of every connection it had sent several tasks to while its queue
never emptied (381 after 382 workers under tasks_max).
"""

from __future__ import annotations

import socket
import threading
import time

from helpers import fail_first_launches, sleep_then
from support import wait_for


def test_failed_launches_leave_no_entry_in_the_scaler(make_controller, tmp_path):
    c = make_controller("local", workers=1, launch_max=10, initializer=fail_first_launches,
                        initargs=(str(tmp_path / "count"), 4)).start()
    assert c.submit(abs, -3).result(timeout=120) == 3
    assert c.summary().launcher["launch_failures"] >= 4
    assert len(c.launcher.by_instance) <= 1, sorted(c.launcher.by_instance)


def test_connections_gone_are_forgotten_while_the_queue_stays_full(make_controller):
    c = make_controller("local", workers=2, tasks_max=4).start()
    futures = [c.submit(sleep_then, 0.002, i) for i in range(400)]
    d = c._dispatcher
    most = 0
    deadline = time.monotonic() + 120
    while c.summary().controller.queued > 20 and time.monotonic() < deadline:
        most = max(most, len(d._holding))
        time.sleep(0.05)
    assert [f.result(timeout=120) for f in futures] == list(range(400))
    assert c.summary().launcher["launches"] >= 50  # the workers came and went
    assert most <= 8, f"{most} connection ids kept with 2 workers"
    wait_for(lambda: len(d._holding) <= 2, 30, message="ids of closed connections kept")


def _admitted_counts(d) -> tuple[int, int]:
    """(the dispatcher's count of workers it admitted, the count by a scan of its table),
    read together on its thread."""
    done = threading.Event()
    counts: list[tuple[int, int]] = []

    def read() -> None:
        counts.append((d.workers_admitted, sum(1 for conn in d.conns.values() if conn.instance is not None)))
        done.set()

    d.call_soon(read)
    assert done.wait(10), "the dispatcher did not run a call"
    return counts[0]


def test_the_count_of_admitted_workers_follows_workers_and_strangers_coming_and_going(make_controller):
    """The heartbeat rate follows the workers admitted, counted as they come and go (a count
    by scanning every connection cost each tick 450 us at 5,000 workers): after 50 workers
    came and went under tasks_max and strangers opened and closed connections, the count is
    the table's, and it falls to 0 once the workers left idle."""
    from pycrew.wire.transport import split_url
    from pycrew.wire.transport.sockets import PREAMBLE

    c = make_controller("local", workers=2, tasks_max=2, seconds_idle=2).start()
    d = c._dispatcher
    _, host, port = split_url(d.server.address)
    futures = [c.submit(sleep_then, 0.002, i) for i in range(100)]
    strangers = []
    for _ in range(10):
        s = socket.create_connection((host, port), timeout=5)
        s.sendall(PREAMBLE)
        strangers.append(s)
    assert [f.result(timeout=120) for f in futures] == list(range(100))
    assert c.summary().launcher["launches"] >= 40  # the workers came and went
    counted, scanned = _admitted_counts(d)
    assert counted == scanned and counted <= 4, (counted, scanned)
    for s in strangers:
        s.close()
    wait_for(lambda: c.summary().controller.workers_online == 0, 60, message="the workers to leave")
    wait_for(lambda: _admitted_counts(d) == (0, 0), 30, message=f"no admitted worker counted: {_admitted_counts(d)}")
