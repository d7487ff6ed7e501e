"""Parsers of Son of Grid Engine's outputs: ``qsub -terse``, ``qstat -xml``, ``qstat -xml -j``.

Pure functions of the commands' text, unit-tested on outputs captured from the real SGE
8.1.9 the tests run (``tests/data``). What they rely on:

- ``qstat -xml -u USER`` lists a running array task as one ``job_list`` with ``<tasks>N``,
  and the pending tasks of an array as one ``job_list`` whose ``<tasks>`` is a task list
  such as ``1-3:1``, ``3,4`` or ``1,4-9:1``; a job that is no array has no ``<tasks>``.
  Times are local ISO times (``2026-12-03T03:11:31``).
- ``qstat -xml -j ID,ID`` details each job (its context, output path, the error reason of
  each task in error state) and lists the scheduler's messages per job. When it knows none
  of the ids they come back as ``<unknown_jobs>``; when it knows some, the others are left
  out without a word (the text form prints "Following jobs do not exist:" only when it
  knows none). An unreachable qmaster comes back as ``<comunication_error>`` (sic), all
  with exit status 0. A job it knows lists only its tasks that started or failed
  (``JB_ja_tasks``): waiting and held tasks appear nowhere, so it cannot tell a task that
  left a job still held from one that waits.
- A job context cannot hold a comma (``-ac a=1,b=2`` sets two variables), and pycrew's tags
  hold commas (slot lists ``1-3,7``) but never ``+`` (their values are percent-encoded):
  the tag is stored with ``,`` written as ``+``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from pycrew.scheduler import SchedulerError, normalise

#: The job context variable holding pycrew's tag.
TAG_VARIABLE = "pycrew_tag"
#: SGE job states that mean the same for every combination they appear in, by priority:
#: the first letter found decides. ``d``: being deleted; ``E``: error (the job cannot
#: start until an administrator clears it); ``s S T``: suspended (by a user, its queue, or a
#: load threshold: it does not serve, as SLURM's SUSPENDED counts as pending);
#: ``r t``: running or being transferred to its host (the process may already run);
#: ``q w h R``: queued, waiting, held, restarted and queued again; ``z``: a zombie, a job
#: that ended (``qstat -s z`` lists the last ``finished_jobs`` of them, without their exit
#: status, which only ``qacct`` has once the accounting file is flushed).
_STATE_LETTERS = (
    ("z", "done"),
    ("d", "cancelled"),
    ("E", "failed"),
    ("s", "pending"),
    ("S", "pending"),
    ("T", "pending"),
    ("r", "running"),
    ("t", "running"),
    ("q", "pending"),
    ("w", "pending"),
    ("h", "pending"),
)
#: Whole SGE states seen on 8.1.9 (and in qstat(1)), with their normalised status; see
#: :func:`normalise_state` for the rule that covers the other combinations.
STATES = {
    "qw": "pending", "hqw": "pending", "hRwq": "pending", "Rq": "pending", "Eqw": "failed", "Ehqw": "failed",
    "r": "running", "t": "running", "Rr": "running", "Rt": "running", "hr": "running",
    "s": "pending", "S": "pending", "T": "pending", "Ss": "pending", "Sh": "pending", "SRt": "pending",
    "dr": "cancelled", "dt": "cancelled", "dRr": "cancelled", "dqw": "cancelled", "ds": "cancelled",
    "z": "done",
}


def normalise_state(state: str) -> str:
    """An SGE state code (``qw``, ``r``, ``Eqw``, ``dr``, ...) as a normalised status.

    >>> normalise_state("hqw"), normalise_state("Eqw"), normalise_state("dr"), normalise_state("Rr")
    ('pending', 'failed', 'cancelled', 'running')
    """
    status = normalise(state, STATES, default="")
    if status:
        return status
    for letter, status in _STATE_LETTERS:
        if letter in state:
            return status
    return "unknown"


def tag_to_context(tag: str) -> str:
    """A pycrew tag as a job context value: ``,`` written as ``+`` (a comma would split it).

    Raises:
        ValueError: the tag holds a ``+`` (pycrew's tags never do) or whitespace.
    """
    if "+" in tag or any(ch.isspace() for ch in tag):
        raise ValueError(f"an SGE job context cannot carry a tag with '+' or whitespace: {tag!r}")
    return tag.replace(",", "+")


def tag_from_context(value: str) -> str:
    """The pycrew tag a job context value carries (the inverse of :func:`tag_to_context`)."""
    return value.replace("+", ",")


def parse_submit(stdout: str) -> str:
    """The job id in ``qsub -terse``'s output: ``123`` for a job, ``123.1-4:1`` for an array.

    Raises:
        SchedulerError: the output holds no job id.
    """
    lines = [line.strip() for line in stdout.splitlines() if line.strip()]
    job_id = lines[-1].split(".", 1)[0] if lines else ""
    if not job_id.isdigit():
        raise SchedulerError(f"qsub -terse printed no job id: stdout {stdout.strip()!r}", ["qsub"], 0, "")
    return job_id


def parse_array_max(sconf: str) -> int | None:
    """``max_aj_tasks`` of ``qconf -sconf``'s output (``0``: no limit); ``None`` if it is not there."""
    for line in sconf.splitlines():
        words = line.split()
        if len(words) == 2 and words[0] == "max_aj_tasks" and words[1].isdigit():
            return int(words[1])
    return None


def expand_tasks(text: str) -> list[int]:
    """An SGE task list as task ids: ``"1-3:1,7"`` -> ``[1, 2, 3, 7]``; ``"4"`` -> ``[4]``.

    Raises:
        ValueError: ``text`` is not a task list.
    """
    tasks: list[int] = []
    for part in text.split(","):
        span, _, step = part.strip().partition(":")
        first, dash, last = span.partition("-")
        if not first.isdigit() or (dash and not last.isdigit()) or (step and not step.isdigit()):
            raise ValueError(f"not an SGE task list: {text!r}")
        start, end, stride = int(first), int(last) if dash else int(first), int(step) if step else 1
        if end < start or stride < 1:
            raise ValueError(f"not an SGE task list: {text!r}")
        tasks.extend(range(start, end + 1, stride))
    return tasks


def local_time(text: str) -> float | None:
    """qstat's local ISO time as epoch seconds; ``None`` if it is none."""
    try:
        return datetime.fromisoformat(text.strip()).timestamp()
    except ValueError:
        return None


@dataclass(frozen=True)
class QstatTask:
    """One task of a job in ``qstat -xml``'s listing (a job that is no array has task ``None``).

    Attributes:
        job: the job number.
        task: the task id, or ``None`` for a job that is no array.
        name: the job name.
        owner: the job's owner.
        state: SGE's state code (``qw``, ``r``, ``Eqw``, ...).
        host: the host the task runs on (from its queue instance ``queue@host``), if placed.
        time: the start time of a placed task, else the submission time (epoch seconds).
    """

    job: str
    task: int | None
    name: str
    owner: str
    state: str
    host: str | None
    time: float | None


def _root(xml: str, command: str) -> ET.Element:
    """Parse qstat's XML; an unreachable qmaster's answer becomes a transient error."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise SchedulerError(f"{command} printed no XML ({exc}): {xml[:300]!r}", [command], 0, "") from exc
    if root.tag == "comunication_error":  # sic: SGE's spelling
        text = root.findtext("AN_text", "") or "no message"
        raise SchedulerError(
            f"{command} could not reach the qmaster: {text}", [command], 0, text, transient=True
        )
    return root


def parse_qstat(xml: str) -> list[QstatTask]:
    """``qstat -xml -u USER``: every task of every job, pending ranges expanded.

    Raises:
        SchedulerError: the output is no qstat XML, or says the qmaster was unreachable.
    """
    tasks: list[QstatTask] = []
    for job in _root(xml, "qstat -xml").iter("job_list"):
        number = job.findtext("JB_job_number", "").strip()
        if not number.isdigit():
            continue
        queue = job.findtext("queue_name", "").strip()
        host = queue.partition("@")[2] or None
        when = local_time(job.findtext("JAT_start_time", "") or job.findtext("JB_submission_time", ""))
        task_list = job.findtext("tasks", "").strip()
        try:
            ids: list[int | None] = list(expand_tasks(task_list)) if task_list else [None]
        except ValueError:
            continue  # a task list this parser does not know: not one of pycrew's arrays
        for task in ids:
            tasks.append(
                QstatTask(
                    job=number,
                    task=task,
                    name=job.findtext("JB_name", ""),
                    owner=job.findtext("JB_owner", ""),
                    state=job.findtext("state", "").strip(),
                    host=host,
                    time=when,
                )
            )
    return tasks


@dataclass(frozen=True)
class JobDetails:
    """What ``qstat -xml -j`` says about one job that the listing does not.

    Attributes:
        job: the job number.
        context: the job context's variables (``-ac``).
        stdout_path: the ``-o`` path as given (pseudo variables unexpanded), if any.
        merged: whether stderr goes into the output file (``-j y``).
        task_errors: the error reason of each task in error state, by task id.
        messages: the scheduler's messages about the job (why it waits), if it keeps them
            (``schedd_job_info`` in the scheduler configuration).
    """

    job: str
    context: dict[str, str] = field(default_factory=dict)
    stdout_path: str | None = None
    merged: bool = False
    task_errors: dict[int, str] = field(default_factory=dict)
    messages: tuple[str, ...] = ()

    @property
    def tag(self) -> str:
        """The pycrew tag in the context (``""`` if none)."""
        return tag_from_context(self.context.get(TAG_VARIABLE, ""))


def _error_reason(message: str) -> str:
    """``12/03/2026 03:14:55 [0:21699]: error: can't open ...`` -> ``can't open ...``."""
    _, sep, rest = message.partition("]: ")
    text = rest if sep else message
    return text.removeprefix("error: ").strip()


def parse_details(xml: str) -> dict[str, JobDetails]:
    """``qstat -xml -j ID,...``: the details of the jobs that exist (unknown ids are left out).

    Raises:
        SchedulerError: the output is no qstat XML, or says the qmaster was unreachable.
    """
    root = _root(xml, "qstat -xml -j")
    if root.tag == "unknown_jobs":
        return {}
    messages: dict[str, list[str]] = {}
    for message in root.findall("messages/element/SME_message_list/element"):
        text = (message.findtext("MES_message") or "").strip()
        for job_number in message.iter("ULNG_value"):
            if text and job_number.text:
                messages.setdefault(job_number.text.strip(), []).append(text)
    details: dict[str, JobDetails] = {}
    for job in root.findall("djob_info/element"):
        number = job.findtext("JB_job_number", "").strip()
        if not number:
            continue
        context = {
            (item.findtext("VA_variable") or ""): (item.findtext("VA_value") or "")
            for item in job.findall("JB_context/context_list")
        }
        paths = [p.findtext("PN_path") or "" for p in job.findall("JB_stdout_path_list/path_list") if not p.findtext("PN_host")]
        errors: dict[int, str] = {}
        for task in job.findall("JB_ja_tasks/ulong_sublist"):
            task_id = (task.findtext("JAT_task_number") or "").strip()
            reasons = [_error_reason(m.text or "") for m in task.iter("QIM_message") if m.text]
            if task_id.isdigit() and reasons:
                errors[int(task_id)] = "; ".join(reasons)
        details[number] = JobDetails(
            job=number,
            context=context,
            stdout_path=paths[0] if paths and paths[0] else None,
            merged=(job.findtext("JB_merge_stderr") or "").strip() == "true",
            task_errors=errors,
            messages=tuple(messages.get(number, ())),
        )
    return details


def parse_unknown_jobs(xml: str, asked: Iterable[str]) -> set[str]:
    """Of the jobs ``asked`` about in one ``qstat -xml -j``, those the qmaster no longer holds.

    ``<unknown_jobs>`` names them when it holds none; otherwise the answer details the jobs
    it holds and leaves the others out (see the module).

    Raises:
        SchedulerError: the output is not ``qstat -xml -j``'s (no XML, another document, no
            job detailed), or says the qmaster was unreachable.
    """
    root = _root(xml, "qstat -xml -j")
    wanted = set(asked)
    if root.tag == "unknown_jobs":
        return wanted & {(name.text or "").strip() for name in root.iter("ST_name")}
    known = {job.findtext("JB_job_number", "").strip() for job in root.findall("djob_info/element")}
    if root.tag != "detailed_job_info" or not known - {""}:
        raise SchedulerError(f"qstat -xml -j printed no job details: {xml[:300]!r}", ["qstat"], 0, "")
    return wanted - known


def expand_log_path(pattern: str, job: str, task: int, name: str, user: str, home: str, host: str | None) -> str:
    """Expand the pseudo variables of an ``-o`` path as SGE does on the execution host.

    ``$HOSTNAME`` stays as it is when the host is unknown (the task has not run).
    """
    values = {"JOB_ID": job, "TASK_ID": str(task), "JOB_NAME": name, "USER": user, "HOME": home}
    if host:
        values["HOSTNAME"] = host
    out = pattern
    # Longest names first: $JOB_ID must not eat the start of a longer name.
    for key in sorted(values, key=len, reverse=True):
        out = out.replace(f"${key}", values[key])
    return out
