"""Connecting to a cluster: kubeconfig (path, context) or the in-cluster service account.

:func:`connect` returns a :class:`Cluster` per distinct connection (kubeconfig, context,
in-cluster) in this process and reuses it, so that connections are pooled across hook
calls. That cache is this module's only state.
"""

from __future__ import annotations

import importlib
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pycrew import PycrewError
from pycrew_k8s.options import K8sOptions

#: Where a pod finds its own namespace.
SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


class K8sConfigError(PycrewError):
    """No usable cluster configuration: a missing kubeconfig, an unknown context, ..."""


@dataclass
class Cluster:
    """A connection to one cluster and its API groups.

    Attributes:
        api_client: the ``kubernetes.client.ApiClient``.
        batch: ``BatchV1Api`` (Jobs).
        core: ``CoreV1Api`` (pods, Secrets, logs).
        namespace: the namespace of the configuration (the context's, the pod's, or ``default``).
        source: where the configuration came from, for messages.
    """

    api_client: Any
    batch: Any
    core: Any
    namespace: str
    source: str

    @property
    def host(self) -> str:
        """The API server's URL."""
        return str(self.api_client.configuration.host)

    def close(self) -> None:
        """Close the connection pool."""
        self.api_client.close()


_clusters: dict[tuple[str | None, str | None, bool | None, str | None], Cluster] = {}
_lock = threading.Lock()


def connect(options: K8sOptions) -> Cluster:
    """The :class:`Cluster` for ``options``' connection (made on first use, then reused).

    Raises:
        K8sConfigError: no kubeconfig and not in a cluster, a missing file, an unknown context.
    """
    key = (options.kubeconfig, options.context, options.in_cluster, os.environ.get("KUBECONFIG"))
    with _lock:
        cluster = _clusters.get(key)
        if cluster is None:
            cluster = _clusters[key] = _make(options)
        return cluster


def forget_clusters() -> None:
    """Close and drop every cached connection (tests, or after credentials changed)."""
    with _lock:
        clusters = list(_clusters.values())
        _clusters.clear()
    for cluster in clusters:
        cluster.close()


def _kubeconfig_paths(options: K8sOptions) -> list[Path]:
    if options.kubeconfig is not None:
        return [Path(os.path.expanduser(options.kubeconfig))]
    env = os.environ.get("KUBECONFIG")
    if env:
        return [Path(os.path.expanduser(p)) for p in env.split(os.pathsep) if p]
    return [Path(os.path.expanduser("~/.kube/config"))]


def _in_a_pod() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


def _make(options: K8sOptions) -> Cluster:
    k8s_client: Any = importlib.import_module("kubernetes.client")
    k8s_config: Any = importlib.import_module("kubernetes.config")

    if options.in_cluster is True:
        return _in_cluster(k8s_client, k8s_config)
    paths = _kubeconfig_paths(options)
    existing = [p for p in paths if p.is_file()]
    if not existing:
        if options.kubeconfig is not None:
            raise K8sConfigError(f"k8s option 'kubeconfig': no such file {str(paths[0])!r}")
        if options.in_cluster is None and _in_a_pod():
            return _in_cluster(k8s_client, k8s_config)
        raise K8sConfigError(
            f"no kubeconfig found ({', '.join(map(str, paths))}) and this process does not run in a pod: "
            f"pass kubeconfig='path' (and context='name'), set $KUBECONFIG, or in_cluster=True in a pod"
        )
    config_file = os.pathsep.join(str(p) for p in existing)
    try:
        contexts, current = k8s_config.list_kube_config_contexts(config_file=config_file)
        chosen = current
        if options.context is not None:
            matches = [c for c in contexts or [] if c.get("name") == options.context]
            if not matches:
                names = ", ".join(sorted(str(c.get("name")) for c in contexts or []))
                raise K8sConfigError(
                    f"k8s option 'context': no context {options.context!r} in {config_file}; contexts: {names or 'none'}"
                )
            chosen = matches[0]
        api_client = k8s_config.new_client_from_config(
            config_file=config_file, context=options.context, client_configuration=_configuration(k8s_client)
        )
    except K8sConfigError:
        raise
    except Exception as exc:  # ConfigException, YAML errors, missing credentials plugins
        raise K8sConfigError(f"cannot load the kubeconfig {config_file}: {type(exc).__name__}: {exc}") from exc
    namespace = ((chosen or {}).get("context") or {}).get("namespace") or "default"
    source = f"kubeconfig {config_file}, context {(chosen or {}).get('name')!r}"
    return Cluster(api_client, k8s_client.BatchV1Api(api_client), k8s_client.CoreV1Api(api_client), namespace, source)


def _configuration(k8s_client: Any) -> Any:
    """A client configuration without urllib3's own retries: :func:`pycrew_k8s.api.request`
    retries with its own budget, and the two together made ~20 connection attempts (and
    three warnings each) per request against an API server that was down."""
    configuration = k8s_client.Configuration()
    configuration.retries = 0
    return configuration


def _in_cluster(k8s_client: Any, k8s_config: Any) -> Cluster:
    configuration = _configuration(k8s_client)
    try:
        k8s_config.load_incluster_config(client_configuration=configuration)
    except Exception as exc:  # ConfigException: not in a pod, or no service account token mounted
        raise K8sConfigError(
            f"in-cluster configuration failed ({exc}): in_cluster=True needs a pod with a service account token "
            f"mounted; outside a cluster, use a kubeconfig"
        ) from exc
    try:
        namespace = SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    except OSError:
        namespace = "default"
    api_client = k8s_client.ApiClient(configuration)
    return Cluster(api_client, k8s_client.BatchV1Api(api_client), k8s_client.CoreV1Api(api_client), namespace, "in-cluster service account")
