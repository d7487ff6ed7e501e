"""Jobs of pycrew's that no launch waits for: :class:`StrayWatch`.

A submit may leave a job with the scheduler that pycrew holds no handle for:

- *in doubt*: the submit's fate stayed unknown (its reply was lost and the queue could not
  be read; every try failed, after one that a stalled daemon may still take; the submit
  command said it succeeded but printed no job id pycrew could read, and no job carrying
  its tag was listed yet). Core gave that launch up: any job carrying the tag is a stray.
- a *duplicate*: a submit whose reply was lost was found by its tag, or succeeded on a later
  try, or was found by its tag after an unreadable reply; a stalled daemon may still take an
  earlier try, making a second array with the same tag. pycrew uses one job id per tag:
  any other array carrying the tag is a stray.

The launcher's listing cancels strays as soon as it shows them (with a warning), and so does
every cancel of pycrew's (``terminate()``), after listing the queue. A tag is watched for
:data:`SECONDS_WATCH`.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

from pycrew.scheduler.records import JobRecord

#: How long a tag in doubt, or one whose duplicates are looked for, is watched.
SECONDS_WATCH = 6 * 3600.0


class StrayWatch:
    """The tags whose strays are looked for in listings (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tags: dict[str, tuple[str | None, float]] = {}  # tag -> (the job id in use, or None; since)
        self._cancelled: set[str] = set()  # array ids of strays cancelled already

    def doubt(self, tag: str, now: float) -> None:
        """No launch waits for a job carrying ``tag`` (its submit is in doubt)."""
        with self._lock:
            self._tags[tag] = (None, now)

    def accepted(self, tag: str, job_id: str, now: float) -> None:
        """Array ``job_id`` is the one launch of ``tag``, whose submit may have been taken twice."""
        with self._lock:
            self._tags[tag] = (job_id, now)

    def active(self, now: float) -> bool:
        """Whether any tag is watched (so that a cancel lists the queue for strays)."""
        with self._lock:
            self._expire(now)
            return bool(self._tags)

    def strays(self, records: Sequence[JobRecord], now: float) -> list[tuple[JobRecord, str | None]]:
        """The records of strays not cancelled yet that the scheduler still holds, each with
        the job id its tag is used by (``None``: in doubt); they are taken as cancelled."""
        with self._lock:
            self._expire(now)
            if not self._tags:
                return []
            found: list[tuple[JobRecord, str | None]] = []
            for record in records:
                entry = self._tags.get(record.tag) if record.tag else None
                if entry is None or not record.held or record.array_id == entry[0] or record.array_id in self._cancelled:
                    continue
                found.append((record, entry[0]))
            self._cancelled.update(record.array_id for record, _ in found)
            return found

    def _expire(self, now: float) -> None:
        expired = [tag for tag, (_, since) in self._tags.items() if now - since > SECONDS_WATCH]
        for tag in expired:
            del self._tags[tag]
        if not self._tags:
            self._cancelled.clear()
