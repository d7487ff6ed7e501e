"""pycrew: launch worker processes on any compute platform and push tasks to them.

Start with :func:`pycrew.controller`::

    import pycrew

    with pycrew.controller("local", workers=2) as c:
        print(list(c.map(abs, [-1, -2, -3])))

The package's top level is lazy: ``import pycrew`` loads nothing, and each public name
is imported on first use. A worker (``python -m pycrew.worker``) therefore loads only the
worker side (:mod:`pycrew.worker`, :mod:`pycrew.wire`), never the controller, the
dispatcher, pluggy, psutil or tqdm.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pluggy

    from pycrew import metrics
    from pycrew.control.controller import Controller
    from pycrew.control.factory import controller
    from pycrew.control.futures import TaskFuture, task_seed
    from pycrew.control.group import ControllerGroup
    from pycrew.control.interface import ControllerAPI
    from pycrew.control.launch_reports import received_handles
    from pycrew.control.sequential import SequentialController
    from pycrew.controller_options import ControllerOptions
    from pycrew.errors import (
        ControllerError,
        LauncherNotFoundError,
        LaunchError,
        LogsUnavailableError,
        OptionsError,
        PluginError,
        PycrewError,
        RemoteTraceback,
        SerializationError,
        TaskCrashError,
        TaskError,
        TaskTimeoutError,
    )
    from pycrew.hookspecs import RegisterLauncher
    from pycrew.launcher_plugin import LauncherPlugin
    from pycrew.log_tail import read_last_lines
    from pycrew.monitor import Monitor
    from pycrew.options import LauncherOptions, require
    from pycrew.plugin_api import LAUNCHER_CAPABILITIES, LauncherInfo, LauncherSpec, WorkerCall, WorkerInfo
    from pycrew.plugins import get_launcher, installed_launchers, register, unregister
    from pycrew.results import ControllerSummary, Summary, TaskResult, WorkerSummary
    from pycrew.tls import TLS
    from pycrew.wire.protocol import SYS_PATH_ENV, TLS_CA_ENV, TLS_SERVER_NAME_ENV, TOKEN_ENV
    from pycrew.worker.command import WorkerCommand
    from pycrew.worker.import_path import sys_path_environment

    #: Marker for hook implementations: ``@pycrew.hookimpl def pycrew_launch_workers(...)``.
    hookimpl: pluggy.HookimplMarker

__version__ = "0.1.0"

# public name -> the module that defines it
_WHERE: dict[str, str] = {
    "TLS": "pycrew.tls",
    "SYS_PATH_ENV": "pycrew.wire.protocol",
    "TLS_CA_ENV": "pycrew.wire.protocol",
    "TLS_SERVER_NAME_ENV": "pycrew.wire.protocol",
    "TOKEN_ENV": "pycrew.wire.protocol",
    "Controller": "pycrew.control.controller",
    "ControllerAPI": "pycrew.control.interface",
    "ControllerError": "pycrew.errors",
    "ControllerGroup": "pycrew.control.group",
    "ControllerOptions": "pycrew.controller_options",
    "ControllerSummary": "pycrew.results",
    "LAUNCHER_CAPABILITIES": "pycrew.plugin_api",
    "LaunchError": "pycrew.errors",
    "LauncherInfo": "pycrew.plugin_api",
    "LauncherNotFoundError": "pycrew.errors",
    "LauncherOptions": "pycrew.options",
    "LauncherPlugin": "pycrew.launcher_plugin",
    "LauncherSpec": "pycrew.plugin_api",
    "LogsUnavailableError": "pycrew.errors",
    "Monitor": "pycrew.monitor",
    "OptionsError": "pycrew.errors",
    "PluginError": "pycrew.errors",
    "PycrewError": "pycrew.errors",
    "RegisterLauncher": "pycrew.hookspecs",
    "RemoteTraceback": "pycrew.errors",
    "SequentialController": "pycrew.control.sequential",
    "SerializationError": "pycrew.errors",
    "TaskCrashError": "pycrew.errors",
    "TaskError": "pycrew.errors",
    "TaskFuture": "pycrew.control.futures",
    "TaskResult": "pycrew.results",
    "TaskTimeoutError": "pycrew.errors",
    "Summary": "pycrew.results",
    "WorkerCall": "pycrew.plugin_api",
    "WorkerCommand": "pycrew.worker.command",
    "WorkerInfo": "pycrew.plugin_api",
    "WorkerSummary": "pycrew.results",
    "controller": "pycrew.control.factory",
    "get_launcher": "pycrew.plugins",
    "installed_launchers": "pycrew.plugins",
    "register": "pycrew.plugins",
    "read_last_lines": "pycrew.log_tail",
    "received_handles": "pycrew.control.launch_reports",
    "require": "pycrew.options",
    "sys_path_environment": "pycrew.worker.import_path",
    "task_seed": "pycrew.control.futures",
    "unregister": "pycrew.plugins",
}

__all__ = [
    "__version__",
    "Controller",
    "controller",
    "ControllerAPI",
    "ControllerError",
    "ControllerGroup",
    "ControllerOptions",
    "ControllerSummary",
    "get_launcher",
    "hookimpl",
    "installed_launchers",
    "LAUNCHER_CAPABILITIES",
    "LauncherInfo",
    "LauncherNotFoundError",
    "LauncherOptions",
    "LaunchError",
    "LauncherPlugin",
    "LauncherSpec",
    "LogsUnavailableError",
    "metrics",
    "Monitor",
    "OptionsError",
    "PluginError",
    "PycrewError",
    "read_last_lines",
    "received_handles",
    "register",
    "RegisterLauncher",
    "RemoteTraceback",
    "require",
    "SequentialController",
    "SerializationError",
    "Summary",
    "SYS_PATH_ENV",
    "sys_path_environment",
    "task_seed",
    "TaskCrashError",
    "TaskError",
    "TaskFuture",
    "TaskResult",
    "TaskTimeoutError",
    "TLS",
    "TLS_CA_ENV",
    "TLS_SERVER_NAME_ENV",
    "TOKEN_ENV",
    "unregister",
    "WorkerCall",
    "WorkerCommand",
    "WorkerInfo",
    "WorkerSummary",
]


def __getattr__(name: str) -> Any:
    """Import a public name on first use (PEP 562) and keep it in the module."""
    if name == "hookimpl":
        import pluggy

        value: Any = pluggy.HookimplMarker("pycrew")
    elif name == "metrics":
        value = importlib.import_module("pycrew.metrics")
    elif name in _WHERE:
        value = getattr(importlib.import_module(_WHERE[name]), name)
    else:
        raise AttributeError(f"module 'pycrew' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
