"""Task functions shared by every benchmark.

They live in their own importable module (not ``__main__``) so that every framework,
including :class:`concurrent.futures.ProcessPoolExecutor`, pickles them by reference
and every framework ships the same bytes per task. Worker processes find this module
through ``PYTHONPATH``, which ``bench_compare.py`` sets before it starts any pool.
"""

from __future__ import annotations

import os
import time


def noop() -> None:
    """Do nothing: measures pure framework overhead."""


def sleep(seconds: float) -> None:
    """Sleep ``seconds``: a task of known length, for scheduling efficiency."""
    time.sleep(seconds)


def timed_sleep(seconds: float) -> tuple[int, float, float]:
    """Sleep ``seconds``; return this process's pid and when the sleep began and ended
    (``time.monotonic()``, one clock for every process of the machine)."""
    began = time.monotonic()
    time.sleep(seconds)
    return os.getpid(), began, time.monotonic()


def timed_work(iterations: int) -> tuple[int, float, float]:
    """A fixed amount of pure-Python work (it holds the GIL throughout, so any other thread
    of the worker that runs meanwhile makes it take longer); return this process's pid and
    when the work began and ended (``time.monotonic()``)."""
    began = time.monotonic()
    total = 0
    for i in range(iterations):
        total += i
    return os.getpid(), began, time.monotonic()


def work_iterations(seconds: float) -> int:
    """How many :func:`timed_work` iterations take about ``seconds`` in this process."""
    n = 100_000
    while True:
        _, began, ended = timed_work(n)
        if ended - began >= 0.05:
            return max(1, int(n * seconds / (ended - began)))
        n *= 2


def payload(data: bytes) -> int:
    """Take a payload and return its length (the memory benchmark's task)."""
    return len(data)


def gate(started_dir: str, release_path: str, timeout: float) -> bool:
    """Occupy a worker until ``release_path`` exists (or ``timeout`` seconds pass).

    Writes one marker file into ``started_dir`` first, so the client can tell when
    every worker is busy and further tasks can only queue.

    Returns:
        ``True`` if released, ``False`` on timeout.
    """
    marker = os.path.join(started_dir, f"{os.getpid()}-{time.monotonic_ns()}")
    with open(marker, "w"):
        pass
    deadline = time.monotonic() + timeout
    while not os.path.exists(release_path):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True
