"""The monitor's half of a scheduler launcher: :class:`JobListing`, which :class:`~pycrew.scheduler.SchedulerCLI` extends.

The monitor (``pycrew_list_workers``) is asked often: by users and, about once a second,
by core's launch watch while workers are launching. So the scheduler's queue is listed at
most once per ``seconds_poll`` (sooner while jobs wait for a node), the listing is
dropped whenever a launch or a cancel changes the queue, and only jobs that carry
pycrew's tag (:mod:`pycrew.scheduler.jobtag`) become :class:`~pycrew.WorkerInfo`.

Jobs that no launch waits for (a submit in doubt, a duplicate array: see
:mod:`pycrew.scheduler.strays`) are cancelled as soon as a listing shows them, instead of
waiting in the queue for a node and starting for no one.

A listing may lose jobs that are still there (see :mod:`pycrew.scheduler.departures`): a
suspect element leaves only once :meth:`JobListing.confirm_gone` (the subclass's
:meth:`~JobListing.query_command`, one query naming the elements) says the scheduler no
longer knows it, or after :data:`~pycrew.scheduler.departures.SECONDS_SUSPECT`.
"""

from __future__ import annotations

import logging
import math
import re
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

from pycrew.plugin_api import WorkerInfo
from pycrew.scheduler import jobtag
from pycrew.scheduler.commands import CommandRunner
from pycrew.scheduler.departures import SECONDS_SUSPECT, Departures, Key, pycrews
from pycrew.scheduler.errors import SchedulerError
from pycrew.scheduler.records import JobRecord
from pycrew.scheduler.strays import SECONDS_WATCH, StrayWatch

log = logging.getLogger("pycrew.scheduler")

#: How long a submit in doubt is looked for in later listings.
SECONDS_DOUBT = SECONDS_WATCH
#: What separates a job id from the words around it in a scheduler's message.
_ID_SEPARATORS = re.compile(r"[\s<>'\"(),;:{}]+")


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
    is_gone: Callable[[str], bool]
    cancel_handles: Callable[[Sequence[Any]], None]
    #: The listing shows ended jobs (PBS Pro's ``qstat -x``, LSF's ``bjobs -a``): a job missing
    #: from it is suspect, not ended (see :mod:`pycrew.scheduler.departures`).
    listing_keeps_ended: ClassVar[bool] = False

    def __init__(self, launcher_name: str, options: Any) -> None:
        super().__init__(launcher_name, options)
        self._listing_lock = threading.Lock()
        self._listing: tuple[float, list[JobRecord]] | None = None
        self._asked = -math.inf  # when the listing was last asked for (time.monotonic)
        self.departures = Departures(
            launcher_name, self.element_handle, pycrews(self.job_name_prefix), self.departed_hint,
            seconds_suspect=SECONDS_SUSPECT, confirm=self.confirm_gone, keeps_ended=self.listing_keeps_ended,
        )
        self.strays = StrayWatch()

    def doubt(self, tag: str) -> None:
        """A submit of ``tag`` failed in a way that may have left the job with the scheduler."""
        self.strays.doubt(tag, time.monotonic())

    def cancel_strays(self, records: list[JobRecord]) -> None:
        """Cancel the jobs in ``records`` that no launch waits for (see :mod:`pycrew.scheduler.strays`)."""
        found = self.strays.strays(records, time.monotonic())
        if not found:
            return
        doubtful = sorted({r.array_id for r, used in found if used is None})
        duplicates = sorted({f"{r.array_id} (a duplicate of {used})" for r, used in found if used is not None})
        if doubtful:
            log.warning(
                "%s: cancelling job(s) %s: their submit's fate was unknown (its reply was lost or unreadable), so the "
                "launch was given up; the scheduler took them after all", self.launcher_name, ", ".join(doubtful),
            )
        if duplicates:
            log.warning(
                "%s: cancelling job(s) %s: a submit that pycrew had given up and tried again was taken late by the "
                "scheduler, which now holds the same workers twice", self.launcher_name, ", ".join(duplicates),
            )
        arrays = ", ".join(sorted({r.array_id for r, _ in found}))
        try:
            self.cancel_handles([self.element_handle(r.array_id, r.index) for r, _ in found])
        except Exception as exc:  # the next listing does not see them as strays any more: say so
            log.error("%s: could not cancel job(s) %s (%s); cancel them yourself", self.launcher_name, arrays, exc)

    def sweep_strays(self) -> None:
        """While submits are watched for strays, list the queue now and cancel them (a cancel's
        companion: ``terminate()`` reaches every job carrying the tags of pycrew's launches)."""
        if not self.strays.active(time.monotonic()):
            return
        try:
            records = self.list_jobs()
        except SchedulerError as exc:
            log.warning("%s: could not list the queue to cancel jobs no launch waits for: %s", self.launcher_name, exc)
            return
        self.cancel_strays(records)

    def query_command(self, records: Sequence[JobRecord]) -> list[str] | None:
        """The command that asks the scheduler about ``records`` (elements missing from a
        listing) by their ids, printing what the listing command prints for those it knows
        and a "gone" message (:meth:`is_gone`) naming each id it does not; ``None`` (the
        default): the scheduler cannot be asked so, and suspect elements leave only after
        :data:`~pycrew.scheduler.departures.SECONDS_SUSPECT`."""
        return None

    def confirm_gone(self, records: list[JobRecord]) -> set[Key] | None:
        """Of ``records``, missing from a listing, those the scheduler says it no longer knows
        (:meth:`query_command`); ``None`` if it cannot be asked or did not answer."""
        argv = self.query_command(records)
        if argv is None:
            return None
        try:
            proc = self.run(argv)
        except SchedulerError as exc:
            log.debug("%s: could not ask about missing jobs: %s", self.launcher_name, exc)
            return None
        gone_lines = [line for line in (proc.stderr + "\n" + proc.stdout).splitlines() if line.strip() and self.is_gone(line)]
        if proc.returncode != 0 and not gone_lines:
            return None
        try:
            known = {(r.array_id, r.index) for r in self.parse_listing(proc.stdout)}
        except SchedulerError:
            known = set()
            if proc.returncode == 0:
                return None
        named = {word for line in gone_lines for word in _ID_SEPARATORS.split(line) if word}
        return {
            (r.array_id, r.index) for r in records
            if (r.array_id, r.index) not in known and (str(self.element_handle(r.array_id, r.index)) in named or r.id in named)
        }

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

        So does a listing asked for again within a fifth of ``seconds_poll``: the caller waits
        on a change (core's crash watch asks every 0.1 s about a worker lost a moment ago
        until the platform reports it ended). SGE shows a task deleted with ``qdel`` as ``dr``
        for about a second, then as a zombie that no longer says why it ended: a listing held
        for all of ``seconds_poll`` misses that second.
        """
        interval = float(self._option("seconds_poll", 1.0))
        now = time.monotonic()
        with self._listing_lock:
            cached = self._listing
            asked_again = now - self._asked < interval / 5
            self._asked = now
        if cached is not None:
            unplaced = any(not r.host and not r.ended for r in cached[1])
            if now - cached[0] < (interval / 5 if unplaced or asked_again else interval):
                return cached[1]
        records = self.list_jobs()
        self.cancel_strays(records)
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
