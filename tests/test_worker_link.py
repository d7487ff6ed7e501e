"""How a worker reads its link: idle reads on the main thread, hand-over during long tasks."""

from __future__ import annotations

import time

import pytest

from helpers import busy_loop, identity, sleep_then
from pycrew.wire.transport import TRANSPORTS

pytestmark = pytest.mark.parametrize("wire", TRANSPORTS)


def test_a_long_run_of_short_tasks_keeps_the_link_alive(make_controller, wire):
    """Prefetched short tasks keep the main thread busy for many heartbeat timeouts.

    Somebody must still read the controller's heartbeats, or the worker would think the
    controller gone (and the controller would lose the worker). ``seconds_busy_silence``
    at the heartbeat timeout: no patience for a silent side whose machine answers, which
    would hide a reader that fell behind.
    """
    c = make_controller(
        "local", workers=1, wire=wire, seconds_heartbeat=0.1, seconds_heartbeat_timeout=0.6, seconds_busy_silence=0.6
    ).start()
    futures = [c.submit(sleep_then, 0.002, i) for i in range(1500)]  # ~3 s of back-to-back work
    assert [f.result(timeout=120) for f in futures] == list(range(1500))
    s = c.summary()
    assert s.workers[0].instances == 1 and s.workers[0].crashes == 0, "the worker lost its link"
    assert s.controller.retries == 0


def test_cancel_reaches_a_task_that_spins_without_reading(make_controller, wire):
    c = make_controller("local", workers=1, wire=wire).start()
    future = c.submit(busy_loop, 60.0)
    deadline = time.monotonic() + 30
    while not future.running() and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)  # past the hand-over: the comms thread is the reader now
    t0 = time.monotonic()
    assert future.cancel(), "a running task's future cancels"
    assert c.submit(sleep_then, 0.0, "next").result(timeout=30) == "next"
    assert time.monotonic() - t0 < 10, "the worker did not stop the cancelled task promptly"
    assert c.summary().workers[0].instances == 1, "the worker was replaced instead of interrupted"


def test_round_trips_alternate_with_idle_periods(make_controller, wire):
    """The reader role moves between threads on every task; nothing may stall or be lost."""
    c = make_controller("local", workers=1, wire=wire).start()
    for i in range(200):
        assert c.submit(sleep_then, 0.015 if i % 3 == 0 else 0.0, i).result(timeout=30) == i
    assert c.summary().workers[0].instances == 1


def test_bursts_of_tasks_lose_no_frame(make_controller, wire):
    """Large bursts of small tasks (sent by value, as in a notebook) on two workers.

    Over NNG, a burst of TASKS frames to one pipe used to overflow the pipe's two-message
    queue; NNG drops what does not fit, and the dispatcher had to replace the worker to
    recover the tasks. Now every TASKS frame is acknowledged and at most two are in flight.
    """
    c = make_controller("local", workers=2, wire=wire).start()
    for burst in range(3):
        futures = [c.submit(identity, i) for i in range(10_000)]
        assert [f.result(timeout=120) for f in futures] == list(range(10_000)), f"burst {burst}"
    s = c.summary()
    assert s.controller.retries == 0, "a task had to run again"
    assert sum(w.instances for w in s.workers) == 2, "a worker was replaced"
