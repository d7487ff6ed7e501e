"""Waiting jobs that SGE can never run: ``qalter -w v``, asked once per job.

SGE keeps a job that no queue of the cell can run (more slots than any parallel
environment offers, a run time over every queue's limit, a resource no host has as much
of) waiting for ever in state ``qw``, and its scheduler message reads like a wait for busy
slots (``cannot run in PE "smp" because it only offers 0 slots``). ``qalter -w v JOB``
asks the qmaster whether any queue could run the job on the cell as it is configured,
load left out: ``verification: no suitable queues`` (exit status 1), or
``verification: found suitable queue(s)`` (``found possible assignment with N slots`` for
a job in a parallel environment). So a worker whose job can
never start fails its launch with SGE's reason within seconds, instead of after
``seconds_launch`` times ``launch_max``, while a job that waits for busy slots keeps
waiting. (``qsub -w e`` would refuse such a job at once, but also one that asks for a
host that is down for now; ``-w v`` on the queued job leaves that to the user.)
"""

from __future__ import annotations

import logging
import re
import subprocess
import threading
from collections.abc import Callable, Iterable

log = logging.getLogger("pycrew_sge.sge")

#: A job waits this long (as this process saw it) before it is verified: most start sooner.
SECONDS_VERIFY = 3.0
#: An answer that said neither (the qmaster unreachable, the job just started) is asked
#: again after this long.
SECONDS_RETRY = 15.0
NO_QUEUE = "verification: no suitable queues"
#: qalter's line per reason: ``Job 982 cannot run in PE "smp" because it only offers 0 slots``.
_JOB_LINE = re.compile(r"^Job [0-9][0-9.]* (.+)$")
FOUND = "verification: found "


def parse_verification(output: str) -> str | None:
    """Why SGE can never run the job, from ``qalter -w v JOB``'s output; ``""`` if it can;
    ``None`` if the output says neither (ask again later)."""
    if NO_QUEUE in output:
        reasons = [m.group(1) for line in output.splitlines() if (m := _JOB_LINE.match(line.strip()))]
        return "; ".join(reasons) or "no queue of the cell can run it"
    if FOUND in output:
        return ""
    return None


def never_runs_reason(why: str) -> str:
    """The reason a job SGE can never run is reported ``failed`` with."""
    return (
        f"SGE can never run this job: {why} (qalter -w v finds no suitable queue on the cell as configured); "
        "fix the job's options (cpus, parallel_environment, walltime, memory, queue, submit_args)"
    )


class Verifier:
    """Asks ``qalter -w v`` about each waiting job once, and remembers the answers.

    Args:
        run: runs a command once and returns it whatever its exit status (raises
            :class:`pycrew.scheduler.SchedulerError` when it cannot run it).
        qalter: the ``qalter`` command's path.
    """

    def __init__(self, run: Callable[[list[str]], subprocess.CompletedProcess[str]], qalter: str) -> None:
        self._run = run
        self._qalter = qalter
        self._lock = threading.Lock()
        self._first_seen: dict[str, float] = {}  # job -> when this process first saw it waiting
        self._verdicts: dict[str, tuple[float, str | None]] = {}  # job -> (when asked, why it never runs / "" / None)

    def never_runs(self, waiting: Iterable[str], now: float) -> dict[str, str]:
        """Of the jobs ``waiting`` (pycrew's, queued and not held), those SGE can never run,
        each with the reason to report; jobs not waiting any more are forgotten."""
        jobs = set(waiting)
        with self._lock:
            self._first_seen = {job: self._first_seen.get(job, now) for job in jobs}
            self._verdicts = {job: v for job, v in self._verdicts.items() if job in jobs}
            due = sorted(
                (job for job in jobs if now - self._first_seen[job] >= SECONDS_VERIFY and self._due(job, now)), key=int
            )
        for job in due:
            why = self._verify(job)
            with self._lock:
                if job in self._first_seen:
                    self._verdicts[job] = (now, why)
        with self._lock:
            return {job: never_runs_reason(v[1]) for job, v in self._verdicts.items() if v[1]}

    def _due(self, job: str, now: float) -> bool:
        verdict = self._verdicts.get(job)
        return verdict is None or (verdict[1] is None and now - verdict[0] >= SECONDS_RETRY)

    def _verify(self, job: str) -> str | None:
        argv = [self._qalter, "-w", "v", job]
        try:
            done = self._run(argv)
        except Exception as exc:  # SchedulerError: qalter missing or hung; the job keeps waiting
            log.debug("sge: %s failed: %s", " ".join(argv), exc)
            return None
        why = parse_verification(f"{done.stdout}\n{done.stderr}")
        if why is None:
            log.debug("sge: %s said neither: %r", " ".join(argv), (done.stdout + done.stderr).strip()[:300])
        return why
