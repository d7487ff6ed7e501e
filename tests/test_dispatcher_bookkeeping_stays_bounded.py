"""State the controller keeps per worker or per connection is let go with them.

From a probe of a long-lived controller (each test failed on d9529bb): the scaler kept an
entry per failed launch for good (126 after 5 rounds of a flaky initializer), and the
dispatcher kept the id of every connection it had sent several tasks to while its queue
never emptied (381 after 382 workers under tasks_max).
"""

from __future__ import annotations

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
