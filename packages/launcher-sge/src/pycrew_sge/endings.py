"""What the listing can say of an SGE task that ended, before ``qacct`` can: :class:`TaskEndings`.

A worker lost mid-task is explained by its task's record (core quotes the monitor's reason
in the task's :class:`~pycrew.TaskCrashError`, asking for up to 2 s). What SGE 8.1.9 shows
in that time (measured on the test cell):

- a task that died (killed, exited, killed at its ``h_rt``) becomes a zombie (``qstat -s z``,
  state ``z``) about 1 s later, without its exit status, its host or its start time;
- ``qacct -j <job> -t <task>`` has its exit status (``137 (Killed)``) and ``failed`` code
  only once the qmaster flushes its accounting file (``reporting_params flush_time``,
  15 s by default: measured 2.5 to 12 s after the death), too late for that;
- a task deleted with ``qdel`` shows a state with ``d`` (``dr``, ``dt``) at once.

So this remembers when each task was seen start (its ``JAT_start_time``), and says of a
zombie that ran out its run-time limit (the ``walltime`` option, SGE's ``h_rt``) that SGE
killed it there, most likely (SGE sends SIGKILL at ``h_rt``, SIGUSR1 first only with
``s_rt``); and says of a task in deletion that it was deleted.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Sequence

from pycrew.scheduler import JobRecord, join_reasons

#: A zombie that ran at least its run-time limit less this long was killed at the limit.
SECONDS_SLACK = 1.0
#: What a task in deletion (``dr``, ``dt``, ...) is, said.
DELETED = "deleted with qdel (by a user or an administrator): SGE kills it"


class TaskEndings:
    """The start times of this process's listed tasks, and the reasons they give ended ones (thread-safe).

    Args:
        seconds_limit: the jobs' run-time limit (``h_rt``) in seconds, if the options set one.
    """

    def __init__(self, seconds_limit: int | None) -> None:
        self.seconds_limit = seconds_limit
        self._lock = threading.Lock()
        self._started: dict[tuple[str, int], float] = {}

    def explain(self, records: Sequence[JobRecord], now: float | None = None) -> list[JobRecord]:
        """``records`` (one listing, at epoch ``now``, default now), with what is known of those that ended or are deleted."""
        now = time.time() if now is None else now
        out: list[JobRecord] = []
        with self._lock:
            for record in records:
                key = (record.array_id, record.index)
                if record.status == "running" and record.host and record.submitted is not None:
                    self._started[key] = record.submitted  # a placed task's time is its start (JAT_start_time)
                out.append(self._explained(record, self._started.get(key), now))
            listed = {(r.array_id, r.index) for r in records}
            self._started = {key: at for key, at in self._started.items() if key in listed}
        return out

    def _explained(self, record: JobRecord, started: float | None, now: float) -> JobRecord:
        if "d" in record.state and record.status == "cancelled":
            return dataclasses.replace(record, reason=join_reasons(DELETED, record.reason))
        if record.state != "z" or started is None:
            return record
        ran = now - started
        limit = self.seconds_limit
        if limit is None or ran < limit - SECONDS_SLACK:
            return record
        said = (
            f"it was listed ended {ran:.0f} s after it started, past its run-time limit h_rt={limit} s (the "
            "walltime option): SGE kills a task there (SIGKILL), so most likely it did"
        )
        return dataclasses.replace(record, reason=join_reasons(said, record.reason))
