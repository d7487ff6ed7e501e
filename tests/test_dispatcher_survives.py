"""No input from the wire or a task ends the dispatcher; when it does end, nothing hangs.

Each test here failed on commit c88609a: a hostile HELLO killed the dispatcher thread, a
``BaseException`` ended its loop without a trace, unauthenticated NNG pipes could make it
hold 256 MB each, and tokens of finished instances stayed forever.
"""

from __future__ import annotations

import gc
import pickle
import socket
import struct
import threading
import time

import psutil
import pytest

import pycrew
from helpers import identity, raise_rebuilt_as_int, sleep_then, unpickles_to_system_exit
from pycrew.wire import protocol, transport
from pycrew.wire.transport import Channel, Closed
from support import wait_for


@pytest.fixture(params=transport.TRANSPORTS)
def wire(request: pytest.FixtureRequest) -> str:
    """Every wire test runs on each transport."""
    return str(request.param)


def _dial(c: pycrew.Controller) -> Channel:
    return transport.connect(c.options.wire, c.url, None, 5.0)


def _challenge(channel: Channel) -> bytes:
    frame = channel.recv(5.0)
    assert frame is not None, "the dispatcher sent no CHALLENGE"
    return protocol.decode_challenge(frame)


def _dropped(channel: Channel, seconds: float = 5.0) -> bool:
    """Whether the dispatcher closes the link within ``seconds`` (without welcoming it)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            frame = channel.recv(0.2)
        except Closed:
            return True
        if frame is not None and frame[0] == protocol.WELCOME:
            return False
    return False


def _assert_serving(c: pycrew.Controller, value: object) -> None:
    d = c._dispatcher
    assert d is not None and d.error is None, f"the dispatcher failed: {d.error!r}" if d else "not started"
    assert d.thread.is_alive(), "the dispatcher thread died"
    assert c.submit(identity, value).result(timeout=60) == value, "the dispatcher stopped serving"


def test_deeply_nested_hello_json_drops_only_that_connection(make_controller, wire):
    c = make_controller("local", workers=1, wire=wire).start()
    channel = _dial(c)
    try:
        _challenge(channel)
        channel.send(b"H" + b'{"instance": ' + b"[" * 2000)
        assert _dropped(channel), "a deeply nested HELLO was not dropped"
    finally:
        channel.close()
    _assert_serving(c, "alive")


@pytest.mark.parametrize("mac", ["é" * 64, "\udcff" * 8, "0" * 63 + "\u0660", 12345, None, ["a"]])
def test_hello_with_a_non_ascii_or_mistyped_mac_is_refused(make_controller, wire, mac):
    c = make_controller("local", workers=1, wire=wire).start()
    c._dispatcher.authorize("known", "the-real-token", 1)
    channel = _dial(c)
    try:
        _challenge(channel)
        hello = protocol.HELLO.to_bytes(1, "little") + _json({"instance": "known", "mac": mac})
        channel.send(hello)
        assert _dropped(channel), f"a HELLO with mac={mac!r} was not dropped"
    finally:
        channel.close()
    _assert_serving(c, "alive")


def _json(body: dict[str, object]) -> bytes:
    import json

    return json.dumps(body).encode("utf-8", "surrogatepass")


@pytest.mark.parametrize(
    "field",
    [
        {"instance": "x" * 500},
        {"instance": "../etc"},
        {"instance": 7},
        {"pid": "1"},
        {"pid": 10**30},
        {"pid": True},
        {"host": "h" * 300},
        {"host": ["h"]},
        {"tasks_max": 0},
        {"tasks_max": 1.5},
        {"v": "2"},
        {"v": 1},
        {"v": None},
        {"pycrew": ["0.1.0"]},
        {"pycrew": "9" * 65},
    ],
)
def test_hello_fields_of_the_wrong_type_or_size_are_refused_even_with_a_valid_proof(make_controller, wire, field):
    c = make_controller("local", workers=1, wire=wire).start()
    channel = _dial(c)
    try:
        nonce = _challenge(channel)
        instance = field["instance"] if isinstance(field.get("instance"), str) else "known"
        c._dispatcher.authorize(instance, "the-real-token", 1)
        body = {"v": protocol.PROTOCOL_VERSION, "instance": "known", "mac": protocol.mac("the-real-token", nonce, instance), "host": "h", "pid": 1}
        body.update(field)
        channel.send(bytes((protocol.HELLO,)) + _json(body))
        assert _dropped(channel), f"a HELLO with {field} was welcomed"
    finally:
        channel.close()
    _assert_serving(c, "alive")


def test_parse_hello_accepts_what_a_worker_sends():
    nonce = protocol.new_nonce()
    body = {"v": 2, "pycrew": "0.1.0", "instance": "ab12-3", "mac": protocol.mac("t", nonce, "ab12-3"), "host": "n1", "pid": 4, "worker": 1, "tasks_max": None}
    hello = protocol.parse_hello(protocol.encode_json(protocol.HELLO, body))
    assert (hello.instance, hello.host, hello.pid, hello.tasks_max) == ("ab12-3", "n1", 4, None)
    assert (hello.version, hello.pycrew) == (2, "0.1.0")
    assert protocol.verify_mac("t", nonce, "ab12-3", hello.mac)
    assert not protocol.verify_mac("t", nonce, "ab12-3", "é" * 64)


def test_system_exit_while_a_result_unpickles_fails_that_task_only(make_controller, wire):
    c = make_controller("local", workers=1, wire=wire).start()
    future = c.submit(unpickles_to_system_exit)
    with pytest.raises(pycrew.SerializationError, match="could not be unpickled"):
        future.result(timeout=60)
    _assert_serving(c, "next")


class _ExitingObserver:
    """An observer plugin that calls sys.exit (a bug, or a command-line tool's main())."""

    @pycrew.hookimpl
    def pycrew_task_done(self, result: object) -> None:
        raise SystemExit("the observer called sys.exit")


def test_an_observer_that_raises_system_exit_leaves_the_dispatcher_serving(make_controller, caplog):
    observer = _ExitingObserver()
    pycrew.register(observer)
    try:
        c = make_controller("local", workers=1).start()
        assert c.submit(identity, 1).result(timeout=60) == 1
        _assert_serving(c, "next")  # the SystemExit ended the dispatcher's thread
    finally:
        pycrew.unregister(observer)
    assert "an observer plugin failed in pycrew_task_done" in caplog.text


def test_an_exception_that_unpickles_as_another_object_fails_its_task_only(make_controller, wire):
    """Failed on cc6539a (audit of issue 14): the controller took the int for an exception,
    failed while resolving, dropped the worker and left the future pending forever."""
    c = make_controller("local", workers=1, wire=wire).start()
    future = c.submit(raise_rebuilt_as_int)
    with pytest.raises(pycrew.TaskError, match="RebuiltAsInt"):
        future.result(timeout=60)
    _assert_serving(c, "next")
    summary = c.summary()
    assert summary.controller.retries == 0 and summary.workers[0].instances == 1, "the worker was dropped"
    assert c.wait(timeout=10) and c.unresolved() == 0


@pytest.fixture
def never_connects(tmp_path):
    """A worker "interpreter" that starts and never dials: the test's own peer gets every task."""
    path = tmp_path / "python"
    path.write_text("#!/bin/sh\nexec sleep 600\n")
    path.chmod(0o755)
    return str(path)


def _welcomed_peer(c: pycrew.Controller, instance: str) -> Channel:
    """A peer that proves a token as a worker would (the dispatcher trusts nothing it sends)."""
    c._dispatcher.authorize(instance, "tok", 1)
    channel = _dial(c)
    nonce = _challenge(channel)
    hello = {"v": protocol.PROTOCOL_VERSION, "instance": instance, "mac": protocol.mac("tok", nonce, instance)}
    channel.send(protocol.encode_json(protocol.HELLO, hello))
    frame = channel.recv(5.0)
    assert frame is not None and frame[0] == protocol.WELCOME
    return channel


def _next_task_id(channel: Channel) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        frame = channel.recv(1.0)
        if frame is not None and frame[0] == protocol.TASKS:
            [(task_id, _)] = protocol.decode_records(frame)
            return task_id
    raise AssertionError("the peer was sent no task")


MALFORMED_RECORDS = {
    "status": ("bogus", None, "", "", "", None, [], None, 0.0),
    "started": ("success", 5, "", "", "", None, [], "x", 0.0),
    "finished": ("success", 5, "", "", "", None, [], 1.0, None),
    "warnings": ("success", 5, "", "", "", None, [b"w"], 1.0, 2.0),
    "error": ("error", None, 7, "", "", None, [], 1.0, 2.0),
    "exception": ("error", None, "e", "", "", "not bytes", [], 1.0, 2.0),
    "length": ("success", 5),
    "type": {"status": "success"},
}


@pytest.mark.parametrize("field", sorted(MALFORMED_RECORDS))
def test_a_malformed_result_record_fails_its_task_and_keeps_the_worker(make_controller, wire, field, never_connects):
    """Failed on cc6539a: a record with a field of the wrong type raised while resolving; the
    worker was dropped and the future never resolved."""
    c = make_controller("local", workers=1, wire=wire, python=never_connects, seconds_launch=600, workers_at_start=0).start()
    channel = _welcomed_peer(c, "peer")
    try:
        future = c.submit(abs, -5)
        task_id = _next_task_id(channel)
        channel.send(protocol.encode_records(protocol.RESULTS, [(task_id, pickle.dumps(MALFORMED_RECORDS[field]))]))
        with pytest.raises(pycrew.SerializationError, match="malformed result record"):
            future.result(timeout=30)
        assert c.wait(timeout=10) and c.unresolved() == 0
        # The same peer is still served: it gets the next task and its good result resolves it.
        second = c.submit(abs, -6)
        task_id = _next_task_id(channel)
        good = ("success", 6, "", "", "", None, [], 1.0, 2.0)
        channel.send(protocol.encode_records(protocol.RESULTS, [(task_id, pickle.dumps(good))]))
        assert second.result(timeout=30) == 6
    finally:
        channel.close()
    assert c._dispatcher.thread.is_alive() and c._dispatcher.error is None


def test_a_pickled_exception_that_is_not_an_exception_is_dropped_not_raised(make_controller, never_connects):
    c = make_controller("local", workers=1, python=never_connects, seconds_launch=600, workers_at_start=0).start()
    channel = _welcomed_peer(c, "peer")
    try:
        future = c.submit(abs, -5)
        task_id = _next_task_id(channel)
        record = ("error", None, "it failed", "mod.Weird", "Traceback: ...", pickle.dumps(5), [], 1.0, 2.0)
        channel.send(protocol.encode_records(protocol.RESULTS, [(task_id, pickle.dumps(record))]))
        with pytest.raises(pycrew.TaskError, match=r"mod\.Weird: it failed"):
            future.result(timeout=30)
    finally:
        channel.close()


def _raise_system_exit() -> None:
    raise SystemExit("raised on the dispatcher's thread")


def test_when_the_dispatcher_dies_every_future_and_task_resolves_at_once(make_controller, wire):
    c = make_controller("local", workers=1, wire=wire).start()
    assert c.submit(identity, 0).result(timeout=60) == 0
    slow = [c.submit(sleep_then, 30, i) for i in range(3)]
    c.push(sleep_then, args=(30, "pushed"), name="pushed")
    # A bug would do this (a done-callback no longer can: it runs on its own thread)
    c._dispatcher.call_soon(_raise_system_exit)
    wait_for(lambda: c._dispatcher.error is not None, timeout=30, message="the dispatcher did not record its error")
    for future in slow:
        # result() without a timeout must return; run it in a thread so a hang fails the test
        box: list[BaseException | None] = []
        waiter = threading.Thread(target=lambda f=future, out=box: out.append(f.exception()))
        waiter.start()
        waiter.join(10)
        assert not waiter.is_alive(), "future.result() hung after the dispatcher died"
        assert isinstance(box[0], pycrew.ControllerError) and "SystemExit" in str(box[0]), box
    assert c.wait(timeout=10), "wait() did not return although every task resolved"
    pushed = c.pop()
    assert pushed is not None and pushed.status == "error" and pushed.error_type == "pycrew.errors.ControllerError"
    with pytest.raises(pycrew.ControllerError, match=r"dispatcher .* failed: SystemExit"):
        c.submit(identity, 2)
    assert c.unresolved() == 0
    start = time.monotonic()
    c.shutdown(wait=True)
    assert time.monotonic() - start < 30, "shutdown(wait=True) did not return after the dispatcher died"


def _interrupt_loop() -> None:
    raise KeyboardInterrupt("raised on the dispatcher's thread")


def test_a_task_submitted_after_the_dispatcher_died_still_resolves(make_controller):
    from pycrew.control.tasks import Task

    c = make_controller("local", workers=1).start()
    d = c._dispatcher
    d.call_soon(_interrupt_loop)
    wait_for(lambda: d.finished, timeout=10, message="the loop did not end")
    future = pycrew.TaskFuture()
    d.submit(Task(10**9, "late", b"", future, False))  # the race c.submit's own check cannot close
    assert isinstance(future.exception(timeout=5), pycrew.ControllerError)


def test_a_task_that_wakes_a_dead_dispatcher_still_resolves(make_controller):
    """The same, when the late submission is the one that writes to the wake pipe."""
    from pycrew.control.tasks import Task

    c = make_controller("local", workers=1).start()
    d = c._dispatcher
    d.call_soon(_interrupt_loop)
    wait_for(lambda: d.finished, timeout=10, message="the loop did not end")
    d._wake_pending = False  # as the loop leaves it after its last look at the pipe
    future = pycrew.TaskFuture()
    d.submit(Task(10**9, "late", b"", future, False))
    assert isinstance(future.exception(timeout=5), pycrew.ControllerError)


def test_cancel_returns_at_once_after_the_dispatcher_died(make_controller):
    c = make_controller("local", workers=1).start()
    f = c.submit(sleep_then, 30, 1)
    c._dispatcher.call_soon(_interrupt_loop)
    wait_for(lambda: c._dispatcher.finished, timeout=10)
    start = time.monotonic()
    c.cancel(all=True)
    assert time.monotonic() - start < 2, "cancel() waited for a dead dispatcher"
    assert isinstance(f.exception(timeout=5), pycrew.ControllerError)


def _nng_pair1_connection(url: str) -> socket.socket:
    """A raw TCP connection that has done NNG's SP handshake as a Pair1 peer."""
    host, port = url.rsplit("//", 1)[1].rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=5)
    sock.sendall(b"\x00SP\x00\x00\x11\x00\x00")  # SP header, protocol 0x11 (pair1)
    assert sock.recv(8)[:4] == b"\x00SP\x00", "not an NNG listener"
    return sock


def test_unauthenticated_nng_pipes_cannot_make_the_controller_hold_large_frames(make_controller):
    c = make_controller("local", workers=1, wire="nng").start()
    me = psutil.Process()
    gc.collect()
    before = me.memory_info().rss
    socks = []
    try:
        for _ in range(8):
            sock = _nng_pair1_connection(c.url)
            socks.append(sock)
            try:  # announce a 32 MB message, send 24 MB of it and hold the rest back
                sock.sendall(struct.pack(">Q", 32 << 20) + b"\x00\x00\x00\x01" + b"x" * (24 << 20))
            except OSError:
                pass  # the dispatcher hung up mid-send: that is the point
        time.sleep(0.5)
        growth = me.memory_info().rss - before
    finally:
        for sock in socks:
            sock.close()
    assert growth < 64 << 20, f"8 unauthenticated 24 MB partial frames grew the controller by {growth >> 20} MB"
    launched = {s.last_instance for s in c.launcher.slots}
    assert not [x for x in c._dispatcher.conns.values() if x.state == "ready" and x.instance not in launched]
    _assert_serving(c, "alive")


def test_unauthenticated_nng_fragments_are_bounded_like_a_hello():
    from pycrew.wire.transport.nng_link import FRAGMENT_LAST, FRAGMENT_MORE, MESSAGE_MAX_BYTES, NngLink, fragments

    frame = bytes(range(256)) * 100
    pieces = list(fragments(frame))
    assert len(pieces) > 1 and all(len(p) <= MESSAGE_MAX_BYTES for p in pieces)
    assert pieces[-1][0] == FRAGMENT_LAST and all(p[0] == FRAGMENT_MORE for p in pieces[:-1])

    class _Pipe:
        id = 1

    link = NngLink(_Pipe(), protocol.HELLO_MAX_BYTES)  # type: ignore[arg-type]
    assert link.join(bytes((FRAGMENT_MORE,)) + frame[:1000]) is None  # fragments are joined...
    with pytest.raises(ValueError, match="more than 4096 bytes"):  # ... up to the limit before authentication
        for piece in pieces:
            link.join(piece)
    link = NngLink(_Pipe(), 1 << 20)  # type: ignore[arg-type]
    joined = [link.join(p) for p in pieces]
    assert joined[-1] == frame and joined[:-1] == [None] * (len(pieces) - 1)


def test_large_results_arrive_whole_over_nng(make_controller):
    c = make_controller("local", workers=1, wire="nng").start()
    value = bytes(range(256)) * 40_000  # 10 MB: about 2,500 fragments
    assert c.submit(identity, value).result(timeout=120) == value


def test_tokens_of_finished_instances_are_pruned(make_controller, wire):
    c = make_controller("local", workers=2, tasks_max=1, wire=wire).start()
    futures = [c.submit(identity, i) for i in range(12)]
    assert [f.result(timeout=120) for f in futures] == list(range(12))
    assert c.summary().controller.retries == 0
    launched = sum(s.launches for s in c.launcher.slots)
    assert launched >= 6, f"tasks_max=1 should have launched many instances, got {launched}"
    wait_for(lambda: not c._dispatcher.tokens, timeout=30, message=f"tokens kept: {c._dispatcher.tokens}")
    assert not hasattr(c._dispatcher, "_used"), "used instance ids are still kept"


def test_an_instance_cannot_connect_twice(make_controller, wire):
    c = make_controller("local", workers=1, wire=wire).start()
    c._dispatcher.authorize("twice", "tok", 1)
    first = _dial(c)
    second = _dial(c)
    try:
        v = protocol.PROTOCOL_VERSION
        first.send(protocol.encode_json(protocol.HELLO, {"v": v, "instance": "twice", "mac": protocol.mac("tok", _challenge(first), "twice")}))
        frame = first.recv(5.0)
        assert frame is not None and frame[0] == protocol.WELCOME
        second.send(protocol.encode_json(protocol.HELLO, {"v": v, "instance": "twice", "mac": protocol.mac("tok", _challenge(second), "twice")}))
        assert _dropped(second), "the same instance connected twice"
    finally:
        first.close()
        second.close()


class _NeedsAModuleOnlyTheWorkerHas:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        import importlib

        return (importlib.import_module, ("pycrew_module_only_the_workers_have",))


def _returns_an_object_the_controller_cannot_import() -> object:
    return _NeedsAModuleOnlyTheWorkerHas()


def test_a_result_the_controller_cannot_import_says_what_to_do_and_keeps_its_cause(make_controller):
    """A probe: "the result could not be unpickled on the controller: ModuleNotFoundError: ...",
    with no advice (the worker's side gives some) and no __cause__."""
    c = make_controller("local", workers=1).start()
    with pytest.raises(pycrew.SerializationError) as info:
        c.submit(_returns_an_object_the_controller_cannot_import).result(timeout=60)
    message = str(info.value)
    assert "could not be unpickled on the controller: ModuleNotFoundError: No module named 'pycrew_module_only" in message
    assert "that this Python cannot import (one only the workers have, or another version" in message, message
    assert isinstance(info.value.__cause__, ModuleNotFoundError)
    _assert_serving(c, "next")


def test_results_pickle_errors_never_reach_the_dispatcher_as_exceptions():
    """decode_result turns any BaseException from unpickling into an error result."""
    from pycrew.control.tasks import Task, decode_result

    payload = pickle.dumps(_KeyboardInterruptOnLoad())
    result = decode_result(Task(1, "t", b"", None, True), payload, {})
    assert result.status == "error" and "could not be unpickled" in result.error


def _interrupt() -> None:
    raise KeyboardInterrupt("from __reduce__")


class _KeyboardInterruptOnLoad:
    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (_interrupt, ())
