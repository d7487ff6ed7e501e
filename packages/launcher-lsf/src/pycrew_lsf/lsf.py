"""LSF's syntax for :class:`pycrew.scheduler.SchedulerCLI`: bsub, bkill, bjobs, bparams.

Builders and parsers follow IBM Spectrum LSF 10.1's command reference (``bsub -J``, ``-Jd``,
``-env``, ``-o``/``-e`` with ``%J``/``%I``, ``-R``, ``-M``, ``-W``; ``bjobs -o -json -a -u``;
``bkill "123[1,3-5]"``; ``bparams -a``; the ``lsf.conf`` parameters ``LSF_UNIT_FOR_LIMITS``,
``LSB_MBD_BUSY_MSG``, ``LSB_MBD_CONNECT_FAIL_MSG``, ``LSB_MBD_DOWN_MSG``,
``LSB_API_VERBOSE``). The parsers themselves are in :mod:`pycrew_lsf.parsing`.
"""

from __future__ import annotations

import logging
import os
import pwd
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from pycrew import LauncherInfo, WorkerCall
from pycrew.scheduler import JobRecord, SchedulerCLI, SchedulerError, jobtag
from pycrew_lsf import parsing
from pycrew_lsf.options import DEFAULT_MEMORY_UNIT, MEMORY_UNITS, LsfOptions

log = logging.getLogger(__name__)

#: An element handle ``123[4]``, or a whole job ``123``.
_HANDLE = re.compile(r"^(\d+)(?:\[(\d+)\])?$")
#: bkill's lines that say a job is gone or going: nothing left to do for it.
_GONE = ("job has already finished", "no matching job found", "is not found", "is being terminated", "is being signaled")
#: Where LSF's configuration lives when LSF_ENVDIR is not set.
DEFAULT_LSF_CONF = "/etc/lsf.conf"


def user_name() -> str:
    """This user's name, as LSF knows it (``bjobs -u``)."""
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # no passwd entry (some containers): fall back to the login name
        return os.environ.get("USER") or str(os.getuid())


def index_list(indices: Sequence[int]) -> str:
    """Array indices as LSF's index list: ``[1, 2, 3, 5]`` -> ``"1-3,5"``."""
    return jobtag.slots_text(sorted(set(indices)))


def memory_unit_of_site(environ: dict[str, str] | None = None) -> str:
    """``LSF_UNIT_FOR_LIMITS`` from ``$LSF_ENVDIR/lsf.conf`` (or ``/etc/lsf.conf``); LSF's default ``KB`` if unset."""
    env = os.environ if environ is None else environ
    directory = env.get("LSF_ENVDIR")
    path = Path(directory) / "lsf.conf" if directory else Path(DEFAULT_LSF_CONF)
    try:
        text = path.read_text(errors="replace")
    except OSError as exc:  # deliberate: no readable lsf.conf means LSF's default unit
        log.info("lsf: %s not readable (%s); memory numbers are written in LSF's default unit, %s", path, exc, DEFAULT_MEMORY_UNIT)
        return DEFAULT_MEMORY_UNIT
    unit = parsing.parse_unit_for_limits(text)
    return unit if unit is not None and unit in MEMORY_UNITS else DEFAULT_MEMORY_UNIT


class LsfCLI(SchedulerCLI):
    """Workers as LSF job arrays: ``bsub < script``, ``bkill``, ``bjobs -o ... -json``.

    The job script reaches ``bsub`` on its standard input, LSF's documented way to have
    ``#BSUB`` lines read (a script given as an argument is only parsed where the site sets
    ``LSB_BSUB_PARSE_SCRIPT=Y``), and LSF spools it: no shared file system is needed for it.

    Args:
        launcher_name: the registered launcher name (``"lsf"``).
        options: the :class:`~pycrew_lsf.LsfOptions`.
    """

    directive_prefix: ClassVar[str] = "#BSUB"
    array_index_variable: ClassVar[str] = "LSB_JOBINDEX"
    #: bsub -Jd takes up to 4094 characters; some room is left for quoting.
    tag_max: ClassVar[int] = 4000
    default_directory: ClassVar[str] = "~/.pycrew/lsf"
    #: LSF's messages while its daemons are busy or unreachable (lsf.conf LSB_MBD_BUSY_MSG,
    #: LSB_MBD_CONNECT_FAIL_MSG, LSB_MBD_DOWN_MSG, LSB_API_VERBOSE, LSB_MBD_QUERY_RETRY_MSG
    #: defaults; lsberrno texts of LSB_BSUB_ERR_RETRY's MSG_SYS, BAD_XDR and INTERNAL).
    transient_errors: ClassVar[tuple[str, ...]] = (
        "lsf is processing your request",
        "cannot connect to lsf",
        "lsf is down",
        "not responding",  # "batch system daemon not responding ... still trying", "LSF daemon (LIM) not responding"
        "concurrent job query limit exceeded",
        "failed in an lsf library call",
        "lim is down",
        "communication time out",
        "failed in sending/receiving a message",
        "xdr",
        "internal library error",
        "please wait",
    )

    #: bsub's refusals of the request itself (IBM's messages, and those equinor/ert's
    #: production LSF driver never retries): not transient even after LSF's busy lines.
    permanent_errors: ClassVar[tuple[str, ...]] = (
        "no such queue",
        "error in rusage section",
        "expected number, string",
        "too many processors requested",
        "cannot be used in the resource requirement section",
        "duplicate section",
        "bad resource requirement syntax",
        "bad argument for option",
        "illegal option",
        "user permission denied",
        "not a user in the project",
    )

    #: ``bjobs -a`` lists ended jobs for ``CLEAN_PERIOD`` (an hour by default): a job missing
    #: from the listing is confirmed gone by :meth:`query_command` before it reads as ended.
    listing_keeps_ended: ClassVar[bool] = True

    options: LsfOptions

    def __init__(self, launcher_name: str, options: LsfOptions) -> None:
        super().__init__(launcher_name, options)
        self._unit: str | None = options.memory_unit.upper() if options.memory_unit else None

    def is_transient(self, returncode: int | None, output: str) -> bool:
        """Whether a failure may pass: LSF's busy/unreachable messages, unless LSF also refused the request.

        bsub prints ``LSF is processing your request. Please wait ...`` while it waits for a
        busy mbatchd, and then mbatchd's answer, which may be a refusal (``No such queue``):
        that one is final.
        """
        low = output.lower()
        if any(text in low for text in self.permanent_errors):
            return False
        return super().is_transient(returncode, output)

    # -- script --------------------------------------------------------------------------

    def memory_unit(self) -> str:
        """The unit memory numbers are written in: ``memory_unit``, else the site's (asked once)."""
        if self._unit is None:
            self._unit = memory_unit_of_site()
        return self._unit

    def resolved_options(self) -> LsfOptions:
        """The options with ``memory_unit`` known (only needed when ``memory`` is set)."""
        if self.options.memory is None or self.options.memory_unit is not None:
            return self.options
        return self.options.replace(memory_unit=self.memory_unit())

    def log_paths(self) -> tuple[str, str | None]:
        """``(-o, -e)``; ``-e`` ``None`` means "into the output file" (LSF's rule without ``-e``)."""
        output = self.options.log_output
        if output is None:
            output = str(self.private_directory("logs") / "%J_%I.log")
        for path in (output, self.options.log_error):
            _make_parent(path)
        return output, self.options.log_error

    def array_spec(self, launcher: LauncherInfo, calls: Sequence[WorkerCall]) -> str:
        """``pycrew-<name>[1-n]``: the job name with the array's index list."""
        first = self.array_first_index
        indices = f"{first}" if len(calls) == 1 else f"{first}-{first + len(calls) - 1}"
        return f"{self.job_name(launcher, calls)}[{indices}]"

    def directives(self, launcher: LauncherInfo, calls: Sequence[WorkerCall], tag: str) -> list[str]:
        """``#BSUB`` lines: name and array, the tag (``-Jd``), logs, then the options' resources."""
        output, error = self.log_paths()
        lines = [
            f'#BSUB -J "{self.array_spec(launcher, calls)}"',
            f'#BSUB -Jd "{tag}"',
            f'#BSUB -o "{output}"',
        ]
        if error is not None:
            lines.append(f'#BSUB -e "{error}"')
        return lines + self.resolved_options().directives()

    # -- submit --------------------------------------------------------------------------

    def submit_command(self, script: Path, calls: Sequence[WorkerCall], tag: str) -> list[str]:
        """``bsub [-env PYCREW_TOKEN] [submit_args]``; the script goes in on stdin.

        With ``export_environment`` (the default) the job gets the submitting environment,
        LSF's default (``-env "all"``), the secret included; without, only the secret's
        variable crosses over (``-env "PYCREW_TOKEN"``).
        """
        env = [] if self.options.export_environment else ["-env", ", ".join(self.token_variables(calls))]
        return [self.command("bsub"), *env, *self.options.submit_args]

    def submit_input(self, script: Path) -> str | None:
        """The job script's text: ``bsub < script``."""
        return script.read_text()

    def parse_submit(self, stdout: str) -> str:
        """The job id in ``Job <123> is submitted to queue <normal>.``."""
        return parsing.parse_submit(stdout)

    def element_handle(self, job_id: str, index: int) -> str:
        """``<job id>[<index>]``, as bkill and bjobs write array elements."""
        return f"{job_id}[{index}]"

    def site_array_max(self) -> int:
        """``MAX_JOB_ARRAY_SIZE`` from ``bparams -a`` (LSF's default, 1000, if not shown)."""
        try:
            out = self.check([self.command("bparams"), "-a"], what="bparams -a")
        except SchedulerError as exc:  # deliberate: the limit is an optimisation; LSF's default is safe
            log.info("lsf: could not read MAX_JOB_ARRAY_SIZE (%s); assuming LSF's default, 1000", exc)
            return 1000
        found = parsing.parse_array_max(out)
        return found if found is not None else 1000

    # -- cancel --------------------------------------------------------------------------

    def cancel_command(self, handles: Sequence[Any]) -> list[str]:
        """``bkill 12 "13[1-3,5]" ...``: one argument per job; handles are checked first.

        Raises:
            ValueError: a handle is not ``<job id>`` or ``<job id>[<index>]`` (so that
                nothing can reach bkill as an option, e.g. ``-u all``).
        """
        bad = [h for h in handles if not isinstance(h, str) or not _HANDLE.fullmatch(h)]
        if bad:
            raise ValueError(f"lsf handles must look like '123[4]' (job id [array index]), got {bad!r}")
        whole: set[str] = set()
        elements: dict[str, set[int]] = {}
        for handle in handles:
            match = _HANDLE.fullmatch(handle)
            assert match is not None  # checked above
            if match.group(2) is None:
                whole.add(match.group(1))
            else:
                elements.setdefault(match.group(1), set()).add(int(match.group(2)))
        args = sorted(whole, key=int)
        args += [f"{job}[{index_list(sorted(elements[job]))}]" for job in sorted(elements, key=int) if job not in whole]
        return [self.command("bkill"), *args]

    def is_gone(self, message: str) -> bool:
        """bkill's line says the job is gone (finished, unknown) or going (being terminated)."""
        low = message.lower()
        return any(text in low for text in _GONE)

    # -- list ----------------------------------------------------------------------------

    def departed_hint(self, record: JobRecord) -> str:
        """An element mbatchd dropped before this process listed it ended (``CLEAN_PERIOD``)."""
        return f"mbatchd keeps finished jobs for CLEAN_PERIOD seconds; bhist -l '{record.id}' has its exit status"

    def list_command(self) -> list[str]:
        """``bjobs -o "<fields>" -json -a -u <user>``: this user's jobs, finished ones included."""
        return [self.command("bjobs"), "-o", " ".join(parsing.BJOBS_FIELDS), "-json", "-a", "-u", user_name()]

    def query_command(self, records: Sequence[JobRecord]) -> list[str]:
        """``bjobs -o "<fields>" -json -a <ids>``: the jobs missing from a listing, one by one ("is not found" if gone)."""
        ids = [self.element_handle(r.array_id, r.index) for r in records]
        return [self.command("bjobs"), "-o", " ".join(parsing.BJOBS_FIELDS), "-json", "-a", *ids]

    def parse_listing(self, stdout: str) -> list[JobRecord]:
        """The array elements in bjobs's JSON (see :func:`pycrew_lsf.parsing.parse_bjobs_json`)."""
        return parsing.parse_bjobs_json(stdout)

    def list_jobs(self) -> list[JobRecord]:
        """One bjobs call; "No job found" (which some LSF versions exit non-zero with) is an empty list."""
        try:
            return super().list_jobs()
        except SchedulerError as exc:
            if exc.transient or not parsing.is_no_jobs(f"{exc.stderr}\n{exc}"):
                raise
            return []


def _make_parent(path: str | None) -> None:
    """Create a log file's directory if it has no pattern in it. Best effort: it may exist
    only on the compute nodes."""
    if not path or path == "/dev/null":
        return
    parent = Path(os.path.expanduser(path)).parent
    if "%" in str(parent) or parent.exists():
        return
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # deliberate: the nodes may see a path this host cannot create
        log.debug("lsf: could not create the log directory %s here: %s", parent, exc)
