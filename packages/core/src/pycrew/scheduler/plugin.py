"""The plugin half of a batch-scheduler launcher: :class:`SchedulerPlugin`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, TypeVar

from pycrew.launcher_plugin import LauncherPlugin
from pycrew.plugin_api import LauncherInfo, WorkerCall, WorkerInfo
from pycrew.scheduler.cli import SchedulerCLI
from pycrew.scheduler.options import SchedulerOptions

SchedulerOptionsT = TypeVar("SchedulerOptionsT", bound=SchedulerOptions)
SchedulerCLIT = TypeVar("SchedulerCLIT", bound=SchedulerCLI)


class SchedulerPlugin(LauncherPlugin[SchedulerOptionsT, SchedulerCLIT]):
    """A :class:`pycrew.LauncherPlugin` whose hooks go to a :class:`SchedulerCLI`.

    A subclass sets ``name``, ``options_type``, ``summary`` and ``cli_type`` (or overrides
    :meth:`create_client`), usually :meth:`client_key` (the environment that names the
    cluster) and :meth:`logs`. Launch, terminate and list go to the CLI's ``launch``,
    ``cancel`` and ``workers``; one CLI per distinct options value is kept by the plugin's
    client cache, so the site's array limit is asked once and the monitor's cadence holds.
    Workers run on other hosts (``remote``); the monitor lists pycrew's jobs of this user
    by their tags, with hosts and orphans, and cancel reaches queued jobs.
    """

    #: The CLI class :meth:`create_client` builds.
    cli_type: ClassVar[type[SchedulerCLI]]
    remote = True
    capabilities = frozenset({"monitor", "host", "orphans", "never_connected"})
    #: A running worker of a dead controller exits after seconds_idle; this covers what a
    #: scheduler adds before the job leaves its listing (epilogs, the end report) and the
    #: monitor's cadence.
    seconds_exit_margin = 60.0

    def create_client(self, options: SchedulerOptionsT) -> SchedulerCLIT:
        """The CLI for ``options`` (it runs nothing until used)."""
        client: Any = self.cli_type(self.name, options)
        return client  # type: ignore[no-any-return]

    def launch(self, launcher: LauncherInfo, options: SchedulerOptionsT, calls: Sequence[WorkerCall]) -> list[Any]:
        """Submit the batch as job array(s); return one handle per call, in order."""
        return self.client(options).launch(launcher, calls)

    def terminate(self, launcher: LauncherInfo, options: SchedulerOptionsT, handles: Sequence[Any]) -> None:
        """Cancel the jobs or array elements; jobs already finished or unknown are fine."""
        self.client(options).cancel(handles)

    def list_workers(
        self, launcher: LauncherInfo, options: SchedulerOptionsT, controller_id: str | None
    ) -> list[WorkerInfo]:
        """pycrew's workers in the queue (one listing per ``seconds_poll``)."""
        return self.client(options).workers(controller_id)
