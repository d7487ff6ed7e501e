"""Scale: 200 connected local workers and 100,000 queued no-op tasks (short: 50 and 10,000).

Three phases, each measured: every worker launches and connects (each holds one task that
waits at a barrier, so all of them are needed at once); the no-op tasks are pushed while
every worker is busy, so they all sit in the queue together (the controller's memory per
queued task); the barrier opens and the workers drain the queue (tasks per second).
Every task must resolve exactly once with its own value.
"""

from __future__ import annotations

import collections
import os
import sys
import time

import cloudpickle
import pytest

from helpers import identity

pytestmark = pytest.mark.slow

FULL = os.environ.get("PYCREW_STRESS") == "full"
WORKERS = 200 if FULL else 50
TASKS = 100_000 if FULL else 10_000
MB = 1024 * 1024


def wait_at_barrier(path: str, seconds: float) -> int:
    """Hold a worker until ``path`` exists (at most ``seconds``); return the worker's pid."""
    deadline = time.monotonic() + seconds
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.05)
    return os.getpid()


@pytest.fixture(autouse=True)
def _tasks_by_value():
    """Workers cannot import this test module: send its functions by value."""
    module = sys.modules[__name__]
    cloudpickle.register_pickle_by_value(module)
    yield
    cloudpickle.unregister_pickle_by_value(module)


@pytest.mark.timeout(1800 if FULL else 600)
def test_many_workers_and_a_long_queue_deliver_every_result_once(make_controller, tmp_path, figures, memory):
    connect_limit = 900 if FULL else 300
    c = make_controller(
        "local",
        workers=WORKERS,
        seconds_launch=connect_limit,  # 200 interpreters start on 2 cores: give them time
        seconds_terminate=300,
        log_dir=str(tmp_path / "logs"),
    ).start()
    barrier = tmp_path / "open"
    rss_start = memory.rss()
    memory.reset_peak()

    t0 = time.monotonic()
    for k in range(WORKERS):
        c.push(wait_at_barrier, args=(str(barrier), connect_limit), name=f"barrier{k}")
    deadline = t0 + connect_limit
    online = 0
    while time.monotonic() < deadline:
        online = c.summary().controller.workers_online
        if online == WORKERS:
            break
        time.sleep(0.1)
    connect_seconds = time.monotonic() - t0
    if online < WORKERS:
        barrier.touch()
        pytest.fail(f"only {online} of {WORKERS} workers connected within {connect_limit} s")
    rss_connected = memory.rss()

    t1 = time.monotonic()
    for i in range(TASKS):
        c.push(identity, args=(i,), name=f"n{i}")
    push_seconds = time.monotonic() - t1
    queued = c.summary().controller.queued
    rss_queued = memory.rss()

    t2 = time.monotonic()
    barrier.touch()
    finished = c.wait(timeout=connect_limit)
    drain_seconds = time.monotonic() - t2
    results = c.collect()
    rss_done = memory.rss()
    s = c.summary()
    busy = sum(1 for w in s.workers if w.complete > 1)
    figures(
        workers=WORKERS,
        tasks=TASKS,
        connect_seconds_all_workers=connect_seconds,
        push_seconds=push_seconds,
        pushes_per_second=TASKS / push_seconds,
        queued_at_once=queued,
        drain_seconds=drain_seconds,
        tasks_per_second=TASKS / drain_seconds,
        workers_that_ran_noops=busy,
        rss_start_mib=rss_start / MB,
        rss_connected_mib=rss_connected / MB,
        rss_queued_mib=rss_queued / MB,
        bytes_per_queued_task=(rss_queued - rss_connected) / max(queued, 1),
        rss_done_mib=rss_done / MB,
        rss_peak_mib=memory.peak() / MB,
        retries=s.controller.retries,
    )
    assert finished, f"{c.unresolved()} tasks unresolved after {connect_limit} s"
    assert queued >= TASKS * 0.9, f"only {queued} of {TASKS} tasks were queued while every worker was busy"
    counts = collections.Counter(r.name for r in results)
    assert len(results) == TASKS + WORKERS and len(counts) == TASKS + WORKERS, (
        f"{len(results)} results for {TASKS + WORKERS} tasks, {len(counts)} distinct names"
    )
    wrong = [r for r in results if r.name.startswith("n") and (r.status != "success" or r.result != int(r.name[1:]))]
    assert not wrong, f"{len(wrong)} no-op tasks did not return their own value, e.g. {wrong[:3]}"
    pids = {r.result for r in results if r.name.startswith("barrier")}
    assert len(pids) == WORKERS, f"the barrier tasks ran on {len(pids)} distinct workers, not {WORKERS}"
