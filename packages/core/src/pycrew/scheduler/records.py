"""One array element as a scheduler's listing shows it: :class:`JobRecord`."""

from __future__ import annotations

from dataclasses import dataclass

from pycrew.worker_info import WORKER_STATUSES, StatusMixin


@dataclass(frozen=True)
class JobRecord(StatusMixin):
    """One array element as the scheduler's listing shows it (before the tag is read).

    Attributes:
        id: the element's id in the scheduler's own notation (``123_4``, ``123.4``, ``123[4]``).
        array_id: the id of the array job.
        index: the element's index in the array (1-based).
        name: the job name.
        tag: the tag text stored with the job (see :mod:`pycrew.scheduler.jobtag`).
        state: the scheduler's own state code (``PENDING``, ``qw``, ``R``, ``PEND``).
        reason: why it is in that state, if the scheduler says.
        host: the node it runs on, if any.
        submitted: submission time (epoch seconds), if known.
        log: its log file, if known.
        status: ``state`` normalised, one of :data:`pycrew.plugin_api.WORKER_STATUSES`
            (``pending``, ``running``, ``done``, ``failed``, ``cancelled``, ``unknown``).
        exit_code: the job's exit status once it has ended, if the scheduler says.
        queued: the element will never start (``status`` ``failed``: a request the
            scheduler cannot grant, an error state) but still waits in the queue until
            cancelled (see :attr:`pycrew.WorkerInfo.queued`).

    Raises:
        ValueError: ``status`` is not one of the normalised statuses.
    """

    id: str
    array_id: str
    index: int
    name: str
    tag: str
    state: str
    reason: str = ""
    host: str | None = None
    submitted: float | None = None
    log: str | None = None
    status: str = "unknown"
    exit_code: int | None = None
    queued: bool = False

    def __post_init__(self) -> None:
        if self.status not in WORKER_STATUSES:
            raise ValueError(
                f"JobRecord status must be one of {', '.join(map(repr, WORKER_STATUSES))}, got {self.status!r} "
                f"(job {self.id!r}, scheduler state {self.state!r}): map the scheduler's code in parse_listing"
            )


def normalise(state: str, table: dict[str, str], default: str = "unknown") -> str:
    """A scheduler's state code as a normalised status, by ``table`` (case-sensitive first, then upper case).

    >>> normalise("PENDING", {"PENDING": "pending"})
    'pending'
    """
    found = table.get(state)
    if found is None:
        found = table.get(state.upper(), default)
    return found
