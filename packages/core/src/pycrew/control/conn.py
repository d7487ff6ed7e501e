"""A worker connection as the dispatcher tracks it, and the dispatcher's settings."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pycrew.control.tasks import Task
from pycrew.wire import protocol as p
from pycrew.wire import transport
from pycrew.wire.transport import Link

CHALLENGED, READY, LEAVING, CLOSED = "challenged", "ready", "leaving", "closed"
#: Authenticated, running the controller's initializer: sent no task until it reports success.
INITIALIZING = "initializing"


@dataclass(frozen=True)
class DispatcherSettings:
    """Knobs of the dispatcher (taken from the controller's options)."""

    url: str
    tls: tuple[str, str] | None  # (key PEM, certificate PEM)
    crashes_max: int
    seconds_heartbeat: float
    seconds_heartbeat_timeout: float
    bytes_max: int
    prefetch_max: int
    seconds_prefetch: float = 0.02
    #: Payload bytes a worker may hold in flight before it is sent more (it always gets one).
    bytes_prefetch: int = 8 << 20
    seconds_auth: float = 10.0
    seconds_grace: float = 5.0
    seconds_busy_silence: float = 600.0
    #: Heartbeats each way per second, at most: past it the interval grows (see pycrew.control.beat_rate).
    heartbeats_per_second: float = 500.0
    transport: transport.Transport = transport.DEFAULT_TRANSPORT
    initializer: str | None = None  # the base64 of its pickle, for the WELCOME (see pycrew.worker.initializer)
    explain_crashes: bool = False  # crashed-out tasks wait for the monitor's word (see pycrew.control.crash_hold)


class Conn:
    """One worker connection."""

    __slots__ = (
        "alone",
        "bytes_in_flight",
        "ending",
        "exit_reason",
        "frames_acked",
        "frames_sent",
        "host",
        "in_flight",
        "info",
        "instance",
        "last_seen",
        "last_task_send",
        "link",
        "next_beat",
        "nonce",
        "opened",
        "pid",
        "progress",
        "ready_version",
        "recalling",
        "served",
        "silence_noted",
        "slot",
        "stalled",
        "state",
        "stop_by",
        "tasks_left",
        "visit_at",
    )

    def __init__(self, link: Link, now: float) -> None:
        self.link = link
        self.state = CHALLENGED
        self.nonce = p.new_nonce()
        self.instance: str | None = None
        self.slot: int | None = None
        self.in_flight: dict[int, Task] = {}
        self.bytes_in_flight = 0  # the payload bytes of in_flight's tasks
        self.last_seen = now
        self.opened = now
        self.next_beat = now  # when the dispatcher sends this connection its next heartbeat
        self.host: str | None = None
        self.pid: int | None = None
        self.frames_sent = 0
        self.frames_acked = 0
        self.ready_version = 0  # the dispatcher's entry for this connection in its ready heap
        self.exit_reason = ""  # the worker's reason when it says bye (or that it is ending)
        self.ending = False  # the worker said it ends after its running task (LEAVING)
        self.last_task_send = now
        self.tasks_left = 1 << 62
        self.info: dict[str, Any] = {}
        self.progress = now  # when the task now at the head of in_flight (probably) started
        self.stop_by: float | None = None  # a cancelled task must be given back by then
        self.visit_at = 0.0  # when the dispatcher's upkeep next looks at this connection
        self.recalling = False  # a RECALL was sent and not answered yet (see recall)
        self.stalled = False  # gave tasks back: none offered until a result comes (see recall)
        self.silence_noted = 0.0  # the last_seen of a busy silence already logged (see Upkeep._visit)
        self.served = False  # it has sent a result (see Upkeep._leaving)
        self.alone: int | None = None  # the id of a suspect task it runs alone: no other task meanwhile
