"""The pycrew hook implementations of the ``cloudrun`` launcher (entry point ``pycrew.launchers: cloudrun``).

Core calls these hooks only for launchers named ``cloudrun``. Each hook finds the
:class:`~pycrew_cloudrun.CloudRunJobs` for the launcher's options: one per distinct options
value in this process, so the job is looked up (or created) once, the clients are shared,
and the record of which workers were asked to stop holds across calls. That small cache is
this module's only state.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any

import pycrew
from pycrew import LauncherInfo, WorkerCall, WorkerInfo
from pycrew_cloudrun.cloudrun import CloudRunJobs, launcher_options
from pycrew_cloudrun.options import CloudRunOptions
from pycrew_cloudrun.records import CloudRunHandle

NAME = "cloudrun"
#: Capabilities for the conformance suite: workers run elsewhere, a batch is one multi-task
#: execution, pending tasks can be cancelled, and the monitor lists pycrew's tasks only
#: (tagged with controller and instance, so orphans are found). Cloud Run shows neither the
#: worker's host name nor its pid: no "host", no "pid".
CAPABILITIES = frozenset({"remote", "arrays", "terminate_pending", "monitor", "orphans", "never_connected"})
#: After its controller dies, a running worker exits after seconds_idle; Cloud Run then
#: needs some seconds to mark the task and execution finished.
SECONDS_EXIT_MARGIN = 30.0
#: How many distinct option sets keep their CloudRunJobs (least recently used dropped).
CACHE_MAX = 32

_cache: OrderedDict[tuple[str, str], CloudRunJobs] = OrderedDict()
_cache_lock = threading.Lock()


def jobs_for(launcher: LauncherInfo) -> CloudRunJobs:
    """The :class:`CloudRunJobs` serving ``launcher`` (built on first use, then reused).

    Raises:
        TypeError: ``launcher.options`` is not a :class:`CloudRunOptions`.
    """
    options: CloudRunOptions = launcher_options(launcher)
    key = (launcher.name, repr(options))  # options hold dicts: not hashable, but repr is exact
    with _cache_lock:
        jobs = _cache.get(key)
        if jobs is None:
            jobs = _cache[key] = CloudRunJobs(options, launcher.name)
            while len(_cache) > CACHE_MAX:
                _cache.popitem(last=False)
        _cache.move_to_end(key)
        return jobs


@pycrew.hookimpl
def pycrew_register_launchers(register: Callable[..., None]) -> None:
    """Register the ``cloudrun`` launcher."""
    register(
        NAME,
        CloudRunOptions,
        summary="workers as tasks of Google Cloud Run Jobs executions",
        remote=True,
        capabilities=CAPABILITIES,
        seconds_exit_margin=SECONDS_EXIT_MARGIN,
    )


@pycrew.hookimpl
def pycrew_launch_workers(launcher: LauncherInfo, calls: Sequence[WorkerCall]) -> list[Any]:
    """Run the job once for the batch (task k = worker k); return one :class:`CloudRunHandle` per call."""
    handles: list[CloudRunHandle] = jobs_for(launcher).launch(calls)
    return list(handles)


@pycrew.hookimpl
def pycrew_terminate_workers(launcher: LauncherInfo, handles: Sequence[Any]) -> None:
    """Cancel the executions whose live tasks are all to stop; ended ones are fine."""
    jobs_for(launcher).terminate(handles)


@pycrew.hookimpl
def pycrew_list_workers(launcher: LauncherInfo, controller_id: str | None) -> list[WorkerInfo]:
    """pycrew's pending and running Cloud Run tasks in the region (one listing per ``seconds_poll``)."""
    return jobs_for(launcher).workers(controller_id)
