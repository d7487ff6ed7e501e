"""A worker lost mid-task on LSF (the emulator): the task's TaskCrashError says what LSF knows of its job.

LSF reports a job killed by signal N as exit code 128 + N (IBM's "LSF job exit codes"),
and a job it or someone killed with a termination reason (``TERM_OWNER``, ``TERM_RUNLIMIT``,
``TERM_MEMLIMIT``). Before, a worker killed by SIGKILL read only "EXIT (failed), exit code
137"; now the signal is named. (A run limit is whole minutes in LSF, too slow here: the
parser's test covers TERM_RUNLIMIT.)
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest

import pycrew
from pycrew.testing.harness import wait_until
from pycrew_emulators.lsf import LsfEmulator


def lsf_controller(emulator: LsfEmulator, tmp_path: Path) -> pycrew.Controller:
    options = {"bin_directory": str(emulator.bin_directory), "directory": str(tmp_path / "lsf"), "seconds_walltime": 600.0}
    return pycrew.controller("lsf", workers=1, host="127.0.0.1", seconds_launch=60, crashes_max=1, **options)


def crash_message(future: Any) -> str:
    with pytest.raises(pycrew.TaskCrashError) as raised:
        future.result(timeout=30)
    return str(raised.value)


def test_a_task_that_killed_its_worker_says_the_signal(
    lsf_emulator: LsfEmulator, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Before: "... the platform reports the worker as EXIT (failed), exit code 137" and no more."""

    def kill_worker() -> None:  # (a closure: sent by value)
        import os
        import signal

        print("loading the model", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    with caplog.at_level(logging.INFO, logger="pycrew.control.scaler"), lsf_controller(lsf_emulator, tmp_path) as c:
        message = crash_message(c.submit(kill_worker))
    assert "(connection lost); the platform reports the worker as EXIT (failed), exit code 137: killed by signal 9 (SIGKILL)" in message, message
    assert "was lost: the platform reports the worker as EXIT (failed), exit code 137: killed by signal 9 (SIGKILL)" in caplog.text


def test_a_task_whose_job_was_killed_with_bkill_says_by_whom_and_how(lsf_emulator: LsfEmulator, tmp_path: Path) -> None:
    """bkill from outside: SIGINT, SIGTERM, SIGKILL 2 s apart (the worker ends after its task,
    which does not end). Before: "EXIT (cancelled), exit code 143: TERM_OWNER: job killed by owner"."""
    marker = tmp_path / "started"

    def long_task(path: str) -> None:
        import os
        import pathlib

        pathlib.Path(path).write_text(f"{os.environ['LSB_JOBID']}[{os.environ['LSB_JOBINDEX']}]")
        time.sleep(60)

    with lsf_controller(lsf_emulator, tmp_path) as c:
        future = c.submit(long_task, str(marker))
        job = wait_until(lambda: marker.exists() and marker.read_text(), 30, "the task never started")
        assert lsf_emulator.run("bkill", job).returncode == 0
        message = crash_message(future)
    assert "EXIT (cancelled), exit code 143: TERM_OWNER: job killed by owner; killed by signal 15 (SIGTERM)" in message, message
