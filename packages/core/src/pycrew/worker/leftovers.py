"""What a worker's tasks left running in its session ends with the worker.

A task's ``subprocess.Popen``, a ``multiprocessing`` pool it did not close, a shell's
background job: when the worker process ends, they would run on, re-parented, owned by
nobody. The launcher that started the worker usually ends them (the local launcher
signals the worker's process group when it sees the worker end; a batch scheduler
cleans up a job's processes), but not if the launching process is gone too: a local
worker whose controller was killed with SIGKILL leaves when it loses the connection, and
its tasks' processes ran on for ever.

So a worker ends, as its last act, what its tasks left: SIGTERM, then SIGKILL to those
still there after :data:`SECONDS_LEFTOVERS_GRACE`. A worker that leads its own session
(the local launcher starts each worker in a new session) ends every other process of that
session. A worker that does not (a batch scheduler's job script started it, or a user's
shell) ends its own descendants only (by ``/proc``'s parent links): the session's other
processes are not its business, and without this a task's ``subprocess.Popen`` outlived
a SLURM worker and its job, re-parented to init, where the site's process tracking does
not follow children (``proctrack/linuxproc``). A process that started a session of its
own (``start_new_session=True``, a daemon), or left the worker's tree (forked twice), is
left alone. Linux only (it reads ``/proc``); elsewhere nothing happens.
"""

from __future__ import annotations

import logging
import os
import signal

from pycrew.wire import clock

log = logging.getLogger(__name__)

#: How long the processes a worker's tasks left in its session have, after SIGTERM, before SIGKILL.
SECONDS_LEFTOVERS_GRACE = 1.0


def process_stat(pid: int) -> tuple[int, int, str, str] | None:
    """``(parent pid, start time in clock ticks since boot, state, name)`` of a process from
    ``/proc/PID/stat``, or None if it is gone (or there is no ``/proc``)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    close = stat.rfind(b")")
    fields = stat[close + 2 :].split()
    try:
        return int(fields[1]), int(fields[19]), fields[0].decode(), stat[stat.find(b"(") + 1 : close].decode(errors="replace")
    except (IndexError, ValueError):
        return None


def _zombie(pid: int) -> bool:
    """Whether ``pid`` has ended and waits to be reaped (state ``Z``), or is gone."""
    stat = process_stat(pid)
    return stat is None or stat[2] == "Z"


def session_members(session: int) -> list[int]:
    """The pids of the live processes in ``session`` but its leader (``[]`` without ``/proc``)."""
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    members = []
    for entry in entries:
        if not entry.isdigit() or int(entry) == session:
            continue
        try:
            if os.getsid(int(entry)) == session and not _zombie(int(entry)):
                members.append(int(entry))
        except OSError:  # it ended meanwhile, or is not ours to ask about
            continue
    return members


def _signal_all(pids: list[int], signum: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signum)
        except OSError:  # ended meanwhile: that is the goal
            continue


def end_leftovers(grace: float = SECONDS_LEFTOVERS_GRACE) -> int:
    """End the other processes of this process's session if it leads one, else its descendants; how many there were.

    Called as a worker process's last act (see :func:`pycrew.worker.exiting.exit_process`).
    """
    me = os.getpid()
    try:
        if os.getsid(0) != me:
            return _end_descendants(grace)
    except OSError:  # no session to ask about: its descendants are still its own
        return _end_descendants(grace)
    found = session_members(me)
    if not found:
        return 0
    log.warning(
        "pycrew worker: ending %d process(es) its tasks left running (pids %s)", len(found), ", ".join(map(str, found[:10]))
    )
    _signal_all(found, signal.SIGTERM)
    deadline = clock.monotonic() + grace
    left = found
    while left and clock.monotonic() < deadline:
        clock.sleep(0.02)
        left = [pid for pid in session_members(me) if pid in found]
    _signal_all(session_members(me), signal.SIGKILL)  # also what they started meanwhile
    return len(found)


def _end_descendants(grace: float) -> int:
    """End this process's live descendants (a worker that does not lead its session); how many there were."""
    from pycrew.worker import task_processes  # (it imports this module)

    found = task_processes.started_since(0.0)  # every descendant, whenever it started
    if not found:
        return 0
    log.warning(
        "pycrew worker: ending %d process(es) its tasks left running (pids %s)", len(found), ", ".join(map(str, list(found)[:10]))
    )
    task_processes.signal_processes(found, signal.SIGTERM)
    task_processes.kill_after(found, grace)
    return len(found)
