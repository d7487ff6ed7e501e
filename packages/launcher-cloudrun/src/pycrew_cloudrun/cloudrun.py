"""Workers as tasks of Cloud Run Jobs executions: :class:`CloudRunJobs` launches, cancels and lists them.

:class:`CloudRunJobs` is put together from one part per job, each in its own module:

- :mod:`pycrew_cloudrun.engine_base`: its settings and clients, what it remembers of
  executions, and cancelling one.
- :mod:`pycrew_cloudrun.job_setup`: getting, checking or creating the Cloud Run job.
- :mod:`pycrew_cloudrun.launching`: one execution per batch; finding the execution of a
  run whose reply was lost, and cancelling its twins.
- :mod:`pycrew_cloudrun.termination`: stopping workers when Cloud Run cancels only whole
  executions.
- :mod:`pycrew_cloudrun.monitor_listing`: the monitor's listing of executions and workers.
"""

from __future__ import annotations

from pycrew_cloudrun.launching import LAUNCHED_MAX, Launching
from pycrew_cloudrun.monitor_listing import SECONDS_ENDED_KEEP, MonitorListing
from pycrew_cloudrun.termination import Termination

__all__ = ["LAUNCHED_MAX", "SECONDS_ENDED_KEEP", "CloudRunJobs"]


class CloudRunJobs(Launching, Termination, MonitorListing):
    """Launch, terminate and list pycrew's workers on Cloud Run Jobs, for one set of options.

    Thread-safe: core calls it from its launch pool. It remembers, in this process, which
    job it runs, which workers it was asked to stop (see :mod:`pycrew_cloudrun.termination`) and which
    Secret Manager version belongs to which execution.

    Args:
        options: the launcher's options.
        launcher_name: the registered launcher name, for :class:`pycrew.WorkerInfo`.
    """
