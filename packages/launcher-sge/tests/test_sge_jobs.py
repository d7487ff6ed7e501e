"""The hooks against a real Son of Grid Engine (the ``sge_cluster`` fixture): launch, secret,
terminate, monitor, directives."""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import stat
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sge_helpers import RECORD_AND_SLEEP, WHO_AM_I, SgeCluster, launcher_info, make_calls, wait_for

from pycrew.scheduler import SchedulerError
from pycrew_sge import SgeOptions
from pycrew_sge.plugin import plugin

pytestmark = pytest.mark.usefixtures("sge_cluster")
log = logging.getLogger(__name__)


def options_for(tmp_path: Path, **kw: Any) -> SgeOptions:
    """Options with a private directory under the test's tmp dir and a short run-time limit."""
    return SgeOptions(**{"directory": str(tmp_path / "private"), "walltime": "00:05:00", "seconds_poll": 0, **kw})


def states(cluster: SgeCluster, job: str) -> list[str]:
    return cluster.jobs().get(job, [])


def test_array_of_three_runs_each_task_with_its_own_token(sge_cluster: SgeCluster, sge_jobs: list[str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    calls = make_calls(RECORD_AND_SLEEP, 3, env={"OUT": str(out), "SLEEP": "60"})
    options = options_for(tmp_path)
    info = launcher_info(options, calls)
    started = time.monotonic()
    handles = plugin.pycrew_launch_workers(launcher=info, calls=calls)
    sge_jobs.extend(handles)
    job = handles[0].split(".")[0]
    assert handles == [f"{job}.1", f"{job}.2", f"{job}.3"], "one array, handles in call order"
    wait_for(lambda: len(list(out.iterdir())) == 3, timeout=30, what="3 tasks to start")
    log.info("qsub to 3 running tasks: %.2f s", time.monotonic() - started)
    for index, call in enumerate(calls, start=1):
        token, names = (out / call.instance).read_text().split("\n")
        assert token == call.token, f"task {index} derived another token than core authorized"
        assert names == "PYCREW_TOKEN", f"task {index} sees other token variables: {names}"
    private = tmp_path / "private"
    assert list((private / "scripts").iterdir()) == [], "job scripts must be gone after submission"
    assert stat.S_IMODE(os.stat(private).st_mode) == 0o700
    [key] = list((private / "keys").iterdir())
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600, "the array's secret file is the user's alone"


def test_the_secret_is_nowhere_sge_shows_it(sge_cluster: SgeCluster, sge_jobs: list[str], tmp_path: Path) -> None:
    """qstat -j shows a job's environment to every user: the secret must not be in it."""

    def shown(secret_file: bool) -> tuple[list[str], str]:
        calls = make_calls("import time; time.sleep(60)", 2)
        info = launcher_info(options_for(tmp_path, submit_args=("-h",), secret_file=secret_file), calls)
        handles = plugin.pycrew_launch_workers(launcher=info, calls=calls)
        sge_jobs.extend(handles)
        job = handles[0].split(".")[0]
        text = sge_cluster.run("qstat", "-j", job).stdout + sge_cluster.run("qstat", "-xml", "-j", job).stdout
        return [calls[0].batch_key, *(c.token for c in calls)], text

    secrets_, text = shown(secret_file=True)
    assert "pycrew_tag=pycrew:1;" in text, "the details are the job's"
    for secret in secrets_:
        assert secret not in text, "a secret leaked into qstat -j (readable by every user of the cluster)"
    # The check can fail: passed through the environment, the batch key is there for all to read.
    secrets_, text = shown(secret_file=False)
    assert f"PYCREW_TOKEN={secrets_[0]}" in text


def test_key_file_goes_once_its_array_left_the_queue(sge_cluster: SgeCluster, sge_jobs: list[str], tmp_path: Path) -> None:
    calls = make_calls("import time; time.sleep(60)", 2)
    options = options_for(tmp_path)
    info = launcher_info(options, calls)
    handles = plugin.pycrew_launch_workers(launcher=info, calls=calls)
    sge_jobs.extend(handles)
    keys = tmp_path / "private" / "keys"
    plugin.pycrew_list_workers(launcher=info, controller_id=None)
    assert len(list(keys.iterdir())) == 1, "kept while the array is in the queue"
    plugin.pycrew_terminate_workers(launcher=info, handles=handles)
    wait_for(lambda: not [w for w in plugin.pycrew_list_workers(launcher=info, controller_id=calls[0].controller_id) if not w.ended],
             timeout=30, what="the array to leave the queue")
    plugin.pycrew_list_workers(launcher=info, controller_id=None)
    assert list(keys.iterdir()) == [], "the listing after the array left removes its secret"


def test_key_file_goes_when_its_tasks_are_cancelled_without_a_later_listing(
    sge_cluster: SgeCluster, sge_jobs: list[str], tmp_path: Path
) -> None:
    """A terminated controller lists the queue no more: on 33e082d its arrays' key files
    stayed on disk until some later process listed the queue."""
    calls = make_calls("import time; time.sleep(60)", 2)
    info = launcher_info(options_for(tmp_path), calls)
    handles = plugin.pycrew_launch_workers(launcher=info, calls=calls)
    sge_jobs.extend(handles)
    keys = tmp_path / "private" / "keys"
    assert len(list(keys.iterdir())) == 1
    plugin.pycrew_terminate_workers(launcher=info, handles=handles)
    assert list(keys.iterdir()) == [], "the array's secret outlived the cancel of all its tasks"


def test_export_environment_false_still_hands_over_the_token(sge_cluster: SgeCluster, sge_jobs: list[str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    marker = f"PYCREW_TEST_MARKER_{secrets.token_hex(4)}"
    code = WHO_AM_I + f"open({str(out)!r} + '/seen', 'w').write(token + '|' + str('{marker}' in os.environ))"
    for secret_file in (True, False):
        calls = make_calls(code, 1)
        info = launcher_info(options_for(tmp_path, export_environment=False, secret_file=secret_file), calls)
        os.environ[marker] = "1"
        try:
            handles = plugin.pycrew_launch_workers(launcher=info, calls=calls)
        finally:
            del os.environ[marker]
        sge_jobs.extend(handles)
        seen = wait_for(lambda: (out / "seen").exists() and (out / "seen").read_text(), timeout=30, what="the job to run")
        assert seen == f"{calls[0].token}|False", f"with export_environment=False only the secret crosses over ({secret_file=})"
        (out / "seen").unlink()


def test_monitor_lists_only_pycrews_tasks_and_terminate_spares_the_rest(
    sge_cluster: SgeCluster, sge_jobs: list[str], tmp_path: Path
) -> None:
    other = sge_cluster.run(
        "qsub", "-terse", "-N", "pycrew-lookalike", "-t", "1-2", "-ac", "pycrew_tag=pycrew:1;c=nope", "-o", "/dev/null",
        "-j", "y", "-b", "y", "sleep", "300",
    ).stdout.strip().split(".")[0]
    sge_jobs.append(other)
    # (a task SGE has sent to its host shows "t" until the execd answers: slow under load)
    wait_for(lambda: states(sge_cluster, other) == ["r", "r"], timeout=60, what="the look-alike job to run")
    calls = make_calls("import time; time.sleep(120)", 3, controller="watched")
    info = launcher_info(options_for(tmp_path), calls)
    handles = plugin.pycrew_launch_workers(launcher=info, calls=calls)
    sge_jobs.extend(handles)

    def running() -> list[Any]:
        listed = plugin.pycrew_list_workers(launcher=info, controller_id=calls[0].controller_id)
        return listed if len(listed) == 3 and all(w.status == "running" for w in listed) else []

    listed = sorted(wait_for(running, timeout=30, what="3 running workers"), key=lambda w: w.worker)
    assert [(w.handle, w.instance, w.worker, w.controller, w.controller_id) for w in listed] == [
        (h, c.instance, c.worker, "watched", c.controller_id) for h, c in zip(handles, calls, strict=True)
    ]
    host = os.uname().nodename
    assert all(w.host == host and w.state in ("r", "t") and w.started for w in listed), listed
    everything = plugin.pycrew_list_workers(launcher=info, controller_id=None)
    assert not [w for w in everything if w.id.startswith(f"{other}.")], "the look-alike job is not pycrew's"
    plugin.pycrew_terminate_workers(launcher=info, handles=[handles[0], handles[2]])
    wait_for(lambda: [w.handle for w in plugin.pycrew_list_workers(launcher=info, controller_id=calls[0].controller_id)
                      if not w.ended] == [handles[1]], timeout=30, what="tasks 1 and 3 to go")
    assert states(sge_cluster, other) == ["r", "r"], "terminate never touches other jobs"


def test_terminate_reaches_pending_tasks_and_is_silent_about_gone_ones(
    sge_cluster: SgeCluster, sge_jobs: list[str], tmp_path: Path
) -> None:
    calls = make_calls("import time; time.sleep(60)", 4)
    info = launcher_info(options_for(tmp_path, submit_args=("-h",)), calls)
    handles = plugin.pycrew_launch_workers(launcher=info, calls=calls)
    sge_jobs.extend(handles)
    job = handles[0].split(".")[0]
    assert states(sge_cluster, job) == ["hqw"]
    plugin.pycrew_terminate_workers(launcher=info, handles=handles[1:3])
    listed = {w.handle: w for w in plugin.pycrew_list_workers(launcher=info, controller_id=None)}
    assert {h for h, w in listed.items() if not w.ended} == {handles[0], handles[3]}
    assert all(listed[h].status == "done" for h in handles[1:3] if h in listed), "deleted tasks are listed as ended"
    # again, with some gone and some not: no error
    plugin.pycrew_terminate_workers(launcher=info, handles=handles)
    plugin.pycrew_terminate_workers(launcher=info, handles=handles)
    assert states(sge_cluster, job) == []


def test_a_task_in_error_state_is_reported_failed_with_sges_reason(
    sge_cluster: SgeCluster, sge_jobs: list[str], tmp_path: Path
) -> None:
    calls = make_calls("pass", 1)
    # a directory this host cannot create: the execution host cannot open the output file
    info = launcher_info(options_for(tmp_path, log_output="/proc/no/such/dir/out.log"), calls)
    handles = plugin.pycrew_launch_workers(launcher=info, calls=calls)
    sge_jobs.extend(handles)

    def failed() -> list[Any]:
        return [w for w in plugin.pycrew_list_workers(launcher=info, controller_id=None) if w.status == "failed"]

    [worker] = wait_for(failed, timeout=30, what="the task to go into error state")
    assert worker.state == "Eqw" and worker.ended and worker.instance == calls[0].instance
    assert worker.queued and worker.held, "an Eqw task stays in the queue: the monitor lists it with the live ones"
    assert "can't open output file" in worker.reason and "/proc/no/such/dir/out.log" in worker.reason, worker.reason


def test_submission_error_names_qsub_and_its_message(sge_cluster: SgeCluster, tmp_path: Path) -> None:
    calls = make_calls("pass", 1)
    info = launcher_info(options_for(tmp_path, queue="nosuch.q"), calls)
    with pytest.raises(SchedulerError, match=r'qsub.*unknown queue "nosuch\.q"') as error:
        plugin.pycrew_launch_workers(launcher=info, calls=calls)
    assert not error.value.transient
    assert list((tmp_path / "private" / "keys").iterdir()) == [], "a refused array leaves no secret behind"


def test_directives_reach_sge(sge_cluster: SgeCluster, sge_jobs: list[str], tmp_path: Path) -> None:
    calls = make_calls("pass", 2)
    options = options_for(
        tmp_path, submit_args=("-h",), queue="all.q", cpus=2, memory="3G", walltime="01:30:00", account="acct-1",
        resources=("arch=*",), script_directives=("#$ -p -5", "#$ -S /bin/bash"),
    )
    handles = plugin.pycrew_launch_workers(launcher=launcher_info(options, calls), calls=calls)
    sge_jobs.extend(handles)
    shown = sge_cluster.run("qstat", "-j", handles[0].split(".")[0]).stdout
    fields = dict((k.strip(), v.strip()) for k, _, v in (line.partition(":") for line in shown.splitlines()) if v)
    assert fields["account"] == "acct-1" and fields["job-array tasks"] == "1-2:1"
    assert fields["hard_queue_list"] == "all.q" and fields["priority"] == "-5"
    assert fields["parallel environment"].startswith("smp range: 2"), fields["parallel environment"]
    resources = fields["hard resource_list"]
    for request in ("h_vmem=1536M", "h_rt=5400", "arch=*"):
        assert request in resources, f"{request} not in {resources}"
    assert fields["job_name"] == "pycrew-test-controller" and fields["shell_list"] == "NONE:/bin/bash"
    assert fields["cwd"] == os.getcwd()


def test_a_batch_whose_tag_is_too_long_goes_out_as_several_arrays(
    sge_cluster: SgeCluster, sge_jobs: list[str], tmp_path: Path
) -> None:
    # slots 1, 3, 5, ...: no ranges, so the tag grows with every worker
    calls = make_calls("import time; time.sleep(60)", 1)
    batch = make_calls("import time; time.sleep(60)", 900, controller_id=calls[0].controller_id)
    calls = [c.with_command(dataclasses.replace(c.command, worker=2 * k + 1)) for k, c in enumerate(batch)]
    info = launcher_info(options_for(tmp_path, submit_args=("-h",)), calls)
    handles = plugin.pycrew_launch_workers(launcher=info, calls=calls)
    sge_jobs.extend(handles)
    jobs = sorted({h.split(".")[0] for h in handles}, key=int)
    assert len(jobs) == 2, f"the tag of 900 scattered slots exceeds {plugin.create_client(plugin.options_of(info)).tag_max} characters"
    listed = {w.handle: w for w in plugin.pycrew_list_workers(launcher=info, controller_id=calls[0].controller_id)}
    assert [(listed[h].worker, listed[h].instance) for h in handles] == [(c.worker, c.instance) for c in calls]


def test_site_array_limit_is_the_cells_max_aj_tasks(sge_cluster: SgeCluster, tmp_path: Path) -> None:
    shown = sge_cluster.run("qconf", "-sconf").stdout
    expected = next(int(line.split()[1]) for line in shown.splitlines() if line.startswith("max_aj_tasks"))
    assert plugin.create_client(options_for(tmp_path)).site_array_max() == expected


def test_missing_sge_client_is_reported(tmp_path: Path) -> None:
    calls = make_calls("pass", 1)
    info = launcher_info(options_for(tmp_path, bin_directory=str(tmp_path / "nothing-here")), calls)
    with pytest.raises(SchedulerError, match="not found: is the sge client installed and in bin_directory="):
        plugin.pycrew_launch_workers(launcher=info, calls=calls)


def test_python_option_is_the_interpreter_the_tasks_run(sge_cluster: SgeCluster, sge_jobs: list[str], tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    calls = make_calls(f"import sys; open({str(out)!r} + '/python', 'w').write(sys.executable)", 1)
    link = tmp_path / "python-link"
    link.symlink_to(sys.executable)
    info = launcher_info(options_for(tmp_path, python=str(link)), calls)
    sge_jobs.extend(plugin.pycrew_launch_workers(launcher=info, calls=calls))
    assert wait_for(lambda: (out / "python").exists() and (out / "python").read_text(), timeout=30) == str(link)
