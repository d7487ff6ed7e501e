"""The scaler's bookkeeping with a fake launcher plugin and a fake dispatcher (no processes).

The scaler decides on the dispatcher's thread and calls hooks in its pool; here the test
thread plays the dispatcher: it calls ``scale`` with a clock it controls (also the scaler's
own :attr:`~pycrew.control.launch_watch.LaunchWatch.clock`, so backoffs and monitor polls
follow it) and runs what the pool hands back through ``call_soon``.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

import pycrew
from pycrew.control.launch_watch import SECONDS_EXPLAIN, SECONDS_FIRST_POLL, SECONDS_POLL, SECONDS_RETRY_PARKED
from pycrew.control.scaler import Scaler
from pycrew.control.slots import CONNECTED, IDLE, LAUNCHING
from pycrew.controller_options import build_controller_options
from pycrew.plugins import PluginRegistry
from pycrew.testing.harness import wait_until


@dataclass(frozen=True)
class FakeOptions(pycrew.LauncherOptions):
    """No options."""


class FakePlatform:
    """A launcher plugin whose workers are records; tests decide what happens to them."""

    def __init__(self, capabilities: frozenset[str] = frozenset()) -> None:
        self.capabilities = capabilities
        self.events: list[tuple[str, Any]] = []  # ("list", None) and ("terminate", handles), in order
        self.launched: list[list[pycrew.WorkerCall]] = []
        self.terminated: list[Any] = []
        self.fail_launch: str | None = None
        self.raise_in: dict[str, BaseException] = {}  # hook name -> what it raises
        self.block_listing: threading.Event | None = None  # the monitor waits for it (a hung platform API)
        self.block_terminating: threading.Event | None = None  # so does terminating
        self.block_handles: dict[Any, threading.Event] = {}  # terminating these handles waits for their event
        self.ended: dict[str, Any] = {}  # instance -> reason, reported by the monitor
        self.logs: dict[Any, str] = {}  # handle -> its output (pycrew_worker_logs)
        self.listings = 0  # monitor calls

    @pycrew.hookimpl
    def pycrew_register_launchers(self, register: Callable[..., None]) -> None:
        register("fake", FakeOptions, summary="records", capabilities=self.capabilities)

    @pycrew.hookimpl
    def pycrew_launch_workers(self, launcher: pycrew.LauncherInfo, calls: Sequence[pycrew.WorkerCall]) -> list[Any]:
        if self.fail_launch:
            raise RuntimeError(self.fail_launch)
        if "launch" in self.raise_in:
            raise self.raise_in["launch"]
        self.launched.append(list(calls))
        return [f"handle-{c.instance}" for c in calls]

    @pycrew.hookimpl
    def pycrew_terminate_workers(self, launcher: pycrew.LauncherInfo, handles: Sequence[Any]) -> None:
        if self.block_terminating is not None:
            self.block_terminating.wait(30)
        for handle in handles:
            if handle in self.block_handles:
                self.block_handles[handle].wait(30)
        if "terminate" in self.raise_in:
            raise self.raise_in["terminate"]
        self.terminated.extend(handles)
        self.events.append(("terminate", list(handles)))

    @pycrew.hookimpl
    def pycrew_worker_logs(self, launcher: pycrew.LauncherInfo, handle: Any, lines: int | None) -> str | None:
        return self.logs.get(handle)

    @pycrew.hookimpl
    def pycrew_list_workers(self, launcher: pycrew.LauncherInfo, controller_id: str | None) -> list[pycrew.WorkerInfo]:
        self.listings += 1
        self.events.append(("list", None))
        if self.block_listing is not None:
            self.block_listing.wait(30)
        if "list" in self.raise_in:
            raise self.raise_in["list"]
        return [
            pycrew.WorkerInfo(id=i, handle=f"handle-{i}", launcher="fake", instance=i, status="failed", reason=r, exit_code=1)
            for i, r in self.ended.items()
        ]


class FakeDispatcher:
    """What the scaler needs of a dispatcher: tokens, and a way back to 'its' thread."""

    def __init__(self) -> None:
        self.tokens: dict[str, str] = {}
        self.revoked: list[str] = []
        self.explained: list[tuple[str, str]] = []  # the scaler's word on each lost worker (see crash_watch)
        self.inbox: queue.Queue[Callable[[], None]] = queue.Queue()

    def authorize(self, instance: str, token: str, slot: int) -> None:
        self.tokens[instance] = token

    def revoke(self, instance: str) -> None:
        self.revoked.append(instance)

    def call_soon(self, fn: Callable[[], None]) -> None:
        self.inbox.put(fn)

    def crash_explained(self, instance: str, why: str) -> None:
        self.explained.append((instance, why))


class Harness:
    def __init__(self, capabilities: frozenset[str] = frozenset(), **options: Any) -> None:
        self.platform = FakePlatform(capabilities)
        self.registry = PluginRegistry(load_entry_points=False)
        self.registry.register(self.platform)
        spec = self.registry.launcher("fake")
        info = pycrew.LauncherInfo("fake", FakeOptions(), controller="c", controller_id="cid")
        self.scaler = Scaler(spec, info, self.registry, build_controller_options({"workers": 2, **options}), None)
        self.scaler.url = "tcp://127.0.0.1:1"
        self.dispatcher = FakeDispatcher()
        self.scaler.dispatcher = self.dispatcher  # type: ignore[assignment]
        self.now = 1000.0  # the clock: only the test moves it
        self.scaler.clock = lambda: self.now

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

    def scale_until(self, condition: Callable[[], bool], demand: int, step: float, what: str, steps: int = 20) -> None:
        """Scale with the clock moved ``step`` each time until ``condition()`` holds (wait-for-condition)."""
        for _ in range(steps):
            if condition():
                return
            self.scale(demand, advance=step)
        assert condition(), f"{what}: not after {steps} scaling rounds {step:g} s apart"

    def states(self) -> list[str]:
        return [s.state for s in self.scaler.slots]


@pytest.fixture
def make_harness() -> Iterator[Callable[..., Harness]]:
    """Harnesses with controller options of the test's choosing, their scalers stopped after it."""
    made: list[Harness] = []

    def make(**options: Any) -> Harness:
        made.append(Harness(**options))
        return made[-1]

    yield make
    for harness in made:
        harness.scaler.terminate_all(5.0)


@pytest.fixture
def h(make_harness: Callable[..., Harness]) -> Harness:
    return make_harness()


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


def test_a_worker_that_does_not_connect_in_time_is_a_failed_launch_then_retried_with_backoff(make_harness):
    h = make_harness(workers=1)
    h.scale(demand=1)
    (call,) = h.platform.launched[0]
    h.scale(demand=1, advance=h.scaler.options.seconds_launch + 1)
    t_fail = h.now
    slot = h.scaler.slots[0]
    assert call.instance in h.dispatcher.revoked, "a timed-out launch's token must be revoked"
    assert f"handle-{call.instance}" in h.platform.terminated, "a timed-out launch must be terminated"
    assert slot.launch_failures == 1 and slot.failures == 1 and slot.state == IDLE
    assert slot.retry_after == t_fail + 0.25, "the first retry waits 0.25 s from the failure"
    assert len(h.platform.launched) == 1, "no launch in the scale call that timed the launch out"
    h.scale(demand=1, advance=0.2)
    assert len(h.platform.launched) == 1, "the slot was launched again before its backoff ran out"
    h.scale(demand=1, advance=0.05)
    assert [len(b) for b in h.platform.launched] == [1, 1], "the slot was not launched again after its backoff"
    assert slot.state == LAUNCHING and slot.instance != call.instance
    h.scale(demand=1, advance=h.scaler.options.seconds_launch + 1)
    assert slot.failures == 2 and slot.retry_after == h.now + 0.5, "the second failure in a row doubles the backoff"
    assert h.scaler.error is None


def test_the_backoff_doubles_per_failure_in_a_row_up_to_ten_seconds(make_harness):
    h = make_harness(workers=1, launch_max=10)
    h.platform.fail_launch = "quota exceeded"
    slot = h.scaler.slots[0]
    h.scale(demand=1)
    for failures, delay in enumerate([0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0], start=1):
        assert (slot.failures, slot.launches) == (failures, failures)
        assert slot.retry_after == h.now + delay, f"after {failures} failed launch(es) the slot waits {delay} s"
        h.scale(demand=1, advance=delay / 2)
        assert slot.launches == failures, f"launched {delay / 2} s into a {delay} s backoff"
        h.scale(demand=1, advance=delay / 2)
        assert slot.launches == failures + 1, f"not launched when the {delay} s backoff ran out"
    assert h.scaler.error is None and "quota exceeded" in h.scaler.last_launch_error


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
    assert h.dispatcher.explained == [(call.instance, "")], "no monitor: its tasks are not held"
    assert h.platform.listings == 0


def connected_workers(h: Harness, n: int) -> list[str]:
    h.scale(demand=n)
    instances = [c.instance for c in h.platform.launched[0]]
    for instance in instances:
        h.scaler.connected(instance, {"host": "n1", "pid": 42})
    return instances


def test_a_lost_worker_is_asked_about_before_it_is_terminated(make_harness):
    """On 955853b the task's error said "connection lost", and the worker (a pod OOM-killed, with its reason) was
    terminated at once: see pycrew.control.crash_watch."""
    h = make_harness(capabilities=frozenset({"monitor"}))
    (instance,) = connected_workers(h, 1)
    h.platform.ended[instance] = "OOMKilled"
    h.scaler.disconnected(instance, crashed=True, reason="its connection was lost")
    h.settle()
    ((said_of, why),) = h.dispatcher.explained
    assert said_of == instance and why.startswith("the platform reports the worker as ") and why.endswith(
        ", exit code 1: OOMKilled"), why
    assert h.platform.events[-2:] == [("list", None), ("terminate", [f"handle-{instance}"])], h.platform.events


def test_a_lost_worker_not_reported_ended_is_asked_about_for_seconds_then_terminated(make_harness):
    h = make_harness(capabilities=frozenset({"monitor"}))
    (instance,) = connected_workers(h, 1)
    listed = h.platform.listings
    h.scaler.disconnected(instance, crashed=True, reason="its connection was lost")
    h.settle()
    assert h.dispatcher.explained == [(instance, "")]
    assert h.platform.listings - listed >= 5, "asked again while it may not be reaped yet (SECONDS_SETTLE)"
    assert f"handle-{instance}" in h.platform.terminated


def test_workers_lost_while_the_monitor_is_asked_wait_for_one_more_call(make_harness):
    h = make_harness(capabilities=frozenset({"monitor"}), workers=3)
    instances = connected_workers(h, 3)
    for instance in instances:
        h.platform.ended[instance] = "Error"
    listed = h.platform.listings
    h.platform.block_listing = threading.Event()
    for instance in instances:
        h.scaler.disconnected(instance, crashed=True, reason="its connection was lost")
    h.platform.block_listing.set()
    h.settle()
    assert sorted(i for i, _ in h.dispatcher.explained) == sorted(instances)
    assert all(why.endswith("exit code 1: Error") for _, why in h.dispatcher.explained), h.dispatcher.explained
    assert h.platform.listings - listed == 2, "the first one alone, then the two lost meanwhile together"
    assert sorted(h.platform.terminated) == sorted(f"handle-{i}" for i in instances)


def test_a_lost_worker_is_quoted_with_the_end_of_its_output_when_the_reason_does_not_quote_it(make_harness):
    """A batch scheduler says only FAILED; the worker's log says why (as for a failed launch)."""
    h = make_harness(capabilities=frozenset({"monitor"}))
    (instance,) = connected_workers(h, 1)
    h.platform.ended[instance] = "NonZeroExitCode"
    h.platform.logs[f"handle-{instance}"] = "loading\nMemoryError: cannot allocate 40 GiB\n"
    h.scaler.disconnected(instance, crashed=True, reason="its connection was lost")
    h.settle()
    ((_, why),) = h.dispatcher.explained
    assert why.endswith("exit code 1: NonZeroExitCode; its output ends with:\n    loading\n    MemoryError: cannot allocate 40 GiB"), why


def test_a_monitor_report_of_odd_types_leaves_the_lost_worker_unexplained_and_terminated(make_harness):
    h = make_harness(capabilities=frozenset({"monitor"}))
    (instance,) = connected_workers(h, 1)
    h.platform.ended[instance] = ["not", "a", "str"]
    h.scaler.disconnected(instance, crashed=True, reason="its connection was lost")
    h.settle()
    assert h.dispatcher.explained == [(instance, "")]
    assert f"handle-{instance}" in h.platform.terminated


def test_a_monitor_that_fails_leaves_the_lost_worker_unexplained_and_terminated(make_harness):
    h = make_harness(capabilities=frozenset({"monitor"}))
    (instance,) = connected_workers(h, 1)
    h.platform.raise_in["list"] = RuntimeError("the API is down")
    h.scaler.disconnected(instance, crashed=True, reason="its connection was lost")
    h.settle()
    assert h.dispatcher.explained == [(instance, "")]
    assert f"handle-{instance}" in h.platform.terminated


def test_an_ending_worker_frees_its_slot_at_once_and_is_still_terminated_and_counted(make_harness):
    """SIGTERM'd (LEAVING), a worker takes no more tasks: its replacement launches now, not
    after its last task; the ending one is still terminated and its crash counts on its slot."""
    h = make_harness(workers=1)
    h.scale(demand=3)
    (first,) = h.platform.launched[0]
    h.scaler.connected(first.instance, {"host": "n1", "pid": 1})
    h.scale(demand=3)
    assert len(h.platform.launched) == 1, "the one slot is taken"
    h.scaler.ending(first.instance, "SIGTERM: ends after its running task")
    (slot,) = h.scaler.slots
    assert slot.state == IDLE and "SIGTERM" in slot.exit_reason
    h.scale(demand=3)
    assert len(h.platform.launched) == 2, "no replacement was launched for the ending worker"
    (second,) = h.platform.launched[1]
    assert slot.state == LAUNCHING and slot.instance == second.instance
    h.scaler.ending(second.instance, "not connected yet: ignored")
    h.scaler.ending(first.instance, "a second time: ignored")
    assert slot.state == LAUNCHING and slot.instance == second.instance
    h.scaler.disconnected(first.instance, crashed=True, reason="it was ending and was killed")
    h.settle()
    assert slot.state == LAUNCHING and slot.instance == second.instance, "the replacement's place was taken back"
    assert slot.crashes == 1 and slot.exit_reason == "it was ending and was killed"
    assert f"handle-{first.instance}" in h.platform.terminated and not h.scaler.ending_instances
    h.scaler.connected(second.instance, {"host": "n2", "pid": 2})
    assert slot.state == CONNECTED and slot.instances == 2


def test_a_worker_that_said_goodbye_is_terminated_only_after_its_exit_handlers_bound(h):
    """Its exit handlers may run up to 10 s after the goodbye; a crashed worker goes at once."""
    from pycrew.control.scaler import SECONDS_AFTER_GOODBYE
    from pycrew.worker.exiting import SECONDS_EXIT_HANDLERS

    assert SECONDS_AFTER_GOODBYE > SECONDS_EXIT_HANDLERS
    h.scale(demand=2)
    polite, crashed = h.platform.launched[0]
    for call in (polite, crashed):
        h.scaler.connected(call.instance, {"host": "n1", "pid": 1})
    h.scaler.disconnected(polite.instance, crashed=False, reason="idle")
    h.scaler.disconnected(crashed.instance, crashed=True, reason="lost")
    h.settle()
    assert h.platform.terminated == [f"handle-{crashed.instance}"]
    h.scaler.reap(h.now + SECONDS_AFTER_GOODBYE - 0.5)
    h.settle()
    assert h.platform.terminated == [f"handle-{crashed.instance}"], "terminated during its exit handlers"
    h.scaler.reap(h.now + SECONDS_AFTER_GOODBYE)
    h.settle()
    assert h.platform.terminated == [f"handle-{crashed.instance}", f"handle-{polite.instance}"]


def test_an_ending_worker_is_terminated_with_the_others(h):
    h.scale(demand=1)
    (call,) = h.platform.launched[0]
    h.scaler.connected(call.instance, {"host": "n1", "pid": 1})
    h.scaler.ending(call.instance, "SIGTERM")
    h.scaler.terminate_all(5.0)
    assert f"handle-{call.instance}" in h.platform.terminated


def test_a_launching_worker_the_monitor_reports_ended_fails_at_once_with_its_reason(h):
    h.scale(demand=1)
    (call,) = h.platform.launched[0]
    h.platform.ended[call.instance] = "CannotPullContainerError: no such image"
    # A batch was launched: the monitor is asked SECONDS_FIRST_POLL later.
    h.scale_until(lambda: h.platform.listings >= 1, 1, SECONDS_FIRST_POLL, "the monitor was not asked", steps=2)
    slot = next(s for s in h.scaler.slots if s.last_instance == call.instance)
    assert slot.launch_failures == 1, "the monitor's report did not fail the launch"
    assert h.now - slot.launched_at < h.scaler.options.seconds_launch, "failed at once, not at seconds_launch"
    assert "CannotPullContainerError" in h.scaler.last_launch_error
    assert call.instance in h.dispatcher.revoked and f"handle-{call.instance}" in h.platform.terminated


def test_a_worker_that_connected_is_never_failed_by_the_monitor(h):
    h.scale(demand=2)
    connected, launching = h.platform.launched[0]
    h.scaler.connected(connected.instance, {"host": "n1", "pid": 1})
    h.platform.ended[connected.instance] = "exited"
    h.platform.ended[launching.instance] = "could not start"
    h.scale_until(lambda: h.platform.listings >= 3, 2, SECONDS_POLL, "the monitor was not asked 3 times")
    slot = next(s for s in h.scaler.slots if s.instance == connected.instance)
    assert slot.state == CONNECTED and slot.launch_failures == 0, "a connected worker was failed by the monitor"
    other = next(s for s in h.scaler.slots if s is not slot)
    assert other.launch_failures == 1, "the same answers failed the worker that had not connected"


def test_terminate_all_reaches_every_worker_still_known(h):
    h.scale(demand=2)
    handles = {f"handle-{c.instance}" for c in h.platform.launched[0]}
    h.scaler.terminate_all(5.0)
    assert handles <= set(h.platform.terminated)


def test_terminate_all_waits_for_a_termination_another_thread_starts_meanwhile(make_harness):
    """Before, terminate_all waited only for the hook calls pending when it started: a
    termination submitted meanwhile (its handle no longer among those it terminates) could
    still be running when it returned, and the worker outlive ``terminate()``."""
    h = make_harness(workers=2)
    h.scale(demand=2)
    first, second = (c.instance for c in h.platform.launched[0])
    release_first, release_second = threading.Event(), threading.Event()
    h.platform.block_handles = {f"handle-{first}": release_first, f"handle-{second}": release_second}
    h.scaler.terminate_instances([first], "test")  # pending when terminate_all starts
    threading.Timer(0.3, lambda: h.scaler.terminate_instances([second], "test")).start()  # submitted while it waits
    threading.Timer(0.6, release_first.set).start()
    threading.Timer(1.2, release_second.set).start()
    h.scaler.terminate_all(10.0)
    assert set(h.platform.terminated) == {f"handle-{first}", f"handle-{second}"}


def test_the_census_follows_every_state_change_so_ticks_need_not_count_slots(make_harness):
    """supply(), online() and launching() agree with the slots at every step of a life:
    launch, connect, a launch timeout, a monitor-reported failure, a disconnect."""
    h = make_harness(workers=6, seconds_launch=30)

    def agrees() -> None:
        states = h.states()
        assert h.scaler.supply() == sum(s != IDLE for s in states)
        assert h.scaler.online() == states.count(CONNECTED)
        assert h.scaler.launching() == states.count(LAUNCHING)
        assert set(h.scaler.census.launching) == {s.index for s in h.scaler.slots if s.state == LAUNCHING}

    agrees()
    h.scale(demand=6)
    agrees()
    calls = h.platform.launched[0]
    for call in calls[:3]:
        h.scaler.connected(call.instance, {"host": "n", "pid": 1})
    agrees()
    h.platform.ended = {calls[3].instance: "it could not start"}
    h.scale_until(lambda: h.scaler.launching() < 3, demand=3, step=SECONDS_POLL, what="the monitor's report")
    agrees()
    h.scale(demand=3, advance=31.0)  # the rest time out
    agrees()
    assert h.scaler.launching() == 0 and h.scaler.online() == 3
    h.scaler.disconnected(calls[0].instance, crashed=False)
    h.settle()
    agrees()
    assert h.scaler.online() == 2


# -- hooks that raise SystemExit or never return -----------------------------------------------
#
# A plugin may call a command-line tool's main() (SystemExit) or a platform API that hangs.
# Neither may lose the reason, hold the launch error back, or reach the caller of terminate().


def test_a_launch_hook_that_raises_system_exit_is_a_failed_launch_at_once_with_its_reason():
    h = Harness(launch_max=1, workers=1)
    try:
        h.platform.raise_in["launch"] = SystemExit("bad partition name")
        h.scale(demand=1)
        assert isinstance(h.scaler.error, pycrew.LaunchError), "the SystemExit was lost: no error until seconds_launch"
        assert "SystemExit: bad partition name" in str(h.scaler.error)
    finally:
        h.scaler.terminate_all(5.0)


def test_a_terminate_hook_that_raises_system_exit_is_logged_not_raised(h, caplog):
    h.scale(demand=2)
    h.platform.raise_in["terminate"] = SystemExit("scancel usage")
    h.scaler.terminate_all(5.0)  # raised SystemExit into the caller of terminate()
    assert "failed to terminate" in caplog.text and "scancel usage" in caplog.text


def test_a_terminate_hook_that_cannot_reach_the_platform_is_a_warning_with_its_reason(h, caplog):
    """A transient failure (the platform's API down) is tried again at the last termination:
    before, each was an ERROR with a traceback whose last line alone held the reason."""

    class Unreachable(ConnectionError):
        transient = True

    h.scale(demand=1)
    h.platform.raise_in["terminate"] = Unreachable("API down")
    with caplog.at_level(logging.WARNING, logger="pycrew.control.scaler"):
        h.scaler._terminate(list(h.scaler.handles.values()), "test")
    [record] = [r for r in caplog.records if "could not terminate" in r.getMessage()]
    assert record.levelno == logging.WARNING and record.exc_info is None, record
    assert record.getMessage().endswith("could not terminate 1 worker(s): Unreachable: API down"), record.getMessage()
    h.platform.raise_in.pop("terminate")
    h.scaler.terminate_all(5.0)


def test_a_hung_monitor_holds_up_no_launch_even_with_one_launch_thread(make_harness):
    """Before, listings shared the launch pool: with ``processes=1``, a platform whose listing
    API hung (asked why a worker was lost) kept the replacement from launching until it answered."""
    h = make_harness(capabilities=frozenset({"monitor"}), workers=2, processes=1)
    lost, _ = connected_workers(h, 2)
    h.platform.block_listing = threading.Event()
    listed = h.platform.listings
    try:
        h.scaler.disconnected(lost, crashed=True, reason="its connection was lost")  # the monitor is asked, and hangs
        wait_until(lambda: h.platform.listings > listed, 5, "the monitor asked")
        h.now += 1
        h.scaler.scale(2, h.now)  # the lost worker's slot is launched again
        wait_until(lambda: len(h.platform.launched) == 2, 10, "the replacement launched while the monitor hangs")
        assert h.dispatcher.explained == [], "the lost worker waits for the monitor"
    finally:
        h.platform.block_listing.set()
    h.settle()
    assert h.dispatcher.explained == [(lost, "")]
    assert f"handle-{lost}" in h.platform.terminated


def test_a_monitor_that_raises_system_exit_is_asked_again_later(h):
    h.platform.raise_in["list"] = SystemExit("squeue usage")
    h.scale(demand=1)
    h.scale_until(lambda: h.platform.listings >= 1, 1, SECONDS_FIRST_POLL, "the monitor was not asked", steps=3)
    del h.platform.raise_in["list"]
    # One call in flight at most: a call that ended in SystemExit never said it was done,
    # and the monitor was never asked again.
    h.scale_until(lambda: h.platform.listings >= 2, 1, SECONDS_POLL, "the monitor was not asked again", steps=5)


def test_the_launch_error_goes_out_without_the_platforms_reason_when_the_monitor_hangs(make_harness):
    h = make_harness(launch_max=1, workers=1, seconds_launch=30)
    h.scale(demand=1)
    h.platform.block_listing = threading.Event()  # the platform's API hangs from now on
    try:
        h.now += 31  # the launch times out: the monitor is asked why, and does not answer
        h.scaler.scale(1, h.now)
        assert h.scaler.error is None and h.scaler.error_pending
        h.scaler.scale(1, h.now + SECONDS_EXPLAIN - 1)
        assert h.scaler.error is None, "the error went out before the monitor had its time"
        h.scaler.scale(1, h.now + SECONDS_EXPLAIN + 1)
        assert isinstance(h.scaler.error, pycrew.LaunchError), "a hung monitor held the launch error back for good"
        assert "did not connect within seconds_launch=30" in str(h.scaler.error)
        assert f"did not say why within {SECONDS_EXPLAIN:g} s" in str(h.scaler.error)
        first = str(h.scaler.error)
    finally:
        h.platform.block_listing.set()
    h.settle()  # the explanation comes back late: the error already out stands
    assert str(h.scaler.error) == first


def test_the_launch_error_goes_out_when_terminating_the_failed_launch_hangs(make_harness):
    h = make_harness(launch_max=1, workers=1, seconds_launch=30)
    h.scale(demand=1)
    h.platform.block_terminating = threading.Event()
    try:
        h.now += 31
        h.scaler.scale(1, h.now)
        h.scaler.scale(1, h.now + SECONDS_EXPLAIN + 1)
        assert isinstance(h.scaler.error, pycrew.LaunchError), "a hung termination held the launch error back for good"
    finally:
        h.platform.block_terminating.set()
    h.settle()


def test_an_initializing_worker_is_held_to_seconds_initializer_not_seconds_launch(make_harness):
    h = make_harness(workers=1, seconds_launch=5, seconds_initializer=60, launch_max=1)
    h.scale(demand=1)
    (call,) = h.platform.launched[0]
    slot = h.scaler.slots[0]
    h.scale(demand=1, advance=4)
    h.scaler.initializing(call.instance)  # it connected; its initializer runs
    h.scale(demand=1, advance=30)  # far past seconds_launch
    assert slot.state == LAUNCHING and slot.launch_failures == 0, "a running initializer is not a launch that timed out"
    h.scale(demand=1, advance=36)  # 66 s into the initializer: past 60 s and the 5 s the worker has to report it
    assert slot.launch_failures == 1
    h.scale_until(lambda: h.scaler.error is not None, demand=1, step=1.0, what="the launch error")
    assert "ran longer than seconds_initializer=60 s and its worker did not stop it" in str(h.scaler.error)
    assert f"handle-{call.instance}" in h.platform.terminated


def test_an_initializer_failure_is_a_failed_launch_and_connecting_after_one_resets_the_count(make_harness):
    h = make_harness(workers=1, launch_max=3)
    h.scale(demand=1)
    slot = h.scaler.slots[0]
    first = slot.instance
    assert first is not None
    h.scaler.initializing(first)
    h.scaler.refused(first, "the initializer failed: ValueError: no model\nTraceback ...")
    h.settle()
    assert slot.state == IDLE and slot.failures == 1 and slot.initializing_since == 1000.0
    assert f"handle-{first}" in h.platform.terminated
    h.scale(demand=1, advance=1.0)  # the backoff over: launched again, as a fresh launch
    assert slot.state == LAUNCHING and slot.instance != first and slot.initializing_since == 0.0
    h.scaler.connected(slot.instance, {})  # (its initializer succeeded)
    assert slot.failures == 0 and h.scaler.error is None


def test_a_slot_that_reaches_launch_max_while_others_are_connected_is_parked_not_raised(make_harness, caplog):
    h = make_harness(workers=2, launch_max=2, seconds_launch=30)
    h.scale(demand=2)
    first, second = h.platform.launched[0]
    h.scaler.connected(first.instance, {"host": "n1", "pid": 1})
    parked = next(s for s in h.scaler.slots if s.instance == second.instance)
    for _ in range(2):  # the other slot's launches time out, launch_max times in a row
        h.scale_until(lambda: parked.state == LAUNCHING, 2, 1.0, "the slot was not launched again")
        h.scale(demand=2, advance=31)
    assert parked.failures == 2 and h.scaler.error is None and not h.scaler.error_pending
    assert parked.retry_after == h.now + SECONDS_RETRY_PARKED, "a parked slot is tried again after a minute"
    assert "carrying on with the 1 connected worker(s)" in caplog.text
    assert "failed launch 2 of 2" not in caplog.text, "parked at once: scaling never paused for an error to come"
    h.scale(demand=2, advance=SECONDS_RETRY_PARKED - 1)
    assert parked.state == IDLE, "tried again before its minute"
    h.scale(demand=2, advance=1)
    assert parked.state == LAUNCHING, "a parked slot is tried again once its minute is up"
    h.scaler.disconnected(first.instance, crashed=True, reason="lost")  # the only connected worker goes
    h.settle()
    h.scale(demand=2, advance=31)  # ... and the parked slot fails again: nothing serves now
    assert h.scaler.error_pending or isinstance(h.scaler.error, pycrew.LaunchError)
    h.scale_until(lambda: h.scaler.error is not None, 2, 1.0, "no LaunchError once nothing serves")


def test_a_worker_that_connects_while_the_platform_is_asked_why_parks_the_slot(make_harness):
    h = make_harness(workers=2, launch_max=1)
    h.scale(demand=2)
    first, second = h.platform.launched[0]
    h.platform.block_listing = threading.Event()  # the monitor takes its time to explain the failure
    try:
        h.scaler.refused(first.instance, "its initializer raised", explain=True)  # nothing connected: final
        assert h.scaler.error_pending and h.scaler.error is None
        h.scaler.connected(second.instance, {"host": "n2", "pid": 2})  # meanwhile the other worker connects
    finally:
        h.platform.block_listing.set()
    h.settle()  # the explanation arrives: a worker serves now, so the slot parks
    assert h.scaler.error is None and not h.scaler.error_pending
    slot = next(s for s in h.scaler.slots if s.last_instance == first.instance)
    assert slot.state == IDLE and slot.retry_after == h.now + SECONDS_RETRY_PARKED


def test_when_a_parked_slots_worker_connects_the_other_parked_slots_are_tried_at_once(make_harness):
    h = make_harness(workers=3, launch_max=1, seconds_launch=30)
    h.scale(demand=3)
    first, *_ = h.platform.launched[0]
    h.scaler.connected(first.instance, {"host": "n1", "pid": 1})
    h.scale(demand=3, advance=31)  # the two others time out: parked
    b, c = (s for s in h.scaler.slots if s.last_instance != first.instance)
    assert b.state == c.state == IDLE and b.retry_after == c.retry_after == h.now + SECONDS_RETRY_PARKED
    c.retry_after = h.now + 10 * SECONDS_RETRY_PARKED  # as if c had been parked later than b
    h.scale(demand=3, advance=SECONDS_RETRY_PARKED)
    assert b.state == LAUNCHING and c.state == IDLE
    h.scaler.connected(b.instance, {"host": "n2", "pid": 2})  # the platform has room again
    assert c.retry_after == 0.0, "the other parked slot waits for its own minute"
    h.scale(demand=3, advance=0.1)
    assert c.state == LAUNCHING


@pytest.mark.parametrize("platform", [True, False], ids=["the platform's answer", "a plugin's bug"])
def test_a_terminate_hook_failing_with_the_platforms_answer_is_logged_without_a_traceback(h, caplog, platform):
    """A platform's answer (a SchedulerError: ``scancel`` refused) says everything: on 2556353
    a 30-line traceback of pluggy's frames followed it (a probe, on SLURM); a plugin's bug
    (any other exception) keeps its traceback."""
    from pycrew.scheduler import SchedulerError

    h.scale(demand=2)
    h.platform.raise_in["terminate"] = (
        SchedulerError("scancel: error: Access/permission denied", ["scancel", "1_1"], 1, "") if platform
        else KeyError("a plugin's bug")
    )
    h.scaler.terminate_all(5.0)
    [record] = [r for r in caplog.records if "failed to terminate" in r.getMessage()]
    assert (record.exc_info is None) == platform, record.getMessage()
