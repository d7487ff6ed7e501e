"""A backup controller that is shut down keeps serving the controllers that hand it tasks
until none of them has work left that could crash there, and its counts stay whole.

Before (a probe; each test failed on 1a52ca9): a group's ``shutdown()`` terminated the
backup at once (it had no tasks of its own) and every task that crashed afterwards failed
with "its backup 'big' could not take it: controller 'big' was terminated" (6 of 6 runs);
``big.shutdown()`` did the same; at the interpreter's exit the backup was terminated first
in 4 of 5 runs, failing the pending futures it was to run; a backup terminated while it ran
a handed-over task counted it both resolved and abandoned; and a cycle of backups (made by
replacing ``options``) sent a task round for ever.
"""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import pycrew
from helpers import always_crash, crash_unless_big
from support import wait_for

HERE = Path(__file__).parent


def _pair(make_controller):
    big = make_controller("local", workers=1, name="big", env={"MEMORY": "big"})
    small = make_controller("local", workers=1, name="small", crashes_max=1, backup=big)
    return big, small


def test_a_groups_shutdown_lets_the_backup_run_the_tasks_that_crash_afterwards(make_controller):
    big, small = _pair(make_controller)
    group = pycrew.ControllerGroup(big, small).start()
    futures = [group.submit_to("small", crash_unless_big, 0.1, i) for i in range(3)]
    group.shutdown(wait=True)
    assert [f.result(timeout=1) for f in futures] == [0, 1, 2]
    assert big.summary().controller.success == 3
    assert big._terminated and small._terminated


def test_the_backups_own_shutdown_waits_for_its_controllers_tasks(make_controller):
    big, small = _pair(make_controller)
    big.start()
    small.start()
    futures = [small.submit(crash_unless_big, 0.1, i) for i in range(2)]
    big.shutdown(wait=True)  # before the tasks crashed on "small"
    assert [f.result(timeout=1) for f in futures] == [0, 1]
    with pytest.raises(RuntimeError):
        big.submit(abs, 1)  # its own users' tasks are still refused


def test_a_shut_down_backup_terminates_once_its_controller_is_terminated(make_controller):
    """It serves its controllers' work, not their lives: an idle one, or one terminated, holds it up no longer."""
    big, small = _pair(make_controller)
    big.start()
    small.start()
    assert small.submit(abs, -1).result(timeout=60) == 1
    t0 = time.monotonic()
    big.shutdown(wait=True)  # "small" is idle: nothing of it can crash
    assert time.monotonic() - t0 < 5 and big._terminated
    small.terminate()


def test_a_backup_does_not_wait_for_a_controller_whose_launches_failed(make_controller, tmp_path):
    """Its pushed tasks stay unresolved but never run (on c3fad3d the backup's shutdown waited
    for them until that controller was terminated)."""
    big = make_controller("local", workers=1, name="big").start()
    small = make_controller("local", workers=1, name="small", crashes_max=1, backup=big, launch_max=1,
                            python=str(tmp_path / "no-python")).start()
    for i in range(3):
        small.push(abs, (i,), name=f"p{i}")
    with pytest.raises(pycrew.LaunchError):
        small.wait(timeout=60)
    done = threading.Event()
    threading.Thread(target=lambda: (big.shutdown(wait=True), done.set()), daemon=True).start()
    try:
        assert done.wait(10), "the backup's shutdown waited for a controller that cannot run anything"
    finally:
        small.terminate()


def test_a_backup_serves_until_the_end_of_its_chain_finished(make_controller):
    """a -> b -> c: the last backup waits for the first controller's tasks too (they reach it through b)."""
    c = make_controller("local", workers=1, name="c", env={"MEMORY": "big"})
    b = make_controller("local", workers=1, name="b", crashes_max=1, backup=c)
    a = make_controller("local", workers=1, name="a", crashes_max=1, backup=b)
    group = pycrew.ControllerGroup(c, b, a).start()
    futures = [a.submit(crash_unless_big, 0.1, i) for i in range(2)]
    group.shutdown(wait=True)
    assert [f.result(timeout=1) for f in futures] == [0, 1]


def test_a_backup_terminated_while_it_runs_a_handed_task_counts_it_once(make_controller):
    big, small = _pair(make_controller)
    small.start()
    future = small.submit(crash_unless_big, 60)
    wait_for(lambda: big.summary().controller.running >= 1, 60, message="the backup never ran the task")
    big.terminate()
    with pytest.raises(pycrew.ControllerError, match="terminated"):
        future.result(timeout=30)
    s = big.summary().controller
    assert (s.pushed, s.resolved, s.abandoned, s.error) == (1, 1, 0, 1), s
    assert s.pushed == s.resolved + s.abandoned


@pytest.mark.parametrize("cycle", ["self", "two"])
def test_a_cycle_of_backups_fails_the_task_and_says_why(make_controller, cycle):
    a = make_controller("local", workers=1, name="a", crashes_max=1)
    if cycle == "self":
        a.options = dataclasses.replace(a.options, backup=a)
    else:
        b = make_controller("local", workers=1, name="b", crashes_max=1, backup=a)
        a.options = dataclasses.replace(a.options, backup=b)
    future = a.submit(always_crash)
    with pytest.raises(pycrew.TaskCrashError, match="the backups form a cycle"):
        future.result(timeout=60)


def test_a_group_names_a_controller_given_twice(make_controller):
    a = make_controller(name="a")
    with pytest.raises(pycrew.OptionsError, match="given to the group twice"):
        pycrew.ControllerGroup(a, a)


def test_the_exit_hook_finishing_the_backup_first_lets_it_run_its_controllers_pending_futures(make_controller):
    """What the interpreter's exit does to each live controller, in no set order: here the
    backup first (the order that failed), then its controller."""
    from pycrew.control import exit_hooks

    big, small = _pair(make_controller)
    big.start()
    small.start()
    futures = [small.submit(crash_unless_big, 0.1, i) for i in range(2)]
    exit_hooks._finish_one(big)
    assert big._terminated
    assert [f.result(timeout=1) for f in futures] == [0, 1]
    exit_hooks._finish_one(small)


EXIT_SCRIPT = textwrap.dedent('''
    import os, sys, threading, time
    import pycrew
    from helpers import crash_unless_big

    # Callbacks run on each controller's own thread: one lock keeps their lines whole (print
    # writes the text and its newline apart, and two lines once ran together here).
    PRINTING = threading.Lock()

    def say(line):
        with PRINTING:
            sys.stdout.write(line + "\\n")
            sys.stdout.flush()

    def report(name, i):
        def done(f):
            try:
                say(f"done {name} {f.result()}")
            except BaseException as e:
                say(f"failed {name} {i} {type(e).__name__}: {e}")
        return done

    # Three pairs: the exit hook finishes live controllers in no set order, and before the fix a
    # backup finished first was terminated before its controller's tasks crashed there.
    for n in range(3):
        big = pycrew.controller("local", workers=1, name=f"big{n}", env={"MEMORY": "big"}).start()
        small = pycrew.controller("local", workers=1, name=f"small{n}", crashes_max=1, backup=big).start()
        small.submit(crash_unless_big, 0.5, n).add_done_callback(report(f"small{n}", n))
    print("main thread ends", flush=True)
''')


def test_at_exit_a_backup_runs_the_pending_futures_of_its_controllers(tmp_path):
    script = tmp_path / "exit_with_backups.py"
    script.write_text(EXIT_SCRIPT)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=180, env=env)
    lines = sorted(line for line in proc.stdout.splitlines() if line.startswith(("done", "failed")))
    assert lines == ["done small0 0", "done small1 1", "done small2 2"], proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stderr
