"""A task that closes the worker's socket is not reported as the controller closing it.

From a probe of misbehaving tasks (session 36): ``os.closerange(3, 1000)`` in a task closed
the worker's connection, and the crash quoted the worker's log: "connection to the
controller lost: the controller closed the connection", which sent the user looking at
the controller.
"""

from __future__ import annotations

import os

import pytest

import pycrew


def close_everything() -> int:
    os.closerange(3, 4096)
    return 1


def test_the_crash_says_the_socket_was_closed_in_the_workers_own_process(make_controller) -> None:
    c = make_controller("local", workers=1, crashes_max=1).start()
    with pytest.raises(pycrew.TaskCrashError) as raised:
        c.submit(close_everything).result(timeout=60)
    message = str(raised.value)
    assert "its socket was closed in the worker's own process" in message, message
    assert "the controller closed the connection" not in message, message
    assert c.submit(abs, -2).result(timeout=60) == 2  # a new worker serves on
