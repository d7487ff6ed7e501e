"""A ``wait()`` that another thread's ``terminate()`` ends raises only once that
termination has resolved every future: a caller that catches the ControllerError finds
each future done (cancelled), as ``terminate()`` itself leaves them."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

import pycrew
from pycrew.errors import ControllerError


def nap(seconds: float) -> float:
    time.sleep(seconds)
    return seconds


def slow_platform(c: Any, monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """The workers' termination takes ``seconds`` (as scancel, qdel or a cloud API may)."""
    terminate_all = c.launcher.terminate_all

    def slow(*args: Any, **kwargs: Any) -> Any:
        time.sleep(seconds)
        return terminate_all(*args, **kwargs)

    monkeypatch.setattr(c.launcher, "terminate_all", slow)


@pytest.mark.parametrize("mode", ["all", "one"])
def test_wait_raises_after_the_terminating_thread_resolved_the_futures(mode: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Before, wait() raised as soon as terminate() began, with the futures still running
    for as long as the workers' termination took."""
    c = pycrew.controller("local", workers=2, seconds_terminate=10)
    slow_platform(c, monkeypatch, 1.5)
    try:
        assert c.submit(nap, 0).result(timeout=60) == 0
        running = [c.submit(nap, 60) for _ in range(2)]  # one on each worker
        queued = [c.submit(nap, 60) for _ in range(3)]
        deadline = time.monotonic() + 30
        while c.summary().controller.running < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        raised: list[BaseException] = []
        seen: list[list[bool]] = []

        def waiter() -> None:
            try:
                c.wait(mode, timeout=60)
            except ControllerError as exc:
                seen.append([f.done() for f in running + queued])  # what the caller sees as wait() raises
                raised.append(exc)

        thread = threading.Thread(target=waiter)
        thread.start()
        time.sleep(0.3)  # the waiter waits
        terminator = threading.Thread(target=c.terminate)
        terminator.start()
        thread.join(60)
        terminator.join(60)
        assert not thread.is_alive() and not terminator.is_alive()
        assert raised and "terminated" in str(raised[0])
        assert seen == [[True] * 5], f"wait() raised while futures were unresolved: done={seen}"
        assert all(f.cancelled() or isinstance(f.exception(), ControllerError) for f in running + queued)
    finally:
        c.terminate()


def test_wait_with_a_timeout_raises_within_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A wait() with a timeout shorter than the termination raises when its time is up."""
    c = pycrew.controller("local", workers=1, seconds_terminate=10)
    slow_platform(c, monkeypatch, 3.0)
    try:
        assert c.submit(nap, 0).result(timeout=60) == 0
        c.submit(nap, 60)
        terminator = threading.Thread(target=c.terminate)
        terminator.start()
        time.sleep(0.3)
        t0 = time.monotonic()
        with pytest.raises(ControllerError, match="terminated"):
            c.wait("all", timeout=0.5)
        assert time.monotonic() - t0 < 2.5
        terminator.join(60)
    finally:
        c.terminate()


def test_wait_in_a_done_callback_during_terminate_does_not_hang(monkeypatch: pytest.MonkeyPatch) -> None:
    """A done-callback of a future that terminate() ends, which calls wait(), raises (it
    does not wait for anything that waits for it)."""
    c = pycrew.controller("local", workers=1, seconds_terminate=10)
    slow_platform(c, monkeypatch, 0.5)
    outcome: list[str] = []
    try:
        assert c.submit(nap, 0).result(timeout=60) == 0
        future = c.submit(nap, 60)

        def callback(_f: Any) -> None:
            t = time.monotonic()
            try:
                c.wait("all", timeout=30)
                outcome.append("returned")
            except ControllerError:
                outcome.append(f"raised after {time.monotonic() - t:.1f} s")

        future.add_done_callback(callback)
        deadline = time.monotonic() + 30
        while c.summary().controller.running < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        t0 = time.monotonic()
        c.terminate()
        assert time.monotonic() - t0 < 20
        deadline = time.monotonic() + 30
        while not outcome and time.monotonic() < deadline:
            time.sleep(0.05)
        assert outcome and outcome[0].startswith("raised"), outcome
    finally:
        c.terminate()


def test_a_groups_wait_raises_after_its_terminated_member_resolved_its_futures(monkeypatch: pytest.MonkeyPatch) -> None:
    """A group's wait() raises a member's termination only once that member's futures are
    resolved (before, at once, with them still running)."""
    a = pycrew.controller("local", name="a", workers=1, seconds_terminate=10)
    b = pycrew.controller("local", name="b", workers=1, seconds_terminate=10)
    slow_platform(a, monkeypatch, 1.5)
    group = pycrew.ControllerGroup(a, b)
    try:
        assert a.submit(nap, 0).result(timeout=60) == 0 and b.submit(nap, 0).result(timeout=60) == 0
        on_a = [a.submit(nap, 60) for _ in range(2)]
        deadline = time.monotonic() + 30
        while a.summary().controller.running < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        terminator = threading.Thread(target=a.terminate)
        terminator.start()
        time.sleep(0.2)
        with pytest.raises(ControllerError, match="terminated"):
            group.wait("all", timeout=60)
        assert all(f.done() for f in on_a)
        terminator.join(60)
    finally:
        group.terminate()
