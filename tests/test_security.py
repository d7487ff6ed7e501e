"""Authentication before unpickling, garbage and oversized input, TLS."""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
import time

import pynng
import pytest

import pycrew
from helpers import identity
from pycrew import protocol


class _Evil:
    """Unpickling this creates a file: proof that something was unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (self.path, "w"))


def _frames_until_quiet(sock: pynng.Pair1) -> list[int]:
    """Kinds of the frames received until a receive times out (the dialer redials after a drop)."""
    kinds = []
    sock.recv_timeout = 700
    while True:
        try:
            kinds.append(sock.recv()[0])
        except (pynng.Timeout, pynng.Closed):
            return kinds


def _dial(url: str) -> pynng.Pair1:
    sock = pynng.Pair1(recv_timeout=3000, send_timeout=3000)
    sock.dial(url, block=True)
    return sock


def test_wrong_token_is_dropped_before_anything_is_unpickled(make_controller, tmp_path):
    c = make_controller("local", workers=1).start()
    evil = tmp_path / "unpickled"
    sock = _dial(c.url)
    try:
        nonce = protocol.decode_challenge(sock.recv())
        instance = "intruder"
        c._dispatcher.authorize("known", "the-real-token", 1)  # a real instance exists
        hello = {"instance": "known", "mac": protocol.mac("a-wrong-token", nonce, instance)}
        sock.send(protocol.encode_json(protocol.HELLO, hello))
        sock.send(protocol.encode_records(protocol.RESULTS, [(1, pickle.dumps(_Evil(str(evil))))]))
        assert protocol.WELCOME not in _frames_until_quiet(sock), "a wrong token was welcomed"
    finally:
        sock.close()
    assert not evil.exists(), "the dispatcher unpickled data from an unauthenticated connection"
    c.push(identity, args=(1,))
    assert c.wait(timeout=30) and c.pop().result == 1, "the dispatcher stopped serving"


def test_frames_before_hello_are_dropped_without_unpickling(make_controller, tmp_path):
    c = make_controller().start()
    evil = tmp_path / "unpickled"
    sock = _dial(c.url)
    try:
        sock.recv()  # the challenge
        sock.send(protocol.encode_records(protocol.RESULTS, [(1, pickle.dumps(_Evil(str(evil))))]))
        time.sleep(0.3)
    finally:
        sock.close()
    assert not evil.exists()
    assert len([x for x in c._dispatcher.conns.values() if x.state == "ready"]) == 0


def test_worker_process_with_wrong_token_never_comes_online(make_controller):
    c = make_controller("local", workers=1).start()
    call = c.launcher.call(worker=1, url=c.url)
    c._dispatcher.authorize(call.instance, call.token, 1)
    env = {**os.environ, pycrew.TOKEN_ENV: "not-the-token"}
    proc = subprocess.run([sys.executable, *call.args[:-2], "--seconds-launch", "3"], env=env, timeout=30)
    assert proc.returncode == 3, "a worker with a wrong token must fail to connect"
    assert c.summary().controller.workers_online == 0


def test_worker_without_token_exits_with_a_clear_message():
    env = {k: v for k, v in os.environ.items() if k != pycrew.TOKEN_ENV}
    proc = subprocess.run(
        [sys.executable, "-m", "pycrew.worker", "--url", "tcp://127.0.0.1:9", "--instance", "x"],
        env=env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert proc.returncode == 2 and pycrew.TOKEN_ENV in proc.stderr


def test_garbage_bytes_on_the_listener_port_are_dropped(make_controller):
    c = make_controller().start()
    port = int(c.url.rsplit(":", 1)[1])
    for payload in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", os.urandom(4096), b"\x00SP\x00\x00\x11\x00\x00" + os.urandom(64)):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(payload)
            time.sleep(0.05)
    c.push(identity, args=(7,))
    assert c.wait(timeout=30) and c.pop().result == 7


def test_oversized_frame_is_refused_and_the_dispatcher_keeps_serving(make_controller):
    c = make_controller("local", workers=1, bytes_max=65536).start()
    assert c._dispatcher.sock.recv_max_size == 65536
    sock = _dial(c.url)
    try:
        sock.recv()
        sock.send(b"H" + b"x" * 200_000)
        assert protocol.WELCOME not in _frames_until_quiet(sock)
    finally:
        sock.close()
    c.push(identity, args=(8,))
    assert c.wait(timeout=30) and c.pop().result == 8


def test_automatic_tls_runs_tasks(make_controller):
    c = make_controller("local", workers=1, tls="automatic").start()
    assert c.url.startswith("tls+tcp://")
    assert c.launcher.call().env[pycrew.TLS_CA_ENV].startswith("-----BEGIN CERTIFICATE-----")
    c.push(identity, args=("secure",))
    assert c.wait(timeout=30) and c.pop().result == "secure"


def test_tls_worker_rejects_a_certificate_it_does_not_trust(make_controller):
    from pycrew.tls import self_signed

    c = make_controller("local", workers=1, tls="automatic").start()
    call = c.launcher.call(worker=1, url=c.url)
    c._dispatcher.authorize(call.instance, call.token, 1)
    _, other_cert = self_signed("127.0.0.1")
    env = {**os.environ, pycrew.TOKEN_ENV: call.token, pycrew.TLS_CA_ENV: other_cert}
    proc = subprocess.run([sys.executable, *call.args[:-2], "--seconds-launch", "3"], env=env, timeout=30)
    assert proc.returncode == 3
    assert c.summary().controller.workers_online == 0


def test_custom_tls_needs_key_and_certificate():
    with pytest.raises(pycrew.OptionsError, match="needs both key= and certificate="):
        pycrew.TLS("custom")


def test_array_elements_derive_distinct_tokens_from_one_batch_key(make_controller):
    """An array launch: shared args and env, the index variable tells each element who it is."""
    c = make_controller("local", workers=2).start()
    calls = [c.launcher.call(worker=k + 1, url=c.url, batch=("batch-key", "arr-", k, 2)) for k in range(2)]
    assert calls[0].token != calls[1].token
    assert calls[0].array_args("IDX", 1) == calls[1].array_args("IDX", 1)
    assert calls[0].array_environment() == calls[1].array_environment()
    assert "batch-key" not in " ".join(calls[0].array_args("IDX", 1))
    for call in calls:
        c._dispatcher.authorize(call.instance, call.token, call.worker)
    procs = [
        subprocess.Popen(
            [sys.executable, *call.array_args("IDX", 1)],
            env={**os.environ, **call.array_environment(), "IDX": str(call.batch_index + 1)},
        )
        for call in calls
    ]
    try:
        def ready() -> dict[str, int | None]:
            return {x.instance: x.pid for x in list(c._dispatcher.conns.values()) if x.state == "ready"}

        deadline = time.monotonic() + 20
        while len(ready()) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert ready() == {call.instance: proc.pid for call, proc in zip(calls, procs, strict=True)}, "array elements did not authenticate"
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
