"""TaskFuture makes its condition on first use, and still keeps the Future contract under threads."""

from __future__ import annotations

import concurrent.futures
import threading
import time

import pytest

from pycrew.control.futures import _FUTURE_FIELDS, TaskFuture


def test_a_queued_future_has_no_condition_until_used() -> None:
    f: TaskFuture[int] = TaskFuture()
    assert "_condition" not in vars(f), "a queued task's future must not pay for a Condition"
    assert not f.done() and not f.running()
    with f._condition:  # a waiter makes it
        condition = vars(f)["_condition"]
    assert f._condition is condition, "made once, then found in the instance"
    f.set_result(3)
    assert f.result() == 3 and f.done()


def test_a_task_nobody_waits_for_runs_and_finishes_without_a_condition() -> None:
    """The dispatcher's path for a future read after it finished: no Condition (~6 µs) made."""
    f: TaskFuture[int] = TaskFuture()
    assert f.set_running_or_notify_cancel() and f.running() and not f.done()
    f.set_result(7)
    assert f.done() and not f.running() and not f.cancelled()
    assert f.result() == 7 and f.result(timeout=0) == 7 and f.exception() is None
    assert "_condition" not in vars(f)
    with pytest.raises(concurrent.futures.InvalidStateError):
        f.set_result(8)
    with pytest.raises(concurrent.futures.InvalidStateError):
        f.set_exception(ValueError("late"))
    # finished: False, not Future's RuntimeError (a caller may finish a queued future: the
    # dispatcher then passes its task over, see TaskFuture.set_running_or_notify_cancel)
    assert f.set_running_or_notify_cancel() is False
    assert f.result() == 7

    g: TaskFuture[int] = TaskFuture()
    g.set_running_or_notify_cancel()
    g.set_exception(ValueError("boom"))
    assert isinstance(g.exception(), ValueError)
    with pytest.raises(ValueError, match="boom"):
        g.result()

    h: TaskFuture[int] = TaskFuture()
    assert h.cancel() and h.cancelled() and h.done()
    assert not h.set_running_or_notify_cancel(), "a cancelled future is not run"
    with pytest.raises(concurrent.futures.CancelledError):
        h.result(timeout=0)


def test_a_waiter_arriving_while_the_dispatcher_resolves_is_never_lost() -> None:
    """The race the creation lock closes: a thread makes the condition and waits just as the
    dispatcher resolves a future that had none (any lost wake-up hangs here for 10 s)."""
    for i in range(2000):
        f: TaskFuture[int] = TaskFuture()
        got: list[int] = []
        waiter = threading.Thread(target=lambda fut=f, got=got: got.append(fut.result(timeout=10)))
        waiter.start()
        if i % 2:
            time.sleep(0)  # vary who comes first
        assert f.set_running_or_notify_cancel()
        f.set_result(i)
        waiter.join(15)
        assert got == [i]


def test_task_future_sets_every_field_future_init_sets() -> None:
    """TaskFuture skips Future.__init__: a field a new Python adds there must be added here too."""
    own = set(vars(TaskFuture())) - {"_controller", "_task_id", "payload_bytes"}
    on_first_use = {"_condition", "_waiters", "_done_callbacks"}
    assert own == set(_FUTURE_FIELDS) - on_first_use
    f: TaskFuture[int] = TaskFuture()
    with f._condition:
        assert set(vars(f)) >= set(_FUTURE_FIELDS), "the condition brings the lists waiters and callbacks go to"
        assert f._waiters == [] and f._done_callbacks == [] and f._waiters is not TaskFuture._waiters


def test_a_queued_or_finished_future_nobody_waits_for_is_two_objects_the_collector_tracks_less() -> None:
    """Before, each future carried its two lists from the start, and the dispatcher's check for
    a condition made its ``__dict__``: three more objects the garbage collector visits, per task."""
    import gc

    futures: list[TaskFuture[int]] = [TaskFuture() for _ in range(1000)]
    for i, f in enumerate(futures):
        assert f.set_running_or_notify_cancel()
        f.set_result(i)
    gc.collect()
    ids = {id(f) for f in futures}
    referents = [r for r in gc.get_referents(*futures) if gc.is_tracked(r) and id(r) not in ids]
    assert not [r for r in referents if type(r) in (list, dict)], "no list or dict per future until someone waits"
    assert [f.result() for f in futures] == list(range(1000))


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
