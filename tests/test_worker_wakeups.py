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
from support import read_frame, recv_exactly, send_frame

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
        hello = json.loads(read_frame(peer)[1:])
        assert p.verify_mac(TOKEN, nonce, "quiet-1", hello["mac"])
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
