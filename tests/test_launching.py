"""Auto-scaling, launch failures and worker exit rules on the local launcher."""

from __future__ import annotations

import sys
import time

import pytest

import pycrew
from helpers import identity, sleep_then
from support import wait_for, worker_pids


def test_unstartable_worker_raises_launch_error_after_launch_max(make_controller, tmp_path):
    c = make_controller("local", workers=1, launch_max=2, python=str(tmp_path / "no-python")).start()
    future = c.submit(identity, 1)
    with pytest.raises(pycrew.LaunchError) as info:
        c.wait(timeout=60)
    message = str(info.value)
    assert "launcher 'local'" in message and "2 times in a row" in message
    assert "-m pycrew.worker" in message and "No such file" in message
    with pytest.raises(pycrew.LaunchError):
        future.result(timeout=5)


def test_worker_that_never_connects_is_terminated_and_counted(make_controller, tmp_path):
    script = tmp_path / "hang.py"
    script.write_text("import time\ntime.sleep(600)\n")
    fake_python = tmp_path / "fake-python"
    fake_python.write_text(f"#!/bin/sh\nexec {sys.executable} {script}\n")
    fake_python.chmod(0o755)
    c = make_controller("local", workers=1, launch_max=2, seconds_launch=1, python=str(fake_python)).start()
    c.push(identity, (1,))
    with pytest.raises(pycrew.LaunchError, match="did not connect within seconds_launch=1 s"):
        c.wait(timeout=60)
    s = c.summary()
    assert s.workers[0].launch_failures == 2
    wait_for(lambda: worker_pids(c.id) == [], 10)


def test_scales_up_to_workers_and_not_beyond_demand(make_controller):
    c = make_controller("local", workers=3).start()
    c.push(sleep_then, (0.5,))
    wait_for(lambda: c.summary().controller.workers_online == 1, 30)
    time.sleep(0.3)
    assert c.summary().controller.workers_online + c.summary().controller.workers_launching == 1
    for _ in range(6):
        c.push(sleep_then, (0.5,))
    wait_for(lambda: c.summary().controller.workers_online == 3, 30)
    assert c.wait(timeout=30)


def test_tasks_max_makes_workers_exit_and_relaunch(make_controller):
    c = make_controller("local", workers=1, tasks_max=3).start()
    assert list(c.map(identity, range(10))) == list(range(10))
    s = c.summary()
    assert s.workers[0].instances == 4, f"10 tasks at 3 per worker need 4 instances: {s}"


def test_seconds_wall_makes_workers_exit(make_controller):
    c = make_controller("local", workers=1, seconds_wall=1.0).start()
    assert c.submit(identity, 1).result(timeout=30) == 1
    wait_for(lambda: c.summary().controller.workers_online == 0, 15, message="worker outlived seconds_wall")
    assert c.submit(identity, 2).result(timeout=30) == 2


def test_seconds_idle_makes_workers_exit(make_controller):
    c = make_controller("local", workers=1, seconds_idle=0.5).start()
    assert c.submit(identity, 1).result(timeout=30) == 1
    wait_for(lambda: c.summary().controller.workers_online == 0, 15, message="worker did not idle out")
    wait_for(lambda: worker_pids(c.id) == [], 15)


def test_push_does_not_wait_for_a_slow_launcher(make_controller):
    class Slow:
        @pycrew.hookimpl(wrapper=True)
        def pycrew_launch_workers(self, launcher, calls):
            time.sleep(2)
            return (yield)

    slow = Slow()
    pycrew.register(slow)
    try:
        c = make_controller("local", workers=4).start()
        t0 = time.monotonic()
        for i in range(50):
            c.push(identity, (i,))
        assert time.monotonic() - t0 < 1.5, "push waited for the launcher"
        assert c.wait(timeout=60)
    finally:
        pycrew.unregister(slow)


def test_lone_tasks_go_to_idle_workers_even_after_short_tasks_raised_prefetch(make_controller):
    from helpers import whoami

    c = make_controller("local", workers=2).start()
    assert list(c.map(identity, range(300))) == list(range(300))  # short tasks: prefetch grows
    wait_for(lambda: c.summary().controller.workers_online == 2, 30)
    first = c.submit(sleep_then, 1.5, "a")
    time.sleep(0.2)
    second = c.submit(whoami)
    _, pid = second.result(timeout=1.0)  # must not wait behind the sleeping task
    assert first.result(timeout=30) == "a"
    assert pid in {s.pid for s in c.launcher.slots}
