"""The pycrew hook implementations of the ``awsbatch`` launcher (entry point ``pycrew.launchers: awsbatch``).

Core calls these hooks only for launchers named ``awsbatch``. Each hook finds the
:class:`~pycrew_awsbatch.AwsBatchClient` for the launcher's options: one per distinct
options value in this process, so the base job definition is described once and each
batch's secret is deleted by the process that created it. That cache is this module's
only state.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
from collections.abc import Callable, Sequence
from typing import Any

import pycrew
from pycrew import LauncherInfo, OptionsError, WorkerCall, WorkerInfo
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

_clients: dict[tuple[str, str], AwsBatchClient] = {}
_clients_lock = threading.Lock()


def _key(options: AwsBatchOptions) -> str:
    return json.dumps(dataclasses.asdict(options), sort_keys=True, default=repr)


def client(launcher: LauncherInfo) -> AwsBatchClient:
    """The :class:`AwsBatchClient` serving ``launcher`` (built on first use, then reused).

    Raises:
        OptionsError: ``launcher.options`` is not an :class:`AwsBatchOptions`.
    """
    options = launcher.options
    if not isinstance(options, AwsBatchOptions):
        raise OptionsError(f"the awsbatch launcher needs AwsBatchOptions, got {type(options).__name__}")
    key = (launcher.name, _key(options))
    with _clients_lock:
        found = _clients.get(key)
        if found is None:
            found = _clients[key] = AwsBatchClient(launcher.name, options)
        return found


@pycrew.hookimpl
def pycrew_register_launchers(register: Callable[..., None]) -> None:
    """Register the ``awsbatch`` launcher."""
    register(
        NAME,
        AwsBatchOptions,
        summary="workers as AWS Batch (array) jobs on EC2 or Fargate (boto3)",
        remote=True,
        capabilities=CAPABILITIES,
        seconds_exit_margin=SECONDS_EXIT_MARGIN,
    )


@pycrew.hookimpl
def pycrew_launch_workers(launcher: LauncherInfo, calls: Sequence[WorkerCall]) -> list[Any]:
    """Submit the batch as array job(s); return handles ``"<job id>"`` / ``"<array job id>:<index>"``."""
    return list(client(launcher).launch(launcher, calls))


@pycrew.hookimpl
def pycrew_terminate_workers(launcher: LauncherInfo, handles: Sequence[Any]) -> None:
    """Cancel queued and terminate running jobs; ended or unknown jobs are fine.

    From a monitor (no controller), also delete stale secrets and job definition revisions.
    """
    c = client(launcher)
    c.terminate(handles)
    if launcher.controller_id is None:
        try:
            monitor.delete_stale_resources(c, older_than=SECONDS_STALE)
        except AwsBatchError as exc:  # the workers are terminated; leftovers are only reported
            log.warning("awsbatch: could not delete stale secrets/job definitions: %s", exc)


@pycrew.hookimpl
def pycrew_list_workers(launcher: LauncherInfo, controller_id: str | None) -> list[WorkerInfo]:
    """pycrew's AWS Batch workers in the job queue (one ListJobs call per status)."""
    return monitor.workers(client(launcher), controller_id)
