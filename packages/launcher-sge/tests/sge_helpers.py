"""Helpers shared by pycrew-sge's tests (a module of their own: ``conftest`` is not importable)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from pycrew import LauncherInfo, WorkerCall
from pycrew.testing import scheduler_calls
from pycrew.testing.scheduler_calls import RECORD_AND_SLEEP, WHO_AM_I
from pycrew_sge import SgeOptions

__all__ = ["RECORD_AND_SLEEP", "WHO_AM_I", "SgeCluster", "launcher_info", "make_calls", "wait_for"]


@dataclass(frozen=True)
class SgeCluster:
    """A reachable Son of Grid Engine cell.

    Attributes:
        env: the variables that select the cell (``SGE_ROOT``, ``SGE_CELL``, ports), also
            exported for the session.
        started_here: whether this test session started it (and will stop it).
    """

    env: Mapping[str, str] = field(default_factory=dict)
    started_here: bool = False

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run an SGE command against this cell."""
        proc = subprocess.run(
            list(argv), capture_output=True, text=True, env={**os.environ, **self.env}, check=False, timeout=120
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{argv} exited {proc.returncode}: stdout {proc.stdout!r} stderr {proc.stderr!r}")
        return proc

    def jobs(self) -> dict[str, list[str]]:
        """Every job of every user in ``qstat -xml -u '*'``: job number -> states of its entries."""
        root = ET.fromstring(self.run("qstat", "-xml", "-u", "*").stdout)
        found: dict[str, list[str]] = {}
        for job in root.iter("job_list"):
            found.setdefault(job.findtext("JB_job_number", ""), []).append(job.findtext("state", ""))
        return found

    def job_names(self) -> dict[str, str]:
        """Every job of every user: job number -> job name."""
        root = ET.fromstring(self.run("qstat", "-xml", "-u", "*").stdout)
        return {job.findtext("JB_job_number", ""): job.findtext("JB_name", "") for job in root.iter("job_list")}

    @contextlib.contextmanager
    def global_config(self, directory: Path, **settings: str) -> Iterator[None]:
        """Set entries of the cell's global configuration (``qconf -Mconf``) for the block,
        and put the old values back after it."""
        before = self.run("qconf", "-sconf", "global").stdout
        lines = [line for line in before.splitlines() if line.strip() and not line.startswith("#")]

        def write(values: Mapping[str, str]) -> None:
            path = directory / "global"  # -Mconf names the configuration after the file
            path.write_text("".join(
                f"{line.split()[0]} {values[line.split()[0]]}\n" if line.split()[0] in values else f"{line}\n" for line in lines
            ))
            self.run("qconf", "-Mconf", str(path))

        old = {line.split()[0]: line.split(None, 1)[1] for line in lines if line.split()[0] in settings}
        missing = set(settings) - set(old)
        assert not missing, f"not in the global configuration: {sorted(missing)}"
        directory.mkdir(parents=True, exist_ok=True)
        write(settings)
        try:
            yield
        finally:
            write(old)

    def delete_and_wait(self, jobs: list[str], timeout: float = 60.0) -> None:
        """``qdel`` jobs (gone ones are fine) and wait until qstat lists none of them."""
        if not jobs:
            return
        self.run("qdel", *jobs, check=False)
        wait_for(lambda: not set(self.jobs()) & set(jobs), timeout=timeout, what=f"jobs {jobs} to leave qstat")


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


def make_calls(code: str, n: int, **kw: Any) -> list[WorkerCall]:
    """:func:`pycrew.testing.scheduler_calls.make_calls` for the ``sge`` launcher."""
    return scheduler_calls.make_calls(code, n, launcher="sge", **kw)


def launcher_info(options: SgeOptions, calls: list[WorkerCall]) -> LauncherInfo:
    """The ``launcher`` argument core would pass for these calls."""
    return scheduler_calls.launcher_info(options, calls)
