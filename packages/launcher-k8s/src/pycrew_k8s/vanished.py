"""Jobs this process launched that were deleted from outside pycrew: :class:`LaunchedJobs`.

A Job deleted with ``kubectl delete job`` (background propagation) or by a cleanup script
vanishes from the API at once, with its pod: the monitor's listing simply lacks it. Core
fails a launching worker at once only when the monitor lists it as *ended*, so the
launcher remembers the Jobs it launched and did not terminate itself, and
:meth:`~pycrew_k8s.launcher.K8sLauncher.workers` lists one that is missing from the
listing, *and* that a direct read confirms gone (404), as ``cancelled`` (state
``Deleted``), for :data:`SECONDS_GONE_KEEP` seconds. Absence from a listing alone is never
enough: a listing may lag or page.

The set is bounded (:data:`LAUNCHED_MAX`, the oldest dropped) and thread-safe; nothing here
talks to a cluster.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass

from pycrew import WorkerCall, WorkerInfo

#: At most this many launched Jobs are remembered (the oldest are dropped).
LAUNCHED_MAX = 10_000
#: A Job confirmed deleted from outside is listed as ended this long, then forgotten.
SECONDS_GONE_KEEP = 300.0


@dataclass
class LaunchedJob:
    """A Job this process launched and has not terminated.

    Attributes:
        handle: ``"namespace/name"``.
        instance: its worker's instance id.
        worker: its worker's slot.
        controller: the controller's name.
        controller_id: the controller's id.
        launched: when it was launched (epoch seconds).
        gone: when a read confirmed it deleted (monotonic seconds), or ``None``.
    """

    handle: str
    instance: str
    worker: int
    controller: str
    controller_id: str
    launched: float
    gone: float | None = None

    @property
    def namespace(self) -> str:
        """The Job's namespace."""
        return self.handle.partition("/")[0]

    @property
    def name(self) -> str:
        """The Job's name."""
        return self.handle.partition("/")[2]

    def worker_info(self, launcher: str) -> WorkerInfo:
        """This Job, deleted from outside pycrew, as an ended worker (``cancelled``, state ``Deleted``)."""
        return WorkerInfo(
            id=self.name,
            handle=self.handle,
            launcher=launcher,
            controller=self.controller or None,
            controller_id=self.controller_id or None,
            instance=self.instance,
            worker=self.worker,
            state="Deleted",
            started=self.launched,
            reason=f"its Job {self.handle} was deleted from outside pycrew (e.g. by kubectl delete or a cleanup job)",
            status="cancelled",
        )


class LaunchedJobs:
    """The Jobs this process launched and did not terminate itself (see the module docstring)."""

    def __init__(self, limit: int = LAUNCHED_MAX, seconds_keep: float = SECONDS_GONE_KEEP) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, LaunchedJob] = {}
        self.limit = limit
        self.seconds_keep = seconds_keep

    def remember(self, calls: Iterable[WorkerCall], handles: Iterable[str]) -> None:
        """Remember the Jobs of a launch (``handles`` in the order of ``calls``)."""
        now = time.time()
        with self._lock:
            for call, handle in zip(calls, handles, strict=True):
                self._jobs[handle] = LaunchedJob(handle, call.instance, call.worker, call.controller, call.controller_id, now)
            while len(self._jobs) > self.limit:
                self._jobs.pop(next(iter(self._jobs)))

    def forget(self, handles: Iterable[str]) -> None:
        """Forget Jobs: pycrew deletes them itself (their end is no news), or they ended as listed."""
        with self._lock:
            for handle in handles:
                self._jobs.pop(handle, None)

    def unlisted(self, controller_id: str | None, namespace: str | None, listed: set[str]) -> list[LaunchedJob]:
        """The Jobs (of one controller, or all; in ``namespace``, or any) not confirmed gone yet
        whose handles are not in ``listed``: to be read, to tell deleted from not listed yet."""
        with self._lock:
            return [
                job for job in self._jobs.values()
                if job.gone is None and job.handle not in listed and (namespace is None or job.namespace == namespace)
                and (controller_id is None or job.controller_id == controller_id)
            ]

    def confirm_gone(self, handle: str) -> None:
        """A read found the Job deleted: list it as ended from now on (for :attr:`seconds_keep`)."""
        with self._lock:
            job = self._jobs.get(handle)
            if job is not None and job.gone is None:
                job.gone = time.monotonic()

    def gone(self, launcher: str, controller_id: str | None) -> list[WorkerInfo]:
        """The Jobs confirmed deleted (of one controller, or all) as ended workers; those
        confirmed more than :attr:`seconds_keep` ago are forgotten."""
        now = time.monotonic()
        with self._lock:
            for handle in [h for h, j in self._jobs.items() if j.gone is not None and now - j.gone > self.seconds_keep]:
                del self._jobs[handle]
            return [
                job.worker_info(launcher) for job in self._jobs.values()
                if job.gone is not None and (controller_id is None or job.controller_id == controller_id)
            ]
