"""The slurm launcher's pycrew_worker_logs hook against a real SLURM cluster: the job's output file.

Skipped (by the ``slurm_cluster`` fixture) when no cluster runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from slurm_helpers import SlurmCluster, launcher_info, make_calls, wait_for

import pycrew
from pycrew_slurm import SlurmOptions
from pycrew_slurm.plugin import plugin

pytestmark = pytest.mark.usefixtures("slurm_cluster")

PRINT_AND_SLEEP = "import sys, time; print('slurm line 1'); print('slurm line 2', file=sys.stderr, flush=True); time.sleep(3)"


def pycrew_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The ``pycrew`` command installed beside this interpreter (the public CLI), run with ``args``."""
    command = Path(sys.executable).with_name("pycrew")
    return subprocess.run([str(command), *args], capture_output=True, text=True, timeout=120)


def test_logs_read_the_job_s_output_file_while_queued_and_after_it_ended(
    slurm_cluster: SlurmCluster, slurm_jobs: list[str], tmp_path: Path
) -> None:
    options = SlurmOptions(directory=str(tmp_path / "private"), seconds_time=300, seconds_poll=0)
    calls = make_calls(PRINT_AND_SLEEP, 1)
    info = launcher_info(options, calls)
    [handle] = plugin.pycrew_launch_workers(launcher=info, calls=calls)
    slurm_jobs.append(handle)

    def output() -> str:
        try:
            return plugin.pycrew_worker_logs(launcher=info, handle=handle, lines=None) or ""
        except pycrew.LogsUnavailableError:  # not started yet: no file
            return ""

    text = wait_for(lambda: "slurm line 2" in output() and output(), timeout=60, what="the job's output file")
    assert "slurm line 1\n" in text and "slurm line 2\n" in text, text
    assert plugin.pycrew_worker_logs(launcher=info, handle=handle, lines=1) == text.splitlines(keepends=True)[-1]
    # after the job left squeue, the file is found by the log_output pattern
    wait_for(lambda: handle not in {w.handle for w in plugin.pycrew_list_workers(launcher=info, controller_id=None)},
             timeout=60, what="the job to leave squeue")
    assert plugin.pycrew_worker_logs(launcher=info, handle=handle, lines=None) == text


def test_cli_monitor_logs_reads_a_job_that_left_squeue(
    slurm_cluster: SlurmCluster, slurm_jobs: list[str], tmp_path: Path
) -> None:
    directory = str(tmp_path / "private")
    options = SlurmOptions(directory=directory, seconds_time=300, seconds_poll=0)
    calls = make_calls("print('slurm line 1', flush=True)", 1)
    info = launcher_info(options, calls)
    [handle] = plugin.pycrew_launch_workers(launcher=info, calls=calls)
    slurm_jobs.append(handle)
    wait_for(lambda: handle not in {w.handle for w in plugin.pycrew_list_workers(launcher=info, controller_id=None)},
             timeout=60, what="the job to run and leave squeue")
    assert handle not in {w.id for w in pycrew.Monitor("slurm", directory=directory).list(ended=True)}
    result = pycrew_cli("monitor", "slurm", "logs", handle, "-o", f"directory={directory}")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "slurm line 1\n", result.stdout
    unknown = pycrew_cli("monitor", "slurm", "logs", "999999_1", "-o", f"directory={directory}")
    assert unknown.returncode == 1, unknown.stderr
    assert "no worker with id '999999_1' on launcher 'slurm' (listed: " in unknown.stderr, unknown.stderr
    assert "no longer in squeue and no file(s) match its output pattern" in unknown.stderr, unknown.stderr


def test_logs_of_a_job_without_output_file_say_where_they_looked(tmp_path: Path) -> None:
    info = pycrew.LauncherInfo("slurm", SlurmOptions(directory=str(tmp_path / "private"), seconds_poll=0))
    with pytest.raises(pycrew.LogsUnavailableError, match="no longer in squeue and no file\\(s\\) match its output pattern"):
        plugin.pycrew_worker_logs(launcher=info, handle="999999_1", lines=10)
    with pytest.raises(pycrew.LogsUnavailableError, match="needs \"<job id>_<index>\""):
        plugin.pycrew_worker_logs(launcher=info, handle="not-a-job", lines=10)
