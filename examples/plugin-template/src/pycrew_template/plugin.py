"""The hook implementations of the ``template`` launcher (entry point ``pycrew.launchers: template``).

Core calls these hooks only for the launcher this plugin registered, in its thread pool:
they may block on the platform, and never need to ask whether a call is theirs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pycrew
from pycrew_template.options import TemplateOptions
from pycrew_template.workers import TemplateHandle, list_workers, start_worker, stop_workers

#: What the conformance suite may test (see pycrew.testing.CAPABILITIES).
CAPABILITIES = frozenset({"monitor", "pid", "host", "orphans", "never_connected"})


@pycrew.hookimpl
def pycrew_register_launchers(register: Callable[..., None]) -> None:
    """Register the ``template`` launcher under the entry point's name."""
    register(
        "template",
        TemplateOptions,
        summary="workers are local processes started through /bin/sh with a pid file (an example plugin)",
        remote=False,
        capabilities=CAPABILITIES,
        seconds_exit_margin=5.0,
    )


@pycrew.hookimpl
def pycrew_launch_workers(launcher: pycrew.LauncherInfo, calls: Sequence[pycrew.WorkerCall]) -> list[Any]:
    """Start one worker per call; one handle per call, in order."""
    options = launcher.options
    assert isinstance(options, TemplateOptions)
    handles: list[TemplateHandle] = []
    try:
        for call in calls:
            handles.append(start_worker(call, options))
    except BaseException:
        stop_workers(handles, options)  # do not orphan the part of the batch that started
        raise
    return handles


@pycrew.hookimpl
def pycrew_terminate_workers(launcher: pycrew.LauncherInfo, handles: Sequence[Any]) -> None:
    """Stop the workers behind the handles; workers already gone are not an error."""
    options = launcher.options
    assert isinstance(options, TemplateOptions)
    stop_workers([h for h in handles if isinstance(h, TemplateHandle)], options)


@pycrew.hookimpl
def pycrew_list_workers(launcher: pycrew.LauncherInfo, controller_id: str | None) -> list[pycrew.WorkerInfo]:
    """The monitor: this launcher's running workers (one controller's, or all)."""
    options = launcher.options
    assert isinstance(options, TemplateOptions)
    return list_workers(options, controller_id)
