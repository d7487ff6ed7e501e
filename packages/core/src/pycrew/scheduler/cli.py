"""What every batch scheduler's command line has in common: :class:`SchedulerCLI`.

A scheduler launcher (SLURM, SGE, PBS Pro, LSF, or a third party's Flux or HTCondor)
submits a generated job script as one job array per batch of workers, cancels jobs or
array elements, and lists its jobs for the monitor. A subclass supplies only the
scheduler's syntax, as pure functions of their inputs that unit tests feed canned outputs:

- builders: :meth:`~SchedulerCLI.directives`, :meth:`~SchedulerCLI.submit_command`,
  :meth:`~SchedulerCLI.element_handle`, :meth:`~SchedulerCLI.cancel_command`,
  :meth:`~SchedulerCLI.list_command`;
- parsers: :meth:`~SchedulerCLI.parse_submit`, :meth:`~SchedulerCLI.parse_listing` (with
  each job's state normalised), :meth:`~SchedulerCLI.is_gone`;
- and :meth:`~SchedulerCLI.site_array_max`.

This class runs them (through :class:`~pycrew.scheduler.commands.CommandRunner`):

- renders the job script (:mod:`pycrew.scheduler.jobscript`), writes it to a private
  directory (0700, file 0600) and deletes it after submission; the secret (the batch key)
  travels in the submitting command's environment only;
- cuts a batch into arrays (the site's array limit and the tag's length,
  :mod:`pycrew.scheduler.jobtag`);
- retries transient failures with backoff; a submit whose reply was lost (a transient
  error, a timeout) or unreadable is looked for by its tag before anything is submitted
  again, so nothing is submitted twice, and jobs no launch waits for (a submit in doubt, a
  duplicate taken late) are cancelled (:mod:`pycrew.scheduler.submission`);
- stops submitting after repeated failures (:class:`~pycrew.scheduler.breaker.SubmitBreaker`);
- cancels several jobs at once and ignores "already gone";
- answers the monitor from one listing per ``seconds_poll``
  (:class:`~pycrew.scheduler.listing.JobListing`, the monitor's half, which it extends).
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from pycrew.plugin_api import LauncherInfo, WorkerCall
from pycrew.scheduler import jobscript, jobtag
from pycrew.scheduler.breaker import SubmitBreaker
from pycrew.scheduler.errors import SchedulerError
from pycrew.scheduler.options import SchedulerOptions
from pycrew.scheduler.records import JobRecord
from pycrew.scheduler.submission import ArraySubmitter
from pycrew.wire.protocol import TOKEN_ENV

log = logging.getLogger(__name__)


class SchedulerCLI(ArraySubmitter):
    """The shared part of a batch-scheduler launcher; subclass per scheduler.

    One instance serves one launcher configuration (its options) in one process, from
    several threads: it caches the site's array limit and the monitor's last listing, and
    holds the circuit breaker.

    Args:
        launcher_name: the launcher's registered name (``"slurm"``).
        options: the launcher's options (a :class:`~pycrew.scheduler.SchedulerOptions`, or
            any options with the fields this class reads).
    """

    #: The directive prefix of job scripts (``#SBATCH``, ``#$``, ``#PBS``, ``#BSUB``).
    directive_prefix: ClassVar[str] = ""
    #: The environment variable holding an array element's index inside the job.
    array_index_variable: ClassVar[str] = ""
    #: The first index of an array (1 everywhere pycrew submits arrays).
    array_first_index: ClassVar[int] = 1
    #: The longest tag the scheduler stores.
    tag_max: ClassVar[int] = 1000
    #: Job names start with this, so that a person reading the queue sees pycrew's jobs.
    job_name_prefix: ClassVar[str] = "pycrew"
    #: The default private directory (``~`` expanded).
    default_directory: ClassVar[str] = "~/.pycrew/scheduler"

    def __init__(self, launcher_name: str, options: Any) -> None:
        super().__init__(launcher_name, options)
        self._lock = threading.Lock()
        self._array_max: int | None = None
        self.breaker = SubmitBreaker(
            launcher_name,
            int(self._option("submit_failures_max", SchedulerOptions.submit_failures_max)),
            float(self._option("seconds_submit_pause", SchedulerOptions.seconds_submit_pause)),
        )
        self.submissions = 0  # submit commands run (each may be an array)
        self.found_by_tag = 0  # submits whose lost reply was recovered from the listing

    # -- paths ---------------------------------------------------------------------------

    @property
    def directory(self) -> Path:
        """The private directory for job scripts and default logs (created 0700 on demand)."""
        return Path(os.path.expanduser(self._option("directory", self.default_directory)))

    def private_directory(self, *parts: str) -> Path:
        """``directory/parts...``, created with mode 0700 if missing."""
        path = self.directory.joinpath(*parts)
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(self.directory, 0o700)  # the top must be private even if it existed
        return path

    # -- builders and parsers a subclass supplies ----------------------------------------

    def directives(self, launcher: LauncherInfo, calls: Sequence[WorkerCall], tag: str) -> list[str]:
        """The script's directive lines (name, array, logs, tag, resources)."""
        raise NotImplementedError

    def submit_command(self, script: Path, calls: Sequence[WorkerCall], tag: str) -> list[str]:
        """The command that submits ``script`` as an array of ``len(calls)`` elements."""
        raise NotImplementedError

    def submit_input(self, script: Path) -> str | None:
        """What the submit command reads on stdin (LSF's ``bsub < script``); ``None``: nothing."""
        return None

    def parse_submit(self, stdout: str) -> str:
        """The job id in the output of a submit command that exited 0.

        Raises:
            SchedulerError: the output holds no job id (the job is then looked up by its tag).
        """
        raise NotImplementedError

    def element_handle(self, job_id: str, index: int) -> Any:
        """The handle of element ``index`` of array ``job_id`` (what ``cancel`` accepts)."""
        raise NotImplementedError

    def cancel_command(self, handles: Sequence[Any]) -> list[str]:
        """The command that cancels ``handles`` (pending or running).

        Raises:
            ValueError: a handle is not one of this launcher's.
        """
        raise NotImplementedError

    def is_gone(self, message: str) -> bool:
        """Whether an error line of the cancel command only says the job is already gone."""
        raise NotImplementedError

    def list_command(self) -> list[str]:
        """The command that lists this user's jobs, array elements one per record."""
        raise NotImplementedError

    def parse_listing(self, stdout: str) -> list[JobRecord]:
        """The array elements in the listing command's output, each with a normalised status."""
        raise NotImplementedError

    def site_array_max(self) -> int:
        """The largest number of elements the site allows in one array (asked once)."""
        raise NotImplementedError

    # -- the job script ------------------------------------------------------------------

    def job_name(self, launcher: LauncherInfo, calls: Sequence[WorkerCall]) -> str:
        """The array's job name: ``pycrew-<controller name>``, safe for any scheduler."""
        name = calls[0].controller if calls else (launcher.controller or "")
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name).strip("-")[:40]
        return f"{self.job_name_prefix}-{safe}" if safe else self.job_name_prefix

    def render_script(self, launcher: LauncherInfo, calls: Sequence[WorkerCall], tag: str) -> str:
        """The job script of one array whose element ``i`` runs ``calls[i - first index]``.

        ``calls`` is one array run of core's batch or a single call (see
        :func:`pycrew.scheduler.jobtag.split_calls`); see :mod:`.jobscript`.
        """
        return self.worker_script(launcher, calls, tag)

    def worker_script(
        self,
        launcher: LauncherInfo,
        calls: Sequence[WorkerCall],
        tag: str,
        env: Mapping[str, str] | None = None,
        script_lines: Sequence[str] | None = None,
    ) -> str:
        """:meth:`render_script`'s script, for subclasses that add to it.

        The worker runs the ``python`` option's interpreter (default the calls'), in the
        ``cwd`` option's directory (default the controller's), with the controller's
        ``sys.path`` if ``inherit_sys_path`` allows (see
        :func:`pycrew.scheduler.jobscript.worker_invocation`).

        Args:
            env: more non-secret environment variables for the worker.
            script_lines: the lines run before the worker (default the ``script_lines`` option).
        """
        args, call_env, _secret = jobscript.worker_command(calls, self.array_index_variable, self.array_first_index)
        command, worker_env = jobscript.worker_invocation(
            self._option("python", None), calls[0].python, args, {**call_env, **(env or {})},
            bool(self._option("inherit_sys_path", True)),
        )
        cwd, required = jobscript.working_directory(self._option("cwd", None))
        return jobscript.render(
            command,
            worker_env,
            directives=self.directives(launcher, calls, tag),
            script_lines=self._option("script_lines", ()) if script_lines is None else script_lines,
            title=f"pycrew {self.launcher_name} workers of controller {calls[0].controller!r}: {len(calls)} element(s)",
            cwd=cwd,
            cwd_required=required,
        )

    def write_script(self, text: str) -> Path:
        """Write a job script into the private directory (file mode 0600); return its path."""
        directory = self.private_directory("scripts")
        fd, name = tempfile.mkstemp(prefix="job-", suffix=".sh", dir=directory)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return Path(name)

    def submission_environment(self, calls: Sequence[WorkerCall]) -> dict[str, str]:
        """The submitting command's environment: ours without stale tokens, plus the array's secret."""
        _args, _env, secret = jobscript.worker_command(calls, self.array_index_variable, self.array_first_index)
        return jobscript.submission_environment(secret)

    def token_variables(self, calls: Sequence[WorkerCall]) -> list[str]:
        """The names (never values) of the variables that carry the secret into the job."""
        return [TOKEN_ENV]

    # -- submission ----------------------------------------------------------------------

    def element_handles(self, job_id: str, count: int) -> list[Any]:
        """The handles of the first ``count`` elements of array ``job_id``."""
        first = self.array_first_index
        return [self.element_handle(job_id, i) for i in range(first, first + count)]

    def array_max(self) -> int:
        """Elements per array: ``array_size_max`` if set, capped by the site's limit."""
        with self._lock:
            if self._array_max is None:
                self._array_max = max(1, self.site_array_max())
            site = self._array_max
        wanted = self._option("array_size_max", None)
        return min(site, wanted) if wanted else site

    def launch(self, launcher: LauncherInfo, calls: Sequence[WorkerCall]) -> list[Any]:
        """Submit ``calls`` as job arrays; return one handle per call, in order.

        If one array of several fails to submit, the arrays already submitted are
        cancelled before the error is raised, so no worker runs without a handle.

        Raises:
            SchedulerError: a submission failed (the message names the command and its
                output), or the circuit breaker is open.
        """
        if not calls:
            return []
        self.breaker.check()
        calls = self.within_time_limit(calls)
        handles: list[Any] = []
        try:
            for chunk in jobtag.split_calls(calls, self.array_max(), self.tag_max):
                job_id = self.submit_array(launcher, chunk)
                handles += self.element_handles(job_id, len(chunk))
                self.departures.submitted(self.submitted_records(launcher, chunk, job_id), time.monotonic())
        except BaseException as exc:
            self.breaker.failure(exc)
            if handles:
                log.warning("%s: cancelling %d worker(s) of this batch after a failed submission", self.launcher_name, len(handles))
                try:
                    self.cancel(handles)
                except (SchedulerError, ValueError) as cancel_error:
                    log.warning("%s: could not cancel them: %s", self.launcher_name, cancel_error)
            raise
        finally:
            self.forget_listing()
        self.breaker.success()
        return handles

    def submitted_records(self, launcher: LauncherInfo, calls: Sequence[WorkerCall], job_id: str) -> list[JobRecord]:
        """The elements of array ``job_id`` (running ``calls``) as a listing would show them
        waiting: what :meth:`~pycrew.scheduler.departures.Departures.submitted` tracks."""
        name, tag, first = self.job_name(launcher, calls), jobtag.encode(calls), self.array_first_index
        return [
            JobRecord(str(self.element_handle(job_id, index)), job_id, index, name, tag, "", status="pending")
            for index in range(first, first + len(calls))
        ]

    def within_time_limit(self, calls: Sequence[WorkerCall]) -> Sequence[WorkerCall]:
        """``calls`` whose workers leave before the jobs' run-time limit: ``seconds_wall``
        at most the options' ``seconds_worker_life()`` (see ``seconds_walltime_margin``)."""
        life = getattr(self.options, "seconds_worker_life", None)
        seconds = life() if callable(life) else None
        if seconds is None:
            return calls
        return [c if c.seconds_wall <= seconds else c.with_command(replace(c.command, seconds_wall=seconds)) for c in calls]

    # -- cancel --------------------------------------------------------------------------

    def cancel(self, handles: Sequence[Any]) -> None:
        """Cancel jobs or array elements; jobs already gone are no error and no warning.

        Transient failures are retried with backoff. While submits are watched for jobs no
        launch waits for (:mod:`pycrew.scheduler.strays`), the queue is listed and those are
        cancelled too, so that ``terminate()`` leaves no job carrying pycrew's tags.

        Raises:
            ValueError: a handle is not one of this launcher's.
            SchedulerError: the cancel command failed for another reason.
        """
        try:
            self.cancel_handles(handles)
        finally:
            self.sweep_strays()

    def cancel_handles(self, handles: Sequence[Any]) -> None:
        """:meth:`cancel` of ``handles`` only."""
        if not handles:
            return
        try:
            argv = self.cancel_command(handles)
            self.departures.cancelled(handles, time.monotonic())  # so an element that then leaves the queue reads "cancelled"
            attempts = int(self._option("command_attempts", 4))
            for attempt in range(attempts):
                try:
                    proc = self.run(argv)
                except SchedulerError as exc:  # timed out (transient): try again, as check() does
                    if not exc.transient or attempt == attempts - 1:
                        raise
                    self.pause(attempt, exc)
                    continue
                output = proc.stderr + "\n" + proc.stdout
                problems = [
                    line for line in output.splitlines()
                    if line.strip() and "error" in line.lower() and not self.is_gone(line)
                ]
                if not problems and (proc.returncode == 0 or self._only_gone(proc)):
                    return
                error = SchedulerError(
                    f"{' '.join(argv)} failed (exit status {proc.returncode}): "
                    f"{'; '.join(problems) or proc.stderr.strip() or 'no message'}",
                    argv, proc.returncode, proc.stderr, transient=self.is_transient(proc.returncode, output),
                )
                if not error.transient or attempt == attempts - 1:
                    raise error
                self.pause(attempt, error)
        finally:
            self.forget_listing()

    def _only_gone(self, proc: Any) -> bool:
        lines = [line for line in (proc.stderr + "\n" + proc.stdout).splitlines() if line.strip()]
        return bool(lines) and all(self.is_gone(line) for line in lines)
