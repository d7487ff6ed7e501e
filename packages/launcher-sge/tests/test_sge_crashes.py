"""A worker lost mid-task on SGE: the task's TaskCrashError says what the listing knows of its task.

SGE lists a task that died as a zombie about 1 s later, without its exit status (``qacct``
has it only once the accounting file is flushed, seconds later: see pycrew_sge.endings),
so a worker that killed itself or exited reads "z (done): it ended; SGE keeps no exit
status in its queue (qacct ... has it)". What is known at once: a task deleted with
``qdel`` (state ``d``), and a task that ended past its run-time limit (``h_rt``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sge_helpers import SgeCluster, wait_for

import pycrew

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("sge_cluster")]


@pytest.fixture(autouse=True)
def private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the controllers' records out of the real home."""
    monkeypatch.setenv("PYCREW_STATE_DIR", str(tmp_path / "state"))


def sge_controller(tmp_path: Path, walltime: str) -> pycrew.Controller:
    """One worker, whose first loss crashes its task, on loopback (the test cell's one host is this machine)."""
    return pycrew.controller(
        "sge", host="127.0.0.1", directory=str(tmp_path / "private"), walltime=walltime, seconds_walltime_margin=0,
        workers=1, crashes_max=1, seconds_launch=60,
    )


def crash_message(future: Any) -> str:
    with pytest.raises(pycrew.TaskCrashError) as raised:
        future.result(timeout=60)
    return str(raised.value)


def test_a_task_whose_job_was_deleted_says_so(sge_cluster: SgeCluster, tmp_path: Path) -> None:
    """``qdel`` from outside kills the task (SIGKILL). Before: "... reports the worker as dr (cancelled)", no more."""
    marker = tmp_path / "started"

    def long_task(path: str) -> None:  # (a closure: sent by value)
        import os
        import pathlib
        import time

        pathlib.Path(path).write_text(f"{os.environ['JOB_ID']}.{os.environ['SGE_TASK_ID']}")
        time.sleep(60)

    with sge_controller(tmp_path, "00:05:00") as c:
        future = c.submit(long_task, str(marker))
        task = wait_for(lambda: marker.exists() and marker.read_text(), timeout=60, what="the task to start")
        sge_cluster.run("qdel", task)
        message = crash_message(future)
    assert "(cancelled): deleted with qdel (by a user or an administrator): SGE kills it" in message, message


def test_a_task_cut_by_its_run_time_limit_says_so(tmp_path: Path) -> None:
    """``h_rt=5``: SGE SIGKILLs the task mid-task. Before: "z (done): it ended; SGE keeps no exit
    status in its queue (qacct ... has it)", as for any ending."""

    def long_task() -> None:
        import time

        time.sleep(60)

    with sge_controller(tmp_path, "00:00:05") as c:
        message = crash_message(c.submit(long_task))
    assert "the platform reports the worker as z (done): it was listed ended " in message, message
    assert "past its run-time limit h_rt=5 s (the walltime option): SGE kills a task there (SIGKILL)" in message, message
