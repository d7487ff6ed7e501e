"""pycrew-lsf: the ``lsf`` launcher of pycrew. Workers run as IBM Spectrum LSF job arrays.

Installed, it registers itself through the ``pycrew.launchers`` entry point; use it by name::

    import pycrew

    with pycrew.controller("lsf", workers=50, queue="short", memory="4G", walltime="01:00:00") as c:
        results = c.map(fit, params)

:class:`LsfOptions` lists the options; :class:`LsfCLI` is LSF's syntax for the scheduler
layer in core (:mod:`pycrew.scheduler`).
"""

from __future__ import annotations

from pycrew_lsf.lsf import LsfCLI
from pycrew_lsf.options import LsfOptions

__version__ = "0.1.0"

__all__ = ["LsfCLI", "LsfOptions", "__version__"]
