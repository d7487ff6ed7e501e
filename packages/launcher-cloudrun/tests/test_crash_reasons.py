# mypy: disable-error-code="no-untyped-call,import-untyped"
"""A worker lost while it ran a task, on the Cloud Run emulator: the TaskCrashError quotes
what Cloud Run says of its task (the ``Completed`` condition's message, the
``last_attempt_result``'s exit code or signal).

The monitor must report the worker ended within the 2 s core waits after the connection is
lost, or the message lacks "the platform reports the worker as". A worker that killed
itself or exited already said so on 4e4826a (these two guard it); one over its memory
limit ran on, unkilled, since the emulator enforced no limit.
"""

from __future__ import annotations

from typing import Any

import pytest

import pycrew

pytestmark = pytest.mark.slow


def crash_message(options: dict[str, Any], fn: Any, *args: Any, **kw: Any) -> str:
    """The TaskCrashError's message of ``fn(*args)`` on one worker, with crashes_max=1."""
    with pycrew.controller("cloudrun", host="127.0.0.1", workers=1, crashes_max=1, **{**options, **kw}) as c:
        future = c.submit(fn, *args)
        with pytest.raises(pycrew.TaskCrashError) as raised:
            future.result(timeout=120)
    return str(raised.value)


def test_a_task_that_sigkilled_its_worker_quotes_the_signal(cloudrun_options: dict[str, Any]) -> None:
    def print_then_kill(line: str) -> None:  # (a closure: sent by value)
        import os
        import signal

        print(line, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    message = crash_message(cloudrun_options, print_then_kill, "loading the model: 41 GiB of 40 GiB")
    assert "(connection lost); the platform reports the worker as FAILED" in message, message
    assert "exit code 137" in message, message


def test_a_task_that_exited_its_worker_quotes_the_exit_code(cloudrun_options: dict[str, Any]) -> None:
    def print_then_exit(code: int, line: str) -> None:  # (a closure: sent by value)
        import os

        print(line, flush=True)
        os._exit(code)

    message = crash_message(cloudrun_options, print_then_exit, 3, "CUDA error: an illegal memory access was encountered")
    assert "(connection lost); the platform reports the worker as FAILED" in message, message
    assert "exit code 3" in message, message


def test_a_task_over_the_memory_limit_says_so(cloudrun_options: dict[str, Any]) -> None:
    """On 4e4826a the task ran on: the emulator enforced no memory limit."""

    def fill_memory(mib: int) -> None:  # (a closure: sent by value) the emulator, as Cloud Run, kills it
        import time

        block = bytearray(mib * 2**20)
        block[::4096] = b"x" * len(block[::4096])
        time.sleep(60)

    message = crash_message(cloudrun_options, fill_memory, 300, memory="200Mi")
    assert "(connection lost); the platform reports the worker as FAILED" in message, message
    assert "Memory limit of 200 MiB exceeded" in message, message
