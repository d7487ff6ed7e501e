"""Scenarios 1-3 of the conformance suite: discovery, the worker call, and crew's informal test.

Part of :class:`pycrew.testing.LauncherSuite`; the fixtures are in :mod:`pycrew.testing.suite_fixtures`.
"""

from __future__ import annotations

import dataclasses
import math
import os
import pickle
import socket
import subprocess
import typing
from importlib import metadata
from typing import Any

import psutil
import pytest

import pycrew
from pycrew.testing import tasks
from pycrew.testing.harness import (
    CONNECT_HINT,
    describe,
    launched_handle,
    run_one,
    same_host,
    unreachable_url,
    wait_until,
    with_worker_arg,
)
from pycrew.testing.launcher_config import LauncherConfig
from pycrew.testing.observers import Recorder
from pycrew.testing.suite_fixtures import ControllerFactory, SuiteFixtures, require


class InformalTests(SuiteFixtures):
    """Scenarios 1-3: discovery, the worker call, and crew's informal test."""

    # -- 1. discovery ------------------------------------------------------------------

    def test_01_discovery_finds_launcher_by_name(self, launcher_config: LauncherConfig) -> None:
        """The launcher is found by name, through its entry point when it is installed."""
        name = launcher_config.name
        if launcher_config.entry_point:
            eps = [ep for ep in metadata.entry_points(group="pycrew.launchers") if ep.name == name]
            assert eps, (
                f"no entry point named {name!r} in group 'pycrew.launchers'. Declare it in pyproject.toml:\n"
                f'  [project.entry-points."pycrew.launchers"]\n  {name} = "your_package.plugin"\n'
                f"and reinstall the distribution (pip install -e .). For a plugin registered in code, "
                f"set LauncherConfig(entry_point=False)."
            )
            assert len({ep.value for ep in eps}) == 1, (
                f"launcher {name!r} has {len(eps)} entry points ({', '.join(ep.value for ep in eps)}): "
                f"two installed distributions claim the name; uninstall one"
            )
        assert name in pycrew.installed_launchers(), (
            f"{name!r} is not among pycrew.installed_launchers() = {pycrew.installed_launchers()}"
            + ("" if launcher_config.entry_point else
               ": with LauncherConfig(entry_point=False), register it in the test process too (subprocess_setup "
               "runs only in the suite's child processes): import the module that calls pycrew.register at the "
               "top of the test module or in conftest.py")
        )
        spec = pycrew.get_launcher(name)
        assert spec.name == name, f"get_launcher({name!r}) returned a spec named {spec.name!r}"
        if launcher_config.entry_point:
            assert spec.distribution, (
                f"launcher {name!r} was not loaded from its entry point (distribution unknown): is it also "
                f"registered in code with pycrew.register? Let the entry point register it"
            )
        assert spec.summary.strip(), (
            f"launcher {name!r} registered no summary: in pycrew_register_launchers, pass summary='one line' "
            f"to register()"
        )
        assert math.isfinite(spec.seconds_exit_margin) and spec.seconds_exit_margin >= 0, (
            f"seconds_exit_margin of {name!r} must be a finite number >= 0, got {spec.seconds_exit_margin!r}"
        )
        with pytest.raises(pycrew.LauncherNotFoundError) as missing:
            pycrew.get_launcher(name + "-no-such-launcher")
        assert name in str(missing.value), f"the not-found message should list {name!r}: {missing.value}"

    def test_01_options_validate(self, launcher_config: LauncherConfig, launcher_spec: pycrew.LauncherSpec) -> None:
        """The options class is a frozen LauncherOptions dataclass that rejects unknown keys and wrong types."""
        cls = launcher_spec.options_type
        name = launcher_config.name
        assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen, (  # type: ignore[attr-defined]
            f"{cls.__name__} must be a frozen dataclass: decorate it with @dataclass(frozen=True)"
        )
        options = cls.from_mapping(launcher_config.options)
        assert isinstance(options, pycrew.LauncherOptions)
        with pytest.raises(pycrew.OptionsError) as unknown:
            cls.from_mapping({**launcher_config.options, "no_such_option_zz": 1})
        assert "no_such_option_zz" in str(unknown.value), f"the message should name the unknown key: {unknown.value}"
        with pytest.raises(pycrew.OptionsError):
            pycrew.controller(name, **launcher_config.options, no_such_option_zz=1)
        hints = typing.get_type_hints(cls)

        class WrongType:
            """A value no option annotation accepts."""

        accepted = []
        for f in dataclasses.fields(cls):
            if not f.init or hints.get(f.name, Any) in (Any, object):
                continue
            try:
                cls.from_mapping({**launcher_config.options, f.name: WrongType()})
            except pycrew.OptionsError as exc:
                assert f.name in str(exc), f"the message for a wrongly typed {f.name!r} should name it: {exc}"
            else:
                accepted.append(f.name)
        assert not accepted, (
            f"{cls.__name__} accepted a value of the wrong type for {accepted}: annotate every field precisely "
            f"(or Any), and if you override __post_init__, call super().__post_init__()"
        )

    def test_01_bad_options_fail_with_clear_message(
        self, launcher_config: LauncherConfig, launcher_spec: pycrew.LauncherSpec
    ) -> None:
        """Each of LauncherConfig.bad_options fails validation with an OptionsError naming the option."""
        if not launcher_config.bad_options:
            pytest.skip("LauncherConfig.bad_options is empty: give option values your validate() must reject")
        for bad in launcher_config.bad_options:
            try:
                launcher_spec.options_type.from_mapping({**launcher_config.options, **bad})
            except pycrew.OptionsError as exc:
                named = [k for k in bad if k in str(exc)]
                assert named, f"OptionsError for {bad!r} should name the option (one of {list(bad)}): {exc}"
            else:
                pytest.fail(
                    f"{launcher_spec.options_type.__name__} accepted bad options {bad!r}: reject them in "
                    f"validate() with pycrew.require(...) or raise pycrew.OptionsError"
                )

    # -- 2. the worker call --------------------------------------------------------------

    def test_02_worker_call_is_runnable_and_keeps_token_out_of_argv(self, controllers: ControllerFactory) -> None:
        """The worker command runs, and its token travels in the environment only."""
        c = controllers(workers=1)
        call = c.launcher.call(worker=1)
        assert call.args[:2] == ("-m", "pycrew.worker"), f"unexpected worker call {call!r}"
        assert call.token and not any(call.token in a for a in call.argv), "the worker's argv carries its token"
        assert call.token not in repr(call), "repr(WorkerCall) shows the token"
        assert not any(call.token in v for v in call.env.values()), "WorkerCall.env (non-secret) carries the token"
        assert call.environment()[pycrew.TOKEN_ENV] == call.token
        probe = with_worker_arg(with_worker_arg(call, "--url", unreachable_url(c)), "--seconds-launch", "0.5")
        env = {**os.environ, **probe.environment()}
        timeout = controllers.config.seconds_timeout
        run = subprocess.run(probe.argv, env=env, capture_output=True, text=True, timeout=timeout)
        assert run.returncode == 3, (
            f"the worker command {probe.command_line()} should start, find no controller and exit with "
            f"code 3 within {timeout:g} s; it exited with {run.returncode}:\n{run.stderr[-2000:]}"
        )

    def test_02_launched_worker_argv_has_no_token(
        self, launcher_spec: pycrew.LauncherSpec, controllers: ControllerFactory, monitor: pycrew.Monitor, observe: Any
    ) -> None:
        """A worker the launcher started shows its token neither in its argv nor in the monitor."""
        recorder = observe(Recorder())
        c = controllers(workers=1)
        recorder.watch(c)
        c.push(tasks.report_worker, name="where")
        assert c.wait(timeout=controllers.config.seconds_timeout), (
            f"the task never finished. {CONNECT_HINT}{describe(c)}"
        )
        result = c.pop()
        assert result is not None and result.ok, f"the task failed: {result}"
        host, pid = result.result
        tokens = recorder.tokens()
        assert tokens, "the recording wrapper saw no launch: is pycrew_launch_workers a firstresult hook of yours?"
        if "monitor" in launcher_spec.capabilities:
            shown = repr(monitor.list(c.id))
            assert not any(t in shown for t in tokens), (
                "the monitor shows a worker's token (in an id, label, name or log path): keep the token in the "
                "worker's environment or the platform's secret store only"
            )
        if host != socket.gethostname():
            pytest.skip("the worker runs on another host: its process table is out of reach here")
        try:
            proc = psutil.Process(pid)
            cmdlines = [" ".join(p.cmdline()) for p in (proc, *proc.parents())]
        except psutil.Error as exc:
            pytest.fail(f"cannot read the worker process {pid}: {exc}")
        leaks = [line for line in cmdlines if any(t in line for t in tokens)]
        assert not leaks, (
            f"the token of a worker appears on a command line ({leaks[0][:200]}...): pass call.environment() "
            f"as the environment, never put {pycrew.TOKEN_ENV} or the token in argv or in a shell command string"
        )

    # -- 3. informal test ----------------------------------------------------------------

    def test_03_informal_task_reports_worker_host_and_pid(
        self,
        launcher_config: LauncherConfig,
        launcher_spec: pycrew.LauncherSpec,
        controllers: ControllerFactory,
        monitor: pycrew.Monitor,
    ) -> None:
        """A task reports its host and pid, and they match the handle, the summary and the monitor."""
        c = controllers(workers=2)
        r = run_one(c, launcher_config.seconds_timeout)
        host, pid = r.result
        instance = r.instance
        assert (r.host, r.pid) == (host, pid) and r.worker is not None, (
            f"core's TaskResult disagrees with the task: {r}"
        )
        row = c.summary().workers[r.worker - 1]
        assert (row.host, row.pid, row.instance) == (host, pid, instance), f"summary row {row} disagrees with {r}"
        handle = launched_handle(c, r.worker, launcher_config.seconds_timeout)
        assert handle is not None, (
            "pycrew_launch_workers returned None as the handle: return a value that identifies the worker"
        )
        try:
            pickle.dumps(handle)
        except Exception as exc:
            pytest.fail(
                f"the handle {handle!r} is not picklable ({exc}): return plain data (a pid, a job id, a dataclass)"
            )
        if launcher_config.handle_pid is not None:
            assert launcher_config.handle_pid(handle) == pid, (
                f"the handle {handle!r} names pid {launcher_config.handle_pid(handle)}, but the task ran in pid {pid}: "
                f"the handle must identify the worker process itself, not a wrapper (shell, launcher script)"
            )
        if "monitor" not in launcher_spec.capabilities:
            return
        if "host" in launcher_spec.capabilities:  # a monitor may answer from a listing up to its poll interval old
            wait_until(
                lambda: [w for w in monitor.list(c.id) if w.instance == instance and w.host],
                min(10.0, launcher_config.seconds_timeout),
                lambda: f"the monitor never gave worker {instance!r} a host: {monitor.list(c.id)}",
            )
        infos = [w for w in monitor.list(c.id) if w.instance == instance]
        assert len(infos) == 1, (
            f"the monitor lists {len(infos)} worker(s) with instance {instance!r} for controller {c.id}: "
            f"pycrew_list_workers must tag each WorkerInfo with call.instance and call.controller_id; "
            f"it listed {monitor.list(c.id)}"
        )
        info = infos[0]
        if "pid" in launcher_spec.capabilities:
            assert info.pid == pid, (
                f"the monitor says pid {info.pid}, the task ran in pid {pid}: WorkerInfo.pid must be the worker's "
                f"own process (or drop the 'pid' capability)"
            )
        if "host" in launcher_spec.capabilities:
            assert same_host(info.host, host), (
                f"the monitor says host {info.host!r}, the task ran on {host!r}: WorkerInfo.host must be the "
                f"worker's host name (or drop the 'host' capability)"
            )

    def test_03_informal_summary_counts(self, launcher_config: LauncherConfig, controllers: ControllerFactory) -> None:
        """One task on two worker slots: one launch, one worker online, counts that add up."""
        c = controllers(workers=2)
        r = run_one(c, launcher_config.seconds_timeout)
        s = c.summary()
        counts = (s.controller.pushed, s.controller.resolved, s.controller.success, s.controller.popped)
        assert counts == (1, 1, 1, 1), f"pushed/resolved/success/popped should be 1/1/1/1:{describe(c)}"
        assert (s.controller.queued, s.controller.running, s.controller.workers_online) == (0, 0, 1), describe(c)
        assert r.worker is not None, f"the result names no worker slot: {r}"
        busy = s.workers[r.worker - 1]
        other = s.workers[2 - r.worker]
        assert busy.launch_failures == 0 and busy.launches == 1, (
            f"the worker needed {busy.launches} launch(es): a launch failed before one connected.{describe(c)}"
        )
        assert (busy.online, busy.instances, busy.complete) == (True, 1, 1), describe(c)
        assert (other.online, other.launches, other.instances) == (False, 0, 0), (
            f"one task should launch one worker, but slot {other.worker} was used too:{describe(c)}"
        )

    def test_03_informal_terminate_leaves_no_worker(
        self,
        launcher_config: LauncherConfig,
        launcher_spec: pycrew.LauncherSpec,
        controllers: ControllerFactory,
        monitor: pycrew.Monitor,
    ) -> None:
        """After terminate(), the launcher's own monitor lists no worker of the controller."""
        require(launcher_spec, "monitor")
        c = controllers(workers=2)
        for _ in range(2):  # long enough that demand stays 2 until both workers are up
            c.push(tasks.sleep_then_report, (0.5,))
        wait_until(
            lambda: c.summary().controller.workers_online == 2,
            launcher_config.seconds_timeout,
            lambda: f"two workers never came online. {CONNECT_HINT}{describe(c)}",
        )
        assert len(monitor.list(c.id)) == 2, f"the monitor should list the 2 online workers: {monitor.list(c.id)}"
        c.terminate()
        wait_until(
            lambda: not monitor.list(c.id),
            c.options.seconds_terminate,
            lambda: (
                f"after terminate() the monitor still lists {monitor.list(c.id)}: pycrew_terminate_workers must "
                f"stop the worker behind each handle (its whole process tree or job), and pycrew_list_workers "
                f"must not list workers that are gone (zombies, finished jobs)"
            ),
        )

    def test_03_observers_see_launch_task_and_termination(
        self, launcher_config: LauncherConfig, controllers: ControllerFactory, observe: Any
    ) -> None:
        """pycrew_worker_launched, pycrew_task_done and pycrew_worker_terminated reach observer plugins."""
        recorder = observe(Recorder())
        c = controllers(workers=1)
        recorder.watch(c)
        r = run_one(c, launcher_config.seconds_timeout, name="observed")
        handle = launched_handle(c, 1, launcher_config.seconds_timeout)
        c.terminate()
        assert [call.instance for call, _ in recorder.launched] == [r.instance], (
            f"pycrew_worker_launched should report the one launched worker {r.instance}: {recorder.launched}"
        )
        assert recorder.launched[0][1] is handle, "pycrew_worker_launched got another handle than the slot holds"
        assert [d.name for d in recorder.done] == ["observed"], f"pycrew_task_done saw {recorder.done}"
        assert any(h is handle for h, _ in recorder.terminated), (
            f"pycrew_worker_terminated never reported the worker's handle at terminate(): {recorder.terminated}"
        )
