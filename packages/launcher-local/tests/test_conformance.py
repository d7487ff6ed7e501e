"""The local launcher passes pycrew's launcher conformance suite."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from pycrew.testing import LauncherConfig, LauncherSuite
from pycrew_local import LocalHandle


def _handle_pid(handle: LocalHandle) -> int:
    return handle.pid


class TestLocalLauncher(LauncherSuite):
    """Workers are processes on this machine."""

    @pytest.fixture
    def launcher_config(self) -> LauncherConfig:
        return LauncherConfig(
            name="local",
            options={},
            bad_options=[{"python": ""}, {"cwd": "/no/such/directory"}, {"env": {"PYCREW_TOKEN": "x"}}],
            bad_launch_options={"python": "/no/such/python"},
            seconds_timeout=30.0,
            handle_pid=_handle_pid,
        )

    @pytest.fixture
    def unrelated_job(self) -> Iterator[str | None]:
        """A Python process of this user that is not a pycrew worker."""
        proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
        try:
            yield str(proc.pid)
        finally:
            proc.kill()
            proc.wait()


class TestLocalLauncherOverNng(TestLocalLauncher):
    """The same suite with workers talking to the dispatcher over NNG (``wire="nng"``)."""

    @pytest.fixture
    def launcher_config(self) -> LauncherConfig:
        return LauncherConfig(
            name="local",
            options={},
            controller_options={"wire": "nng"},
            bad_options=[{"python": ""}],
            bad_launch_options={"python": "/no/such/python"},
            seconds_timeout=30.0,
            handle_pid=_handle_pid,
        )
