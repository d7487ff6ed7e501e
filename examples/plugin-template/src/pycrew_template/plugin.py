"""The ``template`` launcher's plugin (entry point ``pycrew.launchers: template = "pycrew_template.plugin:plugin"``).

A subclass of :class:`pycrew.LauncherPlugin`: class attributes say what the launcher is, and
three methods do the work. The base class registers the launcher, checks that the options
it gets are :class:`TemplateOptions`, and implements the hooks. Core calls them only for
the launcher this plugin registered, in its thread pool: they may block on the platform,
and never need to ask whether a call is theirs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pycrew
from pycrew_template.options import TemplateOptions
from pycrew_template.workers import TemplateHandle, list_workers, start_worker, stop_workers

#: What the conformance suite may test (names of pycrew.LAUNCHER_CAPABILITIES).
CAPABILITIES = frozenset({"monitor", "pid", "host", "orphans", "never_connected"})


class TemplatePlugin(pycrew.LauncherPlugin[TemplateOptions, None]):
    """Workers are local processes started through /bin/sh; the handle is a :class:`TemplateHandle`.

    A platform reached through a client object (an API session, a CLI wrapper) would use
    ``pycrew.LauncherPlugin[TemplateOptions, MyClient]``, define ``create_client(options)``
    and call ``self.client(options)`` in the methods: one client per options value, cached.
    """

    name = "template"  # the entry point's name
    options_type = TemplateOptions
    summary = "workers are local processes started through /bin/sh with a pid file (an example plugin)"
    remote = False
    capabilities = CAPABILITIES
    seconds_exit_margin = 5.0

    def launch(
        self, launcher: pycrew.LauncherInfo, options: TemplateOptions, calls: Sequence[pycrew.WorkerCall]
    ) -> list[Any]:
        """Start one worker per call; one handle per call, in order."""
        handles: list[TemplateHandle] = []
        try:
            for call in calls:
                handles.append(start_worker(call, options))
        except BaseException:
            stop_workers(handles, options)  # do not orphan the part of the batch that started
            raise
        return list(handles)

    def terminate(self, launcher: pycrew.LauncherInfo, options: TemplateOptions, handles: Sequence[Any]) -> None:
        """Stop the workers behind the handles; workers already gone are not an error."""
        stop_workers([h for h in handles if isinstance(h, TemplateHandle)], options)

    def list_workers(
        self, launcher: pycrew.LauncherInfo, options: TemplateOptions, controller_id: str | None
    ) -> list[pycrew.WorkerInfo]:
        """The monitor: this launcher's running workers (one controller's, or all)."""
        return list_workers(options, controller_id)


#: The object the entry point names (module:object): pluggy registers its hook methods.
plugin = TemplatePlugin()
