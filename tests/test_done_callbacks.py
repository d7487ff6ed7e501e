"""Done-callbacks of futures run on their own thread, never on the dispatcher's.

The first two tests and the ``SystemExit`` one failed on commit 6e08824, where the
dispatcher ran every callback itself: a callback that waited for another task's result
waited 30 s for nothing (the thread that would have resolved it was the one waiting), a
slow callback held up every other result and made the dispatcher drop its healthy worker
as silent, and a ``BaseException`` from a callback ended the dispatcher. The others keep
what held then: ``wait("all")`` and ``shutdown(wait=True)`` return after the callbacks ran,
and a future resolved in user code runs its callbacks at once.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent import futures

import pytest

import pycrew
from helpers import identity, sleep_then
from support import wait_for


def test_a_done_callback_can_wait_for_another_task_s_result(make_controller):
    c = make_controller("local", workers=1).start()
    got: list[object] = []
    done = threading.Event()

    def follow_up(future):
        got.append(c.submit(identity, future.result() + 1).result(timeout=30))
        got.append(threading.current_thread().name)
        done.set()

    c.submit(identity, 1).add_done_callback(follow_up)
    assert done.wait(timeout=30), "the callback's own task never resolved"
    assert got == [2, "pycrew-callbacks"]


def test_a_slow_done_callback_holds_up_no_other_task(make_controller):
    c = make_controller("local", workers=1, seconds_heartbeat=0.25, seconds_heartbeat_timeout=1.5).start()
    release = threading.Event()
    entered = threading.Event()

    def slow(_future):
        entered.set()
        release.wait(timeout=60)

    try:
        c.submit(identity, 0).add_done_callback(slow)
        assert entered.wait(timeout=30)
        started = time.monotonic()
        assert [c.submit(identity, i).result(timeout=15) for i in range(6)] == list(range(6))
        # Past the heartbeat timeout, the callback still running: the worker is not dropped.
        time.sleep(max(0.0, started + 3.0 - time.monotonic()))
        assert c.submit(identity, "after").result(timeout=15) == "after"
    finally:
        release.set()
    summary = c.summary()
    assert (summary.controller.crash, summary.controller.retries) == (0, 0)
    assert [w.instances for w in summary.workers] == [1], "the dispatcher dropped a healthy worker"


def test_wait_returns_after_the_callbacks_ran_and_waits_for_what_they_submitted(make_controller):
    c = make_controller("local", workers=2).start()
    steps: list[int] = []

    def chain(future):
        time.sleep(0.2)  # slower than the dispatcher: wait() must not return meanwhile
        value = future.result()
        steps.append(value)
        if value < 3:
            c.submit(sleep_then, 0.05, value + 1).add_done_callback(chain)

    c.submit(identity, 0).add_done_callback(chain)
    assert c.wait("all", timeout=60)
    assert steps == [0, 1, 2, 3]


def test_a_group_s_wait_returns_after_the_callbacks_ran(make_controller):
    a = make_controller("local", workers=1, name="a")
    b = make_controller("local", workers=1, name="b")
    group = pycrew.ControllerGroup(a, b).start()
    steps: list[str] = []

    def hop(future):
        time.sleep(0.2)
        name = future.result()
        steps.append(name)
        if name == "a":
            group.submit_to("b", identity, "b").add_done_callback(hop)

    group.submit_to("a", identity, "a").add_done_callback(hop)
    assert group.wait("all", timeout=60)
    assert steps == ["a", "b"]


def test_shutdown_waits_for_the_callbacks(make_controller):
    c = make_controller("local", workers=1).start()
    ran: list[int] = []

    def slow(future):
        time.sleep(0.5)
        ran.append(future.result())

    for i in range(3):
        c.submit(identity, i).add_done_callback(slow)
    c.shutdown(wait=True)
    assert sorted(ran) == [0, 1, 2]


def test_a_callback_raising_system_exit_leaves_the_controller_working(make_controller, caplog):
    c = make_controller("local", workers=1).start()

    def leave(_future):
        raise SystemExit(3)

    with caplog.at_level(logging.ERROR, logger="concurrent.futures"):
        c.submit(identity, 1).add_done_callback(leave)
        assert c.wait("all", timeout=30)
    assert "exception calling callback" in caplog.text and "SystemExit" in caplog.text
    assert c.submit(identity, 2).result(timeout=30) == 2


def test_callbacks_of_a_future_resolved_in_user_code_run_at_once_on_its_thread(make_controller):
    """As concurrent.futures: ``cancel()`` runs the callbacks before it returns."""
    c = make_controller("local", workers=1).start()
    blocker = c.submit(sleep_then, 2.0, "blocker")
    queued = c.submit(identity, "queued")
    seen: list[str] = []
    queued.add_done_callback(lambda _f: seen.append(threading.current_thread().name))
    assert queued.cancel()
    assert seen == [threading.current_thread().name]
    assert blocker.result(timeout=30) == "blocker"


@pytest.mark.parametrize("raised", [KeyboardInterrupt, SystemExit])
def test_a_callback_raising_at_terminate_leaves_no_future_unresolved(make_controller, raised, caplog):
    """On 2c03aec terminate() resolved the futures it ended on the caller's thread, running
    each one's callbacks there: a KeyboardInterrupt from one escaped terminate() and left the
    futures after it pending for ever."""
    c = make_controller("local", workers=1).start()
    running = [c.submit(sleep_then, 30.0, i) for i in range(2)] + [c.submit(identity, i) for i in range(3)]
    wait_for(lambda: c.summary().controller.running >= 1, 30, message="no task started")

    def interrupt(_future):
        raise raised()

    running[0].add_done_callback(interrupt)
    with caplog.at_level(logging.ERROR, logger="concurrent.futures"):
        c.terminate()
        futures.wait(running, timeout=30)
    assert all(f.done() for f in running), [f._state for f in running]
    wait_for(lambda: "exception calling callback" in caplog.text, 10, message="the callback's error was not logged")


def test_a_callback_waiting_for_another_future_does_not_hold_up_terminate(make_controller):
    """On 2c03aec it deadlocked: the other future was ended only after this callback returned."""
    c = make_controller("local", workers=2).start()
    first, second = c.submit(sleep_then, 30.0, 1), c.submit(sleep_then, 30.0, 2)
    wait_for(lambda: c.summary().controller.running == 2, 30, message="the tasks did not start")
    seen: list[object] = []
    first.add_done_callback(lambda _f: seen.append(type(second.exception(timeout=60)).__name__))
    done = threading.Thread(target=c.terminate)
    done.start()
    done.join(30)
    assert not done.is_alive(), "terminate() waited for a callback that waited for another of its futures"
    wait_for(lambda: seen, 30, message="the callback did not run")
    assert first.done() and second.done() and seen == ["ControllerError"], seen


def test_a_stuck_callback_of_one_controller_holds_up_no_other_controller(make_controller):
    """On 2c03aec one process-wide thread ran every controller's callbacks: a callback of A that
    never returned kept B's from running, and B's wait() past its tasks' end."""
    a, b = make_controller("local", workers=1).start(), make_controller("local", workers=1).start()
    release = threading.Event()
    try:
        a.submit(identity, 0).add_done_callback(lambda _f: release.wait(60))
        ran = threading.Event()
        b.submit(identity, 1).add_done_callback(lambda _f: ran.set())
        assert ran.wait(30), "B's callback waited behind A's"
        assert b.wait("all", timeout=30)
    finally:
        release.set()


def test_a_terminated_controller_s_callbacks_thread_ends_soon(make_controller):
    """Each controller has its thread; a loop of short-lived controllers (joblib's Parallel
    calls) must not pile them up until their idle time (30 s) ends each."""
    before = {t for t in threading.enumerate() if t.name == "pycrew-callbacks"}
    for _ in range(3):
        c = make_controller("local", workers=1)
        ran = threading.Event()
        c.submit(identity, 1).add_done_callback(lambda _f, ran=ran: ran.set())
        assert ran.wait(30)
        c.terminate()
    wait_for(lambda: not {t for t in threading.enumerate() if t.name == "pycrew-callbacks"} - before, 10,
             message="the callbacks threads of terminated controllers still run")
