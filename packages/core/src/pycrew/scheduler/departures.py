"""pycrew's jobs that left a scheduler's queue without a trace: :class:`Departures`.

Schedulers keep an ended job in their listing for a while, with its state (SLURM for
``MinJobAge``, LSF for ``CLEAN_PERIOD``, PBS Pro with job history, TORQUE for
``keep_completed``, SGE as one of its last ``finished_jobs``), which is how core's launch
watch learns within a second that a worker ended before it connected. Where the site
keeps none (SGE's ``finished_jobs 0``, TORQUE's ``keep_completed 0``, PBS Pro without
history), an ended job just vanishes, and a worker whose interpreter was missing on the
node failed its launch only after ``seconds_launch``, with no reason.

So the listing remembers pycrew's array elements it saw waiting or running; one missing
from the next :data:`MISSES` listings (each the scheduler's whole queue of this user, in
one answer) has ended, and is listed for :data:`SECONDS_KEPT` as the scheduler would have:
``cancelled`` if this process cancelled it, else ``done`` with its exit code unknown, with
its tag, host and log (so that the launch watch quotes the end of its output). Only this process's listing knows
this: another process (a later ``pycrew monitor``) never saw the element waiting.

A scheduler's listing may also lose jobs that are still there (PBS Pro's ``qstat`` prints no
``Jobs`` at all when it has a bad moment, LSF ``"JOBS":0``): were such jobs taken as ended,
core would fail their launches, cancel them and submit again. So a missing element is
*suspect*, and leaves only once confirmed, when the listing's owner asks for it (the
launcher's listing does, :data:`SECONDS_SUSPECT`):

- every element seen waiting or running vanished in the same listing;
- it was last seen waiting (a job rarely starts, runs and leaves between two listings);
- the scheduler's listing keeps ended jobs (PBS Pro's ``qstat -x``, LSF's ``bjobs -a``), so
  an element that ended would be listed ended, not missing.

A suspect element leaves when the scheduler, asked about it job by job, says it no longer
knows it (the ``confirm`` callback), or once it has been missing for ``seconds_suspect``;
until then it is listed as last seen. Elements this process cancelled are never suspect.

An element cancelled from outside (or ended) before the first listing after its submit
would leave no trace at all, and its launch would fail only after ``seconds_launch``. So
the launcher also tells :meth:`Departures.submitted` what it just submitted: such an
element is tracked as waiting from its submit, and one that no listing ever showed leaves
only once the scheduler confirms it no longer knows it (never on time alone: a scheduler
whose listing cannot show pycrew's new jobs must not have their launches failed).
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from typing import Any

from pycrew.scheduler.records import JobRecord

#: How long an element that left the queue is listed as ended (SLURM's default ``MinJobAge``).
SECONDS_KEPT = 300.0
#: An element has left after this many listings in a row without it (one listing that lacks
#: jobs, whatever made the scheduler answer so, must not fail their launches).
MISSES = 2
#: How long a suspect element (see the module) must stay missing, unless the scheduler
#: confirms it is gone, before it is taken as ended (the launcher's listing uses this).
SECONDS_SUSPECT = 10.0

Key = tuple[str, int]
#: Of the suspect elements given, those the scheduler confirms it no longer holds (``None``: it could not say).
Confirm = Callable[[list[JobRecord]], set[Key] | None]


class Departures:
    """The elements of pycrew's that left the queue between two listings (thread-safe).

    Args:
        launcher_name: the launcher's name, for the reason text (``"sge"``).
        element_handle: the CLI's ``element_handle(array_id, index)``, to match cancels.
        is_pycrews: whether a record is one of pycrew's (its name and tag).
        hint: where the scheduler keeps an ended element's exit status (the CLI's
            ``departed_hint``), for the reason text.
        seconds_suspect: how long a suspect element (see the module) stays listed as last
            seen unless ``confirm`` says it is gone; 0 (the default): no element is suspect.
        confirm: asks the scheduler about suspect elements job by job (called without the lock).
        keeps_ended: the listing shows ended jobs, so any element missing from it is suspect.
    """

    def __init__(
        self,
        launcher_name: str,
        element_handle: Callable[[str, int], Any],
        is_pycrews: Callable[[JobRecord], bool],
        hint: Callable[[JobRecord], str],
        *,
        seconds_suspect: float = 0.0,
        confirm: Confirm | None = None,
        keeps_ended: bool = False,
    ) -> None:
        self.launcher_name = launcher_name
        self.seconds_suspect = seconds_suspect
        self.keeps_ended = keeps_ended
        self._confirm = confirm
        self._hint = hint
        self._element_handle = element_handle
        self._is_pycrews = is_pycrews
        self._lock = threading.Lock()
        self._live: dict[Key, JobRecord] = {}  # waiting or running at the last listing
        self._missed: dict[Key, int] = {}  # of those, missing from the last listings: how many
        self._since: dict[Key, float] = {}  # ... and since when
        self._suspect: set[Key] = set()  # of those, the suspect ones (see the module)
        self._left: dict[Key, tuple[float, JobRecord]] = {}  # (when it was missed, as listed now)
        self._cancelled: dict[Any, float] = {}  # handle -> when this process cancelled it
        self._unseen: dict[Key, float] = {}  # submitted here, in no listing yet: when submitted
        self._applied = float("-inf")  # when the listing last applied was asked

    def cancelled(self, handles: Sequence[Any], now: float) -> None:
        """This process cancelled ``handles`` (whole jobs or elements) at ``now``."""
        with self._lock:
            for handle in handles:
                try:
                    self._cancelled[handle] = now
                except TypeError:  # an unhashable handle: its element will read "done"
                    continue
            if len(self._cancelled) > 4096:  # no listing for a while (they prune too)
                self._forget_cancels(now)

    def submitted(self, records: Sequence[JobRecord], now: float) -> None:
        """This process submitted ``records`` (status ``pending``) at ``now``: track them as
        waiting before any listing shows them (see the module)."""
        with self._lock:
            for record in records:
                key = (record.array_id, record.index)
                if key not in self._live and key not in self._left:
                    self._live[key] = record
                    self._unseen[key] = now

    @property
    def unlisted(self) -> int:
        """How many elements submitted here no listing has shown yet (0 right after a listing
        that followed the submits, unless jobs left before it: a scheduler's ``parse_listing``
        must write the ids its ``parse_submit`` and ``element_handle`` do)."""
        with self._lock:
            return len(self._unseen)

    def update(self, records: Sequence[JobRecord], asked: float, now: float) -> list[JobRecord]:
        """The ended elements to list beside ``records`` (a listing asked at ``asked``).

        An element seen waiting or running before and missing from ``records`` is added as
        ended (once confirmed if suspect, see the module); one listed again (requeued) is
        dropped. A listing asked before the one last applied (two threads listed at once)
        updates nothing.
        """
        with self._lock:
            suspects = self._to_confirm(records, asked, now) if self._confirm is not None else []
        confirmed = self._confirm(suspects) if suspects and self._confirm is not None else None
        with self._lock:
            if asked >= self._applied:
                self._applied = asked
                self._apply(records, asked, now, confirmed or set())
            return [record for _, record in self._left.values()]

    def _missing(self, records: Sequence[JobRecord], asked: float) -> tuple[set[Key], list[Key]]:
        """The keys listed, and those tracked but missing (not those submitted after ``asked``)."""
        listed = {(r.array_id, r.index) for r in records}
        return listed, [
            key for key in self._live
            if key not in listed and key not in self._left and self._unseen.get(key, asked) <= asked
        ]

    def _is_suspect(self, key: Key, was: JobRecord, all_vanished: bool) -> bool:
        if self._was_cancelled(was):
            return False
        if key in self._unseen:
            return True
        if self.seconds_suspect <= 0:
            return False
        return key in self._suspect or all_vanished or self.keeps_ended or was.status == "pending"

    def _to_confirm(self, records: Sequence[JobRecord], asked: float, now: float) -> list[JobRecord]:
        """The suspect elements that this listing would make leave, were they confirmed."""
        if asked < self._applied:
            return []
        _listed, missing = self._missing(records, asked)
        every = bool(missing) and len(missing) == len(self._live)
        return [
            self._live[key] for key in missing
            if self._missed.get(key, 0) + 1 >= MISSES and self._is_suspect(key, self._live[key], every)
            and (key in self._unseen or now - self._since.get(key, now) < self.seconds_suspect)
        ]

    def _apply(self, records: Sequence[JobRecord], asked: float, now: float, confirmed: set[Key]) -> None:
        listed, missing = self._missing(records, asked)
        every = bool(missing) and len(missing) == len(self._live)
        live = {(r.array_id, r.index): r for r in records if not r.ended and self._is_pycrews(r)}
        missed: dict[Key, int] = {}
        since: dict[Key, float] = {}
        suspect: set[Key] = set()
        # submitted after this listing was asked: it could not show them (not a miss)
        unseen = {key: at for key, at in self._unseen.items() if key not in listed and now - at < SECONDS_KEPT}
        for key in self._live.keys() - listed - self._left.keys() - set(missing):
            if key in unseen:
                live[key] = self._live[key]
                if key in self._missed:
                    missed[key], since[key] = self._missed[key], self._since[key]
        for key in missing:
            was = self._live[key]
            times = self._missed.get(key, 0) + 1
            first = self._since.get(key, now)
            never_listed = key in self._unseen
            if never_listed and key not in unseen:
                continue  # submitted SECONDS_KEPT ago and never listed: no longer tracked
            doubtful = self._is_suspect(key, was, every)
            if never_listed and doubtful:  # leaves only once the scheduler confirms it is gone
                gone = times >= MISSES and key in confirmed
            else:
                gone = times >= MISSES and (not doubtful or key in confirmed or now - first >= self.seconds_suspect)
            if gone:
                self._left[key] = (now, self._departed(was, never_listed=never_listed))
                unseen.pop(key, None)
            else:  # missing from too few listings, or suspect: maybe a glitch of the scheduler's; ask again
                missed[key], since[key], live[key] = times, first, was
                if doubtful:
                    suspect.add(key)
        self._live, self._missed, self._since, self._suspect, self._unseen = live, missed, since, suspect, unseen
        self._left = {key: entry for key, entry in self._left.items() if key not in listed and now - entry[0] < SECONDS_KEPT}
        self._forget_cancels(now)

    def _forget_cancels(self, now: float) -> None:
        self._cancelled = {handle: at for handle, at in self._cancelled.items() if now - at < SECONDS_KEPT}

    def _departed(self, was: JobRecord, never_listed: bool = False) -> JobRecord:
        """``was`` (as last listed) as an element that ended without a trace in the queue."""
        cancelled = self._was_cancelled(was)
        if cancelled:
            reason = f"cancelled by pycrew; it left the {self.launcher_name} queue"
        elif never_listed:
            reason = (
                f"it left the {self.launcher_name} queue before pycrew first listed it, and the scheduler no longer "
                f"knows it: it was cancelled from outside (or held and deleted) while it waited, or it started and "
                f"ended at once ({self._hint(was)})"
            )
        else:
            reason = (
                f"it ended and left the {self.launcher_name} queue, which keeps no record of ended jobs "
                f"({self._hint(was)}); last seen {_last_seen(was)}"
            )
        # (no state: the scheduler has none for it; the reason says what it was last seen in)
        return dataclasses.replace(was, state="", status="cancelled" if cancelled else "done", reason=reason, exit_code=None)

    def was_cancelled(self, record: JobRecord) -> bool:
        """Whether this process cancelled ``record`` (its element or its array) in the last :data:`SECONDS_KEPT`."""
        with self._lock:
            return self._was_cancelled(record)

    def _was_cancelled(self, record: JobRecord) -> bool:
        for handle in (self._element_handle(record.array_id, record.index), record.array_id):
            try:
                if handle in self._cancelled:
                    return True
            except TypeError:
                continue
        return False


def _last_seen(record: JobRecord) -> str:
    where = f" on {record.host}" if record.host else ""
    seen = f"{record.status} (state {record.state}){where}"
    if record.status == "pending":  # it never showed running: it may never have started
        seen += "; it started and ended between two listings, or was cancelled from outside while it waited"
    return seen


def pycrews(prefix: str) -> Callable[[JobRecord], bool]:
    """Whether a record is one of pycrew's: its name starts with ``prefix`` and it has a tag."""
    return lambda record: bool(record.tag) and record.name.startswith(prefix)

