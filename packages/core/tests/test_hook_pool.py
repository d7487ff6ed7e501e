"""The daemon threads that call launcher hooks (pycrew.control.hook_pool)."""

from __future__ import annotations

import threading

import pytest

from pycrew.control.hook_pool import HookPool


def test_results_and_every_exception_come_back_through_the_future():
    pool = HookPool(2, "t")
    try:
        assert pool.submit(lambda a, b: a + b, 2, 3).result(timeout=10) == 5
        with pytest.raises(SystemExit, match="usage"):  # not only Exception: nothing ends a call unreported
            pool.submit(lambda: (_ for _ in ()).throw(SystemExit("usage"))).result(timeout=10)
        assert pool.submit(lambda: "after").result(timeout=10) == "after", "a SystemExit ended the pool's thread"
    finally:
        pool.shutdown()


def test_threads_are_daemons_started_as_needed_up_to_max_workers():
    pool = HookPool(3, "t")
    release = threading.Event()
    started = threading.Semaphore(0)

    def hold() -> bool:
        started.release()
        return release.wait(10)

    try:
        assert pool.submit(lambda: threading.current_thread().daemon).result(timeout=10) is True
        assert pool.threads() == 1
        assert pool.submit(lambda: 1).result(timeout=10) == 1
        assert pool.threads() == 1, "an idle thread was there: no new one needed"
        held = [pool.submit(hold) for _ in range(5)]
        for _ in range(3):
            assert started.acquire(timeout=10)
        assert pool.threads() == 3
        assert not started.acquire(timeout=0.2), "more calls ran at once than max_workers"
        release.set()
        assert all(f.result(timeout=10) for f in held), "the calls waiting their turn did not run"
    finally:
        release.set()
        pool.shutdown()


def test_calls_submitted_before_shutdown_run_and_later_ones_are_refused():
    pool = HookPool(1, "t")
    gate = threading.Event()
    first = pool.submit(gate.wait, 10)
    second = pool.submit(lambda: "second")
    pool.shutdown()
    with pytest.raises(RuntimeError, match="after shutdown"):
        pool.submit(lambda: None)
    gate.set()
    assert first.result(timeout=10) is True and second.result(timeout=10) == "second"


def test_max_workers_must_be_positive():
    with pytest.raises(ValueError, match="max_workers must be >= 1"):
        HookPool(0, "t")
