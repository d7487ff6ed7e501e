"""The PBS launcher's options: typed, validated, and rendered as ``#PBS`` directives.

Two flavours of PBS share the launcher: PBS Professional / OpenPBS (``"pbspro"``, the
default) and TORQUE (``"torque"``). They read the same ``#PBS`` directives except for the
resource request: PBS Pro asks for a chunk (``-l select=1:ncpus=4:mem=8192mb``), TORQUE for
nodes and processors (``-l nodes=1:ppn=4,mem=8192mb``). Sources: the OpenPBS man pages
qsub(1B), pbs_resources(7B) and pbs_job_attributes(7B); TORQUE's qsub(1B).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar, Literal

from pycrew import OptionsError, require
from pycrew.scheduler import SchedulerOptions, seconds_to_hms

#: The PBS flavours the launcher speaks.
FLAVOURS = ("pbspro", "torque")
#: qsub options pycrew sets itself; users must not pass them (they would break arrays, the
#: monitor's tag and job name, the token's way into the job, or where pycrew finds the logs).
RESERVED_QSUB_OPTIONS = ("-J", "-t", "-N", "-v", "-V", "-o", "-e", "-j", "-k", "-z", "-I", "-C", "-d", "-w")
#: Why, for the error message.
_RESERVED_WHY = (
    "the array (-J/-t), the job name (-N) and the tag in Variable_List (-v) are how the monitor finds "
    "pycrew's workers; -V/-v carry the worker token (use export_environment=False instead of -v); "
    "-o/-e/-j/-k are the logs (use log_output/log_error); TORQUE's -d/-w the working directory (use the cwd "
    "option); -z hides the job id, -I and -C break the script"
)
#: A resource request ``name=value`` (one ``-l`` value; PBS sizes, times, strings).
_RESOURCE = re.compile(r"^[A-Za-z_][\w.-]*=[^\s,'\"]+$")
#: A chunk resource (PBS Pro ``ngpus=1``) or TORQUE node property (``gpus=1``, ``bigmem``).
_CHUNK = re.compile(r"^[A-Za-z_][\w.-]*(?:=[\w.+-]+)?$")
#: ``-l`` resources pycrew derives from cpus, memory and walltime (or that would fight them).
_DERIVED = ("select", "nodes", "ncpus", "ppn", "mem", "walltime")


@dataclass(frozen=True)
class PbsOptions(SchedulerOptions):
    """Options of the ``pbs`` launcher; each becomes a ``#PBS`` directive or script line.

    Every worker is one subjob of a job array (``-J 1-n`` on PBS Pro, ``-t 1-n`` on TORQUE;
    a batch of one worker is a plain job); resources are per worker. The shared options of
    :class:`pycrew.scheduler.SchedulerOptions` map as follows:

    ============================ ================================================================
    option                       directive
    ============================ ================================================================
    ``queue``                    ``#PBS -q <queue>``
    ``account``                  ``#PBS -A <account>``
    ``cpus``, ``memory``         PBS Pro: ``#PBS -l select=1:ncpus=N:mem=Mmb``;
                                 TORQUE: ``#PBS -l nodes=1:ppn=N,mem=Mmb``
    ``walltime``                 ``#PBS -l walltime=HH:MM:SS``
    ``log_output``               ``#PBS -o <path>``
    ``log_error``                ``#PBS -e <path>``; unset: ``#PBS -j oe`` (stderr into the output)
    ``script_directives``        verbatim ``#PBS ...`` lines
    ``submit_args``              extra ``qsub`` arguments
    ``export_environment``       ``qsub -V``; ``False``: ``-v PYCREW_TOKEN`` only
    ============================ ================================================================

    Attributes:
        flavour: ``"pbspro"`` (PBS Professional, OpenPBS) or ``"torque"`` (TORQUE 4-6).
        resources: extra ``-l`` requests, each ``name=value`` (``"place=scatter"``,
            ``"software=abaqus"``); ``select``, ``nodes``, ``ncpus``, ``ppn``, ``mem`` and
            ``walltime`` come from ``cpus``, ``memory``, ``walltime`` and ``chunk_resources``.
        chunk_resources: resources of the worker's chunk, added to PBS Pro's ``select``
            statement (``"ngpus=1"`` gives ``select=1:ncpus=4:ngpus=1``) or to TORQUE's
            ``nodes`` request (``"gpus=1"`` gives ``nodes=1:ppn=4:gpus=1``; a bare node
            property such as ``"bigmem"`` is allowed there).
        direct_write: PBS Pro only: ``#PBS -k oed``, so the output file is written where
            ``log_output`` says while the job runs (PBS's ``direct_write``; the worker's
            logs can then be read before it ends). ``False`` leaves PBS's default: the
            output is copied there when the job ends.
    """

    owner: ClassVar[str] = "pbs"
    directive_prefix: ClassVar[str] = "#PBS"

    flavour: Literal["pbspro", "torque"] = "pbspro"
    resources: tuple[str, ...] = ()
    chunk_resources: tuple[str, ...] = ()
    direct_write: bool = True

    def validate(self) -> None:
        """Check values beyond their types.

        Raises:
            OptionsError: naming the option, its value and what it must be.
        """
        super().validate()
        o = self.owner
        for entry in self.resources:
            require(
                bool(_RESOURCE.fullmatch(entry)), o, "resources", entry,
                "be single 'name=value' resource requests without spaces, commas or quotes (e.g. 'place=scatter')",
            )
            name = entry.partition("=")[0].lower()
            if name in _DERIVED:
                raise OptionsError(
                    f"pbs option 'resources' must not request {name!r} (got {entry!r}): pycrew builds select/nodes, "
                    "mem and walltime from the options cpus, memory, walltime and chunk_resources; use those"
                )
        for entry in self.chunk_resources:
            pattern_ok = bool(_CHUNK.fullmatch(entry)) and (self.flavour == "torque" or "=" in entry)
            require(
                pattern_ok, o, "chunk_resources", entry,
                "be 'name=value' chunk resources (e.g. 'ngpus=1'; on TORQUE also a node property such as 'bigmem')",
            )
            name = entry.partition("=")[0].lower()
            if name in _DERIVED:
                raise OptionsError(
                    f"pbs option 'chunk_resources' must not set {name!r} (got {entry!r}): use the options cpus and memory"
                )
        for name in ("log_output", "log_error"):
            value = getattr(self, name)
            if value is not None:
                require('"' not in value, o, name, value, "contain no double quote (it goes into a #PBS directive)")
        for line in self.script_directives:
            self._check_reserved("script_directives", line.split()[1])
        for arg in self.submit_args:
            self._check_reserved("submit_args", arg)
            if re.match(r"^(?:-W\s*)?block\s*=", arg):
                raise OptionsError(
                    f"pbs option 'submit_args' must not set -W block (got {arg!r}): qsub would wait for the job to end"
                )

    def _check_reserved(self, name: str, arg: str) -> None:
        self.check_reserved(name, arg, RESERVED_QSUB_OPTIONS, _RESERVED_WHY)

    def resource_requests(self) -> list[str]:
        """The ``-l`` values these options ask for, in the flavour's syntax.

        >>> PbsOptions(cpus=4, memory="8G", walltime="02:00:00").resource_requests()
        ['select=1:ncpus=4:mem=8192mb', 'walltime=02:00:00']
        >>> PbsOptions(flavour="torque", cpus=4, memory="8G").resource_requests()
        ['nodes=1:ppn=4,mem=8192mb']
        """
        requests: list[str] = []
        megabytes = self.memory_megabytes()
        if self.flavour == "pbspro":
            chunk = [f"ncpus={self.cpus}"] if self.cpus is not None else []
            chunk += [f"mem={megabytes}mb"] if megabytes is not None else []
            chunk += list(self.chunk_resources)
            if chunk:
                requests.append("select=1:" + ":".join(chunk))
        else:
            parts: list[str] = []
            if self.cpus is not None or self.chunk_resources:
                nodes = "nodes=1" + (f":ppn={self.cpus}" if self.cpus is not None else "")
                parts.append(nodes + "".join(f":{c}" for c in self.chunk_resources))
            if megabytes is not None:
                parts.append(f"mem={megabytes}mb")
            if parts:
                requests.append(",".join(parts))
        seconds = self.walltime_seconds()
        if seconds is not None:
            requests.append(f"walltime={seconds_to_hms(seconds)}")
        return requests + list(self.resources)

    def directives(self) -> list[str]:
        """The queue, account and resource directives, as ``#PBS`` lines (no name, array or logs)."""
        lines: list[str] = []
        if self.queue:
            lines.append(f"#PBS -q {self.queue}")
        if self.account:
            lines.append(f"#PBS -A {self.account}")
        lines += [f"#PBS -l {request}" for request in self.resource_requests()]
        return lines + list(self.script_directives)
