"""ResolutionAlarm: a thread sleeps until a count grows by a given amount (the map feeder's
wake-up), with the dispatcher paying one comparison per result."""

from __future__ import annotations

import threading
import time

from pycrew.control.alarm import NEVER, ResolutionAlarm


class Counter:
    def __init__(self) -> None:
        self.n = 0

    def add(self, alarm: ResolutionAlarm) -> None:
        self.n += 1
        alarm.check(self.n)  # what the dispatcher does after each resolved future


def test_a_waiter_wakes_when_the_count_reaches_its_target_and_not_before() -> None:
    alarm, count = ResolutionAlarm(), Counter()
    woke: list[int] = []

    def waiter() -> None:
        alarm.wait(lambda: count.n, 5, timeout=30)
        woke.append(count.n)

    thread = threading.Thread(target=waiter)
    thread.start()
    deadline = time.monotonic() + 10
    while alarm.at == NEVER and time.monotonic() < deadline:
        time.sleep(0.001)
    assert alarm.at == 5, "the waiter's target is the count now plus 5"
    for _ in range(4):
        count.add(alarm)
    thread.join(0.2)
    assert thread.is_alive() and not woke, "woke before the count grew by 5"
    count.add(alarm)
    thread.join(10)
    assert woke == [5] and alarm.at == NEVER, "the fifth result must wake it and disarm the alarm"


def test_a_waiter_gives_up_after_its_timeout() -> None:
    alarm = ResolutionAlarm()
    start = time.monotonic()
    alarm.wait(lambda: 0, 3, timeout=0.05)
    assert time.monotonic() - start < 5, "the timeout did not end the wait"


def test_a_target_already_reached_does_not_wait() -> None:
    alarm = ResolutionAlarm()
    counts = iter([10, 20])  # the count grew past the target between the two looks
    start = time.monotonic()
    alarm.wait(lambda: next(counts), 5, timeout=30)
    assert time.monotonic() - start < 5, "it waited for a target the count had already passed"


def test_two_waiters_the_earlier_target_wakes_first() -> None:
    alarm, count = ResolutionAlarm(), Counter()
    woke: list[str] = []

    def waiter(name: str, more: int) -> None:
        while count.n < more:  # as the feeder does: look again after each wake-up
            alarm.wait(lambda: count.n, more - count.n, timeout=30)
        woke.append(name)

    far = threading.Thread(target=waiter, args=("far", 6))
    near = threading.Thread(target=waiter, args=("near", 2))
    far.start()
    near.start()
    deadline = time.monotonic() + 10
    while alarm.at != 2 and time.monotonic() < deadline:
        time.sleep(0.001)
    assert alarm.at == 2, "the alarm holds the smallest target"
    count.add(alarm)
    count.add(alarm)
    near.join(10)
    assert woke == ["near"]
    for _ in range(4):
        count.add(alarm)
        time.sleep(0.01)  # let "far" re-arm the alarm between results, as a feeder would
    far.join(10)
    assert woke == ["near", "far"]
