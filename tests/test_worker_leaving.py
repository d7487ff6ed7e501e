"""A worker told to end by SIGTERM leaves politely (see :mod:`pycrew.worker.leaving`).

Platforms end jobs with SIGTERM and SIGKILL a grace period later (scancel, wall time, pod
deletion, Batch's TerminateJob). The worker gives back what it has not started at once,
finishes its running task within the grace period, and says goodbye; killed before that,
its task counts one crash and the message says the worker was ending.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from helpers import (
    default_signal_handlers,
    identity,
    own_wakeup_fd_then_sleep,
    sleep_then,
    whoami,
    write_pid_then_sleep,
    write_pid_then_wait_for,
)
from pycrew.errors import TaskCrashError
from pycrew.wire.transport import TRANSPORTS
from support import pid_gone, wait_for

pytestmark = pytest.mark.parametrize("wire", TRANSPORTS)

QUICK = 20


def _long_task_with_a_prefetched_tail(c, tmp_path, seconds_max):
    """A long task on the controller's only worker (it runs until ``release`` exists), and
    QUICK short tasks prefetched behind it. Returns (long, tail, worker pid, release)."""
    assert [f.result(timeout=60) for f in [c.submit(identity, i) for i in range(50)]] == list(range(50))  # short: prefetched
    pid_file, release = tmp_path / "pid", tmp_path / "release"
    long = c.submit(write_pid_then_wait_for, str(pid_file), str(release), seconds_max)
    tail = [c.submit(identity, i) for i in range(QUICK)]
    wait_for(lambda: pid_file.exists() and pid_file.read_text(), 30, message="the long task never started")
    # The dispatcher may hold the tail back a moment (it gathers a burst of pushes first).
    wait_for(lambda: c.summary().controller.running >= 2, 10, message="no task was prefetched behind the long one")
    return long, tail, int(pid_file.read_text()), release


def _tail_ran_elsewhere_meanwhile(c, long, tail):
    """The tail, given back at once (LEAVING), ran on a replacement while the long task runs on."""
    assert [f.result(timeout=60) for f in tail] == list(range(QUICK)), "the given-back tasks did not run elsewhere"
    assert not long.done(), "the long task should still be running (it waits for its release)"
    assert c.summary().workers[0].instances == 2, "the replacement connected while the ending worker still runs"


def test_a_worker_given_sigterm_during_a_task_finishes_it_while_a_replacement_runs_the_rest(make_controller, tmp_path, wire):
    c = make_controller("local", workers=1, wire=wire).start()
    long, tail, pid, release = _long_task_with_a_prefetched_tail(c, tmp_path, 60.0)
    os.kill(pid, signal.SIGTERM)
    _tail_ran_elsewhere_meanwhile(c, long, tail)
    release.write_text("go")
    assert long.result(timeout=60) == pid, "the running task's result is delivered"
    wait_for(lambda: pid_gone(pid), 15, message="the worker told to end did not exit")
    s = c.summary()
    assert s.controller.retries == 0 and s.controller.crash == 0, s.controller
    worker = s.workers[0]
    assert worker.crashes == 0 and worker.instances == 2, worker
    assert "SIGTERM" in worker.exit_reason, worker.exit_reason


def test_an_idle_worker_given_sigterm_says_goodbye(make_controller, wire):
    c = make_controller("local", workers=1, wire=wire).start()
    _, pid = c.submit(whoami).result(timeout=60)
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: pid_gone(pid), 15, message="the idle worker did not exit on SIGTERM")
    wait_for(lambda: c.summary().workers[0].exit_reason, 15, message="the controller never learnt the worker left")
    worker = c.summary().workers[0]
    assert worker.crashes == 0 and "SIGTERM" in worker.exit_reason, worker
    assert c.submit(whoami).result(timeout=60)[1] != pid, "a new worker serves the next task"


def test_a_worker_killed_while_ending_counts_its_task_crashed_and_says_why(make_controller, tmp_path, wire):
    c = make_controller("local", workers=1, wire=wire, crashes_max=1).start()
    long, tail, pid, _ = _long_task_with_a_prefetched_tail(c, tmp_path, 60.0)
    os.kill(pid, signal.SIGTERM)
    _tail_ran_elsewhere_meanwhile(c, long, tail)
    os.kill(pid, signal.SIGKILL)  # the platform's grace period is over
    exc = long.exception(timeout=60)
    assert isinstance(exc, TaskCrashError), exc
    assert "ending" in str(exc) and "SIGTERM" in str(exc), str(exc)
    s = c.summary()
    assert s.controller.crash == 1 and s.controller.retries == 0, "the given-back tasks ran unpenalised"
    assert s.workers[0].crashes == 1, "the ending worker's crash counts on its slot"


def test_a_second_sigterm_ends_the_worker_at_once(make_controller, tmp_path, wire):
    c = make_controller("local", workers=1, wire=wire, crashes_max=1).start()
    long, tail, pid, _ = _long_task_with_a_prefetched_tail(c, tmp_path, 60.0)
    os.kill(pid, signal.SIGTERM)
    # The first is handled (pending signals of one kind do not queue: two at once are one).
    _tail_ran_elsewhere_meanwhile(c, long, tail)
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: pid_gone(pid), 20, message="a second SIGTERM did not end the worker")
    assert isinstance(long.exception(timeout=30), TaskCrashError)


def test_sigint_is_a_request_to_leave_and_sigterm_after_it_ends_the_worker(make_controller, tmp_path, wire):
    """LSF's bkill: SIGINT, then SIGTERM and SIGKILL. Ctrl-C in a terminal is SIGINT too.

    The running task must not see a KeyboardInterrupt (it would resolve as an error it did
    not cause): it finishes; the SIGTERM after it ends the worker at once.
    """
    c = make_controller("local", workers=1, wire=wire, crashes_max=1).start()
    long, tail, pid, release = _long_task_with_a_prefetched_tail(c, tmp_path, 60.0)
    os.kill(pid, signal.SIGINT)
    _tail_ran_elsewhere_meanwhile(c, long, tail)
    release.write_text("go")
    assert long.result(timeout=60) == pid, "the running task finishes: no KeyboardInterrupt inside it"
    wait_for(lambda: pid_gone(pid), 15, message="the worker did not leave after its task")
    worker = c.summary().workers[0]
    assert worker.crashes == 0 and "SIGINT" in worker.exit_reason, worker

    pid_file = tmp_path / "pid2"
    doomed = c.submit(write_pid_then_sleep, str(pid_file), 60.0)
    wait_for(lambda: pid_file.exists() and pid_file.read_text(), 30, message="the second long task never started")
    second = int(pid_file.read_text())
    os.kill(second, signal.SIGINT)
    os.kill(second, signal.SIGTERM)  # pending together, the lower-numbered SIGINT is handled first
    wait_for(lambda: pid_gone(second), 20, message="SIGTERM after SIGINT did not end the worker")
    exc = doomed.exception(timeout=30)
    assert isinstance(exc, TaskCrashError), exc


def test_a_task_with_its_own_wakeup_descriptor_keeps_it_and_the_worker_still_leaves(make_controller, tmp_path, wire):
    c = make_controller("local", workers=1, wire=wire).start()
    pid_file = tmp_path / "pid"
    future = c.submit(own_wakeup_fd_then_sleep, str(pid_file), 3.0)
    wait_for(lambda: pid_file.exists() and pid_file.read_text(), 30, message="the task never started")
    pid = int(pid_file.read_text())
    os.kill(pid, signal.SIGTERM)
    got_pid, received = future.result(timeout=60)
    assert got_pid == pid and bytes((signal.SIGTERM,)) in received, "the task's own descriptor was left in place"
    wait_for(lambda: pid_gone(pid), 15, message="the worker did not leave after its task")
    worker = c.summary().workers[0]
    assert worker.crashes == 0 and "SIGTERM" in worker.exit_reason, worker


def test_signal_handlers_a_task_replaced_are_put_back_after_it(make_controller, tmp_path, wire):
    c = make_controller("local", workers=1, wire=wire).start()
    pid = c.submit(default_signal_handlers).result(timeout=60)
    # SIGUSR1 interrupts a cancelled task: with its default action, the worker would die.
    sleeper = c.submit(sleep_then, 60.0)
    wait_for(sleeper.running, 30, message="the task never started")
    time.sleep(0.2)
    assert sleeper.cancel()
    assert c.submit(whoami).result(timeout=60)[1] == pid, "the cancel killed the worker"
    # SIGTERM: a polite goodbye after the task, not the default action's death.
    long = c.submit(write_pid_then_sleep, str(tmp_path / "pid"), 1.0)
    wait_for(lambda: (tmp_path / "pid").exists() and (tmp_path / "pid").read_text(), 30, message="the task never started")
    os.kill(pid, signal.SIGTERM)
    assert long.result(timeout=60) == pid
    wait_for(lambda: c.summary().workers[0].exit_reason, 15, message="the worker never said goodbye")
    worker = c.summary().workers[0]
    assert worker.crashes == 0 and "SIGTERM" in worker.exit_reason, worker


def test_sigterm_past_seconds_wall_during_a_task_is_reported_as_a_time_limit(make_controller, tmp_path, wire):
    """A scheduler's time limit: seconds_wall (the job's limit less a margin) passes while a
    task runs, then SIGTERM and SIGKILL. On 33e082d the crash said only "the worker got
    SIGTERM (its platform or a user ends it)"."""
    c = make_controller("local", workers=1, wire=wire, crashes_max=1, seconds_wall=1).start()
    pid_file, release = tmp_path / "pid", tmp_path / "release"
    long = c.submit(write_pid_then_wait_for, str(pid_file), str(release), 60.0)
    wait_for(lambda: pid_file.exists() and pid_file.read_text(), 30, message="the task never started")
    pid = int(pid_file.read_text())
    time.sleep(1.5)  # past the worker's seconds_wall, inside its task
    os.kill(pid, signal.SIGTERM)
    wait_for(lambda: "seconds_wall" in (c.summary().workers[0].exit_reason or ""), 15,
             message="the worker did not say it was ending past its seconds_wall")
    os.kill(pid, signal.SIGKILL)
    exc = long.exception(timeout=60)
    assert isinstance(exc, TaskCrashError), exc
    assert "after its seconds_wall (on a scheduler: the job's time limit less seconds_walltime_margin), during a task: " \
        "its platform's time limit, most likely" in str(exc), str(exc)
