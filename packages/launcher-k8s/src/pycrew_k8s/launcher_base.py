"""What every part of :class:`~pycrew_k8s.launcher.K8sLauncher` shares: :class:`LauncherBase`.

Its options, retry policy and connection, the namespace Jobs go to, paging through list
requests, and the job controller's events that say why Jobs have no pod (the launch check
and the monitor both read them).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from pycrew_k8s.api import K8sApiError, RetryPolicy, request
from pycrew_k8s.cluster import Cluster, connect
from pycrew_k8s.options import K8sOptions
from pycrew_k8s.pods import create_failures
from pycrew_k8s.vanished import LaunchedJobs

log = logging.getLogger("pycrew_k8s.launcher")

#: The field selector of the job controller's events about pods it could not create.
FAILED_CREATE = "involvedObject.kind=Job,reason=FailedCreate"


class LauncherBase:
    """The settings, connection and shared calls of :class:`~pycrew_k8s.launcher.K8sLauncher` (see there).

    Args:
        name: the launcher's registered name (``"k8s"``).
        options: the launcher's options.
        cancelled: whether a controller (by id) is terminating: its launch stops watching
            its pods start (:meth:`pycrew.LauncherPlugin.launches_cancelled`).
    """

    def __init__(self, name: str, options: K8sOptions, cancelled: Callable[[str | None], bool] | None = None) -> None:
        self.name = name
        self.options = options
        self.cancelled = cancelled or (lambda controller_id: False)
        self.policy = RetryPolicy(options.api_attempts_max, options.seconds_api_retry, options.seconds_api_timeout)
        #: Listing events was refused (403): they are optional (see the README's Role), not asked for again.
        self.events_forbidden = False
        #: The Jobs this process launched and did not terminate: the monitor reports those deleted from outside.
        self.launched = LaunchedJobs()

    @property
    def cluster(self) -> Cluster:
        """The connection (made on first use, shared by every launcher with the same connection options)."""
        return connect(self.options)

    def namespace(self) -> str:
        """The namespace Jobs go to: the option, else the configuration's."""
        return self.options.namespace or self.cluster.namespace

    # -- paging and events (the launch check and the monitor) ---------------------------------

    def _items(self, operation: Any, *args: Any, policy: RetryPolicy | None = None, **kwargs: Any) -> Iterator[dict[str, Any]]:
        """Every item of a list request, page by page."""
        token: str | None = None
        while True:
            page: dict[str, Any] = request(operation, *args, policy=policy or self.policy, limit=500, _continue=token,
                                           **kwargs) or {}
            yield from page.get("items") or []
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return

    def _create_failures(self, cluster: Cluster, namespace: str | None) -> dict[tuple[str, str], str]:
        """Why Jobs in ``namespace`` (``None``: all) have no pod: :func:`~pycrew_k8s.pods.create_failures` of
        their events. Best effort, one attempt: ``{}`` if events cannot be listed (listing them is optional)."""
        if self.events_forbidden:
            return {}
        once = RetryPolicy(1, self.policy.seconds_timeout, self.policy.seconds_timeout)
        try:
            if namespace is None:
                events = self._items(cluster.core.list_event_for_all_namespaces, policy=once, field_selector=FAILED_CREATE)
            else:
                events = self._items(cluster.core.list_namespaced_event, namespace, policy=once, field_selector=FAILED_CREATE)
            return create_failures(list(events))
        except K8sApiError as exc:  # a diagnosis only
            if exc.status == 403:
                self.events_forbidden = True
                log.info("k8s: may not list events (%s): why a Job created no pod (e.g. a ResourceQuota) is not "
                         "reported; grant list on events (see the README's Role)", exc)
            else:
                log.debug("k8s: could not list the events of Jobs without a pod: %s", exc)
            return {}
