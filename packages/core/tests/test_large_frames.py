"""Large frames cross the socket transport without being copied on the way.

A frame of :data:`DIRECT_READ` bytes or more is read straight into a buffer of its own
(:class:`DirectFrame`) at both ends, instead of through the read chunk and the link's read
buffer and then sliced out (three copies of a 20 MB result before anything looked at it);
large payloads go out as parts of their frame (``send_parts``) instead of being joined into
it, and come out of ``decode_records`` as views into the frame. Over real sockets on
127.0.0.1, checked by what the process allocates (tracemalloc) and by frames arriving whole
and in order however the bytes are split.
"""

from __future__ import annotations

import itertools
import os
import pickle
import socket
import time
import tracemalloc
from collections.abc import Iterator

import pytest
from test_transport import Loop, make_loop  # noqa: F401 (a fixture)

from pycrew.wire import protocol as p
from pycrew.wire.transport import split_url
from pycrew.wire.transport.socket_channel import SocketChannel
from pycrew.wire.transport.sockets import DIRECT_READ, HEADER, PREAMBLE

SIZE = 16_000_000


@pytest.fixture
def raw_pair() -> Iterator[tuple[socket.socket, SocketChannel]]:
    """A plain socket (playing the dispatcher) and a worker's channel connected to it."""
    listener = socket.create_server(("127.0.0.1", 0))
    dialer = socket.create_connection(listener.getsockname(), timeout=10)
    accepted, _ = listener.accept()
    channel = SocketChannel(dialer, None)
    yield accepted, channel
    channel.close()
    for s in (accepted, listener):
        s.close()


def _peak_during(fn: object) -> int:
    """Bytes allocated at the peak while ``fn()`` runs, beyond what was allocated before."""
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()  # type: ignore[operator]
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()


def test_the_dispatcher_reads_a_large_frame_once(make_loop) -> None:  # noqa: F811
    loop: Loop = make_loop("socket")
    loop.handler.echo = False
    _, host, port = split_url(loop.server.address)
    frame = os.urandom(SIZE)
    with socket.create_connection((host, port), timeout=10) as raw:
        raw.sendall(PREAMBLE)
        loop.handler.next("open")

        def receive() -> None:
            raw.sendall(HEADER.pack(SIZE))
            raw.sendall(frame)
            event = loop.handler.next("frame", timeout=30)
            assert event[2] == frame

        peak = _peak_during(receive)
    # Before: the chunks gathered in the link's buffer (16 MB), then copied out as the frame.
    assert peak < 1.3 * SIZE, f"receiving a {SIZE:,}-byte frame allocated {peak:,} bytes at the peak"


def test_a_worker_reads_a_large_frame_once(raw_pair) -> None:
    controller, channel = raw_pair
    frame = os.urandom(SIZE)
    controller.setblocking(True)
    got: list[bytes | bytearray | None] = []

    def receive() -> None:
        import threading

        sender = threading.Thread(target=lambda: controller.sendall(HEADER.pack(SIZE) + frame[:1000]) or controller.sendall(memoryview(frame)[1000:]))
        sender.start()
        deadline = time.monotonic() + 30
        while not got or got[-1] is None:
            assert time.monotonic() < deadline, "the frame did not arrive"
            got.append(channel.recv(1.0))
        sender.join(30)

    peak = _peak_during(receive)
    assert got[-1] == frame
    assert peak < 1.3 * SIZE, f"receiving a {SIZE:,}-byte frame allocated {peak:,} bytes at the peak"


def test_frames_around_a_large_one_arrive_whole_and_in_order_however_the_bytes_are_split(make_loop, raw_pair) -> None:  # noqa: F811
    big = os.urandom(DIRECT_READ * 3 + 17)
    frames = [b"a", os.urandom(1000), big, b"b", big[::-1], os.urandom(300_000), b"c"]
    stream = b"".join(HEADER.pack(len(f)) + f for f in frames)
    # splits inside headers and inside the large frames, and whole runs of small frames
    cuts = [0, 3, 11, 1020, 1030, len(stream) // 3, len(stream) // 2 + 5, len(stream) - 9, len(stream)]
    pieces = [stream[a:b] for a, b in itertools.pairwise(cuts)]

    loop: Loop = make_loop("socket")  # the dispatcher's end
    loop.handler.echo = False
    _, host, port = split_url(loop.server.address)
    with socket.create_connection((host, port), timeout=10) as raw:
        raw.sendall(PREAMBLE)
        loop.handler.next("open")
        for piece in pieces:
            raw.sendall(piece)
            time.sleep(0.01)  # each piece read on its own turn
        assert [loop.handler.next("frame", timeout=30)[2] for _ in frames] == frames

    controller, channel = raw_pair  # the worker's end
    controller.setblocking(True)
    received: list[bytes | bytearray] = []
    for piece in pieces:
        controller.sendall(piece)
        time.sleep(0.01)
        while (frame := channel.recv(0.05)) is not None:
            received.append(frame)
    deadline = time.monotonic() + 30
    while len(received) < len(frames) and time.monotonic() < deadline:
        if (frame := channel.recv(0.5)) is not None:
            received.append(frame)
    assert received == frames


def test_large_payloads_leave_as_parts_and_arrive_as_views(raw_pair) -> None:
    controller, channel = raw_pair
    payload = pickle.dumps(os.urandom(SIZE), protocol=pickle.HIGHEST_PROTOCOL)
    small = pickle.dumps("small")
    parts = p.record_parts(p.RESULTS, [(1, small), (2, payload)])
    controller.setblocking(True)
    received = bytearray()

    def send() -> None:
        import threading

        reader = threading.Thread(target=lambda: _read_all(controller, received, HEADER.size + sum(map(len, parts))))
        reader.start()
        channel.send_parts(parts)
        reader.join(30)

    peak = _peak_during(send)
    # The reader's buffer holds the frame once; sending it joined would have copied it again.
    assert peak < 2.3 * SIZE, f"sending a {SIZE:,}-byte payload allocated {peak:,} bytes at the peak"
    (length,) = HEADER.unpack_from(received)
    frame = bytes(received[HEADER.size :])
    assert length == len(frame) and frame == p.encode_records(p.RESULTS, [(1, small), (2, payload)])
    records = p.decode_records(frame)
    assert [i for i, _ in records] == [1, 2]
    assert type(records[0][1]) is bytes, "a small payload is copied out (it does not keep the frame alive)"
    assert type(records[1][1]) is memoryview, "a large payload is a view into its frame, not a copy"
    assert pickle.loads(records[0][1]) == "small" and pickle.loads(records[1][1]) == pickle.loads(payload)


def _read_all(sock: socket.socket, into: bytearray, n: int) -> None:
    while len(into) < n:
        chunk = sock.recv(min(1 << 20, n - len(into)))
        if not chunk:
            return
        into += chunk


def test_the_dispatcher_sends_large_payloads_as_parts(make_loop) -> None:  # noqa: F811
    loop: Loop = make_loop("socket")
    _, host, port = split_url(loop.server.address)
    payload = os.urandom(SIZE)
    parts = p.record_parts(p.TASKS, [(7, b"small"), (8, payload), (9, b"after")])
    expected = p.encode_records(p.TASKS, [(7, b"small"), (8, payload), (9, b"after")])
    with socket.create_connection((host, port), timeout=10) as raw:
        raw.sendall(PREAMBLE)
        link_id = loop.handler.next("open")[1]
        received = bytearray()

        def send() -> None:
            loop.call(lambda: loop.handler.links[link_id].send_parts(parts))
            _read_all(raw, received, HEADER.size + len(expected))

        peak = _peak_during(send)
    assert bytes(received) == HEADER.pack(len(expected)) + expected
    # The reader's buffer holds the frame once; joining the parts would have copied the payload again.
    assert peak < 1.6 * SIZE, f"sending a {SIZE:,}-byte payload allocated {peak:,} bytes at the peak"


OUT_OF_MEMORY = r"""
import os, resource, socket, sys
sys.path.insert(0, sys.argv[1])
from test_transport import Loop
from pycrew.wire.transport import split_url
from pycrew.wire.transport.sockets import HEADER, PREAMBLE

loop = Loop("socket", None, 1 << 30, 10.0)
loop.handler.echo = False
_, host, port = split_url(loop.server.address)
raws = [socket.create_connection((host, port), timeout=10) for _ in range(2)]
for raw in raws:
    raw.sendall(PREAMBLE)
first, second = loop.handler.next("open")[1], loop.handler.next("open")[1]
blob = b"x" * (100 << 20)
# From here on the process may map only 100 MiB more: a 512 MiB frame's buffer, which grows
# as its bytes arrive (4, 8, ... 64 MiB), cannot reach 128 MiB.
used = int(open("/proc/self/statm").read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
resource.setrlimit(resource.RLIMIT_AS, (used + (100 << 20), resource.RLIM_INFINITY))
try:
    raws[0].sendall(HEADER.pack(512 << 20) + blob[:100_000])
    raws[0].sendall(blob)
except OSError:  # the server closed the link meanwhile
    pass
assert loop.handler.next("closed")[1] == first, "the link whose frame did not fit was not the one dropped"
raws[1].sendall(HEADER.pack(5) + b"hello")
assert loop.handler.next("frame")[2] == b"hello", "the server stopped serving the other link"
assert loop.thread.is_alive()
print("served on")
"""


def test_a_frame_whose_buffer_cannot_be_had_drops_its_link_not_the_server() -> None:
    """Out of memory for one worker's large frame (under the frame limit), the server closes
    that worker's link and goes on serving the others; the ``MemoryError`` used to end the
    dispatcher's loop, failing every task of the controller. Run in a child process whose
    address space is capped (``RLIMIT_AS``), so the allocation really fails."""
    import subprocess
    import sys

    here = os.path.dirname(os.path.abspath(__file__))
    run = subprocess.run([sys.executable, "-c", OUT_OF_MEMORY, here], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and "served on" in run.stdout, run.stdout + run.stderr


WORKER_OUT_OF_MEMORY = r"""
import os, resource, socket, sys, threading
from pycrew.wire.transport import Unreceivable
from pycrew.wire.transport.socket_channel import SocketChannel
from pycrew.wire.transport.sockets import HEADER

listener = socket.create_server(("127.0.0.1", 0))
dialer = socket.create_connection(listener.getsockname(), timeout=10)
controller, _ = listener.accept()
channel = SocketChannel(dialer, None)
blob, go = b"x" * (100 << 20), threading.Event()


def send():
    go.wait()
    try:
        controller.sendall(HEADER.pack(512 << 20) + blob[:100_000])
        controller.sendall(blob)
    except OSError:  # the worker closed the link meanwhile
        pass


sender = threading.Thread(target=send)
sender.start()  # (its stack mapped before the limit)
used = int(open("/proc/self/statm").read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
resource.setrlimit(resource.RLIMIT_AS, (used + (100 << 20), resource.RLIM_INFINITY))
go.set()
try:
    while channel.recv(5.0) is None:
        pass
    raise SystemExit("a frame came back")
except Unreceivable as exc:
    print("unreceivable:", exc)
sender.join(30)
controller.settimeout(10)
print("controller reads:", controller.recv(100))
"""


def test_a_worker_without_memory_for_a_frame_closes_its_link_and_says_why() -> None:
    """The worker's side of the test above: the read ends with ``Unreceivable`` (the worker
    stops, naming the cause) and the link is closed, so the controller sees the worker gone
    at once and runs its tasks elsewhere (a ``MemoryError`` used to end whichever worker
    thread was reading, and the controller noticed only when heartbeats went missing)."""
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", WORKER_OUT_OF_MEMORY], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "unreceivable: no memory for a frame of 536,870,912 bytes from the controller" in run.stdout, run.stdout
    assert "controller reads: b''" in run.stdout, "the worker's end of the link stayed open"


WORKER_LOOP_OUT_OF_MEMORY = r"""
import os, resource, socket, sys, threading, time
from pycrew.wire.transport.sockets import HEADER, PREAMBLE
from pycrew.worker.command import WorkerCommand
from pycrew.worker.loop import Worker

listener = socket.create_server(("127.0.0.1", 0))
command = WorkerCommand(url=f"tcp://127.0.0.1:{listener.getsockname()[1]}", transport="socket", instance="oom-1", seconds_launch=30.0)
worker = Worker(command, "token", None, shared_process=True)
thread = threading.Thread(target=worker.run, daemon=True)
thread.start()
controller, _ = listener.accept()
controller.settimeout(30)
while len(controller.recv(len(PREAMBLE), socket.MSG_PEEK)) < len(PREAMBLE):
    time.sleep(0.01)
controller.recv(len(PREAMBLE))
time.sleep(0.2)  # the worker's threads are up (their stacks mapped)
blob = b"x" * (100 << 20)
used = int(open("/proc/self/statm").read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
resource.setrlimit(resource.RLIMIT_AS, (used + (100 << 20), resource.RLIM_INFINITY))
try:
    controller.sendall(HEADER.pack(512 << 20) + blob[:100_000])
    controller.sendall(blob)
except OSError:  # the worker closed the link meanwhile
    pass
thread.join(30)
print("ended:", not thread.is_alive(), "reason:", worker.stop_reason)
"""


def test_a_worker_loop_without_memory_for_a_frame_stops_naming_the_cause() -> None:
    import subprocess
    import sys

    run = subprocess.run([sys.executable, "-c", WORKER_LOOP_OUT_OF_MEMORY], capture_output=True, text=True, timeout=120)
    assert "ended: True reason: no memory for a frame of 536,870,912 bytes from the controller" in run.stdout, run.stdout + run.stderr
