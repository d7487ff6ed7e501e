"""A worker lost while it ran a task: the right task is blamed, and the platform's word on why
reaches the log and the task's error.

The dispatcher sees only a lost connection; the launcher's monitor knows how the worker
ended (the local launcher: the signal or exit code, and its last output lines). A task
that loses its last allowed worker resolves as a crash quoting that; a monitor that hangs
delays the error by 10 s at most, a launcher without a monitor not at all. Meanwhile the
task is held: counted running, cancellable, and ``terminate()`` resolves it as the crash it
is, without handing it to a backup.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

import pycrew
from helpers import crash_first_time, kill_worker_if_in, print_then_exit, print_then_kill
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
    wait_held(c)
    assert not future.done(), "held for the monitor's word"
    c.terminate()
    plugin.release.set()
    with pytest.raises(pycrew.TaskCrashError) as raised:
        future.result(timeout=0)
    assert str(raised.value).endswith("(connection lost)"), raised.value


def test_only_the_tasks_that_kill_their_worker_crash_out(make_controller):
    """On 975b51b a worker killed by one task blamed the first task it held: short tasks' results
    travel in batches, so that task had often ended, unheard of (with crashes_max=1, 67 of 264
    innocent tasks crashed out; the killers went on killing workers, unblamed)."""
    killers = frozenset(range(5, 120, 10))
    c = make_controller("local", workers=2, crashes_max=1).start()
    futures = {c.submit(kill_worker_if_in, i, killers): i for i in range(120)}
    crashed = set()
    for future, i in futures.items():
        try:
            assert future.result(timeout=120) == i
        except pycrew.TaskCrashError:
            crashed.add(i)
    assert crashed == killers, f"crashed out: {sorted(crashed)}; the killers: {sorted(killers)}"
    s = c.summary()
    assert s.controller.crash == len(killers) and s.controller.success == 120 - len(killers), s.controller
    assert sum(w.crashes for w in s.workers) <= 2 * len(killers), "a killer ran alone after its first (shared) death"


def wait_held(c: pycrew.Controller) -> None:
    """Until ``c``'s one task crashed out and waits for the monitor's word (counted running, its worker gone)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        s = c.summary().controller
        if s.workers_online == 0 and s.running == 1 and s.resolved == 0 and s.retries == 0:
            time.sleep(0.3)  # (still so: the hanging monitor holds it)
            s = c.summary().controller
            assert s.running == 1 and s.resolved == 0 and s.queued == 0, s
            return
        time.sleep(0.02)
    raise AssertionError(f"the task was never held: {c.summary().controller}")


def test_a_held_task_counts_running_and_cancel_reaches_it_not_its_backup(make_controller, asked, monkeypatch, tmp_path):
    """On 975b51b cancel(all=True) returned 0 for a held task, which then ran on the backup; and
    summary() counted it nowhere (pushed 1, queued, running and resolved 0)."""
    monkeypatch.setattr(crash_hold, "SECONDS_EXPLAIN_CRASH", 600.0)
    asked("hangs")
    big = make_controller("local", name="big", workers=1)
    small = make_controller("asked-hangs", name="small", workers=1, crashes_max=1, backup=big).start()
    small.push(print_then_kill, args=("bye",), name="victim")
    wait_held(small)
    assert small.cancel(all=True) == 1
    assert small.wait(timeout=30)
    (result,) = small.collect()
    assert result.status == "cancel", result
    assert not big.started, "a cancelled task was handed to the backup"


def test_terminate_resolves_a_held_task_as_its_crash_without_starting_its_backup(make_controller, asked, monkeypatch):
    """On 975b51b terminate() handed the held task to the backup, which started and launched a
    worker (left running after SIGTERM); the future said the backup had it."""
    monkeypatch.setattr(crash_hold, "SECONDS_EXPLAIN_CRASH", 600.0)
    asked("hangs")
    big = make_controller("local", name="big", workers=1)
    small = make_controller("asked-hangs", name="small", workers=1, crashes_max=1, backup=big).start()
    future = small.submit(print_then_kill, "bye")
    wait_held(small)
    small.terminate()
    with pytest.raises(pycrew.TaskCrashError) as raised:
        future.result(timeout=0)
    assert str(raised.value).endswith("(connection lost)"), raised.value
    assert not big.started, "terminate() started the backup"


def test_a_quoted_output_shows_escapes_and_long_lines_cut(make_controller):
    c = make_controller("local", workers=1, crashes_max=1).start()
    future = c.submit(print_then_kill, "\x1b[31mred alert\x1b[0m " + "x" * 5000)
    with pytest.raises(pycrew.TaskCrashError) as raised:
        future.result(timeout=60)
    message = str(raised.value)
    assert "\\x1b[31mred alert\\x1b[0m" in message and "\x1b" not in message, message
    assert "more characters)" in message and len(message) < 2000, message


def test_a_task_handed_to_the_backup_counts_running_until_it_comes_back(make_controller):
    """On bf6eec4 the first controller counted it nowhere meanwhile (pushed 1, queued, running, resolved 0)."""

    def dies_here_sleeps_there() -> str:  # (a closure: sent by value)
        import os
        import time

        if os.environ.get("WHERE") != "big":
            os._exit(137)
        time.sleep(2)
        return "ran on big"

    big = make_controller("local", name="big", workers=1, env={"WHERE": "big"})
    small = make_controller("local", name="small", workers=1, crashes_max=1, backup=big).start()
    future = small.submit(dies_here_sleeps_there)
    deadline = time.monotonic() + 30
    while not (big.started and big.summary().controller.running) and time.monotonic() < deadline:
        time.sleep(0.02)
    s = small.summary().controller
    assert (s.pushed, s.queued, s.running, s.resolved) == (1, 0, 1, 0), s
    assert future.result(timeout=60) == "ran on big"
    s = small.summary().controller
    assert (s.running, s.resolved) == (0, 1), s
