"""A worker takes tasks only from a controller that proves it knows the worker's token.

On plain TCP a worker dials whatever holds the port: its controller, or (the controller gone,
a cluster job that started late) another user's program bound there. A probe (on 5b5e0b7)
played such a program: it sent a CHALLENGE, ignored the HELLO's proof, sent a WELCOME and a
task running ``os.system(...)``, and the real ``python -m pycrew.worker`` ran it. The worker
now sends a nonce of its own and leaves, running nothing, unless the controller's PROOF
(HMAC of that nonce under the token) comes before the WELCOME.
"""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys

import pytest

from pycrew.wire import protocol
from pycrew.wire.transport.sockets import PREAMBLE
from support import proof, read_frame, recv_exactly, send_frame


def _run_against(tmp_path, answer) -> tuple[str, bool]:  # type: ignore[no-untyped-def]
    """Run a real worker process against a listener that answers its HELLO with ``answer(hello)``
    (frames to send before the WELCOME), then a WELCOME and a task that writes a file; the
    worker's output, and whether the task ran."""
    token, instance = protocol.new_token(), "dialed-1"
    marker = tmp_path / "ran"
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(30)
    env = {**os.environ, protocol.TOKEN_ENV: token}
    command = [
        sys.executable, "-m", "pycrew.worker", "--url", f"tcp://127.0.0.1:{listener.getsockname()[1]}",
        "--transport", "socket", "--instance", instance, "--worker", "1", "--seconds-launch", "10",
    ]
    worker = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        conn, _ = listener.accept()
        conn.settimeout(30)
        assert recv_exactly(conn, len(PREAMBLE)) == PREAMBLE
        send_frame(conn, protocol.encode_challenge(protocol.new_nonce()))
        hello = read_frame(conn)
        assert hello[0] == protocol.HELLO
        task = pickle.dumps((open, (str(marker), "w"), {}, None, "planted", None))
        try:
            for frame in answer(hello, token):
                send_frame(conn, frame)
            send_frame(conn, protocol.encode_json(protocol.WELCOME, {"seconds_heartbeat": 1.0, "bytes_max": 1 << 20}))
            send_frame(conn, protocol.encode_records(protocol.TASKS, [(1, task)]))
            conn.settimeout(10)
            while True:  # until the worker hangs up (or a result comes: then stop it)
                frame = read_frame(conn)
                if frame[0] == protocol.RESULTS:
                    send_frame(conn, protocol.encode_json(protocol.STOP, {"reason": "test over"}))
        except (OSError, AssertionError):  # (support.read_frame asserts the link is open)
            pass
        out = worker.communicate(timeout=30)[0]
        return out, marker.exists()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        listener.close()


@pytest.mark.parametrize(
    "answer",
    [
        lambda hello, token: [],
        lambda hello, token: [proof(hello, protocol.new_token())],  # proves another token
        lambda hello, token: [bytes((protocol.PROOF,)) + os.urandom(32)],
    ],
    ids=["no-proof", "another-token", "garbage"],
)
def test_a_worker_runs_nothing_from_a_controller_that_does_not_prove_its_token(tmp_path, answer):
    out, ran = _run_against(tmp_path, answer)
    assert not ran, f"the worker ran a task from a controller that did not prove its token:\n{out}"
    assert "did not prove it knows this worker's token" in out, out


def test_a_worker_runs_the_tasks_of_a_controller_that_proves_its_token(tmp_path):
    out, ran = _run_against(tmp_path, lambda hello, token: [proof(hello, token)])
    assert ran, out
