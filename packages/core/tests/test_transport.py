"""Both transports, server and worker side, over real sockets on 127.0.0.1."""

from __future__ import annotations

import os
import queue
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from pycrew.tls import self_signed
from pycrew.wire import transport
from pycrew.wire.transport import Closed, ConnectFailed, Link, split_url
from pycrew.wire.transport.socket_server import SocketServer
from pycrew.wire.transport.sockets import HEADER, PREAMBLE


class Recorder:
    """A :class:`transport.Handler` that echoes frames and records what happens."""

    def __init__(self, limit: int) -> None:
        self.events: queue.Queue[tuple[str, int, bytes | None]] = queue.Queue()
        self.links: dict[int, Link] = {}
        self.limit = limit
        self.echo = True

    def link_opened(self, link: Link) -> None:
        link.limit = self.limit
        self.links[link.id] = link
        self.events.put(("open", link.id, None))

    def frame_received(self, link: Link, frame: bytes) -> None:
        self.events.put(("frame", link.id, frame))
        if self.echo:
            link.send(frame)

    def frame_arriving(self, link: Link) -> None:
        self.events.put(("arriving", link.id, None))

    def link_closed(self, link: Link) -> None:
        self.links.pop(link.id, None)
        self.events.put(("closed", link.id, None))

    def next(self, kind: str, timeout: float = 10.0) -> tuple[str, int, bytes | None]:
        deadline = time.monotonic() + timeout
        while True:
            event = self.events.get(timeout=max(0.01, deadline - time.monotonic()))
            if event[0] == kind:
                return event


class Loop:
    """Runs a server on its own thread the way the dispatcher does."""

    def __init__(self, kind: transport.Transport, tls: tuple[str, str] | None, limit: int, seconds_auth: float) -> None:
        self.rfd, self.wfd = os.pipe()
        self.server = transport.listen(kind, "tls+tcp://127.0.0.1:0" if tls else "tcp://127.0.0.1:0", tls, limit, seconds_auth, self.wake)
        self.handler = Recorder(limit)
        self.calls: queue.Queue[Callable[[], None]] = queue.Queue()
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def wake(self) -> None:
        os.write(self.wfd, b"x")

    def call(self, fn: Callable[[], None]) -> None:
        self.calls.put(fn)
        self.wake()

    def run(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self.rfd, selectors.EVENT_READ, None)
        self.server.attach(sel, self.handler)
        while not self.stop:
            for key, mask in sel.select(0.05):
                if key.data is None:
                    os.read(self.rfd, 4096)
                else:
                    key.data(mask)
            while not self.calls.empty():
                self.calls.get()()
            self.server.poll()
            self.server.maintain(time.monotonic())
        self.server.close()
        sel.close()

    def close(self) -> None:
        self.stop = True
        self.wake()
        self.thread.join(10)
        os.close(self.rfd)
        os.close(self.wfd)


@pytest.fixture(params=transport.TRANSPORTS)
def kind(request: pytest.FixtureRequest) -> transport.Transport:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def make_loop() -> Iterator[Callable[..., Loop]]:
    loops: list[Loop] = []

    def make(kind: transport.Transport, tls: tuple[str, str] | None = None, limit: int = 64 << 20, seconds_auth: float = 10.0) -> Loop:
        loop = Loop(kind, tls, limit, seconds_auth)
        loops.append(loop)
        return loop

    yield make
    for loop in loops:
        loop.close()


def test_frames_round_trip_small_and_large(kind, make_loop):
    loop = make_loop(kind)
    channel = transport.connect(kind, loop.server.address, None, 5.0)
    try:
        loop.handler.next("open")
        frames = [b"x", os.urandom(100), os.urandom(10_000_000)]
        if kind == "socket":  # pynng cannot receive an empty message; pycrew never sends one
            frames.append(b"")
        for frame in frames:
            channel.send(frame)
            assert channel.recv(10.0) == frame
        assert channel.recv(0.05) is None, "an empty link yields None after the timeout"
    finally:
        channel.close()
    loop.handler.next("closed")


def test_a_spinning_receive_polls_and_still_returns_the_frame(make_loop):
    """With ``spin`` the socket channel polls instead of sleeping (it burns CPU meanwhile),
    and a frame that arrives during the poll is returned as from a sleeping receive."""
    loop = make_loop("socket")
    channel = transport.connect("socket", loop.server.address, None, 5.0)
    try:
        loop.handler.next("open")
        t0 = time.thread_time()
        assert channel.recv(0.2, spin=0.05) is None
        polled = time.thread_time() - t0
        t0 = time.thread_time()
        assert channel.recv(0.2) is None
        slept = time.thread_time() - t0
        assert polled > 0.01 > slept, f"CPU while waiting: {polled:.4f} s polling, {slept:.4f} s sleeping"
        timer = threading.Timer(0.01, lambda: channel.send(b"soon"))  # the server echoes it
        timer.start()
        assert channel.recv(5.0, spin=1.0) == b"soon"
        timer.join()
    finally:
        channel.close()


def test_a_slow_reader_gets_everything_in_order(make_loop):
    """The server queues what the socket cannot take and writes it when there is room.

    (Not so over NNG: its polyamorous socket discards what a pipe cannot take, which the
    dispatcher detects from the frame counts in heartbeats, see ``tests/test_crashes.py``.)
    """
    kind = "socket"
    loop = make_loop(kind)
    channel = transport.connect(kind, loop.server.address, None, 5.0)
    try:
        _, link_id, _ = loop.handler.next("open")
        # large frames (queued after their header) between small ones (header and body in one piece)
        frames = [os.urandom(1_000_000 if i % 2 else 100) + i.to_bytes(4, "little") for i in range(40)]
        for frame in frames:
            loop.call(lambda frame=frame: loop.handler.links[link_id].send(frame))
        time.sleep(0.5)  # let the server fill the socket and queue the rest
        assert [channel.recv(10.0) for _ in frames] == frames
    finally:
        channel.close()


def test_server_close_is_seen_by_the_worker(kind, make_loop):
    loop = make_loop(kind)
    closed = threading.Event()
    channel = transport.connect(kind, loop.server.address, None, 5.0, on_closed=closed.set)
    try:
        _, link_id, _ = loop.handler.next("open")
        loop.call(lambda: loop.handler.links[link_id].close())
        with pytest.raises(Closed):
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                channel.recv(0.2)
        assert closed.wait(5), "on_closed was not called"
        loop.handler.next("closed")
    finally:
        channel.close()


def test_frames_over_the_link_limit_close_the_link(kind, make_loop):
    loop = make_loop(kind, limit=65536)
    channel = transport.connect(kind, loop.server.address, None, 5.0)
    try:
        loop.handler.next("open")
        channel.send(b"y" * 1000)
        assert channel.recv(5.0) == b"y" * 1000
        with pytest.raises(Closed):
            channel.send(b"z" * 200_000)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                channel.recv(0.2)
        loop.handler.next("closed")
    finally:
        channel.close()


def test_tls_round_trip_and_an_untrusted_certificate(kind, make_loop):
    key, cert = self_signed("127.0.0.1")
    loop = make_loop(kind, tls=(key, cert))
    channel = transport.connect(kind, loop.server.address, cert, 5.0)
    try:
        # a large frame goes after its header, in two writes, each end (the server echoes)
        for frame in (b"secret", os.urandom(3_000_000), b"after"):
            channel.send(frame)
            assert channel.recv(10.0) == frame
    finally:
        channel.close()
    _, other = self_signed("127.0.0.1")
    t0 = time.monotonic()
    with pytest.raises(ConnectFailed):
        transport.connect(kind, loop.server.address, other, 3.0)
    assert time.monotonic() - t0 < 10


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="the sweep reads /proc/self/fd (Linux)")
def test_tls_connections_that_never_open_are_closed_after_seconds_auth(kind, make_loop):
    """The probe: NNG's TLS listener kept connections that never began their handshake for
    good (one descriptor each: enough of them and no worker could connect); the socket wire
    closed them after seconds_auth. A worker connected meanwhile keeps its connection."""
    key, cert = self_signed("127.0.0.1")
    loop = make_loop(kind, tls=(key, cert), seconds_auth=0.5)
    _, host, port = split_url(loop.server.address)
    silent = [socket.create_connection((host, port), timeout=5) for _ in range(3)]
    channel = transport.connect(kind, loop.server.address, cert, 5.0)
    try:
        for s in silent:
            s.settimeout(30)
            try:
                assert s.recv(100) == b"", "the server sent something to a connection that never opened"
            except ConnectionResetError:
                pass  # closed too
            except TimeoutError:
                pytest.fail("a connection that never began its TLS handshake was kept for 30 s (seconds_auth 0.5)")
        time.sleep(1.0)  # sweeps past seconds_auth: the worker's connection is no stranger
        for frame in (b"still", os.urandom(10_000)):
            channel.send(frame)
            assert channel.recv(10.0) == frame
    finally:
        channel.close()
        for s in silent:
            s.close()


def test_socket_tls_refusal_is_immediate_and_names_the_reason(make_loop):
    key, cert = self_signed("127.0.0.1")
    loop = make_loop("socket", tls=(key, cert))
    _, other = self_signed("127.0.0.1")
    with pytest.raises(ConnectFailed, match="not trusted"):
        transport.connect("socket", loop.server.address, other, 30.0)


def test_connect_retries_until_the_server_listens(kind):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"tcp://127.0.0.1:{port}"
    result: dict[str, object] = {}

    def dial() -> None:
        try:
            result["channel"] = transport.connect(kind, url, None, 15.0)
        except Exception as exc:  # reported below
            result["error"] = exc

    thread = threading.Thread(target=dial)
    thread.start()
    time.sleep(0.7)
    rfd, wfd = os.pipe()
    server = transport.listen(kind, url, None, 1 << 20, 10.0, lambda: None)
    try:
        thread.join(20)
        assert "channel" in result, result.get("error")
        result["channel"].close()  # type: ignore[attr-defined]
    finally:
        server.close()
        os.close(rfd)
        os.close(wfd)


def test_connect_gives_up_after_its_time(kind):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    t0 = time.monotonic()
    with pytest.raises(ConnectFailed, match="within 1 s"):
        transport.connect(kind, f"tcp://127.0.0.1:{port}", None, 1.0)
    assert time.monotonic() - t0 < 5


@pytest.mark.slow
def test_nng_connect_giving_up_never_hangs():
    # Closing an NNG socket while a blocking dial runs on it can deadlock both calls: a
    # connect that cut its dials off that way hung for good about once in 200 (the worker
    # then never exits). 300 short connects to a closed port must all give up.
    done = threading.Event()
    errors: list[BaseException] = []

    def connect_many() -> None:
        try:
            for _ in range(300):
                with socket.socket() as probe:
                    probe.bind(("127.0.0.1", 0))
                    port = probe.getsockname()[1]
                with pytest.raises(ConnectFailed):
                    transport.connect("nng", f"tcp://127.0.0.1:{port}", None, 0.05)
        except BaseException as exc:
            errors.append(exc)
        finally:
            done.set()

    threading.Thread(target=connect_many, daemon=True).start()
    assert done.wait(120), "a connect to a closed port hung"
    assert not errors, errors


@pytest.mark.parametrize(
    "payload",
    [b"GET / HTTP/1.1\r\n\r\n", b"PYCREW\x00\x09", PREAMBLE + HEADER.pack(1 << 40), b"\x00SP\x00\x00\x11\x00\x00"],
    ids=["http", "other-version", "huge-length", "nng-header"],
)
def test_socket_server_drops_what_is_not_a_worker(make_loop, payload):
    loop = make_loop("socket", limit=1 << 20)
    _, host, port = split_url(loop.server.address)
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(payload)
        assert s.recv(100) == b"", "the server kept the connection"
    assert loop.handler.events.empty() or all(e[0] != "frame" for e in list(loop.handler.events.queue))


def test_socket_server_closes_connections_that_never_open(make_loop):
    loop = make_loop("socket", seconds_auth=0.5)
    _, host, port = split_url(loop.server.address)
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(PREAMBLE[:3])  # and then nothing
        t0 = time.monotonic()
        assert s.recv(100) == b""
        assert time.monotonic() - t0 < 5
    assert isinstance(loop.server, SocketServer) and not loop.server.links


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("tcp://127.0.0.1:5", (False, "127.0.0.1", 5)),
        ("tls+tcp://[::1]:7", (True, "::1", 7)),
        ("tcp://*:9", (False, "", 9)),
        ("tcp://host.example:80", (False, "host.example", 80)),
    ],
)
def test_split_url(url, expected):
    assert split_url(url) == expected


@pytest.mark.parametrize("url", ["ipc:///tmp/x", "tcp://nohost", "tcp://h:port", "127.0.0.1:5"])
def test_split_url_rejects_what_it_cannot_dial(url):
    with pytest.raises(ValueError, match="URL"):
        split_url(url)


def test_unknown_transport_is_refused():
    with pytest.raises(ValueError, match="socket, nng"):
        transport.listen("carrier-pigeon", "tcp://127.0.0.1:0", None, 1, 1.0, lambda: None)  # type: ignore[arg-type]


def test_reading_a_small_frame_allocates_no_read_chunk(make_loop):
    """Both ends read into one buffer they keep: ``socket.recv(READ_CHUNK)`` allocated (and
    freed) a 256 KiB bytes object per call, 45 us each on this machine, one more for the
    call that finds the socket empty; that was most of what reading a small frame cost."""
    import tracemalloc

    from pycrew.wire.transport.socket_channel import SocketChannel
    from pycrew.wire.transport.sockets import READ_CHUNK

    loop = make_loop("socket")
    loop.handler.echo = False
    _, host, port = split_url(loop.server.address)
    raw = socket.create_connection((host, port), timeout=10)
    listener = socket.create_server(("127.0.0.1", 0))
    dialer = socket.create_connection(listener.getsockname(), timeout=10)
    accepted, _ = listener.accept()
    channel = SocketChannel(accepted, None)
    tracemalloc.start()
    try:
        raw.sendall(PREAMBLE)
        link = loop.handler.next("open")[1]
        for _ in range(3):  # the server's side: the dispatcher reading a worker's frame
            tracemalloc.reset_peak()
            raw.sendall(HEADER.pack(100) + b"r" * 100)
            assert loop.handler.next("frame") == ("frame", link, b"r" * 100)
            server_peak = tracemalloc.get_traced_memory()[1] - tracemalloc.get_traced_memory()[0]
            assert server_peak < READ_CHUNK // 4, f"the server allocated {server_peak:,} bytes to read 100"
        for _ in range(3):  # the worker's side
            dialer.sendall(HEADER.pack(100) + b"w" * 100)
            time.sleep(0.01)
            tracemalloc.reset_peak()
            assert channel.recv(5.0) == b"w" * 100
            assert channel.recv(0.0) is None
            worker_peak = tracemalloc.get_traced_memory()[1] - tracemalloc.get_traced_memory()[0]
            assert worker_peak < READ_CHUNK // 4, f"the channel allocated {worker_peak:,} bytes to read 100"
    finally:
        tracemalloc.stop()
        channel.close()
        for s in (raw, dialer, listener):
            s.close()


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
def test_nng_frames_that_arrive_before_the_pipe_is_reported_added_are_kept(make_loop, monkeypatch, tls):
    """NNG starts receiving on a pipe before it runs the "pipe added" callback (on one of
    its own threads), so a worker's first frame can reach the server before the server
    hears of the pipe. The frame opens the link instead of getting the connection
    dropped. The callback is held back here to make that order certain (pynng then holds
    the message until the callback returns, but the server has not yet seen the report)."""
    from pycrew.wire.transport.nng import NngServer

    added = NngServer._pipe_added
    held: list[int] = []

    def late(self: NngServer, pipe: object) -> None:
        time.sleep(0.3)
        held.append(1)
        added(self, pipe)  # type: ignore[arg-type]

    monkeypatch.setattr(NngServer, "_pipe_added", late)
    pair = self_signed("127.0.0.1") if tls else None
    loop = make_loop("nng", tls=pair)
    channel = transport.connect("nng", loop.server.address, pair[1] if pair else None, 5.0)
    try:
        channel.send(b"first")
        assert channel.recv(10.0) == b"first"
        _, opened, _ = loop.handler.next("open")
        _, framed, frame = loop.handler.next("frame")
        assert (framed, frame) == (opened, b"first")
        deadline = time.monotonic() + 5
        while not held and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # the late report reaches poll(): it must not open the link twice
        channel.send(b"second")
        assert channel.recv(10.0) == b"second"
        assert [e for e in list(loop.handler.events.queue) if e[0] == "open"] == []
        assert list(loop.handler.links) == [opened]
    finally:
        channel.close()
    loop.handler.next("closed")


def test_nng_a_pipe_reported_added_after_it_was_removed_opens_no_link(make_loop, monkeypatch):
    """NNG may report a pipe removed before it reports it added (a peer that hangs up at
    once). The late report must not open a link nothing would close; the server forgets
    the removed pipe after a minute."""
    from pycrew.wire.transport.nng import NngServer

    added = NngServer._pipe_added
    held: list[object] = []
    monkeypatch.setattr(NngServer, "_pipe_added", lambda self, pipe: held.append(pipe))
    loop = make_loop("nng")
    server = loop.server
    assert isinstance(server, NngServer)
    channel = transport.connect("nng", server.address, None, 5.0)
    channel.close()
    deadline = time.monotonic() + 10
    while not server._gone_ids and time.monotonic() < deadline:  # the removal went through poll()
        time.sleep(0.01)
    assert len(held) == 1 and list(server._gone_ids) == [held[0].id]  # type: ignore[attr-defined]
    loop.call(lambda: added(server, held[0]))  # type: ignore[arg-type]
    time.sleep(0.3)
    assert server.links == {} and loop.handler.events.empty(), "the late report opened a link"
    seen = server._gone_ids[held[0].id]  # type: ignore[attr-defined]
    loop.call(lambda: server.maintain(seen + 59.0))
    time.sleep(0.2)
    assert list(server._gone_ids) == [held[0].id]  # type: ignore[attr-defined]
    loop.call(lambda: server.maintain(seen + 61.0))
    time.sleep(0.2)
    assert server._gone_ids == {}


def test_nng_remembers_a_bounded_number_of_removed_pipes(make_loop):
    """However fast peers connect and hang up, the server's memory of removed pipes stays
    at GONE_IDS_MAX entries, the oldest forgotten first."""
    from pycrew.wire.transport import nng

    loop = make_loop("nng")
    server = loop.server
    assert isinstance(server, nng.NngServer)
    extra = 1_000
    server._gone.extend(range(1, nng.GONE_IDS_MAX + extra + 1))  # as NNG's threads report them
    loop.wake()
    deadline = time.monotonic() + 10
    while server._gone and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)  # the poll that took them has finished
    assert len(server._gone_ids) == nng.GONE_IDS_MAX
    assert next(iter(server._gone_ids)) == extra + 1, "the oldest should go first"
    channel = transport.connect("nng", server.address, None, 5.0)  # and it still serves
    try:
        channel.send(b"ping")
        assert channel.recv(10.0) == b"ping"
    finally:
        channel.close()


def test_open_files_hint_says_what_to_do_when_file_descriptors_run_out() -> None:
    import errno

    from pycrew.wire.transport.limits import open_files_hint

    emfile = open_files_hint(OSError(errno.EMFILE, "Too many open files"))
    assert "ulimit -n" in emfile and "RLIMIT_NOFILE" in emfile and "fewer workers" in emfile
    assert "fs.file-max" in open_files_hint(OSError(errno.ENFILE, "Too many open files in system"))
    assert open_files_hint(OSError(errno.ECONNABORTED, "Software caused connection abort")) == ""


def _arriving_then_frame(loop: Loop, expected: bytes) -> None:
    _, opened, _ = loop.handler.next("open")
    _, link_id, _ = loop.handler.next("arriving")
    _, framed, frame = loop.handler.next("frame")
    assert link_id == framed == opened and frame == expected


def test_socket_server_reports_a_large_frame_while_it_arrives(make_loop):
    """A large frame that takes long to arrive is reported arriving before it is whole (the
    dispatcher counts that as the worker's sign of life, not as its task's time)."""
    loop = make_loop("socket")
    _, host, port = split_url(loop.server.address)
    frame = os.urandom(4 << 20)
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(PREAMBLE + HEADER.pack(len(frame)) + frame[: 2 << 20])
        time.sleep(0.3)
        assert all(e[0] != "frame" for e in list(loop.handler.events.queue))
        s.sendall(frame[2 << 20 :])
        _arriving_then_frame(loop, frame)


def test_nng_server_reports_a_fragmented_frame_while_it_arrives(make_loop):
    import pynng

    from pycrew.wire.transport.nng_link import FRAGMENT_LAST, FRAGMENT_MORE, MESSAGE_MAX_BYTES

    loop = make_loop("nng")
    frame = os.urandom(100_000)
    piece = MESSAGE_MAX_BYTES - 1
    starts = range(0, len(frame), piece)
    with pynng.Pair1(dial=loop.server.address, send_timeout=5000) as peer:
        for i in starts:
            if i == starts[len(starts) // 2]:
                time.sleep(0.3)  # half of it has arrived
                assert all(e[0] != "frame" for e in list(loop.handler.events.queue))
            peer.send(bytes((FRAGMENT_LAST if i == starts[-1] else FRAGMENT_MORE,)) + frame[i : i + piece])
        _arriving_then_frame(loop, frame)


def _closed_by_server(s: socket.socket) -> bool:
    s.settimeout(5)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def test_socket_server_keeps_a_bounded_number_of_connections_waiting_to_authenticate(make_loop, monkeypatch):
    """Anyone can open connections; each holds a file descriptor until it authenticates or
    ``seconds_auth`` ends it. Past ``unproven.most`` a new one closes an old one, so a peer
    that keeps opening them cannot use up the controller's descriptors (it did: then worker
    launches failed with EMFILE, and the controller raised LaunchError for good)."""
    from pycrew.wire.transport import unproven

    monkeypatch.setattr(unproven, "SECONDS_YOUNG", 0.0)  # every waiting connection is old enough to go
    loop = make_loop("socket")
    server = loop.server
    assert isinstance(server, SocketServer)
    server.unproven.most = 5
    _, host, port = split_url(server.address)
    peers = []
    try:
        for i in range(8):
            peers.append(socket.create_connection((host, port), timeout=5))
            deadline = time.monotonic() + 5
            while max(server.links, default=0) != i + 1 and time.monotonic() < deadline:  # accepted (ids count from 1)
                time.sleep(0.005)
            if i % 2:  # opened (a dispatcher would wait for its HELLO), or sent nothing at all
                peers[-1].sendall(PREAMBLE)
                _, opened, _ = loop.handler.next("open")
                assert opened == i + 1
        # those that sent nothing go first, oldest first: a worker has sent its preamble by then
        silent, kept = [peers[0], peers[2], peers[4]], [peers[1], peers[3], peers[5], peers[6], peers[7]]
        for s in silent:
            assert _closed_by_server(s), "an old connection waiting to authenticate was kept past the bound"
        time.sleep(0.2)
        assert len(server.unproven) == 5
        for s in kept:
            s.settimeout(0.05)
            with pytest.raises(TimeoutError):
                s.recv(1)  # still open
        loop.call(lambda: server.admitted(server.links[8]))  # a worker proved its token: no longer counted
        deadline = time.monotonic() + 5
        while len(server.unproven) != 4 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(server.unproven) == 4
    finally:
        for s in peers:
            s.close()


def test_a_burst_of_young_connections_waits_in_the_backlog_rather_than_being_closed(make_loop):
    """A burst of workers connecting at once may outnumber ``unproven.most`` for a moment:
    connections younger than SECONDS_YOUNG are not closed; the server stops accepting, and
    the rest wait in the kernel's backlog until those waiting have authenticated."""
    loop = make_loop("socket")
    server = loop.server
    assert isinstance(server, SocketServer)
    server.unproven.most = 3
    _, host, port = split_url(server.address)
    peers = [socket.create_connection((host, port), timeout=5) for _ in range(6)]
    try:
        for s in peers:
            s.sendall(PREAMBLE)
        opened = [loop.handler.next("open")[1] for _ in range(3)]
        time.sleep(0.5)
        assert len(server.links) == 3, "more were accepted than may wait, or some were closed"
        loop.call(lambda: [server.admitted(server.links[i]) for i in opened])  # the three authenticate
        opened += [loop.handler.next("open")[1] for _ in range(3)]  # the rest are accepted in turn
        assert sorted(opened) == [1, 2, 3, 4, 5, 6]
        assert not [e for e in list(loop.handler.events.queue) if e[0] == "closed"]
        for s in peers:
            s.settimeout(0.05)
            with pytest.raises(TimeoutError):
                s.recv(1)  # none was closed
    finally:
        for s in peers:
            s.close()


def test_nng_server_keeps_a_bounded_number_of_pipes_waiting_to_authenticate(make_loop):
    import pynng

    loop = make_loop("nng")
    loop.server.unproven.most = 3  # type: ignore[attr-defined]
    peers = [pynng.Pair1(dial=loop.server.address) for _ in range(6)]
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            events = list(loop.handler.events.queue)
            if sum(e[0] == "closed" for e in events) >= 3:
                break
            time.sleep(0.02)
        events = list(loop.handler.events.queue)
        assert sum(e[0] == "open" for e in events) == 6 and sum(e[0] == "closed" for e in events) == 3
        assert len(loop.server.unproven) == 3  # type: ignore[attr-defined]
    finally:
        for peer in peers:
            peer.close()
