"""The controller's last termination of its workers, when the platform is slow or down.

The launcher is the real local one, subclassed so that one of its hooks blocks the way a
scheduler's command does when its daemon is down. Each test failed on 33e082d:
``terminate()`` waited ``seconds_terminate`` for a monitor listing in flight and then gave
the terminate hook 0.1 s; a terminate hook that hung was logged as a bare TimeoutError,
naming no worker; a launch that returned after ``terminate()`` left its workers running.
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import pycrew
from pycrew_local import LocalOptions
from pycrew_local.plugin import LocalPlugin
from support import pid_gone, wait_for


class Stalling(LocalPlugin):
    """The local launcher; ``stall`` names the hook that blocks until the test releases it."""

    name = "stalling"

    def __init__(self, stall: str) -> None:
        self.stall = stall
        self.release = threading.Event()
        self.entered = threading.Event()
        self.started: list[Any] = []
        self.terminated: list[Any] = []

    def _block(self, hook: str) -> None:
        if self.stall == hook:
            self.entered.set()
            self.release.wait(120)

    def launch(self, launcher: pycrew.LauncherInfo, options: LocalOptions, calls: Sequence[pycrew.WorkerCall]) -> list[Any]:
        handles = super().launch(launcher, options, calls)
        self.started += handles
        self._block("launch")
        return handles

    def terminate(self, launcher: pycrew.LauncherInfo, options: LocalOptions, handles: Sequence[Any]) -> None:
        self._block("terminate")
        if self.stall == "terminate fails" and not self.release.is_set():
            raise ConnectionRefusedError("the platform's API is down")
        super().terminate(launcher, options, handles)
        self.terminated += handles

    def list_workers(self, launcher: pycrew.LauncherInfo, options: LocalOptions, controller_id: str | None) -> list[Any]:
        workers = super().list_workers(launcher, options, controller_id)
        self._block("list")
        return workers


@pytest.fixture
def stalling() -> Iterator[Callable[[str], Stalling]]:
    made: list[Stalling] = []

    def make(stall: str) -> Stalling:
        plugin = Stalling(stall)
        pycrew.register(plugin, name=f"stalling-{stall}")
        made.append(plugin)
        return plugin

    yield make
    for plugin in made:
        plugin.release.set()
        LocalPlugin.terminate(plugin, None, None, plugin.started)  # type: ignore[arg-type]
        pycrew.unregister(plugin)


@pytest.fixture
def never_connects(tmp_path: Path) -> str:
    """A 'python' whose workers run but never dial the controller (they stay launching)."""
    script = tmp_path / "sleep.py"
    script.write_text("import time\ntime.sleep(120)\n")
    path = tmp_path / "python-that-sleeps"
    path.write_text(f"#!/bin/sh\nexec {sys.executable} {script}\n")
    path.chmod(0o755)
    return str(path)


def test_terminate_does_not_wait_for_a_monitor_listing_that_hangs(stalling, never_connects, make_controller):
    plugin = stalling("list")
    c = make_controller("stalling", workers=1, python=never_connects, seconds_launch=60, seconds_terminate=40).start()
    assert plugin.entered.wait(30), "the launch watch never asked the monitor"
    started = time.monotonic()
    c.terminate()
    took = time.monotonic() - started
    assert took < 20, f"terminate waited {took:.1f} s (for the hanging listing, up to seconds_terminate=40)"
    assert plugin.terminated == plugin.started and len(plugin.started) == 1
    wait_for(lambda: pid_gone(plugin.started[0].pid), 10, message="the worker still runs")


def test_a_terminate_hook_that_hangs_is_an_error_naming_the_workers(stalling, never_connects, make_controller, caplog):
    plugin = stalling("terminate")
    c = make_controller("stalling", workers=1, python=never_connects, seconds_launch=60, seconds_terminate=3).start()
    wait_for(lambda: plugin.started, 30, message="no worker was launched")
    with caplog.at_level(logging.ERROR, logger="pycrew.control.scaler"):
        c.terminate()
    assert "could not make sure its 1 worker(s) on launcher 'stalling' were terminated" in caplog.text, caplog.text
    assert "did not return within 3 s (seconds_terminate" in caplog.text
    assert str(plugin.started[0]) in caplog.text and "pycrew monitor stalling terminate --orphans" in caplog.text


def test_a_launch_that_returns_after_terminate_terminates_its_workers(stalling, never_connects, make_controller, caplog):
    plugin = stalling("launch")
    c = make_controller("stalling", workers=1, python=never_connects, seconds_launch=60, seconds_terminate=2).start()
    assert plugin.entered.wait(30), "no launch began"
    with caplog.at_level(logging.ERROR, logger="pycrew.control"):
        c.terminate()  # gives up on the launch in flight after about a second
    # the probe read "did not return within 1 s" (half of seconds_terminate=2, unexplained) and garbled words
    assert "1 launch or termination call(s) of launcher 'stalling' still running after 1 s of seconds_terminate=2, " \
        "given up: a worker such a call launches late is terminated when the call returns" in caplog.text, caplog.text
    assert plugin.started and plugin.terminated == []
    plugin.release.set()
    wait_for(lambda: plugin.terminated == plugin.started, 10, message="the late launch's workers were not terminated")
    wait_for(lambda: pid_gone(plugin.started[0].pid), 10, message="the late launch's worker still runs")


def test_a_termination_that_failed_while_running_is_tried_again_at_the_end(stalling, never_connects, make_controller):
    """A launch timed out while the platform's API was down: its terminate hook failed. On
    33e082d that worker's handle was dropped, and nothing terminated it or named it later."""
    plugin = stalling("terminate fails")
    c = make_controller("stalling", workers=1, python=never_connects, seconds_launch=1, launch_max=1).start()
    with pytest.raises(pycrew.LaunchError):
        c.submit(abs, -1).result(timeout=60)
    assert plugin.started and plugin.terminated == [], "the first termination should have failed"
    plugin.release.set()  # the API is back
    c.terminate()
    assert plugin.started[0] in plugin.terminated, "the worker whose termination failed was not tried again"
    wait_for(lambda: pid_gone(plugin.started[0].pid), 10, message="the worker still runs")


def test_a_ctrl_c_during_terminate_says_workers_may_be_left(stalling, never_connects, make_controller, caplog):
    """A second Ctrl-C (the first ended a with block) interrupts terminate() while a launch is
    in flight: the program ends before it could terminate that launch's worker. Before, only the
    KeyboardInterrupt's traceback said anything: nothing named the risk or where to look."""
    import _thread

    plugin = stalling("launch")
    c = make_controller("stalling", workers=1, python=never_connects, seconds_launch=60, seconds_terminate=20).start()
    assert plugin.entered.wait(30), "no launch began"
    timer = threading.Timer(0.5, _thread.interrupt_main)
    timer.start()
    with caplog.at_level(logging.ERROR, logger="pycrew.control.controller"), pytest.raises(KeyboardInterrupt):
        c.terminate()  # waits for the launch in flight: the Ctrl-C comes meanwhile
    timer.join()
    assert "interrupted while terminating its workers: finishing on a thread of its own; if the program ends " \
        "first, some may be left" in caplog.text, caplog.text
    assert "`pycrew monitor stalling list --orphans`" in caplog.text, caplog.text


def test_a_program_that_carries_on_after_a_ctrl_c_in_terminate_gets_every_future_resolved(
    stalling, never_connects, make_controller, caplog
):
    """A notebook or a service catches the second Ctrl-C and goes on. Before (a probe): every
    future stayed pending for good (result(timeout=15) ran out, result() would hang) and
    summary() still said queued=2, running=2, until terminate() was called again."""
    import _thread

    plugin = stalling("launch")
    c = make_controller("stalling", workers=1, python=never_connects, seconds_launch=60, seconds_terminate=20).start()
    assert plugin.entered.wait(30), "no launch began"
    futures = [c.submit(abs, -i) for i in range(3)]
    timer = threading.Timer(0.5, _thread.interrupt_main)
    timer.start()
    with caplog.at_level(logging.WARNING, logger="pycrew.control.controller"), pytest.raises(KeyboardInterrupt):
        c.terminate()  # waits for the launch in flight: the Ctrl-C comes meanwhile
    timer.join()
    plugin.release.set()  # the platform answers: the termination finishes on its own thread
    _, pending = concurrent.futures.wait(futures, timeout=30)
    assert not pending, f"{len(pending)} future(s) still pending after the interrupted terminate()"
    assert all(f.cancelled() for f in futures), [f._state for f in futures]
    wait_for(lambda: "terminated after the interrupt" in caplog.text, 10, message=caplog.text)
    assert plugin.terminated == plugin.started
    wait_for(lambda: all(pid_gone(h.pid) for h in plugin.started), 10, message="a worker still runs")
    c.terminate()  # returns: nothing is left to do
    assert c.summary().controller.queued == 0


@pytest.mark.parametrize("wire", ["socket", "nng"])
def test_seconds_options_past_the_longest_wait_work(make_controller, caplog, tmp_path, wire):
    """Any finite seconds_* is accepted, but a wait given more than threading.TIMEOUT_MAX (about 9.2e9 s) raises
    OverflowError: seconds_terminate=1e10 made terminate() log a false ERROR ("may still run"); seconds_launch=1e10
    crashed every worker in its handshake wait; seconds_heartbeat=1e10 crashed the nng worker's comms thread;
    seconds_metrics=inf the worker's sampling thread after its first sample."""
    c = make_controller("local", 1, wire=wire, seconds_terminate=1e10, seconds_launch=1e10, seconds_heartbeat=1e10,
                        seconds_heartbeat_timeout=1e300, seconds_metrics=math.inf, launch_max=1, crashes_max=1,
                        log_dir=str(tmp_path))
    failures: list[BaseException] = []

    def terminate() -> None:
        try:
            c.terminate()
        except BaseException as exc:
            failures.append(exc)

    with caplog.at_level(logging.WARNING):
        assert c.submit(time.sleep, 0.3).result(timeout=60) is None
        # Two at once: the second waits for the first (it raised OverflowError with seconds_terminate=1e10).
        threads = [threading.Thread(target=terminate) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert not failures, failures
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert "Traceback" not in c.logs(worker=1), c.logs(worker=1)


@pytest.mark.parametrize("where", ["registering", "after the first launch"])
def test_a_ctrl_c_in_start_leaves_no_port_thread_or_worker(make_controller, monkeypatch, where):
    """start() listens, registers the controller, starts the dispatcher and launches the first
    worker before it counts as started. A probe's Ctrl-C in that window left the port taken (a
    retried start() said "Address already in use; choose another host= or port="), and with a
    ``with`` block, whose exit never runs, the dispatcher thread and a worker for good."""
    import socket

    from pycrew import monitor
    from pycrew.control.controller import Controller
    from support import worker_pids

    def interrupt(*args: Any, **kwargs: Any) -> None:
        raise KeyboardInterrupt

    if where == "registering":
        monkeypatch.setattr(monitor, "register_controller", interrupt)
    else:
        launch = Controller._launch_at_start

        def launch_then_interrupt(self: Controller, dispatcher: Any) -> None:
            launch(self, dispatcher)
            wait_for(lambda: worker_pids(self.id), 30, message="no worker was launched")
            raise KeyboardInterrupt

        monkeypatch.setattr(Controller, "_launch_at_start", launch_then_interrupt)
    before = {t.ident for t in threading.enumerate()}
    c = make_controller("local", workers=1)
    with pytest.raises(KeyboardInterrupt), c:
        pass
    assert c._terminated, "the half-started controller was left running"
    host, port = c.url.removeprefix("tcp://").rsplit(":", 1)
    with pytest.raises(ConnectionRefusedError), socket.create_connection((host, int(port)), timeout=5):
        pass
    wait_for(lambda: not [t for t in threading.enumerate() if t.ident not in before and t.name.startswith("pycrew-dispatcher")],
             10, message="the dispatcher thread still runs")
    wait_for(lambda: worker_pids(c.id) == [], 10, message="a worker still runs")
    with pytest.raises(pycrew.ControllerError, match="was terminated; build a new one"):
        c.start()
