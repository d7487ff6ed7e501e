"""Scenarios 13-14 of the conformance suite: cancelling and timing out a running task.

Part of :class:`pycrew.testing.LauncherSuite`; the fixtures are in :mod:`pycrew.testing.suite_fixtures`.
"""

from __future__ import annotations

import pycrew
from pycrew.testing import tasks
from pycrew.testing.harness import describe, run_one, wait_until
from pycrew.testing.launcher_config import LauncherConfig
from pycrew.testing.suite_fixtures import ControllerFactory, SuiteFixtures


class StoppingTests(SuiteFixtures):
    """Scenarios 13-14: a running task is cancelled, or runs past its time limit."""

    def test_13_cancel_running_task(self, launcher_config: LauncherConfig, controllers: ControllerFactory) -> None:
        """A running task cancelled by name resolves once as ``cancel``, and the slot serves the next task."""
        timeout = launcher_config.seconds_timeout
        c = controllers(workers=1)
        run_one(c, timeout, name="warm_up")
        c.push(tasks.sleep_then_report, (10 * timeout,), name="long")
        wait_until(
            lambda: c.summary().controller.running == 1,
            timeout,
            lambda: f"the long task never started{describe(c)}",
        )
        assert c.cancel(names=["long"]) == 1, f"cancel should find the running task{describe(c)}"
        c.push(tasks.return_value, ("after",), name="after")
        assert c.wait(timeout=2 * timeout + 10), (
            f"after a cancel the slot must serve again: the worker is interrupted, or replaced through the "
            f"launcher (terminate must reach it and a new launch must work){describe(c)}"
        )
        results = {r.name: r for r in c.collect()}
        assert sorted(results) == ["after", "long"], f"each task must resolve exactly once: {results}"
        assert results["long"].status == "cancel", results["long"]
        assert results["after"].result == "after", results["after"]

    def test_14_timeout_running_task(self, launcher_config: LauncherConfig, controllers: ControllerFactory) -> None:
        """A task past its ``seconds_timeout`` resolves as ``timeout``; other tasks are not affected."""
        timeout = launcher_config.seconds_timeout
        c = controllers(workers=1)
        run_one(c, timeout, name="warm_up")
        c.push(tasks.sleep_then_report, (10 * timeout,), name="slow", seconds_timeout=1.0)
        c.push(tasks.return_value, (7,), name="quick")
        assert c.wait(timeout=2 * timeout + 10), f"the timed-out task never resolved{describe(c)}"
        results = {r.name: r for r in c.collect()}
        assert results["slow"].status == "timeout", f"expected status 'timeout', got {results['slow']}"
        assert results["quick"].result == 7, f"the next task must still run: {results['quick']}"
        assert isinstance(c.summary(), pycrew.Summary)
