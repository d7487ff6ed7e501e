"""The SLURM launcher's options: typed, validated, and rendered as ``#SBATCH`` directives."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import ClassVar

from pycrew import LauncherOptions, OptionsError, require

#: ``4G``, ``512M``, ``1.5T`` is not allowed by SLURM: a whole number with a unit.
_MEMORY = re.compile(r"^([1-9][0-9]*)([KMGT])$", re.IGNORECASE)
#: SLURM time limits: ``MM``, ``MM:SS``, ``HH:MM:SS``, ``D-HH``, ``D-HH:MM``, ``D-HH:MM:SS``.
_TIME = re.compile(r"^(?:\d+|\d+:\d{1,2}|\d+:\d{1,2}:\d{1,2}|\d+-\d{1,2}|\d+-\d{1,2}:\d{1,2}|\d+-\d{1,2}:\d{1,2}:\d{1,2})$")
#: ``gpu``, ``gpu:2``, ``gpu:a100:2``, comma-separated.
_GRES = re.compile(r"^[A-Za-z][\w.-]*(?::[\w.-]+)?(?::\d+)?(?:,[A-Za-z][\w.-]*(?::[\w.-]+)?(?::\d+)?)*$")
#: Account, partition and QOS names: no whitespace, no shell or directive syntax.
_NAME = re.compile(r"^[\w.,+-]+$")
#: sbatch options pycrew sets itself; users must not pass them (they would break arrays,
#: the monitor's tag, or the token's way into the job).
RESERVED_SBATCH_OPTIONS = ("--array", "-a", "--comment", "--job-name", "-J", "--wrap", "--export", "--export-file", "--parsable")


def _reserved(arg: str) -> str | None:
    for opt in RESERVED_SBATCH_OPTIONS:
        if arg == opt or arg.startswith(opt + "=") or (len(opt) == 2 and arg.startswith(opt) and not arg.startswith("--")):
            return opt
    return None


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


def gigabytes_to_megabytes(gigabytes: float) -> int:
    """Gigabytes (1 GB = 1024 MB, as SLURM counts) as whole megabytes, rounded up."""
    return max(1, math.ceil(gigabytes * 1024))


@dataclass(frozen=True)
class SlurmOptions(LauncherOptions):
    """Options of the ``slurm`` launcher; each becomes an ``#SBATCH`` directive or script line.

    Every worker is one element of a job array; resources are per worker (per array element).

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

    partition: str | None = None
    cpus_per_task: int | None = None
    memory_gigabytes_per_node: float | None = None
    memory: str | None = None
    memory_gigabytes_per_cpu: float | None = None
    seconds_time: float | None = None
    time: str | None = None
    gpus: int | None = None
    gres: str | None = None
    account: str | None = None
    qos: str | None = None
    log_output: str | None = None
    log_error: str | None = None
    directory: str | None = None
    script_directives: tuple[str, ...] = ()
    script_lines: tuple[str, ...] = ()
    python: str | None = None
    sbatch_args: tuple[str, ...] = ()
    export_environment: bool = True
    array_size_max: int | None = None
    seconds_poll: float = 1.0
    seconds_command_timeout: float = 60.0

    def validate(self) -> None:
        """Check values beyond their types.

        Raises:
            OptionsError: naming the option, its value and what it must be.
        """
        o = self.owner
        for name in ("partition", "account", "qos"):
            value = getattr(self, name)
            if value is not None:
                require(bool(_NAME.fullmatch(value)), o, name, value, "be a non-empty name without spaces")
        if self.cpus_per_task is not None:
            require(self.cpus_per_task >= 1, o, "cpus_per_task", self.cpus_per_task, "be >= 1")
        for name in ("memory_gigabytes_per_node", "memory_gigabytes_per_cpu"):
            value = getattr(self, name)
            if value is not None:
                require(math.isfinite(value) and value > 0, o, name, value, "be a number of gigabytes > 0")
        if self.memory is not None:
            require(
                bool(_MEMORY.fullmatch(self.memory)), o, "memory", self.memory,
                "be a whole number with a unit K, M, G or T (e.g. '4G', '512M')",
            )
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
        if self.gpus is not None:
            require(self.gpus >= 1, o, "gpus", self.gpus, "be >= 1")
        if self.gres is not None:
            require(bool(_GRES.fullmatch(self.gres)), o, "gres", self.gres, "look like 'gpu:2' or 'gpu:a100:1'")
            if self.gpus is not None:
                raise OptionsError("slurm options 'gpus' and 'gres' both set --gres; give one")
        for name in ("log_output", "log_error", "directory", "python"):
            value = getattr(self, name)
            if value is not None:
                require(
                    bool(value.strip()) and "\n" not in value and "\x00" not in value, o, name, value,
                    "be a non-empty path on one line",
                )
        if self.python is not None:
            require(self.python.strip() == self.python, o, "python", self.python, "have no surrounding spaces")
        for line in self.script_directives:
            require(
                line.startswith("#SBATCH ") and "\n" not in line and len(line.split()) >= 2,
                o, "script_directives", line, "be single lines starting with '#SBATCH ' and an option",
            )
            self._check_reserved("script_directives", line.split()[1])
        for line in self.script_lines:
            require("\x00" not in line, o, "script_lines", line, "contain no NUL character")
        for arg in self.sbatch_args:
            require("\x00" not in arg, o, "sbatch_args", arg, "contain no NUL character")
            self._check_reserved("sbatch_args", arg)
        if self.array_size_max is not None:
            require(self.array_size_max >= 1, o, "array_size_max", self.array_size_max, "be >= 1")
        require(
            math.isfinite(self.seconds_poll) and self.seconds_poll >= 0, o, "seconds_poll", self.seconds_poll,
            "be a finite number >= 0",
        )
        require(
            self.seconds_command_timeout > 0, o, "seconds_command_timeout", self.seconds_command_timeout, "be > 0",
        )

    def _check_reserved(self, name: str, arg: str) -> None:
        opt = _reserved(arg)
        if opt is not None:
            raise OptionsError(
                f"slurm option {name!r} must not set {opt} (got {arg!r}): pycrew sets it itself "
                f"(job arrays, the monitor's --comment tag, --export for the worker tokens); "
                f"use export_environment=False instead of --export"
            )

    def directives(self) -> list[str]:
        """The resource directives these options ask for, as ``#SBATCH`` lines (no logs)."""
        lines: list[str] = []
        if self.partition:
            lines.append(f"--partition={self.partition}")
        if self.account:
            lines.append(f"--account={self.account}")
        if self.qos:
            lines.append(f"--qos={self.qos}")
        if self.cpus_per_task is not None:
            lines.append(f"--cpus-per-task={self.cpus_per_task}")
        if self.memory is not None:
            lines.append(f"--mem={self.memory.upper()}")
        if self.memory_gigabytes_per_node is not None:
            lines.append(f"--mem={gigabytes_to_megabytes(self.memory_gigabytes_per_node)}M")
        if self.memory_gigabytes_per_cpu is not None:
            lines.append(f"--mem-per-cpu={gigabytes_to_megabytes(self.memory_gigabytes_per_cpu)}M")
        if self.seconds_time is not None:
            lines.append(f"--time={seconds_to_slurm_time(self.seconds_time)}")
        if self.time is not None:
            lines.append(f"--time={self.time}")
        if self.gpus is not None:
            lines.append(f"--gres=gpu:{self.gpus}")
        if self.gres is not None:
            lines.append(f"--gres={self.gres}")
        return [f"#SBATCH {line}" for line in lines] + list(self.script_directives)
