"""``shutdown(cancel_futures=True)`` cancels what has not started, as in ``concurrent.futures``,
and other Executor details (from a differential probe against ProcessPoolExecutor: each
test failed on 64971f1).

- ``shutdown(cancel_futures=True)`` cancelled none of the tasks sent ahead to a worker
  (0 of 40 after short tasks had made the prefetch deep; the pool cancelled 34).
- ``close()`` on a map from another thread while a reader waited in ``next()`` raised
  before it stopped the feeder: ``shutdown(wait=True)`` then waited for ever.
- A task submitted after a cancel waited the grace period (5 s) behind the cancelled task
  its worker did not stop, though another worker could be launched for it.
- ``submit`` racing ``shutdown()`` raised two different errors.
"""

from __future__ import annotations

import os
import queue
import signal
import threading
import time
from pathlib import Path

import pytest

import pycrew
from helpers import hold_the_gil
from support import wait_for


def _mark_and_sleep(directory: str, i: int, seconds: float) -> int:
    Path(directory, f"started-{i}").touch()
    time.sleep(seconds)
    Path(directory, f"done-{i}").touch()
    return i


def _marks(directory: Path, kind: str) -> set[int]:
    return {int(p.name.split("-")[1]) for p in directory.glob(f"{kind}-*")}


def _warm(c: pycrew.Controller, workers: int) -> None:
    """Short tasks first, on every worker: the next tasks are then sent ahead in bulk."""
    wait_for(lambda: c.summary().controller.workers_online == workers, 60, message="workers not online")
    assert list(c.map(abs, range(-300, 0))) == list(range(300, 0, -1))


def test_shutdown_cancel_futures_cancels_the_tasks_sent_ahead(make_controller, tmp_path):
    c = make_controller("local", workers=2).start()
    c.submit(abs, 0), c.submit(abs, 0)
    _warm(c, 2)
    futures = [c.submit(_mark_and_sleep, str(tmp_path), i, 0.3) for i in range(40)]
    wait_for(lambda: _marks(tmp_path, "started"), 30, message="no task started")
    running = sum(f.running() for f in futures)
    c.shutdown(wait=True, cancel_futures=True)
    assert all(f.done() for f in futures)
    cancelled = [i for i, f in enumerate(futures) if f.cancelled()]
    assert len(cancelled) >= 30, f"{len(cancelled)} of 40 cancelled ({running} counted running before)"
    assert not _marks(tmp_path, "started") & set(cancelled), "a cancelled task ran"
    assert all(f.result() == i for i, f in enumerate(futures) if not f.cancelled())


def test_close_from_another_thread_stops_the_map_while_a_reader_waits(make_controller):
    c = make_controller("local", workers=1).start()
    gate: queue.Queue[None] = queue.Queue()

    def stalled_input():
        yield -1
        gate.get()  # more input that never comes
        yield -2

    results = c.map(abs, stalled_input())
    assert next(results) == 1
    reader = threading.Thread(target=lambda: list(results), daemon=True)
    reader.start()
    time.sleep(0.3)
    try:
        results.close()
    except ValueError:  # "generator already executing", as a generator's close() from another thread
        pass
    stopper = threading.Thread(target=c.shutdown, daemon=True)
    stopper.start()
    stopper.join(20)
    alive = stopper.is_alive()
    gate.put(None)
    assert not alive, "shutdown(wait=True) waited for a map that was closed"
    reader.join(10)


def test_a_task_submitted_after_a_cancel_does_not_wait_behind_the_cancelled_one(make_controller):
    c = make_controller("local", workers=2, seconds_idle=60).start()
    assert c.submit(hold_the_gil, 0.0).result(timeout=60) >= 0.0
    d = c._dispatcher
    d.settings = type(d.settings)(**{**d.settings.__dict__, "seconds_grace": 60.0})  # (5 s by default)
    hog = c.submit(hold_the_gil, 60.0)  # its worker cannot stop it, nor read the cancel
    wait_for(hog.running, 30, message="the long task never ran")
    time.sleep(0.3)
    assert hog.cancel()
    assert c.submit(abs, -5).result(timeout=20) == 5  # (it waited for the long task: 60 s)
    c.terminate()


@pytest.mark.parametrize("round", range(3))
def test_submit_racing_shutdown_always_raises_the_executors_error(make_controller, round):
    c = make_controller("local", workers=1).start()
    errors: list[BaseException] = []
    start = threading.Barrier(9)

    def submit_many() -> None:
        start.wait()
        for _ in range(5_000):
            try:
                c.submit(abs, -1)
            except BaseException as exc:  # (collected for the assertion)
                errors.append(exc)
                return

    threads = [threading.Thread(target=submit_many) for _ in range(8)]
    for t in threads:
        t.start()
    start.wait()
    time.sleep(0.002)
    c.shutdown(wait=True)
    for t in threads:
        t.join(60)
    assert errors, "shutdown came after every submit: nothing to tell"
    kinds = {(type(e).__name__, str(e)) for e in errors}
    assert kinds <= {("RuntimeError", "cannot schedule new futures after shutdown")}, kinds


def test_tasks_sent_ahead_to_a_worker_that_dies_before_giving_them_back_are_cancelled(make_controller, tmp_path):
    """The worker holds the GIL (it cannot answer the recall) and is killed: the tasks behind
    its long one never started and must not run on its replacement (a probe: 30 of 30 ran)."""
    c = make_controller("local", workers=1).start()
    _warm(c, 1)
    long = c.submit(hold_the_gil, 6.0)
    futures = [c.submit(_mark_and_sleep, str(tmp_path), i, 0.0) for i in range(30)]
    wait_for(lambda: c.summary().workers[0].running == 31, 30, message="the tasks were not all sent ahead")
    pid = c.summary().workers[0].pid
    killer = threading.Timer(1.5, os.kill, (pid, signal.SIGKILL))
    killer.start()
    try:
        c.shutdown(wait=True, cancel_futures=True)
    finally:
        killer.cancel()
    assert all(f.cancelled() for f in futures), [f._state for f in futures]
    assert not _marks(tmp_path, "started"), "a cancelled task ran"
    assert long.done() and not long.cancelled()  # it had started: it died with its worker, and ran again
