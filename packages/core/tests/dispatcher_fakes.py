"""A dispatcher driven directly with fake links (no workers, no thread), for unit tests.

The dispatcher is built for real (it listens on 127.0.0.1), but its loop is not started:
each test plays the transport's part (``link_opened``, ``frame_received``,
``link_closed``) and the loop's (``_step``, ``_maintain``) and checks what the dispatcher
sends and reports.
"""

from __future__ import annotations

from typing import Any

from pycrew.control.conn import DispatcherSettings
from pycrew.control.dispatcher import Dispatcher
from pycrew.control.tasks import Task
from pycrew.wire import protocol as p
from pycrew.wire.transport import Link


class FakeLink(Link):
    """A link that records what the dispatcher sends."""

    def __init__(self, link_id: int, unacked_max: int | None = None) -> None:
        self.id = link_id
        self.acks: bool | None = None  # what peer_acknowledges answers
        self.limit = p.HELLO_MAX_BYTES
        self.unacked_max = unacked_max
        self.sent: list[bytes] = []
        self.closed = False

    def send(self, frame: bytes) -> None:
        if not self.closed:
            self.sent.append(frame)

    def close(self) -> None:
        self.closed = True

    def peer_acknowledges(self, within: float) -> bool | None:
        return self.acks

    def kinds(self) -> list[int]:
        return [f[0] for f in self.sent]

    def tasks(self) -> list[int]:
        """Ids of every task sent on this link."""
        return [i for f in self.sent if f[0] == p.TASKS for i, _ in p.decode_records(f)]


class Harness:
    """A dispatcher and what its callbacks saw."""

    def __init__(self, **settings: Any) -> None:
        base: dict[str, Any] = {
            "url": "tcp://127.0.0.1:0",
            "tls": None,
            "crashes_max": 3,
            "seconds_heartbeat": 1.0,
            "seconds_heartbeat_timeout": 5.0,
            "bytes_max": 1 << 20,
            "prefetch_max": 4,
        }
        base.update(settings)
        self.results: list[tuple[Task, bytes | None, tuple[str, str, str] | None]] = []
        self.connected: list[str] = []
        self.disconnected: list[tuple[str, bool]] = []
        self.exit_reasons: list[str] = []
        self.ending: list[tuple[str, str]] = []
        self.d = Dispatcher(
            DispatcherSettings(**base),
            on_result=self._result,
            on_connect=lambda instance, info: self.connected.append(instance),
            on_disconnect=lambda instance, crashed, reason: (
                self.disconnected.append((instance, crashed)), self.exit_reasons.append(reason)
            ),
            on_tick=lambda now: None,
            on_ending=lambda instance, reason: self.ending.append((instance, reason)),
        )
        self.links = 0
        self.ids = 0

    def _result(self, task: Task, payload: bytes | None, conn: Any, local: tuple[str, str, str] | None) -> None:
        task.resolved = True
        self.results.append((task, payload, local))

    def worker(self, instance: str | None = None, tasks_max: int | None = None, unacked_max: int | None = None) -> FakeLink:
        """A link that has authenticated as a fresh instance."""
        self.links += 1
        instance = instance or f"w{self.links}"
        self.d.authorize(instance, "token-" + instance, self.links)
        link = FakeLink(self.links, unacked_max)
        self.d.link_opened(link)
        nonce = p.decode_challenge(link.sent[0])
        hello = {"v": p.PROTOCOL_VERSION, "instance": instance, "mac": p.mac("token-" + instance, nonce, instance), "pid": 100 + self.links, "host": "h"}
        if tasks_max is not None:
            hello["tasks_max"] = tasks_max
        self.d.frame_received(link, p.encode_json(p.HELLO, hello))
        assert link.kinds() == [p.CHALLENGE, p.WELCOME], "the worker was not welcomed"
        self.d._step()  # the loop's turn: queued work goes to the new worker
        return link

    def push(self, n: int = 1, seconds_timeout: float | None = None) -> list[Task]:
        tasks = []
        for _ in range(n):
            self.ids += 1
            task = Task(self.ids, None, b"payload-%d" % self.ids, None, True, seconds_timeout=seconds_timeout)
            self.d.submit(task)
            tasks.append(task)
        self.d._step()
        return tasks

    def reply(self, link: FakeLink, ids: list[int]) -> None:
        self.d.frame_received(link, p.encode_records(p.RESULTS, [(i, b"result") for i in ids]))
        self.d._step()

    def lose(self, link: FakeLink) -> None:
        """The transport reports the link gone."""
        link.closed = True
        self.d.link_closed(link)
        self.d._step()

    def maintain(self, now: float) -> None:
        """The loop's upkeep tick at ``now``, the loop having turned all along until then
        (a jump of the clock alone is a stalled loop: see test_a_stalled_loop_...)."""
        self.d._maintained_at = now - 0.1
        self.d._maintain(now)

    def close(self) -> None:
        self.d.server.close()
