"""Executions this process launched, and those deleted from outside pycrew: :class:`LaunchedExecution`.

An execution deleted (``gcloud run jobs executions delete``, a cleanup script) before its
tasks connected vanishes from the API with its tasks: the monitor's listing simply lacks
it. Core fails a launching worker at once only when the monitor lists it as *ended*, so
the launcher remembers the executions it ran and did not cancel (``EngineBase._launched``),
and :meth:`~pycrew_cloudrun.monitor_listing.MonitorListing.workers` lists the tasks of one
missing from the listing, *and* that a direct ``get_execution`` confirms gone (``NotFound``),
as ``cancelled`` (state ``DELETED``) for :data:`SECONDS_GONE_KEEP` seconds. Absence from a
listing alone is never enough: a listing may lag or page.

Nothing here talks to the API.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from pycrew import WorkerInfo
from pycrew_cloudrun.records import CloudRunHandle
from pycrew_cloudrun.tag import ExecutionTag

#: The tasks of an execution confirmed deleted from outside are listed as ended this long, then forgotten.
SECONDS_GONE_KEEP = 300.0


@dataclass
class LaunchedExecution:
    """An execution this process ran and did not cancel.

    Attributes:
        name: the execution's full name.
        tag: its tag (the controller, and the instance and slot of each task).
        launched: when it was run (epoch seconds).
        ended: a listing showed it ended: its deletion later (retention, a cleanup) is no news.
        gone: when a read confirmed it deleted (monotonic seconds), or ``None``.
        stopped: its tasks pycrew had asked to stop when it was found deleted (not reported).
    """

    name: str
    tag: ExecutionTag
    launched: float = field(default_factory=time.time)
    ended: bool = False
    gone: float | None = None
    stopped: frozenset[int] = frozenset()

    def mine(self, controller_id: str | None) -> bool:
        """Whether it is of controller ``controller_id`` (``None``: any)."""
        return controller_id is None or self.tag.controller_id == controller_id

    def expired(self, now: float, seconds_keep: float = SECONDS_GONE_KEEP) -> bool:
        """Whether it was confirmed deleted more than ``seconds_keep`` before ``now`` (monotonic)."""
        return self.gone is not None and now - self.gone > seconds_keep

    def deleted_workers(self, launcher: str) -> list[WorkerInfo]:
        """Its tasks (but those pycrew asked to stop), deleted from outside pycrew, as ended workers:
        ``cancelled``, state ``DELETED``, with a reason that says so."""
        count = len(self.tag.slots)
        short = self.name.rsplit("/", 1)[-1]
        out = []
        for index in range(count):
            if index in self.stopped:
                continue
            instance = self.tag.instance_of(index)
            out.append(WorkerInfo(
                id=f"{self.name}/tasks/{short}-task{index}",
                handle=CloudRunHandle(self.name, index, instance or "", count, listed=True),
                launcher=launcher,
                controller=self.tag.controller or None,
                controller_id=self.tag.controller_id,
                instance=instance,
                worker=self.tag.slot_of(index),
                state="DELETED",
                started=self.launched,
                reason=(
                    f"its Cloud Run execution {short} was deleted from outside pycrew (e.g. by `gcloud run jobs "
                    "executions delete` or a cleanup), with its tasks"
                ),
                status="cancelled",
            ))
        return out
