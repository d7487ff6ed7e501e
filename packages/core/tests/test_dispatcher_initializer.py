"""The dispatcher's side of the controller's initializer (fake links, no thread; see
test_dispatcher_unit): the WELCOME carries it, no task goes out before the worker reports
success, and any other outcome is a failed launch (``on_refused``), never a connected worker.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator

import pytest
from dispatcher_fakes import FakeLink, Harness

from pycrew.control.conn import CLOSED, INITIALIZING, READY
from pycrew.wire import protocol as p

PAYLOAD = base64.b64encode(b"the pickled initializer").decode()


class InitHarness(Harness):
    def __init__(self, **settings: object) -> None:
        super().__init__(initializer=PAYLOAD, **settings)
        self.refused: list[tuple[str, str, bool]] = []
        self.initializing: list[str] = []
        self.d._on_refused = lambda instance, reason, explain: self.refused.append((instance, reason, explain))
        self.d._on_initializing = self.initializing.append

    def report(self, link: FakeLink, **body: object) -> None:
        self.d.frame_received(link, p.encode_json(p.INITIALIZED, {"seconds": 0.5, **body}))
        self.d._step()


@pytest.fixture
def h() -> Iterator[InitHarness]:
    harness = InitHarness()
    yield harness
    harness.close()


def test_the_welcome_carries_the_initializer_and_no_task_goes_out_before_success(h):
    link = h.worker("w")
    assert json.loads(link.sent[1][1:])["initializer"] == PAYLOAD
    assert h.d.conns[link.id].state == INITIALIZING
    assert h.initializing == ["w"] and h.connected == []
    tasks = h.push(3)
    assert link.tasks() == [] and len(h.d.queue) == 3
    h.report(link, status="success")
    assert h.d.conns[link.id].state == READY and h.connected == ["w"]
    assert link.tasks() == [tasks[0].id]


def test_a_failed_initializer_stops_the_worker_and_fails_its_launch_with_the_traceback(h):
    link = h.worker("w")
    h.push(2)
    h.report(link, status="error", error="no model", error_type="ValueError", traceback="Traceback ...\nValueError: no model\n")
    ((instance, reason, explain),) = h.refused
    assert instance == "w" and not explain
    assert reason.startswith("the initializer failed: ValueError: no model (after 0.5 s)\nTraceback ...")
    assert link.closed and h.d.conns[link.id].state == CLOSED and p.STOP in link.kinds()
    assert link.tasks() == [] and len(h.d.queue) == 2, "the queued tasks wait for another worker"
    assert h.connected == [] and h.disconnected == []


@pytest.mark.parametrize("how", ["lost", "bye then lost", "leaving", "garbled report", "silent"])
def test_a_worker_gone_before_its_report_is_a_failed_launch(h, how):
    link = h.worker("w")
    conn = h.d.conns[link.id]
    if how == "lost":
        h.lose(link)
    elif how == "bye then lost":
        h.d.frame_received(link, p.encode_json(p.BYE, {"reason": "seconds_wall=1 reached", "unstarted": []}))
        h.lose(link)
    elif how == "leaving":
        h.d.frame_received(link, p.encode_json(p.LEAVING, {"reason": "SIGTERM", "unstarted": []}))
    elif how == "garbled report":
        h.report(link, status="maybe")
    else:  # no heartbeat past the timeout (5 s), its machine not known to answer
        h.maintain(conn.last_seen + 6.0)
    ((instance, reason, explain),) = h.refused
    assert instance == "w" and reason.startswith("the initializer failed: ")
    expected = {
        "lost": "the worker's connection was lost while its initializer ran (it crashed",
        "bye then lost": "it said 'seconds_wall=1 reached'",
        "leaving": "the worker was told to end while its initializer ran: SIGTERM",
        "garbled report": "the worker was dropped while its initializer ran: protocol error",
        "silent": "the worker was dropped while its initializer ran: no heartbeat",
    }[how]
    assert expected in reason
    assert explain == (how != "leaving"), "a lost worker's platform is asked what became of it"
    assert conn.state == CLOSED and h.connected == [] and h.disconnected == []


def test_an_initializing_worker_gets_heartbeats(h):
    link = h.worker("w")
    conn = h.d.conns[link.id]
    h.maintain(conn.next_beat + 0.01)
    assert p.BEAT in link.kinds() and conn.state == INITIALIZING


def test_a_report_nobody_asked_for_drops_the_worker():
    h = Harness()  # no initializer
    try:
        link = h.worker("w")
        h.d.frame_received(link, p.encode_json(p.INITIALIZED, {"status": "success", "seconds": 0.1}))
        assert link.closed and h.disconnected == [("w", True)]
    finally:
        h.close()


def test_parse_initialized_checks_every_field():
    ok = p.parse_initialized(p.encode_json(p.INITIALIZED, {"status": "timeout", "seconds": 2, "error": "x" * 40_000}))
    assert ok.status == "timeout" and ok.seconds == 2.0 and len(ok.error) == p.REPORT_TEXT_MAX
    for body in ({"status": "done"}, {"status": "success", "seconds": -1}, {"status": "success", "seconds": "1"},
                 {"status": "error", "error": 5}, {"status": "success", "seconds": True}):
        with pytest.raises(p.ProtocolError):
            p.parse_initialized(p.encode_json(p.INITIALIZED, body))
