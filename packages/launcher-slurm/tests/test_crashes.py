"""A worker lost mid-task on SLURM: the task's TaskCrashError (and the log) say what SLURM knows of its job.

Core asks the monitor about a worker whose connection was lost while it ran a task, and
quotes the ended job: squeue's State, the exit code in its wait status, and now what they
mean (the signal that killed it, a cancel, a time limit). A time limit is whole minutes in
SLURM, too slow here: the parser's tests cover TIMEOUT.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from slurm_helpers import SlurmCluster, wait_for

import pycrew

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("slurm_cluster")]


@pytest.fixture(autouse=True)
def private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the controllers' records out of the real home."""
    monkeypatch.setenv("PYCREW_STATE_DIR", str(tmp_path / "state"))


def slurm_controller(tmp_path: Path) -> pycrew.Controller:
    """One worker, whose first loss crashes its task; on loopback (this one-node cluster is this machine)."""
    return pycrew.controller(
        "slurm", host="127.0.0.1", directory=str(tmp_path / "private"), workers=1, crashes_max=1, seconds_launch=60,
    )


def crash_message(future: Any) -> str:
    with pytest.raises(pycrew.TaskCrashError) as raised:
        future.result(timeout=60)
    return str(raised.value)


def test_a_task_that_killed_its_worker_says_the_signal(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Before: "... the platform reports the worker as FAILED, exit code -9: JobLaunchFailure" (SLURM
    22.05's reason for a batch script killed by a signal: it had launched)."""

    def kill_worker() -> None:  # (a closure: sent by value)
        import os
        import signal

        print("loading the model", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    with caplog.at_level(logging.INFO, logger="pycrew.control.scaler"), slurm_controller(tmp_path) as c:
        c.submit(abs, -1).result(timeout=90)  # the worker runs: the crash below is timed from a running job
        message = crash_message(c.submit(kill_worker))
    said = "the platform reports the worker as FAILED, exit code -9: killed by signal 9 (SIGKILL)"
    assert f"(connection lost); {said}" in message and "JobLaunchFailure" not in message, message
    assert f"was lost: {said}" in caplog.text, caplog.text
    assert "its output ends with:\n" in message and "    loading the model" in message, "the end of its log is quoted"


def test_a_task_that_exited_its_worker_says_the_exit_code(tmp_path: Path) -> None:
    def exit_worker() -> None:
        import os

        print("giving up", flush=True)
        os._exit(3)

    with slurm_controller(tmp_path) as c:
        message = crash_message(c.submit(exit_worker))
    assert "the platform reports the worker as FAILED, exit code 3" in message, message
    assert "signal" not in message, message


def test_a_task_whose_job_was_cancelled_says_slurm_cancelled_it(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    """``scancel`` from outside (an administrator, preemption): SIGTERM (the worker ends after
    its task, which does not end), SIGKILL after KillWait (5 s here). Before: "CANCELLED, exit
    code -9" or "exit code -15", without a word."""
    marker = tmp_path / "started"

    def long_task(path: str) -> None:
        import os
        import pathlib
        import time

        pathlib.Path(path).write_text(f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}")
        time.sleep(60)

    with slurm_controller(tmp_path) as c:
        future = c.submit(long_task, str(marker))
        job = wait_for(lambda: marker.exists() and marker.read_text(), timeout=90, what="the task to start")
        slurm_cluster.run("scancel", job)
        message = crash_message(future)
    assert "the platform reports the worker as CANCELLED, exit code -9: " in message, message
    assert "SLURM cancelled it (scancel by a user or an administrator)" in message, message
