"""pycrew-pbs: the ``pbs`` launcher of pycrew. Workers run as PBS job arrays.

PBS Professional / OpenPBS (the default) and TORQUE (``flavour="torque"``). Installed, it
registers itself through the ``pycrew.launchers`` entry point; use it by name::

    import pycrew

    with pycrew.controller("pbs", workers=50, queue="workq", cpus=2, memory="4G") as c:
        results = c.map(fit, params)

:class:`PbsOptions` lists the options; :class:`PbsCLI` and :class:`TorqueCLI` hold the
commands' syntax on top of :mod:`pycrew.scheduler`.
"""

from __future__ import annotations

from pycrew_pbs.options import PbsOptions
from pycrew_pbs.pbs import PbsCLI
from pycrew_pbs.torque import TorqueCLI

__version__ = "0.1.0"

__all__ = ["PbsCLI", "PbsOptions", "TorqueCLI", "__version__"]
