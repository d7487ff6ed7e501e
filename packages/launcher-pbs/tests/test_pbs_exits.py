"""Why a PBS job ended, from its qstat attributes (pycrew_pbs.exits): the reason core quotes for a lost worker."""

from __future__ import annotations

from typing import Any

import pytest

from pycrew_pbs.exits import ended, finished_reason, ran_out_of_walltime


@pytest.mark.parametrize(
    ("attrs", "exit_status", "status", "said"),
    [
        ({}, 265, "failed", "killed by signal 9 (SIGKILL)"),
        ({}, 271, "cancelled", "killed by signal 15 (SIGTERM)"),
        ({"substate": 91}, 265, "cancelled",
         "killed by signal 9 (SIGKILL); PBS terminated it (substate 91: deleted with qdel, or killed by PBS)"),
        ({}, 3, "failed", ""),
        ({}, 0, "done", ""),
        ({}, -27, "failed", "JOB_EXEC_KILL_MEM: PBS killed it for using more memory than it asked for (mem)"),
        ({}, -99, "failed", "PBS's exit status -99 (a JOB_EXEC_* code: see tracejob)"),
        ({"Resource_List": {"walltime": "00:01:00"}, "resources_used": {"walltime": "00:01:02"}, "substate": 93}, -29,
         "failed", "JOB_EXEC_KILL_WALLTIME: PBS killed it for running past its walltime (it ran 00:01:02 of its walltime 00:01:00)"),
        ({"Resource_List.walltime": "00:01:00", "resources_used.walltime": "00:01:05"}, 271, "cancelled",
         "killed by signal 15 (SIGTERM); PBS killed it for running past its walltime (it ran 00:01:05 of its walltime 00:01:00)"),
    ],
)  # fmt: skip
def test_a_finished_job_says_the_signal_pbs_code_or_walltime(attrs: dict[str, Any], exit_status: int, status: str, said: str) -> None:
    """Before, the reason was the scheduler's comment only, and the exit status a bare number."""
    assert ended(attrs, exit_status, "") == (status, said)


def test_the_schedulers_comment_follows_what_the_exit_status_says() -> None:
    said = finished_reason({}, 265, "Job run at Sun Dec 06 at 23:27 on (vm:ncpus=1) and finished")
    assert said == "killed by signal 9 (SIGKILL); PBS says: Job run at Sun Dec 06 at 23:27 on (vm:ncpus=1) and finished"


def test_a_job_that_ended_before_its_walltime_did_not_run_out_of_it() -> None:
    assert ran_out_of_walltime({"Resource_List": {"walltime": "01:00:00"}, "resources_used": {"walltime": "00:10:00"}}) == ""
    assert ran_out_of_walltime({"resources_used": {"walltime": "00:10:00"}}) == "", "no limit: none to run out of"
