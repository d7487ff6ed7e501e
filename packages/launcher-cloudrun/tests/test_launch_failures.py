# mypy: disable-error-code="no-untyped-call,import-untyped"
"""Tasks that Cloud Run cannot start fail the launch at once, with Cloud Run's reason (issue 14).

The emulator fails tasks the way Cloud Run v2 reports them: the task's ``Completed``
condition and ``last_attempt_result`` carry the message (``Image '...' not found.``, the
container failing to start, ``exited with an exit code of N``) and the exit code. The
controller asks the monitor about its launching workers about once a second, so the
:class:`pycrew.LaunchError` names that reason long before ``seconds_launch`` (60 s here).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

import pycrew
from pycrew.testing.harness import unreachable_url, wait_until, with_worker_arg
from pycrew_cloudrun import CloudRunJobs, CloudRunOptions
from pycrew_emulators.cloudrun import CloudRunEmulator

MISSING_IMAGE = "gcr.io/pycrew-test/no-such-image:1"


@pytest.fixture
def controllers() -> Iterator[list[pycrew.Controller]]:
    made: list[pycrew.Controller] = []
    yield made
    for c in made:
        c.terminate()


def launch_error(made: list[pycrew.Controller], options: dict[str, Any], **kw: Any) -> tuple[str, float]:
    """Run one task on a controller whose workers cannot start: the LaunchError's message and how long it took."""
    c = pycrew.controller("cloudrun", host="127.0.0.1", seconds_launch=60, launch_max=2, **{**options, **kw})
    made.append(c)
    started = time.monotonic()
    c.start()
    c.push(abs, (-1,))
    with pytest.raises(pycrew.LaunchError) as caught:
        c.wait(timeout=120)
    return str(caught.value), time.monotonic() - started


def test_an_image_that_cannot_be_pulled_fails_the_launch_with_cloud_runs_reason(
    cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any], controllers: list[pycrew.Controller]
) -> None:
    cloudrun_emulator.runner.missing_images.add(MISSING_IMAGE)
    message, seconds = launch_error(controllers, cloudrun_options, image=MISSING_IMAGE)
    assert seconds < 20, f"the launch failed after {seconds:.1f} s, not long before seconds_launch=60: {message}"
    assert "failed to start a worker 2 times in a row" in message
    assert f"Image '{MISSING_IMAGE}' not found" in message, message


def test_a_missing_interpreter_fails_the_launch_with_cloud_runs_reason_and_the_real_command(
    cloudrun_options: dict[str, Any], controllers: list[pycrew.Controller]
) -> None:
    message, seconds = launch_error(controllers, cloudrun_options, python="/opt/no-such/python3")
    assert seconds < 20, f"the launch failed after {seconds:.1f} s, not long before seconds_launch=60: {message}"
    assert "The container failed to start" in message and "/opt/no-such/python3" in message, message
    assert "The worker command is: /opt/no-such/python3 -m pycrew.worker" in message, (
        f"the message should show the launcher's python option, not the controller's interpreter: {message}"
    )


def test_the_monitor_reports_ended_tasks_with_status_message_and_exit_code(
    cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any], controllers: list[pycrew.Controller]
) -> None:
    c = pycrew.controller("cloudrun", host="127.0.0.1", **cloudrun_options)
    controllers.append(c)
    c.start()
    call = with_worker_arg(c.launcher.call(worker=1, url=unreachable_url(c)), "--seconds-launch", "1")
    jobs = CloudRunJobs(CloudRunOptions.from_mapping(cloudrun_options))
    [handle] = jobs.launch([call])
    assert cloudrun_emulator.wait_execution(handle.execution, timeout=30) == "failed"
    [worker] = wait_until(lambda: [w for w in jobs.workers(c.id) if w.ended], 30, "the failed task is not listed")
    assert (worker.instance, worker.status, worker.state, worker.exit_code) == (call.instance, "failed", "FAILED", 3)
    assert "exit code of 3" in worker.reason, worker.reason
    other = CloudRunJobs(CloudRunOptions.from_mapping({**cloudrun_options, "seconds_poll": 0.0}))
    assert not [w for w in other.workers(c.id) if w.ended], "ended tasks are listed by the process that launched them"
    assert pycrew.Monitor("cloudrun", **cloudrun_options).list(c.id) == [], "Monitor.list shows live workers only"
    jobs.terminate([handle])
    assert not [w for w in jobs.workers(c.id) if w.ended], "a terminated worker is still listed"


QUOTA = "Quota exceeded for quota metric 'Total CPU allocation' and limit 'Total CPU allocation per project per region'"


def test_a_used_up_resource_quota_fails_the_launch_at_once_naming_it(
    cloudrun_emulator: CloudRunEmulator, cloudrun_options: dict[str, Any], controllers: list[pycrew.Controller]
) -> None:
    """A 429 whose ErrorInfo says RESOURCE_QUOTA_EXCEEDED does not refill with time: before, it was retried as a
    rate limit, six attempts per launch and then again for seconds_unreachable (300 s here)."""
    cloudrun_emulator.faults.throttle_next(100, code="RESOURCE_QUOTA_EXCEEDED", message=QUOTA, only="RunJob")
    c = pycrew.controller("cloudrun", host="127.0.0.1", seconds_launch=60, launch_max=2, **cloudrun_options)
    controllers.append(c)
    started = time.monotonic()
    c.push(abs, (-1,))
    with pytest.raises(pycrew.LaunchError) as caught:
        c.wait(timeout=30)
    message, seconds = str(caught.value), time.monotonic() - started
    assert seconds < 15, f"the launch failed after {seconds:.1f} s, not at once: {message}"
    assert "a resource quota of run.googleapis.com is used up" in message and "Total CPU allocation per project per region" in message, message
    assert "does not refill with time" in message, message
    run_jobs = [op for op, _ in cloudrun_emulator.faults.injected if op == "RunJob"]
    assert len(run_jobs) == 2, f"each of the launch_max=2 launches should try once, not retry: {len(run_jobs)} RunJob calls"
