"""The awsbatch launcher's pycrew_worker_logs hook: a job's CloudWatch log through the emulator, via pycrew.Monitor."""

from __future__ import annotations

from typing import Any

import pytest
from awsbatch_helpers import calls, info, make_client

import pycrew
from pycrew.testing.harness import wait_until, with_worker_arg
from pycrew_emulators.awsbatch import AwsBatchEmulator


def test_monitor_logs_reads_the_job_s_cloudwatch_stream(batch: AwsBatchEmulator, options: dict[str, Any]) -> None:
    client = make_client(options)
    call = with_worker_arg(calls(1)[0], "--seconds-launch", "1")
    [handle] = client.launch(info(), [call])
    try:
        batch.wait_for_status(handle, "FAILED", timeout=30)
        monitor = pycrew.Monitor("awsbatch", **options)
        worker = pycrew.WorkerInfo(id=handle, handle=handle, launcher="awsbatch")
        text = wait_until(lambda: monitor.logs(worker, lines=None), 15, "no log lines reached CloudWatch")
        assert f"pycrew worker {call.instance} could not connect" in text, text
        last = monitor.logs(worker, lines=1)
        assert last.endswith("\n") and last.count("\n") == 1 and text.endswith(last), (last, text)
    finally:
        client.terminate([handle])


def test_logs_of_an_unknown_job_is_logs_unavailable(batch: AwsBatchEmulator, options: dict[str, Any]) -> None:
    job = "00000000-0000-0000-0000-000000000000"
    worker = pycrew.WorkerInfo(id=job, handle=job, launcher="awsbatch")
    with pytest.raises(pycrew.LogsUnavailableError, match="launcher 'awsbatch': AWS Batch does not know the job"):
        pycrew.Monitor("awsbatch", **options).logs(worker)
