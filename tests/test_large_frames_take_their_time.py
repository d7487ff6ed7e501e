"""A frame of hundreds of MB takes seconds to travel; that time is nobody's fault (a probe, on
5b5e0b7, with the ``nng`` wire, whose worker-to-dispatcher frames go as 4 KiB fragments at
~25 MB/s here):

- A 300 MB argument that took longer than two heartbeats to reach its worker counted as a
  lost frame: the worker was replaced and the task sent to the next, to be "lost" again, for
  good (79 replacements in 100 s, the future never resolved).
- A task that returned 300 MB within its time limit was timed out while its result arrived,
  the finished result thrown away ("the task ran longer than seconds_timeout=1 s").
- A worker sending a result that took longer than ``seconds_heartbeat_timeout`` to arrive was
  dropped as silent.
"""

from __future__ import annotations

import sys

import cloudpickle

import pycrew

cloudpickle.register_pickle_by_value(sys.modules[__name__])

MB = 1 << 20


def length(data: bytes) -> int:
    return len(data)


def made_then_slept(size: int, seconds: float) -> bytes:
    import time

    data = b"r" * size
    time.sleep(seconds)
    return data


def _grace(c: pycrew.Controller, seconds: float) -> None:
    """How long past a task's time limit the dispatcher waits for its worker (5 s by default)."""
    d = c._dispatcher
    d.settings = type(d.settings)(**{**d.settings.__dict__, "seconds_grace": seconds})


def test_a_large_argument_slower_than_two_heartbeats_is_not_a_lost_frame(make_controller):
    c = make_controller("local", workers=1, wire="nng", seconds_heartbeat=0.05, bytes_max=1 << 30).start()
    assert c.submit(abs, -1).result(timeout=60) == 1
    c.push(length, args=(b"a" * (200 * MB),), name="big")
    assert c.wait(timeout=120), "the task with a 200 MB argument never resolved"
    result = c.pop()
    assert (result.status, result.result, result.attempts) == ("success", 200 * MB, 1), result.error
    assert c.summary().controller.retries == 0


def test_a_result_still_arriving_is_not_time_the_task_ran(make_controller):
    c = make_controller("local", workers=1, wire="nng", bytes_max=1 << 30).start()
    assert c.submit(abs, -1).result(timeout=60) == 1
    _grace(c, 0.5)  # the dispatcher replaces a worker 0.5 s past its task's limit
    c.push(made_then_slept, args=(100 * MB, 0.1), name="big", seconds_timeout=0.5)  # ~4 s to arrive on nng
    assert c.wait(timeout=120)
    result = c.pop()
    assert result.status == "success", result.error
    assert len(result.result) == 100 * MB and result.attempts == 1


def test_a_worker_sending_a_result_slower_than_the_silence_timeout_is_not_silent(make_controller):
    c = make_controller(
        "local", workers=1, wire="nng", bytes_max=1 << 30, seconds_heartbeat=0.1, seconds_heartbeat_timeout=0.5,
    ).start()  # (nng cannot tell a busy worker from a gone one: silence is all it has)
    assert c.submit(abs, -1).result(timeout=60) == 1
    c.push(made_then_slept, args=(100 * MB, 0.0), name="big")
    assert c.wait(timeout=120)
    result = c.pop()
    assert result.status == "success", result.error
    assert len(result.result) == 100 * MB and result.attempts == 1
    assert c.summary().controller.retries == 0


def test_a_task_whose_frames_keep_being_lost_crashes_out_instead_of_going_round_for_good(make_controller, monkeypatch):
    """Were frames lost for good (here: any frame not acknowledged within two heartbeats counts
    as lost, as every frame of 200 MB did before), the task would go from worker to worker
    forever, unpenalised; from its third sending each loss counts a crash."""
    from pycrew.control import frame_loss

    monkeypatch.setattr(frame_loss, "BYTES_PER_SECOND", 1e15)
    c = make_controller("local", workers=1, wire="nng", seconds_heartbeat=0.05, bytes_max=1 << 30, crashes_max=1).start()
    assert c.submit(abs, -1).result(timeout=60) == 1
    c.push(length, args=(b"a" * (200 * MB),), name="big")
    assert c.wait(timeout=120), "the task whose frames were lost never resolved"
    result = c.pop()
    assert result.status == "crash" and "lost task frames" in result.error, result.error
    assert result.attempts >= frame_loss.BLAMED_AT_ATTEMPT
