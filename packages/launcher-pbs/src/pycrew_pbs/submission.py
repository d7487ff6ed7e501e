"""The job script and qsub of :class:`~pycrew_pbs.pbs.PbsCLI`: :class:`PbsSubmission`.

A batch of two workers or more goes out as one array job, a batch of one as a plain job;
each submission's output file is named after a digest of its tag (:func:`tag_digest`),
and the output file of every element launched is remembered for
:meth:`~pycrew_pbs.pbs.PbsCLI.log_path`. The site's array limit is the server's.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import ClassVar

from pycrew import LauncherInfo, WorkerCall
from pycrew.scheduler import SchedulerCLI, SchedulerError, jobtag
from pycrew_pbs.options import PbsOptions
from pycrew_pbs.qstat import output_path, server_array_limit
from pycrew_pbs.tag_variable import TAG_VARIABLE, encode_tag

log = logging.getLogger("pycrew_pbs.pbs")

#: A job id as qsub prints it: ``123``, ``123.server``, ``123[].server``.
_JOB_ID = re.compile(r"^\d+(?:\[\])?(?:\.[A-Za-z0-9_-]+)*$")
#: How many launched elements' output files a CLI remembers (for :meth:`~pycrew_pbs.pbs.PbsCLI.log_path`).
LOG_PATHS_MAX = 10_000
#: The default array limit (PBS Pro's documented ``max_array_size`` default) when the server
#: does not say.
DEFAULT_ARRAY_MAX = 10000


def _directive_value(value: str) -> str:
    """A path in a ``#PBS`` line: double-quoted if it holds white space (qsub splits directives at it)."""
    return f'"{value}"' if any(ch.isspace() for ch in value) else value


def tag_digest(tag: str) -> str:
    """12 hex digits naming a submission's log file (the array's tag is unique)."""
    return hashlib.sha256(tag.encode()).hexdigest()[:12]


def _make_parent(path: str | None) -> None:
    """Create a log file's directory if it has no pattern in it (PBS cannot deliver the output
    into a missing directory). Best effort: it may exist only on the compute nodes."""
    if not path or path == "/dev/null":
        return
    parent = Path(os.path.expanduser(output_path(path, None))).parent
    if "^" in str(parent) or "$" in str(parent) or parent.exists():
        return
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # deliberate: the nodes may see a path this host cannot create
        log.debug("pbs: could not create the log directory %s here: %s", parent, exc)


class PbsSubmission(SchedulerCLI):
    """The script and submit part of :class:`~pycrew_pbs.pbs.PbsCLI` (see there): ``#PBS``
    directives, the job script, ``qsub`` and the server's array limit."""

    array_flag: ClassVar[str]
    options: PbsOptions
    #: The output file (pattern) each launched handle was given (see PbsCLI.log_path).
    _log_paths: dict[str, str]

    # -- script --------------------------------------------------------------------------

    def is_array(self, calls: Sequence[WorkerCall]) -> bool:
        """Whether ``calls`` go out as an array (two or more) rather than a plain job."""
        return len(calls) > 1

    def default_log_output(self, launcher: LauncherInfo, calls: Sequence[WorkerCall], tag: str) -> str:
        """The output file (pattern) of one submission under ``<directory>/logs``.

        PBS knows no job-id pattern in ``-o`` (the id is not known before submission), so the
        name holds a digest of the array's tag (unique: it names the batch's random instance
        prefix); an array's elements differ by ``^array_index^``.
        """
        suffix = ".^array_index^" if self.is_array(calls) else ""
        return str(self.private_directory("logs") / f"{self.job_name(launcher, calls)}-{tag_digest(tag)}{suffix}.log")

    def log_paths(self, launcher: LauncherInfo, calls: Sequence[WorkerCall], tag: str) -> tuple[str, str | None]:
        """``(-o, -e)``; ``-e`` ``None`` means "into the output file" (``-j oe``)."""
        output = self.options.log_output or self.default_log_output(launcher, calls, tag)
        for path in (output, self.options.log_error):
            _make_parent(path)
        return output, self.options.log_error

    def directives(self, launcher: LauncherInfo, calls: Sequence[WorkerCall], tag: str) -> list[str]:
        """``#PBS`` lines: name, shell, array, logs, then the options' queue, account and resources.

        The tag is not here but on qsub's command line (``-v``), with the token's variable:
        ``-v`` given twice, the command line's would replace the directive's.
        """
        output, error = self.log_paths(launcher, calls, tag)
        lines = [f"#PBS -N {self.job_name(launcher, calls)}", "#PBS -S /bin/bash"]
        if self.is_array(calls):
            first = self.array_first_index
            lines.append(f"#PBS {self.array_flag} {first}-{first + len(calls) - 1}")
        lines.append(f"#PBS -o {_directive_value(output)}")
        lines.append(f"#PBS -e {_directive_value(error)}" if error is not None else "#PBS -j oe")
        lines += self.keep_directives()
        return lines + self.options.directives()

    def keep_directives(self) -> list[str]:
        """PBS Pro's direct_write (``-k oed``): the output is written in place while the job runs."""
        return ["#PBS -k oed"] if self.options.direct_write else []

    def render_script(self, launcher: LauncherInfo, calls: Sequence[WorkerCall], tag: str) -> str:
        """The job script; a plain job (one worker) sets the index variable PBS leaves unset."""
        env: dict[str, str] = {}
        if not self.is_array(calls) and jobtag.is_array_run(calls):
            env[self.array_index_variable] = str(self.array_first_index)
        return self.worker_script(launcher, calls, tag, env=env)

    # -- submit --------------------------------------------------------------------------

    def submit_command(self, script: Path, calls: Sequence[WorkerCall], tag: str) -> list[str]:
        """``qsub [-V] -v [PYCREW_TOKEN,]PYCREW_JOBTAG=<tag> [submit_args] script``.

        With ``export_environment`` the job gets qsub's environment (``-V``), the secret
        included; without, only the secret's variable is named (``-v PYCREW_TOKEN``: qsub
        takes its value from its own environment, so it never appears on a command line).
        """
        variables = [] if self.options.export_environment else list(self.token_variables(calls))
        variables.append(f"{TAG_VARIABLE}={encode_tag(tag)}")
        export = ["-V"] if self.options.export_environment else []
        return [self.command("qsub"), *export, "-v", ",".join(variables), *self.options.submit_args, str(script)]

    def parse_submit(self, stdout: str) -> str:
        """The job id qsub printed: ``123.server`` (a job) or ``123[].server`` (an array).

        Raises:
            SchedulerError: no line of the output is a job id.
        """
        lines = [line.strip() for line in stdout.splitlines() if line.strip()]
        for line in reversed(lines):
            if _JOB_ID.fullmatch(line):
                return line
        raise SchedulerError(f"qsub printed no job id: stdout {stdout.strip()!r}", ["qsub"], 0, "")

    def submit_array(self, launcher: LauncherInfo, calls: Sequence[WorkerCall]) -> str:
        """Submit one array (see the base class) and remember its output file per element."""
        job_id = super().submit_array(launcher, calls)
        pattern, _ = self.log_paths(launcher, calls, jobtag.encode(calls))
        with self._lock:
            for index, handle in enumerate(self.element_handles(job_id, len(calls)), self.array_first_index):
                self._log_paths[handle] = self.element_log(pattern, index, self.is_array(calls))
            for old in list(self._log_paths)[: max(0, len(self._log_paths) - LOG_PATHS_MAX)]:
                del self._log_paths[old]  # the oldest launches: the listing still knows their files
        return job_id

    def element_log(self, pattern: str, index: int, array: bool) -> str:
        """The output file of element ``index`` of an array given ``-o pattern``."""
        return output_path(pattern, index if array else None)

    def element_handle(self, job_id: str, index: int) -> str:
        """``123[4].server`` for element 4 of array ``123[].server``; a plain job's id as it is."""
        if "[]" in job_id:
            return job_id.replace("[]", f"[{index}]", 1)
        return job_id

    def site_array_max(self) -> int:
        """The server's ``max_array_size`` (``qstat -B -f -F json``); 10000, PBS's default, if unset."""
        out = self.server_attributes()
        return self.array_limit(out, "max_array_size")

    def server_attributes(self) -> str:
        """``qstat -B -f`` output ('' if the server cannot be asked: the default limit applies)."""
        argv = [self.command("qstat"), "-B", "-f", *self.server_format()]
        try:
            return self.check(argv, what="qstat -B (the server's array limit)")
        except SchedulerError as exc:
            if exc.transient or exc.returncode is None:
                raise
            # Deliberate: a server that refuses -B still runs arrays; the default limit is safe.
            log.warning("%s: %s; assuming an array limit of %d", self.launcher_name, exc, DEFAULT_ARRAY_MAX)
            return ""

    def server_format(self) -> list[str]:
        """Extra ``qstat`` arguments for machine-readable server output."""
        return ["-F", "json"]

    def array_limit(self, out: str, attribute: str) -> int:
        """The array limit ``attribute`` in ``qstat -B -f`` output, else :data:`DEFAULT_ARRAY_MAX`."""
        return server_array_limit(out, attribute) or DEFAULT_ARRAY_MAX
