"""A Ctrl-C that stops ``terminate()`` half way, caught by the program: a later
``terminate()`` does what was left (ends the queued futures, terminates the workers), and
one after that does nothing."""

from __future__ import annotations

import threading
import time

import pytest

import pycrew
from pycrew.testing.harness import wait_until


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def test_terminate_again_after_a_ctrl_c_finishes_what_the_first_left(monkeypatch: pytest.MonkeyPatch) -> None:
    """On e129ced the second terminate() returned at once: the queued task's future stayed
    pending for good and the workers' termination never ran (a probe: 6 of 7 runs left the
    launch thread behind)."""
    c = pycrew.controller("local", workers=1)
    try:
        assert c.submit(nap, 0).result(timeout=60) == 0
        busy = c.submit(nap, 30)  # the only worker is busy ...
        queued = c.submit(nap, 0)  # ... and this one waits
        wait_until(lambda: busy.running(), 30, "the long task running")
        terminate_all = c.launcher.terminate_all
        calls: list[float] = []

        def interrupted_once(timeout: float) -> None:
            calls.append(timeout)
            if len(calls) == 1:
                raise KeyboardInterrupt  # as if Ctrl-C came while the workers were being terminated
            terminate_all(timeout)

        monkeypatch.setattr(c.launcher, "terminate_all", interrupted_once)
        with pytest.raises(KeyboardInterrupt):
            c.terminate()
        assert not queued.done(), "the first terminate() stopped before it ended the queued tasks"
        c.terminate()  # the program carries on and terminates again
        assert len(calls) == 2, "the second terminate() did not terminate the workers"
        assert queued.done() and busy.done(), "a future left pending after terminate()"
        assert c.launcher.closed
        c.terminate()
        assert len(calls) == 2, "a third terminate() is a no-op"
    finally:
        monkeypatch.undo()
        c.terminate()


def test_another_thread_waits_for_a_resumed_termination() -> None:
    """Guard: terminate() from two threads at once still runs once and both return after it."""
    c = pycrew.controller("local", workers=1)
    c.submit(nap, 0).result(timeout=60)
    threads = [threading.Thread(target=c.terminate) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads) and c.launcher.closed
