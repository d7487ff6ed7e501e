"""Why a SLURM job ended, in words: :func:`ended_reason`, from squeue's State, Reason and exit_code.

A worker lost mid-task is explained by its job's record (core quotes the monitor's reason
in the task's :class:`~pycrew.TaskCrashError`). squeue lists an ended job for
``MinJobAge`` seconds with (the job state codes of squeue(1) and the job reason codes of
SLURM's "Resource Limits" page):

- its State: ``FAILED`` (a non-zero exit or a signal), ``CANCELLED`` (scancel, an
  administrator), ``TIMEOUT`` (its ``--time``: SIGTERM, then SIGKILL after ``KillWait``),
  ``OUT_OF_MEMORY``, ``NODE_FAIL``, ``PREEMPTED``, ``BOOT_FAIL``, ``DEADLINE``;
- its Reason, once it ended: ``NonZeroExitCode``, ``RaisedSignal:9(Killed)``,
  ``TimeLimit``, ``OutOfMemory``, ``NodeDown`` (``None`` when it has none); SLURM 22.05
  gives a batch script killed by a signal ``JobLaunchFailure`` (measured: a worker that
  SIGKILLed itself mid-task), which is left out: it did launch, the signal says why it ended;
- its ``exit_code``: the script's wait status (``768``: exit code 3; ``9``: killed by signal 9).

squeue does not say who cancelled a job (``sacct``'s "CANCELLED by <uid>" needs accounting).
"""

from __future__ import annotations

from pycrew.scheduler import join_reasons, killed_by

#: What an ended job's State means, for the states that need saying.
STATE_WORDS = {
    "CANCELLED": "SLURM cancelled it (scancel by a user or an administrator)",
    "TIMEOUT": "SLURM killed it at its time limit (--time)",
    "OUT_OF_MEMORY": "SLURM killed it for using more memory than it asked for (--mem)",
    "NODE_FAIL": "its node failed",
    "PREEMPTED": "SLURM preempted it for another job",
    "BOOT_FAIL": "SLURM could not boot its node",
    "DEADLINE": "SLURM ended it at its deadline (--deadline)",
}
def wait_signal(code_text: str) -> int | None:
    """The signal in squeue's ``exit_code`` field (a wait status), if one killed the job.

    >>> wait_signal("9"), wait_signal("768"), wait_signal("0"), wait_signal("N/A")
    (9, None, None, None)
    """
    if not code_text.isdigit():
        return None
    return int(code_text) & 0x7F or None


def ended_reason(state: str, reason: str, code_text: str) -> str:
    """Why a job that ended in ``state`` (squeue's State, Reason and exit_code fields) ended.

    >>> ended_reason("FAILED", "RaisedSignal:9(Killed)", "9"), ended_reason("FAILED", "JobLaunchFailure", "9")
    ('killed by signal 9 (SIGKILL)', 'killed by signal 9 (SIGKILL)')
    >>> ended_reason("CANCELLED", "None", "15")
    'SLURM cancelled it (scancel by a user or an administrator); killed by signal 15 (SIGTERM)'
    >>> ended_reason("TIMEOUT", "TimeLimit", "0")
    'SLURM killed it at its time limit (--time); TimeLimit'
    >>> ended_reason("FAILED", "NonZeroExitCode", "768")
    'NonZeroExitCode'
    """
    signal_number = wait_signal(code_text)
    said_by_signal = reason.startswith("RaisedSignal") or reason == "JobLaunchFailure"
    said = "" if reason in ("None", "(null)") or (said_by_signal and signal_number) else reason
    return join_reasons(STATE_WORDS.get(state, ""), killed_by(signal_number) if signal_number else "", said)
