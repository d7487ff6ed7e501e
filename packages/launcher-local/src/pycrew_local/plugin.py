"""The ``local`` launcher's plugin (entry point ``pycrew.launchers: local = "pycrew_local.plugin:plugin"``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pycrew
from pycrew_local.options import LocalOptions
from pycrew_local.processes import LocalHandle, kill_tree, list_workers, start_worker, worker_output

NAME = "local"
#: What the conformance suite may test (names of ``pycrew.LAUNCHER_CAPABILITIES``).
CAPABILITIES = frozenset({"pid", "host", "monitor", "orphans", "never_connected", "shared_files"})


class LocalPlugin(pycrew.LauncherPlugin[LocalOptions, None]):
    """Workers are processes on this machine; the handle is a :class:`~pycrew_local.LocalHandle`."""

    name = NAME
    options_type = LocalOptions
    summary = "workers are processes on this machine"
    remote = False
    capabilities = CAPABILITIES
    seconds_exit_margin = 5.0

    def launch(self, launcher: pycrew.LauncherInfo, options: LocalOptions, calls: Sequence[pycrew.WorkerCall]) -> list[Any]:
        """Start one process per call."""
        handles: list[Any] = []
        try:
            for call in calls:
                handles.append(start_worker(call, options))
        except BaseException:
            for h in handles:  # do not orphan the part of the batch that did start
                kill_tree(h)
            raise
        return handles

    def terminate(self, launcher: pycrew.LauncherInfo, options: LocalOptions, handles: Sequence[Any]) -> None:
        """Kill each worker's process tree (silent for workers already gone)."""
        for handle in handles:
            if isinstance(handle, LocalHandle):
                kill_tree(handle)

    def list_workers(
        self, launcher: pycrew.LauncherInfo, options: LocalOptions, controller_id: str | None
    ) -> list[pycrew.WorkerInfo]:
        """pycrew worker processes on this machine."""
        return [w for w in list_workers(controller_id) if w.launcher == launcher.name]

    def logs(self, launcher: pycrew.LauncherInfo, options: LocalOptions, handle: Any, lines: int | None) -> str | None:
        """The end of a local worker's output.

        With ``log_dir``: read from the worker's log file, for any worker whose file exists
        (also one started by another process, while it runs). Without: the last 16 KB of
        output that the launching process keeps in memory, while the worker runs and for
        the last 256 workers after they ended; other processes (``pycrew monitor``) cannot
        read it.

        Raises:
            pycrew.LogsUnavailableError: no output is kept for this worker, saying why.
        """
        if not isinstance(handle, LocalHandle):
            raise pycrew.LogsUnavailableError(
                f"launcher {launcher.name!r} got {handle!r} as a worker handle; it needs a LocalHandle "
                "(from the launch hook or Monitor.list())"
            )
        return worker_output(handle, lines)


#: The plugin object the entry point names.
plugin = LocalPlugin()
