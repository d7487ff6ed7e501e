"""``map``'s default ``buffersize="auto"``: a bounded window of unfinished tasks, refilled as
tasks finish, so every task runs even if nobody iterates, and shutdown, cancel_futures,
terminate and a failing input behave as with ``concurrent.futures``' eager ``map``."""

from __future__ import annotations

import functools
import itertools
import threading
import time
from concurrent.futures import CancelledError

import pytest

import pycrew
from helpers import first_waits_for_gate, identity, mark_after_gate, mark_after_gate_carrying
from pycrew.control import mapping
from support import wait_for


@pytest.fixture
def small_window(monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(mapping, "AUTO_WINDOW_MIN", 3)
    monkeypatch.setattr(mapping, "AUTO_WINDOW_PER_WORKER", 1)
    return 3


def counting(n: int, pulled: list[int]):  # type: ignore[no-untyped-def]
    for i in range(n):
        pulled.append(i)
        yield i


def test_auto_window_bounds_what_is_submitted_and_runs_everything_without_iterating(make_controller, small_window, tmp_path):
    c = make_controller("local", workers=1, seconds_idle=30)
    pulled: list[int] = []
    results = c.map(mark_after_gate, itertools.repeat(str(tmp_path)), counting(12, pulled))
    wait_for(lambda: len(pulled) >= small_window, timeout=30, message="the feeder did not start")
    assert c.summary().controller.pushed == small_window, "the window holds 3 unfinished tasks"
    assert len(pulled) <= small_window + 1, f"the input was read ahead of the window: {len(pulled)} items"
    (tmp_path / "gate").touch()
    # nobody iterates: every task still runs, as with concurrent.futures' eager map
    wait_for(lambda: len(list(tmp_path.glob("done-*"))) == 12, timeout=60, message="not every task ran")
    assert list(results) == list(range(12))


@pytest.mark.parametrize(("blob_bytes", "in_flight"), [(300_000, 4), (2_000_000, 3)])
def test_auto_window_bounds_the_bytes_of_large_arguments(make_controller, monkeypatch, tmp_path, blob_bytes, in_flight):
    """A ``partial`` holding a large object: every task's pickle carries it. Before, 4,096
    of them were submitted ahead (100 tasks of 20 MB: a 1.6 GB controller); now the window
    stops at ``AUTO_WINDOW_BYTES`` of payloads, but keeps ``auto_floor`` tasks (a worker's
    one plus 2 waiting) however large they are."""
    monkeypatch.setattr(mapping, "AUTO_WINDOW_BYTES", 1_000_000)
    assert mapping.auto_floor(1) == 3
    c = make_controller("local", workers=1, seconds_idle=30)
    pulled: list[int] = []
    task = functools.partial(mark_after_gate_carrying, b"x" * blob_bytes)
    results = c.map(task, itertools.repeat(str(tmp_path)), counting(12, pulled))
    wait_for(lambda: len(pulled) >= in_flight, timeout=30, message="the feeder did not start")
    wait_for(lambda: c.summary().controller.running == 1, timeout=30, message="the first task did not start")
    assert c.summary().controller.pushed == in_flight, f"{len(pulled)} items read"
    assert len(pulled) <= in_flight + 1, f"the input was read ahead of the window: {len(pulled)} items"
    (tmp_path / "gate").touch()
    assert list(results) == list(range(12)), "every task runs, in order"


def test_a_slow_first_task_does_not_hold_the_window_back(make_controller, small_window, tmp_path):
    """Tasks finishing out of order make room too: the window counts unfinished tasks, not
    the results taken, so the input flows past a slow first task without anyone iterating."""
    # prefetch_max=1: no task waits on the first one's worker behind it (the dispatcher's
    # prefetching is another matter than the window's; see test_dispatcher_unit)
    c = make_controller("local", workers=2, seconds_idle=30, prefetch_max=1)
    results = c.map(first_waits_for_gate, itertools.repeat(str(tmp_path)), range(30))
    wait_for(lambda: len(list(tmp_path.glob("done-*"))) == 29, timeout=60,
             message="the feeder stopped refilling behind the slow first task")
    assert c.summary().controller.running == 1, "only the first task should still be running"
    (tmp_path / "gate").touch()
    assert list(results) == list(range(30))


def test_wait_all_and_shutdown_wait_for_the_rest_of_the_input(make_controller, small_window, tmp_path):
    c = make_controller("local", workers=1, seconds_idle=30)
    (tmp_path / "gate").touch()
    results = c.map(mark_after_gate, itertools.repeat(str(tmp_path)), range(10))
    assert c.wait("all", timeout=60), "wait('all') returned before the map's input was all submitted and done"
    assert len(list(tmp_path.glob("done-*"))) == 10
    more = c.map(mark_after_gate, itertools.repeat(str(tmp_path)), range(10, 20))
    c.shutdown(wait=True)
    assert len(list(tmp_path.glob("done-*"))) == 20, "shutdown(wait=True) must run the whole map submitted before it"
    assert list(results) == list(range(10)) and list(more) == list(range(10, 20))


def test_cancel_futures_cuts_the_input_and_iteration_says_so(make_controller, small_window, tmp_path):
    c = make_controller("local", workers=1, seconds_idle=30)
    results = c.map(mark_after_gate, itertools.repeat(str(tmp_path)), range(20))
    wait_for(lambda: c.summary().controller.running >= 1, timeout=60, message="the first task did not start")
    c.shutdown(wait=False, cancel_futures=True)
    (tmp_path / "gate").touch()
    got = []
    with pytest.raises(CancelledError):
        for r in results:
            got.append(r)
    assert got == list(range(len(got))) and len(got) < 20


def test_cancel_all_cuts_the_input_too(make_controller, small_window, tmp_path):
    """On fce425b ``cancel(all=True)`` cancelled the window's tasks and the feeder refilled it
    with the rest of the input, which then ran (and ``wait()`` waited for all of it)."""
    pulled: list[int] = []
    c = make_controller("local", workers=1, seconds_idle=30)
    results = c.map(mark_after_gate, itertools.repeat(str(tmp_path)), counting(20, pulled))
    wait_for(lambda: c.summary().controller.running >= 1, timeout=60, message="the first task did not start")
    assert c.cancel(all=True) >= 1
    (tmp_path / "gate").touch()
    assert c.wait(timeout=60)
    assert c.summary().controller.pushed < 20 and len(pulled) < 20, "the rest of the input was submitted"
    with pytest.raises(CancelledError):
        list(results)


def test_an_input_that_raises_raises_in_turn_after_the_results_before_it(make_controller):
    c = make_controller("local", workers=1)

    def source():  # type: ignore[no-untyped-def]
        yield 1
        yield 2
        raise ValueError("the input broke at item 3")

    results = c.map(identity, source())
    assert next(results) == 1 and next(results) == 2
    with pytest.raises(ValueError, match="broke at item 3"):
        next(results)


def test_terminate_stops_the_feeder_and_iteration_does_not_hang(make_controller, small_window, tmp_path):
    c = make_controller("local", workers=1)
    results = c.map(mark_after_gate, itertools.repeat(str(tmp_path)), range(1000))
    wait_for(lambda: c.summary().controller.pushed == small_window, timeout=60, message="the window did not fill")
    c.terminate()
    with pytest.raises((CancelledError, pycrew.ControllerError)):
        list(results)
    wait_for(lambda: not c._feeders, timeout=10, message="the feeder kept running after terminate()")


@pytest.mark.parametrize("how", ["terminate", "shutdown", "cancel_all"])
def test_stopping_a_map_whose_input_blocks_ends_the_iteration_at_once(make_controller, how):
    """The input yields once, then blocks (a queue, a socket): before, the consumer waited
    for the next item, past terminate(), shutdown(cancel_futures=True) and cancel(all=True)."""
    gate = threading.Event()

    def source():  # type: ignore[no-untyped-def]
        yield 1
        gate.wait(60)
        yield 2

    c = make_controller("local", workers=1)
    results = c.map(identity, source())
    try:
        assert next(results) == 1
        stopper = threading.Timer(0.3, {"terminate": c.terminate, "cancel_all": lambda: c.cancel(all=True),
                                        "shutdown": lambda: c.shutdown(wait=False, cancel_futures=True)}[how])
        stopper.start()
        started = time.monotonic()
        with pytest.raises(CancelledError):
            next(results)  # waits for the blocked input until the stop
        assert time.monotonic() - started < 30, "the iteration waited for the input, not for the stop"
        stopper.join()
    finally:
        gate.set()


def test_closing_the_iterator_stops_submitting(make_controller, small_window):
    c = make_controller("local", workers=1)
    results = c.map(identity, range(10_000))
    assert next(results) == 0
    results.close()
    wait_for(lambda: not c._feeders, timeout=30, message="the feeder kept running after close()")
    assert c.summary().controller.pushed < 100


@pytest.mark.parametrize(("bad", "error", "said"), [
    ("big", TypeError, "buffersize must be an integer or None"),
    (1.5, TypeError, "buffersize must be an integer or None"),
    (2.0, TypeError, "buffersize must be an integer or None"),
    (0, ValueError, "buffersize must be None or > 0"),
    (-1, ValueError, "buffersize must be None or > 0"),
])
def test_bad_buffersize_is_rejected_as_python_3_14_rejects_it(make_controller, bad, error, said):
    """On 33e082d a buffersize of the wrong type was a ValueError; Python 3.14's map raises
    TypeError("buffersize must be an integer or None") (CPython's test_map_buffersize_type_validation).
    It stays a ValueError too, for code written against pycrew before."""
    c = make_controller("local", workers=1)
    with pytest.raises(error, match=said):
        c.map(identity, [1], buffersize=bad)
    with pytest.raises(ValueError):
        c.map(identity, [1], buffersize=bad)


@pytest.mark.parametrize("bad", ["5", True, float("nan")])
def test_a_map_timeout_that_is_not_a_number_is_rejected_before_anything_runs(make_controller, bad):
    """On fce425b ``map(timeout="5")`` failed deep inside with ``TypeError: unsupported operand``."""
    c = make_controller("local", workers=1)
    with pytest.raises(ValueError, match=r"map timeout must be a number of seconds"):
        c.map(identity, [1], timeout=bad)
    assert c.summary().controller.pushed == 0
