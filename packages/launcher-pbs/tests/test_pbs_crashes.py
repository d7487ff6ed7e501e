"""A worker lost mid-task on PBS (the emulator): the task's TaskCrashError says what PBS knows of its job.

Core asks the monitor about a worker whose connection was lost while it ran a task and
quotes the ended job (state, exit status, reason) in the error. Before, PBS's record said
only the number (``exit code 265``) and the scheduler's comment ("Job run at ... and
finished"): now the signal in PBS's ``256 + N``, the ``JOB_EXEC_*`` code of a job PBS
killed (``-29``: walltime), the walltime it ran out of, and a job deleted with ``qdel``.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest

import pycrew
from pycrew.testing.harness import wait_until

FLAVOURS = pytest.mark.parametrize("pbs_emulator", ["pbspro", "torque"], indirect=True)


def pbs_controller(emulator: Any, tmp_path: Path, **kw: Any) -> pycrew.Controller:
    options = {"flavour": emulator.flavour, "bin_directory": str(emulator.bin_directory), "directory": str(tmp_path / "pbs")}
    return pycrew.controller("pbs", workers=1, host="127.0.0.1", seconds_launch=60, crashes_max=1, **options, **kw)


def crash_message(future: Any) -> str:
    with pytest.raises(pycrew.TaskCrashError) as raised:
        future.result(timeout=30)
    return str(raised.value)


@FLAVOURS
def test_a_task_that_killed_its_worker_says_the_signal(pbs_emulator: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Before: "... reports the worker as F (failed), exit code 265: Job run at ... and finished"."""

    def kill_worker() -> None:  # (a closure: sent by value)
        import os
        import signal

        print("loading the model", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    with caplog.at_level(logging.INFO, logger="pycrew.control.scaler"), pbs_controller(pbs_emulator, tmp_path) as c:
        message = crash_message(c.submit(kill_worker))
    assert "(connection lost); the platform reports the worker as " in message, message
    assert "exit code 265: killed by signal 9 (SIGKILL)" in message, message
    assert "was lost: the platform reports the worker as" in caplog.text and "killed by signal 9 (SIGKILL)" in caplog.text


@FLAVOURS
def test_a_task_whose_job_was_deleted_says_it_was_killed(pbs_emulator: Any, tmp_path: Path) -> None:
    """``qdel`` from outside: SIGTERM (the worker ends after its task), SIGKILL after kill_delay.
    Before, PBS Pro's job read "F (failed), exit code 265: Job run at ... and terminated"."""
    marker = tmp_path / "started"

    def long_task(path: str) -> None:
        import os
        import pathlib

        pathlib.Path(path).write_text(os.environ["PBS_JOBID"])
        time.sleep(60)

    with pbs_controller(pbs_emulator, tmp_path) as c:
        future = c.submit(long_task, str(marker))
        job = wait_until(lambda: marker.exists() and marker.read_text(), 30, "the task never started")
        assert pbs_emulator.run("qdel", job).returncode == 0
        message = crash_message(future)
    assert "killed by signal 9 (SIGKILL)" in message, message
    if pbs_emulator.flavour == "pbspro":  # TORQUE keeps no substate: a qdel looks like any SIGKILL there
        assert "F (cancelled), exit code 265" in message and "deleted with qdel" in message, message


@FLAVOURS
def test_a_task_cut_by_the_walltime_says_so(pbs_emulator: Any, tmp_path: Path) -> None:
    """The job runs out of its walltime (3 s) mid-task. Before, PBS Pro's read "F (failed),
    exit code 271" (or 265) with the scheduler's comment; now JOB_EXEC_KILL_WALLTIME, and on
    TORQUE the walltime it used up."""

    def long_task() -> None:

        time.sleep(60)

    with pbs_controller(pbs_emulator, tmp_path, seconds_walltime=3, seconds_walltime_margin=0) as c:
        message = crash_message(c.submit(long_task))
    assert "PBS killed it for running past its walltime (it ran 00:00:0" in message, message
    if pbs_emulator.flavour == "pbspro":
        assert "exit code -29: JOB_EXEC_KILL_WALLTIME" in message, message
