"""qdel for :class:`~pycrew_sge.sge.SgeCLI`: :class:`SgeCancelling`.

Handles are checked before they reach qdel, grouped into whole jobs, single tasks and task
ranges per job, and qdel's lines that only say a job or task is gone already are told apart
from failures.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any

from pycrew.scheduler import SchedulerCLI, SchedulerError
from pycrew_sge.options import SgeOptions

log = logging.getLogger("pycrew_sge.sge")

#: A task handle ``<job>.<task>``, or a whole job ``<job>`` (for qdel).
_HANDLE = re.compile(r"^[0-9]+(?:\.[0-9]+)?$")
#: qdel's lines that only say a job or task is gone already, or is being deleted.
_GONE = ("does not exist", "has deleted", "has registered the job", "is already in deletion")


class SgeCancelling(SchedulerCLI):
    """The cancel part of :class:`~pycrew_sge.sge.SgeCLI` (see there): ``qdel``."""

    options: SgeOptions

    # -- cancel --------------------------------------------------------------------------

    def cancel(self, handles: Sequence[Any]) -> None:
        """Cancel tasks (see :meth:`SchedulerCLI.cancel`); with ``secret_file``, list the queue
        right after, so that the key files of arrays none of whose tasks can start any more go
        now: a terminated controller makes no later listing, and they stayed on disk."""
        super().cancel(handles)
        if self.options.secret_file and handles:
            try:
                self.list_jobs()
            except SchedulerError as exc:  # they go at a later listing, as before
                log.debug("sge: the listing after a cancel (to remove key files) failed: %s", exc)

    def cancel_command(self, handles: Sequence[Any]) -> list[str]:
        """``qdel 12 13.2 14 -t 1,3 15 -t 4-6``: whole jobs, single tasks, task lists per job.

        Raises:
            ValueError: a handle is not ``<job id>`` or ``<job id>.<task id>`` (so that
                nothing can reach qdel as an option, e.g. ``-u``).
        """
        bad = [h for h in handles if not isinstance(h, str) or not _HANDLE.match(h)]
        if bad:
            raise ValueError(f"sge handles must look like '123.4' (job id . task id), got {bad!r}")
        whole = sorted({h for h in handles if "." not in h}, key=int)
        tasks: dict[str, set[int]] = {}
        for handle in handles:
            job, sep, task = handle.partition(".")
            if sep and job not in whole:
                tasks.setdefault(job, set()).add(int(task))
        args = list(whole)
        for job in sorted(tasks, key=int):
            ids = sorted(tasks[job])
            if len(ids) == 1:
                args.append(f"{job}.{ids[0]}")
            elif ids[-1] - ids[0] == len(ids) - 1:
                args += [job, "-t", f"{ids[0]}-{ids[-1]}"]
            else:
                args += [job, "-t", ",".join(map(str, ids))]
        return [self.command("qdel"), *args]

    def is_gone(self, message: str) -> bool:
        """qdel's line says the job or task is gone already, or that it is being deleted."""
        low = message.lower()
        return any(text in low for text in _GONE)
