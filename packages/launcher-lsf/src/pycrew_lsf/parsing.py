"""Pure parsers of LSF's command output: bsub's reply, bjobs ``-o ... -json``, bparams, lsf.conf.

What they expect, from IBM Spectrum LSF 10.1's command reference and from real outputs that
LSF users' projects keep as test data:

- ``bsub``: ``Job <123> is submitted to queue <normal>.`` (``... to default queue <normal>.``
  when no ``-q``), possibly after ``LSF is processing your request. Please wait ...`` lines.
- ``bjobs -o "<fields>" -json``: ``{"COMMAND":"bjobs","JOBS":n,"RECORDS":[{...}]}``, one
  record per array element, upper-case field names as keys, every value a string, ``""``
  for empty (``"-"`` is accepted too), ``/`` escaped as ``\\/``; a job bjobs cannot show
  is ``{"JOBID":"123","ERROR":"Job <123> is not found"}``. ``JOBID`` is the array's id
  (``123``), or ``123[4]`` on sites with ``LSB_BJOBS_DISPLAY_ENH=Y``; ``JOBINDEX`` is the
  element's index (``0`` for a job that is no array element); ``JOB_NAME`` of an element
  is ``name[4]``; ``EXEC_HOST`` lists a host per slot (``hostA:hostA``, or ``2*hostA``);
  times look like ``Dec 28 19:56`` (``Feb 21 00:02 2019`` with ``LSB_DISPLAY_YEAR=Y``),
  possibly followed by a one-letter flag (``L``, ``E``).
- With no job to show, bjobs prints ``No job found`` (or ``No unfinished job found``,
  ``No matching job found``) instead of JSON.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from typing import Any

from pycrew.scheduler import JobRecord, SchedulerError, join_reasons, killed_by, normalise

#: bjobs ``-o`` fields the monitor asks for (their JSON keys are these, upper-cased).
BJOBS_FIELDS = (
    "jobid", "jobindex", "stat", "job_name", "job_description", "exec_host", "submit_time",
    "exit_code", "exit_reason", "pend_reason", "output_file",
)
#: LSF job states (bjobs STAT), normalised. PSUSP (suspended while pending) has not
#: started; USUSP and SSUSP (suspended while running) have; UNKWN means mbatchd lost
#: contact with the host (the job may still run); ZOMBI is a job killed while its host
#: was unreachable.
STATES = {
    "PEND": "pending",
    "PROV": "pending",
    "WAIT": "pending",
    "PSUSP": "pending",
    "RUN": "running",
    "USUSP": "running",
    "SSUSP": "running",
    "DONE": "done",
    "PDONE": "done",
    "EXIT": "failed",
    "PERR": "failed",
    "ZOMBI": "cancelled",
    "UNKWN": "unknown",
}
#: Termination reasons (EXIT_REASON, bacct's keywords) that mean someone killed the job.
KILLED_REASONS = ("TERM_OWNER", "TERM_FORCE_OWNER", "TERM_ADMIN", "TERM_FORCE_ADMIN", "TERM_REQUEUE_OWNER", "TERM_REQUEUE_ADMIN")
#: Pending reasons (bjobs PEND_REASON, LSF's ``lsb_pendreason`` texts) that never pass by
#: themselves, with what they mean: the job stays PEND for ever. Reasons that pass (job
#: slot limits, a dependency not satisfied *yet*, a closed queue or host) are not here.
NEVER_STARTS = {
    "dependency condition invalid or never satisfied": "its dependency can never be satisfied",
}
#: LSF reports a job killed by signal N with exit code 128 + N.
SIGNAL_BASE = 128
#: What bjobs prints instead of JSON when it has no job to show.
NO_JOBS = ("no job found", "no unfinished job found", "no matching job found")

_SUBMITTED = re.compile(r"Job <(\d+)> is submitted to (?:default )?queue(?: <([^>]*)>)?")
_JOBID = re.compile(r"^(\d+)(?:\[(\d+)\])?$")
_TIME = re.compile(
    r"^([A-Z][a-z]{2})\s+(\d{1,2})\s+(\d{1,2}):(\d{2})(?::(\d{2}))?(?:\s+(\d{4}))?(?:\s+[A-Z])?$"
)
_MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1)}


def parse_submit(stdout: str) -> str:
    """The job id in bsub's reply: ``Job <123> is submitted to queue <normal>.`` -> ``"123"``.

    Raises:
        SchedulerError: the output holds no such line.
    """
    match = _SUBMITTED.search(stdout)
    if match is None:
        raise SchedulerError(
            f"bsub printed no 'Job <id> is submitted to queue <name>.' line: stdout {stdout.strip()!r}", ["bsub"], 0, ""
        )
    return match.group(1)


def is_no_jobs(text: str) -> bool:
    """Whether bjobs's output says only that there is no job to show."""
    low = text.lower()
    return any(phrase in low for phrase in NO_JOBS)


def _text(record: dict[str, Any], key: str) -> str:
    value = record.get(key)
    text = "" if value is None else str(value).strip()
    return "" if text == "-" else text


def expand_log_path(pattern: str, job_id: str, index: int) -> str:
    """Expand bsub's file-name patterns: ``%J`` the job id, ``%I`` the array index."""
    return pattern.replace("%J", job_id).replace("%I", str(index))


def parse_time(text: str, now: float | None = None) -> float | None:
    """bjobs's ``Dec 28 19:56`` (local time; year optional) as epoch seconds; ``None`` if not a time.

    Without a year, the year is this one, unless that lies more than a day ahead (then the
    time is from last year: a job submitted in December, listed in January).
    """
    match = _TIME.fullmatch(text.strip())
    if match is None:
        return None
    month_name, day, hour, minute, second, year = match.groups()
    month = _MONTHS.get(month_name)
    if month is None:
        return None
    current = now if now is not None else time.time()
    this_year = datetime.fromtimestamp(current).year
    try:
        stamp = datetime(int(year) if year else this_year, month, int(day), int(hour), int(minute), int(second or 0))
        if not year and stamp.timestamp() > current + 86400:
            stamp = stamp.replace(year=this_year - 1)
    except ValueError:  # e.g. Feb 29 in a year without one
        return None
    return stamp.timestamp()


def first_host(exec_host: str) -> str | None:
    """The first execution host: ``hostA:hostB`` -> ``hostA``, ``4*hostA`` -> ``hostA``."""
    first = exec_host.split(":")[0].strip()
    if "*" in first:
        first = first.split("*", 1)[1]
    return first or None


def job_status(stat: str, exit_reason: str) -> str:
    """A record's normalised status: STATES, with an EXIT that someone killed as ``cancelled``."""
    status = normalise(stat, STATES)
    if status == "failed" and any(reason in exit_reason.upper() for reason in KILLED_REASONS):
        return "cancelled"
    return status


def ended_reason(exit_reason: str, exit_code: int | None) -> str:
    """Why an element ended: LSF's termination reason (``TERM_RUNLIMIT: ...``), and the signal
    that killed it, which LSF reports as exit code 128 + N (IBM's "LSF job exit codes").

    >>> ended_reason("TERM_OWNER: job killed by owner", 143)
    'TERM_OWNER: job killed by owner; killed by signal 15 (SIGTERM)'
    >>> ended_reason("", 3)
    ''
    """
    signalled = exit_code is not None and SIGNAL_BASE < exit_code <= SIGNAL_BASE + 64
    return join_reasons(exit_reason, killed_by(exit_code - SIGNAL_BASE) if signalled and exit_code is not None else "")


def never_starts(stat: str, pend_reason: str) -> str | None:
    """Why a job in ``stat`` pending for ``pend_reason`` (bjobs's fields) will not start as submitted, else ``None``.

    >>> never_starts("PEND", "Dependency condition invalid or never satisfied;")[:50]
    'pending for good: LSF says "Dependency condition i'
    >>> never_starts("PEND", "Job dependency condition not satisfied;") is None
    True
    """
    if normalise(stat, STATES) != "pending":
        return None
    low = pend_reason.lower()
    for reason, why in NEVER_STARTS.items():
        if reason in low:
            said = pend_reason.strip().rstrip(";").strip()
            return f'pending for good: LSF says "{said}" ({why}); fix the job\'s options (submit_args, resources, queue)'
    return None


def parse_bjobs_json(stdout: str, now: float | None = None) -> list[JobRecord]:
    """The array elements in ``bjobs -o "<BJOBS_FIELDS>" -json`` output.

    Jobs that are no array element (``JOBINDEX`` 0) and ``ERROR`` records are left out: pycrew
    only submits arrays. Output that says there is no job gives ``[]``.

    Raises:
        SchedulerError: the output is neither JSON of that shape nor a "no job" message.
    """
    text = stdout.strip()
    if not text or (not text.startswith("{") and is_no_jobs(text)):
        return []
    try:
        data = json.loads(text)
        records = data["RECORDS"]
        if not isinstance(records, list):
            raise TypeError(f"RECORDS is a {type(records).__name__}, not a list")
    except (ValueError, KeyError, TypeError) as exc:
        raise SchedulerError(f"bjobs -json printed something else than its JSON: {exc}: {text[:300]!r}", ["bjobs"], 0, "") from exc
    out: list[JobRecord] = []
    for record in records:
        if not isinstance(record, dict) or "ERROR" in record:
            continue
        match = _JOBID.fullmatch(_text(record, "JOBID"))
        if match is None:
            continue
        array_id = match.group(1)
        index_text = _text(record, "JOBINDEX") or (match.group(2) or "")
        if not index_text.isdigit() or int(index_text) == 0:
            continue  # not an array element: never one of pycrew's jobs
        index = int(index_text)
        stat = _text(record, "STAT")
        exit_reason = _text(record, "EXIT_REASON")
        pend_reason = _text(record, "PEND_REASON")
        hopeless = never_starts(stat, pend_reason)
        status = "failed" if hopeless else job_status(stat, exit_reason)
        exit_text = _text(record, "EXIT_CODE")
        exit_code = int(exit_text) if exit_text.lstrip("-").isdigit() else (0 if status == "done" else None)
        output = _text(record, "OUTPUT_FILE")
        out.append(
            JobRecord(
                id=f"{array_id}[{index}]",
                array_id=array_id,
                index=index,
                name=_text(record, "JOB_NAME"),
                tag=_text(record, "JOB_DESCRIPTION"),
                state=stat,
                reason=hopeless or (ended_reason(exit_reason, exit_code) if status in ("failed", "cancelled") else pend_reason.rstrip(";")),
                host=first_host(_text(record, "EXEC_HOST")),
                submitted=parse_time(_text(record, "SUBMIT_TIME"), now),
                log=expand_log_path(output, array_id, index) if output else None,
                status=status,
                exit_code=exit_code,
                queued=bool(hopeless),
            )
        )
    return out


def parse_array_max(bparams_output: str) -> int | None:
    """``MAX_JOB_ARRAY_SIZE`` in ``bparams -a`` output, if it is there."""
    match = re.search(r"^\s*MAX_JOB_ARRAY_SIZE\s*=\s*(\d+)", bparams_output, re.MULTILINE)
    return int(match.group(1)) if match else None


def parse_unit_for_limits(lsf_conf: str) -> str | None:
    """``LSF_UNIT_FOR_LIMITS`` in the text of an ``lsf.conf`` (the last setting wins), if set."""
    found: str | None = None
    for line in lsf_conf.splitlines():
        match = re.fullmatch(r"\s*LSF_UNIT_FOR_LIMITS\s*=\s*[\"']?([A-Za-z]+)[\"']?\s*(?:#.*)?", line)
        if match:
            found = match.group(1).upper()
    return found
