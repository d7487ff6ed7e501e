"""A worker that dies while a daemon its task forked keeps the worker's connection open is
taken for dead once the platform says it ended (a probe, on 64971f1: the socket stayed
open, the dispatcher took the silent worker for one holding the GIL, and the task waited
``seconds_busy_silence``, 600 s, before it crashed out)."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

import pycrew


def _leave_a_daemon(path: str) -> str:
    """Fork, start a session, fork again: the grandchild inherits every fd (the worker's socket too)."""
    child = os.fork()
    if child == 0:  # pragma: no cover (the daemon's parent)
        os.setsid()
        grandchild = os.fork()
        if grandchild == 0:
            time.sleep(120)
        else:
            with open(path, "w") as f:
                f.write(str(grandchild))
        os._exit(0)
    os.waitpid(child, 0)
    return "left"


def _die() -> None:
    os._exit(3)


def test_the_task_crashes_once_the_platform_reports_its_worker_ended(make_controller, tmp_path):
    c = make_controller("local", workers=1, wire="socket", crashes_max=1, seconds_heartbeat_timeout=3).start()
    daemon = tmp_path / "daemon.pid"
    try:
        assert c.submit(_leave_a_daemon, str(daemon)).result(timeout=60) == "left"
        future = c.submit(_die)
        with pytest.raises(pycrew.TaskCrashError, match="exit code 3"):
            future.result(timeout=60)  # (seconds_busy_silence is 600 s)
        assert c.submit(abs, -4).result(timeout=60) == 4
    finally:
        c.terminate()
        if daemon.exists():
            try:
                os.kill(int(Path(daemon).read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass


def _leave_a_daemon_then_stop(path: str) -> str:
    _leave_a_daemon(path)
    os.kill(os.getpid(), signal.SIGSTOP)  # the whole worker, as a suspended job
    return "resumed"


def test_a_worker_that_dies_later_in_the_same_silence_is_checked_again(make_controller, tmp_path):
    """Stopped (alive) when its silence is first noted, killed later: the monitor is asked
    again while the silence lasts (probe E: it was asked once per silence, and the task
    waited for seconds_busy_silence)."""
    c = make_controller("local", workers=1, wire="socket", crashes_max=1, seconds_heartbeat=0.5,
                        seconds_heartbeat_timeout=2, seconds_busy_silence=300).start()
    daemon = tmp_path / "daemon.pid"
    try:
        assert c.submit(abs, -1).result(timeout=60) == 1
        pid = c.summary().workers[0].pid
        future = c.submit(_leave_a_daemon_then_stop, str(daemon))
        time.sleep(5)  # silent past the timeout, noted and asked about while the worker is stopped
        assert not future.done()
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(pycrew.TaskCrashError, match="killed by SIGKILL"):
            future.result(timeout=60)  # (seconds_busy_silence is 300 s)
    finally:
        c.terminate()
        if daemon.exists():
            try:
                os.kill(int(daemon.read_text()), signal.SIGKILL)
            except ProcessLookupError:
                pass
