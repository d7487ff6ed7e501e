"""pycrew-awsbatch: the ``awsbatch`` launcher of pycrew. Workers run as AWS Batch (array) jobs.

Installed, it registers itself through the ``pycrew.launchers`` entry point; use it by name::

    import pycrew

    with pycrew.controller("awsbatch", workers=50, job_queue="my-queue",
                           job_definition="pycrew-worker", memory="4GiB") as c:
        results = c.map(fit, params)

:class:`AwsBatchOptions` lists the options. :class:`AwsBatchClient` is also the monitor's
and job-definition helper's entry point (``AwsBatchClient.from_options(...)``).
"""

from __future__ import annotations

from pycrew_awsbatch.api import AwsApi, AwsBatchError, AwsRegionError
from pycrew_awsbatch.client import AwsBatchClient
from pycrew_awsbatch.jobdefs import deregister_job_definition, describe_job_definition, register_job_definition
from pycrew_awsbatch.monitor import JobDetails
from pycrew_awsbatch.options import AwsBatchOptions, memory_mebibytes

__version__ = "0.1.0"

__all__ = [
    "AwsApi",
    "AwsBatchClient",
    "AwsBatchError",
    "AwsBatchOptions",
    "AwsRegionError",
    "JobDetails",
    "__version__",
    "deregister_job_definition",
    "describe_job_definition",
    "memory_mebibytes",
    "register_job_definition",
]
