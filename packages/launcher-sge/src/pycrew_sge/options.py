"""The SGE launcher's options: typed, validated, and rendered as ``#$`` directives.

Son of Grid Engine reads ``#$`` lines at the top of a job script as qsub options (see
qsub(1) and sge_types(1) of Grid Engine 8.1.9). The shared options of
:class:`pycrew.scheduler.SchedulerOptions` map as follows:

============================ ==========================================================
option                       directive
============================ ==========================================================
``queue``                    ``#$ -q <queue>``
``cpus``                     ``#$ -pe <parallel_environment> <cpus>``
``memory``                   ``#$ -l <memory_resource>=<memory / cpus>`` (per slot)
``walltime``                 ``#$ -l h_rt=HH:MM:SS``
``account``                  ``#$ -A <account>``
``project``                  ``#$ -P <project>``
``resources``                ``#$ -l <resource>`` each
``log_output``               ``#$ -o <path>``
``log_error``                ``#$ -e <path>``; unset: ``#$ -j y`` (stderr into the output)
``script_directives``        verbatim ``#$ ...`` lines
``submit_args``              extra ``qsub`` arguments
``export_environment``       ``qsub -V``
============================ ==========================================================
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import ClassVar

from pycrew import OptionsError, require
from pycrew.scheduler import SchedulerOptions, seconds_to_hms

#: qsub options pycrew sets itself; users must not pass them (they would break the array,
#: the monitor's job name and context tag, the way the worker secret reaches the job, or
#: the script itself).
RESERVED_QSUB_OPTIONS = (
    "-t", "-N", "-ac", "-sc", "-dc", "-terse", "-V", "-v", "-b", "-C", "-sync", "-@", "-j", "-o", "-e", "-cwd", "-wd",
)
#: Why, for the error message.
_RESERVED_WHY = (
    "-t is the job array, -N the job name and -ac/-sc/-dc the job context holding the tag the monitor "
    "finds pycrew's workers by; -V/-v decide the job's environment (use export_environment); -o/-e/-j are "
    "the logs (use log_output/log_error); -cwd/-wd the working directory (use the cwd option); -terse, -sync, -b, -C and -@ would break the submission or the script"
)
#: Queue, parallel environment, project and complex (resource) names: no whitespace, no
#: shell or directive syntax (sge_types(1): names may not hold ``\n \t \r / : , @ \ * ?`` and spaces).
_NAME = re.compile(r"^\w[\w.-]*$")
#: One ``-l`` request ``name=value`` (or a bare boolean ``name``); values hold no space or comma.
_RESOURCE = re.compile(r"^[A-Za-z_][\w.-]*(?:=[^\s,'\"]+)?$")
#: ``-l`` resources pycrew derives from options: asking for them in ``resources`` too would clash.
_DERIVED = ("h_rt",)


def megabytes_per_slot(megabytes: int, slots: int) -> int:
    """``megabytes`` of a whole worker shared by ``slots`` slots, per slot, rounded up.

    >>> megabytes_per_slot(4096, 3)
    1366
    """
    return max(1, math.ceil(megabytes / slots))


@dataclass(frozen=True)
class SgeOptions(SchedulerOptions):
    """Options of the ``sge`` launcher; each becomes a ``#$`` directive or a script line.

    Every worker is one task of an SGE array job (``qsub -t 1-n``); resources are per
    worker. See the module docstring for the table of options and directives.

    Attributes:
        queue: ``-q``: a queue, a queue instance (``all.q@node1``) or a comma-separated list.
        cpus: slots per worker, asked for as ``-pe <parallel_environment> <cpus>``.
        parallel_environment: the parallel environment ``cpus`` are asked from (the site's
            PE whose allocation rule is ``$pe_slots``, so that a worker's slots are on one
            host). Default ``"smp"``.
        memory: memory per worker (``"4G"``), asked for as ``-l <memory_resource>=``. SGE
            counts ``h_vmem`` (and most memory resources) per slot: with ``cpus`` set the
            value asked for is ``memory / cpus`` (rounded up to whole megabytes), so that
            the worker gets ``memory`` in total.
        memory_resource: the resource ``memory`` is asked as (``h_vmem``, or the site's
            ``mem_free``, ``m_mem_free``, ``virtual_free``). Default ``"h_vmem"``.
        walltime: ``-l h_rt=HH:MM:SS`` (``"D-HH:MM:SS"`` accepted and converted).
        seconds_walltime: the same in seconds.
        account: ``-A`` (SGE's accounting string).
        project: ``-P``, the project the jobs belong to.
        resources: further ``-l`` requests, one ``name=value`` each (``"gpu=1"``,
            ``"arch=lx-amd64"``).
        log_output: ``-o`` path; SGE expands ``$JOB_ID``, ``$TASK_ID``, ``$JOB_NAME``,
            ``$USER``, ``$HOME`` and ``$HOSTNAME``. Default
            ``<directory>/logs/$JOB_NAME-$JOB_ID.$TASK_ID.log``. The directory must exist on
            the execution host (a missing one puts the job in error state ``Eqw``).
        log_error: ``-e`` path; default: stderr goes into the output file (``-j y``).
        script_directives: extra ``#$ ...`` lines, each starting with ``#$ ``.
        submit_args: extra ``qsub`` arguments (not the ones pycrew sets: ``-t -N -ac -V -v
            -o -e -j ...``).
        export_environment: ``True`` submits with ``-V`` (the job gets the submitting
            environment, the venv's ``PATH`` included). SGE shows a job's environment to
            every user of the cluster (``qstat -j``): pycrew never puts its secret there,
            but everything else in your environment is visible. ``False`` gives the job
            SGE's minimal environment (use ``script_lines`` to set it up).
        secret_file: ``True`` (default) hands each job array its secret (the batch key)
            through a file in ``<directory>/keys`` (mode 0600, removed once the array has
            left the queue): ``directory`` must then be on a file system the execution
            hosts see, as the home directory is on most SGE clusters. ``False`` passes it
            in the job's environment (``-v PYCREW_TOKEN``), where ``qstat -j`` shows it to
            every user of the cluster: only for clusters whose users all trust each other.
    """

    owner: ClassVar[str] = "sge"
    directive_prefix: ClassVar[str] = "#$"

    parallel_environment: str = "smp"
    memory_resource: str = "h_vmem"
    project: str | None = None
    resources: tuple[str, ...] = ()
    secret_file: bool = True

    def validate(self) -> None:
        """Check values beyond their types.

        Raises:
            OptionsError: naming the option, its value and what it must be.
        """
        super().validate()
        o = self.owner
        if self.account is not None:
            require(
                ":" not in self.account and "@" not in self.account, o, "account", self.account,
                "have no ':' or '@' (SGE rejects them in object names)",
            )
        for name in ("parallel_environment", "memory_resource", "project"):
            value = getattr(self, name)
            if value is not None:
                require(bool(_NAME.fullmatch(value)), o, name, value,
                        "be an SGE name: letters, digits, '_', '.' or '-', not starting with '.' or '-'")
        for name in ("log_output", "log_error", "directory"):
            value = getattr(self, name)
            if value is not None:
                require('"' not in value, o, name, value, "have no '\"' (it would end the path in the #$ directive)")
        for request in self.resources:
            require(
                bool(_RESOURCE.fullmatch(request)), o, "resources", request,
                "be one SGE resource request 'name=value' (or a boolean 'name') without spaces or commas",
            )
            name = request.partition("=")[0]
            if name in _DERIVED or (name == self.memory_resource and self.memory is not None):
                raise OptionsError(
                    f"sge option 'resources' asks for {name!r} ({request!r}), which pycrew derives from "
                    f"{'walltime' if name == 'h_rt' else 'memory'}: give it there instead"
                )
        for line in self.script_directives:
            self._check_reserved("script_directives", line.split()[1])
        for arg in self.submit_args:
            self._check_reserved("submit_args", arg)

    def _check_reserved(self, name: str, arg: str) -> None:
        self.check_reserved(name, arg, RESERVED_QSUB_OPTIONS, _RESERVED_WHY, attached=False)

    def memory_per_slot(self) -> str | None:
        """``memory`` per slot as an SGE memory value (``"1366M"``), if set."""
        megabytes = self.memory_megabytes()
        if megabytes is None:
            return None
        return f"{megabytes_per_slot(megabytes, self.cpus or 1)}M"

    def directives(self) -> list[str]:
        """The resource directives these options ask for, as ``#$`` lines (no name, array or logs)."""
        lines: list[str] = []
        if self.queue:
            lines.append(f"-q {self.queue}")
        if self.cpus is not None:
            lines.append(f"-pe {self.parallel_environment} {self.cpus}")
        memory = self.memory_per_slot()
        if memory is not None:
            lines.append(f"-l {self.memory_resource}={memory}")
        seconds = self.walltime_seconds()
        if seconds is not None:
            lines.append(f"-l h_rt={seconds_to_hms(seconds)}")
        if self.account:
            lines.append(f"-A {self.account}")
        if self.project:
            lines.append(f"-P {self.project}")
        lines += [f"-l {request}" for request in self.resources]
        return [f"#$ {line}" for line in lines] + list(self.script_directives)
