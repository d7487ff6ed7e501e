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
"""

from __future__ import annotations

import dataclasses
import logging
import os
import pwd
import re
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from pycrew import TOKEN_ENV, LauncherInfo, WorkerCall
from pycrew.scheduler import JobRecord, SchedulerCLI, SchedulerError, jobscript, jobtag
from pycrew_sge import qstat
from pycrew_sge.endings import TaskEndings
from pycrew_sge.keys import KeyFiles, read_lines
from pycrew_sge.options import SgeOptions
from pycrew_sge.verify import Verifier

log = logging.getLogger(__name__)

#: A task handle ``<job>.<task>``, or a whole job ``<job>`` (for qdel).
_HANDLE = re.compile(r"^[0-9]+(?:\.[0-9]+)?$")
#: qdel's lines that only say a job or task is gone already, or is being deleted.
_GONE = ("does not exist", "has deleted", "has registered the job", "is already in deletion")
#: How old the scheduler's reasons for a pending or failed job may get before qstat -j is asked again.
SECONDS_REASONS = 15.0
#: How long what a submission put in its job (tag, output path) is kept while the listing
#: does not show the job (SGE lists a job as soon as qsub returns: this only bounds memory).
SECONDS_UNLISTED = 300.0
#: The largest array when the site sets no limit (``max_aj_tasks 0``): what a tag may describe.
ARRAY_MAX_UNLIMITED = jobtag.ELEMENTS_MAX

T = TypeVar("T")


def user_name() -> str:
    """This user's name (qstat -u takes it; SGE expands ``$USER`` to it)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # no passwd entry (some containers): fall back to what the shell says
        return os.environ.get("USER", str(os.getuid()))


def _directive_value(value: str) -> str:
    """A path in a ``#$`` line: quoted if it holds spaces (qsub honours double quotes there)."""
    return f'"{value}"' if any(ch.isspace() for ch in value) else value


def _make_parent(path: str | None) -> None:
    """Create a log file's directory if it holds no pseudo variable: SGE puts a job whose
    output file cannot be opened in error state (Eqw). Best effort: the execution hosts may
    see a path this host cannot create."""
    if not path or path == "/dev/null":
        return
    parent = Path(os.path.expanduser(path)).parent
    if "$" in str(parent) or parent.exists():
        return
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # deliberate: the execution hosts may see a path this host cannot create
        log.debug("sge: could not create the log directory %s here: %s", parent, exc)


class SgeCLI(SchedulerCLI):
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

    # -- script --------------------------------------------------------------------------

    def log_paths(self) -> tuple[str, str | None]:
        """``(-o, -e)``; ``-e`` ``None`` means "into the output file" (``-j y``)."""
        output = self.options.log_output
        if output is None:
            output = str(self.private_directory("logs") / "$JOB_NAME-$JOB_ID.$TASK_ID.log")
        for path in (output, self.options.log_error):
            _make_parent(path)
        return output, self.options.log_error

    def directives(self, launcher: LauncherInfo, calls: Sequence[WorkerCall], tag: str) -> list[str]:
        """``#$`` lines: name, array, tag, logs and working directory, then the options' resources.

        No shell (``-S``): SGE runs the script with the queue's shell, as the site set it up
        (the script is POSIX sh); ``script_directives=("#$ -S /bin/bash",)`` asks for bash.
        """
        output, error = self.log_paths()
        first = self.array_first_index
        lines = [
            f"#$ -N {self.job_name(launcher, calls)}",
            f"#$ -t {first}-{first + len(calls) - 1}",
            f"#$ -ac {qstat.TAG_VARIABLE}={qstat.tag_to_context(tag)}",
            f"#$ -o {_directive_value(output)}",
            f"#$ -e {_directive_value(error)}" if error is not None else "#$ -j y",
            "#$ -cwd",
        ]
        return lines + self.options.directives()

    def render_script(self, launcher: LauncherInfo, calls: Sequence[WorkerCall], tag: str) -> str:
        """The job script; with ``secret_file`` it reads the secret from the array's key file first."""
        lines = list(self.options.script_lines)
        if self.options.secret_file:
            lines = read_lines(self.keys.path(tag)) + lines
        return self.worker_script(launcher, calls, tag, script_lines=lines)

    def submission_environment(self, calls: Sequence[WorkerCall]) -> dict[str, str]:
        """qsub's environment: with ``secret_file`` it holds no secret at all (SGE would show it)."""
        env = super().submission_environment(calls)
        if self.options.secret_file:
            env.pop(TOKEN_ENV, None)
        return env

    # -- submit --------------------------------------------------------------------------

    def submit_command(self, script: Path, calls: Sequence[WorkerCall], tag: str) -> list[str]:
        """``qsub -terse [-V] [-v PYCREW_TOKEN] <submit_args> script``."""
        argv = [self.command("qsub"), "-terse"]
        if self.options.export_environment:
            argv.append("-V")
        if not self.options.secret_file:
            argv += ["-v", ",".join(self.token_variables(calls))]
        return [*argv, *self.options.submit_args, str(script)]

    def parse_submit(self, stdout: str) -> str:
        """The job id in ``qsub -terse``'s output (``123`` or ``123.1-4:1``)."""
        return qstat.parse_submit(stdout)

    def submit_array(self, launcher: LauncherInfo, calls: Sequence[WorkerCall]) -> str:
        """Submit one array; with ``secret_file`` its key file is written first and removed
        again if the submit failed. What the job carries (tag, output path) is kept, for
        the listing of its tasks once they ended (see the module's docstring)."""
        tag = jobtag.encode(calls)
        if not self.options.secret_file:
            job_id = super().submit_array(launcher, calls)
        else:
            _args, _env, secret = jobscript.worker_command(calls, self.array_index_variable, self.array_first_index)
            self.private_directory("keys")  # the top directory private (0700) before a secret goes in
            self.keys.write(tag, secret)
            submitted = False
            try:
                job_id = super().submit_array(launcher, calls)
                submitted = True
            finally:
                self.keys.settled(tag, submitted)
        self._remember(job_id, tag)
        return job_id

    def _remember(self, job_id: str, tag: str) -> None:
        """Keep what a submission put in job ``job_id``, as ``qstat -j`` would say it."""
        output, error = self.log_paths()
        submitted = qstat.JobDetails(
            job=job_id, context={qstat.TAG_VARIABLE: qstat.tag_to_context(tag)}, stdout_path=output, merged=error is None
        )
        with self._details_lock:  # statuses unknown (empty): asked with the next listing
            self._details.setdefault(job_id, (time.monotonic(), frozenset(), submitted))

    def element_handle(self, job_id: str, index: int) -> str:
        """``<job id>.<task id>``, as qstat and qdel write array tasks."""
        return f"{job_id}.{index}"

    def site_array_max(self) -> int:
        """``max_aj_tasks`` of the global configuration (``qconf -sconf``; 0 means no limit)."""
        limit = qstat.parse_array_max(self.check([self.command("qconf"), "-sconf"], what="qconf -sconf"))
        if limit is None:
            log.warning("sge: max_aj_tasks not found in 'qconf -sconf'; assuming 75000 (SGE's default)")
            return 75000
        return limit if limit > 0 else ARRAY_MAX_UNLIMITED

    # -- cancel --------------------------------------------------------------------------

    def cancel(self, handles: Sequence[Any]) -> None:
        """Cancel tasks (see :meth:`SchedulerCLI.cancel`); with ``secret_file``, list the queue
        right after, so that the key files of arrays none of whose tasks can start any more go
        now: a terminated controller makes no later listing, and they stayed on disk."""
        super().cancel(handles)
        if self.options.secret_file and handles:
            try:
                self.list_jobs()
            except SchedulerError as exc:  # they go at a later listing, as before
                log.debug("sge: the listing after a cancel (to remove key files) failed: %s", exc)

    def cancel_command(self, handles: Sequence[Any]) -> list[str]:
        """``qdel 12 13.2 14 -t 1,3 15 -t 4-6``: whole jobs, single tasks, task lists per job.

        Raises:
            ValueError: a handle is not ``<job id>`` or ``<job id>.<task id>`` (so that
                nothing can reach qdel as an option, e.g. ``-u``).
        """
        bad = [h for h in handles if not isinstance(h, str) or not _HANDLE.match(h)]
        if bad:
            raise ValueError(f"sge handles must look like '123.4' (job id . task id), got {bad!r}")
        whole = sorted({h for h in handles if "." not in h}, key=int)
        tasks: dict[str, set[int]] = {}
        for handle in handles:
            job, sep, task = handle.partition(".")
            if sep and job not in whole:
                tasks.setdefault(job, set()).add(int(task))
        args = list(whole)
        for job in sorted(tasks, key=int):
            ids = sorted(tasks[job])
            if len(ids) == 1:
                args.append(f"{job}.{ids[0]}")
            elif ids[-1] - ids[0] == len(ids) - 1:
                args += [job, "-t", f"{ids[0]}-{ids[-1]}"]
            else:
                args += [job, "-t", ",".join(map(str, ids))]
        return [self.command("qdel"), *args]

    def is_gone(self, message: str) -> bool:
        """qdel's line says the job or task is gone already, or that it is being deleted."""
        low = message.lower()
        return any(text in low for text in _GONE)

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
