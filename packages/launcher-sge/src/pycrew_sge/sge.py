"""Son of Grid Engine's syntax for :class:`pycrew.scheduler.SchedulerCLI`: qsub, qdel, qstat, qconf.

Workers are tasks of array jobs (``qsub -t 1-n``); a handle is ``"<job id>.<task id>"``.
The tag that marks a job as pycrew's is the job context variable ``pycrew_tag``
(``-ac``). The monitor lists the queue with two commands whatever its length:
``qstat -xml -u USER -s prsz`` (every task's state and host, and the tasks that ended
lately: SGE's zombies) and one ``qstat -xml -j ID,ID,...`` for pycrew's jobs (context,
output path, error reasons), whose answers are kept per job (a job's context does not
change), so that only new jobs, and pending or failed ones whose reason may have changed,
are asked again. A job of pycrew's that waits is verified once (``qalter -w v``, see
:mod:`pycrew_sge.verify`): one that no queue of the cell can ever run is reported failed.

A task that ended leaves the queue at once; SGE keeps the last ``finished_jobs`` (100 by
default) as zombies, which ``qstat -s z`` lists without their exit status (only ``qacct``
has it, once the accounting file is flushed, 15 s later by default) and which
``qstat -j`` no longer knows. So an ended task is listed as ``done`` (exit code unknown)
when this process knows its job: it submitted it (what it put in the job is kept from the
submission) or saw it in the queue before. That is how core's launch watch learns within
a second that a worker ended before it connected (an interpreter or a directory missing on
the node), and quotes the end of its output, instead of waiting ``seconds_launch``.

Where the cell keeps no zombies (``finished_jobs 0``) an ended task just vanishes; one last
seen waiting, or all at once, is only suspect (see :mod:`pycrew.scheduler.departures`) and
:meth:`SgeCLI.confirm_gone` asks ``qstat -xml -j`` about its job: a job the qmaster no
longer holds has no task left, so its missing tasks leave at the next listing instead of
after 10 s. A task of a job still held waits out the 10 s: ``qstat -j`` does not list a
job's waiting tasks, so it cannot tell one that left from one that waits.

:class:`SgeCLI` is put together from one part per job: the job script and qsub
(:mod:`pycrew_sge.submission`), qdel (:mod:`pycrew_sge.cancelling`) and, here, the listing.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pwd
import threading
import time
from collections.abc import Callable, Sequence
from typing import ClassVar, TypeVar

from pycrew.scheduler import JobRecord, SchedulerError, jobtag
from pycrew_sge import qstat
from pycrew_sge.cancelling import SgeCancelling
from pycrew_sge.endings import TaskEndings
from pycrew_sge.keys import KeyFiles
from pycrew_sge.options import SgeOptions
from pycrew_sge.submission import ARRAY_MAX_UNLIMITED, SgeSubmission
from pycrew_sge.verify import Verifier

__all__ = ["ARRAY_MAX_UNLIMITED", "SECONDS_REASONS", "SECONDS_UNLISTED", "SgeCLI", "user_name"]

log = logging.getLogger(__name__)

#: How old the scheduler's reasons for a pending or failed job may get before qstat -j is asked again.
SECONDS_REASONS = 15.0
#: How long what a submission put in its job (tag, output path) is kept while the listing
#: does not show the job (SGE lists a job as soon as qsub returns: this only bounds memory).
SECONDS_UNLISTED = 300.0

T = TypeVar("T")


def user_name() -> str:
    """This user's name (qstat -u takes it; SGE expands ``$USER`` to it)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # no passwd entry (some containers): fall back to what the shell says
        return os.environ.get("USER", str(os.getuid()))


class SgeCLI(SgeSubmission, SgeCancelling):
    """Workers as Son of Grid Engine array jobs: ``qsub`` a generated script, ``qdel``, ``qstat``.

    Args:
        launcher_name: the registered launcher name (``"sge"``).
        options: the :class:`~pycrew_sge.SgeOptions`.
    """

    directive_prefix: ClassVar[str] = "#$"
    array_index_variable: ClassVar[str] = "SGE_TASK_ID"
    #: SGE 8.1.9 stores and lists job contexts of 100,000 characters intact (measured); the
    #: tag is kept far below so that ``qstat -j``'s answer stays small.
    tag_max: ClassVar[int] = 4000
    default_directory: ClassVar[str] = "~/.pycrew/sge"
    #: What SGE's clients print when the qmaster is down, restarting or overloaded.
    transient_errors: ClassVar[tuple[str, ...]] = (
        "unable to contact qmaster",
        "unable to send message to qmaster",
        "failed receiving gdi request",
        "commlib error",
        "syncron message receive timeout",
    )

    options: SgeOptions

    def __init__(self, launcher_name: str, options: SgeOptions) -> None:
        super().__init__(launcher_name, options)
        # job -> (when asked, its tasks' statuses then, the details)
        self._details: dict[str, tuple[float, frozenset[str], qstat.JobDetails]] = {}
        self._details_lock = threading.Lock()
        attempts = max(1, options.command_attempts)
        grace = attempts * (options.seconds_command_timeout + options.seconds_retry_max) + 60.0
        self.keys = KeyFiles(self.directory / "keys", grace)
        self.verifier = Verifier(self.run, self.command("qalter"))
        self.endings = TaskEndings(options.walltime_seconds())  # what ended tasks' records can say (see pycrew_sge.endings)

    # -- list ----------------------------------------------------------------------------

    def departed_hint(self, record: JobRecord) -> str:
        """A task that left the queue without becoming a zombie: the cell keeps none (``finished_jobs 0``)."""
        return f"SGE keeps no ended tasks when finished_jobs is 0; qacct -j {record.array_id} -t {record.index} has its exit status"

    def list_command(self) -> list[str]:
        """``qstat -xml -u USER -s prsz``: every task of this user's jobs, pending ranges
        included, and the tasks that ended lately (zombies, ``z``)."""
        return [self.command("qstat"), "-xml", "-u", user_name(), "-s", "prsz"]

    def details_command(self, jobs: Sequence[str]) -> list[str]:
        """``qstat -xml -j 12,13,...``: the details of these jobs, in one call."""
        return [self.command("qstat"), "-xml", "-j", ",".join(jobs)]

    #: Most jobs :meth:`confirm_gone` asks about in one listing (in one ``qstat -xml -j``).
    CONFIRM_JOBS_MAX: ClassVar[int] = 100

    def query_command(self, records: Sequence[JobRecord]) -> list[str] | None:
        """``qstat -xml -j 12,13,...``: the jobs of ``records`` (tasks missing from a listing),
        the first :attr:`CONFIRM_JOBS_MAX` by number; ``None`` if there are none."""
        jobs = sorted({r.array_id for r in records if r.array_id.isdigit()}, key=int)[: self.CONFIRM_JOBS_MAX]
        return self.details_command(jobs) if jobs else None

    def confirm_gone(self, records: list[JobRecord]) -> set[tuple[str, int]] | None:
        """Of ``records`` (tasks missing from a listing), those whose job the qmaster no
        longer holds, asked in one ``qstat -xml -j`` (:meth:`query_command`).

        A job it still holds keeps all its tasks here, even one that left: it lists only a
        job's tasks that started or failed, not those that wait or are held (see
        :mod:`pycrew_sge.qstat`). ``None`` when qstat could not be asked or its answer not
        read (no retry: the next listing asks again).
        """
        argv = self.query_command(records)
        if argv is None:
            return None
        try:
            proc = self.run(argv)
            if proc.returncode != 0:  # (not seen: qstat -xml -j says everything with exit status 0)
                log.debug("sge: qstat -j about tasks missing from the listing exited %d: %s", proc.returncode, proc.stderr.strip())
                return None
            unknown = qstat.parse_unknown_jobs(proc.stdout, argv[-1].split(","))
        except SchedulerError as exc:
            log.debug("sge: could not ask qstat -j about tasks missing from the listing: %s", exc)
            return None
        return {(r.array_id, r.index) for r in records if r.array_id in unknown}

    def parse_listing(self, stdout: str) -> list[JobRecord]:
        """The array tasks in ``qstat -xml``'s output, states normalised (tags come from :meth:`list_jobs`)."""
        return [
            JobRecord(
                id=self.element_handle(task.job, task.task),
                array_id=task.job,
                index=task.task,
                name=task.name,
                tag="",
                state=task.state,
                host=task.host,
                submitted=task.time,
                status=qstat.normalise_state(task.state),
                queued=qstat.normalise_state(task.state) == "failed",  # Eqw: qstat lists only queued jobs
            )
            for task in qstat.parse_qstat(stdout)
            if task.task is not None  # not an array: never one of pycrew's jobs
        ]

    def list_jobs(self) -> list[JobRecord]:
        """Every array task of this user's, pycrew's with their tag, log and reason (two qstat calls)."""
        listed_at = time.monotonic()
        records = self._check_parsed(self.list_command(), self.parse_listing, "listing sge jobs")
        details = self.job_details(records)
        user, home = user_name(), os.path.expanduser("~")
        merged = self.endings.explain([self.with_details(r, details.get(r.array_id), user, home) for r in records])
        # pycrew's jobs that wait (not held): those SGE can never run are failed (see pycrew_sge.verify)
        tags = {r.array_id: r.tag for r in merged if r.state == "qw" and r.tag}  # (one decode per job, not per task)
        waiting = {job for job, tag in tags.items() if jobtag.decode(tag) is not None}
        never = self.verifier.never_runs(waiting, time.monotonic())
        if never:
            merged = [
                dataclasses.replace(r, status="failed", reason=never[r.array_id], queued=True) if r.state == "qw" and r.array_id in never else r
                for r in merged
            ]
        if self.options.secret_file:  # a job's key stays while a task may still start (Eqw: once cleared)
            self.keys.clean((r.tag for r in merged if r.state != "z" and "d" not in r.state), listed_at)
        return merged

    def job_details(self, records: Sequence[JobRecord]) -> dict[str, qstat.JobDetails]:
        """The details of pycrew's jobs among ``records``, asked in one call for the jobs that
        are new, whose tasks changed status since they were asked (a task that went into error
        state has a reason now), or that wait or failed and were asked more than
        :data:`SECONDS_REASONS` ago (the scheduler's reasons change); the others are kept.

        ``qstat -j`` does not know a job whose tasks all ended: what was known of it (from
        its submission, or an earlier answer) is kept; a job never known stays without
        details (no tag: not pycrew's to list) and is not asked about again."""
        now = time.monotonic()
        seen: dict[str, frozenset[str]] = {}
        for r in records:
            if r.name.startswith(self.job_name_prefix):
                seen[r.array_id] = seen.get(r.array_id, frozenset()) | {r.status}
        with self._details_lock:
            self._details = {
                job: entry
                for job, entry in self._details.items()
                if job in seen or (not entry[1] and now - entry[0] < SECONDS_UNLISTED)  # submitted, not listed yet
            }
            ask = sorted((job for job, statuses in seen.items() if self._stale(job, statuses, now)), key=int)
        if ask:
            fresh = self._check_parsed(self.details_command(ask), qstat.parse_details, "qstat -j (sge job details)")
            with self._details_lock:
                for job in ask:
                    known = self._details.get(job)
                    detail = fresh.get(job) or (known[2] if known is not None else qstat.JobDetails(job))
                    self._details[job] = (now, seen[job], detail)
        with self._details_lock:
            return {job: entry[2] for job, entry in self._details.items()}

    def _stale(self, job: str, statuses: frozenset[str], now: float) -> bool:
        """Whether the details kept of ``job`` (its tasks now in ``statuses``) must be asked again."""
        entry = self._details.get(job)
        if entry is None or entry[1] != statuses:
            return True
        return bool(statuses & {"pending", "failed"}) and now - entry[0] > SECONDS_REASONS

    def with_details(self, record: JobRecord, details: qstat.JobDetails | None, user: str, home: str) -> JobRecord:
        """``record`` with the tag, output file and reason ``details`` give."""
        if details is None:
            return record
        if record.status == "failed":
            reason = details.task_errors.get(record.index) or "; ".join(details.messages)
        elif record.status == "pending":
            reason = "; ".join(details.messages)
        elif record.state == "z":
            reason = f"it ended; SGE keeps no exit status in its queue (qacct -j {record.array_id} -t {record.index} has it)"
        else:
            reason = ""
        log_path = None
        if details.stdout_path:
            log_path = qstat.expand_log_path(
                details.stdout_path, record.array_id, record.index, record.name, user, home, record.host
            )
        return dataclasses.replace(record, tag=details.tag, reason=reason, log=log_path)

    def _check_parsed(self, argv: list[str], parse: Callable[[str], T], what: str) -> T:
        """Run a qstat command and parse it, trying again (up to ``command_attempts`` tries in
        all) after a transient failure: one the command's exit status says, or an unreachable
        qmaster that ``qstat -xml -j`` reports with exit status 0."""
        attempts = int(self._option("command_attempts", 4))
        for attempt in range(attempts):
            try:
                return parse(self.check(argv, what=what, retry=False))
            except SchedulerError as exc:
                if not exc.transient or attempt == attempts - 1:
                    raise
                self.pause(attempt, exc)
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover
