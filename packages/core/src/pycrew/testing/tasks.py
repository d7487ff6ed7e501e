"""Task functions the conformance suite runs on workers.

They are pickled by reference, so a worker imports this module: it depends on the
standard library only (no pytest), and importing it costs nothing on a worker.
"""

from __future__ import annotations

import os
import signal
import socket
import time


def report_worker() -> tuple[str, int]:
    """Where this task runs: ``(host name, process id)``."""
    return socket.gethostname(), os.getpid()


def return_value(value: object) -> object:
    """Return ``value`` unchanged (the load test's task)."""
    return value


def sleep_then_report(seconds: float) -> tuple[str, int]:
    """Sleep ``seconds``, then report where this task ran."""
    time.sleep(seconds)
    return report_worker()


def crash_on_worker(host: str, pid: int) -> tuple[str, int]:
    """Kill this worker process with SIGKILL if it is process ``pid`` on ``host``; else report where it ran.

    The first attempt, sent to that worker, dies mid-task as an out-of-memory kill or a
    preempted machine would; the retry runs on another worker and succeeds.
    """
    if (socket.gethostname(), os.getpid()) == (host, pid):
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(60)  # never return from a killed task, even if the signal were late
    return report_worker()


#: What :func:`remember` stored in this worker process (the initializer scenario).
REMEMBERED: list[tuple[object, int]] = []


def remember(value: object) -> None:
    """A worker initializer: store ``value`` (with this process's id) for :func:`remembered`."""
    REMEMBERED.append((value, os.getpid()))


def remembered() -> list[tuple[object, int]]:
    """What the initializer stored in this worker process, and where this task runs."""
    return [*REMEMBERED, (None, os.getpid())]


def refuse_to_start(message: str) -> None:
    """A worker initializer that fails (as a missing model file would)."""
    raise RuntimeError(message)
