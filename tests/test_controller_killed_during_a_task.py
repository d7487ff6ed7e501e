"""A controller killed (the OOM killer, ``kill -9``) while a task runs a subprocess: the
worker leaves and, as its last act, ends what its task started (from a probe of tasks that
abuse their worker: the subprocess ran on, re-parented to init, 4 of 4 runs on 64971f1,
since a worker whose controller goes during a task exited at once without that step), and
its log says why."""

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

    c = pycrew.controller("local", workers=1, wire=sys.argv[2], log_dir=sys.argv[3]).start()
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
    logs = tmp_path / "logs"
    controller = subprocess.Popen([sys.executable, str(script), str(pid_file), wire, str(logs)])
    child = None
    try:
        wait_for(lambda: pid_file.exists() and pid_file.read_text().strip(), 60, message="the task never started its child")
        child = int(pid_file.read_text())
        assert _alive(child)
        controller.send_signal(signal.SIGKILL)
        controller.wait(30)
        wait_for(lambda: not _alive(child), 20, message=f"the task's subprocess {child} was left running")
        # and its log says why (it said nothing at the default level: a probe, on 65c5e3c)
        text = "".join(path.read_text() for path in logs.glob("*.log"))
        assert "connection to the controller lost during a task, which is lost: " in text, text
    finally:
        if controller.poll() is None:
            controller.kill()
            controller.wait(30)
        if child is not None and _alive(child):
            os.kill(child, signal.SIGKILL)


IDLE_CONTROLLER = textwrap.dedent("""
    import sys, time
    import pycrew

    c = pycrew.controller("local", workers=1, log_dir=sys.argv[1], seconds_idle=600).start()
    assert c.submit(abs, -1).result(timeout=60) == 1
    if sys.argv[2] == "end":
        c.terminate()
    else:
        print("ready", flush=True)
        time.sleep(1000)
""")


@pytest.mark.parametrize("how", ["kill", "end"])
def test_a_worker_s_log_says_when_it_lost_its_controller_and_not_when_told_to_stop(tmp_path, how):
    """Idle, its controller killed: the worker's log says the connection was lost (at WARNING,
    the default level); its controller ending normally (a STOP): nothing of the kind."""
    script = tmp_path / "controller.py"
    script.write_text(IDLE_CONTROLLER)
    logs = tmp_path / "logs"
    controller = subprocess.Popen([sys.executable, str(script), str(logs), how], stdout=subprocess.PIPE, text=True)
    try:
        if how == "kill":
            assert controller.stdout is not None and controller.stdout.readline() == "ready\n"
            controller.send_signal(signal.SIGKILL)
        assert controller.wait(60) == (-signal.SIGKILL if how == "kill" else 0)
    finally:
        if controller.poll() is None:
            controller.kill()
            controller.wait(30)
    [log] = logs.glob("*.log")
    if how == "kill":
        wait_for(lambda: "connection to the controller lost: " in log.read_text(), 30, message=f"the log: {log.read_text()!r}")
        assert "during a task" not in log.read_text()
    else:
        text = log.read_text()
        assert "connection to the controller lost" not in text and "WARNING" not in text.upper(), text
