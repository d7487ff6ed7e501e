"""End to end: ``pycrew.controller("slurm", ...)`` runs tasks on workers that SLURM started."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from slurm_helpers import SlurmCluster, wait_for

import pycrew
from pycrew_slurm.plugin import plugin

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("slurm_cluster")]


@pytest.fixture(autouse=True)
def private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the controllers' records out of the real home."""
    monkeypatch.setenv("PYCREW_STATE_DIR", str(tmp_path / "state"))


def slurm_controller(tmp_path: Path, **kw: Any) -> pycrew.Controller:
    """A SLURM controller that listens on loopback (this one-node cluster is this machine)."""
    return pycrew.controller(
        "slurm", host="127.0.0.1", directory=str(tmp_path / "private"), **{"seconds_time": 300, "seconds_launch": 60, **kw}
    )


def ours(controller_id: str) -> list[pycrew.WorkerInfo]:
    info = pycrew.LauncherInfo("slurm", pycrew_slurm_options(), None, None)
    workers = plugin.pycrew_list_workers(launcher=info, controller_id=None)
    return [w for w in workers if w.controller_id == controller_id and w.held]


def pycrew_slurm_options() -> Any:
    from pycrew_slurm import SlurmOptions

    return SlurmOptions(seconds_poll=0)


def test_tasks_run_in_the_slurm_jobs_the_monitor_lists(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    def where() -> tuple[str, int, str]:
        import os
        import socket

        job = f"{os.environ.get('SLURM_ARRAY_JOB_ID')}_{os.environ.get('SLURM_ARRAY_TASK_ID')}"
        return socket.gethostname(), os.getpid(), job

    with slurm_controller(tmp_path, workers=2) as c:
        controller_id = c.id
        results = [f.result(timeout=90) for f in [c.submit(where) for _ in range(6)]]
        listed = {w.handle: w for w in ours(controller_id)}
        assert list(c.map(pow, range(8), [2] * 8, timeout=90)) == [i * i for i in range(8)]
    assert {r[0] for r in results} == {socket.gethostname()}
    for _host, _pid, job in results:  # a worker that runs tasks got its token: it authenticated
        assert job in listed, f"task ran in {job}, which the monitor does not list for this controller: {sorted(listed)}"
        assert listed[job].state == "RUNNING" and listed[job].host == socket.gethostname()
    assert len({r[1] for r in results}) <= 2, "at most 2 workers"
    wait_for(lambda: not ours(controller_id), timeout=30, what="the controller's jobs to leave the queue")


def test_idle_workers_leave_the_queue_and_come_back(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    with slurm_controller(tmp_path, workers=2, seconds_idle=2) as c:
        assert sorted(c.map(abs, range(-4, 0), timeout=90)) == [1, 2, 3, 4]
        wait_for(lambda: not ours(c.id), timeout=30, what="idle workers to exit and leave the queue")
        assert sorted(c.map(abs, range(-8, -4), timeout=90)) == [5, 6, 7, 8]
        controller_id = c.id
    wait_for(lambda: not ours(controller_id), timeout=30, what="the controller's jobs to leave the queue")


def test_workers_leave_before_their_time_limit_and_are_replaced(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    """``seconds_time=20`` (SLURM's ``--time`` counts whole minutes: the job may run 1 minute):
    ``seconds_walltime_margin`` (60 s, at most half the limit) makes each worker leave 10 s
    after its job started (the 3 s its ``script_lines`` take count), once its running task
    ends, and the controller start another for the tasks left; no task is cut by the limit."""

    def nap() -> tuple[int, float]:
        import os
        import time

        time.sleep(0.5)
        return os.getpid(), time.time()

    with slurm_controller(tmp_path, workers=1, seconds_time=20, script_lines=("sleep 3",)) as c:
        done = [f.result(timeout=120) for f in [c.submit(nap) for _ in range(30)]]
        summary = c.summary()
    served: dict[int, list[float]] = {}
    for pid, at in done:
        served.setdefault(pid, []).append(at)
    assert len(served) >= 2, "one worker ran all 15 s of tasks: it did not leave before its time limit"
    longest = max(max(times) - min(times) for times in served.values())
    assert longest < 8.5, f"a worker served {longest:.1f} s: it counted its 10 s from its own start, not its job's"
    assert summary.controller.success == 30 and summary.controller.crash == 0 and summary.controller.retries == 0
    assert summary.workers[0].instances >= 2


def test_tls_certificate_reaches_the_workers_through_the_script(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    with slurm_controller(tmp_path, workers=1, tls="automatic") as c:
        assert c.submit(divmod, 7, 2).result(timeout=90) == (3, 1)


def test_a_cancelled_job_finishes_its_running_task_within_kill_wait(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    """``scancel`` sends SIGTERM, then SIGKILL after ``KillWait`` (5 s on the test cluster):
    the worker finishes its task meanwhile, delivers the result and says goodbye."""
    marker = tmp_path / "started"

    def long_task(path: str) -> str:
        import os
        import pathlib
        import time

        pathlib.Path(path).write_text(f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}")
        time.sleep(2.5)
        return "finished"

    with slurm_controller(tmp_path, workers=1) as c:
        future = c.submit(long_task, str(marker))
        job = wait_for(lambda: marker.exists() and marker.read_text(), timeout=90, what="the task to start")
        slurm_cluster.run("scancel", job)
        assert future.result(timeout=60) == "finished"
        wait_for(lambda: c.summary().workers[0].exit_reason, timeout=30, what="the worker's goodbye")
        s = c.summary()
        assert s.controller.retries == 0 and s.workers[0].crashes == 0, s
        assert "SIGTERM" in s.workers[0].exit_reason, s.workers[0].exit_reason


def test_a_suspended_job_keeps_its_worker_and_finishes_its_task_after_resume(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    """``scontrol suspend`` stops the job's processes (SIGSTOP) while the node stays up: the
    worker sends nothing past its heartbeat timeout, but its machine still acknowledges the
    connection, so the dispatcher keeps it (``seconds_busy_silence``). ``scontrol resume``
    lets the task finish where it ran. Before that, the worker was dropped as dead after
    the timeout and its task ran again in a new job."""
    marker = tmp_path / "started"

    def long_task(path: str) -> tuple[str, int]:
        import os
        import pathlib
        import time

        job = f"{os.environ['SLURM_ARRAY_JOB_ID']}_{os.environ['SLURM_ARRAY_TASK_ID']}"
        pathlib.Path(path).write_text(job)
        time.sleep(1.5)
        return job, os.getpid()

    with slurm_controller(tmp_path, workers=1, seconds_heartbeat=0.25, seconds_heartbeat_timeout=1.5) as c:
        future = c.submit(long_task, str(marker))
        job = wait_for(lambda: marker.exists() and marker.read_text(), timeout=90, what="the task to start")
        suspended = slurm_cluster.run("scontrol", "suspend", job, check=False)
        if suspended.returncode != 0:
            pytest.fail(f"scontrol suspend {job} failed: {suspended.stderr.strip()}")
        try:
            wait_for(
                lambda: "SUSPENDED" in slurm_cluster.run("squeue", "-h", "-o", "%T", "-j", job).stdout, 30,
                what="the job to be suspended",
            )
            time.sleep(4.0)  # past the 1.5 s heartbeat timeout, twice over
            assert not future.done(), "the task of a suspended job resolved while it was suspended"
        finally:
            slurm_cluster.run("scontrol", "resume", job, check=False)
        ran_in, _pid = future.result(timeout=60)
        assert ran_in == job
        s = c.summary()
        assert s.controller.retries == 0 and s.workers[0].crashes == 0 and s.workers[0].instances == 1, s


def test_a_job_that_will_never_start_fails_the_launch_in_seconds(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    """A job array that depends on a job that failed pends for good (DependencyNeverSatisfied).
    On 79d8e0c each launch failed only after seconds_launch (here 60 s, so 120 s in all);
    now the LaunchError comes with SLURM's reason as soon as the monitor sees it."""
    import subprocess

    failed = subprocess.run(
        ["sbatch", "--parsable", "--wrap", "exit 1", "-o", "/dev/null"], capture_output=True, text=True, check=True
    ).stdout.strip().split(";")[0]
    wait_for(
        lambda: failed not in subprocess.run(["squeue", "--noheader", "-o", "%i"], capture_output=True, text=True).stdout,
        timeout=60,
        what="the job to fail",
    )
    c = slurm_controller(tmp_path, workers=1, launch_max=2, sbatch_args=(f"--dependency=afterok:{failed}",))
    try:
        future = c.submit(abs, -1)
        with pytest.raises(pycrew.LaunchError, match="pending for good: DependencyNeverSatisfied"):
            future.result(timeout=45)
        controller_id = c.id
    finally:
        c.terminate()
    wait_for(lambda: not ours(controller_id), timeout=30, what="the controller's jobs to leave the queue")


def test_a_held_job_that_times_out_says_so_in_the_warning(
    slurm_cluster: SlurmCluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A launch that times out while its job is held: the WARNING of the failed launch gives
    SLURM's reason (on 345334d it said only that the worker did not connect within
    seconds_launch; the reason reached the LaunchError alone)."""
    import logging

    c = slurm_controller(tmp_path, workers=1, launch_max=2, seconds_launch=3, sbatch_args=("--hold",))
    try:
        with caplog.at_level(logging.WARNING, logger="pycrew"):
            future = c.submit(abs, -1)
            with pytest.raises(pycrew.LaunchError, match="JobHeldUser"):
                future.result(timeout=60)
        controller_id = c.id
    finally:
        c.terminate()
    warned = [r.getMessage() for r in caplog.records if "failed launch 1 of 2" in r.getMessage()]
    assert len(warned) == 1 and "did not connect within seconds_launch=3 s" in warned[0], warned
    assert "the platform reports the worker as" in warned[0] and "JobHeldUser" in warned[0], warned
    wait_for(lambda: not ours(controller_id), timeout=30, what="the controller's jobs to leave the queue")


def test_a_job_asking_for_more_cpus_than_any_node_has_fails_the_launch_in_seconds(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    """sbatch takes ``--cpus-per-task=64`` on a 16-CPU partition, and the job pends for good
    (PartitionConfig). On 33e082d the LaunchError came after launch_max launches of
    seconds_launch each (150 s by default)."""
    c = slurm_controller(tmp_path, workers=1, launch_max=2, cpus_per_task=64)
    try:
        future = c.submit(abs, -1)
        with pytest.raises(pycrew.LaunchError, match="pending for good: PartitionConfig"):
            future.result(timeout=45)
        controller_id = c.id
    finally:
        c.terminate()
    wait_for(lambda: not ours(controller_id), timeout=30, what="the controller's jobs to leave the queue")


def test_an_orphan_that_pends_for_good_is_listed_and_terminated_by_the_monitor(tmp_path: Path) -> None:
    """A job of a controller that died (SIGKILL) which SLURM will never start (PartitionConfig)
    stays in the queue for good. Before, the monitor reported it ended (status failed) and left
    it out: ``pycrew monitor slurm list`` did not show it and ``terminate --orphans`` left it."""
    from pycrew.testing import scheduler_calls
    from pycrew_slurm import SlurmOptions

    dead = slurm_controller(tmp_path, workers=1).start()
    dead.terminate()  # its record says it ended, as for a controller killed (found by its pid)
    controller_id = dead.id
    calls = scheduler_calls.make_calls("import time; time.sleep(60)", 1, controller_id, dead.name, launcher="slurm")
    options = SlurmOptions(seconds_poll=0, cpus_per_task=64, directory=str(tmp_path / "private"))
    info = pycrew.LauncherInfo("slurm", options, dead.name, controller_id)
    handles = plugin.pycrew_launch_workers(launcher=info, calls=calls)
    try:
        monitor = pycrew.Monitor("slurm", seconds_poll=0)

        def stuck() -> list[pycrew.WorkerInfo]:
            return [w for w in monitor.orphans() if w.controller_id == controller_id and w.status == "failed"]

        [orphan] = wait_for(stuck, timeout=30, what="the orphan pending for good to be listed")
        assert orphan.queued and orphan.ended and orphan.held and orphan.state == "PENDING", orphan
        assert "pending for good: PartitionConfig" in orphan.reason, orphan.reason
        assert [w.id for w in monitor.list() if w.controller_id == controller_id] == [orphan.id]
        assert monitor.terminate([orphan]) == 1
        wait_for(lambda: not ours(controller_id), timeout=30, what="the orphan to leave the queue")
    finally:
        plugin.pycrew_terminate_workers(launcher=info, handles=handles)


def test_a_worker_that_exits_before_connecting_fails_the_launch_quoting_its_log(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    """SLURM says only FAILED, exit code 1; the job's log says why (here: a ``cwd`` the node
    lacks), and the LaunchError quotes it, within seconds."""
    missing = tmp_path / "not-on-the-nodes"
    c = slurm_controller(tmp_path, workers=1, launch_max=1, cwd=str(missing))
    try:
        started = time.monotonic()
        future = c.submit(abs, -1)
        with pytest.raises(pycrew.LaunchError) as info:
            future.result(timeout=45)
        controller_id = c.id
    finally:
        c.terminate()
    assert f"cannot enter its working directory {missing} (the cwd option)" in str(info.value), str(info.value)
    assert time.monotonic() - started < 30
    wait_for(lambda: not ours(controller_id), timeout=30, what="the controller's jobs to leave the queue")


PROGRAM = """
import json, sys
import pycrew

c = pycrew.controller("slurm", workers=1, host="127.0.0.1", directory=sys.argv[1], seconds_time=300,
                      seconds_launch=3600, sbatch_args=("--begin=now+3600",))
c.start()
future = c.submit(abs, -1)  # its worker's job waits in the queue (not before an hour from now)
print(json.dumps({"controller_id": c.id}), flush=True)
future.result()
"""


def test_a_program_ended_by_sigterm_cancels_its_queued_jobs(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    """A controller's program ended by SIGTERM (its own job's time limit, scancel, timeout)
    cancels the worker jobs still in the queue (see pycrew.control.termination); Python's
    default action left them pending, to start later for nothing."""
    import json
    import os
    import signal
    import subprocess
    import sys

    script = tmp_path / "program.py"
    script.write_text(PROGRAM)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path / "private")], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    controller_id = ""
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert line, f"the program said nothing: {proc.communicate(timeout=30)}"
        controller_id = json.loads(line)["controller_id"]
        wait_for(lambda: [w for w in ours(controller_id) if not w.ended], timeout=60, what="the worker's job in the queue")
        os.kill(proc.pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 143, f"exit code {proc.returncode}; stderr:\n{err[-3000:]}"
        wait_for(lambda: not [w for w in ours(controller_id) if not w.ended], timeout=30, what="the queued job to be cancelled")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        if controller_id:
            left = [w.handle for w in ours(controller_id) if not w.ended]
            if left:
                subprocess.run(["scancel", *left], check=False)


def _munged_of(conf: str) -> tuple[int, list[str]]:
    """The pid and command line of the munged whose socket the cluster's slurm.conf names."""
    socket_path = next(
        line.split("socket=", 1)[1].strip() for line in Path(conf).read_text().splitlines() if line.startswith("AuthInfo=")
    )
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().decode().split("\0")[:-1]
        except OSError:
            continue
        if argv and Path(argv[0]).name == "munged" and any(socket_path in a for a in argv):
            return int(entry.name), argv
    raise AssertionError(f"no munged serves {socket_path}")


def test_a_munge_restart_delays_launches_and_fails_none(slurm_cluster: SlurmCluster, tmp_path: Path) -> None:
    """munged down for 20 s while workers must be launched: every SLURM command fails to
    authenticate meanwhile ("Protocol authentication error"), which is the platform out of
    reach, retried as a slurmctld restart is; the tasks run once it is back. (A probe: a
    20 s outage failed every waiting task with a LaunchError on 64971f1, as failed launches.)"""
    pid, argv = _munged_of(slurm_cluster.conf)
    with slurm_controller(tmp_path, workers=1, tasks_max=1, seconds_launch=30) as c:
        assert c.submit(abs, -1).result(timeout=120) == 1  # a first worker, then its job leaves (tasks_max)
        os.kill(pid, signal.SIGTERM)
        wait_for(lambda: not Path(f"/proc/{pid}").exists(), timeout=20, what="munged to stop")
        try:
            futures = [c.submit(abs, -i) for i in range(2, 5)]  # each needs a new worker (tasks_max=1)
            time.sleep(20)
            assert not any(f.done() for f in futures), [f.exception() for f in futures if f.done()]
        finally:
            subprocess.run(["runuser", "-u", "munge", "--", *argv], check=True, timeout=30)
        wait_for(lambda: subprocess.run(["munge", "-n", f"--socket={argv_socket(argv)}"], capture_output=True,
                                        check=False).returncode == 0, timeout=30, what="munged to come back")
        assert [f.result(timeout=240) for f in futures] == [2, 3, 4]


def argv_socket(argv: list[str]) -> str:
    return next(a.split("=", 1)[1] for a in argv if a.startswith("--socket="))


CANCELLING_SBATCH = """#!/bin/bash
# A site's sbatch as probe F met it: the job is scancel'ed from outside before pycrew's first listing.
out=$({sbatch} "$@") || exit $?
{scancel} "${{out%%;*}}_1"
echo "$out"
"""


def test_a_worker_cancelled_from_outside_before_the_first_listing_fails_its_launch_in_seconds(
    slurm_cluster: SlurmCluster, tmp_path: Path
) -> None:
    """A waiting element scancel'ed before pycrew ever listed it leaves no trace in squeue. On
    c4bc98d its launch failed only at seconds_launch (here 60 s: 120 s for two launches)."""
    import shutil

    bin_directory = tmp_path / "bin"
    bin_directory.mkdir()
    for name in ("squeue", "scancel", "scontrol"):
        (bin_directory / name).symlink_to(shutil.which(name) or name)
    sbatch = bin_directory / "sbatch"
    sbatch.write_text(CANCELLING_SBATCH.format(sbatch=shutil.which("sbatch"), scancel=shutil.which("scancel")))
    sbatch.chmod(0o755)
    c = slurm_controller(tmp_path, workers=1, launch_max=2, bin_directory=str(bin_directory), sbatch_args=("--hold",))
    try:
        started = time.monotonic()
        future = c.submit(abs, -1)
        with pytest.raises(pycrew.LaunchError) as info:
            future.result(timeout=100)
        elapsed = time.monotonic() - started
        controller_id = c.id
    finally:
        c.terminate()
    assert "before pycrew first listed it" in str(info.value) and "cancelled from outside" in str(info.value), str(info.value)
    assert elapsed < 40, f"two launches failed in {elapsed:.1f} s"
    wait_for(lambda: not ours(controller_id), timeout=30, what="the controller's jobs to leave the queue")
