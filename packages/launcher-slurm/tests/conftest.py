"""Fixtures for pycrew-slurm's tests: a real single-node SLURM cluster and job clean-up.

``slurm_cluster`` (session) finds a cluster in this order:

1. ``SLURM_CONF`` is set and ``scontrol ping`` answers: use it, never stop it.
2. A cluster of ``scripts/slurm/start.sh`` is running in ``$PYCREW_SLURM_DIR`` (default
   ``/tmp/pycrew-slurm``): use it, never stop it.
3. SLURM is installed and we are root: start one with ``scripts/slurm/start.sh`` in a
   fresh state directory and stop it with ``scripts/slurm/stop.sh`` at the end.

Otherwise the tests that need it are skipped with the reason, unless ``CI=true``: in CI a
missing cluster is a failure, not a skip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from slurm_helpers import SlurmCluster, wait_for

REPO = Path(__file__).resolve().parents[3]
SCRIPTS = REPO / "scripts" / "slurm"
DEFAULT_STATE = Path(os.environ.get("PYCREW_SLURM_DIR", "/tmp/pycrew-slurm"))


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"SLURM is required in CI (CI=true) but {reason}", pytrace=False)
    pytest.skip(f"no SLURM cluster: {reason}")


def _pings(conf: str) -> bool:
    try:
        proc = subprocess.run(
            ["scontrol", "ping"], capture_output=True, text=True, timeout=10, check=False,
            env={**os.environ, "SLURM_CONF": conf},
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0 and "UP" in proc.stdout


@pytest.fixture(scope="session")
def slurm_cluster() -> Iterator[SlurmCluster]:
    """A running SLURM cluster for this session (see the module docstring)."""
    given = os.environ.get("SLURM_CONF")
    if given:
        if not _pings(given):
            _unavailable(f"SLURM_CONF={given} is set but 'scontrol ping' does not reach its slurmctld")
        yield SlurmCluster(given, started_here=False)
        return
    default_conf = DEFAULT_STATE / "etc" / "slurm.conf"
    if default_conf.exists() and shutil.which("scontrol") and _pings(str(default_conf)):
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("SLURM_CONF", str(default_conf))
            yield SlurmCluster(str(default_conf), started_here=False)
        return
    if not (shutil.which("sbatch") and (shutil.which("slurmctld") or Path("/usr/sbin/slurmctld").exists())):
        _unavailable("SLURM is not installed (run scripts/slurm/install.sh, then scripts/slurm/start.sh)")
    if os.geteuid() != 0:
        _unavailable("SLURM is installed but no cluster runs, and only root can start one (scripts/slurm/start.sh)")
    state = tempfile.mkdtemp(prefix="pycrew-slurm-test-")
    env = {**os.environ, "PYCREW_SLURM_DIR": state}
    conf = str(Path(state) / "etc" / "slurm.conf")
    try:
        start = subprocess.run(
            [str(SCRIPTS / "start.sh")], capture_output=True, text=True, env=env, timeout=120, check=False
        )
        if start.returncode != 0:
            _unavailable(f"scripts/slurm/start.sh failed: {start.stderr.strip()}")
        with pytest.MonkeyPatch.context() as mp:
            mp.setenv("SLURM_CONF", conf)
            yield SlurmCluster(conf, started_here=True)
    finally:
        subprocess.run([str(SCRIPTS / "stop.sh")], capture_output=True, text=True, env=env, timeout=120, check=False)
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def slurm_jobs(slurm_cluster: SlurmCluster) -> Iterator[list[str]]:
    """A list a test appends job ids or handles to: all are cancelled, and waited for, at the end."""
    jobs: list[str] = []
    yield jobs
    if not jobs:
        return
    arrays = sorted({j.split("_")[0] for j in jobs})
    slurm_cluster.run("scancel", *arrays, check=False)

    def gone() -> bool:
        out = slurm_cluster.run("squeue", "--noheader", "--array", "--format=%F", check=False).stdout.split()
        return not set(out) & set(arrays)

    wait_for(gone, timeout=30, what=f"jobs {arrays} to leave the queue")
