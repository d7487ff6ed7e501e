"""The local launcher's monitor: lists and terminates pycrew workers, orphans included."""

from __future__ import annotations

import subprocess
import sys

import pycrew
from helpers import sleep_then
from support import pid_gone, wait_for


def test_monitor_lists_this_controllers_workers_and_not_other_processes(make_controller):
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)  # pycrew.worker"])
    try:
        a = make_controller("local", workers=2, name="a").start()
        b = make_controller("local", workers=1, name="b").start()
        fa = [a.submit(sleep_then, 3) for _ in range(2)]
        fb = b.submit(sleep_then, 3)
        wait_for(lambda: a.summary().controller.workers_online == 2 and b.summary().controller.workers_online == 1, 30)
        monitor = pycrew.Monitor("local")
        listed = monitor.list(a.id)
        assert sorted(w.pid for w in listed) == sorted(s.pid for s in a.launcher.slots)
        assert all(w.controller == "a" and w.controller_id == a.id and w.instance for w in listed)
        everything = {w.pid for w in monitor.list()}
        assert bystander.pid not in everything, "the monitor listed a process that is not a pycrew worker"
        assert b.launcher.slots[0].pid in everything
        mine = (a.id, b.id)
        assert [w for w in monitor.orphans() if w.controller_id in mine] == [], "workers of live controllers are not orphans"
        monitor.terminate(listed)
        wait_for(lambda: all(pid_gone(w.pid) for w in listed), 10)
        assert bystander.poll() is None, "terminating workers touched another process"
        for f in [*fa, fb]:
            f.cancel()
    finally:
        bystander.kill()
        bystander.wait()


ORPHAN_MAKER = """
import os, signal, time, pycrew
c = pycrew.controller("local", workers=1)
c.start()
c.submit(time.sleep, 120)
while c.summary().controller.workers_online < 1:
    time.sleep(0.05)
# Freeze the worker so that it cannot notice its controller dying: an orphan, as when a
# worker hangs in a crashed state.
os.kill(c.launcher.slots[0].pid, signal.SIGSTOP)
print(c.id, flush=True)
os._exit(0)  # dies without terminating
"""


def test_monitor_finds_and_terminates_orphans_of_a_dead_controller():
    proc = subprocess.run([sys.executable, "-c", ORPHAN_MAKER], capture_output=True, text=True, timeout=60)
    controller_id = proc.stdout.strip()
    monitor = pycrew.Monitor("local")
    orphans = [w for w in monitor.orphans() if w.controller_id == controller_id]
    try:
        assert len(orphans) == 1, f"expected the dead controller's worker as an orphan, got {monitor.list()}"
        assert orphans[0].age is not None and orphans[0].age < 60
    finally:
        monitor.terminate([w for w in monitor.list() if w.controller_id == controller_id])
    wait_for(lambda: monitor.list(controller_id) == [], 10)


def test_monitor_with_another_state_directory_does_not_take_a_running_controllers_workers_for_orphans(
    make_controller, tmp_path, monkeypatch
):
    """On 33e082d a monitor whose PYCREW_STATE_DIR was not the controller's (another shell, a
    cron job, another home) had no record of a running controller, called its workers orphans,
    and ``terminate --orphans`` killed them mid-task."""
    monkeypatch.setenv("PYCREW_STATE_DIR", str(tmp_path / "controller-state"))
    c = make_controller("local", workers=1).start()
    future = c.submit(sleep_then, 2, 7)
    wait_for(lambda: c.summary().controller.workers_online == 1, 30)
    monkeypatch.setenv("PYCREW_STATE_DIR", str(tmp_path / "monitor-state"))
    monitor = pycrew.Monitor("local")
    assert [w.controller_id for w in monitor.list(c.id)] == [c.id]
    assert [w for w in monitor.orphans() if w.controller_id == c.id] == [], "a running controller's worker is no orphan"
    assert future.result(timeout=30) == 7, "the task finished on the worker the monitor left alone"
