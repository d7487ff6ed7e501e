"""The awsbatch launcher's pycrew_worker_logs hook: a job's CloudWatch log through the emulator, via pycrew.Monitor."""

from __future__ import annotations

import time
from typing import Any

import pytest
from awsbatch_helpers import calls, info, make_client

import pycrew
from pycrew.testing.harness import wait_until, with_worker_arg
from pycrew_awsbatch.monitor import LOG_PAGE_MAX
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


def test_the_log_tail_reads_only_the_end_of_a_long_stream(batch: AwsBatchEmulator, options: dict[str, Any]) -> None:
    client = make_client(options)
    call = with_worker_arg(calls(1)[0], "--seconds-launch", "1")
    [handle] = client.launch(info(), [call])
    try:
        batch.wait_for_status(handle, "FAILED", timeout=30)
        own = wait_until(lambda: client.log_lines(handle), 15, "no log lines reached CloudWatch")
        job = client.details(handle)
        assert job is not None and job.log_stream
        # the stream grows long, as a chatty worker's would: 2.5 pages of GetLogEvents
        logs = batch.boto3_client("logs", endpoint_url=batch.moto_url)
        later = int(time.time() * 1000) + 1
        extra = [f"chatty line {k}" for k in range(LOG_PAGE_MAX * 5 // 2)]
        for first in range(0, len(extra), LOG_PAGE_MAX):
            logs.put_log_events(logGroupName=job.log_group, logStreamName=job.log_stream,
                                logEvents=[{"timestamp": later, "message": m} for m in extra[first:first + LOG_PAGE_MAX]])
        received: list[int] = []  # events per GetLogEvents reply, seen on the client's real requests

        def count(parsed: dict[str, Any], **_: Any) -> None:
            received.append(len(parsed.get("events", [])))

        client.api.client("logs").meta.events.register("after-call.logs.GetLogEvents", count)
        monitor = pycrew.Monitor("awsbatch", **options)
        worker = pycrew.WorkerInfo(id=handle, handle=handle, launcher="awsbatch")
        assert client.log_lines(handle, limit=3) == extra[-3:]
        assert received == [3], f"the tail of 3 lines must cost one call of 3 events, got {received}"
        received.clear()
        whole = client.log_lines(handle)
        assert whole == own + extra, "the whole stream, in order"
        assert len(received) >= 3, received
        received.clear()
        tail = client.log_lines(handle, limit=LOG_PAGE_MAX + 5)
        assert tail == whole[-(LOG_PAGE_MAX + 5):], "pages read backwards must join in time order"
        assert received == [LOG_PAGE_MAX, 5], received
        received.clear()
        assert client.log_lines(handle, limit=len(whole) + 100) == whole, "a limit past the head gives everything"
        assert monitor.logs(worker, lines=2) == f"{extra[-2]}\n{extra[-1]}\n"
        with pytest.raises(ValueError, match="limit must be an int >= 1 or None"):
            client.log_lines(handle, limit=0)
    finally:
        client.terminate([handle])
