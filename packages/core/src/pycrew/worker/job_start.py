"""When the worker's batch job started: its time limit counts from there, not from the worker.

A scheduler launcher sets each worker's ``seconds_wall`` from the job's time limit (less
``seconds_walltime_margin``, see :class:`pycrew.scheduler.SchedulerOptions`), but the
scheduler counts from the job's start, and before the worker runs, the job script enters
its directory and runs ``script_lines`` (``module load``, ``conda activate``: seconds to a
minute or more on a busy file system), and the interpreter starts. So the script exports
:data:`~pycrew.wire.protocol.JOB_STARTED_ENV` (``date +%s``) as its first command, and the
worker counts its life from that moment.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import MutableMapping

from pycrew.wire.protocol import JOB_STARTED_ENV

#: A job start further back than this is not believed (a clock set wrong, a stale variable).
SECONDS_AGE_MAX = 30 * 86400.0


def seconds_since_job_start(environ: MutableMapping[str, str] = os.environ, now: float | None = None) -> float:
    """Seconds since the job started (``0.0`` when no start was given or it is not believable).

    The variable is removed from ``environ``: tasks and the processes they start (a local
    controller's workers, say) must not count from this job's start.
    """
    text = environ.pop(JOB_STARTED_ENV, None)
    if not text:
        return 0.0
    try:
        started = float(text)
    except ValueError:
        return 0.0
    age = (time.time() if now is None else now) - started
    return age if math.isfinite(age) and 0.0 < age < SECONDS_AGE_MAX else 0.0
