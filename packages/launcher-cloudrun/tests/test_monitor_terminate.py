# mypy: disable-error-code="no-untyped-call,import-untyped"
"""A monitor terminating single tasks: Cloud Run cancels whole executions, so it is done at once or refused, never claimed.

The monitor here has no record of which tasks were asked to stop before (as a separate
``pycrew monitor cloudrun terminate ID`` run has none): the executions are launched by a
:class:`CloudRunJobs` of their own, the monitor uses the plugin's.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from test_cloudrun import jobs_for, live_tasks, stuck_calls

import pycrew
from pycrew_cloudrun import NotTerminatedError
from pycrew_emulators.cloudrun import CloudRunEmulator


@pytest.fixture
def pending_pair(
    cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any]
) -> Iterator[tuple[pycrew.Controller, str]]:
    """A started controller and an execution of two pending tasks tagged with it (cancelled at teardown)."""
    cloudrun_emulator.faults.stuck = True  # the tasks stay pending: no worker process is started
    c = pycrew.controller("cloudrun", workers=2, host="127.0.0.1", **cloudrun_options).start()
    jobs = jobs_for(cloudrun_options)
    handles = jobs.launch(stuck_calls(c, 2))
    try:
        yield c, handles[0].execution
    finally:
        c.terminate()
        jobs.cancel_executions([handles[0].execution])
        cloudrun_emulator.faults.stuck = False


def listed_task(workers: list[pycrew.WorkerInfo], index: int) -> pycrew.WorkerInfo:
    """The listed worker that is task ``index``."""
    [found] = [w for w in workers if w.handle.index == index]
    return found


def test_monitor_terminating_one_orphan_task_cancels_its_execution(
    cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any], pending_pair: tuple[pycrew.Controller, str]
) -> None:
    c, execution = pending_pair
    c.terminate()  # its record ends: the execution's tasks (not its own launches) are orphans
    monitor = pycrew.Monitor("cloudrun", **cloudrun_options)
    orphans = monitor.orphans()
    assert len(orphans) == 2, f"both pending tasks should be listed as orphans: {orphans}"
    assert monitor.terminate([listed_task(orphans, 0)]) == 1
    assert cloudrun_emulator.wait_execution(execution, timeout=30) == "cancelled", (
        "the other task is an orphan too: nothing of value runs in the execution, so terminating one task must cancel it"
    )
    cloudrun_emulator.faults.stuck = False
    assert cloudrun_emulator.run_ids(execution) == {0: [], 1: []}, "an orphan task of the cancelled execution started"


def test_monitor_terminating_one_task_of_a_live_controller_cancels_nothing_and_says_why(
    cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any], pending_pair: tuple[pycrew.Controller, str]
) -> None:
    c, execution = pending_pair
    monitor = pycrew.Monitor("cloudrun", **cloudrun_options)
    listed = monitor.list(c.id)
    first, second = listed_task(listed, 0), listed_task(listed, 1)
    with pytest.raises(NotTerminatedError) as err:
        monitor.terminate([first])
    message = str(err.value)
    short = execution.rsplit("/", 1)[-1]
    for part in (f"execution {short} were not terminated", "Cloud Run stops only whole executions",
                 f"{short}-task1", c.id, f"terminate {first.id} {second.id}", "--orphans"):
        assert part in message, f"{part!r} missing from: {message}"
    assert err.value.tasks == (first.id,)
    assert live_tasks(cloudrun_emulator, execution) == [0, 1], "the live controller's other task was cancelled"
    with pytest.raises(NotTerminatedError):  # the first request was refused, not kept to add up with this one
        monitor.terminate([second])
    assert live_tasks(cloudrun_emulator, execution) == [0, 1]


def test_monitor_terminating_every_live_task_of_a_live_controller_cancels_the_execution(
    cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any], pending_pair: tuple[pycrew.Controller, str]
) -> None:
    c, execution = pending_pair
    monitor = pycrew.Monitor("cloudrun", **cloudrun_options)
    assert monitor.terminate(monitor.list(c.id)) == 2
    assert cloudrun_emulator.wait_execution(execution, timeout=30) == "cancelled"


def test_a_termination_the_unavailable_api_stopped_stays_transient(
    cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any], pending_pair: tuple[pycrew.Controller, str]
) -> None:
    """Core logs a transient failure to terminate as a WARNING; on 5def9d3 the error that
    gathered the executions' errors dropped the flag, and a 503 outage during terminate()
    was logged as an ERROR with a traceback (probe J, 2 of 2 runs)."""
    from pycrew_cloudrun import CloudRunError

    c, execution = pending_pair
    jobs = jobs_for(cloudrun_options)
    tasks = [w.handle for w in jobs.workers(c.id) if w.handle.execution == execution]
    assert len(tasks) == 2
    cloudrun_emulator.faults.fail_next(100_000, status=503)
    try:
        with pytest.raises(CloudRunError) as info:
            jobs.terminate(tasks)
    finally:
        cloudrun_emulator.faults.reset()
    assert info.value.transient, f"every request failed with 503, yet not transient: {info.value}"
