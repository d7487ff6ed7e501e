"""The pycrew hook implementations of the ``k8s`` launcher (entry point ``pycrew.launchers: k8s``).

Core calls these hooks only for launchers named ``k8s``. Each builds a
:class:`~pycrew_k8s.launcher.K8sLauncher` for the launcher's options; the cluster connection
behind it is cached per kubeconfig/context (see :mod:`pycrew_k8s.cluster`). Importing this
module imports no Kubernetes client: that happens on the first hook call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import pycrew
from pycrew import LauncherInfo, OptionsError, WorkerCall, WorkerInfo
from pycrew_k8s.launcher import K8sLauncher
from pycrew_k8s.options import K8sOptions

NAME = "k8s"
#: Capabilities for the conformance suite: workers run elsewhere, pending pods can be
#: deleted, the monitor lists pycrew's Jobs by label, including orphans of gone controllers.
CAPABILITIES = frozenset({"remote", "monitor", "orphans", "never_connected", "terminate_pending"})
#: After its controller dies, a worker exits (connection closed or heartbeat timeout) and its
#: pod ends; this covers the kubelet and the Job controller noticing (a few seconds) with room.
SECONDS_EXIT_MARGIN = 30.0


def launcher_for(launcher: LauncherInfo) -> K8sLauncher:
    """The :class:`K8sLauncher` serving ``launcher``.

    Raises:
        OptionsError: ``launcher.options`` is not a :class:`K8sOptions`.
    """
    options = launcher.options
    if not isinstance(options, K8sOptions):
        raise OptionsError(f"the k8s launcher needs K8sOptions, got {type(options).__name__}")
    return K8sLauncher(launcher.name, options)


@pycrew.hookimpl
def pycrew_register_launchers(register: Callable[..., None]) -> None:
    """Register the ``k8s`` launcher."""
    register(
        NAME,
        K8sOptions,
        summary="workers as Kubernetes Jobs, one per worker (token in a Secret)",
        remote=True,
        capabilities=CAPABILITIES,
        seconds_exit_margin=SECONDS_EXIT_MARGIN,
    )


@pycrew.hookimpl
def pycrew_launch_workers(launcher: LauncherInfo, calls: Sequence[WorkerCall]) -> list[Any]:
    """Create one Job (and its token Secret) per call; return handles ``"namespace/job"`` in call order."""
    return list(launcher_for(launcher).launch(calls))


@pycrew.hookimpl
def pycrew_terminate_workers(launcher: LauncherInfo, handles: Sequence[Any]) -> None:
    """Delete the workers' Jobs with background propagation; Jobs already gone are fine."""
    launcher_for(launcher).terminate(handles)


@pycrew.hookimpl
def pycrew_list_workers(launcher: LauncherInfo, controller_id: str | None) -> list[WorkerInfo]:
    """pycrew's workers on the cluster: Jobs carrying pycrew's labels, with their pods' state."""
    return launcher_for(launcher).workers(controller_id)
