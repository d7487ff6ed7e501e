"""The processes a cancelled or timed-out task started end with it.

A task interrupted for its ``seconds_timeout`` or a cancel stops where it was, but what it
started runs on: a solver in ``subprocess.run``, a ``multiprocessing`` pool, a shell
pipeline. They would keep the machine's cores and memory busy under the next tasks of the
worker, until the worker itself ended (see :mod:`pycrew.worker.leftovers`), which may be
hours later.

So after such a task the worker ends the processes that started while it ran and descend
from the worker (its children and theirs, by ``/proc``'s parent links): SIGTERM, then
SIGKILL after :data:`SECONDS_GRACE` to those still there, in a thread of its own so that
the next task does not wait. The task's result carries a ``RuntimeWarning`` naming them.
Processes older than the task (a server an earlier task started on purpose) are left
alone, and so are those that left the worker's tree (a daemon that forked twice and was
re-parented). A task that ends by itself keeps its processes running, as in plain Python.
Linux only (it reads ``/proc``); elsewhere nothing happens.

Start times are counted in clock ticks (1/100 s on Linux): a process an earlier task
started in the very tick this one began counts as this task's.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable

from pycrew.wire import clock
from pycrew.worker.leftovers import process_stat

log = logging.getLogger("pycrew.worker")

#: How long the processes of an interrupted task have, after SIGTERM, before SIGKILL.
SECONDS_GRACE = 1.0
#: Most processes a warning names (it counts them all).
NAMED_MAX = 10

_boot_clock: Callable[[], float] | None = (
    functools.partial(time.clock_gettime, time.CLOCK_BOOTTIME) if hasattr(time, "CLOCK_BOOTTIME") else None
)
_ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def started_since(wall_start: float) -> dict[int, tuple[int, str]]:
    """The live descendants of this process started at or after ``wall_start`` (a
    ``time.time()``), as pid: (start time in ticks, name); ``{}`` without ``/proc``."""
    if _boot_clock is None:
        return {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return {}
    since = int((_boot_clock() - (clock.wall() - wall_start)) * _ticks)
    children: dict[int, list[int]] = {}
    stats: dict[int, tuple[int, int, str, str]] = {}
    for entry in entries:
        if entry.isdigit() and (stat := process_stat(int(entry))) is not None:
            stats[int(entry)] = stat
            children.setdefault(stat[0], []).append(int(entry))
    found: dict[int, tuple[int, str]] = {}
    todo = list(children.get(os.getpid(), ()))
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, ()))
        _, started, state, name = stats[pid]
        if started >= since and state not in ("Z", "X"):  # an ended one (a zombie) has nothing left to stop
            found[pid] = (started, name)
    return found


def end_task_processes(wall_start: float, grace: float = SECONDS_GRACE) -> list[str]:
    """End the processes an interrupted task started (see the module's notes); the task's warnings about them.

    Never raises: what cannot be looked at or signalled is left alone.
    """
    try:
        found = started_since(wall_start)
    except Exception as exc:  # /proc in an odd state: the worker goes on
        log.debug("listing the processes of an interrupted task failed: %s", exc)
        return []
    if not found:
        return []
    signal_processes(found, signal.SIGTERM)
    threading.Thread(target=kill_after, args=(found, grace), name="pycrew-worker-task-processes", daemon=True).start()
    named = ", ".join(f"{pid} ({name})" for pid, (_, name) in list(found.items())[:NAMED_MAX])
    more = f" and {len(found) - NAMED_MAX} more" if len(found) > NAMED_MAX else ""
    text = (
        f"RuntimeWarning: the task was stopped while {len(found)} process(es) it started still ran; pycrew ended "
        f"them (SIGTERM, SIGKILL after {grace:g} s): pid {named}{more}"
    )
    log.warning("%s", text)
    return [text]


def signal_processes(processes: dict[int, tuple[int, str]], signum: int) -> None:
    """Send ``signum`` to each of ``processes`` (pid: (start time, name)) still the process it was."""
    for pid, (started, _) in processes.items():
        stat = process_stat(pid)
        if stat is None or stat[1] != started:  # gone, or its pid now another process's
            continue
        try:
            os.kill(pid, signum)
        except OSError:  # ended meanwhile: that is the goal
            continue


def kill_after(processes: dict[int, tuple[int, str]], grace: float) -> None:
    """SIGKILL those of ``processes`` still there ``grace`` seconds from now (returns early once all ended)."""
    deadline = clock.monotonic() + grace
    while clock.monotonic() < deadline:
        clock.sleep(0.05)
        if all((stat := process_stat(pid)) is None or stat[1] != started or stat[2] in ("Z", "X")
               for pid, (started, _) in processes.items()):
            return
    signal_processes(processes, signal.SIGKILL)
