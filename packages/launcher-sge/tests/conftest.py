"""Fixtures for pycrew-sge's tests: a real Son of Grid Engine cell and job clean-up.

``sge_cluster`` (session) finds a cell in this order:

1. ``SGE_ROOT`` is set and ``qstat`` answers: use it, never stop it.
2. A cell of ``scripts/sge/start.sh`` is running (its ``$PYCREW_SGE_DIR/env.sh``, default
   ``/tmp/pycrew-sge/env.sh``, exists and ``qstat`` answers with it): use it, never stop it.
3. SGE is installed and we are root: start it with ``scripts/sge/start.sh`` and stop it
   with ``scripts/sge/stop.sh`` at the end.

Otherwise the tests that need it are skipped with the reason, unless ``CI=true``: in CI a
missing cell is a failure, not a skip.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sge_helpers import SgeCluster, wait_for

REPO = Path(__file__).resolve().parents[3]
SCRIPTS = REPO / "scripts" / "sge"
STATE_DIR = Path(os.environ.get("PYCREW_SGE_DIR", "/tmp/pycrew-sge"))


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"SGE is required in CI (CI=true) but {reason}", pytrace=False)
    pytest.skip(f'no SGE cluster: {reason}; run scripts/sge/install.sh and eval "$(scripts/sge/start.sh)"')


def _exports(text: str) -> dict[str, str]:
    """The variables of ``export A=1 B=2`` lines (what start.sh prints and env.sh holds)."""
    found: dict[str, str] = {}
    for line in text.splitlines():
        words = shlex.split(line, comments=True)
        if words[:1] == ["export"]:
            for word in words[1:]:
                name, sep, value = word.partition("=")
                if sep:
                    found[name] = value
    return found


def _answers(env: dict[str, str]) -> bool:
    try:
        proc = subprocess.run(
            ["qstat", "-u", "*"], capture_output=True, text=True, timeout=30, check=False, env={**os.environ, **env}
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


@pytest.fixture(scope="session")
def sge_cluster() -> Iterator[SgeCluster]:
    """A running SGE cell for this session (see the module docstring)."""
    if shutil.which("qstat") is None:
        _unavailable("qstat is not on PATH (run scripts/sge/install.sh)")
    if os.environ.get("SGE_ROOT"):
        if not _answers({}):
            _unavailable(f"SGE_ROOT={os.environ['SGE_ROOT']} is set but 'qstat' does not reach its qmaster")
        yield SgeCluster({k: v for k, v in os.environ.items() if k.startswith("SGE_")}, started_here=False)
        return
    env_file = STATE_DIR / "env.sh"
    if env_file.is_file():
        env = _exports(env_file.read_text())
        if env and _answers(env):
            with pytest.MonkeyPatch.context() as mp:
                for name, value in env.items():
                    mp.setenv(name, value)
                yield SgeCluster(env, started_here=False)
            return
    if not (SCRIPTS / "start.sh").is_file() or shutil.which("sge_qmaster", path="/usr/sbin:/usr/bin") is None:
        _unavailable("SGE is installed only partly (no sge_qmaster); run scripts/sge/install.sh")
    if os.geteuid() != 0:
        _unavailable("SGE is installed but no cell runs, and only root can start one (scripts/sge/start.sh)")
    try:
        start = subprocess.run([str(SCRIPTS / "start.sh")], capture_output=True, text=True, timeout=180, check=False)
        if start.returncode != 0:
            _unavailable(f"scripts/sge/start.sh failed: {start.stderr.strip()}")
        env = _exports(start.stdout)
        with pytest.MonkeyPatch.context() as mp:
            for name, value in env.items():
                mp.setenv(name, value)
            yield SgeCluster(env, started_here=True)
    finally:
        stop = subprocess.run([str(SCRIPTS / "stop.sh")], capture_output=True, text=True, timeout=180, check=False)
        if stop.returncode != 0:
            print(f"scripts/sge/stop.sh failed: {stop.stderr}")  # shown in the pytest report


@pytest.fixture
def sge_jobs(sge_cluster: SgeCluster) -> Iterator[list[str]]:
    """A list a test appends job ids or handles to: all are deleted, and waited for, at the end."""
    jobs: list[str] = []
    yield jobs
    arrays = sorted({j.split(".")[0] for j in jobs}, key=int)
    if arrays:
        sge_cluster.run("qdel", *arrays, check=False)
        wait_for(lambda: not set(sge_cluster.jobs()) & set(arrays), timeout=60, what=f"jobs {arrays} to leave qstat")
