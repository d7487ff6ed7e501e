"""A worker loop that waits sleeps: no thread of it wakes on a timer while nothing happens.

A swarm host (and any process hosting many ``Worker(shared_process=True)`` loops) holds
thousands of them: a loop that polled every 50 ms while connecting made 5,000 connecting
workers wake 100,000 times a second on two cores, starving the dispatcher until the
handshakes timed out. Each case counts a thread's voluntary context switches (Linux
``/proc``) over a quiet window, with a peer speaking the wire by hand on 127.0.0.1.
"""

from __future__ import annotations

import json
import os
import pickle
import socket
import sys
import threading
import time
from collections.abc import Iterator

import pytest

from pycrew.wire import protocol as p
from pycrew.wire.transport.sockets import PREAMBLE
from pycrew.worker.command import WorkerCommand
from pycrew.worker.loop import Worker
from support import proof, read_frame, recv_exactly, send_frame

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="counts context switches in /proc")

QUIET = 3.0  # seconds a thread is watched
TOKEN = "t" * 64


def switches(native_id: int) -> int:
    """Voluntary context switches of one thread of this process so far."""
    with open(f"/proc/self/task/{native_id}/status") as f:
        for line in f:
            if line.startswith("voluntary_ctxt_switches:"):
                return int(line.split()[1])
    raise AssertionError("no voluntary_ctxt_switches line")


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.create_server(("127.0.0.1", 0))
    sock.settimeout(30)
    yield sock
    sock.close()


def start_worker(listener: socket.socket) -> tuple[Worker, threading.Thread, socket.socket]:
    """A shared-process worker loop on its own thread, and the peer end of its connection."""
    port = listener.getsockname()[1]
    command = WorkerCommand(url=f"tcp://127.0.0.1:{port}", transport="socket", instance="quiet-1", seconds_launch=30.0)
    worker = Worker(command, TOKEN, None, shared_process=True)
    thread = threading.Thread(target=worker.run, name="worker-main", daemon=True)
    thread.start()
    peer, _ = listener.accept()
    peer.settimeout(30)
    assert recv_exactly(peer, len(PREAMBLE)) == PREAMBLE
    return worker, thread, peer


def quiet_wakeups(*threads: threading.Thread) -> dict[str, int]:
    """Voluntary context switches of each thread during ``QUIET`` seconds."""
    ids = {t.name: t.native_id for t in threads}
    assert all(ids.values())
    before = {name: switches(tid) for name, tid in ids.items() if tid is not None}
    time.sleep(QUIET)
    return {name: switches(tid) - before[name] for name, tid in ids.items() if tid is not None}


def worker_threads(main: threading.Thread) -> list[threading.Thread]:
    return [main, *(t for t in threading.enumerate() if t.name.startswith("pycrew-worker-"))]


def finish(worker: Worker, thread: threading.Thread, peer: socket.socket) -> None:
    peer.shutdown(socket.SHUT_RDWR)
    peer.close()
    thread.join(timeout=30)
    assert not thread.is_alive(), "the worker loop did not end once its link closed"
    assert worker.gone.is_set()


def test_a_worker_waiting_for_its_challenge_does_not_poll(listener: socket.socket) -> None:
    """Connected, no CHALLENGE yet: the main thread sleeps until the handshake ends (it
    polled every 50 ms: 60 wake-ups in this window)."""
    worker, thread, peer = start_worker(listener)
    try:
        time.sleep(0.2)  # past the start of its threads
        woke = quiet_wakeups(*worker_threads(thread))
        assert woke["worker-main"] <= 2, woke
        assert woke.get("pycrew-worker-flusher", 0) <= 2, woke
        # The comms thread reads with the heartbeat interval (2 s) as its timeout.
        assert woke.get("pycrew-worker-comms", 0) <= 4, woke
    finally:
        finish(worker, thread, peer)


def test_a_refused_worker_wakes_at_once(listener: socket.socket) -> None:
    """The main thread sleeps on the handshake's end, and a refusal (link closed) ends it."""
    worker, thread, peer = start_worker(listener)
    time.sleep(0.3)
    t0 = time.monotonic()
    peer.close()
    thread.join(timeout=30)
    assert not thread.is_alive()
    assert time.monotonic() - t0 < 10
    assert worker.stop_reason == "the controller closed the connection"


def test_an_idle_welcomed_worker_in_a_shared_process_does_not_poll(listener: socket.socket) -> None:
    """Welcomed, idle, no heartbeat due: no thread wakes (the main thread woke every second)."""
    worker, thread, peer = start_worker(listener)
    try:
        nonce = os.urandom(p.NONCE_BYTES)
        send_frame(peer, p.encode_challenge(nonce))
        hello_frame = read_frame(peer)
        hello = json.loads(hello_frame[1:])
        assert p.verify_mac(TOKEN, nonce, "quiet-1", hello["mac"])
        send_frame(peer, proof(hello_frame, TOKEN))
        send_frame(peer, p.encode_json(p.WELCOME, {"seconds_heartbeat": 60.0, "seconds_heartbeat_timeout": 600.0}))
        assert worker.welcomed.wait(10)
        deadline = time.monotonic() + 10
        while not worker.serving and time.monotonic() < deadline:
            time.sleep(0.01)
        peer.settimeout(1.0)
        beat = read_frame(peer)  # the first heartbeat goes out at once; the next in 60 s
        assert beat[0] == p.BEAT
        time.sleep(0.2)
        woke = quiet_wakeups(*worker_threads(thread))
        assert woke["worker-main"] <= 1, woke
        assert woke.get("pycrew-worker-comms", 0) <= 1, woke
        assert woke.get("pycrew-worker-flusher", 0) <= 1, woke
    finally:
        finish(worker, thread, peer)


class _GiveBackFirst:
    """``Worker.cv`` that lets a RECALL win the race against the main thread, once.

    When the main thread enters it holding a result back for tasks still queued, the
    comms thread's ``_give_back`` runs first (as when the RECALL is read between the main
    thread's look at its queue and its taking the next task).
    """

    def __init__(self, worker: Worker, main: str) -> None:
        self.worker = worker
        self.main = main
        self.cond = worker.cv
        self.raced = threading.Event()

    def __enter__(self) -> bool:
        w = self.worker
        if (
            not self.raced.is_set() and threading.current_thread().name == self.main
            and w.batcher.results and w.tasks and not w.running
        ):
            self.raced.set()
            w._give_back([task_id for task_id, _ in w.tasks])
        return self.cond.__enter__()

    def __exit__(self, *exc: object) -> None:
        self.cond.__exit__(*exc)

    def __getattr__(self, name: str) -> object:
        return getattr(self.cond, name)


def test_results_held_for_tasks_that_were_given_back_go_out_at_once(listener: socket.socket) -> None:
    """A result waits while more tasks are queued (they come back in one frame). When a
    RECALL takes those tasks between the main thread's look at its queue and its taking
    the next one, the result went out only after the idle wait (an hour): the controller
    saw the task running for that long (found by a 10,000-task burst over NNG that hung)."""
    worker, thread, peer = start_worker(listener)
    try:
        worker.cv = _GiveBackFirst(worker, "worker-main")  # type: ignore[assignment]
        nonce = os.urandom(p.NONCE_BYTES)
        send_frame(peer, p.encode_challenge(nonce))
        send_frame(peer, proof(read_frame(peer), TOKEN))  # (the HELLO's)
        send_frame(peer, p.encode_json(p.WELCOME, {"seconds_heartbeat": 60.0, "seconds_heartbeat_timeout": 600.0}))
        assert worker.welcomed.wait(10)
        tasks = [(i, pickle.dumps((abs, (-i,), {}, None, f"t{i}", None))) for i in (1, 2, 3)]
        send_frame(peer, p.encode_records(p.TASKS, tasks))
        peer.settimeout(5.0)
        got: dict[int, list[int]] = {}
        while p.RESULTS not in got:
            frame = read_frame(peer)
            if frame[0] == p.RETURNED:
                got[p.RETURNED] = p.decode_ids(frame)
            elif frame[0] == p.RESULTS:
                got[p.RESULTS] = [task_id for task_id, _ in p.decode_records(frame)]
        assert worker.cv.raced.is_set(), "the race was not staged: the test no longer reaches the state it checks"
        assert got == {p.RETURNED: [2, 3], p.RESULTS: [1]}, got
    finally:
        finish(worker, thread, peer)
