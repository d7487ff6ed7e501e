"""What a local worker's tasks leave running ends with the worker, which is reaped at once.

A task's ``subprocess.Popen`` (a shell's background job here) is in the worker's process
group; when the worker ends, by itself or terminated, that group gets SIGTERM, then SIGKILL
after the grace period, and the worker is reaped: no zombie lingers until the controller
terminates its handle, and nothing is left running after the controller closes.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

import pycrew
from pycrew.testing.harness import wait_until
from pycrew_local import LocalOptions, children
from pycrew_local.processes import kill_tree, list_workers, start_worker


def call(instance: str) -> pycrew.WorkerCall:
    args = ("-m", "pycrew.worker", "--url", "tcp://127.0.0.1:9", "--instance", instance, "--worker", "1",
            "--launcher", "local", "--controller", "unit", "--controller-id", "c0ffee0002")
    return pycrew.WorkerCall(args=args, python=sys.executable, env={}, token="0" * 64, name=f"pycrew-unit-1-{instance}",
                             launcher="local", worker=1, instance=instance, controller="unit", controller_id="c0ffee0002")


def running(pid: int) -> bool:
    """Whether the process runs (a zombie does not)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def exists(pid: int) -> bool:
    """Whether the pid is taken at all (a zombie counts: it was not reaped)."""
    return psutil.pid_exists(pid)


@pytest.fixture
def leftovers() -> Iterator[list[int]]:
    pids: list[int] = []
    yield pids
    for pid in pids:  # if the test failed: do not leave them running
        try:
            os.kill(pid, 9)
        except OSError:
            pass


def fake_worker(tmp_path: Path, body: str) -> str:
    path = tmp_path / "fake-python"
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)
    return str(path)


def read_pid(path: Path) -> int:
    return int(wait_until(lambda: path.exists() and path.read_text().strip(), 15, f"{path} was not written"))


def test_a_worker_that_exits_is_reaped_and_its_leftovers_end_without_any_call(tmp_path, handles, leftovers):
    pidfile = tmp_path / "leftover.pid"
    python = fake_worker(tmp_path, f"sleep 1000 &\necho $! > {pidfile}\nexit 0")
    handles.append(start_worker(call("feed1001"), LocalOptions(python=python)))
    leftovers.append(read_pid(pidfile))
    # Nothing here calls list_workers or kill_tree: the launcher's reaper does it all.
    wait_until(lambda: not running(leftovers[0]), 15, "the sleep the worker started in its group still runs after it ended")
    wait_until(lambda: not exists(handles[0].pid), 15, "the ended worker was not reaped (it is a zombie)")
    [worker] = [w for w in list_workers("c0ffee0002") if w.ended]
    assert (worker.status, worker.exit_code) == ("done", 0), "the exit code read before reaping was lost"


def test_a_leftover_that_ignores_sigterm_gets_sigkill_after_the_grace_period(tmp_path, handles, leftovers):
    pidfile = tmp_path / "leftover.pid"
    stubborn = "sh -c 'trap \"\" TERM; while :; do sleep 0.1; done' &"
    python = fake_worker(tmp_path, f"{stubborn}\necho $! > {pidfile}\nexit 3")
    handles.append(start_worker(call("feed1002"), LocalOptions(python=python)))
    leftovers.append(read_pid(pidfile))
    wait_until(lambda: not running(leftovers[0]), 15 + children.SECONDS_LEFTOVER_GRACE, "the leftover ignoring SIGTERM was not killed")
    wait_until(lambda: not exists(handles[0].pid), 15, "the ended worker was not reaped once its group was killed")
    [worker] = [w for w in list_workers("c0ffee0002") if w.ended]
    assert (worker.status, worker.exit_code) == ("failed", 3)


def test_a_leftover_in_a_process_group_of_its_own_is_ended_with_its_worker_s_session(tmp_path, handles, leftovers):
    """Failed on 87be67e: the launcher signalled the worker's process group only, and a
    process that had made a group of its own (setpgid) in the worker's session ran on."""
    pidfile = tmp_path / "leftover.pid"
    own_group = f"{sys.executable} -c 'import os, time; os.setpgid(0, 0); time.sleep(1000)' &"
    python = fake_worker(tmp_path, f"{own_group}\necho $! > {pidfile}\nsleep 0.5\nexit 0")
    handles.append(start_worker(call("feed1004"), LocalOptions(python=python)))
    leftovers.append(read_pid(pidfile))
    wait_until(lambda: not running(leftovers[0]), 15, "the leftover in its own process group still runs")
    wait_until(lambda: not exists(handles[0].pid), 15, "the ended worker was not reaped")


def test_terminating_a_running_worker_ends_its_group_and_keeps_its_exit(tmp_path, handles, leftovers):
    pidfile = tmp_path / "leftover.pid"
    python = fake_worker(tmp_path, f"sleep 1000 &\necho $! > {pidfile}\nexec sleep 1000")
    handles.append(start_worker(call("feed1003"), LocalOptions(python=python)))
    leftovers.append(read_pid(pidfile))
    kill_tree(handles[0])
    assert not running(leftovers[0]) and not exists(handles[0].pid)
    assert [w for w in list_workers("c0ffee0002") if w.instance == "feed1003"] == []


def spawn_sleeper() -> int:
    """A task that starts a process and returns without waiting for it."""
    return subprocess.Popen(["sleep", "1000"]).pid


def test_a_task_s_process_ends_soon_after_its_worker_leaves_while_the_controller_runs(leftovers):
    with pycrew.controller("local", workers=1, tasks_max=1, seconds_idle=60) as crew:
        leftovers.append(crew.submit(spawn_sleeper).result(timeout=60))
        # The worker leaves after its one task; the controller terminates its handle only
        # 12 s after its goodbye, and before this fix nothing ended the sleep at all.
        wait_until(lambda: not running(leftovers[0]), 10, "the task's process outlived its worker")
    assert not running(leftovers[0])
