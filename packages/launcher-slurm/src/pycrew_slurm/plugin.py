"""The ``slurm`` launcher's plugin (entry point ``pycrew.launchers: slurm = "pycrew_slurm.plugin:plugin"``).

Core calls its hooks only for launchers named ``slurm``. Each hook uses the
:class:`~pycrew_slurm.SlurmCLI` for the launcher's options: one per distinct options value
(and ``SLURM_CONF``) in this process, kept by :class:`pycrew.LauncherPlugin`'s client cache,
so the site's ``MaxArraySize`` is asked once and the monitor's polling cadence holds
across calls.
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
from pycrew_slurm.options import SlurmOptions
from pycrew_slurm.slurm import SlurmCLI, expand_log_path

NAME = "slurm"
#: What the conformance suite may test (names of ``pycrew.LAUNCHER_CAPABILITIES``): the monitor
#: lists pycrew's jobs only, tagged with controller id and instance; ``WorkerInfo.host`` is
#: the node (squeue's NodeList, the name the task sees); jobs of ended controllers stay
#: listed (orphans); ``scancel`` reaches queued and never-connected workers. Not ``pid``:
#: squeue does not know the worker's process id on the node.
CAPABILITIES = frozenset({"monitor", "host", "orphans", "never_connected", "shared_files"})
#: After its controller dies, a running worker exits after seconds_idle; this covers what
#: SLURM adds before the job leaves squeue: the job's completion (epilog scripts on real
#: sites, the COMPLETING state) and the monitor's squeue cadence. Queued jobs of a dead
#: controller are the monitor's job (``pycrew monitor``, orphans).
SECONDS_EXIT_MARGIN = 60.0


class SlurmPlugin(SchedulerPlugin[SlurmOptions, SlurmCLI]):
    """Workers as SLURM job arrays; handles are ``"<job id>_<index>"``."""

    name = NAME
    options_type = SlurmOptions
    summary = "workers as SLURM job arrays (sbatch, squeue, scancel)"
    remote = True
    capabilities = CAPABILITIES
    seconds_exit_margin = SECONDS_EXIT_MARGIN
    cli_type = SlurmCLI

    def client_key(self, options: SlurmOptions) -> Hashable:
        """The options and ``SLURM_CONF``: another configuration is another cluster."""
        return (os.environ.get("SLURM_CONF"), super().client_key(options))

    def logs(self, launcher: LauncherInfo, options: SlurmOptions, handle: Any, lines: int | None) -> str | None:
        """The end of the job's ``--output`` file (stdout, and stderr unless ``log_error`` is set).

        The file's path comes from ``squeue`` while the job is queued or running, else from
        the ``log_output`` pattern (``%A``, ``%a``, ``%u`` expanded; ``%x``, the job name,
        matched against the files there). The file must be readable from this machine (a
        shared file system, as SLURM sites have).

        Raises:
            pycrew.LogsUnavailableError: the handle is no ``"<job id>_<index>"``, or no
                output file is found or readable, saying where it looked.
        """
        match = re.fullmatch(r"(\d+)_(\d+)", handle) if isinstance(handle, str) else None
        if match is None:
            raise pycrew.LogsUnavailableError(
                f"launcher {launcher.name!r} got {handle!r} as a worker handle; it needs \"<job id>_<index>\" "
                "(from the launch hook or Monitor.list())"
            )
        client = self.client(options)
        path = next((r.log for r in client.listing() if r.id == handle and r.log), None)
        if path is None:
            output, _ = client.log_paths()
            hole = "\0"  # stands for the job name, which the handle does not say
            expanded = expand_log_path(output, match.group(1), int(match.group(2)), hole, _user_name())
            found = sorted(glob.glob(glob.escape(expanded).replace(hole, "*")))
            if len(found) != 1:
                raise pycrew.LogsUnavailableError(
                    f"launcher {launcher.name!r}: job {handle} is no longer in squeue and "
                    f"{'no' if not found else len(found)} file(s) match its output pattern {output!r}"
                    f"{': ' + ', '.join(found) if found else ''}; set log_output to a path naming the job id (%A_%a)"
                )
            path = found[0]
        try:
            text = pycrew.read_last_lines(path, lines)  # from the end: a log may hold gigabytes
        except OSError as exc:
            raise pycrew.LogsUnavailableError(
                f"launcher {launcher.name!r}: the output file {path} of job {handle} cannot be read from this "
                f"machine: {exc}; log_output must be on a file system shared with the nodes"
            ) from exc
        return text


def _user_name() -> str:
    """This user's name, as SLURM expands ``%u``."""
    import pwd

    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:  # no passwd entry (some containers): SLURM then uses the numeric uid
        return str(os.getuid())


#: The plugin object the entry point names.
plugin = SlurmPlugin()
