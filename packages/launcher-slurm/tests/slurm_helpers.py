"""Helpers shared by pycrew-slurm's tests (a module of their own: ``conftest`` is not importable)."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from pycrew import LauncherInfo, WorkerCall
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


def make_calls(
    code: str, n: int, controller_id: str = "", controller: str = "test-controller", env: dict[str, str] | None = None,
) -> list[WorkerCall]:
    """``n`` worker calls that run ``python -c code`` instead of the worker, each with a fresh token."""
    controller_id = controller_id or secrets.token_hex(8)
    return [
        WorkerCall(
            args=("-c", code),
            python=sys.executable,
            env=dict(env or {}),
            token=f"tok{secrets.token_hex(12)}",
            name=f"pycrew-{controller}-{i}",
            launcher="slurm",
            worker=i,
            instance=secrets.token_hex(8),
            controller=controller,
            controller_id=controller_id,
        )
        for i in range(1, n + 1)
    ]


def launcher_info(options: SlurmOptions, calls: list[WorkerCall]) -> LauncherInfo:
    """The ``launcher`` argument core would pass for these calls."""
    return LauncherInfo("slurm", options, calls[0].controller, calls[0].controller_id)


#: A worker stand-in: records its array index, its token and which token variables it sees
#: into ``$OUT/element-<index>``, then sleeps ``$SLEEP`` seconds (OUT, SLEEP: the calls' env).
RECORD_AND_SLEEP = (
    "import os, time; i = os.environ['SLURM_ARRAY_TASK_ID'];"
    "open(os.path.join(os.environ['OUT'], 'element-' + i), 'w').write("
    "os.environ.get('PYCREW_TOKEN', '') + '\\n' + ','.join(sorted(k for k in os.environ if k.startswith('PYCREW_TOKEN'))));"
    "time.sleep(float(os.environ['SLEEP']))"
)
