"""Authentication before unpickling, garbage and oversized input, TLS."""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
import time

import pytest

import pycrew
from helpers import identity
from pycrew.wire import protocol, transport
from pycrew.wire.transport import Channel, Closed


class _Evil:
    """Unpickling this creates a file: proof that something was unpickled."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (open, (self.path, "w"))


@pytest.fixture(params=transport.TRANSPORTS)
def wire(request: pytest.FixtureRequest) -> str:
    """Every test here runs on each transport."""
    return str(request.param)


def _frames_until_quiet(channel: Channel) -> list[int]:
    """Kinds of the frames received until a receive times out or the link closes."""
    kinds = []
    while True:
        try:
            frame = channel.recv(0.7)
        except Closed:
            return kinds
        if frame is None:
            return kinds
        kinds.append(frame[0])


def _first_frame(channel: Channel) -> bytes:
    frame = channel.recv(5.0)
    assert frame is not None, "the dispatcher sent nothing"
    return frame


def _send(channel: Channel, frame: bytes) -> None:
    """Send, ignoring that the dispatcher may have hung up already (that is the point)."""
    try:
        channel.send(frame)
    except Closed:
        pass


def _closed_by_server(sock: socket.socket) -> bool:
    """Whether the server closes ``sock`` within 5 s (whatever it sent before)."""
    sock.settimeout(5)
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False
    return True


def _dial(c: pycrew.Controller) -> Channel:
    """An intruder's connection, speaking the controller's transport."""
    return transport.connect(c.options.wire, c.url, None, 5.0)


def test_wrong_token_is_dropped_before_anything_is_unpickled(make_controller, tmp_path, wire):
    c = make_controller("local", workers=1, wire=wire, workers_at_start=0).start()  # workers here are started by hand
    evil = tmp_path / "unpickled"
    sock = _dial(c)
    try:
        nonce = protocol.decode_challenge(_first_frame(sock))
        instance = "intruder"
        c._dispatcher.authorize("known", "the-real-token", 1)  # a real instance exists
        hello = {"v": protocol.PROTOCOL_VERSION, "instance": "known", "mac": protocol.mac("a-wrong-token", nonce, instance)}
        _send(sock, protocol.encode_json(protocol.HELLO, hello))
        _send(sock, protocol.encode_records(protocol.RESULTS, [(1, pickle.dumps(_Evil(str(evil))))]))
        assert protocol.WELCOME not in _frames_until_quiet(sock), "a wrong token was welcomed"
    finally:
        sock.close()
    assert not evil.exists(), "the dispatcher unpickled data from an unauthenticated connection"
    c.push(identity, args=(1,))
    assert c.wait(timeout=30) and c.pop().result == 1, "the dispatcher stopped serving"


def test_frames_before_hello_are_dropped_without_unpickling(make_controller, tmp_path, wire):
    c = make_controller(wire=wire).start()
    evil = tmp_path / "unpickled"
    sock = _dial(c)
    try:
        _first_frame(sock)  # the challenge
        _send(sock, protocol.encode_records(protocol.RESULTS, [(1, pickle.dumps(_Evil(str(evil))))]))
        time.sleep(0.3)
    finally:
        sock.close()
    assert not evil.exists()
    launched = {s.last_instance for s in c.launcher.slots}  # start() launches one real worker
    assert [x for x in c._dispatcher.conns.values() if x.state == "ready" and x.instance not in launched] == []


def test_worker_process_with_wrong_token_never_comes_online(make_controller, wire):
    c = make_controller("local", workers=1, wire=wire, workers_at_start=0).start()  # workers here are started by hand
    call = c.launcher.call(worker=1, url=c.url)
    c._dispatcher.authorize(call.instance, call.token, 1)
    env = {**os.environ, pycrew.TOKEN_ENV: "not-the-token"}
    proc = subprocess.run([sys.executable, *call.args[:-2], "--seconds-launch", "3"], env=env, timeout=30)
    assert proc.returncode == 3, "a worker with a wrong token must fail to connect"
    assert c.summary().controller.workers_online == 0


def test_a_worker_dialing_a_tls_controller_without_tls_is_told_it_may_be_tls_not_its_token(make_controller):
    """Probe: told only "was refused: the controller closed the connection", which reads as a
    token problem; the controller dropped it before its challenge, as TLS does to a plain dial."""
    c = make_controller("local", workers=1, tls="automatic", workers_at_start=0).start()
    assert c.url.startswith("tls+tcp://")
    call = c.launcher.call(worker=1, url=c.url)
    plain = [a.replace("tls+tcp://", "tcp://") for a in call.args[:-2]]
    env = {**os.environ, pycrew.TOKEN_ENV: call.token}
    proc = subprocess.run([sys.executable, *plain, "--seconds-launch", "3"], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 3, proc.stderr[-2000:]
    assert "before it sent its challenge, so not for its token" in proc.stderr, proc.stderr[-2000:]
    assert "tls+tcp://" in proc.stderr


def test_a_worker_refused_for_its_token_gets_no_tls_hint(make_controller):
    c = make_controller("local", workers=1, workers_at_start=0).start()
    call = c.launcher.call(worker=1, url=c.url)
    c._dispatcher.authorize(call.instance, call.token, 1)
    env = {**os.environ, pycrew.TOKEN_ENV: "0" * 64}
    proc = subprocess.run([sys.executable, *call.args[:-2], "--seconds-launch", "3"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 3 and "was refused" in proc.stderr, proc.stderr[-2000:]
    assert "challenge" not in proc.stderr, proc.stderr[-2000:]


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


def test_garbage_bytes_on_the_listener_port_are_dropped(make_controller, wire):
    c = make_controller(wire=wire).start()
    port = int(c.url.rsplit(":", 1)[1])
    for payload in (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", os.urandom(4096), b"\x00SP\x00\x00\x11\x00\x00" + os.urandom(64)):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(payload)
            assert _closed_by_server(s), f"the dispatcher kept a connection that sent {payload[:16]!r}..."
    c.push(identity, args=(7,))
    assert c.wait(timeout=30) and c.pop().result == 7


def test_oversized_frame_is_refused_and_the_dispatcher_keeps_serving(make_controller, wire):
    c = make_controller("local", workers=1, bytes_max=65536, wire=wire).start()
    sock = _dial(c)
    try:
        _first_frame(sock)
        _send(sock, b"H" + b"x" * 200_000)
        assert protocol.WELCOME not in _frames_until_quiet(sock)
    finally:
        sock.close()
    c.push(identity, args=(8,))
    assert c.wait(timeout=30) and c.pop().result == 8


def test_automatic_tls_runs_tasks(make_controller, wire):
    c = make_controller("local", workers=1, tls="automatic", wire=wire, workers_at_start=0).start()  # workers here are started by hand
    assert c.url.startswith("tls+tcp://")
    assert c.launcher.call().env[pycrew.TLS_CA_ENV].startswith("-----BEGIN CERTIFICATE-----")
    c.push(identity, args=("secure",))
    assert c.wait(timeout=30) and c.pop().result == "secure"


def test_tls_worker_rejects_a_certificate_it_does_not_trust(make_controller, wire):
    from pycrew.tls import self_signed

    c = make_controller("local", workers=1, tls="automatic", wire=wire, workers_at_start=0).start()  # workers here are started by hand
    call = c.launcher.call(worker=1, url=c.url)
    c._dispatcher.authorize(call.instance, call.token, 1)
    _, other_cert = self_signed("127.0.0.1")
    env = {**os.environ, pycrew.TOKEN_ENV: call.token, pycrew.TLS_CA_ENV: other_cert}
    proc = subprocess.run([sys.executable, *call.args[:-2], "--seconds-launch", "3"], env=env, timeout=30)
    assert proc.returncode == 3
    assert c.summary().controller.workers_online == 0


def test_workers_check_the_certificate_against_the_server_name_not_the_host_they_dial(make_controller, wire):
    """On fce425b ``TLS(server_name=...)`` reached no worker: they checked the certificate
    against the host they dialed, so a certificate for the controller's DNS name failed
    (``IP address mismatch``) and one for the host passed whatever ``server_name`` said."""
    from pycrew.tls import self_signed

    key, cert = self_signed("controller.internal")
    named = pycrew.TLS(mode="custom", key=key, certificate=cert, server_name="controller.internal")
    c = make_controller("local", workers=1, host="127.0.0.1", tls=named, wire=wire, launch_max=1)
    assert c.submit(identity, "named").result(timeout=60) == "named"
    assert c.launcher.call().env[pycrew.TLS_SERVER_NAME_ENV] == "controller.internal"
    key, cert = self_signed("127.0.0.1")
    other = pycrew.TLS(mode="custom", key=key, certificate=cert, server_name="elsewhere.example")
    with pytest.raises(pycrew.OptionsError, match=r"not valid for 'elsewhere\.example'"):  # found when built
        make_controller("local", workers=1, host="127.0.0.1", tls=other, wire=wire)
    # A worker told another name (PYCREW_TLS_SERVER_NAME) rejects the certificate itself:
    mine = pycrew.TLS(mode="custom", key=key, certificate=cert)
    c = make_controller("local", workers=1, host="127.0.0.1", tls=mine, wire=wire, workers_at_start=0).start()
    call = c.launcher.call(worker=1, url=c.url)
    c._dispatcher.authorize(call.instance, call.token, 1)
    env = {**os.environ, pycrew.TOKEN_ENV: call.token, pycrew.TLS_CA_ENV: call.env[pycrew.TLS_CA_ENV],
           pycrew.TLS_SERVER_NAME_ENV: "elsewhere.example"}
    proc = subprocess.run([sys.executable, *call.args[:-2], "--seconds-launch", "3"], env=env, timeout=30,
                          capture_output=True, text=True)
    assert proc.returncode == 3 and "not trusted" in proc.stderr, proc.stderr[-2000:]


@pytest.mark.parametrize("entry", ["python -m pycrew.worker", "pycrew worker"])
def test_refused_workers_exit_with_their_code_not_an_nng_abort(make_controller, entry):
    """Forty workers refused for an untrusted certificate over NNG all exit with code 3.

    pynng's exit handler (nng_fini) used to free NNG's state while NNG still closed the
    failed TLS connection: about 1 in 12 such workers aborted (SIGABRT, NNG's "panic:
    pthread_mutex_lock") instead. Workers now end with os._exit once their output is flushed.
    """
    from pycrew.tls import self_signed

    c = make_controller("local", workers=1, tls="automatic", wire="nng", workers_at_start=0).start()
    call = c.launcher.call(worker=1, url=c.url)
    _, other_cert = self_signed("127.0.0.1")
    env = {**os.environ, pycrew.TOKEN_ENV: call.token, pycrew.TLS_CA_ENV: other_cert}
    assert list(call.args[:2]) == ["-m", "pycrew.worker"]
    head = [sys.executable, *call.args[:2]] if entry.startswith("python") else [os.path.join(os.path.dirname(sys.executable), "pycrew"), "worker"]
    command = [*head, *call.args[2:-2], "--seconds-launch", "3"]
    codes: list[int] = []
    errors: list[str] = []
    running: list[subprocess.Popen[bytes]] = []
    for i in range(40):
        running.append(subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        if len(running) == 4 or i == 39:
            for proc in running:
                _, err = proc.communicate(timeout=30)
                codes.append(proc.returncode)
                if proc.returncode != 3:
                    errors.append(err.decode(errors="replace")[-2000:])
            running.clear()
    assert codes == [3] * 40, f"exit codes {sorted(set(codes))}; stderr of the first that did not exit with 3:\n{errors[:1]}"
    assert all("certificate is not trusted" in e for e in errors)
    assert c.summary().controller.workers_online == 0


def test_custom_tls_needs_key_and_certificate():
    with pytest.raises(pycrew.OptionsError, match="needs both key= and certificate="):
        pycrew.TLS("custom")


def test_array_elements_derive_distinct_tokens_from_one_batch_key(make_controller, wire):
    """An array launch: shared args and env, the index variable tells each element who it is."""
    c = make_controller("local", workers=2, wire=wire, workers_at_start=0).start()  # workers here are started by hand
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


def test_a_result_larger_than_bytes_max_fails_its_task_and_nothing_else(make_controller, wire):
    c = make_controller("local", workers=1, bytes_max=65536, crashes_max=1, wire=wire).start()
    c.push(os.urandom, args=(200_000,), name="big")
    c.push(identity, args=(9,), name="small")
    assert c.wait(timeout=60)
    results = {r.name: r for r in c.collect()}
    assert results["big"].status == "error" and "bytes_max=65536" in results["big"].error, results["big"]
    assert results["small"].status == "success" and results["small"].result == 9


def test_results_up_to_bytes_max_arrive_whole(make_controller, wire):
    """The limit before authentication is small; an authenticated worker gets the full bytes_max."""
    c = make_controller("local", workers=1, wire=wire, workers_at_start=0).start()  # workers here are started by hand
    data = c.submit(os.urandom, 20_000_000).result(timeout=60)
    assert len(data) == 20_000_000


def test_strangers_holding_connections_open_cannot_keep_workers_out(make_controller, wire):
    """Connections that never authenticate are bounded (a new one closes the oldest): a peer
    that keeps reopening them used up the controller's file descriptors, and every launch
    after failed with EMFILE (a probe, on 5b5e0b7). Workers launched meanwhile still get in,
    and once admitted no longer count among those waiting."""
    from support import wait_for

    c = make_controller("local", workers=2, seconds_idle=0.5, wire=wire).start()
    server = c._dispatcher.server
    server.unproven.most = 4
    strangers = [_dial(c) for _ in range(12)]  # each gets a CHALLENGE and never answers
    try:
        time.sleep(0.3)
        assert len(server.unproven) <= 4
        c.push(identity, args=(7,))
        assert c.wait(timeout=60) and c.pop().result == 7
        launched = sum(w.launches for w in c.summary().workers)
        time.sleep(1.5)  # the workers go idle and leave: the next tasks need new ones
        assert [f.result(60) for f in [c.submit(identity, i) for i in range(4)]] == [0, 1, 2, 3]
        assert sum(w.launches for w in c.summary().workers) > launched
        assert len(server.unproven) <= 4
    finally:
        for s in strangers:
            s.close()
    wait_for(lambda: len(server.unproven) == 0, 10, message=f"{len(server.unproven)} still counted as waiting")
