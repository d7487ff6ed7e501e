"""The ``awsbatch`` launcher's plugin (entry point ``pycrew.launchers: awsbatch = "pycrew_awsbatch.plugin:plugin"``).

Core calls its hooks only for launchers named ``awsbatch``. Each hook uses the
:class:`~pycrew_awsbatch.AwsBatchClient` for the launcher's options: one per distinct
options value in this process (:class:`pycrew.LauncherPlugin`'s client cache), so the base
job definition is described once and each batch's secret is deleted by the process that
created it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import pycrew
from pycrew import LauncherInfo, WorkerCall, WorkerInfo
from pycrew_awsbatch import monitor
from pycrew_awsbatch.api import AwsBatchError
from pycrew_awsbatch.client import AwsBatchClient
from pycrew_awsbatch.options import AwsBatchOptions

log = logging.getLogger(__name__)

NAME = "awsbatch"
#: Capabilities for the conformance suite: the monitor lists pycrew's jobs (tagged with
#: controller and instance), finds orphans, and terminate reaches queued jobs. No pid or
#: host: the worker's container runs on an instance the API does not name.
CAPABILITIES = frozenset({"monitor", "orphans", "never_connected"})
#: After its controller dies, a running worker exits after seconds_idle; AWS then needs up
#: to a minute to mark the job ended. Queued jobs are the monitor's to terminate.
SECONDS_EXIT_MARGIN = 60.0
#: A monitor's terminate also deletes secrets and job definition revisions of this queue
#: whose batches have no active job and are older than this.
SECONDS_STALE = 600.0
#: How many distinct option sets keep their client. A client remembers each batch's secret
#: and job definition revision until its workers are terminated; a dropped client's leftovers
#: are only deleted by a monitor's stale clean-up, so keep this well above the number of
#: option sets one process uses at once.
CLIENTS_MAX = 64


class AwsBatchPlugin(pycrew.LauncherPlugin[AwsBatchOptions, AwsBatchClient]):
    """Workers as AWS Batch (array) jobs; handles are ``"<job id>"`` or ``"<array job id>:<index>"``."""

    name = NAME
    options_type = AwsBatchOptions
    summary = "workers as AWS Batch (array) jobs on EC2 or Fargate (boto3)"
    remote = True
    capabilities = CAPABILITIES
    seconds_exit_margin = SECONDS_EXIT_MARGIN
    clients_max = CLIENTS_MAX

    def create_client(self, options: AwsBatchOptions) -> AwsBatchClient:
        """The :class:`AwsBatchClient` for ``options`` (it calls AWS on first use)."""
        return AwsBatchClient(self.name, options)

    def launch(self, launcher: LauncherInfo, options: AwsBatchOptions, calls: Sequence[WorkerCall]) -> list[Any]:
        """Submit the batch as array job(s); return handles ``"<job id>"`` / ``"<array job id>:<index>"``."""
        return list(self.client(options).launch(launcher, calls))

    def terminate(self, launcher: LauncherInfo, options: AwsBatchOptions, handles: Sequence[Any]) -> None:
        """Cancel queued and terminate running jobs; ended or unknown jobs are fine.

        From a monitor (no controller), also delete stale secrets and job definition revisions.
        """
        c = self.client(options)
        c.terminate(handles)
        if launcher.controller_id is None:
            try:
                monitor.delete_stale_resources(c, older_than=SECONDS_STALE)
            except AwsBatchError as exc:  # the workers are terminated; leftovers are only reported
                log.warning("awsbatch: could not delete stale secrets/job definitions: %s", exc)

    def list_workers(self, launcher: LauncherInfo, options: AwsBatchOptions, controller_id: str | None) -> list[WorkerInfo]:
        """pycrew's AWS Batch workers in the job queue (one ListJobs call per status)."""
        return monitor.workers(self.client(options), controller_id)

    def logs(self, launcher: LauncherInfo, options: AwsBatchOptions, handle: Any, lines: int | None) -> str | None:
        """The job's output from CloudWatch Logs (its ``logStreamName`` in its log group).

        Raises:
            pycrew.LogsUnavailableError: AWS Batch does not know the job, or it has no log
                stream yet (not started), saying its status.
            AwsBatchError: a call failed.
        """
        client = self.client(options)
        job = client.details(str(handle))
        if job is None:
            raise pycrew.LogsUnavailableError(
                f"launcher {launcher.name!r}: AWS Batch does not know the job {handle!r} "
                "(jobs are kept for a few days after they end)"
            )
        if not job.log_stream:
            raise pycrew.LogsUnavailableError(
                f"launcher {launcher.name!r}: job {handle} has no CloudWatch log stream yet (status {job.status}); "
                "its output appears once its container started"
            )
        found = client.log_lines(str(handle), lines)
        return "".join(f"{line}\n" for line in found)


#: The plugin object the entry point names.
plugin = AwsBatchPlugin()
