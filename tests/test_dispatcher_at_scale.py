"""What keeps one controller responsive with many workers and tasks (probe L, session 33).

- One loop turn assigns for at most ``SECONDS_ASSIGN_TURN``: a burst of 100,000 tasks over
  1,000 workers was handed out in one 5 s call, during which nothing else was seen.
- ``future.cancel()`` finds a task on the workers by its id: cancelling half of 100,000
  futures scanned the whole queue once per future (4.4 ms each at 30,000 queued).
- The dashboard renders ``/api/state`` and ``/metrics`` once for all requests that come
  while the last body is fresh (a tight scraping loop made tasks run 3 to 10 times slower).
"""

from __future__ import annotations

import threading
import time

from pycrew.control import assignment
from pycrew.control.dispatcher import Dispatcher
from pycrew.control.tasks import ById
from pycrew.dashboard.bodies import Rendered


def test_a_turn_stops_assigning_at_its_time_limit_and_the_next_turn_goes_on(make_controller, monkeypatch):
    monkeypatch.setattr(assignment, "SECONDS_ASSIGN_TURN", 0.0)  # one worker's batch per turn
    stopped_with_more: list[bool] = []
    original = Dispatcher._assign

    def recording(self: Dispatcher) -> None:
        original(self)
        stopped_with_more.append(self._assign_more)

    monkeypatch.setattr(Dispatcher, "_assign", recording)
    c = make_controller("local", workers=2, workers_at_start=2, prefetch_max=64)
    c.start()
    assert c.submit(abs, -1).result(timeout=60) == 1
    deadline = time.monotonic() + 60
    while c.summary().controller.workers_online < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(c.map(abs, range(-3000, 0), timeout=120)) == list(range(3000, 0, -1))
    assert any(stopped_with_more), "no turn stopped at SECONDS_ASSIGN_TURN with tasks and a worker left"


class CountingById(ById):
    calls = 0

    def __call__(self, task):  # type: ignore[no-untyped-def]
        CountingById.calls += 1
        return super().__call__(task)


def test_cancelling_a_future_on_a_worker_does_not_scan_the_queue(make_controller, monkeypatch):
    from pycrew.control import futures

    monkeypatch.setattr(futures, "ById", CountingById)
    c = make_controller("local", workers=1, prefetch_max=1)
    running = c.submit(time.sleep, 30)
    deadline = time.monotonic() + 60
    while c.summary().controller.running < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    queued = [c.submit(abs, -i) for i in range(5000)]
    CountingById.calls = 0
    assert running.cancel() and running.cancelled()
    assert CountingById.calls < 10, f"the predicate ran {CountingById.calls} times: the queue of 5,000 was scanned"
    assert [f.result(timeout=120) for f in queued[:3]] == [0, 1, 2]


def test_requests_while_a_body_renders_share_that_render():
    renders = []

    def render() -> bytes:
        renders.append(threading.get_ident())
        time.sleep(0.2)
        return b"body %d" % len(renders)

    kept = Rendered(render)
    bodies: list[bytes] = []
    threads = [threading.Thread(target=lambda: bodies.append(kept.body())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert len(renders) == 1 and bodies == [b"body 1"] * 8
    time.sleep(2.1)  # SECONDS_KEPT_MAX: then rendered anew
    assert kept.body() == b"body 2"


def test_a_fast_render_is_fresh_for_every_request():
    count = [0]

    def render() -> bytes:
        count[0] += 1
        return str(count[0]).encode()

    kept = Rendered(render)
    seen = [kept.body()]
    time.sleep(0.01)
    seen.append(kept.body())
    assert seen == [b"1", b"2"], "a body that took microseconds to render is kept microseconds"


def test_the_dashboard_counts_are_fresh_after_a_wait(make_controller):
    import json
    import urllib.request

    c = make_controller("local", workers=1, dashboard=True).start()
    for n in range(1, 4):
        c.submit(abs, -n).result(timeout=60)
        assert c.wait(timeout=60)
        with urllib.request.urlopen(c.dashboard_link + "api/state", timeout=10) as reply:
            state = json.loads(reply.read())
        assert state["tasks"]["resolved"] == n, state["tasks"]


def test_requests_are_paced_whatever_the_clients_do():
    from pycrew.dashboard.bodies import Pace

    pace = Pace(per_second=50.0)
    started = time.monotonic()
    threads = [threading.Thread(target=pace.wait) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    # 20 requests at 50 a second: the last one's turn comes 19 gaps after the first
    assert time.monotonic() - started >= 19 * 0.02 - 0.01
