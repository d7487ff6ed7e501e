"""The slurm launcher passes pycrew's launcher conformance suite on a real SLURM cluster.

The cluster is the ``slurm_cluster`` fixture's (``scripts/slurm/start.sh``: one node, this
machine), so workers reach the controller on 127.0.0.1. Without SLURM every test is skipped
with the reason (a failure with ``CI=true``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from slurm_helpers import SlurmCluster, wait_for

from pycrew.testing import CAPABILITIES, LauncherConfig, LauncherSuite
from pycrew_slurm import plugin

pytestmark = pytest.mark.usefixtures("slurm_cluster")


def test_declared_capabilities_are_the_suites() -> None:
    """Every capability the plugin registers is one the suite knows (a typo would skip tests silently)."""
    assert set(CAPABILITIES) >= plugin.CAPABILITIES, sorted(plugin.CAPABILITIES - set(CAPABILITIES))


class TestSlurmLauncher(LauncherSuite):
    """Workers are elements of SLURM job arrays on the test cluster."""

    @pytest.fixture
    def launcher_config(self, slurm_cluster: SlurmCluster, tmp_path: Path) -> LauncherConfig:
        return LauncherConfig(
            name="slurm",
            # A private directory per test (scripts, logs); a time limit so that nothing a
            # failed test leaves behind outlives it by long.
            options={"directory": str(tmp_path / "slurm"), "seconds_time": 600},
            # This one-node cluster is this machine: the nodes reach the controller on loopback.
            controller_options={"host": "127.0.0.1"},
            bad_options=[
                {"memory": "4 GB"},
                {"cpus_per_task": 0},
                {"sbatch_args": ("--array=1-3",)},
                {"time": "soon"},
                {"memory": "4G", "memory_gigabytes_per_node": 4.0},
            ],
            # sbatch accepts the job; the node cannot start the interpreter (exit 127), so
            # the worker never connects and core gives up after launch_max launches.
            bad_launch_options={"python": "/no/such/python3"},
            seconds_launch=60.0,
            seconds_launch_failure=5.0,
            seconds_timeout=60.0,
        )

    @pytest.fixture
    def unrelated_job(self, slurm_cluster: SlurmCluster) -> Iterator[str | None]:
        """A plain sbatch job of this user that looks like pycrew's (name, array, comment) but is not."""
        job = slurm_cluster.run(
            "sbatch", "--parsable", "--output=/dev/null", "--time=5", "--array=1-1", "--job-name=pycrew-unrelated",
            "--comment=pycrew:1;c=not-a-tag", "--wrap", "sleep 300",
        ).stdout.strip()
        try:
            wait_for(
                lambda: "RUNNING" in slurm_cluster.run("squeue", "--noheader", "--array", "-j", job, "--format=%T").stdout,
                timeout=30, what=f"the unrelated job {job} to run",
            )
            yield f"{job}_1"
        finally:
            slurm_cluster.run("scancel", job, check=False)
            wait_for(
                lambda: not slurm_cluster.run("squeue", "--noheader", "-j", job, check=False).stdout.strip(),
                timeout=30, what=f"the unrelated job {job} to leave the queue",
            )


@pytest.fixture(autouse=True)
def _no_job_left_behind(slurm_cluster: SlurmCluster) -> Iterator[None]:
    """After each test, nothing of pycrew's is left in the queue (the suite cleans up; this checks it)."""
    yield

    def pycrews() -> list[str]:
        out = slurm_cluster.run("squeue", "--noheader", "--array", "--format=%i|%j", check=False).stdout
        return [line for line in out.split() if "|pycrew-suite" in line]

    left = pycrews()
    if left:
        arrays = sorted({line.split("|")[0].split("_")[0] for line in left})
        slurm_cluster.run("scancel", *arrays, check=False)
        wait_for(lambda: not pycrews(), timeout=60, what=f"leftover jobs {arrays} to leave the queue")
