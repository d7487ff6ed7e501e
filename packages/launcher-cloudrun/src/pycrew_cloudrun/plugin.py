"""The ``cloudrun`` launcher's plugin (entry point ``pycrew.launchers: cloudrun = "pycrew_cloudrun.plugin:plugin"``).

Core calls its hooks only for launchers named ``cloudrun``. Each hook uses the
:class:`~pycrew_cloudrun.CloudRunJobs` for the launcher's options: one per distinct options
value in this process (:class:`pycrew.LauncherPlugin`'s client cache), so the job is looked
up (or created) once, the clients are shared, and the record of which workers were asked to
stop holds across calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pycrew
from pycrew import LauncherInfo, WorkerCall, WorkerInfo
from pycrew_cloudrun import worker_logs
from pycrew_cloudrun.cloudrun import CloudRunJobs
from pycrew_cloudrun.options import CloudRunOptions

NAME = "cloudrun"
#: Capabilities for the conformance suite (names of ``pycrew.LAUNCHER_CAPABILITIES``): the
#: monitor lists pycrew's tasks only (tagged with controller and instance, so orphans are
#: found), and pending tasks can be cancelled (never_connected). Cloud Run shows neither the
#: worker's host name nor its pid: no "host", no "pid". That workers run elsewhere is
#: ``remote=True``; that a batch is one multi-task execution needs no capability.
CAPABILITIES = frozenset({"monitor", "orphans", "never_connected"})
#: After its controller dies, a running worker exits after seconds_idle; Cloud Run then
#: needs some seconds to mark the task and execution finished.
SECONDS_EXIT_MARGIN = 30.0
#: How many distinct option sets keep their CloudRunJobs (least recently used dropped).
CACHE_MAX = 32


class CloudRunPlugin(pycrew.LauncherPlugin[CloudRunOptions, CloudRunJobs]):
    """Workers as tasks of Cloud Run Jobs executions; one :class:`CloudRunHandle` per worker."""

    name = NAME
    options_type = CloudRunOptions
    summary = "workers as tasks of Google Cloud Run Jobs executions"
    remote = True
    capabilities = CAPABILITIES
    seconds_exit_margin = SECONDS_EXIT_MARGIN
    clients_max = CACHE_MAX

    def create_client(self, options: CloudRunOptions) -> CloudRunJobs:
        """The :class:`CloudRunJobs` for ``options`` (it calls the API on first use)."""
        return CloudRunJobs(options, self.name)

    def launch(self, launcher: LauncherInfo, options: CloudRunOptions, calls: Sequence[WorkerCall]) -> list[Any]:
        """Run the job once for the batch (task k = worker k); return one :class:`CloudRunHandle` per call."""
        return list(self.client(options).launch(calls))

    def terminate(self, launcher: LauncherInfo, options: CloudRunOptions, handles: Sequence[Any]) -> None:
        """Cancel the executions whose live tasks are all to stop; ended ones are fine.

        Raises:
            NotTerminatedError: a monitor's task could not be stopped alone (see
                :meth:`CloudRunJobs.terminate`); the message says why and what to do.
        """
        self.client(options).terminate(handles)

    def list_workers(self, launcher: LauncherInfo, options: CloudRunOptions, controller_id: str | None) -> list[WorkerInfo]:
        """pycrew's pending and running Cloud Run tasks in the region (one listing per ``seconds_poll``)."""
        return self.client(options).workers(controller_id)

    def logs(self, launcher: LauncherInfo, options: CloudRunOptions, handle: Any, lines: int | None) -> str | None:
        """The worker's output from Cloud Logging: the entries of its task, the last ``lines`` of them.

        ``handle`` is a :class:`CloudRunHandle` or a task's full name (the monitor's worker id).

        Raises:
            pycrew.LogsUnavailableError: the handle is neither, Cloud Run does not know the task,
                Cloud Logging refused the query (why is in the message), or it has no entries
                for the task yet.
            CloudRunError: Cloud Logging kept failing with transient errors.
        """
        return worker_logs.task_output(self.client(options), launcher.name, handle, lines)


#: The plugin object the entry point names.
plugin = CloudRunPlugin()
