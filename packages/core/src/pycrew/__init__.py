"""pycrew: launch worker processes on any compute platform and push tasks to them.

Start with :func:`pycrew.controller`::

    import pycrew

    with pycrew.controller("local", workers=2) as c:
        print(list(c.map(abs, [-1, -2, -3])))
"""

from __future__ import annotations

import pluggy

from pycrew import metrics
from pycrew.controller import Controller, controller
from pycrew.controller_options import ControllerOptions
from pycrew.errors import (
    ControllerError,
    LauncherNotFoundError,
    LaunchError,
    OptionsError,
    PluginError,
    PycrewError,
    RemoteTraceback,
    SerializationError,
    TaskCrashError,
    TaskError,
    TaskTimeoutError,
)
from pycrew.futures import TaskFuture, task_seed
from pycrew.group import ControllerGroup
from pycrew.interface import ControllerAPI
from pycrew.monitor import Monitor
from pycrew.options import LauncherOptions, require
from pycrew.plugin_api import (
    TLS_CA_ENV,
    TOKEN_ENV,
    LauncherInfo,
    LauncherSpec,
    WorkerCall,
    WorkerInfo,
)
from pycrew.plugins import get_launcher, installed_launchers, register, unregister
from pycrew.results import ControllerSummary, Summary, TaskResult, WorkerSummary
from pycrew.sequential import SequentialController
from pycrew.tls import TLS

#: Marker for hook implementations: ``@pycrew.hookimpl def pycrew_launch_workers(...)``.
hookimpl = pluggy.HookimplMarker("pycrew")

__version__ = "0.1.0"

__all__ = [
    "TLS",
    "TLS_CA_ENV",
    "TOKEN_ENV",
    "Controller",
    "ControllerAPI",
    "ControllerError",
    "ControllerGroup",
    "ControllerOptions",
    "ControllerSummary",
    "LaunchError",
    "LauncherInfo",
    "LauncherNotFoundError",
    "LauncherOptions",
    "LauncherSpec",
    "Monitor",
    "OptionsError",
    "PluginError",
    "PycrewError",
    "RemoteTraceback",
    "SequentialController",
    "SerializationError",
    "TaskCrashError",
    "TaskError",
    "TaskFuture",
    "TaskResult",
    "TaskTimeoutError",
    "Summary",
    "WorkerCall",
    "WorkerInfo",
    "WorkerSummary",
    "__version__",
    "controller",
    "get_launcher",
    "hookimpl",
    "metrics",
    "installed_launchers",
    "register",
    "require",
    "task_seed",
    "unregister",
]
