"""The ``k8s`` launcher's plugin (entry point ``pycrew.launchers: k8s = "pycrew_k8s.plugin:plugin"``).

Core calls its hooks only for launchers named ``k8s``. Each hook uses the
:class:`~pycrew_k8s.launcher.K8sLauncher` for the launcher's options, one per distinct
options value (:class:`pycrew.LauncherPlugin`'s client cache); the cluster connection behind
it is cached per kubeconfig/context (see :mod:`pycrew_k8s.cluster`). Importing this module
imports no Kubernetes client: that happens on the first hook call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pycrew
from pycrew import LauncherInfo, WorkerCall, WorkerInfo
from pycrew_k8s.api import K8sApiError
from pycrew_k8s.launcher import K8sLauncher
from pycrew_k8s.options import K8sOptions

NAME = "k8s"
#: Capabilities for the conformance suite (names of ``pycrew.LAUNCHER_CAPABILITIES``): the
#: monitor lists pycrew's Jobs by label, including orphans of gone controllers, and pending
#: pods can be deleted (never_connected). That workers run elsewhere is ``remote=True``.
CAPABILITIES = frozenset({"monitor", "orphans", "never_connected"})
#: After its controller dies, a worker exits (connection closed or heartbeat timeout) and its
#: pod ends; this covers the kubelet and the Job controller noticing (a few seconds) with room.
SECONDS_EXIT_MARGIN = 30.0


class K8sPlugin(pycrew.LauncherPlugin[K8sOptions, K8sLauncher]):
    """Workers as Kubernetes Jobs, one per worker; handles are ``"namespace/job"``."""

    name = NAME
    options_type = K8sOptions
    summary = "workers as Kubernetes Jobs, one per worker (token in a Secret)"
    remote = True
    capabilities = CAPABILITIES
    seconds_exit_margin = SECONDS_EXIT_MARGIN

    def create_client(self, options: K8sOptions) -> K8sLauncher:
        """The :class:`K8sLauncher` for ``options`` (it connects on first use)."""
        return K8sLauncher(self.name, options, cancelled=self.launches_cancelled)

    def launch(self, launcher: LauncherInfo, options: K8sOptions, calls: Sequence[WorkerCall]) -> list[Any]:
        """Create one Job (and its token Secret) per call; return handles ``"namespace/job"`` in call order."""
        return list(self.client(options).launch(calls))

    def terminate(self, launcher: LauncherInfo, options: K8sOptions, handles: Sequence[Any]) -> None:
        """Delete the workers' Jobs with background propagation; Jobs already gone are fine."""
        self.client(options).terminate(handles)

    def list_workers(self, launcher: LauncherInfo, options: K8sOptions, controller_id: str | None) -> list[WorkerInfo]:
        """pycrew's workers on the cluster: Jobs carrying pycrew's labels, with their pods' state."""
        return self.client(options).workers(controller_id)

    def logs(self, launcher: LauncherInfo, options: K8sOptions, handle: Any, lines: int | None) -> str | None:
        """The log of the worker's (newest) pod through the API, as ``kubectl logs --tail`` gives it.

        Raises:
            pycrew.LogsUnavailableError: the Job has no pod (not created yet, or deleted
                ``seconds_ttl`` after it ended), or the handle is no ``"namespace/job"``.
            K8sApiError: the API failed otherwise.
        """
        if not isinstance(handle, str):
            raise pycrew.LogsUnavailableError(
                f"launcher {launcher.name!r} got {handle!r} as a worker handle; it needs \"namespace/job\" "
                "(from the launch hook or Monitor.list())"
            )
        try:
            return self.client(options).logs(handle, tail_lines=lines)
        except ValueError as exc:
            raise pycrew.LogsUnavailableError(f"launcher {launcher.name!r}: {exc}") from exc
        except K8sApiError as exc:
            if exc.status == 404:
                raise pycrew.LogsUnavailableError(f"launcher {launcher.name!r}: {exc}") from exc
            raise


#: The plugin object the entry point names.
plugin = K8sPlugin()
