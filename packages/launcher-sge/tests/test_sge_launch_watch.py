"""Launches that cannot succeed fail in seconds, with the reason, not after ``seconds_launch``.

- A worker that ends before it connects: SGE drops a task from its queue the moment it ends
  and keeps no exit status there; the launcher lists it as ended (a zombie, ``qstat -s z``)
  when this process submitted its job, and core's launch watch quotes the end of its output.
- A job no queue of the cell can ever run waits in ``qw`` for ever; ``qalter -w v`` says so
  (see pycrew_sge.verify) and the launcher reports it failed with SGE's reason.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sge_helpers import SgeCluster, wait_for

import pycrew
from pycrew_sge import SgeOptions
from pycrew_sge.plugin import plugin

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("sge_cluster")]


@pytest.fixture(autouse=True)
def private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep the controllers' records out of the real home."""
    monkeypatch.setenv("PYCREW_STATE_DIR", str(tmp_path / "state"))


def sge_controller(tmp_path: Path, **kw: Any) -> pycrew.Controller:
    """An SGE controller that listens on loopback (the test cell's one host is this machine);
    ``seconds_launch`` is a minute unless given: a failure noticed only when it runs out fails the test."""
    return pycrew.controller(
        "sge", host="127.0.0.1", directory=str(tmp_path / "private"), walltime="00:05:00", **{"seconds_launch": 60, **kw}
    )


def live(controller_id: str, directory: Path) -> list[pycrew.WorkerInfo]:
    info = pycrew.LauncherInfo("sge", SgeOptions(directory=str(directory), seconds_poll=0), None, None)
    return [w for w in plugin.pycrew_list_workers(launcher=info, controller_id=controller_id) if not w.ended]


def launch_error(tmp_path: Path, **options: Any) -> tuple[str, float]:
    """The LaunchError of a one-worker controller with ``options``, and how long it took;
    the controller's jobs must leave the queue after it terminated."""
    c = sge_controller(tmp_path, workers=1, **options)
    try:
        started = time.monotonic()
        future = c.submit(abs, -1)
        with pytest.raises(pycrew.LaunchError) as info:
            future.result(timeout=100)
        took = time.monotonic() - started
        controller_id = c.id
    finally:
        c.terminate()
    wait_for(lambda: not live(controller_id, tmp_path / "private"), timeout=30, what="the controller's tasks to leave the queue")
    return str(info.value), took


@pytest.mark.parametrize(
    ("options", "quoted"),
    [
        ({"python": "/no/such/python3"}, "/no/such/python3"),
        ({"cwd": "not-on-the-nodes"}, "(the cwd option)"),
    ],
    ids=["interpreter", "cwd"],
)
def test_a_worker_that_exits_before_connecting_fails_the_launch_quoting_its_output(
    sge_cluster: SgeCluster, tmp_path: Path, options: dict[str, str], quoted: str
) -> None:
    message, took = launch_error(tmp_path, launch_max=1, **options)
    assert "the worker ended before it connected" in message, message
    assert "SGE keeps no exit status in its queue (qacct -j" in message, message
    assert "its output ends with:" in message and quoted in message, message
    assert took < 30, f"noticed after {took:.1f} s: the launch watch did not see the task end"


def test_without_zombies_a_worker_that_exits_before_connecting_still_fails_the_launch_in_seconds(
    sge_cluster: SgeCluster, tmp_path: Path
) -> None:
    """With ``finished_jobs 0`` SGE keeps no ended task at all (no zombie): the task this
    process saw waiting or running is missing from the next listing, which the scheduler
    layer reports as ended (pycrew.scheduler.departures)."""
    with sge_cluster.global_config(tmp_path / "conf", finished_jobs="0"):
        message, took = launch_error(tmp_path, launch_max=1, python="/no/such/python3")
    assert "the worker ended before it connected" in message, message
    assert "left the sge queue, which keeps no record of ended jobs" in message, message
    assert "finished_jobs is 0; qacct -j" in message, message
    assert "its output ends with:" in message and "/no/such/python3" in message, message
    assert took < 30, f"noticed after {took:.1f} s: the task that left the queue was not reported ended"


def test_a_job_no_queue_can_run_fails_the_launch_in_seconds_with_sges_reason(sge_cluster: SgeCluster, tmp_path: Path) -> None:
    """64 slots per worker on a cell whose queue has 16: SGE would keep the job waiting for
    ever; ``qalter -w v`` says no queue can run it (see pycrew_sge.verify)."""
    message, took = launch_error(tmp_path, launch_max=2, cpus=64, seconds_launch=120)
    assert "launch_max=2" in message and "SGE can never run this job" in message, message
    assert 'cannot run in PE "smp"' in message, message
    assert took < 45, f"noticed after {took:.1f} s"
