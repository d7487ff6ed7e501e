"""The processes a cancelled or timed-out task started end with it (see pycrew.worker.task_processes)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

from helpers import identity, start_a_server, start_processes_then_sleep
from support import pid_gone, wait_for, worker_pids

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="Linux only: it reads /proc")


def _pids(path: Path) -> list[int]:
    wait_for(lambda: path.exists() and path.read_text().strip(), 30, message="the task did not start its processes")
    return [int(p) for p in path.read_text().split()]


@pytest.mark.parametrize("how", ["timeout", "cancel"])
def test_what_an_interrupted_task_started_ends_and_what_an_earlier_task_started_stays(make_controller, tmp_path, how):
    c = make_controller("local", workers=1)
    server_file = tmp_path / "server"
    worker = c.submit(start_a_server, str(server_file)).result(timeout=60)
    (server,) = _pids(server_file)
    time.sleep(0.05)  # start times are in clock ticks (10 ms): one in the tick the next task starts in counts as its
    try:
        started = tmp_path / "started"
        if how == "timeout":
            c.push(start_processes_then_sleep, (str(started), 600), seconds_timeout=3, name="stuck")
        else:
            c.push(start_processes_then_sleep, (str(started), 600), name="stuck")
        pids = _pids(started)
        assert not any(pid_gone(pid) for pid in pids)
        if how == "cancel":
            assert c.cancel(names=["stuck"]) == 1
        assert c.wait(timeout=60)
        result = c.pop()
        assert result is not None and result.status == how
        wait_for(lambda: all(pid_gone(pid) for pid in pids), 15, message=f"the {how} task's processes still run")
        if how == "timeout":  # (a cancelled task resolves at once, in the controller: the warning goes to the log)
            (warning,) = [w for w in result.warnings if "pycrew ended them" in w]
            assert "4 process(es)" in warning and all(str(pid) in warning for pid in pids), warning
        assert not pid_gone(server), "a process an earlier task started on purpose was ended"
        assert c.submit(identity, 1).result(timeout=60) == 1
        assert worker_pids(c.id) == [worker], "the worker was replaced: the task should have been interrupted"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(server, signal.SIGKILL)


def test_a_task_that_ends_by_itself_keeps_its_processes(make_controller, tmp_path):
    c = make_controller("local", workers=1)
    started = tmp_path / "started"
    c.submit(start_processes_then_sleep, str(started), 0).result(timeout=60)
    pids = _pids(started)
    try:
        assert not any(pid_gone(pid) for pid in pids)
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def test_started_since_finds_the_descendants_started_from_that_moment_only():
    import subprocess

    from pycrew.worker.task_processes import started_since

    older = subprocess.Popen(["sleep", "30"])
    newer = shell = None
    try:
        time.sleep(0.05)  # five clock ticks
        t0 = time.time()
        newer = subprocess.Popen(["sleep", "30"])
        shell = subprocess.Popen(["sh", "-c", "sleep 30 & wait"])
        def grandchild() -> dict[int, tuple[int, str]] | None:  # forked by the shell: "sh" until it has exec'd sleep
            found = started_since(t0)
            return found if [n for pid, (_, n) in found.items() if pid not in (newer.pid, shell.pid)] == ["sleep"] else None

        found = wait_for(grandchild, 10, message="the shell's sleep did not start (or another process was found)")
        assert {newer.pid, shell.pid} <= set(found) and older.pid not in found
    finally:
        for proc in (older, newer, shell):
            if proc is not None:
                proc.kill()
                proc.wait()
