"""Wake-up pipes: a wake after the pipe is closed writes nowhere.

The dispatcher and a worker's socket channel each wake a waiting thread by writing one byte
to a pipe. Closed, the pipe's descriptor numbers are free for the process to reuse: a wake
arriving after that (another controller's launch, a late submit, a worker thread) wrote
``b"x"`` into whatever file had the number now. Seen in the suite as a worker launch that
failed with ``SubprocessError: Bad exception data from child: b'x'`` (the byte had landed in
``subprocess``'s error pipe, so the started worker was reported as failed and left running).
Each test puts a pipe of its own on the closed write end's number and checks that nothing
reaches it.
"""

from __future__ import annotations

import os
import socket
import threading
import time

from dispatcher_fakes import Harness

from pycrew.wire.transport.socket_channel import SocketChannel


def _written(read_end: int) -> bytes:
    try:
        return os.read(read_end, 4096)
    except BlockingIOError:
        return b""


def test_a_dispatcher_woken_after_stop_writes_to_no_reused_descriptor() -> None:
    h = Harness()
    d = h.d
    d.start()
    write_number = d._wfd
    read_end, write_end = os.pipe()  # before stop(): it takes other numbers
    os.set_blocking(read_end, False)
    d.stop()
    try:
        os.dup2(write_end, write_number)  # the number, reused by the process for another file
        d._wake_pending = False  # as the loop leaves it after its last turn
        d.wake()  # a late call_soon or submit from another thread
        assert _written(read_end) == b"", "wake() wrote into a file that reused the closed pipe's number"
    finally:
        for fd in (write_number, read_end, write_end):
            os.close(fd)


def test_a_dispatcher_whose_loop_outlives_stop_closes_its_pipe_as_it_ends() -> None:
    h = Harness()
    d = h.d
    d.start()
    busy = threading.Event()
    d.call_soon(lambda: (busy.set(), time.sleep(2.0)))  # the loop is busy when stop() gives up waiting
    assert busy.wait(10)
    d.stop(timeout=0.0)
    assert d.thread.is_alive()
    os.fstat(d._wfd)  # still open: the loop may still read it
    d.thread.join(10)
    assert not d.thread.is_alive()
    assert (d._rfd, d._wfd) == (-1, -1), "the loop ended without closing its wake pipe"


def test_a_worker_channel_interrupted_after_close_writes_to_no_reused_descriptor() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    dialer = socket.create_connection(listener.getsockname(), timeout=10)
    accepted, _ = listener.accept()
    channel = SocketChannel(accepted, None)
    write_number = channel._wake_w
    channel.close()
    read_end, write_end = os.pipe()
    os.set_blocking(read_end, False)
    try:
        os.dup2(write_end, write_number)
        channel.interrupt()  # the comms thread, say, after the main thread closed the link
        assert _written(read_end) == b"", "interrupt() wrote into a file that reused the closed pipe's number"
    finally:
        for fd in (write_number, read_end, write_end):
            os.close(fd)
        for s in (dialer, listener):
            s.close()
