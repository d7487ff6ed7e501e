"""ResourceQuota refusals: telling them apart from missing permissions, and saying what to do.

The API server answers a create that a namespace's ResourceQuota refuses with ``403
Forbidden``, as it answers a missing RBAC permission; only the message differs::

    pods "x" is forbidden: exceeded quota: compute-resources, requested: requests.cpu=2,
        used: requests.cpu=1, limited: requests.cpu=2
    pods "x" is forbidden: failed quota: compute-resources: must specify limits.cpu for: worker

A Job is usually admitted and its *pods* are refused: the job controller then records a
``FailedCreate`` event on the Job with that message (``Error creating: pods ... is
forbidden: exceeded quota: ...``) and creates no pod. Functions here read such messages;
they never talk to a cluster.
"""

from __future__ import annotations

import re

_EXCEEDED = re.compile(
    r"exceeded quota: (?P<quota>[^,\s]+), requested: (?P<requested>.*?), used: (?P<used>.*?), limited: (?P<limited>[^\s;]*)"
)
_FAILED = re.compile(r"failed quota: (?P<quota>[^:\s]+): (?P<what>.*)")


def is_quota_refusal(message: str) -> bool:
    """Whether an API message (a 403's, or a ``FailedCreate`` event's) is a ResourceQuota's refusal."""
    return "exceeded quota:" in message or "failed quota:" in message


def quota_hint(message: str, namespace: str | None = None) -> str:
    """What to do about the ResourceQuota refusal ``message`` (``""`` if it is none).

    Args:
        message: the API server's message (or an event's).
        namespace: the namespace, for the ``kubectl`` command shown.
    """
    where = f" -n {namespace}" if namespace else ""
    exceeded = _EXCEEDED.search(message)
    if exceeded is not None:
        quota = exceeded["quota"]
        return (
            f"This is the namespace's ResourceQuota {quota!r}, not a missing permission: it allows "
            f"{exceeded['limited']}, {exceeded['used']} is in use, and this asks for {exceeded['requested']} more. "
            f"Run fewer workers (workers=), request less per worker (cpu, memory, gpus, cpu_limit, memory_limit, "
            f"resources), or ask the cluster's administrators for a larger quota "
            f"(`kubectl describe resourcequota {quota}{where}` shows it)"
        )
    failed = _FAILED.search(message)
    if failed is not None:
        quota = failed["quota"]
        return (
            f"This is the namespace's ResourceQuota {quota!r}, not a missing permission: it refuses pods that do not "
            f"set what it limits ({failed['what'].strip().rstrip('.')}). Set them: cpu and memory for requests.*, "
            f"cpu_limit and memory_limit for limits.*, resources= for others "
            f"(`kubectl describe resourcequota {quota}{where}` shows the quota)"
        )
    if is_quota_refusal(message):
        return (
            "This is a ResourceQuota of the namespace, not a missing permission: run fewer workers, request less "
            f"per worker, set the limits it requires, or ask for a larger quota (`kubectl describe resourcequota{where}`)"
        )
    return ""
