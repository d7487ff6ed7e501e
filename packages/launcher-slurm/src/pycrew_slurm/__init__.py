"""pycrew-slurm: the ``slurm`` launcher of pycrew. Workers run as SLURM job arrays.

Installed, it registers itself through the ``pycrew.launchers`` entry point; use it by name::

    import pycrew

    with pycrew.controller("slurm", workers=50, partition="short", memory="4G") as c:
        results = c.map(fit, params)

:class:`SlurmOptions` lists the options. The scheduler layer it is built on
(:class:`SchedulerCLI`, :class:`JobRecord`, :class:`SchedulerError`) lives in
:mod:`pycrew.scheduler`; the names are re-exported here for code written against
pycrew-slurm 0.1.
"""

from __future__ import annotations

from pycrew.scheduler import JobRecord, SchedulerCLI, SchedulerError, jobscript, jobtag
from pycrew_slurm.options import SlurmOptions
from pycrew_slurm.slurm import SlurmCLI

__version__ = "0.1.0"

__all__ = ["JobRecord", "SchedulerCLI", "SchedulerError", "SlurmCLI", "SlurmOptions", "__version__", "jobscript", "jobtag"]
