"""Helpers shared by pycrew-slurm's tests (a module of their own: ``conftest`` is not importable)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from pycrew import LauncherInfo, WorkerCall
from pycrew.testing import scheduler_calls
from pycrew_slurm import SlurmOptions


@dataclass(frozen=True)
class SlurmCluster:
    """A reachable SLURM cluster.

    Attributes:
        conf: the ``slurm.conf`` path (also exported as ``SLURM_CONF`` for the session).
        started_here: whether this test session started it (and will stop it).
    """

    conf: str
    started_here: bool

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a SLURM command against this cluster."""
        env = {**os.environ, "SLURM_CONF": self.conf}
        return subprocess.run(list(argv), capture_output=True, text=True, env=env, check=check, timeout=60)


def wait_for(condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1, what: str = "") -> Any:
    """Poll ``condition`` until it returns something truthy; fail the test after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:g} s waiting for {what or condition}")
        time.sleep(interval)


def make_calls(code: str, n: int, **kwargs: Any) -> list[WorkerCall]:
    """:func:`pycrew.testing.scheduler_calls.make_calls` for the ``slurm`` launcher."""
    return scheduler_calls.make_calls(code, n, launcher="slurm", **kwargs)


def launcher_info(options: SlurmOptions, calls: list[WorkerCall]) -> LauncherInfo:
    """The ``launcher`` argument core would pass for these calls."""
    return LauncherInfo("slurm", options, calls[0].controller, calls[0].controller_id)


WHO_AM_I = scheduler_calls.WHO_AM_I
RECORD_AND_SLEEP = scheduler_calls.RECORD_AND_SLEEP
