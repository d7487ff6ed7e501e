"""Why a PBS job ended, in words: :func:`finished_reason`, from what ``qstat -f -x`` says of it.

A worker lost mid-task is explained by its job's record (core quotes the monitor's reason
in the task's :class:`~pycrew.TaskCrashError`). What PBS keeps of an ended job, and what
this module relies on:

- ``Exit_status`` (TORQUE ``exit_status``): the script's exit code (0-255); ``256 + N``
  when signal N killed it (``qdel`` sends SIGTERM, then SIGKILL after ``kill_delay``); a
  negative ``JOB_EXEC_*`` code when PBS itself ended it or could not start it. The codes
  and their meanings are OpenPBS's ``src/include/job.h``; ``-29`` (walltime), ``-27``
  (memory) and ``-25`` (CPUs) are the ones sites document for their users (MetaCentrum's
  "Job tracking" page), and MOOSE's PBS driver and Open OnDemand's PBS client read them so.
- ``substate`` (PBS Pro): 91 (``JOB_SUBSTATE_TERMINATED``) for a job that was deleted or
  killed, 92 finished, 93 failed (``job.h``); TORQUE has none.
- ``resources_used.walltime`` against ``Resource_List.walltime``: a job that ran its whole
  walltime was killed for it, whatever the exit status says (older PBS and TORQUE report
  the SIGTERM, ``271``; the worker treats SIGTERM as "ending", so its job may be SIGKILLed
  later, ``265``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pycrew.scheduler import join_reasons, killed_by
from pycrew_pbs.qstat import SIGNAL_BASE, finished_status, lookup, to_int

#: PBS's own negative exit statuses (OpenPBS ``job.h``), in words.
JOB_EXEC = {
    -1: "JOB_EXEC_FAIL1: PBS could not start it (before its files were staged)",
    -2: "JOB_EXEC_FAIL2: PBS could not start it (after its files were staged)",
    -3: "JOB_EXEC_RETRY: PBS could not start it and will retry",
    -4: "JOB_EXEC_INITABT: aborted when its MoM started",
    -5: "JOB_EXEC_INITRST: aborted when its MoM started (checkpointed, not migrated)",
    -6: "JOB_EXEC_INITRMG: aborted when its MoM started (checkpointed, migrated)",
    -7: "JOB_EXEC_BADRESRT: its restart failed",
    -10: "JOB_EXEC_FAILUID: the user is not valid on the execution host",
    -11: "JOB_EXEC_RERUN: PBS requeued it",
    -12: "JOB_EXEC_CHKP: checkpointed and ended",
    -13: "JOB_EXEC_FAIL_PASSWORD: the user's password is not valid",
    -14: "JOB_EXEC_RERUN_SIS_FAIL: requeued after a sister MoM failed",
    -15: "JOB_EXEC_QUERST: requeued for a restart",
    -16: "JOB_EXEC_FAILHOOK_RERUN: a hook failed, it was requeued",
    -17: "JOB_EXEC_FAILHOOK_DELETE: a hook failed, it was deleted",
    -18: "JOB_EXEC_HOOK_RERUN: a hook requeued it",
    -19: "JOB_EXEC_HOOK_DELETE: a hook deleted it",
    -20: "JOB_EXEC_RERUN_MS_FAIL: requeued after its mother superior's connection failed",
    -21: "JOB_EXEC_FAIL_SECURITY: a security breach in PBS's directory",
    -22: "JOB_EXEC_HOOKERROR: a hook failed or timed out",
    -23: "JOB_EXEC_FAIL_KRB5: no Kerberos credentials",
    -24: "JOB_EXEC_KILL_NCPUS_BURST: PBS killed it for using more CPUs than it asked for (burst)",
    -25: "JOB_EXEC_KILL_NCPUS_SUM: PBS killed it for using more CPUs than it asked for",
    -26: "JOB_EXEC_KILL_VMEM: PBS killed it for using more virtual memory than it asked for (vmem)",
    -27: "JOB_EXEC_KILL_MEM: PBS killed it for using more memory than it asked for (mem)",
    -28: "JOB_EXEC_KILL_CPUT: PBS killed it for using more CPU time than it asked for (cput)",
    -29: "JOB_EXEC_KILL_WALLTIME: PBS killed it for running past its walltime",
    -30: "JOB_EXEC_JOINJOB: its sister MoMs could not join it",
}
#: ``JOB_SUBSTATE_TERMINATED`` (PBS Pro): a job that was deleted or killed.
SUBSTATE_TERMINATED = 91
#: The exit status PBS gives a job that ran past its walltime (OpenPBS ``JOB_EXEC_KILL_WALLTIME``).
KILL_WALLTIME = -29


def hms_seconds(value: Any) -> int | None:
    """PBS's ``HH:MM:SS`` (hours may exceed 24; ``MM:SS`` and plain seconds too) as seconds, else ``None``.

    >>> hms_seconds("01:00:05"), hms_seconds("00:03"), hms_seconds(7), hms_seconds("n/a")
    (3605, 3, 7, None)
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    parts = str(value).strip().split(":") if isinstance(value, str) else []
    if not parts or len(parts) > 3 or not all(p.isdigit() for p in parts):
        return None
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + int(part)
    return seconds


def _resource(attrs: Mapping[str, Any], group: str, name: str) -> Any:
    """``group.name``: nested (``qstat -F json``: ``{"Resource_List": {"walltime": ...}}``) or flat (text)."""
    nested = lookup(attrs, group)
    if isinstance(nested, Mapping) and name in nested:
        return nested[name]
    return lookup(attrs, f"{group}.{name}")


def ran_out_of_walltime(attrs: Mapping[str, Any]) -> str:
    """``"it ran 00:00:05 of its walltime 00:00:03"`` if the job used its whole walltime, else ``""``."""
    limit_text, used_text = _resource(attrs, "Resource_List", "walltime"), _resource(attrs, "resources_used", "walltime")
    limit, used = hms_seconds(limit_text), hms_seconds(used_text)
    if limit is None or used is None or limit <= 0 or used < limit:
        return ""
    return f"it ran {used_text} of its walltime {limit_text}"


def finished_reason(attrs: Mapping[str, Any], exit_status: int | None, comment: str) -> str:
    """Why a finished job (``attrs``, its ``qstat -f`` attributes) ended: signal, PBS's code, walltime.

    >>> finished_reason({}, 265, "")
    'killed by signal 9 (SIGKILL)'
    >>> finished_reason({"substate": 91}, 271, "Job run at Sun Dec 06 at 23:27 on (vm:ncpus=1) and terminated")
    'killed by signal 15 (SIGTERM); PBS terminated it (substate 91: deleted with qdel, or killed by PBS); PBS says: Job run at Sun Dec 06 at 23:27 on (vm:ncpus=1) and terminated'
    >>> finished_reason({"Resource_List": {"walltime": "00:00:03"}, "resources_used": {"walltime": "00:00:05"}}, -29, "")
    'JOB_EXEC_KILL_WALLTIME: PBS killed it for running past its walltime (it ran 00:00:05 of its walltime 00:00:03)'
    """
    said = f"PBS says: {comment.strip()}" if comment.strip() else ""
    walltime = ran_out_of_walltime(attrs)
    if exit_status is not None and exit_status < 0:
        code = JOB_EXEC.get(exit_status, f"PBS's exit status {exit_status} (a JOB_EXEC_* code: see tracejob)")
        return join_reasons(f"{code} ({walltime})" if walltime and exit_status == KILL_WALLTIME else code, said)
    signalled = killed_by(exit_status - SIGNAL_BASE) if exit_status is not None and exit_status > SIGNAL_BASE else ""
    if walltime:
        return join_reasons(signalled, f"PBS killed it for running past its walltime ({walltime})", said)
    terminated = ""
    if to_int(attrs.get("substate")) == SUBSTATE_TERMINATED:
        terminated = f"PBS terminated it (substate {SUBSTATE_TERMINATED}: deleted with qdel, or killed by PBS)"
    return join_reasons(signalled, terminated, said)


def was_deleted(attrs: Mapping[str, Any]) -> bool:
    """Whether PBS Pro says the job was terminated (substate 91), not for its walltime: deleted (``qdel``)."""
    return to_int(attrs.get("substate")) == SUBSTATE_TERMINATED and not ran_out_of_walltime(attrs)


def ended(attrs: Mapping[str, Any], exit_status: int | None, comment: str) -> tuple[str, str]:
    """A finished job's normalised status and reason (see :func:`finished_reason`); with no
    exit status (deleted before it ran, or no word from its MoM) the reason is PBS's comment."""
    status = finished_status(exit_status)
    if exit_status is None:
        return status, comment
    return ("cancelled" if status != "done" and was_deleted(attrs) else status), finished_reason(attrs, exit_status, comment)


def no_exit_status(job_id: str, comment: str) -> str:
    """Why an ended job that this process did not cancel has no exit status, and where to look."""
    said = f"; PBS says: {comment}" if comment else ""
    return (
        "it ended without an exit status (deleted by an administrator, or lost with its node)"
        f"{said}; tracejob {job_id} on the server host has its history"
    )
