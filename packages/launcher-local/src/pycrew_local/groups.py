"""A local worker's session, which outlives it: what its tasks started.

A local worker is the leader of its own session and process group (``start_new_session``),
so the processes its tasks start (``subprocess.Popen``, a ``multiprocessing`` pool, a
shell's background job) are in its session (and, unless they made their own, its group)
unless they start a session of their own. When the worker ends, they are re-parented and
nothing owns them any more: the launcher ends them with the worker. The leader's pid names
the group and the session, and Linux does not give that pid to a new process while the
leader is an unreaped zombie, so a signal to the group, or to the session's members,
reaches the worker's processes and no one else's only until the leader is reaped. Hence
the order here: see that the leader ended without reaping it (:func:`peek_exit`), signal
its session, and reap it last.
"""

from __future__ import annotations

import os

import psutil

#: Whether this platform can see that a child ended without reaping it (``waitid`` with
#: ``WNOWAIT``; Linux and most Unixes, not macOS). Without it, an ended worker is reaped
#: when it is seen to end, and what its tasks left running in its group is not signalled.
CAN_PEEK = hasattr(os, "waitid") and hasattr(os, "WNOWAIT")
#: Whether a session's processes can be found (``/proc``, Linux). Without it the launcher
#: signals the process group only, and waits the whole grace period before SIGKILL.
CAN_SCAN = os.path.isdir("/proc")


class Reaped(Exception):
    """The child was reaped by someone else (an ``os.wait`` in other code): its status is lost."""


def peek_exit(pid: int) -> int | None:
    """The exit status of an ended child, without reaping it; ``None`` while it runs.

    The status is :class:`subprocess.Popen`'s: the exit code, or minus the signal that
    killed it.

    Raises:
        Reaped: the child is gone (someone else reaped it).
    """
    try:
        found = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError as exc:
        raise Reaped(pid) from exc
    if found is None or found.si_pid == 0:  # no state change: it runs
        return None
    if found.si_code == os.CLD_EXITED:
        return int(found.si_status)
    return -int(found.si_status)  # CLD_KILLED or CLD_DUMPED: the signal's number


def is_zombie(pid: int) -> bool:
    """Whether ``pid`` has ended and waits to be reaped (or is gone already)."""
    try:
        return bool(psutil.Process(pid).status() == psutil.STATUS_ZOMBIE)
    except psutil.Error:
        return True


def session_members(leaders: set[int]) -> dict[int, list[int]]:
    """The live processes (not the leader) of each of these sessions, named by their leaders.

    Scans ``/proc`` (one ``getsid`` per process). A session's id is its leader's pid, which
    stays taken while the leader is alive or an unreaped zombie, so no other session can
    have it. Without ``/proc`` every session counts as empty.
    """
    found: dict[int, list[int]] = {leader: [] for leader in leaders}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return found
    for entry in entries:
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid in leaders:  # the leader itself
            continue
        try:
            session = os.getsid(pid)
        except OSError:  # it ended meanwhile
            continue
        if session in found and not is_zombie(pid):
            found[session].append(pid)
    return found


def in_use(leaders: set[int]) -> set[int]:
    """Which of these sessions still have a live process besides their leader.

    Without ``/proc`` each counts as in use, so its processes get the whole grace period.
    """
    if not CAN_SCAN:
        return set(leaders)
    return {leader for leader, members in session_members(leaders).items() if members}
