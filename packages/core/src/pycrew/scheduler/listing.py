"""The monitor's half of a scheduler launcher: :class:`JobListing`, which :class:`~pycrew.scheduler.SchedulerCLI` extends.

The monitor (``pycrew_list_workers``) is asked often: by users and, about once a second,
by core's launch watch while workers are launching. So the scheduler's queue is listed at
most once per ``seconds_poll`` (sooner while jobs wait for a node), the listing is
dropped whenever a launch or a cancel changes the queue, and only jobs that carry
pycrew's tag (:mod:`pycrew.scheduler.jobtag`) become :class:`~pycrew.WorkerInfo`.

A submit whose fate stayed unknown (its reply was lost and the queue could not be read, a
daemon that stalled) leaves its tag *in doubt*: if a later listing shows a job carrying it,
the scheduler took the job after all, for a launch core has given up on, and it is
cancelled at once instead of waiting in the queue for a node and starting for no one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, ClassVar

from pycrew.plugin_api import WorkerInfo
from pycrew.scheduler import jobtag
from pycrew.scheduler.commands import CommandRunner
from pycrew.scheduler.departures import Departures, pycrews
from pycrew.scheduler.records import JobRecord

log = logging.getLogger("pycrew.scheduler")

#: How long a submit in doubt is looked for in later listings.
SECONDS_DOUBT = 6 * 3600.0


class JobListing(CommandRunner):
    """Lists one scheduler's queue for the monitor, at most once per ``seconds_poll``.

    The scheduler's syntax comes from the subclass (:class:`~pycrew.scheduler.SchedulerCLI`
    declares and documents it): :meth:`list_command`, :meth:`parse_listing`,
    :meth:`element_handle` and :attr:`job_name_prefix`.

    Args:
        launcher_name: the launcher's registered name (``"slurm"``).
        options: the launcher's options; read is ``seconds_poll`` when they have it.
    """

    # The scheduler's syntax, supplied by the subclass.
    job_name_prefix: ClassVar[str]
    list_command: Callable[[], list[str]]
    parse_listing: Callable[[str], list[JobRecord]]
    element_handle: Callable[[str, int], Any]
    cancel: Callable[[Any], None]

    def __init__(self, launcher_name: str, options: Any) -> None:
        super().__init__(launcher_name, options)
        self._listing_lock = threading.Lock()
        self._listing: tuple[float, list[JobRecord]] | None = None
        self.departures = Departures(launcher_name, self.element_handle, pycrews(self.job_name_prefix), self.departed_hint)
        self._doubtful: dict[str, float] = {}  # tag -> when its submit's fate became unknown (monotonic)

    def doubt(self, tag: str) -> None:
        """A submit of ``tag`` failed in a way that may have left the job with the scheduler."""
        with self._listing_lock:
            self._doubtful[tag] = time.monotonic()

    def cancel_doubtful(self, records: list[JobRecord]) -> None:
        """Cancel the jobs in ``records`` whose submit was in doubt (see the module)."""
        if not self._doubtful:
            return
        now = time.monotonic()
        with self._listing_lock:
            for tag in [t for t, since in self._doubtful.items() if now - since > SECONDS_DOUBT]:
                del self._doubtful[tag]
            found = {r.tag for r in records if r.tag in self._doubtful and r.held}
            for tag in found:
                del self._doubtful[tag]
        handles = [self.element_handle(r.array_id, r.index) for r in records if r.tag in found and r.held]
        if handles:
            arrays = sorted({r.array_id for r in records if r.tag in found})
            log.warning(
                "%s: cancelling job(s) %s: their submit's reply was lost and the queue could not be read then, so the "
                "launch was given up; the scheduler took them after all", self.launcher_name, ", ".join(arrays),
            )
            try:
                self.cancel(handles)
            except Exception as exc:  # the next listing does not see them as doubtful any more: say so
                log.error("%s: could not cancel job(s) %s (%s); cancel them yourself", self.launcher_name, ", ".join(arrays), exc)

    def list_jobs(self) -> list[JobRecord]:
        """Every array element of this user's that the scheduler holds (pycrew's or not)."""
        return self.parse_listing(self.check(self.list_command(), what=f"listing {self.launcher_name} jobs"))

    def forget_listing(self) -> None:
        """Drop the monitor's cached listing (after a launch or a cancel)."""
        with self._listing_lock:
            self._listing = None

    def listing(self) -> list[JobRecord]:
        """The scheduler's listing, asked at most once per ``seconds_poll``.

        A listing that shows jobs not placed on a node yet goes stale sooner (a fifth of
        ``seconds_poll``): those jobs are about to start, and core's launch watch asks about
        once a second while they do, so a monitor call right after a worker started must not
        be answered with the listing from before it started.
        """
        interval = float(self._option("seconds_poll", 1.0))
        with self._listing_lock:
            cached = self._listing
        now = time.monotonic()
        if cached is not None:
            unplaced = any(not r.host and not r.ended for r in cached[1])
            if now - cached[0] < (interval / 5 if unplaced else interval):
                return cached[1]
        records = self.list_jobs()
        self.cancel_doubtful(records)
        records = records + self.departures.update(records, now, time.monotonic())
        with self._listing_lock:
            self._listing = (now, records)
        return records

    def departed_hint(self, record: JobRecord) -> str:
        """Where the scheduler keeps the exit status of ``record``, an element that left its
        queue without a trace (see :mod:`pycrew.scheduler.departures`); a subclass names the
        command (``qacct -j 12 -t 3``)."""
        return "its exit status is in the scheduler's accounting, if the site keeps one"

    def workers(self, controller_id: str | None) -> list[WorkerInfo]:
        """pycrew's workers in the queue: all, or one controller's. Nothing that is not pycrew's."""
        result: list[WorkerInfo] = []
        for record in self.listing():
            if not record.name.startswith(self.job_name_prefix):
                continue
            tag = jobtag.decode(record.tag)
            if tag is None or (controller_id is not None and tag.controller_id != controller_id):
                continue
            slot, instance = tag.element(record.index) or (None, None)
            result.append(
                WorkerInfo(
                    id=record.id,
                    handle=self.element_handle(record.array_id, record.index),
                    launcher=self.launcher_name,
                    controller=tag.controller or None,
                    controller_id=tag.controller_id,
                    instance=instance,
                    worker=slot,
                    state=record.state,
                    host=record.host,
                    started=record.submitted,
                    reason=record.reason,
                    log=record.log,
                    status=record.status,
                    exit_code=record.exit_code,
                    queued=record.queued,
                )
            )
        return result
