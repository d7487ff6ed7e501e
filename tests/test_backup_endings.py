"""Every way a task handed to a backup controller can end resolves it, on the controller it came from.

Each test failed on 33e082d: the future of a task handed to a backup whose launcher failed,
or that was terminated, or whose first controller was terminated, never resolved (a
``result(timeout=...)`` ran out), and ``cancel`` did not reach tasks at the backup.
"""

from __future__ import annotations

from concurrent.futures import CancelledError

import pytest

import pycrew
from helpers import always_crash, crash_unless_big
from support import wait_for


def _running(c: pycrew.Controller) -> bool:
    return c.summary().controller.running >= 1


def _running_at_the_backup(make_controller):
    """(big, small, future): a task that crashed on "small" and now runs on its backup "big"."""
    big = make_controller("local", workers=1, name="big", env={"MEMORY": "big"})
    small = make_controller("local", workers=1, name="small", crashes_max=1, backup=big).start()
    future = small.submit(crash_unless_big, 60)
    wait_for(lambda: _running(big), 60, message="the backup never ran the task")
    return big, small, future


def test_a_backup_that_cannot_launch_fails_the_task_with_its_launch_error(make_controller, tmp_path):
    big = make_controller("local", workers=1, name="big", launch_max=1, python=str(tmp_path / "no-python"))
    small = make_controller("local", workers=1, name="small", crashes_max=1, backup=big).start()
    future = small.submit(always_crash)
    small.push(always_crash, name="pushed")
    with pytest.raises(pycrew.LaunchError, match="of controller 'big' failed to start a worker"):
        future.result(timeout=60)
    assert small.wait(timeout=60)
    r = small.pop()
    # queued at the backup when its launch failed (an error there), or refused by it afterwards (a crash here)
    assert (r.name, r.status, r.error_type, r.controller) in (
        ("pushed", "error", "pycrew.errors.LaunchError", "big"), ("pushed", "crash", "TaskCrashError", "small"),
    ), r
    assert "LaunchError" in r.error_type + r.error, r
    assert small.unresolved() == 0


def test_a_backup_terminated_while_it_runs_the_task_fails_it_on_the_first_controller(make_controller):
    big, small, future = _running_at_the_backup(make_controller)
    big.terminate()
    with pytest.raises(pycrew.ControllerError, match="backup controller 'big' was terminated before the task finished"):
        future.result(timeout=10)
    assert small.unresolved() == 0


def test_the_first_controller_terminated_fails_the_future_and_cancels_the_task_on_the_backup(make_controller):
    big, small, future = _running_at_the_backup(make_controller)
    small.terminate()
    with pytest.raises(pycrew.ControllerError, match="terminated while its backup 'big' had the task"):
        future.result(timeout=10)
    wait_for(lambda: big.summary().controller.cancel == 1 and not _running(big), 10,
             message="the backup still runs a task nobody waits for")
    assert big.submit(crash_unless_big, 0, "free").result(timeout=30) == "free", "the backup's worker is free again"


@pytest.mark.parametrize("how", ["all", "names", "future"])
def test_cancel_reaches_a_task_at_the_backup(make_controller, how):
    big, small, future = _running_at_the_backup(make_controller)
    if how == "all":
        assert small.cancel(all=True) == 1
    elif how == "names":
        assert small.cancel(names=["task_1"]) == 1
    else:
        assert future.cancel(), "a pycrew future cancels its task, queued or running, here or at the backup"
    with pytest.raises(CancelledError):
        future.result(timeout=10)
    wait_for(lambda: big.summary().controller.cancel == 1 and not _running(big), 10, message="the backup still runs the task")
    assert small.summary().controller.cancel == 1


def test_a_backup_that_refuses_the_task_is_named_in_the_crash(make_controller):
    big = make_controller("local", workers=1, name="big")
    big.start()
    big.terminate()
    small = make_controller("local", workers=1, name="small", crashes_max=1, backup=big).start()
    future = small.submit(always_crash)
    with pytest.raises(pycrew.TaskCrashError, match="its backup 'big' could not take it: ControllerError: controller 'big' was terminated"):
        future.result(timeout=60)



def test_the_sequential_controller_cannot_be_a_backup_and_says_why():
    """On 33e082d the message was "must be another pycrew controller", which it is."""
    with pytest.raises(pycrew.OptionsError, match="the sequential controller runs tasks in this process"):
        pycrew.controller("local", backup=pycrew.controller("sequential"))


def test_a_middle_backup_terminated_while_its_own_backup_runs_the_task_fails_it_on_the_first(make_controller):
    """c1 -> c2 -> c3: c2 crashes the task too and hands it to c3; c2 is terminated while c3
    runs it. Before this fix c1's future waited for ever (c3's result went to c2's stopped
    dispatcher)."""
    c3 = make_controller("local", workers=1, name="c3", env={"MEMORY": "big"})
    c2 = make_controller("local", workers=1, name="c2", crashes_max=1, backup=c3)
    c1 = make_controller("local", workers=1, name="c1", crashes_max=1, backup=c2).start()
    future = c1.submit(crash_unless_big, 60)
    wait_for(lambda: _running(c3), 60, message="the last backup never ran the task")
    c2.terminate()
    with pytest.raises(pycrew.ControllerError, match="backup controller 'c2' was terminated while its backup 'c3' had the task"):
        future.result(timeout=10)
    wait_for(lambda: c3.summary().controller.cancel == 1 and not _running(c3), 10, message="c3 still runs the task")
