"""Submitting one array exactly once: :class:`ArraySubmitter`, which :class:`~pycrew.scheduler.SchedulerCLI` extends.

A submit command can fail after the scheduler took the job, and succeed without a reply
pycrew can read:

- a transient failure (the daemon unreachable, a timeout) may have happened before or after
  the scheduler took the job: before each new try the listing is searched for the array's
  tag, and a job carrying it is the answer;
- a submit that exits 0 took the job, whatever it printed: a reply without a readable job id
  (a site's wrapper around the command, an empty reply) is no reason to submit again; the
  job is looked up by its tag;
- what stays unknown (the queue cannot be read, every try failed, the job is not listed)
  leaves the tag *in doubt*, and a submit that needed a lookup or another try has its tag
  watched for duplicates (a stalled daemon taking an earlier try late): such jobs are
  cancelled when a listing or a cancel finds them (:mod:`pycrew.scheduler.strays`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from pycrew.plugin_api import LauncherInfo, WorkerCall
from pycrew.scheduler import jobtag
from pycrew.scheduler.errors import SchedulerError
from pycrew.scheduler.listing import JobListing

log = logging.getLogger("pycrew.scheduler.cli")

#: How many times the listing is searched for the tag of a submit whose reply had no readable job id.
UNREADABLE_LOOKUPS = 3


class ArraySubmitter(JobListing):
    """Submits one array per call of :meth:`submit_array`, never twice (see the module).

    The builders come from the subclass (:class:`~pycrew.scheduler.SchedulerCLI` declares
    and documents them).
    """

    # The scheduler's syntax and the script, supplied by the subclass.
    render_script: Callable[[LauncherInfo, Sequence[WorkerCall], str], str]
    write_script: Callable[[str], Path]
    submit_command: Callable[[Path, Sequence[WorkerCall], str], list[str]]
    submit_input: Callable[[Path], str | None]
    submission_environment: Callable[[Sequence[WorkerCall]], dict[str, str]]
    parse_submit: Callable[[str], str]
    submissions: int
    found_by_tag: int

    def submit_array(self, launcher: LauncherInfo, calls: Sequence[WorkerCall]) -> str:
        """Submit one array of ``calls``; return its job id. Never submits it twice.

        A transient failure (the daemon unreachable, a timeout) may have happened before
        or after the scheduler took the job. Before each new try the listing is searched
        for the array's tag: if the job is there, its id is the answer. A submit that exits
        0 but prints no readable job id is looked up by its tag the same way, and never
        tried again.

        Raises:
            SchedulerError: the submit failed for good, or its fate could not be learned.
        """
        tag = jobtag.encode(calls)
        script = self.write_script(self.render_script(launcher, calls, tag))
        attempts = int(self._option("command_attempts", 4))
        argv = self.submit_command(script, calls, tag)
        tried = False  # a try failed before: a stalled daemon may still take it
        try:
            for attempt in range(attempts):
                try:
                    self.submissions += 1
                    out = self.check(
                        argv, self.submission_environment(calls), what=f"{argv[0]} (submitting {self.launcher_name} workers)",
                        retry=False, input=self.submit_input(script), kill_at_exit=True,
                    )
                except SchedulerError as exc:
                    if not exc.transient:  # a rejection, or a reply that broke after the scheduler took the job:
                        self.doubt(tag)  # one carrying the tag is cancelled when a listing shows it (the probe saw it run)
                        raise
                    found = self._look_up(tag, exc)
                    if found is not None:
                        log.warning(
                            "%s: the submit's reply was lost (%s), but the scheduler has the job: %s", self.launcher_name, exc, found
                        )
                        return found
                    if attempt == attempts - 1:
                        self.doubt(tag)  # a daemon that stalled may still take it
                        raise
                    tried = True
                    self.pause(attempt, exc)
                    continue
                try:
                    job_id = self.parse_submit(out)
                except SchedulerError as exc:
                    return self._unreadable_reply(tag, argv, out, exc)
                if tried:
                    self.strays.accepted(tag, job_id, time.monotonic())
                log.debug("%s: submitted array %s with %d worker(s)", self.launcher_name, job_id, len(calls))
                return job_id
            raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover
        finally:
            script.unlink(missing_ok=True)  # the scheduler keeps its own copy

    def _look_up(self, tag: str, cause: SchedulerError) -> str | None:
        """:meth:`find_tagged`; the tag is in doubt if the queue cannot be read, watched if found."""
        try:
            found = self.find_tagged(tag, cause)
        except SchedulerError:  # the job may be with the scheduler: cancelled if a listing shows it
            self.doubt(tag)
            raise
        if found is not None:
            self.found_by_tag += 1
            self.strays.accepted(tag, found, time.monotonic())
        return found

    def _unreadable_reply(self, tag: str, argv: Sequence[str], out: str, exc: SchedulerError) -> str:
        """A submit exited 0 (the scheduler took the job) without a job id pycrew can read: its id by its tag."""
        reply = out.strip()[:300]
        quoted = "" if reply and reply in str(exc) else f" (its reply: {reply!r})"
        cause = SchedulerError(
            f"{argv[0]} exited 0, so the scheduler took the job, but pycrew read no job id in its reply: {exc}{quoted}",
            argv, 0, "",
        )
        for attempt in range(UNREADABLE_LOOKUPS):
            found = self._look_up(tag, cause)
            if found is not None:
                log.warning("%s: %s; the job carrying the array's tag is %s", self.launcher_name, cause, found)
                return found
            if attempt < UNREADABLE_LOOKUPS - 1:
                time.sleep(self.backoff(attempt))  # a scheduler may list a new job a moment later
        self.doubt(tag)
        raise SchedulerError(
            f"{self.launcher_name}: {cause}, and no job carrying the array's tag is listed: workers may have been "
            "submitted; this array is not submitted again, so that none of its workers runs twice (a next launch "
            "submits a new array): a job carrying its tag is cancelled as soon as a listing shows it, and when the "
            "controller terminates. A site wrapper around the submit command must print the scheduler's reply",
            argv, 0, "",
        ) from exc

    def find_tagged(self, tag: str, cause: SchedulerError) -> str | None:
        """The id of the array carrying exactly ``tag`` in the listing, if any.

        Raises:
            SchedulerError: the listing could not be read: whether the submit happened is
                unknown, so it must not be repeated.
        """
        self.forget_listing()
        try:
            records = self.list_jobs()
        except SchedulerError as exc:
            raise SchedulerError(
                f"{self.launcher_name}: a submit failed ({cause}) and the queue could not be listed to see whether "
                f"the scheduler took it ({exc}); not submitting again, so that no job runs twice",
                cause.command, cause.returncode, cause.stderr, transient=True,
            ) from exc
        ids = sorted({r.array_id for r in records if r.tag == tag}, key=lambda i: (len(i), i))  # "999" before "1000"
        if len(ids) > 1:
            log.warning(
                "%s: %d arrays carry the same tag %r: %s; using %s, the others are cancelled",
                self.launcher_name, len(ids), tag, ids, ids[0],
            )
        return ids[0] if ids else None

