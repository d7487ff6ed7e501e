"""Reading qstat: ``qstat -f -F json`` (PBS Pro / OpenPBS) and ``qstat -f`` text (TORQUE).

Pure functions of qstat's output, unit-tested on canned outputs (tests/data). Sources: the
OpenPBS man pages qstat(1B) (the JSON prolog and ``Jobs`` object, the job states) and
pbs_job_attributes(7B) (``job_state``, ``Exit_status``, ``exec_host``, ``Output_Path``,
``Variable_List``, ``array_id``, ``array_index``); published OpenPBS 20 JSON output (nested
objects, the time format ``Wed Apr 14 23:34:17 2021``); PBS's qstat.c ``prt_attr()`` (text
values wrapped at 78 columns onto tab-indented continuation lines, at commas or in the
middle of an item); TORQUE's documentation (``exit_status``, ``job_array_id``, state ``C``).
"""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Mapping
from typing import Any

#: PBS job states (``job_state``), normalised; ``F`` and ``X`` (and TORQUE's ``C``) are
#: decided by the exit status (:func:`finished_status`).
STATES = {
    "Q": "pending",  # queued
    "H": "pending",  # held
    "W": "pending",  # waiting for its start time
    "T": "pending",  # being moved
    "S": "pending",  # suspended (as pycrew-slurm treats SUSPENDED)
    "U": "pending",  # suspended by workstation activity
    "R": "running",
    "E": "running",  # exiting: the process ended, PBS is cleaning up; the exit status follows
    "B": "running",  # an array with an element running (parents only)
    "M": "unknown",  # moved to another server
}
#: The starts of ``comment`` texts on a queued or held job that say it will not start as
#: submitted, with what they mean. OpenPBS's scheduler prefixes a job it can never run
#: with "Can Never Run" (``NEVER_RUN_PREFIX`` in its ``src/scheduler/constant.h``; a job
#: that cannot run *now* gets "Not Running", which passes); its server holds a job whose
#: start failed too often (``Hold_Types`` ``s``, which only an administrator releases) with
#: "job held, too many failed attempts to run". TORQUE's qstat has no such comment.
NEVER_STARTS = {
    "can never run": "no node can ever meet what it asks for",
    "job held, too many failed attempts to run": "PBS failed to start it too many times and holds it",
}
#: States of a job that has ended: PBS Pro ``F`` (finished) and ``X`` (subjob expired),
#: TORQUE ``C`` (completed).
FINISHED = frozenset({"F", "X", "C"})
#: PBS's exit status of a job killed by signal N is 256 + N; qdel sends SIGTERM first.
SIGNAL_BASE = 256

def never_starts(state: str, comment: str) -> str | None:
    """Why a job in ``state`` with the scheduler's ``comment`` will not start as submitted, else ``None``.

    >>> never_starts("Q", "Can Never Run: Insufficient amount of resource: ncpus (R: 64 A: 8 T: 8)")[:40]
    'pending for good: PBS says "Can Never Ru'
    >>> never_starts("Q", "Not Running: Insufficient amount of resource: ncpus") is None
    True
    """
    if STATES.get(state) != "pending":
        return None
    text = comment.strip()
    for start, why in NEVER_STARTS.items():
        if text.lower().startswith(start):
            return (
                f'pending for good: PBS says "{text}" ({why}); fix the job\'s options (cpus, memory, walltime, '
                "resources, queue) or ask the cluster's administrators"
            )
    return None


def finished_status(exit_status: int | None) -> str:
    """The normalised status of an ended job from its exit status.

    No exit status: deleted before it ran (cancelled). 0: done. 256 + SIGTERM: killed by
    qdel (cancelled). Anything else (a non-zero exit, another signal, PBS's negative
    ``JOB_EXEC_*`` codes for jobs that could not start or exceeded a limit): failed.
    """
    if exit_status is None:
        return "cancelled"
    if exit_status == 0:
        return "done"
    if exit_status == SIGNAL_BASE + signal.SIGTERM:
        return "cancelled"
    return "failed"


def output_path(value: str, index: int | None) -> str:
    """A PBS ``Output_Path`` as a local path: the ``host:`` prefix dropped, ``^array_index^`` expanded."""
    match = re.fullmatch(r"[A-Za-z0-9_.-]+:(/.*)", value)
    path = match.group(1) if match else value
    return path.replace("^array_index^", str(index)) if index is not None else path


def pbs_time(value: Any) -> float | None:
    """A PBS time attribute (``Wed Apr 14 23:34:17 2021``, local time, or epoch seconds) as epoch seconds."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if not isinstance(value, str) or not value.strip():
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        return time.mktime(time.strptime(value.strip(), "%a %b %d %H:%M:%S %Y"))
    except ValueError:
        return None


def to_int(value: Any) -> int | None:
    """An integer attribute (a JSON number or digits), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and re.fullmatch(r"-?\d+", value.strip()):
        return int(value)
    return None


def parse_qstat_text(stdout: str) -> dict[str, dict[str, str]]:
    """``qstat -f`` text (TORQUE, and PBS without ``-F``) as ``{job id: {attribute: value}}``.

    Blocks start with ``Job Id: <id>``; attributes are ``    name = value`` lines; a long
    value continues on lines that start with a tab (qstat breaks values at commas or in
    the middle, so the tab is dropped and the pieces are joined as they are).
    """
    jobs: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    key: str | None = None
    for line in stdout.splitlines():
        if line.startswith("Job Id:"):
            current = jobs.setdefault(line.partition(":")[2].strip(), {})
            key = None
        elif line.startswith("\t") and current is not None and key is not None:
            current[key] += line[1:].rstrip("\n")
        elif " = " in line and current is not None and line[:1].isspace():
            name, _, value = line.strip().partition(" = ")
            current[name] = value
            key = name
        elif not line.strip():
            key = None
    return jobs


def parse_variable_list(value: Any) -> dict[str, str]:
    """``Variable_List``: a JSON object (``qstat -F json``) or ``A=1,B=x\\,y`` text."""
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    if not isinstance(value, str):
        return {}
    out: dict[str, str] = {}
    for item in re.split(r"(?<!\\),", value):
        name, sep, val = item.partition("=")
        if sep:
            out[name.strip()] = val.replace("\\,", ",")
    return out


def lookup(attrs: Mapping[str, Any], name: str) -> Any:
    """An attribute by name, case-insensitively (PBS Pro ``Exit_status``, TORQUE ``exit_status``)."""
    if name in attrs:
        return attrs[name]
    low = name.lower()
    return next((v for k, v in attrs.items() if k.lower() == low), None)


def server_array_limit(out: str, attribute: str) -> int | None:
    """The array limit ``attribute`` in ``qstat -B -f`` output (``-F json`` or text), if set and >= 1."""
    value: Any = None
    try:
        servers = json.loads(out).get("Server", {}) if out.strip().startswith("{") else {}
    except (ValueError, AttributeError):
        servers = {}
    for attrs in servers.values() if isinstance(servers, Mapping) else ():
        if isinstance(attrs, Mapping) and attribute in attrs:
            value = attrs[attribute]
    if value is None:
        match = re.search(rf"^\s*{attribute}\s*=\s*(\d+)", out, re.MULTILINE)
        value = match.group(1) if match else None
    limit = to_int(value)
    return limit if limit is not None and limit >= 1 else None
