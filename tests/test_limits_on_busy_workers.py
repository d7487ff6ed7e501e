"""Time limits, cancels and ``tasks_max`` when tasks wait on a worker behind others.

From a probe; each test failed on 866a79e (the code before the fix):
- a quick task with a time limit whose result waited, unsent, behind a task that holds the
  GIL was charged that task's time: it timed out and its worker was replaced (5 of 5);
- the limit of a task that holds the GIL was not enforced when an unreported task without
  one came before it (2 of 2), nor when it overran and ended within the grace period (4 of 4);
- the tasks that waited behind a task whose worker was replaced counted as retries and as
  second attempts, though they never ran;
- a task cancelled before it started, with ``tasks_max``, left its worker taking no more
  tasks while it waited for one more (a hang: 4 of 5);
- ``summary()`` counted a cancelled task that its worker still ran as running and resolved.
"""

from __future__ import annotations

import os
import time

import pycrew
from helpers import big_result, busy_loop, hog, hold_gil, identity, ignore_interrupts, ignore_interrupts_then_raise
from support import wait_for


def _hog_size(seconds: float) -> int:
    """The ``n`` for which :func:`helpers.hog` computes about ``seconds`` on this machine."""
    t0 = time.perf_counter()
    hog(10**7)
    return int(seconds * 10**7 / max(time.perf_counter() - t0, 1e-3))


def _grace(c: pycrew.Controller, seconds: float) -> None:
    """The dispatcher's grace period past a time limit or a cancel (5 s) made short."""
    d = c._dispatcher
    d.settings = type(d.settings)(**{**d.settings.__dict__, "seconds_grace": seconds})


def _warm(c: pycrew.Controller) -> None:
    """Short tasks first: the dispatcher then sends the next ones together (prefetching); and
    hold_gil's first call, which imports ctypes."""
    assert c.submit(hold_gil, 0.0).result(timeout=60) == "held"
    assert [c.submit(identity, i).result(timeout=60) for i in range(10)] == list(range(10))


def test_a_quick_limited_task_is_not_charged_the_time_of_the_task_after_it(make_controller):
    c = make_controller("local", workers=1).start()
    _warm(c)
    _grace(c, 1.0)
    # A task on the CPU first: the two after it reach the worker while it runs, and its result
    # goes as it ends; the quick one's then waits to go with the next results.
    first = c.submit(busy_loop, 0.3)
    limited = c.submit_task(identity, (99,), seconds_timeout=0.5)
    holder = c.submit(hold_gil, 3.0)
    assert limited.result(timeout=60) == 99
    assert holder.result(timeout=60) == "held" and first.result(timeout=60)
    s = c.summary()
    assert (s.controller.timeout, s.controller.retries) == (0, 0), s.controller
    assert s.workers[0].instances == 1, "the worker was replaced"


def test_the_limit_of_a_task_behind_an_unreported_one_is_enforced(make_controller):
    c = make_controller("local", workers=1).start()
    _warm(c)
    _grace(c, 1.0)
    c.submit(busy_loop, 0.3)
    c.submit(identity, 1)  # no limit; its result waits behind the next task
    t0 = time.monotonic()
    holder = c.submit_task(hold_gil, (8.0,), seconds_timeout=0.5)
    exc = holder.exception(timeout=60)
    assert isinstance(exc, pycrew.TaskTimeoutError), exc
    assert time.monotonic() - t0 < 6, "resolved when the task ended, not at its limit and grace"


def test_a_task_that_overran_its_limit_holding_the_gil_is_a_timeout(make_controller):
    c = make_controller("local", workers=1).start()  # the grace period (5 s) outlasts the task
    _warm(c)
    n = _hog_size(0.8)
    for i in range(4):  # before: a success, unless the worker's interrupt came between its end and the next task
        c.push(hog, (n,), name=f"late{i}", seconds_timeout=0.2)
    assert c.wait(timeout=60)
    results = c.collect()
    assert [r.status for r in results] == ["timeout"] * 4, results
    assert c.summary().workers[0].instances == 1  # not replaced: it ended by itself
    assert c.submit(identity, 1).result(timeout=30) == 1


def test_sending_the_results_waiting_before_a_limited_task_is_not_its_time(make_controller):
    """The results a worker sends before a task with a time limit starts (a large one takes a
    while) are not counted in its limit (on 46189b7 a quick task timed out behind one, 5 of 6)."""
    c = make_controller("local", workers=1).start()
    _warm(c)
    statuses = []
    for k in range(3):
        large = c.submit(big_result, 80)  # sent in ~50 ms here (the old code failed at 80 MB and 0.05 s)
        quick = c.submit_task(identity, (k,), seconds_timeout=0.05)
        statuses.append("success" if quick.exception(timeout=60) is None else type(quick.exception()).__name__)
        assert len(large.result(timeout=60)) == 80 << 20
    assert statuses == ["success"] * 3


def test_a_task_that_raised_past_its_limit_uninterrupted_is_a_timeout(make_controller):
    c = make_controller("local", workers=1).start()
    c.push(ignore_interrupts_then_raise, (1.0,), name="late", seconds_timeout=0.2)
    assert c.wait(timeout=60)
    r = c.pop()
    assert r.status == "timeout" and "ended late" in r.error, r  # (before: the ValueError)


def test_a_task_that_held_the_worker_while_a_cancelled_one_waited_unsent_counts_its_attempt(make_controller):
    """A cancelled task whose result waited unsent behind one that holds the GIL: when the
    worker is replaced, the task it ran is a retry (on 46189b7 it was taken as never started)."""
    c = make_controller("local", workers=1).start()
    _warm(c)
    _grace(c, 1.0)
    c.submit(busy_loop, 0.3)
    c.push(identity, (1,), name="A")
    c.push(hold_gil, (4.0,), name="B")
    time.sleep(0.8)  # A ended, its result waits behind B
    assert c.cancel("A") == 1
    assert c.wait(timeout=60)
    results = {r.name: r for r in c.collect()}
    assert results["B"].status == "success" and results["B"].attempts == 2, results["B"]
    assert c.summary().controller.retries == 1


def test_the_tasks_behind_one_its_worker_was_replaced_for_are_not_retries(make_controller, tmp_path):
    c = make_controller("local", workers=1).start()
    _warm(c)
    _grace(c, 1.0)
    c.push(ignore_interrupts, (30.0,), name="stubborn", seconds_timeout=0.3)
    for i in range(3):
        c.push(os.getpid, name=f"behind{i}")
    assert c.wait(timeout=90)
    results = {r.name: r for r in c.collect()}
    assert results["stubborn"].status == "timeout"
    behind = [results[f"behind{i}"] for i in range(3)]
    assert all(r.status == "success" and r.attempts == 1 for r in behind), behind
    assert c.summary().controller.retries == 0


def test_a_task_cancelled_before_it_started_counts_toward_tasks_max(make_controller):
    c = make_controller("local", workers=1, tasks_max=13).start()
    _warm(c)  # eleven tasks
    running = c.submit(time.sleep, 1.0)
    waiting = c.submit(identity, 5)
    wait_for(lambda: c.summary().controller.running == 2, 10, message="both tasks sent to the worker")
    assert waiting.cancel()
    assert running.result(timeout=60) is None
    # The worker counted twelve tasks run and the dispatcher thirteen sent (the cancelled one too):
    # the worker waited for one more that never came. Now it leaves, and a new one runs the next.
    assert c.submit(identity, 7).result(timeout=30) == 7


def test_summary_does_not_count_a_cancelled_task_still_on_its_worker_as_running(make_controller):
    c = make_controller("local", workers=1).start()
    _warm(c)
    future = c.submit(ignore_interrupts, 3.0)
    wait_for(lambda: c.summary().controller.running == 1, 30, message="the task to run")
    assert c.cancel(all=True) == 1 and future.cancelled()
    s = c.summary().controller
    assert (s.pushed, s.queued, s.running, s.resolved, s.abandoned) == (12, 0, 0, 12, 0), s
