"""The scaler's bookkeeping with a fake launcher plugin and a fake dispatcher (no processes).

The scaler decides on the dispatcher's thread and calls hooks in its pool; here the test
thread plays the dispatcher: it calls ``scale`` with a clock it controls and runs what
the pool hands back through ``call_soon``.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

import pycrew
from pycrew.control.scaler import CONNECTED, IDLE, LAUNCHING, Scaler
from pycrew.controller_options import build_controller_options
from pycrew.plugins import PluginRegistry


@dataclass(frozen=True)
class FakeOptions(pycrew.LauncherOptions):
    """No options."""


class FakePlatform:
    """A launcher plugin whose workers are records; tests decide what happens to them."""

    def __init__(self) -> None:
        self.launched: list[list[pycrew.WorkerCall]] = []
        self.terminated: list[Any] = []
        self.fail_launch: str | None = None
        self.ended: dict[str, str] = {}  # instance -> reason, reported by the monitor

    @pycrew.hookimpl
    def pycrew_register_launchers(self, register: Callable[..., None]) -> None:
        register("fake", FakeOptions, summary="records")

    @pycrew.hookimpl
    def pycrew_launch_workers(self, launcher: pycrew.LauncherInfo, calls: Sequence[pycrew.WorkerCall]) -> list[Any]:
        if self.fail_launch:
            raise RuntimeError(self.fail_launch)
        self.launched.append(list(calls))
        return [f"handle-{c.instance}" for c in calls]

    @pycrew.hookimpl
    def pycrew_terminate_workers(self, launcher: pycrew.LauncherInfo, handles: Sequence[Any]) -> None:
        self.terminated.extend(handles)

    @pycrew.hookimpl
    def pycrew_list_workers(self, launcher: pycrew.LauncherInfo, controller_id: str | None) -> list[pycrew.WorkerInfo]:
        return [
            pycrew.WorkerInfo(id=i, handle=f"handle-{i}", launcher="fake", instance=i, status="failed", reason=r, exit_code=1)
            for i, r in self.ended.items()
        ]


class FakeDispatcher:
    """What the scaler needs of a dispatcher: tokens, and a way back to 'its' thread."""

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}
        self.revoked: list[str] = []
        self.inbox: queue.Queue[Callable[[], None]] = queue.Queue()

    def authorize(self, instance: str, token: str, slot: int) -> None:
        self.tokens[instance] = token

    def revoke(self, instance: str) -> None:
        self.revoked.append(instance)

    def call_soon(self, fn: Callable[[], None]) -> None:
        self.inbox.put(fn)


class Harness:
    def __init__(self, **options: Any) -> None:
        self.platform = FakePlatform()
        self.registry = PluginRegistry(load_entry_points=False)
        self.registry.register(self.platform)
        spec = self.registry.launcher("fake")
        info = pycrew.LauncherInfo("fake", FakeOptions(), controller="c", controller_id="cid")
        self.scaler = Scaler(spec, info, self.registry, build_controller_options({"workers": 2, **options}), None)
        self.scaler.url = "tcp://127.0.0.1:1"
        self.dispatcher = FakeDispatcher()
        self.scaler.dispatcher = self.dispatcher  # type: ignore[assignment]
        self.now = time.monotonic()  # the scaler's backoff compares with time.monotonic() too

    def settle(self, timeout: float = 10.0) -> None:
        """Wait for the pool's hook calls, running what they hand back, until nothing is pending."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.dispatcher.inbox.get(timeout=0.05)()
                continue
            except queue.Empty:
                pass
            with self.scaler._pending_lock:
                if not self.scaler.pending and self.dispatcher.inbox.empty():
                    return
        raise AssertionError("the scaler's pool did not settle")

    def scale(self, demand: int, advance: float = 0.0) -> None:
        self.now += advance
        self.scaler.scale(demand, self.now)
        self.settle()

    def states(self) -> list[str]:
        return [s.state for s in self.scaler.slots]


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness()
    yield harness
    harness.scaler.terminate_all(5.0)


def test_demand_launches_one_batch_up_to_workers(h):
    h.scale(demand=5)
    assert len(h.platform.launched) == 1 and len(h.platform.launched[0]) == 2, "one batch of 2 for 2 slots"
    assert h.states() == [LAUNCHING, LAUNCHING]
    calls = h.platform.launched[0]
    assert {c.instance for c in calls} == set(h.dispatcher.tokens), "every launched instance is authorized"
    assert all(s.handle_known for s in h.scaler.slots)
    h.scale(demand=5)
    assert len(h.platform.launched) == 1, "launching workers count as supply: no second batch"


def test_demand_below_workers_launches_only_what_is_needed(h):
    h.scale(demand=1)
    assert [len(b) for b in h.platform.launched] == [1]
    assert sorted(h.states()) == [IDLE, LAUNCHING]


def test_a_worker_that_does_not_connect_in_time_is_a_failed_launch_then_retried_with_backoff(h):
    h.scale(demand=1)
    (call,) = h.platform.launched[0]
    h.scale(demand=1, advance=h.scaler.options.seconds_launch + 1)
    slot = h.scaler.slots[0]
    assert call.instance in h.dispatcher.revoked, "a timed-out launch's token must be revoked"
    assert f"handle-{call.instance}" in h.platform.terminated, "a timed-out launch must be terminated"
    assert slot.launch_failures == 1 and slot.failures == 1
    assert slot.retry_after > time.monotonic() - 1
    assert h.scaler.error is None


def test_launch_max_failures_in_a_row_raise_a_launch_error_naming_the_reason():
    h = Harness(launch_max=2, workers=1)
    try:
        h.platform.fail_launch = "quota exceeded"
        for _ in range(2):
            h.scale(demand=1, advance=20.0)
        assert isinstance(h.scaler.error, pycrew.LaunchError)
        assert "quota exceeded" in str(h.scaler.error) and "launch_max=2" in str(h.scaler.error)
        launched_before = len(h.platform.launched)
        h.scale(demand=1, advance=20.0)
        assert len(h.platform.launched) == launched_before, "no launches after the launcher gave up"
    finally:
        h.scaler.terminate_all(5.0)


def test_connect_resets_failures_and_disconnect_frees_the_slot_and_terminates(h):
    h.scale(demand=1)
    (call,) = h.platform.launched[0]
    slot = next(s for s in h.scaler.slots if s.instance == call.instance)
    slot.failures = 3
    h.scaler.connected(call.instance, {"host": "n1", "pid": 42})
    assert slot.state == CONNECTED and slot.failures == 0 and (slot.host, slot.pid) == ("n1", 42)
    h.scaler.disconnected(call.instance, crashed=True, reason="its connection was lost")
    h.settle()
    assert slot.state == IDLE and slot.crashes == 1 and slot.exit_reason == "its connection was lost"
    assert f"handle-{call.instance}" in h.platform.terminated


def test_a_launching_worker_the_monitor_reports_ended_fails_at_once_with_its_reason(h):
    h.scale(demand=1)
    (call,) = h.platform.launched[0]
    h.platform.ended[call.instance] = "CannotPullContainerError: no such image"
    deadline = time.monotonic() + 10
    while h.scaler.slots[0].launch_failures + h.scaler.slots[1].launch_failures == 0:
        assert time.monotonic() < deadline, "the monitor's report did not fail the launch"
        h.scale(demand=0, advance=0.0)
        time.sleep(0.05)
    assert "CannotPullContainerError" in h.scaler.last_launch_error


def test_a_worker_that_connected_is_never_failed_by_the_monitor(h):
    h.scale(demand=1)
    (call,) = h.platform.launched[0]
    h.scaler.connected(call.instance, {"host": "n1", "pid": 1})
    h.platform.ended[call.instance] = "exited"
    for _ in range(30):
        h.scale(demand=1, advance=0.0)
        time.sleep(0.05)
    assert sum(s.launch_failures for s in h.scaler.slots) == 0


def test_terminate_all_reaches_every_worker_still_known(h):
    h.scale(demand=2)
    handles = {f"handle-{c.instance}" for c in h.platform.launched[0]}
    h.scaler.terminate_all(5.0)
    assert handles <= set(h.platform.terminated)
