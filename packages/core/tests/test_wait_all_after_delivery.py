"""``wait("all")`` returns only once every resolved task's result is where its owner looks:
the future done (its done-callbacks run), a pushed task's result ready to pop.

The dispatcher is made slow to hand a result on (a delivery that takes a moment), which
makes certain the interleaving a busy machine makes rare: a waiter that looks while the
dispatcher has counted a result and not yet delivered it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import pycrew
from pycrew.control.futures import TaskFuture


def square(x: int) -> int:
    return x * x


@pytest.fixture
def controller() -> Iterator[Any]:
    c = pycrew.controller("local", workers=2)
    try:
        assert c.submit(square, 0).result(timeout=60) == 0
        yield c
    finally:
        c.terminate()


def test_wait_all_returns_after_a_futures_result_and_callbacks(controller: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """On 4c9fdb7 the dispatcher counted a plain success before it set the future's result:
    wait("all") returned True with the future not done and its callback not run (2 of 2,000
    rounds at a 1 us switch interval; every time with a delivery that takes a moment)."""
    slow = threading.Event()
    set_result = TaskFuture.set_result

    def slow_set_result(self: TaskFuture[Any], result: Any) -> None:
        if slow.is_set():
            time.sleep(1.2)  # longer than wait()'s 0.5 s look: it looks while the dispatcher delivers
        set_result(self, result)

    monkeypatch.setattr(TaskFuture, "set_result", slow_set_result)
    called: list[int] = []
    slow.set()
    future = controller.submit(square, 3)
    future.add_done_callback(lambda f: called.append(f.result()))
    assert controller.wait("all", timeout=30)
    assert future.done() and called == [9]


def test_wait_all_returns_after_a_pushed_tasks_result_is_ready_to_pop(controller: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """On 4c9fdb7 wait("all") could return before the result reached the pop queue, and
    collect() right after it missed it."""
    deliver = controller._deliver

    def slow_deliver(task: Any, result: Any) -> None:
        time.sleep(1.2)  # (as above)
        deliver(task, result)

    monkeypatch.setattr(controller, "_deliver", slow_deliver)
    controller.push(square, (4,), name="four")
    assert controller.wait("all", timeout=30)
    results = controller.collect()
    assert [(r.name, r.result) for r in results] == [("four", 16)]


def test_a_waiter_is_woken_by_the_result_it_waits_for(controller: Any) -> None:
    """Guard: the notification comes after the count (else the waiter slept its 0.5 s step)."""
    for i in range(20):
        controller.push(square, (i,))
        assert controller.wait("all", timeout=30)
    assert sorted(r.result for r in controller.collect()) == sorted(i * i for i in range(20))
