"""The hook implementations of the ``local`` launcher (entry point ``pycrew.launchers: local``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pycrew
from pycrew_local.options import LocalOptions
from pycrew_local.processes import LocalHandle, kill_tree, list_workers, start_worker

CAPABILITIES = frozenset({"pid", "host", "monitor", "orphans", "never_connected"})


@pycrew.hookimpl
def pycrew_register_launchers(register: Callable[..., None]) -> None:
    """Register the ``local`` launcher."""
    register(
        "local",
        LocalOptions,
        summary="workers are processes on this machine",
        remote=False,
        capabilities=CAPABILITIES,
        seconds_exit_margin=5.0,
    )


@pycrew.hookimpl
def pycrew_launch_workers(launcher: pycrew.LauncherInfo, calls: Sequence[pycrew.WorkerCall]) -> list[Any]:
    """Start one process per call."""
    options = launcher.options
    assert isinstance(options, LocalOptions)
    handles: list[Any] = []
    try:
        for call in calls:
            handles.append(start_worker(call, options))
    except BaseException:
        for h in handles:  # do not orphan the part of the batch that did start
            kill_tree(h)
        raise
    return handles


@pycrew.hookimpl
def pycrew_terminate_workers(launcher: pycrew.LauncherInfo, handles: Sequence[Any]) -> None:
    """Kill each worker's process tree (silent for workers already gone)."""
    for handle in handles:
        if isinstance(handle, LocalHandle):
            kill_tree(handle)


@pycrew.hookimpl
def pycrew_list_workers(launcher: pycrew.LauncherInfo, controller_id: str | None) -> list[pycrew.WorkerInfo]:
    """pycrew worker processes on this machine."""
    return [w for w in list_workers(controller_id) if w.launcher == launcher.name]
