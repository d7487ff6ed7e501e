"""Signal dispositions a task changes for the whole process come back before the next task
(from a probe of tasks that abuse their worker, on 64971f1: after one task ignored SIGCHLD,
the next task's ``subprocess.run(["sh", "-c", "exit 3"]).returncode`` was 0, since the
kernel reaped the child at once; SIGPIPE leaked the same way)."""

from __future__ import annotations

import signal
import subprocess

WATCHED = ("SIGCHLD", "SIGPIPE")


def _dispositions() -> dict[str, object]:
    return {name: signal.getsignal(getattr(signal, name)) for name in WATCHED}


def _change_them() -> str:
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    return "changed"


def _exit_status_of_a_child() -> int:
    return subprocess.run(["sh", "-c", "exit 3"], check=False).returncode


def test_a_later_task_sees_the_dispositions_it_would_have_seen_first(make_controller):
    c = make_controller("local", workers=1).start()
    before = c.submit(_dispositions).result(timeout=60)
    assert c.submit(_exit_status_of_a_child).result(timeout=60) == 3
    assert c.submit(_change_them).result(timeout=60) == "changed"
    assert c.submit(_exit_status_of_a_child).result(timeout=60) == 3, "SIGCHLD stayed ignored"
    assert c.submit(_dispositions).result(timeout=60) == before
    assert c.summary().workers[0].instances == 1  # the same worker ran them all
