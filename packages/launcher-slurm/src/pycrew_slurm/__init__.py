"""pycrew-slurm: the ``slurm`` launcher of pycrew. Workers run as SLURM job arrays.

Installed, it registers itself through the ``pycrew.launchers`` entry point; use it by name::

    import pycrew

    with pycrew.controller("slurm", workers=50, partition="short", memory="4G") as c:
        results = c.map(fit, params)

:class:`SlurmOptions` lists the options. :class:`SchedulerCLI` is the base class a
launcher for another batch scheduler (SGE, PBS Pro, LSF) subclasses.
"""

from __future__ import annotations

from pycrew_slurm.options import SlurmOptions
from pycrew_slurm.scheduler import JobRecord, SchedulerCLI, SchedulerError
from pycrew_slurm.slurm import SlurmCLI

__version__ = "0.1.0"

__all__ = ["JobRecord", "SchedulerCLI", "SchedulerError", "SlurmCLI", "SlurmOptions", "__version__"]
