"""PBS's syntax for :class:`pycrew.scheduler.SchedulerCLI`: qsub, qstat, qdel.

:class:`PbsCLI` speaks PBS Professional / OpenPBS; :class:`~pycrew_pbs.torque.TorqueCLI`
the TORQUE dialect (``-t`` arrays, ``PBS_ARRAYID``, ``qstat -f`` text, state ``C``). Sources,
all public:

- OpenPBS man pages qsub(1B) (``-J X-Y``, ``-v``/``-V``, ``-k d`` direct_write, job ids
  ``123.server`` and ``123[].server``), qstat(1B) (``-f -F json``, ``-x``, ``-t``, the job
  states B E F H M Q R S T U W X), qdel(1B) (subjob ids ``123[4].server``; "qdel: <text>
  <job id>" on stderr, exit status > 0) and pbs_job_attributes(7B) (``array_index``,
  ``array_id``, ``Exit_status``, ``exec_host``, ``Output_Path``, ``Variable_List``);
- ``qstat -f -F json`` outputs of OpenPBS 20.0 published in public repositories (the shape
  of ``Jobs``, ``Variable_List`` and ``Resource_List`` as JSON objects, the time format);
- the PBS error texts (``Unknown Job Id``, ``Job has finished``, ``Request invalid for
  state of job``, ``cannot connect to server``, ``End of File``, ``Premature End of File``);
- TORQUE's qsub(1B) and "Job arrays" guide (``-t 1-n``, ``PBS_ARRAYID``, ``qstat -t``) and
  its ``qstat -f`` text format (``Job Id:`` blocks, ``    name = value`` lines, values wrapped
  onto tab-indented continuation lines).

The job's tag (:mod:`pycrew.scheduler.jobtag`) travels as the environment variable
``PYCREW_JOBTAG`` (``qsub -v``), which PBS stores in the job's ``Variable_List`` and
``qstat -f`` shows back; PBS has no free-text comment a user can set at submission (the job
``comment`` belongs to the scheduler). The value is percent-encoded once more so that it
holds no comma and no equals sign: ``-v`` splits its list at commas, and PBS's list parser
(``parse_equal_string()`` in OpenPBS's Libcmds) takes an ``=`` inside an unquoted value for
the start of the next ``name=value`` and rejects the list.

:class:`PbsCLI` is put together from its job script and qsub (:mod:`pycrew_pbs.submission`,
the tag's variable in :mod:`pycrew_pbs.tag_variable`) and, here, qdel and the listing.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import pwd
import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from pycrew.scheduler import JobRecord, SchedulerError
from pycrew_pbs.exits import ended, no_exit_status
from pycrew_pbs.options import PbsOptions
from pycrew_pbs.qstat import FINISHED, STATES, lookup, never_starts, parse_variable_list, pbs_time, to_int
from pycrew_pbs.submission import DEFAULT_ARRAY_MAX, LOG_PATHS_MAX, PbsSubmission, tag_digest
from pycrew_pbs.tag_variable import TAG_VARIABLE, decode_tag, encode_tag

__all__ = [
    "DEFAULT_ARRAY_MAX",
    "GONE",
    "LOG_PATHS_MAX",
    "TAG_VARIABLE",
    "TRANSIENT_ERRORS",
    "PbsCLI",
    "decode_tag",
    "encode_tag",
    "tag_digest",
]

log = logging.getLogger(__name__)

#: A handle (what qdel accepts from pycrew): a job, an array or an array element, each
#: optionally with its server: ``123.srv``, ``123[].srv``, ``123[4].srv``.
_HANDLE = re.compile(r"^(\d+)(?:\[(\d*)\])?((?:\.[A-Za-z0-9_-]+)*)$")
#: qdel's messages that only say the job is gone (finished, deleted, or never known).
GONE = (
    "unknown job id",
    "job has finished",
    "request invalid for state of job",
    "invalid state for job",
    "request invalid for finished array subjob",
)
#: Failure texts of PBS's commands that a retry may cure: the server is restarting, busy or
#: unreachable (the PBS error table and the commands' connection messages).
TRANSIENT_ERRORS = (
    "cannot connect to server",
    "cannot connect to host",
    "pbs_iff: cannot",
    "end of file",
    "no free connections",
    "error reading data from socket",
    "socket close detected",
    "server shutting down",
    "communication failure",
    "time out",
)


def _user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # no passwd entry (some containers): PBS then shows the numeric uid
        return str(os.getuid())


class PbsCLI(PbsSubmission):
    """Workers as PBS Pro / OpenPBS job arrays: ``qsub -J``, ``qdel``, ``qstat -f -F json -x -t``.

    A batch of one worker goes out as a plain job (PBS Pro refuses ``-J 1-1``: an array needs
    two subjobs at least); its script sets the index variable itself. Handles are the ids
    PBS gives: ``123[4].server`` for an array element, ``123.server`` for a plain job.

    Args:
        launcher_name: the registered launcher name (``"pbs"``).
        options: the :class:`~pycrew_pbs.PbsOptions`.
    """

    directive_prefix: ClassVar[str] = "#PBS"
    array_index_variable: ClassVar[str] = "PBS_ARRAY_INDEX"
    array_flag: ClassVar[str] = "-J"
    transient_errors: ClassVar[tuple[str, ...]] = TRANSIENT_ERRORS
    #: The longest tag (before :func:`encode_tag`); a guess: PBS documents no limit for
    #: ``Variable_List`` values, pycrew keeps SLURM's 1,000 characters.
    tag_max: ClassVar[int] = 1000
    default_directory: ClassVar[str] = "~/.pycrew/pbs"
    #: ``qstat -x`` lists ended jobs (with the server's job history): a job missing from the
    #: listing is confirmed gone by :meth:`query_command` before it reads as ended.
    listing_keeps_ended: ClassVar[bool] = True

    options: PbsOptions

    def __init__(self, launcher_name: str, options: PbsOptions) -> None:
        super().__init__(launcher_name, options)
        #: Only this user's jobs are listed (``Job_Owner`` is ``user@host``).
        self.user = _user()
        #: The output file (pattern) each launched handle was given, for :meth:`log_path`.
        self._log_paths: dict[str, str] = {}

    @staticmethod
    def for_options(launcher_name: str, options: PbsOptions) -> PbsCLI:
        """The CLI of the options' flavour: :class:`PbsCLI` or :class:`~pycrew_pbs.torque.TorqueCLI`."""
        if options.flavour == "torque":
            from pycrew_pbs.torque import TorqueCLI  # the subclass imports this module

            return TorqueCLI(launcher_name, options)
        return PbsCLI(launcher_name, options)

    # -- cancel --------------------------------------------------------------------------

    def cancel_command(self, handles: Sequence[Any]) -> list[str]:
        """``qdel 123[4].server 124.server ...``: one argument per job or element, checked first.

        Raises:
            ValueError: a handle is not a PBS job, array or element id (so that nothing can
                reach qdel as an option).
        """
        bad = [h for h in handles if not isinstance(h, str) or not _HANDLE.fullmatch(h)]
        if bad:
            raise ValueError(f"pbs handles must look like '123[4].server' or '123.server', got {bad!r}")
        return [self.command("qdel"), *dict.fromkeys(handles)]

    def is_gone(self, message: str) -> bool:
        """qdel's complaint is only that the job has finished or was never known."""
        low = message.lower()
        return any(text in low for text in GONE)

    # -- list ----------------------------------------------------------------------------

    def departed_hint(self, record: JobRecord) -> str:
        """An element the server dropped at its end: no job history (``job_history_enable``)."""
        return f"the server keeps ended jobs only with job_history_enable; tracejob {record.id} on the server host has its exit status"

    def list_command(self) -> list[str]:
        """``qstat -f -F json -x -t``: every job, array element and finished job (history)."""
        return [self.command("qstat"), "-f", "-F", "json", "-x", "-t"]

    def query_command(self, records: Sequence[JobRecord]) -> list[str]:
        """``qstat -f -F json -x -t <ids>``: the jobs missing from a listing, one by one (``Unknown Job Id`` if gone)."""
        return [*self.list_command(), *(self.element_handle(r.array_id, r.index) for r in records)]

    def parse_jobs(self, stdout: str) -> dict[str, dict[str, Any]]:
        """The listing as ``{job id: attributes}``.

        Raises:
            SchedulerError: the output is not qstat's JSON.
        """
        if not stdout.strip():
            return {}
        try:
            data = json.loads(stdout)
        except ValueError as exc:
            raise SchedulerError(f"qstat -F json printed no JSON ({exc}): {stdout[:200]!r}", self.list_command()) from exc
        jobs = data.get("Jobs", {}) if isinstance(data, Mapping) else {}
        return {str(k): dict(v) for k, v in jobs.items() if isinstance(v, Mapping)} if isinstance(jobs, Mapping) else {}

    def parse_listing(self, stdout: str) -> list[JobRecord]:
        """This user's jobs and array elements, each with its tag, state and exit status.

        Array parents (``123[].server``) are left out; an element lacking the name, the
        variables or the output path takes its parent's.
        """
        jobs = self.parse_jobs(stdout)
        records: list[JobRecord] = []
        for job_id, attrs in jobs.items():
            match = _HANDLE.fullmatch(job_id)
            if match is None or match.group(2) == "":
                continue  # an array parent, or not a job id
            parent = jobs.get(f"{match.group(1)}[]{match.group(3)}", {}) if match.group(2) else {}
            record = self.record(job_id, match, attrs, parent)
            if record is not None:
                records.append(record)
        return records

    def record(self, job_id: str, match: re.Match[str], attrs: Mapping[str, Any], parent: Mapping[str, Any]) -> JobRecord | None:
        """One job or element as a :class:`JobRecord`; ``None`` if it is another user's."""
        owner = str(attrs.get("Job_Owner") or parent.get("Job_Owner") or "")
        if owner and owner.split("@")[0] != self.user:
            return None
        seq, element, server = match.groups()
        if element:
            index = to_int(attrs.get("array_index", attrs.get("job_array_id"))) or int(element)
            array_id = f"{seq}[]{server}"
        else:
            index, array_id = self.array_first_index, job_id
        variables = parse_variable_list(attrs.get("Variable_List") or parent.get("Variable_List"))
        state = str(attrs.get("job_state", ""))
        exit_status = to_int(lookup(attrs, "Exit_status"))
        host = str(attrs.get("exec_host") or "").split("+")[0].split("/")[0] or None
        out = attrs.get("Output_Path") or parent.get("Output_Path")
        comment = str(attrs.get("comment") or "")
        if not comment and STATES.get(state) == "pending":  # a queued subjob: the scheduler comments on its array
            comment = str(parent.get("comment") or "")
        hopeless = never_starts(state, comment)
        status, reason = ended(attrs, exit_status, comment) if state in FINISHED else (STATES.get(state, "unknown"), comment)
        record = JobRecord(
            id=job_id,
            array_id=array_id,
            index=index,
            name=str(attrs.get("Job_Name") or parent.get("Job_Name") or ""),
            tag=decode_tag(variables.get(TAG_VARIABLE, "")),
            state=state,
            reason=hopeless or reason,
            host=host,
            submitted=pbs_time(attrs.get("qtime") or attrs.get("ctime")),
            log=self.element_log(str(out), index, bool(element)) if out else None,
            status="failed" if hopeless else status,
            exit_code=exit_status if state in FINISHED else None,
            queued=bool(hopeless),
        )
        if state in FINISHED and exit_status is None and not self.departures.was_cancelled(record):
            return dataclasses.replace(record, status="failed", reason=no_exit_status(record.id, comment))
        return record

    def log_path(self, handle: str) -> str | None:
        """Where element ``handle`` writes its output: from the listing, else from its launch here.

        Raises:
            SchedulerError: qstat failed and this process did not launch ``handle``.
        """
        try:
            for record in self.listing():
                if record.id == handle and record.log:
                    return record.log
        except SchedulerError as exc:
            with self._lock:
                known = self._log_paths.get(handle)
            if known is None:
                raise
            log.info("%s: %s; the output file of %s is known from its launch", self.launcher_name, exc, handle)
            return known
        with self._lock:
            return self._log_paths.get(handle)
