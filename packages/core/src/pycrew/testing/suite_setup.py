"""Scenario 15 of the conformance suite: the controller's initializer on this launcher's workers.

The initializer travels over the wire, so it needs nothing of a launcher; what the scenario
checks is the launcher's side of it: a worker that runs one before its first task is still
this launcher's worker, and one whose initializer fails is terminated, not left running.

Part of :class:`pycrew.testing.LauncherSuite`; the fixtures are in :mod:`pycrew.testing.suite_fixtures`.
"""

from __future__ import annotations

import pytest

import pycrew
from pycrew.testing import tasks
from pycrew.testing.harness import describe, wait_until
from pycrew.testing.launcher_config import LauncherConfig
from pycrew.testing.suite_fixtures import ControllerFactory, SuiteFixtures


class SetupTests(SuiteFixtures):
    """Scenario 15: the ``initializer`` option, run once per worker before its tasks."""

    def test_15_initializer_runs_once_per_worker_before_its_tasks(
        self, launcher_config: LauncherConfig, controllers: ControllerFactory
    ) -> None:
        """Every task finds what the initializer stored in its own worker process before it ran.

        (Once per worker: a launcher that hosts several workers in one process, as a test
        harness may, shows one entry per worker there.)"""
        c = controllers(workers=2, initializer=tasks.remember, initargs=("ready",))
        for i in range(6):
            c.push(tasks.remembered, name=f"task_{i}")
        assert c.wait(timeout=2 * launcher_config.seconds_timeout), f"the tasks did not finish{describe(c)}"
        for result in c.collect():
            assert result.ok, f"the task failed: {result}"
            *stored, (_, pid) = result.result
            assert stored and all(entry == ("ready", pid) for entry in stored), (
                f"task {result.name} found {stored} stored by the initializer in its worker (pid {pid}); "
                "expected ('ready', pid): the initializer must run in each worker before its tasks"
            )

    @pytest.mark.slow
    def test_15_failing_initializer_raises_and_leaves_no_worker(
        self, launcher_config: LauncherConfig, launcher_spec: pycrew.LauncherSpec, controllers: ControllerFactory,
        monitor: pycrew.Monitor,
    ) -> None:
        """A worker whose initializer raises is a failed launch, terminated; the LaunchError quotes the traceback."""
        c = controllers(workers=1, launch_max=1, initializer=tasks.refuse_to_start, initargs=("no model here",))
        c.push(tasks.return_value, (1,), name="never_runs")
        with pytest.raises(pycrew.LaunchError) as info:
            c.wait(timeout=2 * launcher_config.seconds_timeout)
        message = str(info.value)
        assert "the initializer failed: RuntimeError: no model here" in message and "in refuse_to_start" in message, (
            f"the LaunchError should quote the initializer's failure and traceback: {message}"
        )
        c.terminate()
        if "monitor" in launcher_spec.capabilities:
            wait_until(
                lambda: not [w for w in monitor.list(c.id) if w.held],
                launcher_config.seconds_timeout,
                lambda: f"the worker whose initializer failed is still running: {monitor.list(c.id)}",
            )
