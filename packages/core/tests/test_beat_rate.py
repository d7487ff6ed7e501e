"""Heartbeats slow down as workers are added, and speed up as they go (pycrew.control.beat_rate).

The dispatcher is driven with fake links (dispatcher_fakes) at ``heartbeats_per_second=2``,
``seconds_heartbeat=1`` and ``seconds_heartbeat_timeout=5``: six connections want a beat
every 3 s. A worker keeps to the interval and timeout the controller's beats carry: tests/test_worker_beat_rate.py.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator

import pytest
from dispatcher_fakes import FakeLink, Harness

from pycrew.control.beat_rate import BeatRate
from pycrew.control.conn import CLOSED, READY
from pycrew.wire import protocol as p


def test_the_interval_follows_the_connections_past_the_rate_and_the_timeout_keeps_its_ratio():
    rate = BeatRate(2.0, 20.0, heartbeats_per_second=500)
    assert not rate.update(1000, 0.0), "a thousand workers at 2 s are 500 beats a second: no change"
    assert rate.update(5000, 0.0) and (rate.interval, rate.timeout) == (10.0, 100.0)
    assert p.decode_pace(rate.frame) == (10.0, 100.0), "every beat of the dispatcher carries them"
    assert not rate.update(4000, 1.0), "within half of the current interval nothing changes (no PACE storm)"
    assert rate.update(100, 2.0) and (rate.interval, rate.timeout) == (2.0, 20.0), "never below the configured values"


def test_a_shorter_interval_holds_the_old_timeout_until_the_workers_heard_of_it():
    rate = BeatRate(2.0, 20.0, heartbeats_per_second=500)
    rate.update(5000, 0.0)
    rate.update(10, 50.0)
    assert rate.silence_limit(50.0) == 100.0 and rate.silence_limit(149.0) == 100.0
    assert rate.silence_limit(151.0) == 20.0
    rate.update(5000, 200.0)
    assert rate.silence_limit(200.0) == 100.0, "a longer timeout applies at once"


@pytest.mark.parametrize("value", [0, -1.0, math.nan])
def test_a_rate_that_is_not_positive_is_refused(value):
    with pytest.raises(ValueError, match="heartbeats_per_second must be > 0"):
        BeatRate(2.0, 20.0, value)


@pytest.mark.parametrize(
    "frame",
    [p.BEAT_FRAME, p.BEAT_FRAME + (7).to_bytes(8, "little"), p.encode_pace(0.0, 5.0), p.encode_pace(math.inf, 5.0),
     p.encode_pace(math.nan, 5.0), p.encode_pace(1.0, -5.0)],
    ids=["bare", "worker-count", "zero", "inf", "nan", "negative-timeout"],
)
def test_a_beat_without_a_sensible_pace_changes_nothing(frame):
    assert p.decode_pace(frame) is None


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness(heartbeats_per_second=2.0)
    yield harness
    harness.close()


def _beats(link: FakeLink) -> list[tuple[float, float] | None]:
    return [p.decode_pace(f) for f in link.sent if f[0] == p.BEAT]


def test_more_workers_beat_less_often_and_new_ones_are_told_in_their_welcome(h):
    links = [h.worker() for _ in range(6)]
    start = time.monotonic()
    h.maintain(start)
    assert (h.d.beats.interval, h.d.beats.timeout) == (3.0, 15.0)
    late = h.worker()
    welcome = json.loads(late.sent[1][1:])
    assert (welcome["seconds_heartbeat"], welcome["seconds_heartbeat_timeout"]) == (3.0, 15.0)
    for t in (1.1, 2.2, 3.3, 4.4, 5.5, 6.6, 7.7):
        for link in links:  # every worker beats back, so none goes silent
            h.d.frame_received(link, p.BEAT_FRAME + (0).to_bytes(8, "little"))
        h.maintain(start + t)
    counts = {len(_beats(link)) for link in links}
    assert counts <= {2, 3}, f"one beat per 3 s each after the first (at 1 s), not one a second: {counts}"
    assert all(pace == (3.0, 15.0) for link in links for pace in _beats(link))
    conn = h.d.conns[links[0].id]
    h.maintain(conn.last_seen + 8.0)
    assert conn.state == READY, "8 s of silence is within the longer timeout (15 s), not the configured 5 s"
    h.maintain(conn.last_seen + 16.0)
    assert conn.state == CLOSED


def test_fewer_workers_beat_sooner_and_keep_the_old_timeout_until_they_heard(h):
    links = [h.worker() for _ in range(6)]
    start = time.monotonic()
    h.maintain(start)
    assert h.d.beats.interval == 3.0
    for link in links[1:]:
        h.lose(link)
    keep = links[0]
    conn = h.d.conns[keep.id]
    conn.next_beat = start + 3.0
    h.d.conns = {keep.id: conn}  # the closed ones were removed (they are kept a heartbeat interval)
    h.maintain(start + 0.2)
    assert (h.d.beats.interval, h.d.beats.timeout) == (1.0, 5.0)
    assert conn.next_beat <= start + 1.2, "the next beat comes within the new interval"
    before = len(_beats(keep))
    h.maintain(start + 1.3)
    assert _beats(keep)[before:] == [(1.0, 5.0)], "the beat tells the worker the new pace"
    h.maintain(conn.last_seen + 7.0)
    assert conn.state == READY, "a worker that has not heard yet may beat at the old pace: old timeout (15 s) held"
    h.maintain(start + 16.0)
    assert conn.state == CLOSED, "once the old timeout has passed, the new one (5 s) applies"
