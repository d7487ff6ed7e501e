"""Helpers for the cross-package tests (imported by test modules; never by workers)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

import pycrew
from pycrew.wire.transport.sockets import HEADER


def wait_for(condition: Callable[[], object], timeout: float = 20.0, interval: float = 0.05, message: str = "") -> object:
    """Poll ``condition`` until truthy; fail the test with ``message`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(message or f"condition not met within {timeout} s")
        time.sleep(interval)


def worker_pids(controller_id: str) -> list[int]:
    """Pids of live local worker processes of one controller."""
    return [w.pid for w in pycrew.Monitor("local").list(controller_id) if w.pid is not None]


def pid_gone(pid: int) -> bool:
    """Whether process ``pid`` no longer runs (zombies count as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


# -- the socket transport's framing, spoken by hand (tests that play the dispatcher) --------


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    """``n`` bytes from ``sock``; fails the test if the peer closes first."""
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise AssertionError("the worker closed its connection")
        data += chunk
    return data


def read_frame(sock: socket.socket) -> bytes:
    """One length-prefixed frame."""
    (length,) = HEADER.unpack(recv_exactly(sock, HEADER.size))
    return recv_exactly(sock, length)


def send_frame(sock: socket.socket, frame: bytes) -> None:
    """Send one length-prefixed frame."""
    sock.sendall(HEADER.pack(len(frame)) + frame)


def run_script(tmp_path: Path, body: str) -> subprocess.CompletedProcess[str]:
    """Run ``body`` (dedented) as a script in ``tmp_path``, tests/ on its path, in its own
    session; whatever of it is left at the end (a child stuck on a broken build) is killed
    with its session."""
    script = tmp_path / "script.py"
    script.write_text(textwrap.dedent(body))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def proof(hello_frame: bytes, token: str) -> bytes:
    """The PROOF a controller played by hand sends before its WELCOME: it knows the token of
    the worker whose HELLO this is (a worker takes no WELCOME without it)."""
    from pycrew.wire import protocol

    hello = protocol.parse_hello(hello_frame)
    assert hello.nonce is not None, "the worker's HELLO carries no nonce"
    return protocol.encode_proof(token, hello.nonce, hello.instance)
