"""The ``pbs`` launcher's plugin (entry point ``pycrew.launchers: pbs = "pycrew_pbs.plugin:plugin"``).

Core calls its hooks only for launchers named ``pbs``. Each hook uses the
:class:`~pycrew_pbs.PbsCLI` (or :class:`~pycrew_pbs.TorqueCLI`) for the launcher's options:
one per distinct options value (and ``PBS_SERVER``/``PBS_DEFAULT``) in this process, kept by
:class:`pycrew.LauncherPlugin`'s client cache, so the server's array limit is asked once and
the monitor's polling cadence holds across calls.
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable
from typing import Any

import pycrew
from pycrew import LauncherInfo
from pycrew.scheduler import SchedulerError, SchedulerPlugin
from pycrew_pbs.options import PbsOptions
from pycrew_pbs.pbs import PbsCLI

NAME = "pbs"
#: What the conformance suite may test (names of ``pycrew.LAUNCHER_CAPABILITIES``): the monitor
#: lists pycrew's jobs only (their tag in ``Variable_List``), tagged with controller id and
#: instance; ``WorkerInfo.host`` is the execution host (``exec_host``); jobs of ended
#: controllers stay listed (orphans); ``qdel`` reaches queued and never-connected workers.
#: Not ``pid``: qstat does not know the worker's process id on the node.
CAPABILITIES = frozenset({"monitor", "host", "orphans", "never_connected", "shared_files"})
#: After its controller dies, a running worker exits after seconds_idle; this covers what
#: PBS adds before the job leaves the running states: the job's end (epilogue, output
#: staging, state ``E``) and the monitor's qstat cadence.
SECONDS_EXIT_MARGIN = 60.0
#: A handle: a job, or an array element, with its server: ``123.server``, ``123[4].server``.
_HANDLE = re.compile(r"^\d+(?:\[\d+\])?(?:\.[A-Za-z0-9_-]+)*$")


class PbsPlugin(SchedulerPlugin[PbsOptions, PbsCLI]):
    """Workers as PBS Pro / OpenPBS or TORQUE job arrays; handles are PBS job ids (``123[4].server``)."""

    name = NAME
    options_type = PbsOptions
    summary = "workers as PBS Pro / OpenPBS or TORQUE job arrays (qsub, qstat, qdel)"
    remote = True
    capabilities = CAPABILITIES
    seconds_exit_margin = SECONDS_EXIT_MARGIN

    def create_client(self, options: PbsOptions) -> PbsCLI:
        """The :class:`PbsCLI` (or :class:`~pycrew_pbs.TorqueCLI`) for ``options`` (it runs nothing until used)."""
        return PbsCLI.for_options(self.name, options)

    def client_key(self, options: PbsOptions) -> Hashable:
        """The options and the default server: another server is another cluster."""
        return (os.environ.get("PBS_SERVER"), os.environ.get("PBS_DEFAULT"), super().client_key(options))

    def logs(self, launcher: LauncherInfo, options: PbsOptions, handle: Any, lines: int | None) -> str | None:
        """The end of the job's output file (stdout, and stderr unless ``log_error`` is set).

        The path comes from ``qstat`` (``Output_Path``, ``^array_index^`` expanded) while PBS
        lists the job (finished ones too, with job history), else from the launch in this
        process. The file must be readable from this machine (a shared file system). On PBS
        Pro with ``direct_write`` (the default) it grows while the worker runs; otherwise PBS
        copies it there when the job ends.

        Raises:
            pycrew.LogsUnavailableError: the handle is no PBS job id, or its output file is
                unknown (qstat fails or no longer lists the job) or unreadable, saying where
                it looked.
        """
        if not isinstance(handle, str) or not _HANDLE.fullmatch(handle):
            raise pycrew.LogsUnavailableError(
                f"launcher {launcher.name!r} got {handle!r} as a worker handle; it needs a PBS job id such as "
                "\"123[4].server\" (from the launch hook or Monitor.list())"
            )
        try:
            path = self.client(options).log_path(handle)
        except SchedulerError as exc:
            raise pycrew.LogsUnavailableError(
                f"launcher {launcher.name!r}: cannot learn where job {handle} writes its output: {exc}"
            ) from exc
        if path is None:
            raise pycrew.LogsUnavailableError(
                f"launcher {launcher.name!r}: job {handle} is not in qstat's listing (finished jobs stay there only "
                "with the server's job history) and was not launched by this process; look in the log_output "
                "directory (default <directory>/logs)"
            )
        try:
            text = pycrew.read_last_lines(path, lines)  # from the end: a log may hold gigabytes
        except FileNotFoundError as exc:
            raise pycrew.LogsUnavailableError(
                f"launcher {launcher.name!r}: the output file {path} of job {handle} does not exist (yet): PBS writes "
                "it when the job starts with direct_write (PBS Pro), else when the job ends; it must be on a file "
                "system shared with the nodes"
            ) from exc
        except OSError as exc:
            raise pycrew.LogsUnavailableError(
                f"launcher {launcher.name!r}: the output file {path} of job {handle} cannot be read from this "
                f"machine: {exc}; log_output must be on a file system shared with the nodes"
            ) from exc
        return text


#: The plugin object the entry point names.
plugin = PbsPlugin()
