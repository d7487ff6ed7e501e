"""pycrew-k8s: the ``k8s`` launcher of pycrew. Each worker is a Kubernetes Job.

Installed, it registers itself through the ``pycrew.launchers`` entry point; use it by name::

    import pycrew

    with pycrew.controller("k8s", workers=50, image="ghcr.io/me/worker:1.0", cpu=1, memory="2Gi") as c:
        results = c.map(fit, params)

:class:`K8sOptions` lists the options; :func:`worker_logs` reads a worker's log.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pycrew import WorkerInfo
from pycrew_k8s.api import K8sApiError
from pycrew_k8s.cluster import K8sConfigError
from pycrew_k8s.launcher import PodStartError
from pycrew_k8s.options import K8sOptions

__version__ = "0.1.0"

__all__ = ["K8sApiError", "K8sConfigError", "K8sOptions", "PodStartError", "__version__", "worker_logs"]


def worker_logs(
    worker: WorkerInfo | str,
    options: K8sOptions | Mapping[str, Any] | None = None,
    tail_lines: int | None = None,
    launcher: str = "k8s",
) -> str:
    """The log (stdout and stderr) of a worker's pod.

    Args:
        worker: a :class:`pycrew.WorkerInfo` from the monitor, or a handle ``"namespace/job"``.
        options: the launcher's options (for the kubeconfig and context), or a mapping of them.
        tail_lines: only the last this many lines.
        launcher: the launcher's name.

    Example::

        m = pycrew.Monitor("k8s", kubeconfig="~/.kube/config")
        for w in m.list():
            print(w.id, worker_logs(w, tail_lines=5))

    Raises:
        ValueError: ``worker`` is no k8s handle.
        K8sApiError: the pod is gone (``seconds_ttl`` after its Job ended) or the API failed.
    """
    from pycrew_k8s.launcher import K8sLauncher

    if options is None:
        options = K8sOptions()
    elif not isinstance(options, K8sOptions):
        options = K8sOptions.from_mapping(options)
    handle = worker.handle if isinstance(worker, WorkerInfo) else worker
    return K8sLauncher(launcher, options).logs(handle, tail_lines=tail_lines)
