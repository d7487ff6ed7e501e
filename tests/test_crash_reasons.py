"""A worker lost while it ran a task: the platform's word on why reaches the log and the task's error.

The dispatcher sees only a lost connection; the launcher's monitor knows how the worker
ended (the local launcher: the signal or exit code, and its last output lines). A task
that loses its last allowed worker resolves as a crash quoting that; a monitor that hangs
delays the error by 10 s at most, a launcher without a monitor not at all, and
``terminate()`` resolves a task held for its explanation as the crash it is.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import pycrew
from helpers import crash_first_time, print_then_exit, print_then_kill
from pycrew.control import crash_hold
from pycrew.wire.transport import TRANSPORTS
from pycrew_local import LocalOptions
from pycrew_local.plugin import LocalPlugin


@pytest.mark.parametrize("wire", TRANSPORTS)
def test_a_task_that_crashed_out_quotes_how_its_worker_was_killed_and_its_last_output(make_controller, wire):
    """On 955853b the error said only "its worker died 2 time(s) while running it (connection lost)"."""
    c = make_controller("local", wire=wire, workers=1, crashes_max=2).start()
    future = c.submit(print_then_kill, "loading the model: 41 GiB of 40 GiB")
    with pytest.raises(pycrew.TaskCrashError) as raised:
        future.result(timeout=60)
    message = str(raised.value)
    assert "its worker died 2 time(s) while running it (connection lost); the platform reports the worker as " in message
    assert "exit code 137: killed by SIGKILL" in message, message
    assert "loading the model: 41 GiB of 40 GiB" in message, message
    assert "did not say why" not in message, message
    assert c.submit(abs, -3).result(timeout=60) == 3, "the controller goes on"


def test_a_worker_that_exited_is_quoted_with_its_exit_code(make_controller):
    c = make_controller("local", workers=1, crashes_max=1).start()
    c.push(print_then_exit, args=(13, "CUDA error: an illegal memory access was encountered"), name="fails")
    assert c.wait(timeout=60)
    result = c.pop()
    assert result.status == "crash", result
    assert "exited (failed), exit code 13" in result.error and "CUDA error: an illegal memory access" in result.error, result.error


def test_each_lost_worker_is_logged_with_the_platforms_reason(make_controller, tmp_path, caplog):
    """A task that crashes once and then succeeds: the crash is in the log, with why."""
    c = make_controller("local", workers=1).start()
    with caplog.at_level(logging.INFO, logger="pycrew.control.scaler"):
        assert c.submit(crash_first_time, str(tmp_path / "marker")).result(timeout=60) == "survived"
        deadline = time.monotonic() + 10
        while "was lost: the platform reports the worker as" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
    assert "was lost: the platform reports the worker as exited (failed), exit code 13" in caplog.text, caplog.text


class Asked(LocalPlugin):
    """The local launcher whose monitor hangs until released, or that declares no monitor."""

    def __init__(self, name: str, monitor: str) -> None:
        self.name = name
        self.monitor = monitor
        self.release = threading.Event()
        if monitor == "none":
            self.capabilities = LocalPlugin.capabilities - {"monitor"}

    def list_workers(self, launcher: pycrew.LauncherInfo, options: LocalOptions, controller_id: str | None) -> Any:
        if self.monitor == "hangs":
            self.release.wait(60)
        return super().list_workers(launcher, options, controller_id)


@pytest.fixture
def asked() -> Iterator[Callable[[str], Asked]]:
    made: list[Asked] = []

    def make(monitor: str) -> Asked:
        plugin = Asked(f"asked-{monitor}", monitor)
        pycrew.register(plugin, name=plugin.name)
        made.append(plugin)
        return plugin

    yield make
    for plugin in made:
        plugin.release.set()
        pycrew.unregister(plugin)


def test_a_monitor_that_hangs_delays_the_crash_error_by_its_limit_only(make_controller, asked, monkeypatch):
    monkeypatch.setattr(crash_hold, "SECONDS_EXPLAIN_CRASH", 1.0)
    asked("hangs")
    c = make_controller("asked-hangs", workers=1, crashes_max=1).start()
    future = c.submit(print_then_kill, "bye")
    with pytest.raises(pycrew.TaskCrashError) as raised:
        future.result(timeout=60)
    assert "(connection lost) (the launcher's monitor did not say why within 1 s)" in str(raised.value), raised.value


def test_a_launcher_without_a_monitor_gets_the_crash_error_unexplained_at_once(make_controller, asked, monkeypatch):
    monkeypatch.setattr(crash_hold, "SECONDS_EXPLAIN_CRASH", 600.0)  # held for it, the future would time out
    asked("none")
    c = make_controller("asked-none", workers=1, crashes_max=1).start()
    future = c.submit(print_then_kill, "bye")
    with pytest.raises(pycrew.TaskCrashError) as raised:
        future.result(timeout=60)
    assert str(raised.value).endswith("its worker died 1 time(s) while running it (connection lost)"), raised.value


def test_terminate_resolves_a_task_held_for_its_explanation_as_the_crash_it_is(make_controller, asked, monkeypatch):
    monkeypatch.setattr(crash_hold, "SECONDS_EXPLAIN_CRASH", 600.0)
    plugin = asked("hangs")
    c = make_controller("asked-hangs", workers=1, crashes_max=1).start()
    future = c.submit(print_then_kill, "bye")
    deadline = time.monotonic() + 30
    while c.summary().controller.workers_online and time.monotonic() < deadline:  # lost: held, the monitor asked
        time.sleep(0.05)
    time.sleep(0.5)
    assert not future.done(), "held for the monitor's word"
    c.terminate()
    plugin.release.set()
    with pytest.raises(pycrew.TaskCrashError) as raised:
        future.result(timeout=0)
    assert str(raised.value).endswith("(connection lost)"), raised.value
