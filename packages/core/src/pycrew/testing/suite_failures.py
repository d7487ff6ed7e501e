"""Scenarios 7-9 of the conformance suite: launch failures, crashed workers, and the monitor.

Part of :class:`pycrew.testing.LauncherSuite`; the fixtures are in :mod:`pycrew.testing.suite_fixtures`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

import pycrew
from pycrew.testing import tasks
from pycrew.testing.harness import (
    describe,
    launch_directly,
    listed_instances,
    run_one,
    unreachable_url,
    wait_online,
    wait_until,
    with_worker_arg,
)
from pycrew.testing.launcher_config import LauncherConfig
from pycrew.testing.suite_fixtures import ControllerFactory, SuiteFixtures, require


class FailureTests(SuiteFixtures):
    """Scenarios 7-9: launch failures, crashed workers, and the monitor."""

    # -- 7. launch failure -------------------------------------------------------------------

    @pytest.mark.slow
    def test_07_launch_failure_raises_after_launch_max(
        self,
        launcher_config: LauncherConfig,
        launcher_spec: pycrew.LauncherSpec,
        controllers: ControllerFactory,
        monitor: pycrew.Monitor,
        bad_launch_options: Mapping[str, Any] | None,
    ) -> None:
        """Launches that cannot start a worker end in a LaunchError after launch_max attempts, not a hang."""
        if bad_launch_options is None:
            pytest.skip(
                "no bad_launch_options: set LauncherConfig.bad_launch_options (or override the fixture) to options "
                "under which launches fail, e.g. a missing interpreter, image or partition"
            )
        launch_max = 2
        seconds_launch = launcher_config.seconds_launch_failure
        c = controllers(workers=1, launch_max=launch_max, seconds_launch=seconds_launch, **bad_launch_options)
        c.push(tasks.return_value, (1,), name="never_runs")
        budget = launch_max * (seconds_launch + 1.0) + launcher_config.seconds_timeout
        try:
            finished = c.wait(timeout=budget)
        except pycrew.LaunchError as exc:
            error = exc
        else:
            pytest.fail(
                "the task ran although bad_launch_options should make every launch fail" + describe(c)
                if finished
                else f"no LaunchError within {budget:g} s: a launch that cannot start a worker must raise in "
                f"pycrew_launch_workers or leave a worker that never connects{describe(c)}"
            )
        assert repr(launcher_config.name) in str(error) and "launch_max" in str(error), f"unclear error: {error}"
        s = c.summary()
        assert s.launcher["launch_failures"] >= launch_max and s.controller.workers_online == 0, describe(c)
        with pytest.raises(pycrew.LaunchError):
            c.pop()
        c.terminate()
        if "monitor" in launcher_spec.capabilities:
            wait_until(
                lambda: not monitor.list(c.id),
                launcher_config.seconds_timeout,
                lambda: f"failed launches left workers behind: {monitor.list(c.id)}",
            )

    # -- 8. crash ------------------------------------------------------------------------------

    def test_08_crashed_worker_task_runs_again_once(
        self,
        launcher_config: LauncherConfig,
        launcher_spec: pycrew.LauncherSpec,
        controllers: ControllerFactory,
        monitor: pycrew.Monitor,
    ) -> None:
        """A worker killed mid-task: the task runs again on another instance and resolves once."""
        timeout = launcher_config.seconds_timeout
        c = controllers(workers=1)
        first = run_one(c, timeout, name="warm_up")
        victim = first.instance
        c.push(tasks.crash_on_worker, tuple(first.result), name="crash_once")
        assert c.wait(timeout=2 * timeout), (
            f"the task of the killed worker did not finish: after a crash the launcher must be able to launch a "
            f"new worker into the same slot (terminate of the dead one must not fail){describe(c)}"
        )
        results = c.collect()
        assert [r.name for r in results] == ["crash_once"], f"the task should resolve exactly once: {results}"
        r = results[0]
        assert r.ok, f"the task should succeed on its second worker, got {r.status}: {r.error}"
        assert r.instance != victim and tuple(r.result) != tuple(first.result), (
            f"the retry ran on {r.instance} ({r.result}), the killed worker was {victim} ({first.result})"
        )
        assert r.attempts == 2, f"the task should have run twice, ran {r.attempts} time(s)"
        s = c.summary().controller
        assert (s.resolved, s.retries, s.crash) == (2, 1, 0), describe(c)
        if "monitor" in launcher_spec.capabilities:
            wait_until(
                lambda: victim not in listed_instances(monitor, c.id),
                timeout,
                lambda: (
                    f"the killed worker {victim} is still listed: do not list dead processes (zombies) or ended jobs"
                ),
            )

    # -- 9. monitor ----------------------------------------------------------------------------

    def test_09_monitor_lists_exactly_this_controllers_workers(
        self,
        launcher_config: LauncherConfig,
        launcher_spec: pycrew.LauncherSpec,
        controllers: ControllerFactory,
        monitor: pycrew.Monitor,
        unrelated_job: str | None,
    ) -> None:
        """The monitor lists one controller's workers, not another's nor unrelated jobs, and terminates them."""
        require(launcher_spec, "monitor")
        timeout = launcher_config.seconds_timeout
        a, b = controllers(workers=2), controllers(workers=1)
        for c, n in ((a, 2), (b, 1)):
            for _ in range(n):  # long enough that demand stays n until all n workers are up
                c.push(tasks.sleep_then_report, (0.5,))
        for c, n in ((a, 2), (b, 1)):
            wait_online(c, n, timeout)
        mine = {c.id: {w.instance for w in c.summary().workers if w.online} for c in (a, b)}
        for c in (a, b):
            listed = monitor.list(c.id)
            assert {w.instance for w in listed} == mine[c.id], (
                f"monitor.list({c.id!r}) should list exactly the controller's workers {sorted(map(str, mine[c.id]))}, got "
                f"{listed}: filter on the controller_id your launch hook attached to each worker"
            )
            for w in listed:
                assert w.controller_id == c.id and w.launcher == launcher_config.name and w.handle is not None, (
                    f"WorkerInfo must carry controller_id, launcher name and a handle: {w}"
                )
                assert w.controller in (None, c.name), f"WorkerInfo.controller should be {c.name!r}: {w}"
        everything = monitor.list(None)
        assert mine[a.id] | mine[b.id] <= {w.instance for w in everything}, (
            f"monitor.list(None) missed workers: {everything}"
        )
        if unrelated_job is not None:
            assert unrelated_job not in {w.id for w in everything}, (
                f"the monitor lists the unrelated job {unrelated_job!r}: list only pycrew workers (match the worker "
                f"command or a label your launch hook sets)"
            )
        # Let the tasks finish first: a worker terminated mid-task is a crash, and the
        # controller would rightly launch a replacement that the monitor then lists.
        for c in (a, b):
            assert c.wait(timeout=timeout), f"the tasks did not finish{describe(c)}"
        monitor.terminate(monitor.list(a.id))
        wait_until(
            lambda: not monitor.list(a.id),
            timeout,
            lambda: f"Monitor.terminate did not stop the listed workers: {monitor.list(a.id)}",
        )
        assert listed_instances(monitor, b.id) == mine[b.id], "terminating one controller's workers hit another's"
        assert a.summary().controller.retries == 0, f"no task should have been lost{describe(a)}"

    def test_09_monitor_finds_orphans_of_dead_controller(
        self,
        launcher_config: LauncherConfig,
        launcher_spec: pycrew.LauncherSpec,
        controllers: ControllerFactory,
        monitor: pycrew.Monitor,
        stray_handles: list[Any],
    ) -> None:
        """A worker whose controller has ended is an orphan; a running controller's worker is not.

        The orphan is launched from this process; ``test_10`` checks that the monitor also
        finds the workers of a controller that ran in another process (and was killed)."""
        require(launcher_spec, "monitor", "orphans", "never_connected")
        timeout = launcher_config.seconds_timeout
        dead = controllers(workers=1)
        dead.start()
        dead.terminate()
        live = controllers(workers=1)
        live_instance = run_one(live, timeout).instance
        call = with_worker_arg(
            dead.launcher.call(worker=1, url=unreachable_url(dead)), "--seconds-launch", str(3 * timeout + 60)
        )
        stray_handles.extend(launch_directly(launcher_spec, dead.info, [call]))

        def orphans_of_dead() -> list[pycrew.WorkerInfo]:
            return [w for w in monitor.orphans() if w.controller_id == dead.id]

        orphans = wait_until(
            orphans_of_dead,
            timeout,
            lambda: (
                f"Monitor.orphans() never reported the worker of the ended controller {dead.id}: {monitor.list(None)}"
            ),
        )
        assert [w.instance for w in orphans] == [call.instance], f"unexpected orphans: {orphans}"
        assert live_instance not in {w.instance for w in monitor.orphans()}, (
            "a running controller's worker is reported as an orphan: WorkerInfo.controller_id must be "
            "call.controller_id of the controller that launched it"
        )
        monitor.terminate(orphans)
        wait_until(lambda: not orphans_of_dead(), timeout, "Monitor.terminate(orphans) did not stop the orphan")
