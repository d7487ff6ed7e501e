"""The sge launcher's pycrew_worker_logs hook against a real SGE: the task's output file.

Skipped (by the ``sge_cluster`` fixture) when no cell runs.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from sge_helpers import SgeCluster, launcher_info, make_calls, wait_for

import pycrew
from pycrew_sge import SgeOptions
from pycrew_sge.plugin import plugin

pytestmark = pytest.mark.usefixtures("sge_cluster")

PRINT_AND_SLEEP = "import sys, time; print('sge line 1'); print('sge line 2', file=sys.stderr, flush=True); time.sleep(3)"


def pycrew_cli(*args: str) -> subprocess.CompletedProcess[str]:
    """The ``pycrew`` command installed beside this interpreter (the public CLI), run with ``args``."""
    command = Path(sys.executable).with_name("pycrew")
    return subprocess.run([str(command), *args], capture_output=True, text=True, timeout=120)


def test_logs_read_the_task_output_file_while_listed_and_after_it_ended(
    sge_cluster: SgeCluster, sge_jobs: list[str], tmp_path: Path
) -> None:
    options = SgeOptions(directory=str(tmp_path / "private"), walltime="00:05:00", seconds_poll=0)
    calls = make_calls(PRINT_AND_SLEEP, 2)
    info = launcher_info(options, calls)
    handles = plugin.pycrew_launch_workers(launcher=info, calls=calls)
    sge_jobs.extend(handles)
    handle = handles[1]

    def output() -> str:
        try:
            return plugin.pycrew_worker_logs(launcher=info, handle=handle, lines=None) or ""
        except pycrew.LogsUnavailableError:  # not started yet: no file
            return ""

    text = wait_for(lambda: "sge line 2" in output() and output(), timeout=60, what="the task's output file")
    assert "sge line 1\n" in text and "sge line 2\n" in text, text
    listed = {w.handle: w for w in plugin.pycrew_list_workers(launcher=info, controller_id=None)}
    if handle in listed:  # still running: the monitor names the same file
        assert listed[handle].log == str(tmp_path / "private" / "logs" / f"pycrew-test-controller-{handle}.log")
    assert plugin.pycrew_worker_logs(launcher=info, handle=handle, lines=1) == text.splitlines(keepends=True)[-1]
    # after the task left qstat, the file is found by the log_output pattern
    wait_for(lambda: handle not in {w.handle for w in plugin.pycrew_list_workers(launcher=info, controller_id=None) if not w.ended},
             timeout=60, what="the task to leave qstat")
    assert plugin.pycrew_worker_logs(launcher=info, handle=handle, lines=None) == text
    other = plugin.pycrew_worker_logs(launcher=info, handle=handles[0], lines=None)
    assert other is not None and "sge line 1" in other, "each task has its own file"


def test_logs_with_a_log_output_of_ones_own(sge_cluster: SgeCluster, sge_jobs: list[str], tmp_path: Path) -> None:
    pattern = str(tmp_path / "mine" / "w-$JOB_ID-$TASK_ID.txt")
    options = SgeOptions(directory=str(tmp_path / "private"), log_output=pattern, seconds_poll=0)
    calls = make_calls("print('own file')", 1)
    info = launcher_info(options, calls)
    [handle] = plugin.pycrew_launch_workers(launcher=info, calls=calls)
    sge_jobs.append(handle)
    job, task = handle.split(".")
    path = tmp_path / "mine" / f"w-{job}-{task}.txt"
    wait_for(lambda: path.exists() and "own file" in path.read_text(), timeout=60, what=f"{path}")
    wait_for(lambda: all(w.ended for w in plugin.pycrew_list_workers(launcher=info, controller_id=None)), timeout=60,
             what="the job to end")
    assert plugin.pycrew_worker_logs(launcher=info, handle=handle, lines=None) == "own file\n"


def test_cli_monitor_logs_reads_a_task_that_left_qstat(sge_cluster: SgeCluster, sge_jobs: list[str], tmp_path: Path) -> None:
    directory = str(tmp_path / "private")
    options = SgeOptions(directory=directory, walltime="00:05:00", seconds_poll=0)
    calls = make_calls("print('sge line 1', flush=True)", 1)
    info = launcher_info(options, calls)
    [handle] = plugin.pycrew_launch_workers(launcher=info, calls=calls)
    sge_jobs.append(handle)
    wait_for(lambda: handle not in {w.handle for w in plugin.pycrew_list_workers(launcher=info, controller_id=None) if not w.ended},
             timeout=60, what="the task to run and leave qstat")
    assert handle not in {w.id for w in pycrew.Monitor("sge", directory=directory).list(ended=True)}
    result = pycrew_cli("monitor", "sge", "logs", handle, "-o", f"directory={directory}")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "sge line 1\n", result.stdout
    unknown = pycrew_cli("monitor", "sge", "logs", "999999.1", "-o", f"directory={directory}")
    assert unknown.returncode == 1, unknown.stderr
    assert "no worker with id '999999.1' on launcher 'sge' (listed: " in unknown.stderr, unknown.stderr
    assert "no longer in qstat and no file(s) match its output pattern" in unknown.stderr, unknown.stderr


def test_logs_of_a_task_without_output_file_say_where_they_looked(tmp_path: Path) -> None:
    info = pycrew.LauncherInfo("sge", SgeOptions(directory=str(tmp_path / "private"), seconds_poll=0))
    with pytest.raises(pycrew.LogsUnavailableError, match=r"no longer in qstat and no file\(s\) match its output pattern"):
        plugin.pycrew_worker_logs(launcher=info, handle="999999.1", lines=10)
    with pytest.raises(pycrew.LogsUnavailableError, match=r'needs "<job id>\.<task id>"'):
        plugin.pycrew_worker_logs(launcher=info, handle="999999_1", lines=10)
