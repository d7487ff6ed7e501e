"""What every batch scheduler's command line has in common: :class:`SchedulerCLI`.

A scheduler launcher (SLURM, SGE, PBS Pro, LSF) submits a generated job script as one job
array per batch of workers, cancels jobs or array elements, and lists its jobs for the
monitor. This base class holds the shared part:

- rendering the job script (:mod:`pycrew_slurm.jobscript`: shebang, directives, ``script_lines``,
  and the one worker command every element runs: core's array form, in which each element
  derives its instance id from its index and its token from the batch key);
- writing it to a private directory (0700, file 0600) and deleting it after submission;
- passing the secret (the batch key) through the submitting command's environment only;
- cutting a batch into arrays (the site's array limit and the tag's length);
- running commands with a timeout and reporting failures with the command and stderr;
- cancelling several jobs at once and ignoring "already gone";
- the monitor's polling cadence (one listing per ``seconds_poll``).

A subclass supplies the scheduler's own syntax: see the methods that raise
:class:`NotImplementedError` and the class variables below. :class:`pycrew_slurm.SlurmCLI`
is the reference subclass.
"""

from __future__ import annotations

import logging
import os
import shlex
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from pycrew import (
    TOKEN_ENV,
    LauncherInfo,
    LauncherOptions,
    PycrewError,
    WorkerCall,
    WorkerInfo,
)
from pycrew_slurm import jobscript, jobtag

log = logging.getLogger(__name__)


class SchedulerError(PycrewError):
    """A scheduler command failed (could not run, timed out, or exited with an error).

    Attributes:
        command: the command line that failed.
        returncode: its exit status (``None`` if it did not run to the end).
        stderr: what it wrote to stderr.
    """

    def __init__(self, message: str, command: Sequence[str] = (), returncode: int | None = None, stderr: str = "") -> None:
        super().__init__(message)
        self.command = list(command)
        self.returncode = returncode
        self.stderr = stderr


@dataclass(frozen=True)
class JobRecord:
    """One array element as the scheduler's listing shows it (before the tag is read).

    Attributes:
        id: the element's id in the scheduler's own notation (``123_4``, ``123.4``, ``123[4]``).
        array_id: the id of the array job.
        index: the element's index in the array (1-based).
        name: the job name.
        tag: the tag text stored with the job (see :mod:`pycrew_slurm.jobtag`).
        state: the scheduler's state word.
        reason: why it is in that state, if the scheduler says.
        host: the node it runs on, if any.
        submitted: submission time (epoch seconds), if known.
        log: its log file, if known.
    """

    id: str
    array_id: str
    index: int
    name: str
    tag: str
    state: str
    reason: str = ""
    host: str | None = None
    submitted: float | None = None
    log: str | None = None


class SchedulerCLI:
    """The shared part of a batch-scheduler launcher; subclass per scheduler.

    One instance serves one launcher configuration (its options) in one process, from
    several threads: it caches the site's array limit and the monitor's last listing.

    Args:
        launcher_name: the launcher's registered name (``"slurm"``).
        options: the launcher's options; the base class reads ``directory``, ``python``,
            ``script_lines``, ``array_size_max``, ``seconds_poll`` and
            ``seconds_command_timeout`` if the options have them.
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

    def __init__(self, launcher_name: str, options: LauncherOptions) -> None:
        self.launcher_name = launcher_name
        self.options = options
        self._lock = threading.Lock()
        self._array_max: int | None = None
        self._listing: tuple[float, list[JobRecord]] | None = None

    # -- options the base class understands ----------------------------------------------

    def _option(self, name: str, default: Any) -> Any:
        value = getattr(self.options, name, None)
        return default if value is None else value

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

    # -- commands ------------------------------------------------------------------------

    def run(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        """Run a scheduler command; return it whatever its exit status.

        Raises:
            SchedulerError: the command is missing or did not finish within
                ``seconds_command_timeout``.
        """
        timeout = float(self._option("seconds_command_timeout", 60.0))
        try:
            return subprocess.run(
                list(argv), capture_output=True, text=True, timeout=timeout, check=False,
                env=dict(env) if env is not None else None, stdin=subprocess.DEVNULL,
            )
        except FileNotFoundError as exc:
            raise SchedulerError(
                f"{argv[0]!r} not found: is the {self.launcher_name} client installed and on PATH "
                f"(PATH={os.environ.get('PATH', '')!r})?", argv,
            ) from exc
        except subprocess.TimeoutExpired as exc:
            raise SchedulerError(f"{shlex.join(argv)} did not finish within {timeout:g} s", argv) from exc

    def check(self, argv: Sequence[str], env: Mapping[str, str] | None = None, what: str = "") -> str:
        """Run a command that must succeed; return its stdout.

        Raises:
            SchedulerError: naming the command, its exit status and its stderr.
        """
        proc = self.run(argv, env)
        if proc.returncode == 0 and proc.stderr.strip():
            log.info("%s: %s said: %s", self.launcher_name, argv[0], proc.stderr.strip())
        if proc.returncode != 0:
            stderr = proc.stderr.strip()
            raise SchedulerError(
                f"{what or argv[0]} failed (exit status {proc.returncode}): {shlex.join(argv)}: "
                f"{stderr or proc.stdout.strip() or 'no message'}",
                argv, proc.returncode, stderr,
            )
        return proc.stdout

    # -- the job script ------------------------------------------------------------------

    def job_name(self, launcher: LauncherInfo, calls: Sequence[WorkerCall]) -> str:
        """The array's job name: ``pycrew-<controller name>``, safe for any scheduler."""
        name = calls[0].controller if calls else (launcher.controller or "")
        safe = "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in name).strip("-")[:40]
        return f"{self.job_name_prefix}-{safe}" if safe else self.job_name_prefix

    def directives(self, launcher: LauncherInfo, calls: Sequence[WorkerCall], tag: str) -> list[str]:
        """The script's directive lines (name, array, logs, tag, resources). Subclasses define it."""
        raise NotImplementedError

    def render_script(self, launcher: LauncherInfo, calls: Sequence[WorkerCall], tag: str) -> str:
        """The job script of one array whose element ``i`` runs ``calls[i - first index]``.

        ``calls`` is one array run of core's batch or a single call (see
        :func:`pycrew_slurm.jobtag.split_calls`); see :mod:`.jobscript`.
        """
        args, env, _secret = jobscript.worker_command(calls, self.array_index_variable, self.array_first_index)
        python = self._option("python", None) or calls[0].python
        return jobscript.render(
            [python, *args],
            env,
            directives=self.directives(launcher, calls, tag),
            script_lines=self._option("script_lines", ()),
            title=f"pycrew {self.launcher_name} workers of controller {calls[0].controller!r}: {len(calls)} element(s)",
        )

    def write_script(self, text: str) -> Path:
        """Write a job script into the private directory (file mode 0600); return its path."""
        directory = self.private_directory("scripts")
        fd, name = tempfile.mkstemp(prefix="job-", suffix=".sh", dir=directory)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        return Path(name)

    # -- submission ----------------------------------------------------------------------

    def submission_environment(self, calls: Sequence[WorkerCall]) -> dict[str, str]:
        """The submitting command's environment: ours without stale tokens, plus the array's secret.

        The secret, as ``PYCREW_TOKEN``, is the batch key of an array run (each element
        derives its own token from it) or the token of a single call.
        """
        _args, _env, secret = jobscript.worker_command(calls, self.array_index_variable, self.array_first_index)
        return jobscript.submission_environment(secret)

    def token_variables(self, calls: Sequence[WorkerCall]) -> list[str]:
        """The names (never values) of the variables that carry the secret into the job."""
        return [TOKEN_ENV]

    def submit(self, script: Path, calls: Sequence[WorkerCall], env: Mapping[str, str]) -> str:
        """Submit ``script`` as an array of ``len(calls)`` elements; return the array's job id."""
        raise NotImplementedError

    def element_handle(self, job_id: str, index: int) -> Any:
        """The handle of element ``index`` of array ``job_id`` (what ``cancel`` accepts)."""
        raise NotImplementedError

    def element_handles(self, job_id: str, count: int) -> list[Any]:
        """The handles of the first ``count`` elements of array ``job_id``."""
        first = self.array_first_index
        return [self.element_handle(job_id, i) for i in range(first, first + count)]

    def site_array_max(self) -> int:
        """The largest number of elements the site allows in one array (asked once)."""
        raise NotImplementedError

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
            SchedulerError: a submission failed (the message names the command and stderr).
        """
        if not calls:
            return []
        chunks = jobtag.split_calls(calls, self.array_max(), self.tag_max)
        handles: list[Any] = []
        try:
            for chunk in chunks:
                tag = jobtag.encode(chunk)
                script = self.write_script(self.render_script(launcher, chunk, tag))
                try:
                    job_id = self.submit(script, chunk, self.submission_environment(chunk))
                except SchedulerError as exc:
                    if exc.returncode is None:  # timed out: the array may exist without our knowing its id
                        self._cancel_tagged(tag)
                    raise
                finally:
                    script.unlink(missing_ok=True)  # the scheduler keeps its own copy
                handles += self.element_handles(job_id, len(chunk))
                log.debug("%s: submitted array %s with %d worker(s)", self.launcher_name, job_id, len(chunk))
        except BaseException:
            if handles:
                log.warning("%s: cancelling %d worker(s) of this batch after a failed submission", self.launcher_name, len(handles))
                try:
                    self.cancel(handles)
                except SchedulerError as exc:
                    log.warning("%s: could not cancel them: %s", self.launcher_name, exc)
            raise
        finally:
            self.forget_listing()
        return handles

    def _cancel_tagged(self, tag: str) -> None:
        """Best effort after a submission timed out: cancel any job carrying exactly ``tag``."""
        try:
            handles = [self.element_handle(r.array_id, r.index) for r in self.list_jobs() if r.tag == tag]
            if handles:
                log.warning("%s: cancelling %d worker(s) submitted by a timed-out command", self.launcher_name, len(handles))
                self.cancel(handles)
        except SchedulerError as exc:
            log.warning("%s: after a timed-out submission, could not look for its jobs: %s", self.launcher_name, exc)

    # -- cancel --------------------------------------------------------------------------

    def cancel_command(self, handles: Sequence[Any]) -> list[str]:
        """The command that cancels ``handles`` (pending or running)."""
        raise NotImplementedError

    def is_gone(self, message: str) -> bool:
        """Whether an error line of the cancel command only says the job is already gone."""
        raise NotImplementedError

    def cancel(self, handles: Sequence[Any]) -> None:
        """Cancel jobs or array elements; jobs already gone are no error and no warning.

        Raises:
            SchedulerError: the cancel command failed for another reason.
        """
        if not handles:
            return
        try:
            argv = self.cancel_command(handles)
            proc = self.run(argv)
            problems = [
                line for line in (proc.stderr + "\n" + proc.stdout).splitlines()
                if line.strip() and "error" in line.lower() and not self.is_gone(line)
            ]
            if problems or (proc.returncode != 0 and not self._only_gone(proc)):
                raise SchedulerError(
                    f"{shlex.join(argv)} failed (exit status {proc.returncode}): "
                    f"{'; '.join(problems) or proc.stderr.strip() or 'no message'}",
                    argv, proc.returncode, proc.stderr,
                )
        finally:
            self.forget_listing()

    def _only_gone(self, proc: subprocess.CompletedProcess[str]) -> bool:
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        return bool(lines) and all(self.is_gone(line) for line in lines)

    # -- the monitor ---------------------------------------------------------------------

    def list_jobs(self) -> list[JobRecord]:
        """Every array element of this user's that the scheduler holds (pycrew's or not)."""
        raise NotImplementedError

    def forget_listing(self) -> None:
        """Drop the monitor's cached listing (after a launch or a cancel)."""
        with self._lock:
            self._listing = None

    def listing(self) -> list[JobRecord]:
        """The scheduler's listing, asked at most once per ``seconds_poll``.

        A listing that shows jobs not placed on a node yet goes stale sooner (a fifth of
        ``seconds_poll``): those jobs are about to start, and core's launch watch asks about
        once a second while they do, so a monitor call right after a worker started must not
        be answered with the listing from before it started.
        """
        interval = float(self._option("seconds_poll", 1.0))
        with self._lock:
            cached = self._listing
        now = time.monotonic()
        if cached is not None:
            unplaced = any(not r.host for r in cached[1])
            if now - cached[0] < (interval / 5 if unplaced else interval):
                return cached[1]
        records = self.list_jobs()
        with self._lock:
            self._listing = (now, records)
        return records

    def workers(self, controller_id: str | None) -> list[WorkerInfo]:
        """pycrew's workers in the queue: all, or one controller's. Nothing that is not pycrew's."""
        result: list[WorkerInfo] = []
        for record in self.listing():
            if not record.name.startswith(self.job_name_prefix):
                continue
            tag = jobtag.decode(record.tag)
            if tag is None or (controller_id is not None and tag.controller_id != controller_id):
                continue
            slot, instance = tag.element(record.index) or (None, None)
            result.append(
                WorkerInfo(
                    id=record.id,
                    handle=self.element_handle(record.array_id, record.index),
                    launcher=self.launcher_name,
                    controller=tag.controller or None,
                    controller_id=tag.controller_id,
                    instance=instance,
                    worker=slot,
                    state=record.state,
                    host=record.host,
                    started=record.submitted,
                    reason=record.reason,
                    log=record.log,
                )
            )
        return result

