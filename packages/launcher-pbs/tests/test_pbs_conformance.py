"""The pbs launcher passes pycrew's launcher conformance suite against the PBS emulator.

The emulator (``pbs_emulator``, packages/emulators) implements qsub, qstat and qdel from
PBS's documentation and runs every job as a local process, so workers reach the controller
on 127.0.0.1. Both flavours run the whole suite: PBS Pro / OpenPBS and TORQUE. It is an
emulator written from the documentation, not a real PBS (see docs/launchers/pbs.md).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from pycrew.testing import CAPABILITIES, LauncherConfig, LauncherSuite
from pycrew_pbs import plugin

#: Jobs of the suite's controllers are named after them: pycrew-suite1, pycrew-suite2, ...
SUITE_JOBS = "pycrew-suite"


def test_declared_capabilities_are_the_suites() -> None:
    """Every capability the plugin registers is one the suite knows (a typo would skip tests silently)."""
    assert set(CAPABILITIES) >= plugin.CAPABILITIES, sorted(plugin.CAPABILITIES - set(CAPABILITIES))


def pbs_config(emulator: Any, tmp_path: Path) -> LauncherConfig:
    return LauncherConfig(
        name="pbs",
        options={
            "flavour": emulator.flavour,
            "bin_directory": str(emulator.bin_directory),
            # A private directory per test (scripts, logs); a walltime so that nothing a failed
            # test leaves behind outlives it by long.
            "directory": str(tmp_path / "pbs"),
            "walltime": "00:10:00",
        },
        # The emulator runs jobs on this machine: they reach the controller on loopback.
        controller_options={"host": "127.0.0.1"},
        bad_options=[
            {"memory": "4 GB"},
            {"cpus": 0},
            {"flavour": "sge"},
            {"submit_args": ("-J", "1-3")},
            {"resources": ("select=2:ncpus=1",)},
            {"walltime": "soon"},
        ],
        # qsub accepts the job; it cannot start the interpreter (exit 127), so the worker never
        # connects; the monitor reports the job failed and core gives up after launch_max.
        bad_launch_options={"python": "/no/such/python3"},
        seconds_launch=60.0,
        seconds_launch_failure=5.0,
        seconds_timeout=60.0,
    )


def unrelated(emulator: Any) -> Iterator[str]:
    """A plain qsub array of this user that looks like pycrew's (name, array, tag variable) but is not."""
    flag = "-J" if emulator.flavour == "pbspro" else "-t"
    proc = emulator.run(
        "qsub", flag, "1-2", "-N", "pycrew-unrelated", "-j", "oe", "-o", "/dev/null",
        "-v", "PYCREW_JOBTAG=pycrew:1;c=not-a-tag", stdin="#!/bin/bash\nsleep 300\n",
    )
    assert proc.returncode == 0, f"qsub of the unrelated job failed: {proc.stderr}"
    array_id = proc.stdout.strip()
    element = array_id.replace("[]", "[1]")
    try:
        emulator.wait_for_state(element, "running", timeout=30)
        yield element
    finally:
        emulator.run("qdel", array_id)
        emulator.wait_for_state(array_id, "finished", timeout=30)


def leftovers(emulator: Any) -> Iterator[None]:
    """After each test, no job of a suite controller is left queued or running (the suite cleans up)."""
    yield
    deadline = time.monotonic() + 30
    while True:
        left = [j for j in emulator.jobs() if j.name.startswith(SUITE_JOBS) and j.state != "finished"]
        if not left or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert not left, f"jobs of the suite's controllers left behind: {[(j.job_id, j.state) for j in left]}"


class TestPbsProLauncher(LauncherSuite):
    """Workers are subjobs of PBS Pro job arrays (qsub -J) on the emulator."""

    @pytest.fixture
    def launcher_config(self, pbs_emulator: Any, tmp_path: Path) -> LauncherConfig:
        assert pbs_emulator.flavour == "pbspro"
        return pbs_config(pbs_emulator, tmp_path)

    @pytest.fixture
    def unrelated_job(self, pbs_emulator: Any) -> Iterator[str | None]:
        yield from unrelated(pbs_emulator)

    @pytest.fixture(autouse=True)
    def _no_job_left_behind(self, pbs_emulator: Any) -> Iterator[None]:
        yield from leftovers(pbs_emulator)


@pytest.mark.parametrize("pbs_emulator", ["torque"], indirect=True)
class TestTorqueLauncher(LauncherSuite):
    """Workers are elements of TORQUE job arrays (qsub -t) on the emulator."""

    @pytest.fixture
    def launcher_config(self, pbs_emulator: Any, tmp_path: Path) -> LauncherConfig:
        assert pbs_emulator.flavour == "torque"
        return pbs_config(pbs_emulator, tmp_path)

    @pytest.fixture
    def unrelated_job(self, pbs_emulator: Any) -> Iterator[str | None]:
        yield from unrelated(pbs_emulator)

    @pytest.fixture(autouse=True)
    def _no_job_left_behind(self, pbs_emulator: Any) -> Iterator[None]:
        yield from leftovers(pbs_emulator)
