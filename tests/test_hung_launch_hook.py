"""A launch hook that has not returned within seconds_launch is waited on, not called again.

From a probe of SLURM (session 35): with sbatch hanging (a scheduler daemon too busy to
answer), each failed launch made another submit while the earlier ones still hung, up to
launch_max of them in flight, and a submit that got through late had its job cancelled.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

import pytest

import pycrew
from pycrew_local import LocalOptions
from pycrew_local.plugin import LocalPlugin


class Stalling(LocalPlugin):
    """The local launcher behind a platform whose first launch call answers after ``stall`` seconds."""

    name = "stalling"

    def __init__(self, stall: float) -> None:
        self.stall = stall
        self.calls = 0
        self.in_flight = 0
        self.most_in_flight = 0
        self.release = threading.Event()
        self._lock = threading.Lock()

    def launch(self, launcher: pycrew.LauncherInfo, options: LocalOptions, calls: Sequence[pycrew.WorkerCall]) -> Any:
        with self._lock:
            self.calls += 1
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
            first = self.calls == 1
        try:
            if first:
                self.release.wait(self.stall)
            return super().launch(launcher, options, calls)
        finally:
            with self._lock:
                self.in_flight -= 1


def test_a_late_launch_call_is_waited_for_and_its_worker_used(make_controller, pycrew_plugin: Any) -> None:
    """The first call answers after 2.6 x seconds_launch: before, two more calls were made
    meanwhile (three in flight) and the late worker was terminated; now it runs the task."""
    plugin = pycrew_plugin(Stalling(stall=5.2), name="stalling")
    c = make_controller("stalling", workers=1, launch_max=5, seconds_launch=2).start()
    assert c.submit(abs, -3).result(timeout=60) == 3
    launcher = c.summary().launcher
    assert plugin.calls == 1 and plugin.most_in_flight == 1, (plugin.calls, plugin.most_in_flight)
    assert launcher["launches"] == 1 and launcher["launch_failures"] >= 1, launcher  # (2 s and 4 s overdue)
    assert "had not returned within seconds_launch=2 s" in launcher["last_launch_error"]


def test_a_launch_call_that_never_returns_raises_after_launch_max_periods_with_one_call(make_controller, pycrew_plugin: Any) -> None:
    plugin = pycrew_plugin(Stalling(stall=120), name="stalling")
    try:
        c = make_controller("stalling", workers=1, launch_max=3, seconds_launch=1).start()
        started = time.monotonic()
        future = c.submit(abs, -1)
        with pytest.raises(pycrew.LaunchError) as raised:
            future.result(timeout=60)
        waited = time.monotonic() - started
        message = str(raised.value)
        assert "failed to start a worker 3 times in a row" in message, message
        assert "had not returned within seconds_launch=1 s (3 s since it was called)" in message, message
        assert plugin.calls == 1, f"{plugin.calls} launch calls: one hung call, waited on, is enough"
        assert c.summary().launcher["launch_failures"] == 3, c.summary().launcher
        assert waited >= 2.5, f"the LaunchError came after {waited:.1f} s: launch_max periods of seconds_launch are due"
    finally:
        plugin.release.set()


class Watching(LocalPlugin):
    """The local launcher, whose launch hook watches its workers start for up to a minute
    after starting them (as k8s's launch check does), unless the controller terminates."""

    name = "watching"

    def __init__(self) -> None:
        self.handles: list[Any] = []
        self.stopped_after: float | None = None

    def launch(self, launcher: pycrew.LauncherInfo, options: LocalOptions, calls: Sequence[pycrew.WorkerCall]) -> Any:
        handles = super().launch(launcher, options, calls)
        self.handles.extend(handles)
        began = time.monotonic()
        while time.monotonic() - began < 60 and not self.launches_cancelled(calls[0].controller_id):
            time.sleep(0.05)
        self.stopped_after = time.monotonic() - began
        return handles


def test_terminate_asks_a_launch_in_flight_to_return_and_terminates_its_workers(make_controller, pycrew_plugin: Any) -> None:
    """Before pycrew_cancel_launches, terminate() waited for such a launch until seconds_terminate
    ran out (55 s here), then left its workers to the monitor's --orphans."""
    import psutil

    plugin = pycrew_plugin(Watching(), name="watching")
    c = make_controller("watching", workers=2, seconds_launch=120, seconds_terminate=60).start()
    c.submit(abs, -1)
    c.submit(abs, -2)
    deadline = time.monotonic() + 30
    while len(plugin.handles) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(plugin.handles) == 2, plugin.handles
    started = time.monotonic()
    c.terminate()
    took = time.monotonic() - started
    assert plugin.stopped_after is not None and took < 20, f"terminate() took {took:.1f} s"
    alive = psutil.wait_procs([p for p in (h.process() for h in plugin.handles) if p is not None], timeout=10)[1]
    assert not alive, f"workers of the cut-short launch left running: {alive}"
    assert not plugin.launches_cancelled("some other controller")


class SecondHangs(LocalPlugin):
    """The local launcher, whose calls for worker 2 hang (until the test's end)."""

    name = "secondhangs"

    def __init__(self) -> None:
        self.calls_for_2 = 0
        self.release = threading.Event()

    def launch(self, launcher: pycrew.LauncherInfo, options: LocalOptions, calls: Sequence[pycrew.WorkerCall]) -> Any:
        if any(call.worker == 2 for call in calls):
            self.calls_for_2 += 1
            self.release.wait(120)
        return super().launch(launcher, options, calls)


def test_a_parked_slot_waits_on_its_hung_call_instead_of_adding_one_per_retry(
    make_controller, pycrew_plugin: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Worker 1 serves; worker 2's calls hang. Once parked (launch_max reached while worker 1
    is connected), its slot made a new call at every retry while the old ones hung, until
    the hook pool's threads were all taken (a probe's review, session 36)."""
    from pycrew.control import launch_watch

    monkeypatch.setattr(launch_watch, "SECONDS_RETRY_PARKED", 0.5)
    plugin = pycrew_plugin(SecondHangs(), name="secondhangs")
    try:
        c = make_controller("secondhangs", workers=2, launch_max=2, seconds_launch=1, workers_at_start=0).start()
        first = c.submit(time.sleep, 1.0)  # worker 1 connects and serves
        deadline = time.monotonic() + 30
        while c.summary().controller.workers_online < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        futures = [c.submit(time.sleep, 0.5) for _ in range(14)]  # demand for worker 2 for about 7 s
        for f in [first, *futures]:
            f.result(timeout=60)
        assert plugin.calls_for_2 <= 2, f"{plugin.calls_for_2} calls for worker 2, each hung while the next was made"
    finally:
        plugin.release.set()


class SlowToCancel(Stalling):
    """A launch that hangs, and a cancel_launches that blocks (a platform call that hangs too)."""

    name = "slowtocancel"

    def cancel_launches(self, launcher: pycrew.LauncherInfo, options: LocalOptions) -> None:
        self.release.wait(30)


def test_a_cancel_hook_that_blocks_does_not_hold_terminate_past_seconds_terminate(make_controller, pycrew_plugin: Any) -> None:
    """It ran on the terminating thread with no deadline: terminate() took 30 s with
    seconds_terminate=3 (a probe's review, session 36)."""
    plugin = pycrew_plugin(SlowToCancel(stall=60), name="slowtocancel")
    try:
        c = make_controller("slowtocancel", workers=1, seconds_launch=60, seconds_terminate=3).start()
        c.submit(abs, -1)
        deadline = time.monotonic() + 30
        while plugin.calls < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        started = time.monotonic()
        c.terminate()
        took = time.monotonic() - started
        assert took < 15, f"terminate() took {took:.1f} s with seconds_terminate=3"
    finally:
        plugin.release.set()


class RaisesAfterConnect(LocalPlugin):
    """The local launcher, whose hook starts the worker, waits for it to connect, then raises
    (a launch check that gave up a moment too late)."""

    name = "raisesafter"

    def __init__(self) -> None:
        self.calls = 0

    def launch(self, launcher: pycrew.LauncherInfo, options: LocalOptions, calls: Sequence[pycrew.WorkerCall]) -> Any:
        self.calls += 1
        super().launch(launcher, options, calls)
        time.sleep(3.0)  # the worker connects meanwhile
        raise RuntimeError("the launch check timed out")


def test_a_worker_that_connected_before_its_hook_failed_is_kept(make_controller, pycrew_plugin: Any) -> None:
    """It was revoked, with its task: the task crashed crashes_max times, each worker dropped
    as its hook failed, and no LaunchError ever came (a probe's review, session 36)."""
    plugin = pycrew_plugin(RaisesAfterConnect(), name="raisesafter")
    c = make_controller("raisesafter", workers=1, seconds_launch=30, crashes_max=2).start()
    assert c.submit(time.sleep, 5.0).result(timeout=60) is None
    assert plugin.calls == 1 and c.summary().controller.crash == 0, (plugin.calls, c.summary().controller)
