"""Round-trip cost of the transports alone, without pycrew's queue, futures or pickling.

A child process echoes 100-byte frames back to this process, one at a time, over:

- ``tcp``: a bare blocking TCP socket on both sides (the floor);
- ``socket``: pycrew's ``socket`` transport (selector loop on a thread here, a
  :class:`~pycrew.wire.transport.Channel` in the child);
- ``nng``: pycrew's ``nng`` transport (pynng ``Pair1``, polyamorous here);
- ``pynng``: bare pynng ``Pair1`` sockets on both sides, blocking ``send``/``recv``.

The difference between ``tcp`` and ``pynng`` is what NNG's own threads add to every
round trip; between ``tcp`` and ``socket``, what pycrew's transport layer adds.

Usage::

    python benchmarks/bench_transport.py                 # 2,000 round trips each, 3 runs
    python benchmarks/bench_transport.py --trips 5000 --repeat 5
"""

from __future__ import annotations

import argparse
import os
import selectors
import socket
import statistics
import subprocess
import sys
import threading
import time
from typing import Any

KINDS = ("tcp", "socket", "nng", "pynng")
PAYLOAD = b"x" * 100


# -- the echo side (child process) --------------------------------------------------------


def echo(kind: str, url: str) -> None:
    """Echo frames until an empty one or ``b"q"`` arrives."""
    if kind == "tcp":
        host, port = url.rsplit(":", 1)
        conn = socket.create_connection((host.split("//")[1], int(port)))
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        while (data := conn.recv(65536)) not in (b"", b"q"):
            conn.sendall(data)
        return
    if kind == "pynng":
        import pynng

        sock = pynng.Pair1()
        sock.dial(url, block=True)
        while (data := sock.recv()) != b"q":
            sock.send(data)
        return
    from pycrew.wire import transport

    channel = transport.connect(kind, url, None, 10.0)  # type: ignore[arg-type]
    while True:
        frame = channel.recv(60.0)
        if frame is None or frame == b"q":
            return
        channel.send(frame)


# -- the measuring side ---------------------------------------------------------------------


def _child(kind: str, url: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, __file__, "--echo", kind, url])


def _percentiles(samples: list[float]) -> dict[str, float]:
    samples.sort()
    return {"p50": samples[len(samples) // 2], "p99": samples[int(len(samples) * 0.99)], "mean": statistics.fmean(samples)}


def measure_tcp(trips: int) -> dict[str, float]:
    """Bare sockets."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    proc = _child("tcp", f"tcp://127.0.0.1:{listener.getsockname()[1]}")
    conn, _ = listener.accept()
    conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    samples = []
    for _ in range(trips):
        t0 = time.perf_counter_ns()
        conn.sendall(PAYLOAD)
        conn.recv(65536)
        samples.append((time.perf_counter_ns() - t0) / 1000)
    conn.sendall(b"q")
    proc.wait()
    listener.close()
    return _percentiles(samples)


def measure_pynng(trips: int) -> dict[str, float]:
    """Bare pynng Pair1 sockets."""
    import pynng

    sock = pynng.Pair1()
    sock.listen("tcp://127.0.0.1:0")
    port = str(sock.listeners[0].local_address).rsplit(":", 1)[1]
    proc = _child("pynng", f"tcp://127.0.0.1:{port}")
    sock.send(b"warm")
    sock.recv()
    samples = []
    for _ in range(trips):
        t0 = time.perf_counter_ns()
        sock.send(PAYLOAD)
        sock.recv()
        samples.append((time.perf_counter_ns() - t0) / 1000)
    sock.send(b"q")
    proc.wait()
    sock.close()
    return _percentiles(samples)


class _Handler:
    """Hands frames from the server loop to the measuring thread."""

    def __init__(self) -> None:
        self.link: Any = None
        self.opened = threading.Event()
        self.frame: bytes | None = None
        self.arrived = threading.Event()

    def link_opened(self, link: Any) -> None:
        self.link = link
        self.opened.set()

    def frame_received(self, link: Any, frame: bytes) -> None:
        self.frame = frame
        self.arrived.set()

    def frame_arriving(self, link: Any) -> None:
        pass

    def link_closed(self, link: Any) -> None:
        pass


def measure_pycrew(kind: str, trips: int) -> dict[str, float]:
    """pycrew's transport, with the server on a loop thread as in the dispatcher.

    The measuring thread hands each frame to the loop thread (as ``push`` hands a task to
    the dispatcher) and waits on an event (as ``result()`` waits on a future).
    """
    from pycrew.wire import transport

    rfd, wfd = os.pipe()
    outbox: list[bytes] = []

    def wake() -> None:
        os.write(wfd, b"x")

    server = transport.listen(kind, "tcp://127.0.0.1:0", None, 1 << 20, 10.0, wake)  # type: ignore[arg-type]
    handler = _Handler()
    stop = False

    def loop() -> None:
        sel = selectors.DefaultSelector()
        sel.register(rfd, selectors.EVENT_READ, None)
        server.attach(sel, handler)
        while not stop:
            for key, mask in sel.select(0.1):
                if key.data is None:
                    os.read(rfd, 4096)
                else:
                    key.data(mask)
            while outbox:
                handler.link.send(outbox.pop())
            server.poll()
        server.close()

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    proc = _child(kind, server.address)
    handler.opened.wait(30)
    samples = []
    for _ in range(trips):
        t0 = time.perf_counter_ns()
        handler.arrived.clear()
        outbox.append(PAYLOAD)
        wake()
        handler.arrived.wait(10)
        samples.append((time.perf_counter_ns() - t0) / 1000)
    outbox.append(b"q")
    wake()
    proc.wait()
    stop = True
    wake()
    thread.join(5)
    os.close(rfd)
    os.close(wfd)
    return _percentiles(samples)


def main() -> None:
    """Run every kind ``--repeat`` times (interleaved) and print medians."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trips", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--echo", nargs=2, metavar=("KIND", "URL"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.echo:
        echo(*args.echo)
        return
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in KINDS}
    for _ in range(args.repeat):
        for kind in KINDS:
            if kind == "tcp":
                runs[kind].append(measure_tcp(args.trips))
            elif kind == "pynng":
                runs[kind].append(measure_pynng(args.trips))
            else:
                runs[kind].append(measure_pycrew(kind, args.trips))
    print(f"round trips of a 100-byte frame, {args.trips} per run, medians of {args.repeat} runs (µs)\n")
    print(f"{'':10}{'p50':>10}{'p99':>10}{'mean':>10}")
    for kind in KINDS:
        med = {k: statistics.median(r[k] for r in runs[kind]) for k in ("p50", "p99", "mean")}
        print(f"{kind:10}{med['p50']:10.1f}{med['p99']:10.1f}{med['mean']:10.1f}")
    print(f"\nload average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
