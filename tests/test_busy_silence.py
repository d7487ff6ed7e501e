"""A task that holds the GIL for longer than ``seconds_heartbeat_timeout`` is not a crash.

Its worker cannot send heartbeats while the task is in one long call into C code, but the
worker's machine still acknowledges the connection, which the dispatcher asks the kernel
about (TCP_INFO, ``socket`` wire on Linux). On commit 6e08824 the first test failed: the
worker was dropped as silent, its task counted a crash and rerun until ``crashes_max``.
The second keeps the bound: a worker silent past ``seconds_busy_silence`` is dropped.
"""

from __future__ import annotations

import logging
import sys

import pytest

import pycrew
from helpers import hold_the_gil, identity

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the kernel tells only on Linux (TCP_INFO)")

FAST_BEATS = {"seconds_heartbeat": 0.25, "seconds_heartbeat_timeout": 1.5}


def test_a_task_holding_the_gil_past_the_heartbeat_timeout_finishes_on_its_worker(make_controller, caplog):
    c = make_controller("local", workers=1, wire="socket", crashes_max=1, **FAST_BEATS).start()
    with caplog.at_level(logging.WARNING, logger="pycrew.control.dispatcher"):
        seconds = c.submit(hold_the_gil, 4.0).result(timeout=120)
    assert seconds > 1.5 + 1.0, f"the task held the GIL only {seconds:.1f} s: the test proves nothing"
    summary = c.summary()
    assert (summary.controller.crash, summary.controller.retries) == (0, 0)
    assert [w.instances for w in summary.workers] == [1], "the busy worker was dropped"
    assert "probably holds the GIL" in caplog.text
    assert c.submit(identity, "next").result(timeout=30) == "next", "the worker did not go on after the long call"


def test_the_controller_holding_the_gil_past_the_heartbeat_timeout_keeps_its_workers(make_controller, caplog):
    """The other way round: the controller's process cannot run (here: this test's thread
    holds the GIL), so its dispatcher sends no heartbeats; its machine still acknowledges
    the workers' ones. The workers wait, and the dispatcher does not count its own stall
    against them."""
    c = make_controller("local", workers=1, wire="socket", **FAST_BEATS).start()
    first = c.submit(identity, "before").result(timeout=60)
    with caplog.at_level(logging.WARNING, logger="pycrew.control.dispatcher"):
        seconds = hold_the_gil(4.0)
        assert c.submit(identity, "after").result(timeout=30) == "after"
    assert seconds > 1.5 + 1.0, f"the test held the GIL only {seconds:.1f} s: it proves nothing"
    assert first == "before"
    summary = c.summary()
    assert (summary.controller.crash, summary.controller.retries) == (0, 0)
    assert [w.instances for w in summary.workers] == [1], "the worker left (or was dropped) during the stall"
    assert "the dispatcher could not run for" in caplog.text


def test_a_task_holding_the_gil_longer_than_seconds_busy_silence_loses_its_worker(make_controller):
    # (a suspended job, or a frozen process, whose machine answers for it, is dropped so)
    c = make_controller("local", workers=1, wire="socket", crashes_max=1, seconds_busy_silence=2.0, **FAST_BEATS).start()
    future = c.submit(hold_the_gil, 6.0)
    with pytest.raises(pycrew.TaskCrashError) as info:
        future.result(timeout=120)
    assert "no heartbeat for" in str(info.value)
