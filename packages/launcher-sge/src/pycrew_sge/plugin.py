"""The ``sge`` launcher's plugin (entry point ``pycrew.launchers: sge = "pycrew_sge.plugin:plugin"``).

Core calls its hooks only for launchers named ``sge``. Each hook uses the
:class:`~pycrew_sge.SgeCLI` for the launcher's options: one per distinct options value
(and SGE cell: ``SGE_ROOT``, ``SGE_CELL``, ``SGE_QMASTER_PORT``) in this process, kept by
:class:`pycrew.LauncherPlugin`'s client cache, so that the site's array limit is asked
once, job details are kept between monitor calls, and the polling cadence holds.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Hashable
from typing import Any

import pycrew
from pycrew import LauncherInfo
from pycrew.scheduler import SchedulerPlugin
from pycrew_sge.options import SgeOptions
from pycrew_sge.qstat import expand_log_path
from pycrew_sge.sge import SgeCLI, user_name

NAME = "sge"
#: What the conformance suite may test (names of ``pycrew.LAUNCHER_CAPABILITIES``): the monitor
#: lists pycrew's jobs only, tagged with controller id and instance; ``WorkerInfo.host`` is
#: the execution host (from the task's queue instance ``queue@host``); jobs of ended
#: controllers stay listed (orphans); ``qdel`` reaches queued and never-connected workers.
#: Not ``pid``: qstat does not know the worker's process id on the host.
CAPABILITIES = frozenset({"monitor", "host", "orphans", "never_connected", "shared_files"})
#: After its controller dies, a running worker exits after seconds_idle; this covers what
#: SGE adds before the task leaves qstat (the execd's report of the job's end, epilog
#: scripts on real sites) and the monitor's qstat cadence.
SECONDS_EXIT_MARGIN = 60.0
#: Environment variables that say which SGE cell (cluster) the commands talk to.
CELL_VARIABLES = ("SGE_ROOT", "SGE_CELL", "SGE_QMASTER_PORT")


class SgePlugin(SchedulerPlugin[SgeOptions, SgeCLI]):
    """Workers as Son of Grid Engine array jobs; handles are ``"<job id>.<task id>"``."""

    name = NAME
    options_type = SgeOptions
    summary = "workers as Son of Grid Engine array jobs (qsub, qstat, qdel)"
    remote = True
    capabilities = CAPABILITIES
    seconds_exit_margin = SECONDS_EXIT_MARGIN
    cli_type = SgeCLI

    def client_key(self, options: SgeOptions) -> Hashable:
        """The options and the SGE cell (``SGE_ROOT``, ``SGE_CELL``, ``SGE_QMASTER_PORT``):
        another cell is another cluster."""
        return (tuple(os.environ.get(v) for v in CELL_VARIABLES), super().client_key(options))

    def logs(self, launcher: LauncherInfo, options: SgeOptions, handle: Any, lines: int | None) -> str | None:
        """The end of the task's output file (``-o``: stdout, and stderr unless ``log_error`` is set).

        The file's path comes from ``qstat -j`` while the job is queued or running, else
        from the ``log_output`` pattern (``$JOB_ID``, ``$TASK_ID``, ``$USER``, ``$HOME``
        expanded; ``$JOB_NAME`` and ``$HOSTNAME`` matched against the files there). The
        file must be readable from this machine (a shared file system, as SGE sites have).

        Raises:
            pycrew.LogsUnavailableError: the handle is no ``"<job id>.<task id>"``, or no
                output file is found or readable, saying where it looked.
        """
        match = re.fullmatch(r"(\d+)\.(\d+)", handle) if isinstance(handle, str) else None
        if match is None:
            raise pycrew.LogsUnavailableError(
                f"launcher {launcher.name!r} got {handle!r} as a worker handle; it needs \"<job id>.<task id>\" "
                "(from the launch hook or Monitor.list())"
            )
        client = self.client(options)
        path = next((r.log for r in client.listing() if r.id == handle and r.log), None)
        if path is None:
            output, _ = client.log_paths()
            hole = "\0"  # stands for what the handle does not say: the job name, the host
            expanded = expand_log_path(
                output, match.group(1), int(match.group(2)), hole, user_name(), os.path.expanduser("~"), hole
            )
            found = sorted(glob.glob(glob.escape(expanded).replace(hole, "*")))
            if len(found) != 1:
                raise pycrew.LogsUnavailableError(
                    f"launcher {launcher.name!r}: job {handle} is no longer in qstat and "
                    f"{'no' if not found else len(found)} file(s) match its output pattern {output!r}"
                    f"{': ' + ', '.join(found) if found else ''}; set log_output to a path naming the job and "
                    "task ($JOB_ID.$TASK_ID)"
                )
            path = found[0]
        try:
            text = pycrew.read_last_lines(path, lines)  # from the end: a log may hold gigabytes
        except OSError as exc:
            raise pycrew.LogsUnavailableError(
                f"launcher {launcher.name!r}: the output file {path} of job {handle} cannot be read from this "
                f"machine: {exc}; log_output must be on a file system shared with the execution hosts"
            ) from exc
        return text


#: The plugin object the entry point names.
plugin = SgePlugin()
