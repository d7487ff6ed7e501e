"""A worker's own metrics: its CPU and memory (children included), sampled on a thread.

Turned on by ``--metrics-seconds``; each sample is one JSON line, written to
``<metrics_dir>/<instance>.jsonl`` or, without ``--metrics-dir``, to the worker's log
(standard error) prefixed ``pycrew-metrics``. psutil is imported only when sampling starts.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
from collections.abc import Callable

from pycrew.wire import clock
from pycrew.worker.command import WorkerCommand


def sample_metrics(command: WorkerCommand, gone: threading.Event, current_task: Callable[[], str | None]) -> None:
    """Sample until ``gone`` is set, every ``command.metrics_seconds`` (a thread's target).

    Args:
        command: the worker's command (instance, slot, controller, where to write).
        gone: set when the worker stops.
        current_task: the name of the task running now, if any.
    """
    try:
        import psutil  # only workers that sample need it
    except ImportError as exc:  # (pycrew installed without its dependencies): say so, or no sample ever comes
        print(
            f"pycrew worker {command.instance}: no metrics: sampling them (seconds_metrics) needs psutil, which this "
            f"Python ({sys.executable}) cannot import ({exc}); install psutil where the workers run",
            file=sys.stderr, flush=True,
        )
        return
    me = psutil.Process()
    out = None
    if command.metrics_dir:
        os.makedirs(command.metrics_dir, exist_ok=True)
        path = os.path.join(command.metrics_dir, f"{command.instance}.jsonl")
        out = open(path, "a", buffering=1)  # noqa: SIM115 - lives as long as the thread
    host = socket.gethostname()
    procs: dict[int, psutil.Process] = {me.pid: me}  # kept between samples: cpu_percent compares with the last call
    while not gone.is_set():
        cpu, rss = 0.0, 0
        current = {me.pid: me}
        for pid in _descendants(os.getpid()):
            proc = procs.get(pid)
            if proc is None:
                try:
                    proc = psutil.Process(pid)
                except psutil.Error:  # it ended since the listing (a task's short-lived subprocess)
                    continue
            current[pid] = proc
        procs = current  # those that ended are forgotten (their pids may be reused)
        for proc in current.values():
            try:
                cpu += proc.cpu_percent(None)
                rss += proc.memory_info().rss
            except psutil.Error:  # ended since: counted no more
                continue
        row = {
            "time": clock.wall(),
            "controller": command.controller,
            "instance": command.instance,
            "worker": command.worker,
            "host": host,
            "pid": os.getpid(),
            "task": current_task(),
            "cpu_percent": cpu,
            "rss_bytes": rss,
        }
        line = json.dumps(row)
        if out is not None:
            out.write(line + "\n")
        else:
            print(f"pycrew-metrics {line}", file=sys.stderr, flush=True)
        gone.wait(command.metrics_seconds)


def _descendants(pid: int) -> list[int]:
    """Pids of a process's descendants, read from /proc/PID/task/*/children (Linux).

    Far fewer system calls than scanning every process: each call gives the GIL away, and
    getting it back from a CPU-bound task can take a whole switch interval.
    """
    out: list[int] = []
    todo = [pid]
    while todo:
        current = todo.pop()
        try:
            tids = os.listdir(f"/proc/{current}/task")
        except OSError:  # gone, or not Linux: nothing to add
            continue
        for tid in tids:
            try:
                with open(f"/proc/{current}/task/{tid}/children") as f:
                    kids = [int(k) for k in f.read().split()]
            except (OSError, ValueError):  # thread ended, or a kernel without the file
                continue
            out.extend(kids)
            todo.extend(kids)
    return out
