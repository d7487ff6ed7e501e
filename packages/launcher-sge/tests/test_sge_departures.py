"""Tasks missing from a listing, confirmed gone by asking the real SGE (``qstat -xml -j``).

A task that vanished from ``qstat -u`` (no zombie: ``finished_jobs 0``, or a listing that
lost it) is suspect (pycrew.scheduler.departures); ``SgeCLI.confirm_gone`` asks about its
job, and only a job the qmaster no longer holds has its tasks confirmed gone.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from sge_helpers import SgeCluster, launcher_info, make_calls, wait_for

from pycrew.scheduler import JobRecord
from pycrew_sge import SgeCLI, SgeOptions

pytestmark = pytest.mark.usefixtures("sge_cluster")
log = logging.getLogger(__name__)


def sge_cli(tmp_path: Path, **kw: Any) -> SgeCLI:
    options = SgeOptions(**{"directory": str(tmp_path / "private"), "walltime": "00:05:00", "seconds_poll": 0, **kw})
    return SgeCLI("sge", options)


def tasks(job: str, count: int) -> list[JobRecord]:
    """The tasks of ``job`` as a listing showed them before they went missing (pending)."""
    return [JobRecord(id=f"{job}.{i}", array_id=job, index=i, name="pycrew-x", tag="", state="qw", status="pending")
            for i in range(1, count + 1)]


def qsub(cluster: SgeCluster, jobs: list[str], *args: str) -> str:
    """Submit a small array job (``-b y``: the command is a binary) and return its number."""
    job = cluster.run(
        "qsub", "-terse", "-N", "pycrew-confirm", "-o", "/dev/null", "-j", "y", *args
    ).stdout.strip().split(".")[0]
    jobs.append(job)
    return job


def test_confirm_gone_names_the_tasks_of_jobs_sge_no_longer_holds(
    sge_cluster: SgeCluster, sge_jobs: list[str], tmp_path: Path
) -> None:
    ended = qsub(sge_cluster, sge_jobs, "-t", "1-2", "-b", "y", "true")
    deleted = qsub(sge_cluster, sge_jobs, "-t", "1-2", "-h", "-b", "y", "sleep", "120")
    held = qsub(sge_cluster, sge_jobs, "-t", "1-2", "-h", "-b", "y", "sleep", "120")
    sge_cluster.run("qdel", deleted)
    wait_for(lambda: ended not in sge_cluster.jobs(), timeout=60, what=f"job {ended} to end")
    c = sge_cli(tmp_path)
    gone = c.confirm_gone(tasks(ended, 2) + tasks(deleted, 2) + tasks(held, 2))
    assert gone == {(ended, 1), (ended, 2), (deleted, 1), (deleted, 2)}, (
        f"qstat -j knows {held} (held) but neither {ended} (ended) nor {deleted} (deleted); confirmed {gone}"
    )


def test_an_array_with_tasks_still_queued_running_held_or_in_error_is_not_confirmed_gone(
    sge_cluster: SgeCluster, sge_jobs: list[str], tmp_path: Path
) -> None:
    """qstat -j lists a job's running and failed tasks only, not its waiting or held ones: a
    task deleted from an array SGE still holds (3 here) cannot be told from one that waits,
    and stays unconfirmed too (it leaves after the 10 s of departures)."""
    mixed = qsub(sge_cluster, sge_jobs, "-t", "1-3", "-h", "-b", "y", "sleep", "120")
    sge_cluster.run("qrls", f"{mixed}.1")  # 1 runs, 2 stays held, 3 is deleted
    sge_cluster.run("qdel", f"{mixed}.3")
    next_year = time.strftime("%Y%m%d%H%M", time.localtime(time.time() + 365 * 86400))
    waiting = qsub(sge_cluster, sge_jobs, "-t", "1-2", "-a", next_year, "-b", "y", "sleep", "120")
    error = qsub(sge_cluster, sge_jobs, "-t", "1-2", "-o", "/proc/no/such/dir/out.log", "-b", "y", "true")
    wait_for(lambda: sge_cluster.jobs().get(mixed, [])[:1] == ["r"], timeout=60, what=f"task {mixed}.1 to run")
    wait_for(lambda: sge_cluster.jobs().get(error) == ["Eqw"], timeout=60, what=f"job {error} to go into error state")
    assert sge_cluster.jobs()[waiting] == ["qw"]
    c = sge_cli(tmp_path)
    gone = c.confirm_gone(tasks(mixed, 3) + tasks(waiting, 2) + tasks(error, 2))
    assert gone == set(), f"SGE holds jobs {mixed}, {waiting} and {error}; confirmed gone: {gone}"


def test_without_zombies_a_task_deleted_from_outside_leaves_the_listing_at_once(
    sge_cluster: SgeCluster, sge_jobs: list[str], tmp_path: Path
) -> None:
    """With ``finished_jobs 0`` a task deleted while it waited vanishes from qstat; it was
    last seen waiting, so it is suspect, and qstat -j confirms its job gone at the next
    listings instead of after SECONDS_SUSPECT (10 s; here an hour, so that only the
    confirmation can end them within the wait)."""
    with sge_cluster.global_config(tmp_path / "conf", finished_jobs="0"):
        c = sge_cli(tmp_path, submit_args=("-h",))
        c.departures.seconds_suspect = 3600.0  # only qstat -j can end them within the test's wait
        calls = make_calls("pass", 2)
        job = c.submit_array(launcher_info(c.options, calls), calls)
        sge_jobs.append(job)
        wait_for(lambda: sorted(r.status for r in c.listing() if r.array_id == job) == ["pending", "pending"],
                 timeout=30, what=f"job {job} to be listed waiting")
        sge_cluster.run("qdel", job)  # from outside: this process did not cancel it
        deleted = time.monotonic()
        left = wait_for(lambda: [r for r in c.listing() if r.array_id == job and r.ended], timeout=30,
                        what=f"job {job}'s tasks to be listed ended")
        took = time.monotonic() - deleted
    log.info("qdel to the tasks listed ended: %.2f s", took)
    assert sorted(r.index for r in left) == [1, 2] and all("left the sge queue" in r.reason for r in left), left


def test_a_job_deleted_from_outside_before_the_first_listing_leaves_it_once_qstat_confirms(
    sge_cluster: SgeCluster, sge_jobs: list[str], tmp_path: Path
) -> None:
    """The launch tells departures what it submitted, so a job qdel'ed before pycrew ever listed
    it (here at once) is ended too; before, no listing had seen it waiting, and its launch
    failed only at seconds_launch. A job listed as submitted leaves nothing unlisted."""
    with sge_cluster.global_config(tmp_path / "conf", finished_jobs="0"):
        c = sge_cli(tmp_path, submit_args=("-h",))
        calls = make_calls("pass", 2)
        kept = c.launch(launcher_info(c.options, calls[:1]), calls[:1])
        sge_jobs.append(kept[0].split(".")[0])
        c.listing()
        assert c.departures.unlisted == 0, "the listing writes the ids of what was submitted as qsub does"
        handles = c.launch(launcher_info(c.options, calls[1:]), calls[1:])
        job = handles[0].split(".")[0]
        sge_jobs.append(job)
        sge_cluster.run("qdel", job)  # from outside, before any listing
        left = wait_for(lambda: [r for r in c.listing() if r.array_id == job and r.ended], timeout=30,
                        what=f"job {job}'s task to be listed ended")
    assert [r.index for r in left] == [1] and "before pycrew first listed it" in left[0].reason, left
    assert c.departures.unlisted == 0
