"""pycrew-cloudrun: the ``cloudrun`` launcher of pycrew. Workers are tasks of Cloud Run Jobs executions.

Installed, it registers itself through the ``pycrew.launchers`` entry point; use it by name::

    import pycrew

    with pycrew.controller("cloudrun", workers=50, project="my-project", region="us-central1",
                           image="us-docker.pkg.dev/my-project/repo/worker:1", tls="automatic") as c:
        results = c.map(fit, params)

:class:`CloudRunOptions` lists the options. :class:`CloudRunJobs` is the launcher's engine,
usable directly as a monitor of executions (:meth:`CloudRunJobs.executions`,
:meth:`CloudRunJobs.cancel_executions`).
"""

from __future__ import annotations

from pycrew_cloudrun.cloudrun import CloudRunJobs
from pycrew_cloudrun.options import CloudRunOptions
from pycrew_cloudrun.records import CloudRunHandle, ExecutionInfo
from pycrew_cloudrun.retry import CloudRunError, RetryPolicy
from pycrew_cloudrun.stopping import NotTerminatedError

__version__ = "0.1.0"

__all__ = ["CloudRunError", "CloudRunHandle", "CloudRunJobs", "CloudRunOptions", "ExecutionInfo", "NotTerminatedError", "RetryPolicy", "__version__"]
