"""A platform that starts some workers and not others: the tasks run on those that started.

A quota of pods, a full partition or a node that cannot run the worker makes some
launches fail while others succeed. A slot that reaches ``launch_max`` failed launches in
a row while other workers are connected is parked (retried every
``SECONDS_RETRY_PARKED``, with a warning) instead of failing every waiting task with a
``LaunchError``; one that fails while no worker is connected still raises it.

The workers' interpreter here is a script that lets only so many launches through (a
directory per launch, made atomically) and fails the others after a second, as a
platform that refuses a job does.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from pathlib import Path

import pytest

import pycrew
from helpers import sleep_then
from pycrew.control import launch_watch
from support import wait_for

QUOTA_MESSAGE = "exceeded quota: the platform allows no more workers"


def quota_python(tmp_path: Path, allowed: int) -> str:
    """An interpreter that starts the first ``allowed`` workers, and more once ``tmp_path/freed`` exists."""
    grants = " || ".join(f'mkdir "{tmp_path}/grant-{i}" 2>/dev/null' for i in range(allowed))
    path = tmp_path / "quota-python"
    path.write_text(
        "#!/bin/sh\n"
        f'if {grants} || [ -e "{tmp_path}/freed" ]; then exec {sys.executable} "$@"; fi\n'
        f"sleep 1\necho '{QUOTA_MESSAGE}' >&2\nexit 1\n"
    )
    path.chmod(0o755)
    return str(path)


def test_tasks_run_on_the_workers_that_started_when_others_cannot(make_controller, tmp_path, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="pycrew.control.scaler")
    c = make_controller("local", workers=4, launch_max=2, python=quota_python(tmp_path, 2)).start()
    futures = [c.submit(sleep_then, 0.2, i) for i in range(40)]
    assert [f.result(timeout=120) for f in futures] == list(range(40)), "every task ran, on the two workers"
    s = c.summary()
    assert s.controller.success == 40 and s.controller.workers_online == 2, s.controller
    failed = sorted(w.launch_failures for w in s.workers)
    assert failed[:2] == [0, 0] and failed[2:] == [2, 2], f"two slots parked after launch_max=2 failures: {s.workers}"
    assert QUOTA_MESSAGE in s.launcher["last_launch_error"], s.launcher
    parked = [r.getMessage() for r in caplog.records if "carrying on with the 2 connected worker(s)" in r.getMessage()]
    assert len(parked) == 2 and QUOTA_MESSAGE in parked[0], parked


def test_a_parked_slot_is_tried_again_and_joins_when_the_platform_lets_it(make_controller, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(launch_watch, "SECONDS_RETRY_PARKED", 1.0)
    c = make_controller("local", workers=3, launch_max=2, python=quota_python(tmp_path, 2)).start()
    for i in range(200):
        c.push(sleep_then, (0.1, i))
    wait_for(lambda: max(w.launch_failures for w in c.summary().workers) >= 2, 60, message="no slot reached launch_max")
    (tmp_path / "freed").touch()  # the quota frees up
    wait_for(lambda: c.summary().controller.workers_online == 3, 30, message="the parked slot never joined")
    assert c.wait(timeout=120)
    assert c.summary().controller.success == 200


def test_a_parked_slot_that_fails_while_no_worker_is_connected_raises(make_controller, tmp_path) -> None:
    c = make_controller("local", workers=2, launch_max=2, crashes_max=5, python=quota_python(tmp_path, 1)).start()
    futures = [c.submit(sleep_then, 0.5, i) for i in range(60)]
    wait_for(lambda: max(w.launch_failures for w in c.summary().workers) >= 2, 60, message="no slot reached launch_max")
    [pid] = [w.pid for w in c.summary().workers if w.online and w.pid is not None]
    os.kill(pid, signal.SIGKILL)  # the one worker goes; its replacements are refused too
    with pytest.raises(pycrew.LaunchError) as info:
        c.wait(timeout=120)
    assert QUOTA_MESSAGE in str(info.value) and "launch_max=2" in str(info.value), str(info.value)
    assert all(f.done() for f in futures), "every future resolved"
    assert any(isinstance(f.exception(), pycrew.LaunchError) for f in futures)
