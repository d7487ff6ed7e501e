"""Monitors: list and terminate a launcher's workers, including orphans of dead controllers.

Every started controller writes a small record (id, name, pid, host) in pycrew's state
directory (``$PYCREW_STATE_DIR``, default ``~/.local/state/pycrew``) and removes it when it
terminates. A worker whose controller id has no record, or whose record names a process
on this host that no longer runs, is an orphan.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil

from pycrew.plugin_api import LauncherInfo, WorkerInfo
from pycrew.plugins import PluginRegistry, get_registry

log = logging.getLogger(__name__)

WorkerList = list[WorkerInfo]


def state_dir() -> Path:
    """Where controller records live."""
    base = os.environ.get("PYCREW_STATE_DIR") or os.path.join(os.path.expanduser("~"), ".local", "state", "pycrew")
    return Path(base) / "controllers"


def register_controller(controller_id: str, name: str, launcher: str) -> None:
    """Record a running controller (best effort: a read-only home must not stop work)."""
    try:
        d = state_dir()
        d.mkdir(parents=True, exist_ok=True)
        proc = psutil.Process()
        record = {
            "id": controller_id,
            "name": name,
            "launcher": launcher,
            "pid": proc.pid,
            "create_time": proc.create_time(),
            "host": socket.gethostname(),
            "started": time.time(),
        }
        (d / f"{controller_id}.json").write_text(json.dumps(record))
    except OSError as exc:
        log.warning("could not record controller %s in %s: %s (orphan detection will treat its workers as orphans)", controller_id, state_dir(), exc)


def unregister_controller(controller_id: str) -> None:
    """Remove a controller's record."""
    try:
        (state_dir() / f"{controller_id}.json").unlink(missing_ok=True)
    except OSError as exc:
        log.warning("could not remove the record of controller %s: %s", controller_id, exc)


def controller_alive(controller_id: str | None) -> bool:
    """Whether the controller is known to be running (unknown remote hosts count as alive)."""
    if not controller_id:
        return False
    path = state_dir() / f"{controller_id}.json"
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    if record.get("host") != socket.gethostname():
        return True  # cannot check another host's processes: assume alive
    try:
        proc = psutil.Process(int(record["pid"]))
        alive = bool(abs(proc.create_time() - float(record["create_time"])) < 1.0 and proc.status() != psutil.STATUS_ZOMBIE)
    except (psutil.Error, KeyError, ValueError):
        alive = False
    if not alive:
        path.unlink(missing_ok=True)
    return alive


class Monitor:
    """List and terminate one launcher's pycrew workers.

    Example::

        m = pycrew.Monitor("local")
        for w in m.orphans():
            print(w.id, w.controller, w.age)
        m.terminate(m.orphans())
    """

    def __init__(self, launcher: str, registry: PluginRegistry | None = None, **options: Any) -> None:
        self.registry = registry or get_registry()
        self.spec = self.registry.launcher(launcher)
        self.info = LauncherInfo(name=self.spec.name, options=self.spec.options_type.from_mapping(options))

    def list(self, controller_id: str | None = None, ended: bool = False) -> WorkerList:
        """Workers of one controller, or of every controller when ``controller_id`` is None.

        Only live ones, unless ``ended``: then also those the launcher reports as recently
        ended (:attr:`WorkerInfo.ended`, with their status, exit code and reason).
        """
        result = self.registry.call(self.spec, "pycrew_list_workers", launcher=self.info, controller_id=controller_id)
        return [w for w in result or [] if ended or not w.ended]

    def orphans(self) -> WorkerList:
        """Workers whose controller is no longer running."""
        return [w for w in self.list() if not controller_alive(w.controller_id)]

    def terminate(self, workers: Iterable[WorkerInfo]) -> int:
        """Terminate the given workers; returns how many were asked to stop."""
        handles = [w.handle for w in workers]
        if handles:
            self.registry.call(self.spec, "pycrew_terminate_workers", launcher=self.info, handles=handles)
        return len(handles)
