"""The ``pycrew`` command and ``pycrew doctor`` on the local launcher, with real workers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import pycrew
from helpers import sleep_then
from pycrew import cli
from pycrew.doctor import STEPS, run_doctor
from pycrew_local.plugin import LocalPlugin
from support import pid_gone, wait_for

SCRIPT = Path(sys.executable).parent / "pycrew"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project directory as cwd and no user configuration file."""
    monkeypatch.delenv("PYCREW_CONFIG", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    project = tmp_path / "project"
    project.mkdir()
    monkeypatch.chdir(project)
    return project


@pytest.fixture
def no_pycrew_python(tmp_path: Path) -> Path:
    """An executable that, like a Python without pycrew, fails at once with a message."""
    path = tmp_path / "python-without-pycrew"
    path.write_text("#!/bin/sh\necho \"No module named 'pycrew'\" >&2\nexit 1\n")
    path.chmod(0o755)
    return path


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A TCP port on 127.0.0.1 that something else listens on."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen()
    try:
        yield s.getsockname()[1]
    finally:
        s.close()


def statuses(report: pycrew.doctor.DoctorReport) -> dict[str, str]:
    return {s.name: s.status for s in report.steps}


def test_doctor_on_local_passes_every_step() -> None:
    report = run_doctor("local", timeout=30)
    assert report.ok, report.text()
    assert [s.name for s in report.steps] == list(STEPS)
    task = next(s for s in report.steps if s.name == "task")
    assert f"pid {os.getpid()}" not in task.detail and "ran on host" in task.detail, task.detail
    assert report.worker_command is not None and "-m pycrew.worker" in report.worker_command
    assert "PYCREW_TOKEN" not in report.worker_command and "all steps passed" in report.text()


def test_doctor_with_a_missing_python_fails_at_launch_with_the_launchers_error() -> None:
    report = run_doctor("local", 30, {"python": "/nonexistent/bin/python", "workers": 3})
    assert statuses(report) == {
        "build": "ok", "listen": "ok", "launch": "fail", "connect": "skip", "task": "skip", "terminate": "ok",
    }, report.text()
    launch = next(s for s in report.steps if s.name == "launch")
    assert "FileNotFoundError" in launch.detail and "/nonexistent/bin/python" in launch.detail
    assert "python option" in launch.hint


def test_doctor_with_a_python_without_pycrew_fails_at_connect_and_shows_its_output(no_pycrew_python: Path) -> None:
    report = run_doctor("local", 30, {"python": str(no_pycrew_python)})
    assert statuses(report)["launch"] == "ok" and statuses(report)["connect"] == "fail", report.text()
    connect = next(s for s in report.steps if s.name == "connect")
    assert connect.detail == "the worker exited before dialing back"
    assert "No module named 'pycrew'" in connect.hint, "the worker's own output is shown"
    assert "Python and pycrew must be installed where the worker runs" in connect.hint
    assert report.worker_command is not None and report.worker_command.startswith(str(no_pycrew_python))


class GarbledListing(LocalPlugin):
    """The local launcher, but its monitor returns a str instead of a list of WorkerInfo."""

    name = "garbled"

    def list_workers(self, launcher: pycrew.LauncherInfo, options: Any, controller_id: str | None) -> Any:
        return "node1: 2 workers"


def test_doctor_survives_a_monitor_that_returns_garbage() -> None:
    """On 33e082d the doctor read what pycrew_list_workers returned without checking it:
    ``AttributeError: 'str' object has no attribute 'ended'`` escaped run_doctor, which
    promises never to raise. The worker itself is fine: every step passes, and the last
    says that leftover workers could not be checked."""
    plugin = GarbledListing()
    pycrew.register(plugin, name="garbled-test")
    try:
        report = run_doctor("garbled", timeout=30)
    finally:
        pycrew.unregister(plugin)
    assert report.ok, report.text()
    assert "not checked that no worker is left" in report.steps[-1].detail, report.text()


class StartsNothing(LocalPlugin):
    """A launch hook that returns a made-up handle and starts nothing (a plugin author's bug)."""

    name = "startsnothing"

    def launch(self, launcher: pycrew.LauncherInfo, options: Any, calls: Any) -> Any:
        return [pycrew_local_handle(100000 + i) for i, _ in enumerate(calls)]

    def terminate(self, launcher: pycrew.LauncherInfo, options: Any, handles: Any) -> None:
        pass


def pycrew_local_handle(pid: int) -> Any:
    from pycrew_local import LocalHandle

    return LocalHandle(pid, 0.0)


def test_doctor_on_a_launch_hook_that_starts_nothing_says_the_monitor_never_saw_the_worker(pycrew_plugin: Any) -> None:
    """It blamed a missing Python ("the worker exited without dialing back: Python or pycrew
    is probably missing") for a worker that never existed (a probe, on ebc88ed)."""
    pycrew_plugin(StartsNothing(), name="startsnothing-test")
    report = run_doctor("startsnothing", timeout=30)
    assert not report.ok
    assert "the launcher's monitor never listed the worker its launch hook returned" in report.text(), report.text()
    assert "Python or pycrew is probably missing" not in report.text(), report.text()


def test_doctor_with_an_unknown_launcher_fails_at_build() -> None:
    report = run_doctor("slrum")
    assert [s.status for s in report.steps] == ["fail", "skip", "skip", "skip", "skip", "skip"]
    assert report.failed is not None and report.failed.name == "build"
    assert "no launcher or profile named 'slrum' (did you mean 'slurm'?)" in report.failed.detail


def test_doctor_with_a_pycrew_toml_that_is_not_utf8_blames_the_file_not_a_plugin(isolated: Path) -> None:
    (isolated / "pycrew.toml").write_bytes(b'[profiles.gpu]\nlauncher = "local"\n# caf\xe9\n')
    report = run_doctor("local")
    assert report.failed is not None and report.failed.name == "build", report.text()
    assert "pycrew.toml: not valid TOML: byte 0xe9 at line 3, column 6 is not UTF-8" in report.failed.detail
    assert "plugin" not in report.failed.hint and "file" in report.failed.hint


def test_doctor_with_a_busy_port_fails_at_listen(busy_port: int) -> None:
    report = run_doctor("local", options={"port": busy_port})
    assert report.failed is not None and report.failed.name == "listen", report.text()
    assert f"port {busy_port} may be in use" in report.failed.hint


def test_doctor_command_checks_a_profile_from_pycrew_toml(isolated: Path, no_pycrew_python: Path) -> None:
    (isolated / "pycrew.toml").write_text(
        f'[profiles.good]\nlauncher = "local"\nseconds_idle = 30\n'
        f'[profiles.broken]\nlauncher = "local"\npython = "{no_pycrew_python}"\n'
    )
    good = CliRunner().invoke(cli.cli, ["doctor", "good", "--json"], catch_exceptions=False)
    assert good.exit_code == 0, good.output
    data = json.loads(good.output)
    assert data["ok"] is True and data["launcher"] == "local"
    assert "--controller good" in data["worker_command"], "the controller is named after the profile"
    broken = CliRunner().invoke(cli.cli, ["doctor", "broken"], catch_exceptions=False)
    assert broken.exit_code == 1
    assert "FAIL  connect" in broken.output and "result: failed at connect" in broken.output


def test_monitor_command_lists_and_terminates_a_real_worker(make_controller) -> None:
    c = make_controller("local", workers=1, name="watched").start()
    future = c.submit(sleep_then, 60)
    wait_for(lambda: c.summary().controller.workers_online == 1, 30, message="the worker did not connect")
    runner = CliRunner()
    listed = json.loads(runner.invoke(cli.cli, ["monitor", "local", "list", "--controller", c.id, "--json"]).output)
    assert [(w["controller"], w["pid"], w["orphan"]) for w in listed] == [("watched", c.launcher.slots[0].pid, False)]
    result = runner.invoke(cli.cli, ["monitor", "local", "terminate", "--controller", c.id, listed[0]["id"]])
    assert result.exit_code == 0 and result.output.strip() == f"terminated 1 worker(s): {listed[0]['id']}", result.output
    wait_for(lambda: pid_gone(listed[0]["pid"]), 10, message="the terminated worker still runs")
    future.cancel()


def test_installed_pycrew_script_lists_launchers() -> None:
    assert SCRIPT.is_file(), f"the pycrew script is not installed next to {sys.executable}"
    proc = subprocess.run([str(SCRIPT), "launchers"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert any(line.split()[:2] == ["local", "pycrew-local"] for line in proc.stdout.splitlines()), proc.stdout


def test_python_m_pycrew_cli_runs_the_command() -> None:
    proc = subprocess.run([sys.executable, "-m", "pycrew.cli", "launchers", "--json"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "local" in {r["name"] for r in json.loads(proc.stdout)}


def test_installed_pycrew_worker_hands_its_arguments_to_the_worker() -> None:
    env = {k: v for k, v in os.environ.items() if k != "PYCREW_TOKEN"}
    proc = subprocess.run([str(SCRIPT), "worker", "--help"], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0 and "usage: python -m pycrew.worker" in proc.stdout, proc.stdout + proc.stderr
    proc = subprocess.run([str(SCRIPT), "worker", "--url", "tcp://127.0.0.1:1", "--instance", "x"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2 and "PYCREW_TOKEN is not set" in proc.stderr, proc.stderr


@pytest.mark.parametrize("level", ["debug", "10", "", "Info", "bogus"])
def test_a_worker_takes_any_case_or_number_for_its_log_level_and_warns_of_a_bad_one(level: str) -> None:
    """PYCREW_WORKER_LOG_LEVEL=debug, =10 or empty crashed every worker at start (logging.basicConfig's
    ValueError), and its controller spent launch_max launches on them. Here the worker gets as far as its
    token check, which comes after the logging setup."""
    env = {k: v for k, v in os.environ.items() if k != "PYCREW_TOKEN"}
    env["PYCREW_WORKER_LOG_LEVEL"] = level
    proc = subprocess.run([str(SCRIPT), "worker", "--url", "tcp://127.0.0.1:1", "--instance", "x"],
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 2 and "PYCREW_TOKEN is not set" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    warned = f"ignoring PYCREW_WORKER_LOG_LEVEL={level!r}: not a log level" in proc.stderr
    assert warned == (level == "bogus"), proc.stderr


def test_installed_pycrew_doctor_passes_on_local() -> None:
    proc = subprocess.run([str(SCRIPT), "doctor", "--timeout", "30"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "result: all steps passed" in proc.stdout


def test_demo_estimates_pi_on_local_workers_with_a_progress_bar() -> None:
    from click.testing import CliRunner

    from pycrew.cli import cli

    result = CliRunner().invoke(cli, ["demo", "--workers", "2", "--tasks", "8"])
    assert result.exit_code == 0, result.output
    assert "pi ~= 3.1" in result.output and "8/8" in result.output, result.output


def test_a_worker_at_info_says_where_it_connects_that_it_was_admitted_and_why_it_leaves() -> None:
    """docs/logs.md promised these lines at INFO, and a worker wrote none (a probe of the docs, session 36)."""
    import time

    with pycrew.controller("local", workers=1, seconds_idle=1, env={"PYCREW_WORKER_LOG_LEVEL": "info"}) as c:
        c.submit(abs, -1).result(timeout=60)
        deadline = time.monotonic() + 30
        while "leaving:" not in c.logs(worker=1) and time.monotonic() < deadline:
            time.sleep(0.1)
        text = c.logs(worker=1)
    assert f"(worker 1 of {c.name!r}): connecting to tcp://127.0.0.1:" in text, text
    assert ": connected and admitted" in text and ": leaving: idle for seconds_idle=1" in text, text
