"""The worker's record of its last task, which decides who works between two tasks."""

from __future__ import annotations

import time

from pycrew.worker.pace import Pace


def run(pace: Pace, work: str, seconds: float) -> bool:
    pace.task_starts()
    t0 = time.monotonic()
    if work == "sleep":
        time.sleep(seconds)
    else:
        while time.monotonic() - t0 < seconds:
            pass
    return pace.task_ended(time.monotonic() - t0)


def waited(pace: Pace) -> bool:
    """Whether a sleeping task counts as waiting, in one of three tries: on a loaded machine
    one try may find the test's thread charged CPU time it did not use while it slept."""
    return any(run(pace, "sleep", 0.02) for _ in range(3))


def test_a_task_that_sleeps_waited_once_the_one_before_was_long_enough_to_time_it() -> None:
    pace = Pace()
    assert not run(pace, "sleep", 0.02), "the first task is not timed: it does not count as waiting"
    assert pace.handover() == Pace.READ_HANDOVER_BUSY
    assert waited(pace)
    assert pace.handover() == Pace.READ_HANDOVER
    assert pace.nap(True, time.monotonic(), time.monotonic()) <= Pace.READ_HANDOVER


def test_a_cpu_bound_task_did_not_wait() -> None:
    pace = Pace()
    run(pace, "sleep", 0.02)
    assert waited(pace)
    assert not run(pace, "spin", 0.02)
    assert pace.handover() == Pace.READ_HANDOVER_BUSY


def test_short_tasks_are_not_timed_and_the_comms_thread_naps_through_them() -> None:
    pace = Pace()
    run(pace, "sleep", 0.02)
    pace.task_starts()
    assert not pace.task_ended(Pace.WAITING_TASK_MIN / 10), "too short to count"
    assert not run(pace, "sleep", 0.02), "a task after a short one is not timed"
    pace.task_starts()
    pace.task_ended(Pace.READ_HANDOVER / 2)
    assert pace.nap(True, time.monotonic(), time.monotonic()) == Pace.SHORT_TASKS_NAP
    assert pace.nap(False, 0.0, time.monotonic()) == 0.05
