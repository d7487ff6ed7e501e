"""Scenarios 4-6 of the conformance suite: the load test, batched launches, and termination.

Part of :class:`pycrew.testing.LauncherSuite`; the fixtures are in :mod:`pycrew.testing.suite_fixtures`.
"""

from __future__ import annotations

import threading
import warnings
from typing import Any

import pytest

import pycrew
from pycrew.testing import tasks
from pycrew.testing.harness import (
    CONNECT_HINT,
    capture_logs,
    describe,
    launch_directly,
    launched_handle,
    listed_instances,
    run_one,
    terminate_handles,
    unreachable_url,
    wait_until,
    with_worker_arg,
)
from pycrew.testing.launcher_config import LauncherConfig
from pycrew.testing.observers import Recorder, TaskDoneGate
from pycrew.testing.suite_fixtures import ControllerFactory, SuiteFixtures, require


class LoadTests(SuiteFixtures):
    """Scenarios 4-6: the load test, batched launches, and termination."""

    # -- 4. load test --------------------------------------------------------------------

    @pytest.mark.slow
    def test_04_load_two_batches_with_idle_out(
        self,
        launcher_config: LauncherConfig,
        launcher_spec: pycrew.LauncherSpec,
        controllers: ControllerFactory,
        monitor: pycrew.Monitor,
    ) -> None:
        """2 workers, seconds_idle=2: 100 tasks, idle out, 100 more, idle out; results exactly 1..200."""
        seconds_idle = 2.0
        timeout = launcher_config.seconds_timeout
        c = controllers(workers=2, seconds_idle=seconds_idle)
        idle_out = seconds_idle + launcher_spec.seconds_exit_margin + timeout

        def all_offline() -> bool:
            s = c.summary().controller
            return s.workers_online == 0 and s.workers_launching == 0

        for first in (1, 101):
            for index in range(first, first + 100):
                c.push(tasks.return_value, (index,), name=f"task_{index}")
            assert c.wait(timeout=5 * timeout), (
                f"tasks {first}..{first + 99} did not finish. {CONNECT_HINT}{describe(c)}"
            )
            wait_until(
                all_offline,
                idle_out,
                lambda: (
                    f"workers did not idle out within seconds_idle={seconds_idle:g} + seconds_exit_margin="
                    f"{launcher_spec.seconds_exit_margin:g} s: does the platform keep or restart exited workers "
                    f"(restart policy must be Never)?{describe(c)}"
                ),
            )
        results = c.collect()
        names = [r.name for r in results]
        assert len(names) == len(set(names)) == 200, (
            f"expected 200 distinct results, got {len(names)} ({len(set(names))} distinct)"
        )
        assert all(r.ok for r in results), f"failed tasks: {[r for r in results if not r.ok][:3]}"
        assert sorted(r.result for r in results) == list(range(1, 201)), "results are not exactly 1..200"
        s = c.summary()
        assert s.launcher["launches"] >= 2, f"the second batch should have relaunched workers:{describe(c)}"
        if "monitor" in launcher_spec.capabilities:
            wait_until(
                lambda: not monitor.list(c.id),
                launcher_spec.seconds_exit_margin + timeout,
                lambda: f"idled-out workers are still listed by the monitor: {monitor.list(c.id)}",
            )

    # -- 5. batched launch -----------------------------------------------------------------

    def test_05_batched_launch_is_one_hook_call(
        self, launcher_config: LauncherConfig, controllers: ControllerFactory, observe: Any
    ) -> None:
        """Demand for n more workers is one pycrew_launch_workers call with n calls and n handles in order."""
        n = launcher_config.batch_size
        timeout = launcher_config.seconds_timeout
        gate = observe(TaskDoneGate(timeout=timeout))
        recorder = observe(Recorder())
        c = controllers(workers=n + 1)
        gate.watch(c)
        recorder.watch(c)
        c.push(tasks.report_worker, name="warm_up")
        wait_until(
            gate.entered.is_set, timeout, lambda: f"the first worker never ran its task. {CONNECT_HINT}{describe(c)}"
        )
        before = len(recorder.launches)
        for i in range(n + 1):  # the dispatcher is held: all n+1 reach the queue in one round
            c.push(tasks.sleep_then_report, (1.0,), name=f"busy_{i}")
        gate.release()
        wait_until(
            lambda: c.summary().controller.workers_online == n + 1,
            timeout,
            lambda: f"the batch of {n} workers did not all come online. {CONNECT_HINT}{describe(c)}",
        )
        assert not gate.timed_out, "the gate timed out: the test itself was too slow"
        assert recorder.batch_sizes(before) == [n], (
            f"demand for {n} more workers should be one pycrew_launch_workers call with {n} calls; the wrapper "
            f"saw batches {recorder.batch_sizes(before)}"
        )
        record = recorder.launches[before]
        # Workers may dial in before the hook has returned their handles (the platform starts
        # them while the hook still waits on its API): wait for the hook to return.
        wait_until(
            lambda: record.handles is not None or record.error is not None,
            timeout,
            lambda: f"the launch hook for the batch of {n} had not returned after its workers came online",
        )
        assert record.error is None, f"the launch hook for the batch raised: {record.error!r}"
        assert record.handles is not None and len(record.handles) == n, f"handles for the batch: {record.handles!r}"
        assert record.thread != threading.current_thread().name, "the launch hook ran on the caller's thread"
        rows = c.summary().workers
        for call, handle in zip(record.calls, record.handles, strict=True):
            held = launched_handle(c, call.worker, timeout)
            assert held is handle, f"slot {call.worker} holds another handle: {held!r}, the hook returned {handle!r}"
            row = rows[call.worker - 1]
            assert row.instance == call.instance, f"slot {call.worker} runs {row.instance}, launched {call.instance}"
            if launcher_config.handle_pid is not None:
                assert launcher_config.handle_pid(handle) == row.pid, (
                    f"handle {handle!r} names pid {launcher_config.handle_pid(handle)} but the worker of its call "
                    f"({call.instance}) runs in pid {row.pid}: return the handles in the order of `calls`"
                )
        assert c.wait(timeout=timeout + 2 * (n + 1)), f"the busy tasks did not finish:{describe(c)}"

    # -- 6. termination ----------------------------------------------------------------------

    def test_06_terminate_is_idempotent(
        self,
        launcher_config: LauncherConfig,
        launcher_spec: pycrew.LauncherSpec,
        controllers: ControllerFactory,
        monitor: pycrew.Monitor,
    ) -> None:
        """Terminating a worker that is already gone neither raises, warns nor logs."""
        c = controllers(workers=1)
        run_one(c, launcher_config.seconds_timeout)
        handle = launched_handle(c, 1, launcher_config.seconds_timeout)
        c.terminate()
        if "monitor" in launcher_spec.capabilities:
            wait_until(lambda: not monitor.list(c.id), c.options.seconds_terminate, "the worker outlived terminate()")
        with capture_logs(this_thread_only=True) as logs, warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                terminate_handles(monitor, [handle])
                terminate_handles(monitor, [handle, handle])
            except Exception as exc:
                pytest.fail(
                    f"pycrew_terminate_workers raised {type(exc).__name__}: {exc} for a worker that is already gone: "
                    f"treat 'no such process/job' as success"
                )
        assert not caught, f"pycrew_terminate_workers warned for a gone worker: {[str(w.message) for w in caught]}"
        assert not logs.messages(), f"pycrew_terminate_workers logged for a gone worker: {logs.messages()}"

    def test_06_terminate_reaches_never_connected_worker(
        self,
        launcher_config: LauncherConfig,
        launcher_spec: pycrew.LauncherSpec,
        controllers: ControllerFactory,
        monitor: pycrew.Monitor,
        stray_handles: list[Any],
    ) -> None:
        """A worker that never connects (its controller's port is closed) is stopped by the terminate hook."""
        require(launcher_spec, "never_connected", "monitor")
        timeout = launcher_config.seconds_timeout
        c = controllers(workers=1)
        stuck = with_worker_arg(
            c.launcher.call(worker=1, url=unreachable_url(c)), "--seconds-launch", str(3 * timeout + 60)
        )
        handles = launch_directly(launcher_spec, c.info, [stuck])
        stray_handles.extend(handles)
        wait_until(
            lambda: stuck.instance in listed_instances(monitor, c.id),
            timeout,
            lambda: f"the monitor never listed the launched worker {stuck.instance}: {monitor.list(c.id)}",
        )
        terminate_handles(monitor, handles)
        wait_until(
            lambda: stuck.instance not in listed_instances(monitor, c.id),
            timeout,
            lambda: (
                "pycrew_terminate_workers did not stop a worker that never connected: act on the platform (cancel "
                "the job, delete the pod, kill the process group), never through the worker's connection"
            ),
        )
        terminate_handles(monitor, handles)  # and again, now that it is gone
