"""A controller killed (the OOM killer, ``kill -9``) while a task runs a subprocess: the
worker leaves and, as its last act, ends what its task started (from a probe of tasks that
abuse their worker: the subprocess ran on, re-parented to init, 4 of 4 runs on 64971f1,
since a worker whose controller goes during a task exited at once without that step)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from support import wait_for

CONTROLLER = textwrap.dedent("""
    import subprocess, sys, time
    import pycrew

    def task(path):
        child = subprocess.Popen(["sleep", "1000"])
        with open(path, "w") as f:
            f.write(str(child.pid))
        return child.wait()

    c = pycrew.controller("local", workers=1, wire=sys.argv[2]).start()
    c.submit(task, sys.argv[1])
    time.sleep(1000)
""")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie not reaped yet has ended
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.mark.parametrize("wire", ["socket", "nng"])
def test_the_subprocess_of_a_running_task_goes_with_its_worker(tmp_path, wire):
    script = tmp_path / "controller.py"
    script.write_text(CONTROLLER)
    pid_file = tmp_path / "child.pid"
    controller = subprocess.Popen([sys.executable, str(script), str(pid_file), wire])
    child = None
    try:
        wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), 60, message="the task never started its child")
        child = int(pid_file.read_text())
        assert _alive(child)
        controller.send_signal(signal.SIGKILL)
        controller.wait(30)
        wait_for(lambda: not _alive(child), 20, message=f"the task's subprocess {child} was left running")
    finally:
        if controller.poll() is None:
            controller.kill()
            controller.wait(30)
        if child is not None and _alive(child):
            os.kill(child, signal.SIGKILL)
