"""The dispatcher's bookkeeping, driven directly with fake links (no workers, no thread).

The dispatcher is built for real (it listens on 127.0.0.1), but its loop is not started:
each test plays the transport's part (``link_opened``, ``frame_received``,
``link_closed``) and the loop's (``_step``, ``_maintain``) and checks what the dispatcher
sends and reports.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from dispatcher_fakes import FakeLink, Harness

from pycrew.control.conn import CLOSED, READY, DispatcherSettings
from pycrew.control.recall import SECONDS_STEAL_PAUSE
from pycrew.control.tasks import Task
from pycrew.wire import protocol as p


@pytest.fixture
def h() -> Iterator[Harness]:
    harness = Harness()
    yield harness
    harness.close()


def test_welcome_tells_the_worker_its_heartbeat_and_bytes_max(h):
    link = h.worker("abc")
    body = json.loads(link.sent[1][1:])
    assert body == {"seconds_heartbeat": 1.0, "seconds_heartbeat_timeout": 5.0, "seconds_busy_silence": 600.0, "bytes_max": 1 << 20}
    assert h.connected == ["abc"]
    assert link.limit == 1 << 20, "an authenticated link may send frames up to bytes_max"
    assert h.d.tokens == {}, "the token must be used up by the connection that proved it"


def test_first_frame_other_than_hello_closes_the_link(h):
    link = FakeLink(1)
    h.d.link_opened(link)
    h.d.frame_received(link, p.encode_records(p.RESULTS, [(1, b"x")]))
    assert link.closed and h.d.conns[1].state == CLOSED


def test_a_lone_task_goes_to_the_least_loaded_worker(h):
    a, b = h.worker(), h.worker()
    h.d.record_seconds(0.001)  # short tasks: prefetching allowed
    first = h.push(2)
    assert sorted(a.tasks() + b.tasks()) == [t.id for t in first]
    h.reply(a, a.tasks())
    (lone,) = h.push(1)
    assert lone.id in a.tasks(), "the idle worker should get the lone task"


def test_without_a_run_time_estimate_each_worker_gets_one_task(h):
    a, b = h.worker(), h.worker()
    h.push(5)
    assert len(a.tasks()) == 1 and len(b.tasks()) == 1
    assert len(h.d.queue) == 3


def test_short_tasks_are_prefetched_up_to_prefetch_max(h):
    a = h.worker()
    h.d.record_seconds(0.0001)
    h.push(10)
    assert len(a.tasks()) == 4, "prefetch_max=4 bounds the tasks in flight per worker"
    h.d.record_seconds(10.0)
    h.d.ewma = 10.0
    assert h.d._limit() == 1, "long tasks go one at a time"


def _push_sized(h: Harness, sizes: list[int]) -> list[Task]:
    tasks = []
    for size in sizes:
        h.ids += 1
        task = Task(h.ids, None, b"x" * size, None, True)
        h.d.submit(task)
        tasks.append(task)
    h.d._step()
    return tasks


def test_large_payloads_are_prefetched_within_bytes_prefetch():
    h = Harness(bytes_prefetch=250)
    try:
        a = h.worker()
        h.d.record_seconds(0.0001)  # short tasks: prefetch_max=4 would allow 4 in flight
        tasks = _push_sized(h, [100, 100, 100, 100, 1000])
        conn = h.d.conns[a.id]
        assert a.tasks() == [tasks[0].id, tasks[1].id], "a third 100-byte task would pass bytes_prefetch=250"
        assert conn.bytes_in_flight == 200
        h.reply(a, [tasks[0].id])
        assert a.tasks() == [t.id for t in tasks[:3]], "a result made room for one more"
        h.reply(a, [tasks[1].id, tasks[2].id])
        assert a.tasks() == [t.id for t in tasks[:4]], "the 1000-byte task waits until the worker holds nothing"
        h.reply(a, [tasks[3].id])
        assert a.tasks()[-1] == tasks[4].id, "a payload larger than bytes_prefetch still goes, alone"
        assert conn.bytes_in_flight == 1000
        h.reply(a, [tasks[4].id])
        assert conn.bytes_in_flight == 0 and not h.d.queue
    finally:
        h.close()


def test_a_lost_worker_gives_its_payload_bytes_back():
    h = Harness(bytes_prefetch=250)
    try:
        a = h.worker()
        h.d.record_seconds(0.0001)
        tasks = _push_sized(h, [100, 100, 100])
        h.lose(a)
        b = h.worker()
        assert b.tasks() == [tasks[0].id], "the requeued tasks go out again (suspects: one at a time)"
        assert h.d.conns[b.id].bytes_in_flight == 100
    finally:
        h.close()


def test_tasks_behind_a_long_one_are_recalled_for_an_idle_worker(h):
    a = h.worker()
    h.d.record_seconds(0.0001)  # short tasks: a takes all four
    first, second, third, fourth = h.push(4)
    assert a.tasks() == [first.id, second.id, third.id, fourth.id]
    b = h.worker()  # idle, and nothing left in the queue
    conn = h.d.conns[a.id]
    h.maintain(conn.progress + 0.01)
    assert p.RECALL not in a.kinds(), "recalled before the first task had run long"
    h.maintain(conn.progress + 1.0)
    recalls = [p.decode_ids(f) for f in a.sent if f[0] == p.RECALL]
    assert recalls == [[second.id, third.id, fourth.id]], "all but the running task are recalled, once"
    h.maintain(conn.progress + 2.0)
    assert len([f for f in a.sent if f[0] == p.RECALL]) == 1, "no second RECALL before the answer"
    # the second task had started meanwhile: the worker gives back the other two
    h.d.frame_received(a, p.encode_ids(p.RETURNED, [third.id, fourth.id]))
    h.d._step()
    assert b.tasks() == [third.id, fourth.id], "the idle worker gets what came back"
    assert third.attempts == 1 and fourth.attempts == 1, "a task given back is not counted as an attempt"
    assert conn.bytes_in_flight == len(first.payload) + len(second.payload) and h.d.tasks_running == 4
    (fifth,) = h.push(1)
    assert fifth.id in b.tasks() and len(a.tasks()) == 4, "a worker that gave tasks back gets none until its long task ends"
    h.reply(a, [first.id, second.id])
    (sixth,) = h.push(1)
    assert a.tasks()[-1] == sixth.id, "its result ends the stall: it takes work again (now the least loaded)"
    assert not h.d.queue


def test_no_recall_while_tasks_wait_in_the_queue_or_no_worker_is_idle(h):
    a = h.worker()
    h.d.record_seconds(0.0001)
    h.push(3)
    conn = h.d.conns[a.id]
    h.maintain(conn.progress + 1.0)
    assert p.RECALL not in a.kinds(), "no other worker is idle: nothing to gain"
    h.push(7)  # four more fit on a (prefetch_max=4 counts the three): three wait in the queue
    b = h.worker()  # takes what waits: busy too
    assert h.d.conns[b.id].in_flight
    h.maintain(conn.progress + 1.0)
    assert p.RECALL not in a.kinds()


def test_an_idle_worker_takes_the_newer_half_of_a_prefetched_tail(h):
    a = h.worker()
    h.d.record_seconds(0.01)  # 10 ms tasks: a worker holds three (one running, 20 ms prefetched)
    first, second, third = h.push(3)
    assert a.tasks() == [first.id, second.id, third.id]
    conn = h.d.conns[a.id]
    b = h.worker()  # connects to an empty queue: a's tail is all there is
    assert [p.decode_ids(f) for f in a.sent if f[0] == p.RECALL] == [[third.id]], "the newer half of the two unstarted"
    h.d.frame_received(a, p.encode_ids(p.RETURNED, [third.id]))
    h.d._step()
    assert b.tasks() == [third.id] and third.attempts == 1 and conn.stalled
    h.reply(b, [third.id])  # b idle again, a still holds two: the newer one comes over
    assert [p.decode_ids(f) for f in a.sent if f[0] == p.RECALL][1:] == [[second.id]]
    h.d.frame_received(a, p.encode_ids(p.RETURNED, []))  # too late: a had started it
    h.d._step()
    assert b.tasks() == [third.id] and h.d.tasks_running == 2
    h.reply(a, [first.id, second.id])
    assert not h.d.queue and h.d.tasks_running == 0
    assert len([f for f in a.sent if f[0] == p.RECALL]) == 2


def test_a_backlog_sent_by_the_average_of_short_tasks_is_shared_once_results_show_them_long(h):
    a = h.worker()
    h.d.record_seconds(0.0001)  # the last batch was short tasks: a takes all four
    first, _second, third, fourth = h.push(4)
    b = h.worker()  # connects late to an empty queue: 0.3 ms of a's tail, by the old average, is not worth a RECALL
    assert p.RECALL not in a.kinds() and not b.tasks()
    time.sleep(2 * SECONDS_STEAL_PAUSE)  # past the pause that search started
    h.d.record_seconds(0.05)  # a's first result shows these tasks are long (the controller records it as it resolves)
    h.reply(a, [first.id])
    assert [p.decode_ids(f) for f in a.sent if f[0] == p.RECALL] == [[fourth.id]], (
        "the idle worker waited for a tick (up to 0.1 s) before it took a's tail, or longer"
    )
    h.d.frame_received(a, p.encode_ids(p.RETURNED, [fourth.id]))
    h.d._step()
    assert b.tasks() == [fourth.id] and third.id in h.d.conns[a.id].in_flight


def test_a_worker_that_gave_tasks_back_leaves_the_ready_heap_until_its_next_result(h):
    a = h.worker()
    h.d.record_seconds(0.01)
    first, second = h.push(2)  # a holds two of three: it stays offered in the ready heap
    conn = h.d.conns[a.id]
    assert any(link_id == a.id and version == conn.ready_version for _, link_id, version in h.d._ready)
    b = h.worker()
    h.d.frame_received(a, p.encode_ids(p.RETURNED, [second.id]))  # answering the RECALL
    h.d._step()
    assert b.tasks() == [second.id] and conn.stalled
    assert all(link_id != a.id or version != conn.ready_version for _, link_id, version in h.d._ready), (
        "a stalled worker kept a valid entry in the ready heap: it could be sent the tasks it gave back"
    )
    h.reply(a, [first.id])
    assert not conn.stalled and any(link_id == a.id and version == conn.ready_version for _, link_id, version in h.d._ready)


def test_no_steal_for_a_tail_shorter_than_a_round_trip(h):
    a = h.worker()
    h.d.record_seconds(0.0001)  # four tasks of 0.1 ms: 0.3 ms unstarted, not worth a RECALL
    tasks = h.push(4)
    assert a.tasks() == [t.id for t in tasks]
    b = h.worker()
    h.maintain(h.d.conns[a.id].progress + 0.01)  # the tick looks too (not yet stuck: 50 ms)
    assert p.RECALL not in a.kinds() and not b.tasks()
    assert h.d._steal_pause_until > 0, "a search that found nothing pauses the next ones"


def test_tasks_max_bounds_what_a_worker_is_sent(h):
    a = h.worker(tasks_max=2)
    h.d.record_seconds(0.0001)
    h.push(6)
    assert len(a.tasks()) == 2
    h.reply(a, a.tasks())
    assert len(a.tasks()) == 2, "a worker that reached tasks_max got more work"


def test_results_resolve_tasks_and_unknown_ids_are_ignored(h):
    a = h.worker()
    (task,) = h.push(1)
    h.reply(a, [task.id, 999])
    assert [(t.id, payload) for t, payload, _ in h.results] == [(task.id, b"result")]
    assert task.attempts == 1


def test_a_lost_worker_with_one_task_blames_it(h):
    a = h.worker()
    (task,) = h.push(1)
    h.lose(a)
    assert [t.id for t in h.d.queue] == [task.id] and task.crashes == 1 and not task.suspect


def test_a_lost_worker_with_several_tasks_blames_none_and_each_runs_alone_until_it_ends(h):
    """The first task held may have ended, its result in a batch the worker had not sent: on
    975b51b it was charged the crash (67 of 264 innocent tasks crashed out in a probe)."""
    a = h.worker()
    h.d.record_seconds(0.0001)
    tasks = h.push(3)
    assert a.tasks() == [t.id for t in tasks]
    h.lose(a)
    queued = [t.id for t in h.d.queue]
    assert queued[:3] == [t.id for t in tasks], "requeued tasks must keep their order, at the front"
    assert [(t.crashes, t.suspect) for t in tasks] == [(0, True)] * 3, "none blamed: all suspects"
    assert h.disconnected == [("w1", True)]
    b, c = h.worker(), h.worker()
    assert (b.tasks(), c.tasks()) == ([tasks[0].id], [tasks[1].id]), "a suspect goes alone to a worker with nothing else"
    h.reply(b, [tasks[0].id])
    assert b.tasks() == [tasks[0].id, tasks[2].id], "the next suspect, alone again, once the first ended"
    h.lose(c)
    assert tasks[1].crashes == 1, "a suspect that was alone on the worker that died killed it"
    d = h.worker()
    assert d.tasks() == [tasks[1].id]
    h.reply(b, [tasks[2].id])
    h.reply(d, [tasks[1].id])
    more = h.push(4)
    assert sorted(b.tasks()[2:] + d.tasks()[1:]) == sorted(t.id for t in more), "then two at a time each, as before"


def test_a_task_behind_a_cancelled_one_still_running_is_not_blamed_for_the_death(h):
    """A cancelled task runs on until its worker stops it, and may kill it meanwhile: on b40f4bb it
    was left out of the count, and the one task left, which had not started, was charged."""
    a = h.worker()
    h.d.record_seconds(0.0001)
    cancelled, behind = h.push(2)
    assert a.tasks() == [cancelled.id, behind.id]
    assert h.d.cancel(lambda t: t is cancelled, "cancelled") == 1
    h.lose(a)
    assert (behind.crashes, behind.suspect) == (0, True)
    assert [t.id for t in h.d.queue] == [behind.id]


def test_tasks_past_the_results_a_worker_may_hold_unsent_never_ran_and_go_back_unpenalised():
    """A worker sends its results once RESULTS_UNSENT_MAX wait: it cannot have started a task past that many
    plus one. On b40f4bb a death made suspects of all it held (4,096 prefetched no-ops: ~2,000 retries)."""
    h = Harness(prefetch_max=400)
    try:
        a = h.worker()
        h.d.record_seconds(0.0)  # no-ops: the whole window goes out
        tasks = h.push(300)
        assert len(a.tasks()) == 300
        retries = h.d.retries
        h.lose(a)
        window = p.RESULTS_UNSENT_MAX + 1
        assert [t.suspect for t in tasks] == [True] * window + [False] * (300 - window)
        assert [t.attempts for t in tasks] == [1] * window + [0] * (300 - window), "the unstarted ones: not an attempt"
        assert h.d.retries - retries == window and all(t.crashes == 0 for t in tasks)
        assert [t.id for t in h.d.queue] == [t.id for t in tasks], "in order, at the front"
    finally:
        h.close()


def test_a_task_that_kills_crashes_max_workers_resolves_as_a_crash(h):
    (task,) = h.push(1)
    for _ in range(3):
        link = h.worker()
        assert task.id in link.tasks()
        h.lose(link)
    ((resolved, payload, local),) = h.results
    assert resolved is task and payload is None
    assert local is not None and local[0] == "crash" and "3 time(s)" in local[1]
    assert not h.d.queue


def test_bye_requeues_unstarted_tasks_without_blame(h):
    a = h.worker()
    h.d.record_seconds(0.0001)
    tasks = h.push(2)
    h.d.frame_received(a, p.encode_json(p.BYE, {"reason": "tasks_max", "unstarted": [t.id for t in tasks]}))
    assert [t.crashes for t in tasks] == [0, 0] and len(h.d.queue) == 2
    assert h.disconnected == [("w1", False)] and a.closed
    assert h.exit_reasons == ["tasks_max"], "the worker's own reason for leaving is passed on"


def test_silence_past_the_heartbeat_timeout_drops_the_worker(h):
    a = h.worker()
    (task,) = h.push(1)
    conn = h.d.conns[a.id]
    h.maintain(conn.last_seen + 4.0)
    assert conn.state == READY
    h.maintain(conn.last_seen + 6.0)
    assert conn.state == CLOSED and a.closed
    assert [t.id for t in h.d.queue] == [task.id] and task.crashes == 1


def test_a_beat_reporting_missing_task_frames_replaces_the_worker_without_blame(h):
    a = h.worker(unacked_max=2)  # a link that can lose frames (nng)
    (task,) = h.push(1)
    conn = h.d.conns[a.id]
    conn.last_task_send -= 10  # long enough ago for the frame to have arrived
    h.d.frame_received(a, bytes((p.BEAT,)) + (0).to_bytes(8, "little"))
    assert conn.state == CLOSED and task.crashes == 0 and [t.id for t in h.d.queue] == [task.id]


def test_a_late_count_on_a_link_that_loses_nothing_is_not_a_loss(h):
    """A worker back from a long call into C code beats before it reads the task frames
    that came meanwhile; on a socket link nothing is ever lost, so its count is just late."""
    a = h.worker()
    h.push(1)
    conn = h.d.conns[a.id]
    conn.last_task_send -= 10
    h.d.frame_received(a, bytes((p.BEAT,)) + (0).to_bytes(8, "little"))
    assert conn.state == READY and not a.closed


def _tick_until(h, conn, until: float) -> None:
    """Upkeep ticks every 0.5 s from the connection's last word until ``until``."""
    now = conn.last_seen
    while now < until:
        now = min(until, now + 0.5)
        h.maintain(now)


def _busy_worker(h, acks: bool | None) -> tuple[FakeLink, Task, Any]:
    """A worker running one task, whose machine answers ``acks`` when asked."""
    a = h.worker()
    (task,) = h.push(1)
    a.acks = acks
    return a, task, h.d.conns[a.id]


def test_a_busy_worker_whose_machine_answers_is_kept_past_the_heartbeat_timeout(h, caplog):
    a, task, conn = _busy_worker(h, acks=True)
    start = conn.last_seen
    beats = a.kinds().count(p.BEAT)
    _tick_until(h, conn, start + 30)
    assert conn.state == READY and not a.closed and h.disconnected == []
    assert a.kinds().count(p.BEAT) - beats >= 25, "beats must go on: the machine's answers to them are the sign of life"
    assert caplog.text.count("probably holds the GIL") == 1, "the silence is logged once"
    h.reply(a, [task.id])  # the long call returned
    assert [t.id for t, _, _ in h.results] == [task.id]


@pytest.mark.parametrize("acks", [False, None], ids=["machine-silent", "kernel-does-not-say"])
def test_a_busy_worker_whose_machine_is_silent_too_is_dropped_at_the_heartbeat_timeout(h, acks):
    _a, task, conn = _busy_worker(h, acks)
    start = conn.last_seen
    _tick_until(h, conn, start + 4.9)
    assert conn.state == READY
    _tick_until(h, conn, start + 5.6)
    assert conn.state == CLOSED and h.disconnected == [("w1", True)] and task.crashes == 1


def test_an_idle_silent_worker_is_dropped_even_if_its_machine_answers(h):
    a = h.worker()
    conn = h.d.conns[a.id]
    a.acks = True
    _tick_until(h, conn, conn.last_seen + 5.6)
    assert conn.state == CLOSED


def test_a_busy_silent_worker_is_dropped_after_seconds_busy_silence():
    h = Harness(seconds_busy_silence=12.0)
    try:
        _a, _task, conn = _busy_worker(h, acks=True)
        start = conn.last_seen
        _tick_until(h, conn, start + 11.9)
        assert conn.state == READY
        _tick_until(h, conn, start + 12.6)
        assert conn.state == CLOSED
    finally:
        h.close()


def test_a_stalled_loop_does_not_hold_its_own_deafness_against_workers(h):
    a = h.worker()
    conn = h.d.conns[a.id]
    start = conn.last_seen
    h.d._maintained_at = start
    h.d._maintain(start + 30.0)  # the loop could not run for 30 s: the worker's frames wait unread
    assert conn.state == READY and h.disconnected == []
    h.maintain(start + 30.0 + 4.0)
    assert conn.state == READY
    h.maintain(start + 30.0 + 5.5)  # silent for the timeout since the loop runs again
    assert conn.state == CLOSED


def test_unacknowledged_frames_are_bounded_per_link(h):
    a = h.worker(unacked_max=2)
    h.d.record_seconds(0.0001)
    h.d.settings = DispatcherSettings(**{**h.d.settings.__dict__, "prefetch_max": 100})
    for _ in range(5):
        h.push(1)
    frames = [f for f in a.sent if f[0] == p.TASKS]
    assert len(frames) == 2, "more TASKS frames than unacked_max went unacknowledged"
    h.d.frame_received(a, bytes((p.BEAT,)) + (2).to_bytes(8, "little"))
    h.d._step()
    assert len([f for f in a.sent if f[0] == p.TASKS]) == 3


def test_cancelling_a_running_task_resolves_it_and_tells_the_worker(h):
    a = h.worker()
    (task,) = h.push(1)
    assert h.d.cancel(lambda t: t.id == task.id, "cancelled") == 1
    assert h.results[0][2] == ("cancel", "cancelled", "CancelledError")
    assert a.sent[-1][0] == p.CANCEL and p.decode_ids(a.sent[-1]) == [task.id]
    conn = h.d.conns[a.id]
    assert conn.stop_by is not None
    h.maintain(conn.stop_by + 0.1)
    assert conn.state == CLOSED, "a worker that kept a cancelled task past the grace period is replaced"


def test_a_task_past_its_time_limit_and_the_grace_period_replaces_the_worker(h):
    a = h.worker()
    (task,) = h.push(1, seconds_timeout=2.0)
    conn = h.d.conns[a.id]
    h.maintain(conn.progress + 2.0 + 5.0 + 0.1)
    assert h.results[0][2] is not None and h.results[0][2][0] == "timeout"
    assert conn.state == CLOSED and task.crashes == 0


def test_a_frame_whose_handling_raises_drops_that_connection_only(h):
    a, b = h.worker(), h.worker()
    (task,) = h.push(1)
    link = a if task.id in a.tasks() else b

    def broken(*args: Any) -> None:
        raise RuntimeError("a bug while resolving")

    h.d._on_result = broken
    h.d.frame_received(link, p.encode_records(p.RESULTS, [(task.id, b"r")]))
    assert h.d.conns[link.id].state == CLOSED
    other = b if link is a else a
    assert h.d.conns[other.id].state == READY


def test_held_tasks_collects_queue_submissions_and_in_flight(h):
    a = h.worker()
    running = h.push(1)
    queued = h.push(2)
    h.d.submit(Task(99, None, b"", None, True))
    held = h.d._held_tasks()
    assert sorted(t.id for t in held) == sorted([running[0].id, *(t.id for t in queued), 99])
    assert not h.d.queue and not h.d.submissions and not h.d.conns[a.id].in_flight


def test_a_call_sees_every_task_pushed_before_it_even_mid_step(h):
    """Another thread may push and then ask (``cancel(all=True)`` after ``walk``) while the
    loop is between taking the pushes and running the calls: the call still sees them."""
    seen: list[int] = []

    def another_thread_pushes_then_asks() -> None:  # runs inside the step, as that thread would
        h.d.submit(Task(7, None, b"", None, True))
        h.d.call_soon(lambda: seen.append(len(h.d.queue)))

    h.d.call_soon(another_thread_pushes_then_asks)
    h.d._step()
    assert seen == [1], "the call ran before the task pushed ahead of it was queued"
    assert [t.id for t in h.d.queue] == [7] and not h.d.submissions


def test_many_workers_the_task_goes_to_the_one_with_room_and_the_ready_heap_stays_bounded(h):
    links = [h.worker() for _ in range(300)]
    h.push(300)  # no run time estimate yet: one task each, every worker is full
    assert all(len(link.tasks()) == 1 for link in links)
    lucky = links[137]
    h.reply(lucky, lucky.tasks())
    (task,) = h.push(1)
    assert task.id in lucky.tasks(), "the only worker with room must get the task"
    for _ in range(20):  # many results with an empty queue must not grow the heap without bound
        for link in links[:50]:
            h.d.frame_received(link, p.encode_records(p.RESULTS, [(999_999, b"x")]))
    assert len(h.d._ready) <= 4 * len(h.d.conns) + 64


def test_a_worker_whose_prefetch_window_widens_gets_more_without_new_results(h):
    a = h.worker()
    h.push(6)
    assert len(a.tasks()) == 1, "no estimate yet: one at a time"
    h.d.record_seconds(0.0001)  # short tasks now: the window widens to prefetch_max
    h.d._step()
    assert len(a.tasks()) == 4


def test_a_tick_looks_only_at_connections_with_something_due(h):
    """Idle or busy, a tick costs only the connections whose heartbeat or deadline has come:
    500 connected workers, and a tick before any beat is due visits none of them."""
    links = [h.worker() for _ in range(500)]
    visited: list[int] = []
    visit = h.d._visit
    h.d._visit = lambda conn, now: (visited.append(conn.link.id), visit(conn, now))  # count, then do it
    conns = [h.d.conns[link.id] for link in links]
    first, last = min(c.next_beat for c in conns), max(c.next_beat for c in conns)
    for now in (first - 0.5, first - 0.1):
        h.maintain(now)
    assert visited == [], "a tick with nothing due looked at connections"
    h.maintain(last + 0.01)
    assert sorted(visited) == sorted(link.id for link in links), "every beat came due: each connection once"
    assert all(link.kinds().count(p.BEAT) == 1 for link in links)
    visited.clear()
    h.maintain(last + 0.02)
    assert visited == []
    (task,) = h.push(1, seconds_timeout=30.0)  # a task with a time limit: its worker is watched every tick
    (link,) = [link for link in links if task.id in link.tasks()]
    assert h.d._watched == {link.id}
    h.reply(link, [task.id])
    h.maintain(last + 0.03)
    assert h.d._watched == set(), "a worker with nothing running stays watched"


def test_the_running_count_follows_every_way_a_task_leaves_a_worker(h):
    """running() is kept as tasks come and go (the scaler reads it every tick); it must equal
    the tasks in the connections' in_flight after results, a loss, a drop, a goodbye and a cancel."""

    def agrees() -> None:
        assert h.d.running() == sum(len(c.in_flight) for c in h.d.conns.values())

    h.d.record_seconds(0.0001)  # short tasks: several in flight per worker
    a, b, c, d = (h.worker() for _ in range(4))
    h.push(16)
    agrees()
    assert h.d.running() == 16
    h.reply(a, [*a.tasks()[:2], 987_654])  # two results and an id it does not hold
    agrees()
    h.lose(b)  # lost: its tasks go back to the queue (and out again to the others)
    agrees()
    h.d._drop(h.d.conns[c.id], "misbehaved")
    h.d._step()
    agrees()
    h.d.frame_received(d, p.encode_json(p.BYE, {"reason": "done", "unstarted": []}))
    h.d._step()
    agrees()
    held = [t for t in h.d.conns[a.id].in_flight.values()]
    assert h.d.cancel(lambda t: t is held[0], "cancelled") == 1
    agrees()
    h.reply(a, [t.id for t in held])
    agrees()
    assert h.d.running() == len(h.d.conns[a.id].in_flight)


def test_a_submit_burst_lets_an_idle_dispatcher_run_once(h, monkeypatch):
    """A loop of submissions that wakes an idle dispatcher with a worker ready yields the
    interpreter lock once, after SUBMITS_BEFORE_YIELD more, so the first tasks go out at once
    (not after CPython's 5 ms switch interval); while the dispatcher has work, or no worker
    to give it to (the loop's launches must reach the scaler as one batch), it never does."""
    from pycrew.control import submissions as module

    yields: list[tuple[float, int]] = []
    monkeypatch.setattr(module.time, "sleep", lambda seconds: yields.append((seconds, len(h.d.submissions))))

    def burst(n: int) -> None:
        for _ in range(n):
            h.ids += 1
            h.d.submit(Task(h.ids, None, b"payload", None, True))

    def turn() -> None:  # the loop's turn: it reads the wake pipe, then steps
        h.d._wake_pending = False
        h.d._step()

    burst(3 * module.SUBMITS_BEFORE_YIELD)
    assert yields == []  # no worker yet: these wait for a launch
    turn()
    link = h.worker()
    while h.d.queue or h.d.submissions or h.d.tasks_running:  # run everything: idle again
        turn()
        h.reply(link, [i for i in link.tasks() if not any(t.id == i for t, _, _ in h.results)])
    turn()
    assert h.d._idle
    burst(3 * module.SUBMITS_BEFORE_YIELD)
    assert yields == [(0, module.SUBMITS_BEFORE_YIELD + 1)]  # the waking submission, then 8 more
    turn()  # the worker has tasks now, the rest are queued: not idle
    yields.clear()
    burst(3 * module.SUBMITS_BEFORE_YIELD)
    assert yields == []


def test_the_demand_window_extends_while_pushes_come_up_to_its_maximum(h):
    calls: list[float] = []
    h.d.on_demand = calls.append
    h.push(1)  # no worker: the task stays queued and opens the window
    assert h.d.demand_pending
    opened = h.d._demand_at
    assert opened is not None
    h.d._pushed_and_queued(opened - 0.004)  # local (the default): a later push does not extend it
    assert h.d._demand_at == opened
    h.d._demand_due(opened)
    assert calls == [opened] and not h.d.demand_pending

    h.d.demand_window_max = 0.1  # a remote launcher's
    h.d._pushed_and_queued(10.0)
    h.d._pushed_and_queued(10.004)  # each push extends it by SECONDS_DEMAND ...
    assert h.d._demand_at == pytest.approx(10.009)
    h.d._demand_due(10.008)
    assert len(calls) == 1, "closed before its time"
    for i in range(1, 60):
        h.d._pushed_and_queued(10.004 + i * 0.004)
    assert h.d._demand_at == pytest.approx(10.1), "... but never past its maximum after the first"
    h.d._demand_due(10.1)
    assert calls[1:] == [10.1] and not h.d.demand_pending


def test_a_leaving_worker_gives_back_its_unstarted_tasks_and_gets_no_more(h):
    a = h.worker()
    h.d.record_seconds(0.0001)
    first, *rest = h.push(3)
    assert a.tasks() == [first.id] + [t.id for t in rest]
    h.d.frame_received(a, p.encode_json(p.LEAVING, {"reason": "SIGTERM", "unstarted": [t.id for t in rest]}))
    h.d._step()
    assert h.ending == [("w1", "SIGTERM")], "the owner hears at once that the worker's place is free"
    assert [t.id for t in h.d.queue] == [t.id for t in rest], "the unstarted tasks go back first"
    h.d.frame_received(a, p.encode_json(p.LEAVING, {"reason": "again", "unstarted": []}))
    assert h.ending == [("w1", "SIGTERM")], "told once"
    assert [(t.crashes, t.attempts) for t in rest] == [(0, 0), (0, 0)], "unpenalised: they never ran"
    h.push(2)
    assert a.tasks() == [first.id] + [t.id for t in rest], "a leaving worker is sent nothing more"
    b = h.worker()
    assert b.tasks()[:2] == [t.id for t in rest]
    h.reply(a, [first.id])
    assert h.results[0][0] is first, "the running task's result still counts"
    assert a.tasks() == [first.id] + [t.id for t in rest], "nor after its last result"
    h.d.frame_received(a, p.encode_json(p.BYE, {"reason": "SIGTERM", "unstarted": []}))
    assert h.disconnected == [("w1", False)] and h.exit_reasons == ["SIGTERM"]


def test_a_leaving_worker_lost_before_its_task_ends_counts_a_crash_that_says_why():
    h = Harness(crashes_max=1)
    try:
        a = h.worker()
        (task,) = h.push(1)
        h.d.frame_received(a, p.encode_json(p.LEAVING, {"reason": "the worker got SIGTERM", "unstarted": []}))
        h.lose(a)
        ((resolved, _payload, local),) = h.results
        assert resolved is task and local is not None and local[0] == "crash"
        assert "ending (the worker got SIGTERM)" in local[1], local[1]
        assert h.disconnected == [("w1", True)] and "SIGTERM" in h.exit_reasons[0]
    finally:
        h.close()


def test_tasks_a_worker_says_goodbye_with_go_back_unpenalised(h):
    """A worker says goodbye between tasks: what it still holds never ran (unstarted, or
    crossing the goodbye on the wire), so it is queued again without counting a retry."""
    a = h.worker()
    h.d.record_seconds(0.0001)  # short tasks: several are sent at once
    first, second, third = h.push(3)
    assert a.tasks() == [first.id, second.id, third.id]
    assert [t.attempts for t in (first, second, third)] == [1, 1, 1]
    h.reply(a, [first.id])
    h.d.frame_received(a, p.encode_json(p.BYE, {"reason": "idle", "unstarted": [second.id]}))  # third: crossing
    assert [t.id for t in h.d.queue] == [second.id, third.id], "the tasks it held go back first, in order"
    assert h.d.retries == 0 and (second.crashes, third.crashes) == (0, 0)
    assert [t.attempts for t in (second, third)] == [0, 0], "they never ran"
    assert h.d.running() == 0 and h.disconnected == [("w1", False)]


def test_a_malformed_leaving_frame_drops_that_worker_and_requeues_its_tasks(h):
    a = h.worker()
    (task,) = h.push(1)
    h.d.frame_received(a, p.encode_json(p.LEAVING, {"reason": "x", "unstarted": ["not an id"]}))
    assert a.closed and h.disconnected == [("w1", True)]
    assert list(h.d.queue) == [task]


def _recalled(link: FakeLink) -> list[list[int]]:
    return [p.decode_ids(f) for f in link.sent if f[0] == p.RECALL]


def test_a_backlog_beyond_twice_the_window_goes_back_to_the_queue_in_submission_order():
    """Tasks prefetched by the average of short ones turn out long: each worker gives back what
    it holds beyond the window that fits them now, and the queue takes them back in order.
    Before, each worker ran its backlog in a row, and a caller reading results in order
    (``map``) held every result of the other worker's backlog meanwhile."""
    h = Harness(prefetch_max=10)
    try:
        a, b = h.worker(), h.worker()
        h.d.record_seconds(0.0001)  # by the average of short tasks, each worker takes ten
        h.push(20)
        a_ids, b_ids = a.tasks(), b.tasks()
        assert len(a_ids) == len(b_ids) == 10 and a_ids[0] < b_ids[0]
        h.d.ewma = 0.05  # the results show them long: one at a time from now
        assert h.d._limit() == 1
        h.reply(a, a_ids[:1])
        assert _recalled(a) == [a_ids[2:]], "a runs its next one already; the rest go back"
        h.reply(b, b_ids[:1])
        assert _recalled(b) == [b_ids[2:]]
        # a answers first, then b: b's newer tasks must not go ahead of a's
        h.d.frame_received(a, p.encode_ids(p.RETURNED, a_ids[2:]))
        h.d.frame_received(b, p.encode_ids(p.RETURNED, b_ids[2:]))
        assert [t.id for t in h.d.queue] == a_ids[2:] + b_ids[2:]
        h.reply(a, a_ids[1:2])
        assert a.tasks()[-1] == a_ids[2], "the oldest task goes out first"
        h.reply(b, b_ids[1:2])
        assert b.tasks()[-1] == a_ids[3]
    finally:
        h.close()


def test_a_backlog_within_twice_the_window_is_kept(h):
    a = h.worker()
    h.d.record_seconds(0.0001)
    tasks = h.push(4)  # prefetch_max=4: a holds all four
    h.d.ewma = 0.015  # the window is now 2 (one running, one prefetched)
    assert h.d._limit() == 2
    h.reply(a, [tasks[0].id])
    assert _recalled(a) == [], "three held, within 2 x 2 + 1: not worth a round trip"


def test_long_tasks_with_large_results_keep_a_second_task_on_each_worker(h):
    """A 20 MB result takes ~40 ms to reach the controller; with one task at a time the worker
    idled meanwhile (a process pool's worker finds its next call waiting in its queue)."""
    a = h.worker()
    h.d.ewma = 0.05
    assert h.d._limit() == 1, "long tasks go one at a time"
    first, second, third = h.push(3)
    assert a.tasks() == [first.id]
    h.d.frame_received(a, p.encode_records(p.RESULTS, [(first.id, b"r" * 3_000_000)]))
    h.d._step()
    assert h.d._limit() == 2 and a.tasks() == [first.id, second.id, third.id], "both sent: one runs, one waits"
    for _ in range(20):  # small results again: the average falls back under BYTES_RESULT_OVERLAP
        h.d.record_result_bytes(100, 1)
    assert h.d._limit() == 1
