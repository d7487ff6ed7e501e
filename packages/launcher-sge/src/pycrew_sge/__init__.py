"""pycrew-sge: the ``sge`` launcher of pycrew. Workers run as Son of Grid Engine array jobs.

Installed, it registers itself through the ``pycrew.launchers`` entry point; use it by name::

    import pycrew

    with pycrew.controller("sge", workers=50, queue="all.q", memory="4G") as c:
        results = c.map(fit, params)

:class:`SgeOptions` lists the options; :class:`SgeCLI` holds SGE's command syntax on
:class:`pycrew.scheduler.SchedulerCLI`.
"""

from __future__ import annotations

from pycrew_sge.options import SgeOptions
from pycrew_sge.sge import SgeCLI

__version__ = "0.1.0"

__all__ = ["SgeCLI", "SgeOptions", "__version__"]
