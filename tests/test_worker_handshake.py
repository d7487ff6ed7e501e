"""A worker that reached its controller late waits for the WELCOME, whatever its seconds_launch.

The controller below is a hand-written listener that speaks the ``socket`` wire: it lets
the worker's deadline pass between the HELLO and its WELCOME, as a busy dispatcher, a slow
network or a connection made in the last moments of ``seconds_launch`` would. On commit
3b4d789 the worker gave up as the WELCOME came ("could not connect within 1 s") and exited
with code 3; a real controller had sent it tasks with the WELCOME, which were lost with it
and counted as crashes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

from pycrew.wire import protocol
from pycrew.wire.transport.sockets import PREAMBLE
from support import proof, read_frame, recv_exactly, send_frame


@pytest.mark.timeout(120)
def test_a_worker_welcomed_after_its_seconds_launch_stays(tmp_path):
    token, instance = protocol.new_token(), "late-welcome"
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(30)
    port = listener.getsockname()[1]
    env = {**os.environ, protocol.TOKEN_ENV: token}
    command = [
        sys.executable, "-m", "pycrew.worker", "--url", f"tcp://127.0.0.1:{port}", "--transport", "socket",
        "--instance", instance, "--worker", "1", "--seconds-launch", "1",
    ]
    worker = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        conn, _ = listener.accept()
        conn.settimeout(30)
        assert recv_exactly(conn, len(PREAMBLE)) == PREAMBLE
        nonce = protocol.new_nonce()
        send_frame(conn, protocol.encode_challenge(nonce))
        hello_frame = read_frame(conn)
        hello = protocol.parse_hello(hello_frame)
        assert hello.instance == instance and protocol.verify_mac(token, nonce, instance, hello.mac)
        time.sleep(2.0)  # past the worker's seconds_launch (1 s from its start)
        welcome = {"seconds_heartbeat": 1.0, "seconds_heartbeat_timeout": 30.0, "seconds_busy_silence": 30.0, "bytes_max": 1 << 26}
        try:
            send_frame(conn, proof(hello_frame, token))
            send_frame(conn, protocol.encode_json(protocol.WELCOME, welcome))
            send_frame(conn, protocol.encode_json(protocol.STOP, {"reason": "test over"}))
        except OSError as exc:
            pytest.fail(f"the worker left before its WELCOME came ({exc}): {worker.communicate(timeout=30)[0]}")
        frames = []
        try:
            while True:
                frames.append(protocol.kind(read_frame(conn)))
        except (AssertionError, OSError):  # the worker ends its link as it leaves
            pass
        conn.close()
        output = worker.communicate(timeout=30)[0]
        assert "could not connect" not in output and worker.returncode == 0, (worker.returncode, output)
        assert set(frames) <= {protocol.BEAT, protocol.BYE}, frames
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(30)
        listener.close()
