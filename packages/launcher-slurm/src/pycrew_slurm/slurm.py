"""SLURM's syntax for :class:`pycrew.scheduler.SchedulerCLI`: sbatch, scancel, squeue, scontrol."""

from __future__ import annotations

import logging
import os
import pwd
import re
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar

from pycrew import LauncherInfo, WorkerCall
from pycrew.scheduler import JobRecord, SchedulerCLI, SchedulerError, normalise
from pycrew_slurm.exits import ended_reason
from pycrew_slurm.options import SlurmOptions

log = logging.getLogger(__name__)

#: An array element handle: ``<array job id>_<index>`` (also a plain job id, for scancel).
_HANDLE = re.compile(r"^[0-9]+(?:_[0-9]+)?$")
#: squeue fields, in order; ``|`` ends each (the comment is last: nothing can split it).
_FIELDS = (
    "JobArrayID", "ArrayJobID", "ArrayTaskID", "State", "Name", "Reason", "NodeList", "SubmitTime", "STDOUT", "exit_code",
    "Comment",
)
#: scancel's messages that only say a job is already gone.
_GONE = ("invalid job id", "already completing or completed", "job has already finished", "job/step already completing")
#: squeue's job states (``--Format=State``), normalised.
STATES = {
    **dict.fromkeys(
        ("PENDING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED", "RESV_DEL_HOLD", "SPECIAL_EXIT",
         "SUSPENDED", "STOPPED", "RESIZING", "SIGNALING", "STAGE_OUT"),
        "pending",
    ),
    "RUNNING": "running",
    "COMPLETING": "running",
    "COMPLETED": "done",
    **dict.fromkeys(
        ("FAILED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY", "BOOT_FAIL", "DEADLINE", "PREEMPTED", "REVOKED"),
        "failed",
    ),
    "CANCELLED": "cancelled",
}


#: Reasons squeue gives for a pending job that will not start as it was submitted (SLURM's
#: "job reason codes"): such an element is reported ``failed`` with the reason at once, so
#: that the controller's launch fails in seconds with SLURM's words rather than after
#: ``seconds_launch`` (for a queue, often many minutes) per attempt. Reasons that pass by
#: themselves (Resources, Priority, ReqNodeNotAvail of nodes being rebooted, a partition
#: that is down for maintenance, holds) are not here.
NEVER_STARTS = {
    "BadConstraints": "its constraints cannot be satisfied",
    "DependencyNeverSatisfied": "its dependency can never be satisfied",
    "InvalidAccount": "its account is not valid",
    "InvalidQOS": "its QOS is not valid",
    "PartitionTimeLimit": "its time limit is longer than its partition allows",
    "PartitionNodeLimit": "the nodes it asks for are outside its partition's limits",
    "PartitionConfig": "it asks for more CPUs, memory or nodes than its partition has",
    "QOSMaxWallDurationPerJobLimit": "its time limit is longer than its QOS allows",
    "AssocMaxWallDurationPerJobLimit": "its time limit is longer than its account allows",
    "QOSMaxCpuPerJobLimit": "it asks for more CPUs than its QOS allows a job",
    "AssocMaxCpuPerJobLimit": "it asks for more CPUs than its account allows a job",
    "QOSMaxNodePerJobLimit": "it asks for more nodes than its QOS allows a job",
    "AssocMaxNodePerJobLimit": "it asks for more nodes than its account allows a job",
    "launch failed requeued held": "SLURM could not launch it and holds it",
}


def never_starts(state: str, reason: str) -> str | None:
    """Why a job in ``state`` for ``reason`` (squeue's fields) will not start as submitted, else ``None``."""
    if normalise(state, STATES) != "pending":
        return None
    code = reason.strip().strip("()").split(",")[0].strip()
    why = NEVER_STARTS.get(code)
    return None if why is None else f"pending for good: {code} ({why}); fix the job's options (sbatch_args, partition, qos, time)"


#: The states of an element that ended (squeue lists them with ``--states=all``).
ENDED_STATES = frozenset(state for state, status in STATES.items() if status in ("done", "failed", "cancelled"))


def exit_code(text: str) -> int | None:
    """The exit code in squeue's ``exit_code`` field, a wait status (``768``: exit code 3;
    ``9``: killed by signal 9, reported as ``-9`` like ``subprocess``'s return codes).

    >>> exit_code("768"), exit_code("9"), exit_code("0"), exit_code("N/A")
    (3, -9, 0, None)
    """
    if not text.isdigit():
        return None
    status = int(text)
    return -(status & 0x7F) if status & 0x7F else (status >> 8) & 0xFF


def _user() -> str:
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # no passwd entry (some containers): squeue also takes a numeric uid
        return str(os.getuid())


def expand_log_path(pattern: str, array_id: str, index: int, name: str, user: str) -> str:
    """Expand the filename patterns SLURM's squeue leaves as given (``%A %a %x %u %%``)."""
    values = {"A": array_id, "a": str(index), "x": name, "u": user, "%": "%"}
    return re.sub(r"%([Aaxu%])", lambda m: values[m.group(1)], pattern)


class SlurmCLI(SchedulerCLI):
    """Workers as SLURM job arrays: ``sbatch`` a generated script, ``scancel``, ``squeue``.

    Args:
        launcher_name: the registered launcher name (``"slurm"``).
        options: the :class:`~pycrew_slurm.SlurmOptions`.
    """

    directive_prefix: ClassVar[str] = "#SBATCH"
    transient_errors: ClassVar[tuple[str, ...]] = (
        "socket timed out",
        "unable to contact slurm controller",
        "slurm_receive_msg",
        "communication connection failure",
        "resource temporarily unavailable",
        "slurmctld is busy",
        # munged down or restarting on this host: every command fails to authenticate until it is back
        # (not "Protocol authentication error" alone: slurmctld says so for a munge key that differs, for good)
        "munge encode failed",
    )
    array_index_variable: ClassVar[str] = "SLURM_ARRAY_TASK_ID"
    tag_max: ClassVar[int] = 1000  # 22.05 rejects comments over ~1 KB ("parameter too long")
    default_directory: ClassVar[str] = "~/.pycrew/slurm"

    options: SlurmOptions

    def __init__(self, launcher_name: str, options: SlurmOptions) -> None:
        super().__init__(launcher_name, options)

    # -- script --------------------------------------------------------------------------

    def log_paths(self) -> tuple[str, str | None]:
        """``(--output, --error)``; ``--error`` ``None`` means "into the output file"."""
        output = self.options.log_output
        if output is None:
            output = str(self.private_directory("logs") / "%x-%A_%a.log")
        for path in (output, self.options.log_error):
            _make_parent(path)
        return output, self.options.log_error

    def directives(self, launcher: LauncherInfo, calls: Sequence[WorkerCall], tag: str) -> list[str]:
        """``#SBATCH`` lines: name, array, tag, logs, then the options' resources."""
        output, error = self.log_paths()
        lines = [
            f"#SBATCH --job-name={self.job_name(launcher, calls)}",
            f"#SBATCH --array={self.array_first_index}-{self.array_first_index + len(calls) - 1}",
            f"#SBATCH --comment={tag}",
            f"#SBATCH --output={_directive_value(output)}",
        ]
        if error is not None:
            lines.append(f"#SBATCH --error={_directive_value(error)}")
        return lines + self.options.directives()

    # -- submit --------------------------------------------------------------------------

    def submit_command(self, script: Path, calls: Sequence[WorkerCall], tag: str) -> list[str]:
        """``sbatch --parsable`` the script; the secret travels in the environment (see ``--export``)."""
        export = "ALL" if self.options.export_environment else ",".join(self.token_variables(calls))
        return [
            self.command("sbatch"), "--parsable", f"--export={export}", *self.options.sbatch_args,
            *self.options.submit_args, str(script),
        ]

    def parse_submit(self, stdout: str) -> str:
        """The job id in ``sbatch --parsable``'s output (``123`` or ``123;cluster``)."""
        out = stdout.strip()
        job_id = out.splitlines()[-1].split(";")[0].strip() if out else ""
        if not job_id.isdigit():
            raise SchedulerError(f"sbatch printed no job id: stdout {out!r}", ["sbatch"], 0, "")
        return job_id

    def element_handle(self, job_id: str, index: int) -> str:
        """``<job id>_<index>``, as ``scancel`` and ``squeue`` write array elements."""
        return f"{job_id}_{index}"

    def site_array_max(self) -> int:
        """``MaxArraySize - 1`` from ``scontrol show config`` (indices run 1..n)."""
        out = self.check([self.command("scontrol"), "show", "config"], what="scontrol show config")
        match = re.search(r"^\s*MaxArraySize\s*=\s*(\d+)", out, re.MULTILINE)
        if match is None:
            log.warning("slurm: MaxArraySize not found in 'scontrol show config'; assuming 1001")
            return 1000
        return max(1, int(match.group(1)) - 1)

    # -- cancel --------------------------------------------------------------------------

    def cancel_command(self, handles: Sequence[Any]) -> list[str]:
        """``scancel 12_[1,3] 13_2 ...``: one argument per array; handles are checked first.

        Raises:
            ValueError: a handle is not ``<job id>`` or ``<job id>_<index>`` (so that nothing
                can reach scancel as an option, e.g. ``--user=...``).
        """
        bad = [h for h in handles if not isinstance(h, str) or not _HANDLE.match(h)]
        if bad:
            raise ValueError(f"slurm handles must look like '123_4' (job id _ array index), got {bad!r}")
        whole = sorted({h for h in handles if "_" not in h}, key=int)
        elements: dict[str, set[int]] = {}
        for handle in handles:
            job, sep, index = handle.partition("_")
            if sep and job not in whole:
                elements.setdefault(job, set()).add(int(index))
        args = list(whole)
        for job in sorted(elements, key=int):
            indices = sorted(elements[job])
            args.append(f"{job}_{indices[0]}" if len(indices) == 1 else f"{job}_[{','.join(map(str, indices))}]")
        return [self.command("scancel"), *args]

    def is_gone(self, message: str) -> bool:
        """scancel's complaint is only that the job has finished or was never known."""
        low = message.lower()
        return any(text in low for text in _GONE)

    # -- list ----------------------------------------------------------------------------

    def departed_hint(self, record: JobRecord) -> str:
        """An element slurmctld dropped before this process listed it ended (``MinJobAge``)."""
        return f"slurmctld keeps ended jobs for MinJobAge seconds; sacct -j {record.id} has its exit status where accounting is on"

    def list_command(self) -> list[str]:
        """One ``squeue`` call: this user's array elements (pending ones one per line).

        ``--states=all``: the elements that ended too, for as long as slurmctld keeps them
        (``MinJobAge``, 300 s by default), with their exit codes: a worker that exits before
        it connects (an interpreter or a directory missing on the node) fails its launch at
        once, quoting its log, instead of after ``seconds_launch``.
        """
        fmt = ",".join(f"{f}:|" if i < len(_FIELDS) - 1 else f"{f}:" for i, f in enumerate(_FIELDS))
        return [self.command("squeue"), "--noheader", "--array", "--states=all", f"--user={_user()}", f"--Format={fmt}"]

    #: Most arrays :meth:`confirm_gone` asks about in one listing (one squeue each).
    CONFIRM_ARRAYS_MAX: ClassVar[int] = 10

    def confirm_gone(self, records: list[JobRecord]) -> set[tuple[str, int]] | None:
        """Of ``records`` (elements missing from a listing), those slurmctld no longer holds.

        ``squeue --jobs=<array>`` lists what slurmctld holds of an array: an element missing
        from it is gone (one cancelled while its array waited leaves no trace); for an array
        slurmctld holds nothing of, squeue says "Invalid job id specified", naming no id, so
        arrays are asked about one at a time. ``None`` when squeue could not be asked.
        """
        gone: set[tuple[str, int]] = set()
        arrays = sorted({r.array_id for r in records})[: self.CONFIRM_ARRAYS_MAX]
        for array_id in arrays:
            try:
                proc = self.run([*self.list_command(), f"--jobs={array_id}"])
            except SchedulerError as exc:
                log.debug("slurm: could not ask about array %s: %s", array_id, exc)
                return gone or None
            if proc.returncode != 0:
                if not self.is_gone(proc.stderr):
                    return gone or None
                known: set[tuple[str, int]] = set()
            else:
                known = {(r.array_id, r.index) for r in self.parse_listing(proc.stdout)}
            gone |= {(r.array_id, r.index) for r in records if r.array_id == array_id} - known
        return gone

    def parse_listing(self, stdout: str) -> list[JobRecord]:
        """squeue's lines (``|``-separated fields of :data:`_FIELDS`) as array elements."""
        user = _user()
        records: list[JobRecord] = []
        for line in stdout.splitlines():
            parts = line.rstrip().split("|", len(_FIELDS) - 1)
            if len(parts) != len(_FIELDS):
                continue
            element, array_id, index, state, name, reason, nodes, submitted, stdout_path, code, comment = (
                p.strip() for p in parts
            )
            if not index.isdigit() or not array_id.isdigit():
                continue  # not an array element: never one of pycrew's jobs
            reason = "" if reason in ("None", "(null)") else reason
            if state in ENDED_STATES:  # why it ended: the state's meaning, the signal in its wait status
                reason = ended_reason(state, reason, code)
            hopeless = never_starts(state, reason)
            records.append(
                JobRecord(
                    id=element,
                    array_id=array_id,
                    index=int(index),
                    name=name,
                    tag=comment,
                    state=state,
                    reason=hopeless or reason,
                    host=nodes or None,
                    submitted=_timestamp(submitted),
                    log=expand_log_path(stdout_path, array_id, int(index), name, user) if stdout_path else None,
                    status="failed" if hopeless else normalise(state, STATES),
                    exit_code=exit_code(code) if state in ENDED_STATES else None,
                    queued=bool(hopeless),
                )
            )
        return records


def _make_parent(path: str | None) -> None:
    """Create a log file's directory if it has no pattern in it (SLURM fails jobs whose log
    directory is missing, silently). Best effort: it may exist only on the compute nodes."""
    if not path or path == "/dev/null":
        return
    parent = Path(os.path.expanduser(path)).parent
    if "%" in str(parent) or parent.exists():
        return
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # deliberate: the nodes may see a path this host cannot create
        log.debug("slurm: could not create the log directory %s here: %s", parent, exc)


def _directive_value(value: str) -> str:
    """A path in a ``#SBATCH`` line: quoted if it holds spaces (sbatch honours quotes there)."""
    return f'"{value}"' if any(ch.isspace() for ch in value) else value


def _timestamp(text: str) -> float | None:
    """squeue's local ISO time as epoch seconds; ``None`` for ``N/A`` or ``Unknown``."""
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None
