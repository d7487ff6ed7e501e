"""What every part of :class:`~pycrew.control.controller.Controller` may rely on: its state.

The controller is assembled from a few classes, each in its own module: the life cycle
and submitting (:mod:`.controller`), resolving tasks on the dispatcher's thread
(:mod:`.resolving`) and the results API (:mod:`.collecting`). This base declares the
state they share; :class:`Controller.__init__` sets it.
"""

from __future__ import annotations

import collections
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from pycrew.control.alarm import ResolutionAlarm
from pycrew.controller_options import ControllerOptions
from pycrew.plugin_api import LauncherSpec
from pycrew.plugins import PluginRegistry
from pycrew.results import Summary, TaskResult

if TYPE_CHECKING:
    import itertools

    from pycrew.control.dispatcher import Dispatcher
    from pycrew.control.release import OwnerRef
    from pycrew.control.scaler import Scaler
    from pycrew.control.tasks import Task


class ControllerState:
    """Attributes shared by the parts of a controller (set by ``Controller.__init__``)."""

    name: str
    id: str
    spec: LauncherSpec
    options: ControllerOptions
    launcher: Scaler
    _registry: PluginRegistry
    _dispatcher: Dispatcher | None
    _ids: itertools.count[int]
    _names: itertools.count[int]  # push's default names
    _results: collections.deque[TaskResult]
    _cv: threading.Condition
    _waiters: int
    _started: bool
    _terminated: bool
    _terminating: threading.Thread | None  # the thread running terminate() (None: none, or a Ctrl-C stopped it)
    _terminate_done: threading.Event  # set when no terminate() is in progress
    _shutdown: bool
    _t0: float
    pushed: int
    popped: int
    resolved: int
    _abandoned: int  # futures failed by a LaunchError: they will never resolve
    _ended_held: int  # tasks still held when the controller was terminated (control.backups)
    _status_counts: dict[str, int]
    _slot_complete: dict[int, int]
    _slot_seconds: dict[int, float]
    _notify_done: bool
    _futures_issued: int
    _futures_resolved: int
    _alarm: ResolutionAlarm  # wakes a map feeder once enough futures resolved
    _feeders: set[Any]  # map feeders still submitting (map_feeder.Feeder)
    _forwarded: dict[int, tuple[Task, Any, int]]  # task id -> (task, backup, its id there): control.backups
    _pid: int  # the process that started the controller
    _owner: OwnerRef  # how the dispatcher's and the launcher's threads reach it (control.release)
    _forked_from: int | None  # in a forked child's copy of a started controller: that process

    def _forked_message(self) -> str | None:
        """Why this copy, in a child forked from the process that started the controller,
        refuses work (``None`` anywhere else)."""
        if self._forked_from is None:
            return None
        return (
            f"controller {self.name!r} belongs to process {self._forked_from}, which started it; this process "
            f"({os.getpid()}) is a fork of it and cannot use it: the workers answer to that process alone. "
            "Start a controller in this process, or fork before starting one"
        )

    def _stop_feeders(self, error: BaseException) -> None:
        """Stop every ``map`` still submitting its input (see Controller)."""
        raise NotImplementedError

    def _cancel_forwarded(self, predicate: Callable[[Task], bool], message: str) -> int:
        """Cancel, on the backup, the tasks handed to it that match (see Backups)."""
        raise NotImplementedError

    def _settle(self, task: Task, result: TaskResult) -> None:
        """Count a final result and hand it on (see Resolving)."""
        raise NotImplementedError

    def _on_result(self, task: Task, payload: Any, conn: Any, local: tuple[str, str, str] | None) -> None:
        """A task resolved: by its worker's result (``payload``) or here (``local``) (see Resolving)."""
        raise NotImplementedError

    def _check(self) -> Dispatcher:
        """The running dispatcher; raises if the controller cannot take work (see Controller)."""
        raise NotImplementedError

    def _launch_failed(self) -> bool:
        """Whether a LaunchError ended the launches (see Collecting)."""
        raise NotImplementedError

    def pending_futures(self) -> int:
        """Futures not resolved yet (see Controller)."""
        raise NotImplementedError

    def unresolved(self) -> int:
        """Tasks not resolved yet (see Collecting)."""
        raise NotImplementedError

    def summary(self) -> Summary:
        """Counts of the controller, its workers and its launcher (see Collecting)."""
        raise NotImplementedError
