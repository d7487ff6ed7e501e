"""Scenarios 10-12 of the conformance suite: client death, asynchrony, and authentication.

Part of :class:`pycrew.testing.LauncherSuite`; the fixtures are in :mod:`pycrew.testing.suite_fixtures`.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

import pycrew
from pycrew.testing import tasks
from pycrew.testing.harness import (
    CONNECT_HINT,
    capture_logs,
    describe,
    launch_directly,
    line_reader,
    listed_instances,
    run_one,
    wait_until,
    with_worker_arg,
)
from pycrew.testing.launcher_config import LauncherConfig
from pycrew.testing.observers import LaunchHold
from pycrew.testing.suite_fixtures import ControllerFactory, SuiteFixtures, require


class IsolationTests(SuiteFixtures):
    """Scenarios 10-12: client death, asynchrony, and authentication."""

    # -- 10. client death ----------------------------------------------------------------------

    @pytest.mark.slow
    def test_10_workers_exit_when_controller_is_killed(
        self,
        launcher_config: LauncherConfig,
        launcher_spec: pycrew.LauncherSpec,
        monitor: pycrew.Monitor,
        tmp_path: Path,
        request: pytest.FixtureRequest,
    ) -> None:
        """kill -9 of the controller's process: every worker is gone within seconds_idle + seconds_exit_margin."""
        require(launcher_spec, "monitor")
        timeout = launcher_config.seconds_timeout
        seconds_idle = 5.0
        payload = {
            "name": launcher_config.name,
            "workers": 2,
            "options": launcher_config.controller_kwargs(name="suite-child", seconds_idle=seconds_idle),
            "setup": launcher_config.subprocess_setup,
            "timeout": 2 * timeout,
        }
        stderr_path = tmp_path / "controller.stderr"
        with stderr_path.open("wb") as stderr:
            proc = subprocess.Popen(
                [sys.executable, "-m", "pycrew.testing.controller_process"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
            )

        def end_child() -> None:
            proc.kill()
            proc.wait()

        request.addfinalizer(end_child)
        assert proc.stdin is not None and proc.stdout is not None
        proc.stdin.write(pickle.dumps(payload))
        proc.stdin.close()
        read = line_reader(proc.stdout)

        def message(wait: float) -> dict[str, Any]:
            line = read(wait)
            if line is None:
                try:  # at the end of its output: it exited (said nothing in 60 s, the message said, after 0.8 s)
                    said = f"exited with code {proc.wait(timeout=5)} before saying it had started"
                except subprocess.TimeoutExpired:
                    said = f"said nothing in {wait:g} s"
                pytest.fail(f"the controller process {said}; stderr:\n{stderr_path.read_text()[-3000:]}")
            return dict(json.loads(line))

        controller_id = message(timeout)["controller_id"]
        request.addfinalizer(lambda: monitor.terminate(monitor.list(controller_id)))
        ready = message(3 * timeout)
        assert ready.get("ready"), f"the child controller's workers never came online: {ready}. {CONNECT_HINT}"
        listed = monitor.list(controller_id)
        assert len(listed) == 2, (
            f"the monitor should list the 2 workers of a controller running in another process, and lists "
            f"{listed}: a monitor must find workers by asking the platform (or files every process shares), "
            "not from what this process launched"
        )
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        allowed = seconds_idle + launcher_spec.seconds_exit_margin
        wait_until(
            lambda: not monitor.list(controller_id),
            allowed + 1.0,
            lambda: (
                f"workers outlived their killed controller: {monitor.list(controller_id)}. Allowed: seconds_idle "
                f"({seconds_idle:g}) + the launcher's seconds_exit_margin ({launcher_spec.seconds_exit_margin:g}). "
                f"Make sure the platform does not restart exited workers, that nothing else holds the worker alive "
                f"(a wrapper process waiting on it), or declare a larger seconds_exit_margin"
            ),
        )

    # -- 11. asynchrony ------------------------------------------------------------------------

    def test_11_slow_launch_does_not_block_push(
        self, launcher_config: LauncherConfig, controllers: ControllerFactory, observe: Any
    ) -> None:
        """While the launch hook is held (a slow platform), push and summary return at once."""
        timeout = launcher_config.seconds_timeout
        hold = observe(LaunchHold(timeout=timeout))
        c = controllers(workers=3)
        hold.watch(c)
        c.push(tasks.return_value, (0,), name="task_0")
        wait_until(hold.entered.is_set, timeout, lambda: f"the launch hook was never called:{describe(c)}")
        for i in range(1, 30):
            c.push(tasks.return_value, (i,), name=f"task_{i}")
        s = c.summary()
        held_now = hold.held
        assert held_now >= 1 and not hold.timed_out, "push or summary waited for the launch hook"
        assert threading.current_thread().name not in hold.threads, "the launch hook ran on the caller's thread"
        assert (s.controller.pushed, s.controller.workers_online) == (30, 0), describe(c)
        hold.release()
        assert c.wait(timeout=timeout), f"tasks did not finish after the launch was released:{describe(c)}"
        assert sorted(r.result for r in c.collect()) == list(range(30))

    # -- 12. authentication --------------------------------------------------------------------

    def test_12_worker_with_wrong_token_is_refused(
        self,
        launcher_config: LauncherConfig,
        launcher_spec: pycrew.LauncherSpec,
        controllers: ControllerFactory,
        monitor: pycrew.Monitor,
        observe: Any,
        stray_handles: list[Any],
    ) -> None:
        """A worker started with a wrong token for a real instance is dropped and never comes online."""
        timeout = launcher_config.seconds_timeout
        impostor_seconds = 3.0
        hold = observe(LaunchHold(timeout=3 * timeout))
        with capture_logs("pycrew.control.dispatcher") as logs:
            c = controllers(workers=1, seconds_launch=launcher_config.seconds_launch + 3 * timeout)
            hold.watch(c)
            c.push(tasks.report_worker, name="after_impostor")
            wait_until(hold.entered.is_set, timeout, "the launch hook was never called")
            instance = c.summary().workers[0].instance
            assert instance is not None
            impostor = c.launcher.call(worker=1, instance=instance, url=c.url)  # a fresh, wrong token
            impostor = with_worker_arg(impostor, "--seconds-launch", str(impostor_seconds))
            stray_handles.extend(launch_directly(launcher_spec, c.info, [impostor]))
            wait_until(
                lambda: logs.messages(instance),
                timeout,
                lambda: f"the impostor never reached the dispatcher. {CONNECT_HINT}{describe(c)}",
            )
            s = c.summary()
            assert s.controller.workers_online == 0 and s.workers[0].instances == 0, (
                f"a worker with a wrong token came online:{describe(c)}"
            )
            if "monitor" in launcher_spec.capabilities:
                wait_until(
                    lambda: instance not in listed_instances(monitor, c.id),
                    impostor_seconds + launcher_spec.seconds_exit_margin + timeout,
                    "the refused worker never exited",
                )
            hold.release()
            r = run_one(c, timeout, name="after_impostor_2")
        assert r.instance == instance, "the real worker of the slot should connect after the impostor was refused"
        assert c.summary().controller.workers_online == 1

    def test_12_refused_worker_exits_promptly(
        self,
        launcher_config: LauncherConfig,
        launcher_spec: pycrew.LauncherSpec,
        controllers: ControllerFactory,
        monitor: pycrew.Monitor,
        stray_handles: list[Any],
    ) -> None:
        """A worker the dispatcher refuses exits within seconds_exit_margin, not after seconds_launch."""
        require(launcher_spec, "monitor")
        timeout = launcher_config.seconds_timeout
        c = controllers(workers=1).start()
        with capture_logs("pycrew.control.dispatcher") as logs:
            impostor = with_worker_arg(c.launcher.call(worker=1, url=c.url), "--seconds-launch", str(3 * timeout + 60))
            stray_handles.extend(launch_directly(launcher_spec, c.info, [impostor]))
            wait_until(lambda: logs.messages(impostor.instance), timeout, "the impostor never reached the dispatcher")
        wait_until(
            lambda: impostor.instance not in listed_instances(monitor, c.id),
            launcher_spec.seconds_exit_margin,
            "the refused worker is still running",
        )
