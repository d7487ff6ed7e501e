"""The hooks against a real SLURM cluster (the ``slurm_cluster`` fixture): launch, token, terminate, monitor."""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import shutil
import stat
import sys
import time
import warnings
from pathlib import Path

import pytest
from slurm_helpers import (
    RECORD_AND_SLEEP,
    WHO_AM_I,
    SlurmCluster,
    launcher_info,
    make_calls,
    wait_for,
)

from pycrew_slurm import SchedulerError, SlurmOptions
from pycrew_slurm.plugin import plugin

pytestmark = pytest.mark.usefixtures("slurm_cluster")


def options_for(tmp_path: Path, **kw: object) -> SlurmOptions:
    """Options with a private directory under the test's tmp dir and a short time limit."""
    return SlurmOptions(directory=str(tmp_path / "private"), seconds_time=300, seconds_poll=0, **kw)  # type: ignore[arg-type]


def states(cluster: SlurmCluster, handles: list[str]) -> dict[str, str]:
    """``handle -> state`` of the elements still in the queue."""
    out = cluster.run("squeue", "--noheader", "--array", "--format=%i|%T", check=False).stdout
    pairs = dict(line.split("|", 1) for line in out.split())
    return {h: pairs[h] for h in handles if h in pairs}


def test_array_of_three_runs_each_element_with_its_own_token(
    slurm_cluster: SlurmCluster, slurm_jobs: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    calls = make_calls(RECORD_AND_SLEEP, 3, env={"OUT": str(out), "SLEEP": "60"})
    options = options_for(tmp_path)
    info = launcher_info(options, calls)
    started = time.monotonic()
    handles = plugin.pycrew_launch_workers(launcher=info, calls=calls)
    slurm_jobs.extend(handles)
    array = handles[0].split("_")[0]
    assert handles == [f"{array}_1", f"{array}_2", f"{array}_3"], "one array, handles in call order"
    wait_for(lambda: len(list(out.iterdir())) == 3, timeout=30, what="3 elements to start")
    logging.getLogger(__name__).info("sbatch to 3 running elements: %.2f s", time.monotonic() - started)
    for index, call in enumerate(calls, start=1):
        token, names = (out / call.instance).read_text().split("\n")
        assert token == call.token, f"element {index} derived another token than core authorized"
        assert names == "PYCREW_TOKEN", f"element {index} sees other token variables: {names}"
    assert list((tmp_path / "private" / "scripts").iterdir()) == [], "job scripts must be gone after submission"
    assert stat.S_IMODE(os.stat(tmp_path / "private").st_mode) == 0o700


def test_token_is_in_no_job_record_nor_script(slurm_cluster: SlurmCluster, slurm_jobs: list[str], tmp_path: Path) -> None:
    calls = make_calls("import time; time.sleep(60)", 2)
    info = launcher_info(options_for(tmp_path, sbatch_args=("--hold",)), calls)
    handles = plugin.pycrew_launch_workers(launcher=info, calls=calls)
    slurm_jobs.extend(handles)
    array = handles[0].split("_")[0]
    shown = slurm_cluster.run("scontrol", "-dd", "show", "job", array).stdout  # -dd includes the batch script
    script = slurm_cluster.run("scontrol", "write", "batch_script", array, "-").stdout
    queue = slurm_cluster.run("squeue", "--noheader", "--array", "--Format=Comment:,Command:,Name:").stdout
    assert "exec " in script and calls[0].instance_prefix in script, "the stored script is the one pycrew wrote"
    for secret in [calls[0].batch_key, *(call.token for call in calls)]:
        for where, text in (("scontrol -dd show job", shown), ("the batch script", script), ("squeue", queue)):
            assert secret not in text, f"a secret leaked into {where}"


def test_monitor_lists_only_pycrews_jobs_and_terminate_spares_the_rest(
    slurm_cluster: SlurmCluster, slurm_jobs: list[str], tmp_path: Path
) -> None:
    foreign = slurm_cluster.run("sbatch", "--parsable", "--output=/dev/null", "--time=5", "--wrap", "sleep 30").stdout.strip()
    lookalike = slurm_cluster.run(
        "sbatch", "--parsable", "--output=/dev/null", "--time=5", "--array=1-2", "--job-name=pycrew-fake",
        "--comment=pycrew but not a tag", "--wrap", "sleep 30",
    ).stdout.strip()
    slurm_jobs.extend([foreign, lookalike])
    ours = make_calls("import time; time.sleep(60)", 2)
    theirs = make_calls("import time; time.sleep(60)", 1, controller="other")
    info = launcher_info(options_for(tmp_path), ours)
    other_info = launcher_info(options_for(tmp_path), theirs)
    handles = plugin.pycrew_launch_workers(launcher=info, calls=ours)
    other_handles = plugin.pycrew_launch_workers(launcher=other_info, calls=theirs)
    slurm_jobs.extend(handles + other_handles)

    mine = plugin.pycrew_list_workers(launcher=info, controller_id=ours[0].controller_id)
    assert sorted(w.handle for w in mine) == handles
    by_handle = {w.handle: w for w in mine}
    for handle, call in zip(handles, ours, strict=True):
        w = by_handle[handle]
        assert (w.instance, w.worker, w.controller_id, w.controller) == (call.instance, call.worker, call.controller_id, "test-controller")
        assert w.launcher == "slurm" and w.state in ("PENDING", "RUNNING", "CONFIGURING"), w
        assert w.started is not None and 0 <= w.age < 120, w  # type: ignore[operator]
        assert w.log and w.log.endswith(f"{handle}.log") and "%" not in w.log, w.log

    everything = plugin.pycrew_list_workers(launcher=info, controller_id=None)
    listed = {w.handle for w in everything}
    assert set(handles + other_handles) <= listed
    assert not any(h.split("_")[0] in (foreign, lookalike) for h in listed), "listed a job that is not pycrew's"

    plugin.pycrew_terminate_workers(launcher=info, handles=[w.handle for w in everything])
    wait_for(lambda: not states(slurm_cluster, handles + other_handles), timeout=30, what="pycrew's jobs to go")
    assert [w for w in plugin.pycrew_list_workers(launcher=info, controller_id=None) if not w.ended] == []
    left = slurm_cluster.run("squeue", "--noheader", "--array", "--format=%F").stdout.split()
    assert foreign in left and lookalike in left, "terminating pycrew's workers touched someone else's job"


def test_terminate_reaches_a_pending_job(slurm_cluster: SlurmCluster, slurm_jobs: list[str], tmp_path: Path) -> None:
    calls = make_calls("import time; time.sleep(60)", 2)
    info = launcher_info(options_for(tmp_path, sbatch_args=("--begin=now+1hour",)), calls)
    handles = plugin.pycrew_launch_workers(launcher=info, calls=calls)
    slurm_jobs.extend(handles)
    assert set(states(slurm_cluster, handles).values()) == {"PENDING"}
    wait_for(
        lambda: {w.reason for w in plugin.pycrew_list_workers(launcher=info, controller_id=calls[0].controller_id)} == {"BeginTime"},
        timeout=20, what="the monitor to report the reason 'BeginTime'",
    )
    plugin.pycrew_terminate_workers(launcher=info, handles=handles[:1])
    wait_for(lambda: list(states(slurm_cluster, handles)) == handles[1:], timeout=20, what="element 1 to leave the queue")


def test_an_element_cancelled_while_its_array_waits_is_confirmed_gone_at_once(
    slurm_cluster: SlurmCluster, slurm_jobs: list[str], tmp_path: Path
) -> None:
    """A pending element scancel'ed from outside leaves no trace in squeue (the array was
    never split): the scheduler layer holds it as suspect (a listing may lose jobs), and
    only asking slurmctld about the array tells it is gone. On b476624 SLURM could not be
    asked: it waited 10 s (and before, seconds_launch) to fail the launch and replace it."""
    from pycrew_slurm.slurm import SlurmCLI

    calls = make_calls("import time; time.sleep(60)", 3)
    options = options_for(tmp_path, sbatch_args=("--begin=now+1hour",))
    handles = plugin.pycrew_launch_workers(launcher=launcher_info(options, calls), calls=calls)
    slurm_jobs.extend(handles)
    assert set(states(slurm_cluster, handles).values()) == {"PENDING"}
    cli = SlurmCLI("slurm", options)
    records = [r for r in cli.list_jobs() if r.id in handles]
    assert len(records) == 3, records
    slurm_cluster.run("scancel", handles[1])
    wait_for(lambda: handles[1] not in states(slurm_cluster, handles), timeout=20, what="the element to leave squeue")
    array_id, index = records[1].array_id, records[1].index
    assert cli.confirm_gone(records) == {(array_id, index)}, "only the cancelled element is gone"
    unknown = dataclasses.replace(records[0], array_id="99999999", id="99999999_1")
    assert cli.confirm_gone([unknown]) == {("99999999", records[0].index)}, "an array slurmctld never held is gone"


def test_terminate_running_then_again_is_silent(
    slurm_cluster: SlurmCluster, slurm_jobs: list[str], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    calls = make_calls("import time; time.sleep(60)", 1)
    info = launcher_info(options_for(tmp_path), calls)
    handles = plugin.pycrew_launch_workers(launcher=info, calls=calls)
    slurm_jobs.extend(handles)
    wait_for(lambda: states(slurm_cluster, handles).get(handles[0]) == "RUNNING", timeout=30, what="the job to run")
    plugin.pycrew_terminate_workers(launcher=info, handles=handles)
    wait_for(lambda: not states(slurm_cluster, handles), timeout=30, what="the job to end")
    caplog.set_level(logging.DEBUG)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        plugin.pycrew_terminate_workers(launcher=info, handles=handles)  # finished
        plugin.pycrew_terminate_workers(launcher=info, handles=handles)  # again
        plugin.pycrew_terminate_workers(launcher=info, handles=["999999_1", "999998"])  # never existed
        plugin.pycrew_terminate_workers(launcher=info, handles=[])
    assert caught == [], [str(w.message) for w in caught]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING], caplog.text


def test_finished_job_is_terminated_silently(slurm_cluster: SlurmCluster, slurm_jobs: list[str], tmp_path: Path, recwarn: pytest.WarningsRecorder) -> None:
    calls = make_calls("pass", 1)
    info = launcher_info(options_for(tmp_path), calls)
    handles = plugin.pycrew_launch_workers(launcher=info, calls=calls)
    slurm_jobs.extend(handles)
    wait_for(lambda: not states(slurm_cluster, handles), timeout=30, what="the job to finish")
    plugin.pycrew_terminate_workers(launcher=info, handles=handles)
    assert len(recwarn) == 0


def test_submission_error_names_sbatch_and_its_message(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    calls = make_calls("pass", 2)
    info = launcher_info(options_for(tmp_path, memory="100000G"), calls)
    with pytest.raises(SchedulerError, match=r"sbatch.*exit status 1.*(memory|Memory)") as caught:
        plugin.pycrew_launch_workers(launcher=info, calls=calls)
    assert "sbatch --parsable" in str(caught.value)
    assert all(call.token not in str(caught.value) for call in calls)
    assert list((tmp_path / "private" / "scripts").iterdir()) == [], "a failed submission must not leave its script"


def test_batch_beyond_array_size_max_goes_out_as_several_arrays(
    slurm_cluster: SlurmCluster, slurm_jobs: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    code = WHO_AM_I + (
        "open(os.path.join(os.environ['OUT'], os.environ['SLURM_ARRAY_JOB_ID'] + '_' + os.environ['SLURM_ARRAY_TASK_ID']),"
        " 'w').write(instance + ' ' + token)"
    )
    calls = make_calls(code, 3, env={"OUT": str(out)})
    info = launcher_info(options_for(tmp_path, array_size_max=2), calls)
    handles = plugin.pycrew_launch_workers(launcher=info, calls=calls)
    slurm_jobs.extend(handles)
    arrays = [h.split("_")[0] for h in handles]
    assert arrays[0] == arrays[1] != arrays[2] and handles[2].endswith("_1"), handles
    wait_for(lambda: len(list(out.iterdir())) == 3, timeout=30, what="3 elements to run")
    for handle, call in zip(handles, calls, strict=True):
        assert (out / handle).read_text() == f"{call.instance} {call.token}", f"{handle} ran as another worker"


def test_export_environment_false_still_hands_over_the_token(
    slurm_cluster: SlurmCluster, slurm_jobs: list[str], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    out.mkdir()
    marker = f"PYCREW_TEST_MARKER_{secrets.token_hex(4)}"
    code = WHO_AM_I + f"open({str(out)!r} + '/seen', 'w').write(token + '|' + str('{marker}' in os.environ))"
    calls = make_calls(code, 1)
    info = launcher_info(options_for(tmp_path, export_environment=False, python=sys.executable), calls)
    env_before = dict(os.environ)
    os.environ[marker] = "1"
    try:
        handles = plugin.pycrew_launch_workers(launcher=info, calls=calls)
    finally:
        os.environ.clear()
        os.environ.update(env_before)
    slurm_jobs.extend(handles)
    seen = wait_for(lambda: (out / "seen").exists() and (out / "seen").read_text(), timeout=30, what="the job to run")
    assert seen == f"{calls[0].token}|False", "with export_environment=False only the secret crosses over"


def test_timed_out_sbatch_is_found_by_its_tag_and_not_submitted_twice(
    slurm_cluster: SlurmCluster, slurm_jobs: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = shutil.which("sbatch")
    assert real
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    calls_file = tmp_path / "sbatch-calls"
    # submits, then hangs past the timeout: the reply is lost, the job exists
    (bin_dir / "sbatch").write_text(f'#!/bin/bash\necho call >> {calls_file}\n{real} "$@"\nexec sleep 30\n')
    (bin_dir / "sbatch").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    calls = make_calls("import time; time.sleep(60)", 2)
    info = launcher_info(options_for(tmp_path, seconds_command_timeout=2), calls)
    handles = plugin.pycrew_launch_workers(launcher=info, calls=calls)
    slurm_jobs.extend(handles)
    assert calls_file.read_text().count("call") == 1, "the job was taken: sbatch must not run again"
    listed = plugin.pycrew_list_workers(launcher=info, controller_id=calls[0].controller_id)
    assert sorted(w.handle for w in listed) == sorted(handles), "exactly the found array, once"
    assert [w.instance for w in sorted(listed, key=lambda w: w.worker or 0)] == [c.instance for c in calls]
    plugin.pycrew_terminate_workers(launcher=info, handles=handles)
    wait_for(
        lambda: not [w for w in plugin.pycrew_list_workers(launcher=info, controller_id=calls[0].controller_id) if not w.ended],
        timeout=20, what="the found array to be cancelled",
    )
