"""The lsf launcher passes pycrew's launcher conformance suite against the LSF emulator.

The emulator (``lsf_emulator``, from ``pycrew_emulators``) runs ``bsub``/``bjobs``/``bkill`` shims
whose jobs are local processes, so workers reach the controller on 127.0.0.1. It was
written from IBM's LSF documentation, not tested against a real LSF: see the package README.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pycrew.testing import CAPABILITIES, LauncherConfig, LauncherSuite
from pycrew_emulators.lsf import LsfEmulator
from pycrew_lsf import plugin as plugin_module


def test_declared_capabilities_are_the_suites() -> None:
    """Every capability the plugin registers is one the suite knows (a typo would skip tests silently)."""
    assert set(CAPABILITIES) >= plugin_module.CAPABILITIES, sorted(plugin_module.CAPABILITIES - set(CAPABILITIES))


class TestLsfLauncher(LauncherSuite):
    """Workers are elements of LSF job arrays run by the emulator."""

    @pytest.fixture
    def launcher_config(self, lsf_emulator: LsfEmulator, tmp_path: Path) -> LauncherConfig:
        return LauncherConfig(
            name="lsf",
            # The emulator's shims, a private directory per test (scripts, logs), a run limit
            # so that nothing a failed test leaves behind outlives it by long.
            options={
                "bin_directory": str(lsf_emulator.bin_directory),
                "directory": str(tmp_path / "lsf"),
                "seconds_walltime": 600.0,
            },
            # The emulator runs jobs on this machine: workers reach the controller on loopback.
            controller_options={"host": "127.0.0.1"},
            bad_options=[
                {"memory": "4 GB"},
                {"cpus": 0},
                {"submit_args": ("-J", "mine")},
                {"walltime": "soon"},
                {"memory_unit": "bytes"},
                {"resources": ('select["x"]',)},
            ],
            # bsub accepts the job; the host cannot start the interpreter (exit 127), so the
            # worker never connects and core gives up after launch_max launches.
            bad_launch_options={"python": "/no/such/python3"},
            seconds_launch=30.0,
            seconds_launch_failure=5.0,
            seconds_timeout=60.0,
        )

    @pytest.fixture
    def unrelated_job(self, lsf_emulator: LsfEmulator) -> Iterator[str | None]:
        """A plain bsub array of this user that looks like pycrew's (name, array, description) but is not."""
        reply = lsf_emulator.run(
            "bsub", "-J", "pycrew-unrelated[1]", "-Jd", "pycrew:1;c=not-a-tag", "-o", "/dev/null", stdin="sleep 300\n"
        )
        assert reply.returncode == 0 and "is submitted" in reply.stdout, reply.stderr
        job = reply.stdout.split("<", 1)[1].split(">", 1)[0]
        try:
            lsf_emulator.wait_for_state(f"{job}[1]", "running", timeout=30)
            yield f"{job}[1]"
        finally:
            lsf_emulator.run("bkill", job)
