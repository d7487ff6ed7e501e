"""The SLURM launcher's options: typed, validated, and rendered as ``#SBATCH`` directives."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import ClassVar

from pycrew import OptionsError, require
from pycrew.scheduler import SchedulerOptions

#: SLURM time limits: ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``.
_TIME = re.compile(r"^(?:\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d{1,2}|\d+-\d{1,2}:\d{1,2}|\d+-\d{1,2}:\d{1,2}:\d{1,2})$")
#: ``gpu``, ``gpu:2``, ``gpu:a100:2``, comma-separated.
_GRES = re.compile(r"^[A-Za-z][\w.-]*(?::[\w.-]+)?(?::\d+)?(?:,[A-Za-z][\w.-]*(?::[\w.-]+)?(?::\d+)?)*$")
#: Partition and QOS names: no whitespace, no shell or directive syntax.
_NAME = re.compile(r"^[\w.,+-]+$")
#: sbatch options pycrew sets itself; users must not pass them (they would break arrays,
#: the monitor's tag, or the token's way into the job).
RESERVED_SBATCH_OPTIONS = (
    "--array", "-a", "--comment", "--job-name", "-J", "--wrap", "--export", "--export-file", "--parsable", "--chdir", "-D",
)


def seconds_to_slurm_time(seconds: float) -> str:
    """``seconds`` as a SLURM time limit ``D-HH:MM:SS``, rounded up to whole seconds.

    >>> seconds_to_slurm_time(90061)
    '1-01:01:01'
    """
    total = math.ceil(seconds)
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{days}-{hours:02d}:{minutes:02d}:{secs:02d}"


def slurm_time_to_seconds(text: str) -> int | None:
    """A SLURM time limit in seconds; ``None`` for ``UNLIMITED`` (or ``INFINITE``).

    >>> [slurm_time_to_seconds(t) for t in ("30", "1:30", "1:30:00", "2-12", "1-0:30", "1-00:00:01", "UNLIMITED")]
    [1800, 90, 5400, 216000, 88200, 86401, None]

    Raises:
        ValueError: ``text`` is not a SLURM time.
    """
    if text.upper() in ("UNLIMITED", "INFINITE"):
        return None
    if not _TIME.fullmatch(text):
        raise ValueError(f"not a SLURM time limit: {text!r}")
    days, _, rest = text.rpartition("-")
    parts = [int(x) for x in rest.split(":")]
    if days:  # D-HH, D-HH:MM, D-HH:MM:SS
        hours, minutes, seconds = [*parts, 0, 0][:3]
        return int(days) * 86400 + hours * 3600 + minutes * 60 + seconds
    if len(parts) == 1:  # MM
        return parts[0] * 60
    if len(parts) == 2:  # MM:SS
        return parts[0] * 60 + parts[1]
    return parts[0] * 3600 + parts[1] * 60 + parts[2]


def gigabytes_to_megabytes(gigabytes: float) -> int:
    """Gigabytes (1 GB = 1024 MB, as SLURM counts) as whole megabytes, rounded up."""
    return max(1, math.ceil(gigabytes * 1024))


@dataclass(frozen=True)
class SlurmOptions(SchedulerOptions):
    """Options of the ``slurm`` launcher; each becomes an ``#SBATCH`` directive or script line.

    Every worker is one element of a job array; resources are per worker (per array element).
    The options every scheduler launcher shares (:class:`pycrew.scheduler.SchedulerOptions`)
    map to SLURM too: ``queue`` is ``--partition``, ``cpus`` is ``--cpus-per-task``,
    ``walltime``/``seconds_walltime`` are ``--time``, ``submit_args`` are added to
    ``sbatch_args``; each is exclusive with its SLURM-named twin.

    Attributes:
        partition: ``--partition``.
        cpus_per_task: ``--cpus-per-task``, at least 1.
        memory_gigabytes_per_node: ``--mem`` in gigabytes (1 GB = 1024 MB), > 0.
        memory: ``--mem`` as a SLURM size string with a unit, e.g. ``"4G"`` or ``"512M"``;
            exclusive with ``memory_gigabytes_per_node``.
        memory_gigabytes_per_cpu: ``--mem-per-cpu`` in gigabytes; exclusive with ``--mem``.
        seconds_time: ``--time`` in seconds (rounded up; SLURM counts whole minutes).
        time: ``--time`` as a SLURM time string (``"30"``, ``"1:30:00"``, ``"2-00:00:00"``,
            ``"UNLIMITED"``); exclusive with ``seconds_time``.
        gpus: ``--gres=gpu:N``, at least 1.
        gres: ``--gres`` verbatim, e.g. ``"gpu:a100:2"``; exclusive with ``gpus``.
        account: ``--account``.
        qos: ``--qos``.
        log_output: ``--output`` path; ``%A`` (array job id) and ``%a`` (array index) are
            expanded by SLURM. Default: ``<directory>/logs/%x-%A_%a.log``.
        log_error: ``--error`` path; default: the same file as ``log_output``.
        directory: the private directory (mode 0700) for job scripts (removed right after
            submission) and default logs. Default ``~/.pycrew/slurm``; it must be on a file
            system the compute nodes see if the default logs are to be written.
        script_directives: extra ``#SBATCH ...`` lines, each starting with ``#SBATCH``.
        script_lines: shell lines run before the worker starts (``module load python``,
            ``source venv/bin/activate``).
        python: the Python interpreter on the compute nodes. Default: the controller's.
        sbatch_args: extra arguments for the ``sbatch`` command line.
        export_environment: ``True`` submits with ``--export=ALL`` (the job sees the
            controller's environment, as SLURM's default); ``False`` exports nothing but
            ``PYCREW_TOKEN`` (the batch key; use ``script_lines`` to set up the job).
        array_size_max: at most this many workers per job array (more go out as several
            arrays). Default: the site's ``MaxArraySize - 1``.
        seconds_poll: the monitor calls ``squeue`` at most once per this many seconds and
            answers from the last listing in between (a launch or termination refreshes it).
        seconds_command_timeout: how long a SLURM command may take before it counts as failed.
    """

    owner: ClassVar[str] = "slurm"
    directive_prefix: ClassVar[str] = "#SBATCH"

    partition: str | None = None
    cpus_per_task: int | None = None
    memory_gigabytes_per_node: float | None = None
    memory_gigabytes_per_cpu: float | None = None
    seconds_time: float | None = None
    time: str | None = None
    gpus: int | None = None
    gres: str | None = None
    qos: str | None = None
    sbatch_args: tuple[str, ...] = ()

    def validate(self) -> None:
        """Check values beyond their types.

        Raises:
            OptionsError: naming the option, its value and what it must be.
        """
        super().validate()
        o = self.owner
        for name in ("partition", "qos"):
            value = getattr(self, name)
            if value is not None:
                require(bool(_NAME.fullmatch(value)), o, name, value, "be a non-empty name without spaces")
        for twin, shared in (("partition", "queue"), ("cpus_per_task", "cpus")):
            if getattr(self, twin) is not None and getattr(self, shared) is not None:
                raise OptionsError(f"slurm options {twin!r} and {shared!r} mean the same; give one")
        if self.cpus_per_task is not None:
            require(self.cpus_per_task >= 1, o, "cpus_per_task", self.cpus_per_task, "be >= 1")
        for name in ("memory_gigabytes_per_node", "memory_gigabytes_per_cpu"):
            value = getattr(self, name)
            if value is not None:
                require(math.isfinite(value) and value > 0, o, name, value, "be a number of gigabytes > 0")
        if self.memory is not None and self.memory_gigabytes_per_node is not None:
            raise OptionsError("slurm options 'memory' and 'memory_gigabytes_per_node' both set --mem; give one")
        if self.memory_gigabytes_per_cpu is not None and (self.memory or self.memory_gigabytes_per_node):
            raise OptionsError(
                "slurm option 'memory_gigabytes_per_cpu' (--mem-per-cpu) excludes 'memory' and "
                "'memory_gigabytes_per_node' (--mem); give one of them"
            )
        if self.seconds_time is not None:
            require(
                math.isfinite(self.seconds_time) and self.seconds_time > 0, o, "seconds_time", self.seconds_time,
                "be a number of seconds > 0",
            )
        if self.time is not None:
            require(
                self.time.upper() in ("UNLIMITED", "INFINITE") or bool(_TIME.fullmatch(self.time)), o, "time", self.time,
                "be a SLURM time (MM, MM:SS, HH:MM:SS, D-HH, D-HH:MM, D-HH:MM:SS or UNLIMITED)",
            )
            if self.seconds_time is not None:
                raise OptionsError("slurm options 'time' and 'seconds_time' both set --time; give one")
        limits = [n for n in ("time", "seconds_time", "walltime", "seconds_walltime") if getattr(self, n) is not None]
        if len(limits) > 1:
            raise OptionsError(f"slurm options {' and '.join(map(repr, limits))} all set --time; give one")
        if self.gpus is not None:
            require(self.gpus >= 1, o, "gpus", self.gpus, "be >= 1")
        if self.gres is not None:
            require(bool(_GRES.fullmatch(self.gres)), o, "gres", self.gres, "look like 'gpu:2' or 'gpu:a100:1'")
            if self.gpus is not None:
                raise OptionsError("slurm options 'gpus' and 'gres' both set --gres; give one")
        for line in self.script_directives:
            self._check_reserved("script_directives", line.split()[1])
        for arg in self.sbatch_args:
            require("\x00" not in arg, o, "sbatch_args", arg, "contain no NUL character")
            self._check_reserved("sbatch_args", arg)
        for arg in self.submit_args:
            self._check_reserved("submit_args", arg)

    def time_limit_seconds(self) -> float | None:
        """``--time`` in seconds, from whichever of ``time``, ``seconds_time``, ``walltime``
        or ``seconds_walltime`` is set; ``None`` without one (the partition's default
        applies) or for ``UNLIMITED``."""
        if self.time is not None:
            return slurm_time_to_seconds(self.time)
        if self.seconds_time is not None:
            return self.seconds_time
        return super().time_limit_seconds()

    def _check_reserved(self, name: str, arg: str) -> None:
        self.check_reserved(
            name, arg, RESERVED_SBATCH_OPTIONS,
            "job arrays, the monitor's --comment tag, --export for the worker tokens, --chdir for the cwd option; "
            "use export_environment=False instead of --export, cwd instead of --chdir",
        )

    def directives(self) -> list[str]:
        """The resource directives these options ask for, as ``#SBATCH`` lines (no logs)."""
        lines: list[str] = []
        partition = self.partition or self.queue
        if partition:
            lines.append(f"--partition={partition}")
        if self.account:
            lines.append(f"--account={self.account}")
        if self.qos:
            lines.append(f"--qos={self.qos}")
        cpus = self.cpus_per_task if self.cpus_per_task is not None else self.cpus
        if cpus is not None:
            lines.append(f"--cpus-per-task={cpus}")
        if self.memory is not None:
            lines.append(f"--mem={self.memory.upper()}")
        if self.memory_gigabytes_per_node is not None:
            lines.append(f"--mem={gigabytes_to_megabytes(self.memory_gigabytes_per_node)}M")
        if self.memory_gigabytes_per_cpu is not None:
            lines.append(f"--mem-per-cpu={gigabytes_to_megabytes(self.memory_gigabytes_per_cpu)}M")
        seconds = self.seconds_time if self.seconds_time is not None else self.seconds_walltime
        if seconds is not None:
            lines.append(f"--time={seconds_to_slurm_time(seconds)}")
        if self.time is not None or self.walltime is not None:
            lines.append(f"--time={self.time if self.time is not None else self.walltime}")
        if self.gpus is not None:
            lines.append(f"--gres=gpu:{self.gpus}")
        if self.gres is not None:
            lines.append(f"--gres={self.gres}")
        return [f"#SBATCH {line}" for line in lines] + list(self.script_directives)
