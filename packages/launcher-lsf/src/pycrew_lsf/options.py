"""The LSF launcher's options: typed, validated, and rendered as ``#BSUB`` directives.

What each option becomes (IBM Spectrum LSF 10.1 command reference, ``bsub``):

- ``queue`` -> ``-q``; ``account`` -> ``-P`` (the LSF project);
- ``cpus`` -> ``-n N`` and ``-R "span[hosts=1]"`` (all of a worker's slots on one host);
- ``memory`` -> ``-R "rusage[mem=X]"`` (reservation, per host by default, so per worker
  here) and ``-M X`` (the limit), ``X`` a plain number in the site's
  ``LSF_UNIT_FOR_LIMITS`` (``memory_unit``): bare numbers are what every LSF version
  takes; unit suffixes came with 10.1.0.2;
- ``walltime`` / ``seconds_walltime`` -> ``-W H:MM`` (LSF counts whole minutes: rounded up);
- ``resources`` -> one more ``-R "..."`` each (``select[...]``, ``order[...]``, ...).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import ClassVar

from pycrew import OptionsError, require
from pycrew.scheduler import SchedulerOptions

#: Units LSF_UNIT_FOR_LIMITS may name, in megabytes each.
MEMORY_UNITS = {"KB": 1 / 1024, "MB": 1, "GB": 1024, "TB": 1024**2, "PB": 1024**3, "EB": 1024**4}
#: LSF's own default for LSF_UNIT_FOR_LIMITS (lsf.conf) when a site does not set it.
DEFAULT_MEMORY_UNIT = "KB"
#: bsub options pycrew sets itself, and why: users must not pass them.
RESERVED_BSUB_OPTIONS: dict[str, str] = {
    "-J": "the job array's name and indices",
    "-Jd": "the job description holds the monitor's tag",
    "-env": "pycrew passes the worker's secret through the environment; use export_environment",
    "-o": "the output file is where logs() looks; use log_output",
    "-oo": "the output file is where logs() looks; use log_output",
    "-e": "use log_error",
    "-eo": "use log_error",
    "-K": "bsub would wait for the job to end",
    "-cwd": "the job script enters the working directory; use the cwd option",
    "-I": "workers are batch jobs, not interactive ones",
    "-Ip": "workers are batch jobs, not interactive ones",
    "-Is": "workers are batch jobs, not interactive ones",
    "-IS": "workers are batch jobs, not interactive ones",
    "-ISp": "workers are batch jobs, not interactive ones",
    "-ISs": "workers are batch jobs, not interactive ones",
    "-IX": "workers are batch jobs, not interactive ones",
}
#: A resource requirement string: one line, no double quote (it is written inside one).
_RESOURCE = re.compile(r'^[^"\n\x00]+$')


def seconds_to_lsf_walltime(seconds: float) -> str:
    """``seconds`` as bsub's ``-W [hour:]minute``, rounded up to whole minutes (LSF's unit).

    >>> seconds_to_lsf_walltime(5400)
    '1:30'
    >>> seconds_to_lsf_walltime(61)
    '0:02'
    """
    minutes = max(1, math.ceil(seconds / 60))
    return f"{minutes // 60}:{minutes % 60:02d}"


def megabytes_in_unit(megabytes: int, unit: str) -> int:
    """``megabytes`` as a whole number of ``unit`` (one of :data:`MEMORY_UNITS`), rounded up.

    >>> megabytes_in_unit(4096, "KB")
    4194304
    >>> megabytes_in_unit(1500, "GB")
    2

    Raises:
        ValueError: ``unit`` is not one of :data:`MEMORY_UNITS`.
    """
    size = MEMORY_UNITS.get(unit.upper())
    if size is None:
        raise ValueError(f"memory unit must be one of {', '.join(MEMORY_UNITS)}, got {unit!r}")
    return max(1, math.ceil(megabytes / size))


@dataclass(frozen=True)
class LsfOptions(SchedulerOptions):
    """Options of the ``lsf`` launcher; each becomes a ``#BSUB`` directive or script line.

    Every worker is one element of a job array (``bsub -J "pycrew-<name>[1-n]"``); resources
    are per worker. The shared options (:class:`pycrew.scheduler.SchedulerOptions`) map as
    the module docstring says; these are LSF's own:

    Attributes:
        memory_unit: the unit the site's LSF reads bare memory numbers in: its
            ``LSF_UNIT_FOR_LIMITS`` (``KB``, ``MB``, ``GB``, ``TB``, ``PB`` or ``EB``).
            Default: read from ``$LSF_ENVDIR/lsf.conf`` (or ``/etc/lsf.conf``) when the
            controller first submits, else LSF's own default, ``KB``.
        resources: extra resource requirement strings, one ``-R "..."`` each, e.g.
            ``("select[avx2]",)``. pycrew's own ``-R`` (``rusage[mem=...]``,
            ``span[hosts=1]``) is separate; do not repeat those sections here.
    """

    owner: ClassVar[str] = "lsf"
    directive_prefix: ClassVar[str] = "#BSUB"

    memory_unit: str | None = None
    resources: tuple[str, ...] = ()

    def validate(self) -> None:
        """Check values beyond their types.

        Raises:
            OptionsError: naming the option, its value and what it must be.
        """
        super().validate()
        o = self.owner
        if self.memory_unit is not None:
            require(
                self.memory_unit.upper() in MEMORY_UNITS, o, "memory_unit", self.memory_unit,
                f"be the site's LSF_UNIT_FOR_LIMITS, one of {', '.join(MEMORY_UNITS)}",
            )
        for text in self.resources:
            require(
                bool(_RESOURCE.fullmatch(text)) and bool(text.strip()), o, "resources", text,
                "be non-empty resource requirement strings on one line without '\"' (e.g. 'select[avx2]')",
            )
        for name in ("log_output", "log_error"):
            value = getattr(self, name)
            if value is not None:
                require('"' not in value, o, name, value, "contain no '\"' (it is quoted in a #BSUB line)")
        for line in self.script_directives:
            self._check_reserved("script_directives", line.split()[1])
        for arg in self.submit_args:
            self._check_reserved("submit_args", arg)

    def _check_reserved(self, name: str, arg: str) -> None:
        why = RESERVED_BSUB_OPTIONS.get(arg)
        if why is not None:
            raise OptionsError(f"lsf option {name!r} must not set {arg} (got {arg!r}): pycrew sets it itself ({why})")

    def resource_requirement(self) -> str | None:
        """pycrew's own ``-R`` string: ``rusage[mem=X]`` and ``span[hosts=1]``, or ``None``.

        ``X`` is in ``memory_unit``, which must be known (resolved) by then.

        Raises:
            OptionsError: ``memory`` is set but ``memory_unit`` is not.
        """
        sections: list[str] = []
        memory = self.memory_limit()
        if memory is not None:
            sections.append(f"rusage[mem={memory}]")
        if self.cpus is not None:
            sections.append("span[hosts=1]")
        return " ".join(sections) or None

    def memory_limit(self) -> int | None:
        """``memory`` as a bare number in ``memory_unit`` (rounded up), if set.

        Raises:
            OptionsError: ``memory`` is set but ``memory_unit`` is not.
        """
        megabytes = self.memory_megabytes()
        if megabytes is None:
            return None
        if self.memory_unit is None:
            raise OptionsError(
                "lsf option 'memory_unit' must be known to write 'memory' as LSF reads it: set it to the "
                "site's LSF_UNIT_FOR_LIMITS (KB, MB, GB, ...)"
            )
        return megabytes_in_unit(megabytes, self.memory_unit)

    def directives(self) -> list[str]:
        """The resource directives these options ask for, as ``#BSUB`` lines (no name, array, logs).

        Raises:
            OptionsError: ``memory`` is set but ``memory_unit`` is not resolved.
        """
        lines: list[str] = []
        if self.queue:
            lines.append(f"-q {self.queue}")
        if self.account:
            lines.append(f"-P {self.account}")
        if self.cpus is not None:
            lines.append(f"-n {self.cpus}")
        requirement = self.resource_requirement()
        if requirement is not None:
            lines.append(f'-R "{requirement}"')
        memory = self.memory_limit()
        if memory is not None:
            lines.append(f"-M {memory}")
        seconds = self.walltime_seconds()
        if seconds is not None:
            lines.append(f"-W {seconds_to_lsf_walltime(seconds)}")
        lines += [f'-R "{text}"' for text in self.resources]
        return [f"#BSUB {line}" for line in lines] + list(self.script_directives)
