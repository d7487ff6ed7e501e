"""How a job ended, in words: the shared half of the reasons scheduler launchers give for ended jobs.

When a worker's connection is lost mid-task, core asks the launcher's monitor what became
of it and quotes the ended job's state, exit code and reason in the task's
:class:`~pycrew.TaskCrashError`. Schedulers encode a death by signal each their own way
(SLURM's wait status ``9``, PBS's ``256 + N``, LSF's ``128 + N``); a launcher decodes
its scheduler's number and words it with :func:`killed_by`, so that every scheduler says
"killed by signal 9 (SIGKILL)" alike.
"""

from __future__ import annotations

import signal

__all__ = ["join_reasons", "killed_by", "signal_name"]


def signal_name(number: int) -> str:
    """The name of signal ``number`` on this machine (``SIGKILL``), or ``signal N`` if it has none.

    >>> signal_name(9), signal_name(15), signal_name(200)
    ('SIGKILL', 'SIGTERM', 'signal 200')
    """
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def killed_by(number: int) -> str:
    """``killed by signal 9 (SIGKILL)``: a job's main process ended by signal ``number``.

    >>> killed_by(9)
    'killed by signal 9 (SIGKILL)'
    """
    name = signal_name(number)
    return f"killed by signal {number} ({name})" if name.startswith("SIG") else f"killed by signal {number}"


def join_reasons(*parts: str) -> str:
    """The non-empty ``parts``, stripped, joined with ``"; "`` (repeats left out).

    >>> join_reasons("killed by signal 9 (SIGKILL)", "", "TERM_OWNER: job killed by owner")
    'killed by signal 9 (SIGKILL); TERM_OWNER: job killed by owner'
    """
    kept: list[str] = []
    for part in parts:
        text = part.strip()
        if text and text not in kept:
            kept.append(text)
    return "; ".join(kept)
