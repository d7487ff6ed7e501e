# mypy: disable-error-code="no-untyped-call,import-untyped"
"""An execution deleted from outside pycrew before its tasks connect fails their launch at once.

``gcloud run jobs executions delete`` (or a cleanup script) removes an execution and its
tasks from the API: before, the monitor simply did not list its tasks any more, so core
waited ``seconds_launch`` and then blamed the network ("the workers cannot reach
tcp://..."). Now the launcher confirms a missing execution it launched gone with a direct
``get_execution`` (``NotFound``) and lists its tasks as ``cancelled`` (state ``DELETED``)
with that reason. The emulator's ``faults.stuck`` holds tasks pending, so no worker connects.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from test_cloudrun import jobs_for, stuck_calls

import pycrew
from pycrew.testing.harness import wait_until
from pycrew_cloudrun import CloudRunHandle
from pycrew_emulators.cloudrun import CloudRunEmulator


def all_executions(emulator: CloudRunEmulator) -> list[Any]:
    return list(emulator.executions_client().list_executions(parent=f"{emulator.parent()}/jobs/-"))


@pytest.fixture
def stuck_controller(
    cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any]
) -> Iterator[pycrew.Controller]:
    """A started controller (for worker calls) while tasks stay pending; terminated at teardown."""
    cloudrun_emulator.faults.stuck = True
    c = pycrew.controller("cloudrun", workers=2, host="127.0.0.1", **cloudrun_options).start()
    try:
        yield c
    finally:
        c.terminate()
        cloudrun_emulator.faults.stuck = False


def test_an_execution_deleted_from_outside_before_its_task_connects_fails_the_launch_at_once(
    cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any]
) -> None:
    cloudrun_emulator.faults.stuck = True  # tasks stay pending: no worker connects
    deleted: list[tuple[str, float]] = []
    stop = threading.Event()

    def cleanup() -> None:  # deletes every execution it sees, as a cleanup script would
        client = cloudrun_emulator.executions_client()
        while not stop.is_set():
            for execution in all_executions(cloudrun_emulator):
                client.delete_execution(name=execution.name)
                deleted.append((execution.name, time.monotonic()))
            time.sleep(0.2)

    janitor = threading.Thread(target=cleanup, daemon=True)
    c = pycrew.controller("cloudrun", workers=1, host="127.0.0.1", seconds_launch=60, launch_max=2, **cloudrun_options)
    started = time.monotonic()
    try:
        janitor.start()
        future = c.submit(abs, -1)
        with pytest.raises(pycrew.LaunchError) as err:
            future.result(timeout=30)
        failed = time.monotonic()
    finally:
        stop.set()
        janitor.join(timeout=10)
        c.terminate()
        cloudrun_emulator.faults.stuck = False
    message = str(err.value)
    assert failed - started < 30, f"the LaunchError came after {failed - started:.1f} s"
    assert len(deleted) == 2, f"each of the two launches had its execution deleted once: {deleted}"
    assert failed - deleted[-1][1] < 10, f"the second deletion failed its launch after {failed - deleted[-1][1]:.1f} s"
    assert "launch_max=2" in message, message
    assert "the worker was cancelled before it connected" in message, message
    short = deleted[-1][0].rsplit("/", 1)[-1]
    assert f"its Cloud Run execution {short} was deleted from outside pycrew" in message, message
    assert "cannot reach" not in message, message
    assert not all_executions(cloudrun_emulator), "no execution is left"
    wait_until(lambda: not cloudrun_emulator.runner.alive(), 30, "a worker process is left")


def test_only_executions_deleted_from_outside_are_reported_not_those_pycrew_cancelled(
    cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any], stuck_controller: pycrew.Controller
) -> None:
    c = stuck_controller
    jobs = jobs_for(cloudrun_options)
    ours = jobs.launch(stuck_calls(c, 2))
    theirs = jobs.launch(stuck_calls(c, 2))
    jobs.terminate(ours)  # pycrew cancels it: its end (and its deletion later) is no news
    for handles in (ours, theirs):
        cloudrun_emulator.executions_client().delete_execution(name=handles[0].execution)
    listed = sorted(jobs.workers(c.id), key=lambda w: w.handle.index)
    assert [(w.handle, w.status, w.state, w.ended) for w in listed] == [
        (h, "cancelled", "DELETED", True) for h in theirs
    ], listed
    assert [(w.instance, w.worker, w.controller_id) for w in listed] == [
        ("feed-0", 1, c.id), ("feed-1", 2, c.id)
    ], listed
    short = theirs[0].execution.rsplit("/", 1)[-1]
    assert all(f"its Cloud Run execution {short} was deleted from outside pycrew" in w.reason for w in listed), listed
    assert all(isinstance(w.handle, CloudRunHandle) and w.handle.listed for w in listed), listed
    assert not jobs.workers("another-controller"), "another controller's listing shows none of them"
    jobs.terminate(theirs)  # the controller terminates the workers whose launch failed: forgotten
    assert not jobs.workers(c.id)


def test_an_execution_missing_from_a_lagging_listing_but_still_there_is_not_reported(
    cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any], stuck_controller: pycrew.Controller,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Absence from a listing (which may lag) is never enough: only a ``get_execution`` that
    answers ``NotFound`` is. The Google client's listing is made to lag (it omits the new
    execution); a read still finds it, so nothing is reported, until it is really deleted."""
    c = stuck_controller
    jobs = jobs_for(cloudrun_options)
    handles = jobs.launch(stuck_calls(c, 1))
    execution = handles[0].execution
    client = jobs.clients.executions
    real = client.list_executions

    def lagging(*args: Any, **kwargs: Any) -> list[Any]:
        return [e for e in real(*args, **kwargs) if e.name != execution]

    try:
        monkeypatch.setattr(client, "list_executions", lagging)
        for _ in range(3):
            assert jobs.workers(c.id) == [], "an execution a read still finds is not reported"
        monkeypatch.undo()
        cloudrun_emulator.executions_client().delete_execution(name=execution)
        [worker] = jobs.workers(c.id)
        assert (worker.handle, worker.status, worker.state) == (handles[0], "cancelled", "DELETED"), worker
    finally:
        jobs.terminate(handles)


def test_tasks_pycrew_asked_to_stop_are_not_reported_when_their_execution_is_deleted(
    cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any], stuck_controller: pycrew.Controller
) -> None:
    c = stuck_controller
    jobs = jobs_for(cloudrun_options)
    handles = jobs.launch(stuck_calls(c, 2))
    jobs.terminate(handles[:1])  # remembered: Cloud Run cancels only whole executions, task 1 still pends
    cloudrun_emulator.executions_client().delete_execution(name=handles[0].execution)
    listed = jobs.workers(c.id)
    assert [(w.handle, w.status, w.state) for w in listed] == [(handles[1], "cancelled", "DELETED")], listed
    jobs.terminate(handles[1:])
    assert not jobs.workers(c.id)
