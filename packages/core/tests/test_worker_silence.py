"""How a worker judges its controller's silence (pycrew.worker.silence), without a clock."""

from __future__ import annotations

import json
import logging
import math

import pytest

from pycrew.wire.transport import Channel
from pycrew.worker.silence import ControllerSilence


class FakeChannel(Channel):
    def __init__(self, acks: bool | None) -> None:
        self.acks = acks
        self.asked: list[float] = []

    def send(self, frame: bytes) -> None:
        raise AssertionError("not used")

    def recv(self, timeout: float, spin: float = 0.0) -> bytes | None:
        raise AssertionError("not used")

    def close(self) -> None:
        pass

    def peer_acknowledges(self, within: float) -> bool | None:
        self.asked.append(within)
        return self.acks


def _silence(timeout: float = 5.0, busy: float = 60.0) -> ControllerSilence:
    silence = ControllerSilence()
    silence.configure({"seconds_heartbeat_timeout": timeout, "seconds_busy_silence": busy})
    return silence


def test_a_controller_heard_within_the_timeout_is_not_gone():
    channel = FakeChannel(acks=False)
    assert not _silence().gone(104.9, 100.0, channel, 1.0)
    assert channel.asked == [], "the kernel is asked only about a silence past the timeout"


@pytest.mark.parametrize("acks", [False, None], ids=["machine-silent", "kernel-does-not-say"])
def test_a_silent_controller_whose_machine_does_not_answer_is_gone(acks):
    assert _silence().gone(105.1, 100.0, FakeChannel(acks), 1.0)
    assert _silence().gone(105.1, 100.0, None, 1.0)


def test_a_silent_controller_whose_machine_answers_is_waited_for_up_to_seconds_busy_silence(caplog):
    silence = _silence(busy=60.0)
    channel = FakeChannel(acks=True)
    with caplog.at_level(logging.WARNING, logger="pycrew.worker"):
        assert not silence.gone(105.1, 100.0, channel, 1.0)
        assert not silence.gone(159.9, 100.0, channel, 1.0)
    assert caplog.text.count("its machine still acknowledges") == 1, "said once per silence"
    assert channel.asked == [2.0, 2.0], "answers within a heartbeat interval and a second count"
    assert silence.gone(160.1, 100.0, channel, 1.0)


def test_the_welcome_sets_both_bounds_and_an_older_controller_s_leaves_the_defaults():
    silence = ControllerSilence()
    silence.configure({})
    assert (silence.seconds_heartbeat_timeout, silence.seconds_busy_silence) == (20.0, 600.0)
    silence.configure(json.loads(json.dumps({"seconds_heartbeat_timeout": 3, "seconds_busy_silence": math.inf})))
    assert (silence.seconds_heartbeat_timeout, silence.seconds_busy_silence) == (3.0, math.inf)
    assert not silence.gone(10_000.0, 0.0, FakeChannel(acks=True), 1.0), "math.inf: as long as the machine answers"


def test_a_stall_of_the_comms_thread_moves_last_seen_on():
    silence = ControllerSilence()
    turn = silence._turn
    assert silence.credit(turn + 2.5, turn - 1.0, 1.0) is None, "a turn within two intervals and a second is usual"
    # the thread could not run for 30 s: what it could not hear counts from the end of the stall
    assert silence.credit(turn + 32.5, turn + 1.0, 1.0) == pytest.approx(turn + 1.0 + 30.0 - 1.0)
    assert silence.credit(turn + 33.0, turn + 1.0, 1.0) is None
    assert silence.credit(turn + 100.0, turn + 99.0, 1.0) == turn + 100.0, "never later than now"
