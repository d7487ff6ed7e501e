"""The controller is a concurrent.futures.Executor."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading

import pytest

import pycrew
from helpers import identity, raise_value_error, sleep_then
from support import wait_for


def test_submit_result_exception_and_callbacks(make_controller):
    c = make_controller("local", workers=2).start()
    ok = c.submit(identity, 41)
    bad = c.submit(raise_value_error, "boom")
    seen = threading.Event()
    ok.add_done_callback(lambda f: seen.set())
    assert ok.result(timeout=30) == 41
    assert seen.wait(5)
    exc = bad.exception(timeout=30)
    assert isinstance(exc, ValueError) and str(exc) == "boom"
    assert isinstance(exc.__cause__, pycrew.RemoteTraceback) and "raise_value_error" in exc.__cause__.tb
    with pytest.raises(ValueError, match="boom"):
        bad.result()
    assert c.pop() is None, "submitted tasks are consumed through their futures, not pop()"


def test_map_keeps_order_and_raises_the_first_error(make_controller):
    c = make_controller("local", workers=2).start()
    assert list(c.map(identity, range(50))) == list(range(50))
    assert list(c.map(pow, [2, 3], [5, 2])) == [32, 9]
    results = c.map(raise_value_error, ["first"])
    with pytest.raises(ValueError, match="first"):
        list(results)


def test_map_timeout(make_controller):
    c = make_controller("local", workers=1).start()
    with pytest.raises(concurrent.futures.TimeoutError):
        list(c.map(sleep_then, [5], timeout=0.3))


def test_result_timeout(make_controller):
    c = make_controller("local", workers=1).start()
    with pytest.raises(concurrent.futures.TimeoutError):
        c.submit(sleep_then, 5).result(timeout=0.2)


def test_asyncio_wrap_future(make_controller):
    c = make_controller("local", workers=2).start()

    async def main() -> list[object]:
        futures = [asyncio.wrap_future(c.submit(identity, i)) for i in range(5)]
        return list(await asyncio.gather(*futures))

    assert asyncio.run(asyncio.wait_for(main(), 30)) == [0, 1, 2, 3, 4]


def test_shutdown_cancel_futures_cancels_queued_tasks(make_controller):
    c = make_controller("local", workers=1).start()
    running = c.submit(sleep_then, 1.0, "done")
    wait_for(running.running, 30)
    queued = [c.submit(identity, i) for i in range(5)]
    c.shutdown(wait=True, cancel_futures=True)
    assert running.result() == "done"
    assert all(f.cancelled() for f in queued)
    with pytest.raises(RuntimeError, match="after shutdown"):
        c.submit(identity, 1)


def test_future_cancel_of_a_queued_task(make_controller):
    c = make_controller("local", workers=1).start()
    blocker = c.submit(sleep_then, 1.0)
    queued = c.submit(identity, 1)
    assert queued.cancel()
    assert blocker.result(timeout=30) is None
    assert queued.cancelled()
    assert c.wait(timeout=30)
    assert c.summary().controller.cancel == 1


def test_context_manager_waits_and_terminates():
    with pycrew.controller("local", workers=2) as c:
        futures = [c.submit(sleep_then, 0.2, i) for i in range(4)]
    assert [f.result(timeout=0) for f in futures] == [0, 1, 2, 3]
    assert not c.started
    with pytest.raises(pycrew.ControllerError, match="terminated"):
        c.push(identity, (1,))
