"""A qmaster outage while submitting, listing or deleting: retried, and never a job twice.

The SGE commands are the real ones, reached through ``bin_directory``: a wrapper per
command runs the real client, except that a faulty one fails some calls the way SGE 8.1.9
fails them with its qmaster down (the text captured in ``tests/data/no_qmaster_*.json``).
"""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path
from typing import Any

import pytest
from sge_helpers import SgeCluster, launcher_info, make_calls, wait_for

from pycrew.scheduler import SchedulerError
from pycrew_sge import SgeOptions
from pycrew_sge.plugin import plugin

pytestmark = pytest.mark.usefixtures("sge_cluster")
DATA = Path(__file__).parent / "data"
COMMANDS = ("qsub", "qstat", "qdel", "qconf")


def outage(command: str) -> dict[str, Any]:
    """What ``command`` printed, and its exit status, with the qmaster down (captured)."""
    run: dict[str, Any] = json.loads((DATA / f"no_qmaster_{command}.json").read_text())
    return run


class Wrappers:
    """A ``bin_directory`` whose commands run the real SGE clients, some of them faulty."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir()
        for command in COMMANDS:
            self.write(command, f'exec {shlex.quote(self.real(command))} "$@"')

    @staticmethod
    def real(command: str) -> str:
        path = shutil.which(command)
        assert path, f"{command} is not on PATH"
        return path

    def write(self, command: str, body: str) -> None:
        log = self.directory / f"{command}.calls"
        script = self.directory / command
        script.write_text(f'#!/bin/bash\necho "$*" >> {shlex.quote(str(log))}\n{body}\n')
        script.chmod(0o755)

    def fail(self, command: str, times: int, before: bool = True, when: str = "") -> None:
        """The first ``times`` calls (whose arguments contain ``when``) fail as with the qmaster
        down; ``before=False`` runs the real command first, so that only its reply is lost."""
        run = outage("qstat_j" if command == "qstat" else command)
        counter = self.directory / f"{command}.failures"
        real = f'{shlex.quote(self.real(command))} "$@" >/dev/null 2>&1'
        body = f"""
n=$(cat {shlex.quote(str(counter))} 2>/dev/null || echo 0)
if [ "$n" -lt {times} ] && [[ "$*" == *{shlex.quote(when)}* ]]; then
    echo $((n + 1)) > {shlex.quote(str(counter))}
    {"" if before else real}
    printf %s {shlex.quote(run["stdout"])}
    printf %s {shlex.quote(run["stderr"])} >&2
    exit {run["returncode"]}
fi
exec {shlex.quote(self.real(command))} "$@"
"""
        self.write(command, body)

    def calls(self, command: str) -> list[str]:
        log = self.directory / f"{command}.calls"
        return log.read_text().splitlines() if log.exists() else []


@pytest.fixture
def wrappers(tmp_path: Path) -> Wrappers:
    return Wrappers(tmp_path / "bin")


def options_for(tmp_path: Path, wrappers: Wrappers, **kw: Any) -> SgeOptions:
    return SgeOptions(**{
        "directory": str(tmp_path / "private"), "walltime": "00:05:00", "seconds_poll": 0,
        "bin_directory": str(wrappers.directory), "seconds_retry_max": 0.2, "submit_args": ("-h",), **kw,
    })


def jobs_tagged(cluster: SgeCluster, controller_id: str) -> list[str]:
    """The jobs in the queue whose context names ``controller_id``."""
    names = cluster.job_names()
    ours = [j for j, n in names.items() if n.startswith("pycrew")]
    if not ours:
        return []
    shown = cluster.run("qstat", "-j", ",".join(ours), check=False).stdout
    found, job = [], ""
    for line in shown.splitlines():
        if line.startswith("job_number:"):
            job = line.split()[1]
        if line.startswith("context:") and f"c={controller_id};" in line:
            found.append(job)
    return found


def test_a_submit_refused_by_a_down_qmaster_is_retried_and_submitted_once(
    sge_cluster: SgeCluster, sge_jobs: list[str], tmp_path: Path, wrappers: Wrappers
) -> None:
    wrappers.fail("qsub", times=1)
    calls = make_calls("pass", 2)
    info = launcher_info(options_for(tmp_path, wrappers), calls)
    handles = plugin.pycrew_launch_workers(launcher=info, calls=calls)
    sge_jobs.extend(handles)
    client = plugin.client(plugin.options_of(info))
    assert len(wrappers.calls("qsub")) == 2, "one refused try, one that went through"
    assert client.submissions == 2 and client.found_by_tag == 0
    assert jobs_tagged(sge_cluster, calls[0].controller_id) == [handles[0].split(".")[0]], "exactly one job"
    assert wrappers.calls("qstat"), "before trying again the queue was searched for the tag"


def test_a_submit_whose_reply_was_lost_is_found_by_its_tag_not_submitted_again(
    sge_cluster: SgeCluster, sge_jobs: list[str], tmp_path: Path, wrappers: Wrappers
) -> None:
    wrappers.fail("qsub", times=1, before=False)
    calls = make_calls("pass", 3)
    info = launcher_info(options_for(tmp_path, wrappers), calls)
    handles = plugin.pycrew_launch_workers(launcher=info, calls=calls)
    sge_jobs.extend(handles)
    client = plugin.client(plugin.options_of(info))
    assert len(wrappers.calls("qsub")) == 1, "the job was taken: qsub must not run again"
    assert client.found_by_tag == 1
    [job] = jobs_tagged(sge_cluster, calls[0].controller_id)
    assert handles == [f"{job}.1", f"{job}.2", f"{job}.3"]
    listed = plugin.pycrew_list_workers(launcher=info, controller_id=calls[0].controller_id)
    assert sorted((w.handle, w.instance) for w in listed) == sorted(zip(handles, (c.instance for c in calls), strict=True))


def test_a_qsub_that_hangs_after_submitting_is_found_by_its_tag(
    sge_cluster: SgeCluster, sge_jobs: list[str], tmp_path: Path, wrappers: Wrappers
) -> None:
    wrappers.write("qsub", f'{shlex.quote(Wrappers.real("qsub"))} "$@"\nexec sleep 30')
    calls = make_calls("pass", 1)
    info = launcher_info(options_for(tmp_path, wrappers, seconds_command_timeout=3), calls)
    handles = plugin.pycrew_launch_workers(launcher=info, calls=calls)
    sge_jobs.extend(handles)
    assert len(wrappers.calls("qsub")) == 1
    assert jobs_tagged(sge_cluster, calls[0].controller_id) == [handles[0].split(".")[0]]


def test_the_listing_survives_a_qmaster_outage_that_qstat_j_reports_with_exit_status_0(
    sge_cluster: SgeCluster, sge_jobs: list[str], tmp_path: Path, wrappers: Wrappers
) -> None:
    calls = make_calls("pass", 2)
    info = launcher_info(options_for(tmp_path, wrappers), calls)
    handles = plugin.pycrew_launch_workers(launcher=info, calls=calls)
    sge_jobs.extend(handles)
    wrappers.fail("qstat", times=1, when="-j")
    client = plugin.client(plugin.options_of(info))
    retries = client.retries
    listed = plugin.pycrew_list_workers(launcher=info, controller_id=calls[0].controller_id)
    assert sorted(w.handle for w in listed) == handles and all(w.instance for w in listed), listed
    assert client.retries == retries + 1
    assert len([c for c in wrappers.calls("qstat") if "-j" in c]) == 2


def test_qdel_refused_by_a_down_qmaster_is_retried(
    sge_cluster: SgeCluster, sge_jobs: list[str], tmp_path: Path, wrappers: Wrappers
) -> None:
    calls = make_calls("pass", 2)
    info = launcher_info(options_for(tmp_path, wrappers), calls)
    handles = plugin.pycrew_launch_workers(launcher=info, calls=calls)
    sge_jobs.extend(handles)
    wrappers.fail("qdel", times=2)
    plugin.pycrew_terminate_workers(launcher=info, handles=handles)
    assert len(wrappers.calls("qdel")) == 3
    wait_for(lambda: all(w.ended for w in plugin.pycrew_list_workers(launcher=info, controller_id=None)), timeout=30,
             what="the tasks to go")


def test_a_lasting_outage_fails_the_launch_and_then_opens_the_circuit_breaker(
    sge_cluster: SgeCluster, tmp_path: Path, wrappers: Wrappers
) -> None:
    wrappers.fail("qsub", times=1000)
    calls = make_calls("pass", 1)
    info = launcher_info(options_for(tmp_path, wrappers, command_attempts=2, submit_failures_max=2), calls)
    for _ in range(2):
        with pytest.raises(SchedulerError, match="unable to send message to qmaster") as error:
            plugin.pycrew_launch_workers(launcher=info, calls=calls)
        assert error.value.transient
    tries = len(wrappers.calls("qsub"))
    assert tries == 4, "command_attempts tries per launch"
    with pytest.raises(SchedulerError, match="2 launches in a row failed, so pycrew stops submitting"):
        plugin.pycrew_launch_workers(launcher=info, calls=calls)
    assert len(wrappers.calls("qsub")) == tries, "an open breaker submits nothing"
    assert list((tmp_path / "private" / "keys").iterdir()) == [], "failed submits leave no secret behind"
