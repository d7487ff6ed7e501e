"""The ``slurm`` launcher's plugin (entry point ``pycrew.launchers: slurm = "pycrew_slurm.plugin:plugin"``).

Core calls its hooks only for launchers named ``slurm``. Each hook uses the
:class:`~pycrew_slurm.SlurmCLI` for the launcher's options: one per distinct options value
(and ``SLURM_CONF``) in this process, kept by :class:`pycrew.LauncherPlugin`'s client cache,
so the site's ``MaxArraySize`` is asked once and the monitor's polling cadence holds
across calls.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Sequence
from typing import Any

import pycrew
from pycrew import LauncherInfo, WorkerCall, WorkerInfo
from pycrew_slurm.options import SlurmOptions
from pycrew_slurm.slurm import SlurmCLI

NAME = "slurm"
#: What the conformance suite may test (names of ``pycrew.LAUNCHER_CAPABILITIES``): the monitor
#: lists pycrew's jobs only, tagged with controller id and instance; ``WorkerInfo.host`` is
#: the node (squeue's NodeList, the name the task sees); jobs of ended controllers stay
#: listed (orphans); ``scancel`` reaches queued and never-connected workers. Not ``pid``:
#: squeue does not know the worker's process id on the node.
CAPABILITIES = frozenset({"monitor", "host", "orphans", "never_connected"})
#: After its controller dies, a running worker exits after seconds_idle; this covers what
#: SLURM adds before the job leaves squeue: the job's completion (epilog scripts on real
#: sites, the COMPLETING state) and the monitor's squeue cadence. Queued jobs of a dead
#: controller are the monitor's job (``pycrew monitor``, orphans).
SECONDS_EXIT_MARGIN = 60.0


class SlurmPlugin(pycrew.LauncherPlugin[SlurmOptions, SlurmCLI]):
    """Workers as SLURM job arrays; handles are ``"<job id>_<index>"``."""

    name = NAME
    options_type = SlurmOptions
    summary = "workers as SLURM job arrays (sbatch, squeue, scancel)"
    remote = True
    capabilities = CAPABILITIES
    seconds_exit_margin = SECONDS_EXIT_MARGIN

    def create_client(self, options: SlurmOptions) -> SlurmCLI:
        """The :class:`SlurmCLI` for ``options`` (it runs nothing until used)."""
        return SlurmCLI(self.name, options)

    def client_key(self, options: SlurmOptions) -> Hashable:
        """The options and ``SLURM_CONF``: another configuration is another cluster."""
        return (os.environ.get("SLURM_CONF"), super().client_key(options))

    def launch(self, launcher: LauncherInfo, options: SlurmOptions, calls: Sequence[WorkerCall]) -> list[Any]:
        """Submit the batch as job array(s); return handles ``"<job id>_<index>"`` in call order."""
        return self.client(options).launch(launcher, calls)

    def terminate(self, launcher: LauncherInfo, options: SlurmOptions, handles: Sequence[Any]) -> None:
        """``scancel`` the array elements; already finished or unknown jobs are fine."""
        self.client(options).cancel(handles)

    def list_workers(self, launcher: LauncherInfo, options: SlurmOptions, controller_id: str | None) -> list[WorkerInfo]:
        """pycrew's SLURM workers of this user (one ``squeue`` call per ``seconds_poll``)."""
        return self.client(options).workers(controller_id)


#: The plugin object the entry point names.
plugin = SlurmPlugin()
