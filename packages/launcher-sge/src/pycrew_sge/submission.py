"""The job script and qsub of :class:`~pycrew_sge.sge.SgeCLI`: :class:`SgeSubmission`.

A batch goes out as one array job (``qsub -t``) of a generated script whose ``#$`` lines
carry its name, its tag (the job context variable ``pycrew_tag``, ``-ac``) and its log
files. With ``secret_file`` the secret reaches the tasks through a key file (see
:mod:`pycrew_sge.keys`), never through qsub's environment. What a submission put in its
job is kept for the listing (see :mod:`pycrew_sge.sge`).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from pycrew import TOKEN_ENV, LauncherInfo, WorkerCall
from pycrew.scheduler import SchedulerCLI, jobscript, jobtag
from pycrew_sge import qstat
from pycrew_sge.keys import KeyFiles, read_lines
from pycrew_sge.options import SgeOptions

log = logging.getLogger("pycrew_sge.sge")

#: The largest array when the site sets no limit (``max_aj_tasks 0``): what a tag may describe.
ARRAY_MAX_UNLIMITED = jobtag.ELEMENTS_MAX


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


class SgeSubmission(SchedulerCLI):
    """The script and submit part of :class:`~pycrew_sge.sge.SgeCLI` (see there): ``#$``
    directives, the job script, ``qsub`` and the site's array limit."""

    options: SgeOptions
    keys: KeyFiles
    # job -> (when asked, its tasks' statuses then, the details): see SgeCLI.job_details
    _details: dict[str, tuple[float, frozenset[str], qstat.JobDetails]]
    _details_lock: threading.Lock

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
        the listing of its tasks once they ended (see :mod:`pycrew_sge.sge`)."""
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
