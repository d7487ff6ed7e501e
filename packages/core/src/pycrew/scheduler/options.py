"""What every batch-scheduler launcher's options share: :class:`SchedulerOptions`.

A scheduler launcher's options derive from this frozen dataclass, set ``owner`` (the
launcher's name, used in error messages) and ``directive_prefix``, add the scheduler's own
fields, and map the shared ones to directives. Every field here means the same on every
scheduler, so that ``pycrew.controller("sge", queue="short", cpus=4, memory="8G",
walltime="02:00:00")`` works after replacing ``"sge"`` with ``"pbs"``, ``"lsf"`` or ``"slurm"``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import ClassVar

from pycrew.errors import OptionsError
from pycrew.options import LauncherOptions, require

#: A size with a unit: ``4G``, ``512M``, ``1T``, ``800K`` (whole numbers; SLURM rejects ``1.5G``).
MEMORY_PATTERN = re.compile(r"^([1-9][0-9]*)([KMGT])$", re.IGNORECASE)
#: A walltime: ``HH:MM:SS`` or ``D-HH:MM:SS`` (hours may exceed 24 in the first form).
WALLTIME_PATTERN = re.compile(r"^(?:(\d+)-)?(\d+):([0-5]\d):([0-5]\d)$")
#: Queue, account and project names: no whitespace, no shell or directive syntax.
NAME_PATTERN = re.compile(r"^[\w.,+@-]+$")
_UNITS = {"K": 1 / 1024, "M": 1, "G": 1024, "T": 1024 * 1024}


def walltime_to_seconds(text: str) -> int:
    """``HH:MM:SS`` or ``D-HH:MM:SS`` as seconds.

    Raises:
        ValueError: ``text`` is neither.
    """
    match = WALLTIME_PATTERN.fullmatch(text)
    if match is None:
        raise ValueError(f"walltime must look like HH:MM:SS or D-HH:MM:SS, got {text!r}")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def seconds_to_hms(seconds: float) -> str:
    """Seconds as ``HH:MM:SS`` (hours unbounded), rounded up to whole seconds.

    >>> seconds_to_hms(90061)
    '25:01:01'
    """
    total = math.ceil(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}"


def memory_to_megabytes(text: str) -> int:
    """A size such as ``4G`` in megabytes (1 G = 1024 M), rounded up.

    Raises:
        ValueError: ``text`` is not a whole number with a unit K, M, G or T.
    """
    match = MEMORY_PATTERN.fullmatch(text)
    if match is None:
        raise ValueError(f"memory must be a whole number with a unit K, M, G or T (e.g. '4G'), got {text!r}")
    return max(1, math.ceil(int(match.group(1)) * _UNITS[match.group(2).upper()]))


@dataclass(frozen=True)
class SchedulerOptions(LauncherOptions):
    """Options every batch-scheduler launcher has (each launcher's docs map them to directives).

    Resources are per worker: each worker is one element of a job array.

    Attributes:
        queue: the queue (SLURM: partition) to submit to.
        cpus: CPU cores per worker, at least 1.
        memory: memory per worker, a whole number with a unit: ``"4G"``, ``"512M"``.
        walltime: the run-time limit per worker, ``"HH:MM:SS"`` or ``"D-HH:MM:SS"``.
        seconds_walltime: the same in seconds (rounded up); exclusive with ``walltime``.
        seconds_walltime_margin: with a run-time limit set, each worker leaves this long
            before it (once its running task ends; the controller starts a replacement
            if tasks wait), so that the scheduler does not kill it in the middle of a task:
            tasks shorter than the margin are never cut by the limit. The worker counts
            from its job's start (``script_lines`` included). At most half the limit;
            ``0`` lets workers run until the scheduler stops them.
        account: the account (or project) the jobs are charged to.
        script_directives: extra directive lines for the job script, each starting with
            the scheduler's directive prefix (``#SBATCH``, ``#$``, ``#PBS``, ``#BSUB``).
        script_lines: shell lines run before the worker starts (``module load python``,
            ``conda activate env``), without the worker's secret in their environment.
        python: the Python interpreter on the compute nodes. Default: the controller's.
        cwd: the workers' working directory, a path on the compute nodes (relative: to the
            controller's working directory; ``~`` is expanded). Default: the controller's
            working directory when the workers are submitted, as on this machine; a node
            that lacks it runs its worker where the scheduler started it, with a warning in
            the job's log. A ``cwd`` given and missing on a node fails that worker (exit 1,
            the reason in its log).
        inherit_sys_path: workers that run the controller's interpreter (``python`` unset,
            or the same path) import from the controller's ``sys.path`` first (see
            :func:`pycrew.sys_path_environment`: a module next to the controller's script is
            found by its workers) and start with ``python -P``; ``False`` leaves them their
            own path.
        log_output: the jobs' stdout file (the scheduler's patterns allowed). Default: a
            file per worker under ``<directory>/logs``.
        log_error: the jobs' stderr file. Default: the same file as ``log_output``.
        directory: the private directory (mode 0700) for job scripts (deleted right after
            submission) and default logs; on a file system the nodes see if the default
            logs are to be written.
        bin_directory: the directory holding the scheduler's commands (``qsub``,
            ``sbatch``, ...). Default: found on ``PATH``.
        submit_args: extra arguments for the submit command (not the ones pycrew sets).
        export_environment: ``True`` gives the jobs the submitting environment (the venv's
            ``PATH`` included); ``False`` passes only pycrew's own variables.
        array_size_max: at most this many workers per job array (more go out as several
            arrays; ``1`` submits one job per worker). Default: the site's limit.
        seconds_poll: the monitor lists the queue at most once per this many seconds.
        seconds_command_timeout: how long a scheduler command may take before it counts
            as failed (a submit that times out is looked for by its tag, never resubmitted
            blindly).
        command_attempts: tries of a command that fails transiently (daemon unreachable,
            busy, timed out), with exponential backoff 0.5 s, 1 s, 2 s, ... in between.
        seconds_retry_max: the longest wait between two tries.
        submit_failures_max: after this many launches in a row fail, stop submitting
            (circuit breaker) for ``seconds_submit_pause``: launches fail at once with the
            last error instead of flooding the scheduler.
        seconds_submit_pause: how long the circuit breaker stays open; then one launch is
            tried again.
    """

    owner: ClassVar[str] = "scheduler"
    #: The scheduler's directive prefix; ``script_directives`` lines must start with it.
    directive_prefix: ClassVar[str] = "#"

    queue: str | None = None
    cpus: int | None = None
    memory: str | None = None
    walltime: str | None = None
    seconds_walltime: float | None = None
    seconds_walltime_margin: float = 60.0
    account: str | None = None
    script_directives: tuple[str, ...] = ()
    script_lines: tuple[str, ...] = ()
    python: str | None = None
    cwd: str | None = None
    inherit_sys_path: bool = True
    log_output: str | None = None
    log_error: str | None = None
    directory: str | None = None
    bin_directory: str | None = None
    submit_args: tuple[str, ...] = ()
    export_environment: bool = True
    array_size_max: int | None = None
    seconds_poll: float = 1.0
    seconds_command_timeout: float = 60.0
    command_attempts: int = 4
    seconds_retry_max: float = 8.0
    submit_failures_max: int = 5
    seconds_submit_pause: float = 60.0

    def validate(self) -> None:
        """Check the shared fields beyond their types (subclasses call this first).

        Raises:
            OptionsError: naming the option, its value and what it must be.
        """
        o = self.owner
        for name in ("queue", "account"):
            value = getattr(self, name)
            if value is not None:
                require(bool(NAME_PATTERN.fullmatch(value)), o, name, value, "be a non-empty name without spaces")
        if self.cpus is not None:
            require(self.cpus >= 1, o, "cpus", self.cpus, "be >= 1")
        if self.memory is not None:
            require(
                bool(MEMORY_PATTERN.fullmatch(self.memory)), o, "memory", self.memory,
                "be a whole number with a unit K, M, G or T (e.g. '4G', '512M')",
            )
        if self.walltime is not None:
            require(
                bool(WALLTIME_PATTERN.fullmatch(self.walltime)), o, "walltime", self.walltime,
                "look like HH:MM:SS or D-HH:MM:SS (e.g. '02:00:00'); or give seconds_walltime",
            )
        if self.seconds_walltime is not None:
            require(
                math.isfinite(self.seconds_walltime) and self.seconds_walltime > 0, o, "seconds_walltime",
                self.seconds_walltime, "be a number of seconds > 0",
            )
            if self.walltime is not None:
                raise OptionsError(f"{o} options 'walltime' and 'seconds_walltime' both set the run-time limit; give one")
        require(
            math.isfinite(self.seconds_walltime_margin) and self.seconds_walltime_margin >= 0, o,
            "seconds_walltime_margin", self.seconds_walltime_margin, "be a finite number of seconds >= 0",
        )
        for name in ("python", "cwd", "log_output", "log_error", "directory", "bin_directory"):
            value = getattr(self, name)
            if value is not None:
                require(
                    bool(value.strip()) and value.strip() == value and "\n" not in value and "\x00" not in value,
                    o, name, value, "be a non-empty path on one line, without surrounding spaces",
                )
        prefix = self.directive_prefix + " "
        for line in self.script_directives:
            require(
                line.startswith(prefix) and "\n" not in line and len(line.split()) >= 2,
                o, "script_directives", line, f"be single lines starting with {prefix!r} and an option",
            )
        for line in self.script_lines:
            require("\x00" not in line, o, "script_lines", line, "contain no NUL character")
        for arg in self.submit_args:
            require("\x00" not in arg and "\n" not in arg, o, "submit_args", arg, "be one line without NUL")
        if self.array_size_max is not None:
            require(self.array_size_max >= 1, o, "array_size_max", self.array_size_max, "be >= 1")
        require(
            math.isfinite(self.seconds_poll) and self.seconds_poll >= 0, o, "seconds_poll", self.seconds_poll,
            "be a finite number >= 0",
        )
        require(
            math.isfinite(self.seconds_command_timeout) and self.seconds_command_timeout > 0, o,
            "seconds_command_timeout", self.seconds_command_timeout, "be > 0",
        )
        require(self.command_attempts >= 1, o, "command_attempts", self.command_attempts, "be >= 1")
        require(
            math.isfinite(self.seconds_retry_max) and self.seconds_retry_max >= 0, o, "seconds_retry_max",
            self.seconds_retry_max, "be a finite number >= 0",
        )
        require(self.submit_failures_max >= 1, o, "submit_failures_max", self.submit_failures_max, "be >= 1")
        require(
            math.isfinite(self.seconds_submit_pause) and self.seconds_submit_pause >= 0, o, "seconds_submit_pause",
            self.seconds_submit_pause, "be a finite number >= 0",
        )

    def walltime_seconds(self) -> int | None:
        """The run-time limit in whole seconds (``walltime`` or ``seconds_walltime``), if set."""
        if self.walltime is not None:
            return walltime_to_seconds(self.walltime)
        if self.seconds_walltime is not None:
            return math.ceil(self.seconds_walltime)
        return None

    def time_limit_seconds(self) -> float | None:
        """Each worker's run-time limit in seconds as the options set it, or ``None`` (the
        queue's default applies, which pycrew does not know). A launcher whose scheduler
        takes its own time syntax (SLURM's ``time``) overrides it."""
        return self.walltime_seconds()

    def seconds_worker_life(self) -> float | None:
        """How long a worker serves before it leaves: the run-time limit less
        ``seconds_walltime_margin`` (at most half the limit), or ``None`` without a limit."""
        limit = self.time_limit_seconds()
        if limit is None:
            return None
        return limit - min(self.seconds_walltime_margin, limit / 2)

    def memory_megabytes(self) -> int | None:
        """``memory`` in megabytes (rounded up), if set."""
        return None if self.memory is None else memory_to_megabytes(self.memory)

    def check_reserved(
        self, name: str, arg: str, reserved: tuple[str, ...], why: str, attached: bool = True
    ) -> None:
        """Reject a submit argument or directive option pycrew sets itself.

        ``reserved`` holds options such as ``--array`` or ``-t``; ``arg`` matches one if it
        is the option or ``option=value``, or, with ``attached`` (getopt-style commands such
        as sbatch, where ``-a5`` means ``-a 5``), a one-letter option with its value attached.
        Schedulers whose options are whole words after one dash (SGE's ``-terse``) pass
        ``attached=False``.

        Raises:
            OptionsError: naming the option, the argument and why pycrew sets it.
        """
        for opt in reserved:
            short = attached and len(opt) == 2 and opt.startswith("-") and not arg.startswith("--")
            if arg == opt or arg.startswith(opt + "=") or (short and arg.startswith(opt)):
                raise OptionsError(
                    f"{self.owner} option {name!r} must not set {opt} (got {arg!r}): pycrew sets it itself ({why})"
                )
