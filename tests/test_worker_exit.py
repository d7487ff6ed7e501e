"""How a worker process ends: the exit handlers its tasks registered run (``atexit``,
``weakref.finalize``), all but pynng's, within a time bound, and then it exits with its
code (see :mod:`pycrew.worker.exiting`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from support import pid_gone, wait_for


@pytest.mark.parametrize("wire", ["socket", "nng"])
def test_a_tasks_exit_handlers_and_temporary_directory_run_when_its_worker_exits(make_controller, tmp_path, wire):
    marker = tmp_path / "atexit-ran"

    def task(path: str) -> tuple[str, int]:
        import atexit
        import os
        import sys
        import tempfile

        def mark() -> None:
            with open(path, "w") as out:
                out.write(str(os.getpid()))

        atexit.register(mark)
        kept = tempfile.TemporaryDirectory(prefix="pycrew-test-kept-")  # removed by its finalizer at exit
        sys._pycrew_test_kept = kept  # type: ignore[attr-defined]
        return kept.name, os.getpid()

    # The worker ends by itself after its one task (as after seconds_idle or seconds_wall);
    # terminate() would SIGTERM it, which no exit handler outlives.
    c = make_controller("local", workers=1, wire=wire, tasks_max=1)
    kept, pid = c.submit(task, str(marker)).result(timeout=60)
    wait_for(lambda: pid_gone(pid), timeout=30, message="the worker did not exit")
    assert marker.read_text() == str(pid), "the task's atexit handler did not run in its worker"
    assert not os.path.exists(kept), "the task's TemporaryDirectory was left behind"


def test_a_slow_exit_handler_is_not_cut_short_by_the_controller_s_clean_up(make_controller, tmp_path):
    """A worker that said goodbye is terminated by its launcher only after its exit
    handlers' bound (the local launcher's SIGKILL comes 2 s after its SIGTERM)."""
    marker = tmp_path / "slow-atexit-ran"

    def task(path: str) -> int:
        import atexit
        import os
        import time

        def slow() -> None:
            time.sleep(4)
            with open(path, "w") as out:
                out.write(str(os.getpid()))

        atexit.register(slow)
        return os.getpid()

    c = make_controller("local", workers=1, tasks_max=1)
    pid = c.submit(task, str(marker)).result(timeout=60)
    wait_for(lambda: pid_gone(pid), timeout=30, message="the worker did not exit")
    assert marker.exists() and marker.read_text() == str(pid), "the 4 s exit handler was cut short"


SCRIPT = textwrap.dedent(
    """
    import atexit, sys, time
    atexit.register(time.sleep, 1000)  # runs last (handlers run newest first) and hangs
    import pynng.nng  # registers its exit handler: it would run before the hanging one
    from pycrew.worker import exiting

    class Lib:  # pynng's exit handler calls lib.nng_fini(): this one says so instead
        def __init__(self, real):
            self.real = real
        def __getattr__(self, name):
            return getattr(self.real, name)
        def nng_fini(self):
            print("nng_fini called", flush=True)

    pynng.nng.lib = Lib(pynng.nng.lib)
    pynng.nng._pynng_atexit()  # the control: it is the handler that would call it
    atexit.register(print, "handler ran", flush=True)
    exiting.run_exit_handlers.__defaults__ = (0.5,)
    exiting.exit_process(7)
    """
)


def test_a_hanging_exit_handler_delays_the_exit_only_for_its_bound_and_pynngs_is_skipped(tmp_path):
    script = tmp_path / "exits.py"
    script.write_text(SCRIPT)
    t0 = time.monotonic()
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    seconds = time.monotonic() - t0
    assert done.returncode == 7, done.stderr
    assert done.stdout.splitlines() == ["nng_fini called", "handler ran"], "pynng's exit handler ran, or ours did not"
    assert "exit handlers still running after 0.5 s" in done.stderr
    assert seconds < 30, f"the hanging handler held the process {seconds:.1f} s"


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_worker_that_left_on_a_signal_ends_by_it_after_its_exit_handlers(signum):
    """Exit code 128 + SIGTERM/SIGINT (a worker told to leave by it) ends the process by that
    signal, so the platform records the job as cancelled, as without the worker's goodbye."""
    script = textwrap.dedent(
        f"""
        import atexit, signal
        from pycrew.worker import exiting
        atexit.register(print, "handler ran", flush=True)
        signal.signal({int(signum)}, signal.SIG_IGN)  # as after the worker's serving loop
        exiting.exit_process({128 + int(signum)})
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == -signum, (done.returncode, done.stderr)
    assert done.stdout.splitlines() == ["handler ran"]


CONTROLLER_THAT_DIES = """
import os, subprocess, sys, time
import pycrew

def leave_a_process():
    return subprocess.Popen(["sleep", "600"]).pid

c = pycrew.controller("local", workers=1).start()
print(c.submit(leave_a_process).result(timeout=60), c.submit(os.getpid).result(timeout=60), flush=True)
time.sleep(600)
"""


def test_a_worker_whose_controller_was_killed_ends_what_its_tasks_left_running(tmp_path):
    """Failed on 4cd3121: the controller's process killed with SIGKILL, its local worker left
    when it lost the connection, and the process its task had started ran on for ever
    (nobody was left to signal the worker's process group)."""
    script = tmp_path / "controller.py"
    script.write_text(CONTROLLER_THAT_DIES)
    controller = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    leftover = worker = None
    try:
        assert controller.stdout is not None
        leftover, worker = map(int, controller.stdout.readline().split())
        assert not pid_gone(leftover) and not pid_gone(worker)
        controller.kill()
        controller.wait(timeout=30)
        wait_for(lambda: pid_gone(worker), 30, message="the worker did not leave after its controller died")
        wait_for(lambda: pid_gone(leftover), 10, message="the process the task left ran on after its worker ended")
    finally:
        controller.kill()
        for pid in (leftover, worker):
            if pid is not None and not pid_gone(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_worker_that_does_not_lead_its_session_ends_its_own_descendants_only(tmp_path):
    """A worker started by hand from a shell, or by a batch scheduler's job script, is no
    session leader: the session's other processes are not its business, but what its tasks
    started ends with it. On b476624 nothing did: on a real SLURM (proctrack/linuxproc) a
    task's ``subprocess.Popen`` outlived the worker and its job, re-parented to init."""
    script = textwrap.dedent(
        """
        import subprocess, sys
        from pycrew.worker import leftovers
        child = subprocess.Popen(["sleep", "600"])
        try:
            print(leftovers.end_leftovers(grace=0.1), child.wait(timeout=10), flush=True)
        finally:
            child.kill()
        """
    )
    neighbour = subprocess.Popen(["sleep", "600"])  # the same session as the "worker" below, not its descendant
    try:
        done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
        assert done.stdout.split() == ["1", "-15"], (done.stdout, done.stderr)
        assert neighbour.poll() is None, "a process of the session that is not the worker's descendant was ended"
        led = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, start_new_session=True)
        assert led.stdout.split() == ["1", "-15"], led.stderr
    finally:
        neighbour.kill()
        neighbour.wait()


def test_a_worker_counts_its_seconds_wall_from_its_jobs_start(make_controller, monkeypatch):
    """A scheduler's job script exports PYCREW_JOB_STARTED; here the local launcher passes the
    controller's environment on, as a job script would: a job that started 20 s ago gives a
    worker with seconds_wall=23 about 3 s to serve (and its tasks do not see the variable)."""
    from pycrew.wire.protocol import JOB_STARTED_ENV

    monkeypatch.setenv(JOB_STARTED_ENV, str(int(time.time()) - 20))

    def seen() -> str | None:
        import os

        return os.environ.get(JOB_STARTED_ENV)

    c = make_controller("local", workers=1, seconds_wall=23)
    assert c.submit(seen).result(timeout=60) is None
    wait_for(
        lambda: "seconds_wall=23 reached" in c.summary().workers[0].exit_reason, timeout=12,
        message="the worker served as if its job had just started",
    )


def test_workers_whose_seconds_wall_ends_before_their_first_task_fail_as_launches(make_controller):
    """Failed on fce425b: each worker ran its initializer (1.5 s), reached seconds_wall=1
    and left before its first task; the controller started another, and another, and the
    future never resolved. Now ``launch_max`` such workers in a row are a LaunchError."""
    import pycrew

    c = make_controller("local", workers=1, seconds_wall=1.0, initializer=time.sleep, initargs=(1.5,), launch_max=2)
    future = c.submit(abs, -1)
    with pytest.raises(pycrew.LaunchError) as raised:
        future.result(timeout=60)
    message = str(raised.value)
    assert "reached its seconds_wall before its first task" in message and "seconds_wall=1 reached" in message
    assert "raise seconds_wall" in message, message
    assert c.summary().workers[0].launches == 2


def test_a_worker_that_served_and_then_reached_seconds_wall_is_replaced_as_usual(make_controller):
    """Only workers that never served count: one that ran tasks until its seconds_wall is
    replaced, however many times, and the tasks go on."""
    c = make_controller("local", workers=1, seconds_wall=1.0, launch_max=1)
    assert list(c.map(time.sleep, [0.3] * 10)) == [None] * 10
    assert c.summary().workers[0].launches >= 2
