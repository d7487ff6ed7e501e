"""The sge launcher passes pycrew's launcher conformance suite on a real Son of Grid Engine.

The cell is the ``sge_cluster`` fixture's (``scripts/sge/start.sh``: one execution host, this
machine), so workers reach the controller on 127.0.0.1. Without SGE every test is skipped
with the reason (a failure with ``CI=true``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sge_helpers import SgeCluster, wait_for

from pycrew.testing import CAPABILITIES, LauncherConfig, LauncherSuite
from pycrew_sge import plugin

pytestmark = pytest.mark.usefixtures("sge_cluster")


def test_declared_capabilities_are_the_suites() -> None:
    """Every capability the plugin registers is one the suite knows (a typo would skip tests silently)."""
    assert set(CAPABILITIES) >= plugin.CAPABILITIES, sorted(plugin.CAPABILITIES - set(CAPABILITIES))


class TestSgeLauncher(LauncherSuite):
    """Workers are tasks of SGE array jobs on the test cell."""

    @pytest.fixture
    def launcher_config(self, sge_cluster: SgeCluster, tmp_path: Path) -> LauncherConfig:
        return LauncherConfig(
            name="sge",
            # A private directory per test (scripts, logs, keys); a run-time limit so that
            # nothing a failed test leaves behind outlives it by long.
            options={"directory": str(tmp_path / "sge"), "walltime": "00:10:00"},
            # This one-host cell is this machine: the execution host reaches the controller on loopback.
            controller_options={"host": "127.0.0.1"},
            bad_options=[
                {"memory": "4 GB"},
                {"cpus": 0},
                {"submit_args": ("-t", "1-3")},
                {"walltime": "soon"},
                {"script_directives": ("#$ -N mine",)},
                {"parallel_environment": "s m p"},
            ],
            # qsub accepts the job; the host cannot start the interpreter (exit 127), so the
            # worker never connects and core gives up after launch_max launches.
            bad_launch_options={"python": "/no/such/python3"},
            seconds_launch=60.0,
            seconds_launch_failure=5.0,
            seconds_timeout=60.0,
        )

    @pytest.fixture
    def unrelated_job(self, sge_cluster: SgeCluster) -> Iterator[str | None]:
        """A plain array job of this user that looks like pycrew's (name, array, context) but is not."""
        out = sge_cluster.run(
            "qsub", "-terse", "-N", "pycrew-unrelated", "-t", "1-1", "-ac", "pycrew_tag=pycrew:1;c=not-a-tag",
            "-o", "/dev/null", "-j", "y", "-l", "h_rt=00:05:00", "-b", "y", "sleep", "300",
        ).stdout
        job = out.strip().split(".")[0]
        try:
            wait_for(lambda: sge_cluster.jobs().get(job) == ["r"], timeout=30, what=f"the unrelated job {job} to run")
            yield f"{job}.1"
        finally:
            sge_cluster.delete_and_wait([job])


@pytest.fixture(autouse=True)
def _no_job_left_behind(sge_cluster: SgeCluster) -> Iterator[None]:
    """After each test, none of the suite's jobs stays in the queue: those being deleted get a
    minute to leave (qdel of a running task takes a moment); what is still there fails the test."""
    before = set(sge_cluster.jobs())
    yield

    def left() -> list[str]:
        names = sge_cluster.job_names()
        return sorted((j for j, n in names.items() if n.startswith("pycrew-suite") and j not in before), key=int)

    deadline = time.monotonic() + 60
    while left() and time.monotonic() < deadline:
        time.sleep(0.2)
    stuck = left()
    if stuck:
        states = {j: sge_cluster.jobs().get(j) for j in stuck}
        sge_cluster.delete_and_wait(stuck)
        pytest.fail(f"the test left SGE jobs of the suite's controllers in the queue for 60 s: {states} (deleted now)")
