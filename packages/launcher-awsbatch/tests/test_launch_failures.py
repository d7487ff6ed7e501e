"""Workers that AWS Batch cannot start fail the launch at once, with AWS's reason (issue 14).

The emulator fails jobs the way AWS does: an image it cannot pull ends the job FAILED with
``statusReason`` ``CannotPullContainerError: ...``, a command that cannot start with
``CannotStartContainerError: ...``. The controller asks the monitor about its launching
workers about once a second, so the :class:`pycrew.LaunchError` names that reason long
before ``seconds_launch`` (60 s here) would have run out.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from awsbatch_helpers import calls, emulator_options, info, make_client

import pycrew
from pycrew.testing.harness import wait_until
from pycrew_emulators.awsbatch import AwsBatchEmulator

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("private_state")]

MISSING_IMAGE = "ghcr.io/pycrew/no-such-image:1"


def launch_error(options: dict[str, Any], **kw: Any) -> tuple[str, float]:
    """Run one task on a controller whose workers cannot start: the LaunchError's message and how long it took."""
    c = pycrew.controller("awsbatch", host="127.0.0.1", seconds_launch=60, launch_max=2, **options, **kw)
    started = time.monotonic()
    try:
        c.start()
        c.push(abs, (-1,))
        with pytest.raises(pycrew.LaunchError) as caught:
            c.wait(timeout=120)
        return str(caught.value), time.monotonic() - started
    finally:
        c.terminate()


def test_an_image_that_cannot_be_pulled_fails_the_launch_with_awss_reason(batch: AwsBatchEmulator, execution_role: str) -> None:
    batch.runner.missing_images.add(MISSING_IMAGE)
    message, seconds = launch_error(emulator_options(batch, execution_role, image=MISSING_IMAGE))
    assert seconds < 30, f"the launch failed after {seconds:.1f} s, not long before seconds_launch=60: {message}"
    assert "failed to start a worker 2 times in a row" in message
    assert "CannotPullContainerError" in message and MISSING_IMAGE in message, message


def test_a_missing_interpreter_fails_the_launch_with_awss_reason_and_the_real_command(
    batch: AwsBatchEmulator, execution_role: str
) -> None:
    message, seconds = launch_error(emulator_options(batch, execution_role, python="/opt/no-such/python3"))
    assert seconds < 30, f"the launch failed after {seconds:.1f} s, not long before seconds_launch=60: {message}"
    assert "CannotStartContainerError" in message, message
    assert "The worker command is: /opt/no-such/python3 -m pycrew.worker" in message, (
        f"the message should show the launcher's python option, not the controller's interpreter: {message}"
    )


def test_the_monitor_reports_ended_workers_with_status_reason_and_exit_code(batch: AwsBatchEmulator, options: dict[str, Any]) -> None:
    client = make_client(options)
    starter = make_client(options, python="/opt/no-such/python3")
    [exits] = client.launch(info("c1"), [calls(1, controller_id="c1", seconds_launch=1)[0]])
    [cannot_start] = starter.launch(info("c1"), calls(1, controller_id="c1"))
    try:
        for job in (exits, cannot_start):
            batch.wait_for_status(job, "FAILED", timeout=30)
        [worker] = wait_until(lambda: [w for w in client.workers("c1") if w.ended], 30, "no ended worker listed")
        assert (worker.handle, worker.status, worker.state, worker.exit_code) == (exits, "failed", "FAILED", 3)
        assert worker.instance == calls(1)[0].instance and worker.worker == 1
        assert worker.reason.startswith("Essential container in task exited"), worker.reason
        assert "could not connect" in worker.reason, f"the log tail should say why the worker gave up: {worker.reason}"
        [other] = [w for w in starter.workers("c1") if w.ended]  # each client lists the ended workers it launched
        assert (other.handle, other.status) == (cannot_start, "failed")
        assert other.reason.startswith("CannotStartContainerError:"), other.reason
        assert not [w for w in client.workers("c2") if w.ended], "another controller's list shows c1's workers"
        client.terminate([exits])
        assert not [w for w in client.workers("c1") if w.ended], "a terminated worker is still listed"
    finally:
        client.terminate([exits])
        starter.terminate([cannot_start])


BLOCKED = (
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement (vCPU/memory/GPU) is higher than that "
    "can be met by the CE(s) attached to the job queue."
)


def test_a_job_queue_blocked_by_a_misconfiguration_fails_the_launch_with_awss_reason(
    batch: AwsBatchEmulator, execution_role: str
) -> None:
    """AWS Batch keeps such a job RUNNABLE for ever and says why in its statusReason. Before,
    each launch failed only after seconds_launch (60 s here, 120 s in all)."""
    assert batch.docker is not None
    batch.docker.blocked_reason = BLOCKED
    message, seconds = launch_error(emulator_options(batch, execution_role))
    assert seconds < 30, f"the launch failed after {seconds:.1f} s, not long before seconds_launch=60: {message}"
    assert 'pending for good: AWS Batch says "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT' in message, message


def test_a_job_blocked_for_good_is_listed_as_queued(batch: AwsBatchEmulator, options: dict[str, Any]) -> None:
    """Such a job is failed for the launch check, yet it stays RUNNABLE: before, the monitor
    reported it ended, so ``pycrew monitor awsbatch terminate --orphans`` left it in the queue."""
    assert batch.docker is not None
    batch.docker.blocked_reason = BLOCKED
    client = make_client(options)
    [job] = client.launch(info("c1"), calls(1, controller_id="c1", seconds_launch=1))
    try:
        [worker] = wait_until(lambda: [w for w in client.workers("c1") if w.status == "failed"], 30, "no failed worker listed")
        assert (worker.state, worker.queued, worker.held) == ("RUNNABLE", True, True), worker
    finally:
        batch.docker.blocked_reason = ""
        client.terminate([job])


def test_a_queue_short_of_capacity_keeps_the_job_waiting(batch: AwsBatchEmulator, options: dict[str, Any]) -> None:
    """CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY passes when capacity frees up: the job stays
    pending with AWS's reason, and starts once the queue is unblocked."""
    assert batch.docker is not None
    batch.docker.blocked_reason = "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY - There is no Spot capacity available."
    client = make_client(options)
    [job] = client.launch(info("c1"), calls(1, controller_id="c1", seconds_launch=1))
    try:
        [worker] = wait_until(lambda: [w for w in client.workers("c1") if w.reason.startswith("CAPACITY:")], 30, "no reason listed")
        assert (worker.status, worker.state) == ("pending", "RUNNABLE")
        batch.docker.blocked_reason = ""
        batch.wait_for_status(job, "FAILED", timeout=60)  # it ran: the worker finds no controller and gives up
        assert batch.pid_of(job) is not None
    finally:
        client.terminate([job])
