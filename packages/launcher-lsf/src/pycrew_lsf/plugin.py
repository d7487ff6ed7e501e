"""The ``lsf`` launcher's plugin (entry point ``pycrew.launchers: lsf = "pycrew_lsf.plugin:plugin"``).

Core calls its hooks only for launchers named ``lsf``. Each hook uses the
:class:`~pycrew_lsf.LsfCLI` for the launcher's options: one per distinct options value (and
``LSF_ENVDIR``) in this process, kept by :class:`pycrew.LauncherPlugin`'s client cache, so the
site's array limit and memory unit are asked once, the monitor's polling cadence holds
across calls, and the circuit breaker counts every launch of that configuration.
"""

from __future__ import annotations

import os
import re
from collections.abc import Hashable
from typing import Any

import pycrew
from pycrew import LauncherInfo
from pycrew.scheduler import SchedulerPlugin
from pycrew_lsf.lsf import LsfCLI
from pycrew_lsf.options import LsfOptions
from pycrew_lsf.parsing import expand_log_path

NAME = "lsf"
#: What the conformance suite may test (names of ``pycrew.LAUNCHER_CAPABILITIES``): the monitor
#: lists pycrew's jobs only, tagged (``-Jd``) with controller id and instance; ``WorkerInfo.host``
#: is the first execution host (bjobs EXEC_HOST); jobs of ended controllers stay listed
#: (orphans); ``bkill`` reaches pending and never-connected workers. Not ``pid``: bjobs's PIDS
#: field lists the job's processes, not which one is the worker.
CAPABILITIES = frozenset({"monitor", "host", "orphans", "never_connected", "shared_files"})
#: After its controller dies, a running worker exits after seconds_idle; this covers what LSF
#: adds before the job leaves the running states (post-execution, sbatchd's report to
#: mbatchd) and the monitor's bjobs cadence.
SECONDS_EXIT_MARGIN = 60.0
#: The last line of the job report LSF appends to a job's output file, after the output.
REPORT_END = "The output (if any) is above this job summary."
#: Lines read beyond those asked for, to find the report's start (it has about 30).
REPORT_LINES_MAX = 200
#: Where that report starts: a line of dashes, then the sender.
_REPORT_START = re.compile(r"^-{60}\nSender: LSF System <", re.MULTILINE)


def worker_output(text: str) -> str:
    """An output file's text without the job report LSF appended to it (if it did): the
    report starts with a line of 60 dashes and ``Sender: LSF System <...>`` and ends with
    :data:`REPORT_END`."""
    if not text.rstrip().endswith(REPORT_END):
        return text
    starts = list(_REPORT_START.finditer(text))
    if not starts:
        return text
    head = text[: starts[-1].start()].rstrip("\n")
    return head + "\n" if head else ""


class LsfPlugin(SchedulerPlugin[LsfOptions, LsfCLI]):
    """Workers as LSF job arrays; handles are ``"<job id>[<index>]"``."""

    name = NAME
    options_type = LsfOptions
    summary = "workers as IBM Spectrum LSF job arrays (bsub, bjobs, bkill)"
    remote = True
    capabilities = CAPABILITIES
    seconds_exit_margin = SECONDS_EXIT_MARGIN
    cli_type = LsfCLI

    def client_key(self, options: LsfOptions) -> Hashable:
        """The options and ``LSF_ENVDIR``: another configuration directory is another cluster."""
        return (os.environ.get("LSF_ENVDIR"), super().client_key(options))

    def logs(self, launcher: LauncherInfo, options: LsfOptions, handle: Any, lines: int | None) -> str | None:
        """The end of the job's output file (``-o``: stdout, and stderr unless ``log_error`` is set).

        With ``lines``, the last lines of the worker's output: the job report LSF appends
        to the file when the job ends (exit code, resource usage, the script) is left out;
        ``lines=None`` gives the whole file, report included.

        The path comes from bjobs (OUTPUT_FILE) while LSF lists the job, else from the
        ``log_output`` pattern with ``%J`` and ``%I`` expanded. The file must be readable
        from this machine (a shared file system). Unless the site sets
        ``LSB_STDOUT_DIRECT=Y``, LSF writes a running job's output to a spool file and copies
        it to the output file when the job ends: then a running worker has no log yet.

        Raises:
            pycrew.LogsUnavailableError: the handle is no ``"<job id>[<index>]"``, or the output
                file is missing or unreadable, saying where it looked.
        """
        match = re.fullmatch(r"(\d+)\[(\d+)\]", handle) if isinstance(handle, str) else None
        if match is None:
            raise pycrew.LogsUnavailableError(
                f"launcher {launcher.name!r} got {handle!r} as a worker handle; it needs \"<job id>[<index>]\" "
                "(from the launch hook or Monitor.list())"
            )
        client = self.client(options)
        path = next((r.log for r in client.listing() if r.id == handle and r.log), None)
        if path is None:
            output, _ = client.log_paths()
            path = expand_log_path(output, match.group(1), int(match.group(2)))
        try:
            # from the end (a log may hold gigabytes), with room for the job report after the output
            text = pycrew.read_last_lines(os.path.expanduser(path), None if lines is None else lines + REPORT_LINES_MAX)
        except OSError as exc:
            raise pycrew.LogsUnavailableError(
                f"launcher {launcher.name!r}: the output file {path} of job {handle} cannot be read from this "
                f"machine: {exc}. log_output must be on a file system shared with the execution hosts; and "
                "unless the site sets LSB_STDOUT_DIRECT=Y, LSF copies a job's output there only when it ends"
            ) from exc
        if lines is None:
            return text
        # the worker's last lines, not those of the job report LSF appended after them
        return "".join(worker_output(text).splitlines(keepends=True)[-lines:])


#: The plugin object the entry point names.
plugin = LsfPlugin()
