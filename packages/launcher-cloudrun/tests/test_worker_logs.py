# mypy: disable-error-code="no-untyped-call,import-untyped"
"""The cloudrun launcher's worker logs (pycrew_worker_logs): Cloud Logging entries of a task, through the emulator.

The worker's output reaches the emulator's ``POST /v2/entries:list`` as Cloud Run sends it
to Cloud Logging, and the launcher reads it with google-cloud-logging's ``list_entries``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import pycrew
from pycrew.testing.harness import unreachable_url, wait_until, with_worker_arg
from pycrew_cloudrun import CloudRunHandle, CloudRunJobs, CloudRunOptions
from pycrew_cloudrun.worker_logs import entry_text, task_filter
from pycrew_emulators.cloudrun import CloudRunEmulator

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def controllers() -> Iterator[list[pycrew.Controller]]:
    """Controllers a test makes; each is terminated at teardown."""
    made: list[pycrew.Controller] = []
    yield made
    for c in made:
        c.terminate()


def text_when(read: Callable[[], str], wanted: str, timeout: float = 30) -> str:
    """Poll ``read`` (a logs call) until its text holds ``wanted``; "no entries yet" counts as not yet."""

    def attempt() -> str:
        try:
            text = read()
        except pycrew.LogsUnavailableError:
            return ""
        return text if wanted in text else ""

    return wait_until(attempt, timeout, lambda: f"{wanted!r} never appeared in the worker's logs")


def listed(monitor: pycrew.Monitor, controller_id: str, status: str) -> pycrew.WorkerInfo:
    """The one worker of ``controller_id`` the monitor lists with ``status`` (waits for it)."""
    found = wait_until(
        lambda: [w for w in monitor.list(controller_id, ended=True) if w.status == status],
        60, lambda: f"no {status} worker of {controller_id}: {monitor.list(controller_id, ended=True)}",
    )
    assert len(found) == 1, found
    return found[0]


def stuck_worker(jobs: CloudRunJobs, c: pycrew.Controller) -> CloudRunHandle:
    """Launch one worker that never connects: it waits 1 s, says why on stderr, and exits."""
    call = with_worker_arg(c.launcher.call(worker=1, url=unreachable_url(c)), "--seconds-launch", "1")
    [handle] = jobs.launch([call])
    assert isinstance(handle, CloudRunHandle)
    return handle


def test_a_task_s_print_is_in_controller_and_monitor_logs_while_and_after_the_worker_runs(
    cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any], controllers: list[pycrew.Controller]
) -> None:
    def shout(word: str) -> str:  # defined here, so it travels by value (the worker cannot import this module)
        for n in (1, 2, 3):
            print(f"task says {word} {n}", flush=True)
        return word

    c = pycrew.controller("cloudrun", workers=1, host="127.0.0.1", seconds_idle=5, **cloudrun_options)
    controllers.append(c)
    assert c.submit(shout, "alpha").result(timeout=60) == "alpha"
    monitor = pycrew.Monitor("cloudrun", **cloudrun_options)
    running = listed(monitor, c.id, "running")
    text = text_when(lambda: c.logs(worker=1), "task says alpha")
    assert text.endswith("\n"), text
    assert "task says alpha" in text_when(lambda: monitor.logs(running.id), "task says alpha"), "Monitor.logs by id, running"

    # The worker idles out; its task ends, and the monitor stops listing it once the controller
    # has cancelled its execution: its id, a task name, still finds it.
    assert isinstance(running.handle, CloudRunHandle)
    outcome = cloudrun_emulator.wait_execution(running.handle.execution, timeout=60)
    assert outcome != "running", "the worker did not idle out"
    after = monitor.logs(running, lines=None)
    assert monitor.logs(pycrew.WorkerInfo(id=running.id, handle=running.id, launcher="cloudrun"), lines=None) == after
    wait_until(lambda: running.id not in [w.id for w in monitor.list(c.id, ended=True)], 30,
               "the controller never cancelled the ended worker's execution (the monitor still lists it)")
    assert monitor.logs(running.id, lines=None) == after, "Monitor.logs(id) (the CLI's way) of an unlisted worker"
    assert "task says alpha 1\ntask says alpha 2\ntask says alpha 3\n" in after, f"the output must stay readable: {after!r}"
    two = c.logs(worker=1, lines=2)
    assert two.count("\n") == 2 and after.endswith(two), f"lines=2 must be the last two lines: {two!r} of {after!r}"
    c.terminate()
    assert c.logs(worker=1, lines=None) == after, "controller.logs must still read it after terminate"


def test_a_worker_that_never_connects_shows_why_in_its_last_line(
    cloudrun_options: dict[str, Any], controllers: list[pycrew.Controller]
) -> None:
    c = pycrew.controller("cloudrun", workers=1, host="127.0.0.1", **cloudrun_options)
    controllers.append(c)
    jobs = CloudRunJobs(CloudRunOptions.from_mapping(cloudrun_options))
    handle = stuck_worker(jobs, c)
    try:
        worker = pycrew.WorkerInfo(id=handle.execution, handle=handle, launcher="cloudrun")
        monitor = pycrew.Monitor("cloudrun", **cloudrun_options)
        everything = text_when(lambda: monitor.logs(worker, lines=None), "could not connect")
        assert f"pycrew worker {handle.instance} could not connect" in everything, everything
        last = monitor.logs(worker, lines=1)
        assert last.count("\n") == 1 and everything.endswith(last) and "could not connect" in last, (last, everything)
    finally:
        jobs.terminate([handle])


def test_a_task_that_has_not_started_has_no_entries_yet(
    cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any], controllers: list[pycrew.Controller]
) -> None:
    c = pycrew.controller("cloudrun", workers=1, host="127.0.0.1", **cloudrun_options)
    controllers.append(c)
    jobs = CloudRunJobs(CloudRunOptions.from_mapping(cloudrun_options))
    cloudrun_emulator.faults.stuck = True  # tasks stay pending
    handle = stuck_worker(jobs, c)
    try:
        worker = pycrew.WorkerInfo(id=handle.execution, handle=handle, launcher="cloudrun")
        with pytest.raises(pycrew.LogsUnavailableError, match=r"launcher 'cloudrun': Cloud Logging has no entries .* yet") as err:
            pycrew.Monitor("cloudrun", **cloudrun_options).logs(worker)
        assert task_filter(handle, 0)[:80] in str(err.value), "the message shows the filter to paste in Logs Explorer"
    finally:
        cloudrun_emulator.faults.stuck = False
        jobs.terminate([handle])


def test_a_refused_query_is_logs_unavailable_saying_why_and_transient_faults_are_retried(
    cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any], controllers: list[pycrew.Controller]
) -> None:
    c = pycrew.controller("cloudrun", workers=1, host="127.0.0.1", **cloudrun_options)
    controllers.append(c)
    jobs = CloudRunJobs(CloudRunOptions.from_mapping(cloudrun_options))
    handle = stuck_worker(jobs, c)
    try:
        worker = pycrew.WorkerInfo(id=handle.execution, handle=handle, launcher="cloudrun")
        monitor = pycrew.Monitor("cloudrun", **cloudrun_options)
        text_when(lambda: monitor.logs(worker), "could not connect")
        cloudrun_emulator.faults.fail_next(1, status=403, code="PERMISSION_DENIED", message="Permission 'logging.logEntries.list' denied",
                                           only="ListLogEntries")
        with pytest.raises(pycrew.LogsUnavailableError, match=r"Cloud Logging refused .*denied.*needs logging\.logEntries\.list"):
            monitor.logs(worker)
        cloudrun_emulator.faults.fail_next(2, status=503, only="ListLogEntries")
        assert "could not connect" in monitor.logs(worker), "two 503s are retried"
        assert cloudrun_emulator.faults.pending_count() == 0
    finally:
        jobs.terminate([handle])


def test_a_handle_that_names_no_task_is_refused_clearly(cloudrun_options: dict[str, Any]) -> None:
    monitor = pycrew.Monitor("cloudrun", **cloudrun_options)
    execution = "projects/test-project/locations/us-central1/jobs/j/executions/e"
    worker = pycrew.WorkerInfo(id="x", handle=execution, launcher="cloudrun")
    with pytest.raises(pycrew.LogsUnavailableError, match="needs a CloudRunHandle or a task's full name"):
        monitor.logs(worker)
    gone = pycrew.WorkerInfo(id="x", handle=f"{execution}/tasks/e-task0", launcher="cloudrun")
    with pytest.raises(pycrew.LogsUnavailableError, match=r"Cloud Run does not know the task .*/tasks/e-task0"):
        monitor.logs(gone)



def test_an_entry_s_line_is_its_text_or_its_json_message() -> None:
    from google.cloud.logging_v2.entries import StructEntry, TextEntry

    assert entry_text(TextEntry(payload="plain line")) == "plain line"
    assert entry_text(StructEntry(payload={"message": "structured line", "severity": "INFO"})) == "structured line"
    assert entry_text(StructEntry(payload={"b": 1, "a": 2})) == '{"a": 2, "b": 1}', "JSON without message: the JSON"
