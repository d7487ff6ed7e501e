"""TaskFuture makes its condition on first use, and still keeps the Future contract under threads."""

from __future__ import annotations

import concurrent.futures
import threading

from pycrew.control.futures import _FUTURE_FIELDS, TaskFuture


def test_a_queued_future_has_no_condition_until_used() -> None:
    f: TaskFuture[int] = TaskFuture()
    assert "_condition" not in vars(f), "a queued task's future must not pay for a Condition"
    assert not f.done() and not f.running()
    f.set_result(3)
    condition = vars(f)["_condition"]
    assert f._condition is condition and f.result() == 3, "made once, then found in the instance"


def test_task_future_sets_every_field_future_init_sets() -> None:
    """TaskFuture skips Future.__init__: a field a new Python adds there must be added here too."""
    own = set(vars(TaskFuture())) - {"_controller", "_task_id"}
    assert own == set(_FUTURE_FIELDS) - {"_condition"}


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
