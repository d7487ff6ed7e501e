"""TaskFuture makes its condition on first use, and still keeps the Future contract under threads."""

from __future__ import annotations

import concurrent.futures
import threading

from pycrew.control.futures import TaskFuture


def test_a_queued_future_has_no_condition_until_used() -> None:
    f: TaskFuture[int] = TaskFuture()
    assert f._lazy_condition is None, "a queued task's future must not pay for a Condition"
    assert not f.done() and not f.running()
    f.set_result(3)
    assert f._lazy_condition is not None and f.result() == 3


def test_many_threads_waiting_while_another_resolves_all_see_the_result() -> None:
    for _ in range(50):
        f: TaskFuture[str] = TaskFuture()
        start = threading.Barrier(9)
        got: list[str] = []

        def waiter(fut: TaskFuture[str] = f, barrier: threading.Barrier = start, got: list[str] = got) -> None:
            barrier.wait()
            got.append(fut.result(timeout=10))

        threads = [threading.Thread(target=waiter) for _ in range(8)]
        for t in threads:
            t.start()
        start.wait()
        f.set_result("ok")
        for t in threads:
            t.join(10)
        assert got == ["ok"] * 8


def test_wait_and_as_completed_work_with_lazy_conditions() -> None:
    futures: list[TaskFuture[int]] = [TaskFuture() for _ in range(5)]
    timer = threading.Timer(0.05, lambda: [f.set_result(i) for i, f in enumerate(futures)])
    timer.start()
    done, not_done = concurrent.futures.wait(futures, timeout=10)
    assert len(done) == 5 and not not_done
    assert sorted(f.result() for f in concurrent.futures.as_completed(futures)) == [0, 1, 2, 3, 4]
    cancelled: TaskFuture[int] = TaskFuture()
    assert cancelled.cancel() and cancelled.cancelled()
