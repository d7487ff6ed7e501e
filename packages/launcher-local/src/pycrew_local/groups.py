"""A local worker's process group, which outlives it: what its tasks started.

A local worker is the leader of its own session and process group (``start_new_session``),
so the processes its tasks start (``subprocess.Popen``, a ``multiprocessing`` pool, a
shell's background job) are in its group unless they start a session of their own. When
the worker ends, they are re-parented and nothing owns them any more: the launcher ends
them with the worker. The leader's pid names the group, and Linux does not give that pid
to a new process while the leader is an unreaped zombie, so a signal to the group reaches
the worker's processes and no one else's only until the leader is reaped. Hence the
order here: see that the leader ended without reaping it (:func:`peek_exit`), signal its
group, and reap it last.
"""

from __future__ import annotations

import os

#: Whether this platform can see that a child ended without reaping it (``waitid`` with
#: ``WNOWAIT``; Linux and most Unixes, not macOS). Without it, an ended worker is reaped
#: when it is seen to end, and what its tasks left running in its group is not signalled.
CAN_PEEK = hasattr(os, "waitid") and hasattr(os, "WNOWAIT")


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


def groups_in_use(leaders: set[int]) -> set[int]:
    """Which of these process groups (named by their ended, unreaped leaders) still have a process.

    Scans ``/proc`` (one ``getpgid`` per process); without ``/proc`` every group counts as
    in use, so its processes get the full grace period before SIGKILL.
    """
    try:
        entries = os.listdir("/proc")
    except OSError:
        return set(leaders)
    used: set[int] = set()
    for entry in entries:
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid in leaders:  # the zombie leader itself
            continue
        try:
            group = os.getpgid(pid)
        except OSError:  # it ended meanwhile
            continue
        if group in leaders:
            used.add(group)
            if len(used) == len(leaders):
                break
    return used
