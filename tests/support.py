"""Helpers for the cross-package tests (imported by test modules; never by workers)."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

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
