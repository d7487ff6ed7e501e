"""How results travel back from a worker (issue 14, items 9, 11, 12).

- A finished task's result does not wait for a long task that starts after it.
- A result that cannot be pickled, or whose ``__reduce__`` raises anything (SystemExit
  included), fails its task once with :class:`pycrew.SerializationError`; the worker lives.
- A result larger than ``bytes_max`` fails its task once with an error naming the limit
  and the size; results that fit one by one arrive even when together they would not.
"""

from __future__ import annotations

import os
import pickle
import re
import sys
import threading
import time

import cloudpickle
import pytest

import pycrew
from helpers import identity, sleep_then
from pycrew.wire.transport import TRANSPORTS

# The task functions and classes below travel by value (workers cannot import this module).
cloudpickle.register_pickle_by_value(sys.modules[__name__])

pytestmark = pytest.mark.parametrize("wire", TRANSPORTS)


# -- task functions --------------------------------------------------------------------


def pid_after_file(path: str, seconds: float) -> int:
    """Wait until ``path`` exists (at most ``seconds``), then return this worker's pid."""
    end = time.monotonic() + seconds
    while not os.path.exists(path) and time.monotonic() < end:
        time.sleep(0.01)
    return os.getpid()


def pid() -> int:
    """This worker's pid."""
    return os.getpid()


def return_lock() -> object:
    """A value no pickler takes."""
    return threading.Lock()


def return_generator() -> object:
    """Another value no pickler takes."""
    return (i for i in range(3))


class CustomBaseException(BaseException):
    """Neither an Exception nor one of Python's own BaseExceptions."""


class RaisesWhenPickled:
    """A value whose ``__reduce__`` raises the BaseException named ``kind``."""

    def __init__(self, kind: str) -> None:
        self.kind = kind

    def __reduce__(self) -> tuple[object, ...]:
        if self.kind == "SystemExit":
            raise SystemExit(3)
        if self.kind == "KeyboardInterrupt":
            raise KeyboardInterrupt
        raise CustomBaseException("raised while pickling")


def return_raises_when_pickled(kind: str) -> object:
    return RaisesWhenPickled(kind)


class ExceptionThatExitsWhenPickled(Exception):
    """A task's exception whose ``__reduce__`` raises SystemExit."""

    def __reduce__(self) -> tuple[object, ...]:
        raise SystemExit(4)


def raise_exception_that_exits_when_pickled() -> None:
    raise ExceptionThatExitsWhenPickled("the task failed")


def raise_huge_error(n: int) -> None:
    """Raise an exception whose message (and so the error result) is ``n`` bytes long."""
    raise ValueError("x" * n)


def zeros(n: int) -> bytes:
    """``n`` zero bytes (made and pickled fast, so that many results batch)."""
    return bytes(n)


# -- helpers ---------------------------------------------------------------------------


def one_result(c: pycrew.Controller, timeout: float = 60) -> pycrew.TaskResult:
    assert c.wait(timeout=timeout), "the task did not resolve"
    results = c.collect()
    assert len(results) == 1, results
    return results[0]


def warm_up(c: pycrew.Controller) -> int:
    """Run short tasks (so the dispatcher prefetches) and return the worker's pid."""
    for i in range(20):
        c.push(identity, (i,), name=f"warm_{i}")
    assert c.wait(timeout=60), "the warm-up tasks did not resolve"
    pids = {r.pid for r in c.collect()}
    assert len(pids) == 1, f"one worker expected, got pids {pids}"
    return pids.pop()


def assert_worker_survived(c: pycrew.Controller, first_pid: int) -> None:
    c.push(pid, name="after")
    after = one_result(c)
    assert after.status == "success" and after.result == first_pid, f"the worker was replaced: {after}"
    s = c.summary()
    assert s.workers[0].instances == 1 and s.workers[0].crashes == 0, s.workers[0]
    assert s.controller.retries == 0, "a task ran again"


# -- item 9: results do not wait for later tasks ----------------------------------------


def test_results_of_finished_tasks_do_not_wait_for_a_long_task_after_them(make_controller, tmp_path, wire):
    """Three instant tasks, then a long one, all queued on one worker.

    The long task runs until the test lets it end, so the instant tasks' results can only
    arrive first if the worker sends them before (or while) the long task runs.
    """
    c = make_controller("local", workers=1, wire=wire).start()
    first_pid = warm_up(c)
    go = tmp_path / "go"
    try:
        # The gate keeps the worker busy while the next four tasks reach it, so that they
        # wait on the worker together (the dispatcher prefetches short tasks).
        c.push(sleep_then, (0.5, "gate"), name="gate")
        for i in range(3):
            c.push(pid, name=f"instant_{i}")
        c.push(pid_after_file, (str(go), 120.0), name="long")
        arrived: dict[str, pycrew.TaskResult] = {}
        deadline = time.monotonic() + 20
        wanted = {"gate", "instant_0", "instant_1", "instant_2"}
        while not wanted <= arrived.keys() and time.monotonic() < deadline:
            c.wait("one", timeout=max(0.01, deadline - time.monotonic()))
            arrived.update((r.name, r) for r in c.collect())
        assert wanted <= arrived.keys(), (
            f"results of finished tasks waited for the long task behind them: only {sorted(arrived)} arrived"
        )
        assert "long" not in arrived, "the long task ended before the test let it"
        assert {arrived[n].pid for n in wanted} == {first_pid}, "the tasks did not all run on one worker"
        assert all(arrived[n].status == "success" for n in wanted), arrived
    finally:
        go.write_text("go")
    last = one_result(c, timeout=120)
    assert last.name == "long" and last.result == first_pid, last


# -- item 11: results that cannot be pickled ---------------------------------------------


@pytest.mark.parametrize(("fn", "what"), [(return_lock, "_thread.lock"), (return_generator, "generator")])
def test_unpicklable_result_fails_once_with_serialization_error_and_the_worker_lives(make_controller, wire, fn, what):
    c = make_controller("local", workers=1, wire=wire).start()
    first_pid = warm_up(c)

    future = c.submit(fn)
    exc = future.exception(timeout=60)
    assert isinstance(exc, pycrew.SerializationError), f"expected SerializationError, got {exc!r}"
    assert isinstance(exc, TypeError)
    assert "cannot be pickled" in str(exc) and what in str(exc), str(exc)
    cause = exc.__cause__
    assert isinstance(cause, pickle.PicklingError), f"the pickling error should be the cause, got {cause!r}"
    assert what in str(cause) and "TypeError" in str(cause), str(cause)
    remote = cause.__cause__
    assert isinstance(remote, pycrew.RemoteTraceback) and "Traceback" in remote.tb, repr(remote)

    c.push(fn, name="bad")
    r = one_result(c)
    assert r.status == "error" and r.error_type == "pycrew.errors.SerializationError", r
    assert r.attempts == 1 and r.pid == first_pid, r
    assert isinstance(r.exception, pycrew.SerializationError)
    assert_worker_survived(c, first_pid)


@pytest.mark.parametrize("kind", ["SystemExit", "KeyboardInterrupt", "CustomBaseException"])
def test_base_exception_raised_while_pickling_a_result_fails_the_task_once(make_controller, wire, kind):
    c = make_controller("local", workers=1, wire=wire).start()
    first_pid = warm_up(c)
    c.push(return_raises_when_pickled, (kind,), name="bad")
    r = one_result(c)
    assert r.status == "error" and r.error_type == "pycrew.errors.SerializationError", r
    assert r.attempts == 1 and r.pid == first_pid, f"the task ran again or on another worker: {r}"
    assert kind in r.error and "RaisesWhenPickled" in r.error, r.error
    assert isinstance(r.exception, pycrew.SerializationError)
    assert isinstance(r.exception.__cause__, pickle.PicklingError) and kind in str(r.exception.__cause__)
    assert_worker_survived(c, first_pid)


def test_task_exception_that_exits_when_pickled_is_reported_and_the_worker_lives(make_controller, wire):
    c = make_controller("local", workers=1, wire=wire).start()
    first_pid = warm_up(c)
    future = c.submit(raise_exception_that_exits_when_pickled)
    exc = future.exception(timeout=60)
    assert isinstance(exc, pycrew.TaskError), repr(exc)
    assert "ExceptionThatExitsWhenPickled" in str(exc) and "the task failed" in str(exc), str(exc)
    c.push(raise_exception_that_exits_when_pickled, name="bad")
    r = one_result(c)
    assert r.status == "error" and r.attempts == 1 and r.pid == first_pid, r
    assert r.error_type.endswith("ExceptionThatExitsWhenPickled") and r.error == "the task failed", r
    assert_worker_survived(c, first_pid)


# -- item 12: results larger than bytes_max ---------------------------------------------


def test_result_larger_than_bytes_max_fails_once_naming_the_limit_and_the_size(make_controller, wire):
    bytes_max = 1 << 20
    c = make_controller("local", workers=1, wire=wire, bytes_max=bytes_max).start()
    first_pid = warm_up(c)
    c.push(os.urandom, (2_000_000,), name="big")
    r = one_result(c)
    assert r.status == "error" and r.error_type == "pycrew.errors.SerializationError", r
    assert r.attempts == 1 and r.pid == first_pid, f"the task crashed its worker or ran again: {r}"
    assert f"bytes_max={bytes_max}" in r.error, r.error
    size = re.search(r"is ([\d,]+) bytes pickled", r.error)
    assert size is not None and int(size.group(1).replace(",", "")) > 2_000_000, r.error
    assert "shared storage" in r.error and "raise bytes_max" in r.error, r.error
    assert isinstance(r.exception, pycrew.SerializationError) and "bytes_max" in str(r.exception)
    assert_worker_survived(c, first_pid)


def test_results_that_fit_one_by_one_arrive_even_if_together_they_exceed_bytes_max(make_controller, wire):
    c = make_controller("local", workers=1, wire=wire, bytes_max=1 << 20, crashes_max=1).start()
    first_pid = warm_up(c)
    c.push(sleep_then, (0.3, None), name="gate")  # the next tasks queue up on the worker meanwhile
    for i in range(24):
        c.push(zeros, (400_000,), name=f"part_{i}")  # 9.6 MB in all, ~3 results per 1 MiB frame
    assert c.wait(timeout=120)
    results = {r.name: r for r in c.collect()}
    assert len(results) == 25
    bad = [r for r in results.values() if r.status != "success"]
    assert not bad, f"{len(bad)} tasks failed, e.g. {bad[0]}"
    assert all(len(results[f"part_{i}"].result) == 400_000 for i in range(24))
    assert {r.pid for r in results.values()} == {first_pid} and all(r.attempts == 1 for r in results.values())
    assert_worker_survived(c, first_pid)


def test_every_result_size_around_bytes_max_either_arrives_or_fails_and_never_crashes(make_controller, wire):
    """Sizes around the largest result a frame can carry, byte by byte, over both wires.

    The transport's own headers count against ``bytes_max`` too (NNG's recv limit covers
    its 4-byte Pair1 header): a result that passes the worker's check must not be
    refused by the dispatcher.
    """
    bytes_max = 65536
    c = make_controller("local", workers=1, wire=wire, bytes_max=bytes_max, crashes_max=1).start()
    first_pid = warm_up(c)
    sizes = range(bytes_max - 200, bytes_max + 1)
    for n in sizes:
        c.push(zeros, (n,), name=f"size_{n}")
    assert c.wait(timeout=120)
    results = {r.name: r for r in c.collect()}
    assert len(results) == len(sizes)
    statuses = {n: results[f"size_{n}"].status for n in sizes}
    assert set(statuses.values()) <= {"success", "error"}, {n: s for n, s in statuses.items() if s not in ("success", "error")}
    ok = [n for n in sizes if statuses[n] == "success"]
    assert ok and len(ok) < len(sizes), "expected sizes on both sides of the limit"
    assert ok == list(range(sizes[0], ok[-1] + 1)), "every size below the largest that arrived arrives"
    assert all(len(results[f"size_{n}"].result) == n for n in ok)
    assert all("bytes_max=65536" in results[f"size_{n}"].error for n in sizes if statuses[n] == "error")
    assert all(r.attempts == 1 and r.pid == first_pid for r in results.values())
    assert_worker_survived(c, first_pid)


def test_error_result_larger_than_bytes_max_arrives_shortened(make_controller, wire):
    """An exception quoting a large value must not make its error result crash the worker."""
    c = make_controller("local", workers=1, wire=wire, bytes_max=1 << 20, crashes_max=1).start()
    first_pid = warm_up(c)
    c.push(raise_huge_error, (3_000_000,), name="huge")
    r = one_result(c)
    assert r.status == "error" and r.error_type == "ValueError" and r.attempts == 1 and r.pid == first_pid, r
    assert r.error.startswith("xxxx") and r.error.endswith("had to fit in bytes_max=1048576]"), r.error[-200:]
    assert len(r.error) < 1 << 20
    assert_worker_survived(c, first_pid)
