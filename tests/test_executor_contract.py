"""The ``concurrent.futures.Executor`` contract, as ``ProcessPoolExecutor`` keeps it.

Each test failed on commit c88609a: ``shutdown(wait=False)`` abandoned pending futures, a
script that submitted and ended exited without running its task, and ``map`` kept every
result it had yielded alive.
"""

from __future__ import annotations

import concurrent.futures
import gc
import itertools
import threading
import time
import weakref

import pytest

import pycrew
from helpers import identity, make_blob, sleep_then
from support import run_script, wait_for


@pytest.mark.parametrize("warm", [False, True], ids=["right-after-submit", "workers-up"])
def test_shutdown_without_wait_lets_pending_work_finish(make_controller, warm):
    c = make_controller("local", workers=2, seconds_idle=30)
    if warm:
        assert c.submit(identity, 0).result(timeout=60) == 0
    futures = [c.submit(sleep_then, 0.3, i) for i in range(7)]
    start = time.monotonic()
    c.shutdown(wait=False)
    assert time.monotonic() - start < 2, "shutdown(wait=False) waited"
    with pytest.raises(RuntimeError, match="after shutdown"):
        c.submit(identity, 1)
    assert [f.result(timeout=60) for f in futures] == list(range(7))
    wait_for(lambda: c._terminated, timeout=30, message="the controller did not terminate after its last task")


def test_shutdown_without_wait_and_cancel_futures_runs_only_started_work(make_controller):
    c = make_controller("local", workers=1, seconds_idle=30)
    first = c.submit(sleep_then, 1.0, "first")
    wait_for(first.running, timeout=60, message="the first task never started")
    rest = [c.submit(sleep_then, 1.0, i) for i in range(3)]
    c._dispatcher.call_soon(lambda: time.sleep(0.5))  # a dispatcher busy with something else
    c.shutdown(wait=False, cancel_futures=True)
    # as concurrent.futures does: cancelled when shutdown returns, not some time later
    assert [f for f in rest if not f.cancelled()] == []
    assert first.result(timeout=60) == "first"
    wait_for(lambda: c._terminated, timeout=30)


def test_shutdown_cancel_futures_does_not_hang_on_a_stuck_dispatcher(make_controller, monkeypatch, caplog):
    """The wait for the cancels is bounded: a dispatcher stuck for longer (here a 3 s call on
    its thread) cancels them when it gets there, and shutdown says so and returns."""
    from pycrew.control.resolving import Resolving

    monkeypatch.setattr(Resolving, "SECONDS_CANCEL_WAIT", 0.5)
    c = make_controller("local", workers=1, seconds_idle=30)
    first = c.submit(sleep_then, 1.0, "first")
    wait_for(first.running, timeout=60, message="the first task never started")
    rest = [c.submit(sleep_then, 1.0, i) for i in range(3)]
    c._dispatcher.call_soon(lambda: time.sleep(3.0))
    started = time.monotonic()
    c.shutdown(wait=False, cancel_futures=True)
    assert time.monotonic() - started < 2.5
    assert "returns before the queued futures are cancelled" in caplog.text
    wait_for(lambda: all(f.cancelled() for f in rest), timeout=30)


def test_the_interpreter_waits_for_pending_futures(tmp_path):
    out = tmp_path / "ran.txt"
    proc = run_script(
        tmp_path,
        f"""
        import time
        import pycrew

        def work(path):
            import time
            time.sleep(1.0)
            with open(path, "w") as f:
                f.write("done")
            return "result"

        c = pycrew.controller("local", workers=1)
        future = c.submit(work, {str(out)!r})

        def report(f):
            time.sleep(1.0)  # the callbacks run on their own thread: the exit waits for them too
            print("callback:", f.result(), flush=True)

        future.add_done_callback(report)
        # the script ends here: no shutdown, no result()
        """,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.read_text() == "done", "the task never ran: the interpreter exited with a pending future"
    assert "callback: result" in proc.stdout


def test_the_interpreter_runs_callbacks_left_by_a_terminated_controller(tmp_path):
    proc = run_script(
        tmp_path,
        """
        import time
        import pycrew

        def report(f):
            time.sleep(1.0)
            print("callback:", f.result(), flush=True)

        c = pycrew.controller("local", workers=1)
        future = c.submit(abs, -5)
        future.add_done_callback(report)
        future.result(timeout=60)
        c.terminate()  # the callback may still be queued on its thread: the exit waits for it
        """,
    )
    assert proc.returncode == 0, proc.stderr
    assert "callback: 5" in proc.stdout, proc.stdout + proc.stderr


def test_the_interpreter_does_not_wait_for_pushed_tasks_nobody_can_pop(tmp_path):
    proc = run_script(
        tmp_path,
        """
        import time
        import pycrew

        c = pycrew.controller("local", workers=1)
        c.push(time.sleep, args=(60,))
        start = time.monotonic()
        import atexit
        atexit.register(lambda: print("exit after", round(time.monotonic() - start), "s", flush=True))
        """,
    )
    assert proc.returncode == 0, proc.stderr
    assert "exit after 0 s" in proc.stdout or "exit after 1 s" in proc.stdout, proc.stdout


@pytest.mark.parametrize(
    ("buffersize", "timeout"), [("auto", None), (None, None), (2, None), ("auto", 120.0), (None, 120.0)]
)
def test_map_does_not_keep_yielded_results_alive(make_controller, buffersize, timeout):
    """Every way map can run: the window (auto, n), the eager path (None) and with a timeout."""
    c = make_controller("local", workers=1).start()
    results = c.map(make_blob, [1000, 1000, 1000], buffersize=buffersize, timeout=timeout)
    first = next(results)
    ref = weakref.ref(first)
    del first
    gc.collect()
    assert ref() is None, "the map iterator keeps a result it already yielded alive (bpo-14406)"
    assert [len(b.data) for b in results] == [1000, 1000]


def test_map_does_not_keep_yielded_results_alive_while_its_input_is_read(make_controller):
    """The auto window's feeder thread, stuck reading the input after the last item it
    submitted, must not hold the results the consumer has already taken (CI saw CPython's
    test_free_reference fail when the feeder was slow to finish)."""
    c = make_controller("local", workers=1).start()
    more = threading.Event()

    def source():
        yield from [1000, 1000, 1000]
        more.wait(60)  # the feeder thread waits here, having submitted all three

    results = c.map(make_blob, source())
    try:
        for _ in range(3):
            blob = next(results)
            ref = weakref.ref(blob)
            del blob
            gc.collect()
            assert ref() is None, "the map feeder keeps a result the consumer took alive (bpo-14406)"
    finally:
        more.set()
    assert list(results) == []


@pytest.mark.parametrize("started", [False, True], ids=["never-read", "half-read"])
def test_closing_a_map_over_an_endless_input_stops_it(make_controller, started):
    """An auto-window map closed before its first next() ran no generator finally: its feeder
    went on submitting an endless input for ever."""
    c = make_controller("local", workers=2).start()
    results = c.map(identity, itertools.count())
    if started:
        assert next(results) == 0
    wait_for(lambda: c.summary().controller.pushed > 4, timeout=30, message="the map submitted nothing")
    results.close()  # type: ignore[attr-defined]

    def feeders() -> int:
        return sum(t.name == "pycrew-map-feeder" and t.is_alive() for t in threading.enumerate())

    wait_for(lambda: feeders() == 0, timeout=30, message="the feeder of a closed map goes on submitting its input")
    pushed = c.summary().controller.pushed
    time.sleep(0.5)
    assert c.summary().controller.pushed == pushed, "tasks were still submitted for a closed map"
    assert c.wait("all", timeout=30)
    with pytest.raises(StopIteration):
        next(results)


def test_a_map_dropped_unread_still_runs_every_task(make_controller, tmp_path):
    """The documented contract (as concurrent.futures): every task runs whether or not you iterate."""
    c = make_controller("local", workers=2).start()
    c.map(_touch, [str(tmp_path / f"f{i}") for i in range(20)])  # dropped at once
    gc.collect()
    assert c.wait("all", timeout=60)
    wait_for(lambda: len(list(tmp_path.iterdir())) == 20, timeout=30,
             message=f"a map dropped unread ran {len(list(tmp_path.iterdir()))} of its 20 tasks")


def _touch(path: str) -> None:
    open(path, "w").close()


def test_map_with_progress_counts_done_futures(make_controller):
    c = make_controller("local", workers=2).start()
    assert list(c.map(identity, range(20), progress=True)) == list(range(20))


def test_map_with_buffersize_reads_its_input_lazily(make_controller):
    c = make_controller("local", workers=2).start()
    pulled: list[int] = []

    def source():
        for i in range(10):
            pulled.append(i)
            yield i

    results = c.map(identity, source(), buffersize=3)
    assert len(pulled) == 3, f"buffersize=3 submitted {len(pulled)} tasks before any result was taken"
    assert next(results) == 0
    assert len(pulled) == 4
    assert list(results) == list(range(1, 10))


@pytest.mark.parametrize("bad", [{"chunksize": 0}, {"buffersize": 0}, {"buffersize": -1}, {"buffersize": True}])
def test_map_rejects_bad_chunksize_and_buffersize(make_controller, bad):
    c = make_controller("local", workers=1)
    with pytest.raises(ValueError, match=next(iter(bad))):
        c.map(identity, [1], **bad)


@pytest.mark.parametrize("buffersize", ["auto", None])
@pytest.mark.parametrize("progress", [False, True], ids=["plain", "progress"])
def test_map_timeout_cancels_every_unfinished_task_with_the_one_it_waited_for(make_controller, buffersize, progress):
    """As concurrent.futures' map: the future it gave up on is cancelled too (failed on
    commit 6e08824: that task ran on for its full 30 s)."""
    c = make_controller("local", workers=2).start()
    results = c.map(sleep_then, [0.05, 30, 30, 30], range(4), timeout=3, buffersize=buffersize, progress=progress)
    with pytest.raises(TimeoutError):
        list(results)
    wait_for(lambda: c.unresolved() == 0, timeout=15, message="a task of the timed-out map still runs")
    s = c.summary().controller
    assert s.cancel >= 3 and s.success + s.cancel == 4, s


# A cancelled future is only "done" for concurrent.futures.wait/as_completed once the
# executor calls set_running_or_notify_cancel (state CANCELLED_AND_NOTIFIED). On commit
# 18bece1 a queued future cancelled by its user woke nobody until a worker came free for
# it, and those cancelled by shutdown(cancel_futures=True), by name, or by terminate()
# woke nobody ever: wait() hung to its timeout and as_completed raised TimeoutError.

BLOCK = 60.0  # the task holding the only worker; every wait below is far shorter


def _behind_a_long_task(c, n):
    first = c.submit(sleep_then, BLOCK, "first")
    wait_for(first.running, timeout=60, message="the first task never started")
    return first, [c.submit_task(sleep_then, (0.1, i), name=f"queued-{i}") for i in range(n)]


def _assert_waiters_see(futures, how):
    _done, not_done = concurrent.futures.wait(futures, timeout=10)
    assert not not_done, f"{how}: concurrent.futures.wait still waits on {[f._state for f in not_done]}"
    assert len(list(concurrent.futures.as_completed(futures, timeout=10))) == len(futures)


def test_a_queued_future_cancelled_by_its_user_wakes_its_waiters_at_once(make_controller):
    c = make_controller("local", workers=1, seconds_idle=30)
    _first, queued = _behind_a_long_task(c, 3)
    assert queued[1].cancel()
    _assert_waiters_see([queued[1]], "future.cancel()")
    assert queued[1].cancelled() and not queued[0].done()


def test_queued_futures_cancelled_by_name_wake_their_waiters(make_controller):
    c = make_controller("local", workers=1, seconds_idle=30)
    _first, queued = _behind_a_long_task(c, 3)
    c.cancel(names=["queued-0", "queued-2"])
    _assert_waiters_see([queued[0], queued[2]], "cancel(names=...)")
    assert queued[0].cancelled() and queued[2].cancelled() and not queued[1].done()


def test_shutdown_cancel_futures_wakes_the_waiters_of_what_it_cancelled(make_controller):
    c = make_controller("local", workers=1, seconds_idle=30)
    first, queued = _behind_a_long_task(c, 3)
    c.shutdown(wait=False, cancel_futures=True)
    _assert_waiters_see(queued, "shutdown(cancel_futures=True)")
    assert all(f.cancelled() for f in queued) and not first.done()


def test_terminate_resolves_every_future_for_its_waiters(make_controller):
    c = make_controller("local", workers=1, seconds_idle=30)
    first, queued = _behind_a_long_task(c, 3)
    assert queued[2].cancel()  # one already cancelled by its user
    c.terminate()
    _assert_waiters_see([first, *queued], "terminate()")
    assert all(f.cancelled() for f in queued)
    with pytest.raises(pycrew.ControllerError, match="terminated"):
        first.result(timeout=0)
    assert c.pending_futures() == 0


def test_a_task_that_raises_an_exception_whose_truth_is_false_still_raises(make_controller):
    """CPython's test_swallows_falsey_exceptions (gh-132063): on 33e082d (Python 3.11)
    ``result()`` returned None for it, while ``exception()`` returned it."""
    from helpers import FalseyError, raise_falsey

    c = make_controller("local", workers=1)
    future = c.submit(raise_falsey, "boolbool")
    with pytest.raises(FalseyError, match="boolbool"):
        future.result(timeout=60)
    assert isinstance(future.exception(), FalseyError)
    with pytest.raises(FalseyError):
        list(c.map(raise_falsey, ["x"], timeout=60))


def test_a_task_out_of_memory_says_so(make_controller):
    """Seen on SGE with h_vmem: the task raised MemoryError with an empty message, and on
    33e082d nothing said what to do about it."""
    from helpers import raise_memory_error

    c = make_controller("local", workers=1)
    exc = c.submit(raise_memory_error).exception(timeout=60)
    assert isinstance(exc, MemoryError), exc
    assert any("the task ran out of memory on its worker" in note for note in getattr(exc, "__notes__", [])), exc
    c.push(raise_memory_error, name="oom")
    assert c.wait(timeout=60)
    r = c.pop()
    assert r.status == "error" and "ran out of memory" in r.error, r


def test_a_queued_future_its_caller_finished_is_not_run_and_fails_nothing_else(make_controller):
    """``set_result``/``set_exception`` are for executors, but a caller may call them: on
    1edcfcc one on a queued future failed the dispatcher ("Future in unexpected state"), and
    every task of the controller with it (a probe). Now that task is not run (its future keeps
    what it was given) and the others run."""
    c = make_controller("local", workers=1).start()
    # queued: the worker takes far longer to start and connect than these lines to run
    queued = c.submit(sleep_then, 0.01, "queued")
    given = c.submit(sleep_then, 0.01, "given")
    queued.set_exception(ValueError("mine"))
    given.set_result("mine")
    after = c.submit(sleep_then, 0.01, "after")
    assert c.summary().controller.workers_online == 0
    assert c.wait(timeout=60)
    assert after.result() == "after"
    assert given.result() == "mine" and isinstance(queued.exception(), ValueError)
    summary = c.summary().controller
    assert (summary.success, summary.cancel) == (1, 2), summary
    assert c.submit(sleep_then, 0.01, "still").result(timeout=60) == "still"
