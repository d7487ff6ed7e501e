"""The Kubernetes launcher's options: typed, validated, and turned into parts of a Job manifest.

Structured options (``tolerations``, ``affinity``, ``volumes``, ``volume_mounts``,
``pod_spec_extra``, ``container_extra``) take the manifest form, as in a YAML file:
camelCase keys, e.g. ``{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}``. With
a ``kubernetes`` client that ships pydantic models (37.x), they are checked against those
models when the options are built; otherwise the API server checks them (pycrew asks it
for strict field validation).

The checks of names and models are in :mod:`pycrew_k8s.option_checks`, the arithmetic of
resource quantities in :mod:`pycrew_k8s.quantities`.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pycrew import TLS_CA_ENV, TLS_SERVER_NAME_ENV, TOKEN_ENV, LauncherOptions, OptionsError, require
from pycrew_k8s.option_checks import (
    _DNS_LABEL,
    _ENV_NAME,
    _LABEL_VALUE,
    _is_label_key,
    _is_resource_name,
    _is_subdomain,
    _model_check,
)
from pycrew_k8s.quantities import _QUANTITY, _amount, _quantity

#: Label key prefix pycrew's own labels and annotations use; users may not set keys under it.
PYCREW_PREFIX = "pycrew.io/"
#: Pod spec keys pycrew sets itself or through a dedicated option.
RESERVED_POD_KEYS = {
    "containers": "the worker container is pycrew's (use container_extra for its other fields)",
    "restartPolicy": "workers must never restart (a restarted worker would reuse its instance)",
    "nodeSelector": "use the node_selector option",
    "tolerations": "use the tolerations option",
    "affinity": "use the affinity option",
    "volumes": "use the volumes option",
    "imagePullSecrets": "use the image_pull_secrets option",
    "serviceAccountName": "use the service_account option",
    "serviceAccount": "use the service_account option",
    "priorityClassName": "use the priority_class option",
}
#: Container keys pycrew sets itself or through a dedicated option.
RESERVED_CONTAINER_KEYS = {
    "name": "pycrew names the container 'worker'",
    "image": "use the image option",
    "imagePullPolicy": "use the image_pull_policy option",
    "command": "the command is the python option",
    "args": "the arguments are the worker's",
    "env": "use the env option",
    "envFrom": "use env_from_secrets or env_from_config_maps",
    "resources": "use cpu, memory, cpu_limit, memory_limit, gpus or resources",
    "volumeMounts": "use the volume_mounts option",
    "workingDir": "use the working_dir option",
}


@dataclass(frozen=True)
class K8sOptions(LauncherOptions):
    """Options of the ``k8s`` launcher: where and how each worker's Job runs.

    Attributes:
        image: the container image; it must hold Python with pycrew and your code installed.
            Required to launch workers (a monitor needs none).
        python: the interpreter inside the image (the container's command).
        namespace: where Jobs go; default the kubeconfig context's namespace, in a pod its
            own namespace, else ``"default"``.
        service_account: the pods' ``serviceAccountName``.
        image_pull_policy: ``"Always"``, ``"IfNotPresent"`` or ``"Never"`` (default: the
            cluster's, which depends on the tag).
        image_pull_secrets: names of Secrets with registry credentials.
        cpu: CPU request per worker (``2``, ``0.5``, ``"500m"``).
        memory: memory request per worker (``"4Gi"``).
        cpu_limit: CPU limit per worker.
        memory_limit: memory limit per worker (a worker above it is OOM-killed).
        gpus: GPUs per worker, as a limit on ``gpu_resource``.
        gpu_resource: the extended resource of a GPU (``"nvidia.com/gpu"``, ``"amd.com/gpu"``).
        resources: the container's ``resources`` verbatim (``{"requests": {...}, "limits":
            {...}}``); exclusive with ``cpu``, ``memory``, ``cpu_limit``, ``memory_limit``, ``gpus``.
        node_selector: the pods' ``nodeSelector``.
        tolerations: the pods' ``tolerations`` (manifest form).
        affinity: the pods' ``affinity`` (manifest form).
        env: extra non-secret environment variables of the worker.
        env_from_secrets: names of Secrets whose keys become environment variables.
        env_from_config_maps: names of ConfigMaps whose keys become environment variables.
        volumes: the pods' ``volumes`` (manifest form).
        volume_mounts: the worker container's ``volumeMounts`` (manifest form).
        labels: extra labels of the Jobs and pods (not under ``pycrew.io/``).
        annotations: extra annotations of the Jobs and pods (not under ``pycrew.io/``).
        priority_class: the pods' ``priorityClassName``.
        working_dir: the worker container's ``workingDir``.
        pod_spec_extra: more pod spec fields (``securityContext``, ``runtimeClassName``, ...).
        container_extra: more container fields (``securityContext``, ``ports``, ...).
        kubeconfig: path of the kubeconfig file; default ``$KUBECONFIG`` or ``~/.kube/config``.
        context: the kubeconfig context; default its current context.
        in_cluster: ``True`` uses the pod's service account (the controller runs in the
            cluster); ``False`` a kubeconfig; ``None`` (default) a kubeconfig if one exists,
            else the in-cluster configuration if the process runs in a pod.
        all_namespaces: the monitor lists pycrew's Jobs in every namespace (needs
            cluster-wide ``list`` permission), not only in ``namespace``.
        seconds_ttl: finished Jobs (with their pods and Secrets) are deleted this long after
            they end (``ttlSecondsAfterFinished``), so their logs stay readable meanwhile.
        seconds_deadline: hard limit of each worker's Job (``activeDeadlineSeconds``),
            counted from the Job's start, pending time included. Default: the controller's
            ``seconds_wall`` plus ``seconds_deadline_margin`` if ``seconds_wall`` is finite, else none.
        seconds_deadline_margin: what the default deadline adds to ``seconds_wall``: a worker
            stops at ``seconds_wall`` only after its current task.
        seconds_launch_check: how long the launch hook watches new pods for an early failure
            (image pull errors, unschedulable pods, configuration errors, a worker that cannot
            start) before it returns; it returns at once when every pod runs. ``0`` turns the
            check off. Never longer than the controller's ``seconds_launch``.
        fail_unschedulable: a batch whose pods are all still unschedulable at the end of the
            check is a failed launch (with the scheduler's message). Set ``False`` on clusters
            that add nodes on demand (cluster autoscaler, Karpenter) and raise ``seconds_launch``.
        api_attempts_max: attempts of each API request that fails with a transient error
            (HTTP 429, 500, 502, 503, 504, or no connection).
        seconds_api_retry: most time spent retrying one API request.
        seconds_api_timeout: timeout of one API request.
    """

    owner: ClassVar[str] = "k8s"

    image: str | None = None
    python: str = "python"
    namespace: str | None = None
    service_account: str | None = None
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] | None = None
    image_pull_secrets: tuple[str, ...] = ()
    cpu: str | float | None = None
    memory: str | None = None
    cpu_limit: str | float | None = None
    memory_limit: str | None = None
    gpus: int | None = None
    gpu_resource: str = "nvidia.com/gpu"
    resources: dict[str, dict[str, str]] | None = None
    node_selector: dict[str, str] = field(default_factory=dict)
    tolerations: tuple[dict[str, Any], ...] = ()
    affinity: dict[str, Any] | None = None
    env: dict[str, str] = field(default_factory=dict)
    env_from_secrets: tuple[str, ...] = ()
    env_from_config_maps: tuple[str, ...] = ()
    volumes: tuple[dict[str, Any], ...] = ()
    volume_mounts: tuple[dict[str, Any], ...] = ()
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    priority_class: str | None = None
    working_dir: str | None = None
    pod_spec_extra: dict[str, Any] = field(default_factory=dict)
    container_extra: dict[str, Any] = field(default_factory=dict)
    kubeconfig: str | None = None
    context: str | None = None
    in_cluster: bool | None = None
    all_namespaces: bool = False
    seconds_ttl: float = 300.0
    seconds_deadline: float | None = None
    seconds_deadline_margin: float = 60.0
    seconds_launch_check: float = 15.0
    fail_unschedulable: bool = True
    api_attempts_max: int = 5
    seconds_api_retry: float = 30.0
    seconds_api_timeout: float = 30.0

    def validate(self) -> None:
        """Check values beyond their types.

        Raises:
            OptionsError: naming the option, its value and what it must be.
        """
        o = self.owner
        if self.image is not None:
            require(
                bool(self.image.strip()) and not any(c.isspace() for c in self.image), o, "image", self.image,
                "be an image reference without spaces, e.g. 'ghcr.io/me/worker:1.0'",
            )
        require(
            bool(self.python.strip()) and self.python.strip() == self.python and "\x00" not in self.python,
            o, "python", self.python, "be the interpreter's name or path in the image, e.g. 'python' or '/opt/venv/bin/python'",
        )
        if self.namespace is not None:
            require(bool(_DNS_LABEL.fullmatch(self.namespace)), o, "namespace", self.namespace,
                    "be a namespace name (lowercase letters, digits and '-', at most 63 characters)")
        for name in ("service_account", "priority_class"):
            value = getattr(self, name)
            if value is not None:
                require(_is_subdomain(value), o, name, value, "be a Kubernetes object name (lowercase, digits, '-', '.')")
        for name in ("image_pull_secrets", "env_from_secrets", "env_from_config_maps"):
            for value in getattr(self, name):
                require(_is_subdomain(value), o, name, value, "list Kubernetes object names (lowercase, digits, '-', '.')")
        self._validate_resources()
        self._validate_env()
        for name in ("node_selector", "labels", "annotations"):
            self._validate_keys(name, getattr(self, name), values_are_labels=name != "annotations")
        if self.affinity is not None:
            _model_check(o, "affinity", self.affinity, "V1Affinity")
        for name, model in (("tolerations", "V1Toleration"), ("volumes", "V1Volume"), ("volume_mounts", "V1VolumeMount")):
            for item in getattr(self, name):
                _model_check(o, name, item, model)
        self._validate_extra("pod_spec_extra", self.pod_spec_extra, RESERVED_POD_KEYS)
        self._validate_extra("container_extra", self.container_extra, RESERVED_CONTAINER_KEYS)
        if self.pod_spec_extra:
            _model_check(o, "pod_spec_extra", {**self.pod_spec_extra, "containers": []}, "V1PodSpec")
        if self.container_extra:
            _model_check(o, "container_extra", {**self.container_extra, "name": "worker"}, "V1Container")
        if self.working_dir is not None:
            require(self.working_dir.startswith("/"), o, "working_dir", self.working_dir, "be an absolute path")
        for name in ("kubeconfig", "context"):
            value = getattr(self, name)
            if value is not None:
                require(bool(value.strip()) and "\x00" not in value, o, name, value, "be a non-empty string")
        if self.in_cluster is True and (self.kubeconfig is not None or self.context is not None):
            raise OptionsError("k8s option 'in_cluster=True' excludes 'kubeconfig' and 'context'; give one way to connect")
        require(math.isfinite(self.seconds_ttl) and self.seconds_ttl >= 0, o, "seconds_ttl", self.seconds_ttl,
                "be a finite number of seconds >= 0")
        if self.seconds_deadline is not None:
            require(math.isfinite(self.seconds_deadline) and self.seconds_deadline >= 1, o, "seconds_deadline",
                    self.seconds_deadline, "be a finite number of seconds >= 1 (None: no deadline)")
        require(math.isfinite(self.seconds_deadline_margin) and self.seconds_deadline_margin >= 0, o,
                "seconds_deadline_margin", self.seconds_deadline_margin, "be a finite number of seconds >= 0")
        require(math.isfinite(self.seconds_launch_check) and self.seconds_launch_check >= 0, o,
                "seconds_launch_check", self.seconds_launch_check, "be a finite number of seconds >= 0 (0: no check)")
        require(self.api_attempts_max >= 1, o, "api_attempts_max", self.api_attempts_max, "be >= 1")
        for name in ("seconds_api_retry", "seconds_api_timeout"):
            value = getattr(self, name)
            require(math.isfinite(value) and value > 0, o, name, value, "be a finite number of seconds > 0")

    def __hash__(self) -> int:
        """Hashable although some fields are dicts (so that options can key caches, as frozen options do)."""
        return hash(json.dumps(dataclasses.asdict(self), sort_keys=True, default=repr))

    def _validate_resources(self) -> None:
        o = self.owner
        for name in ("cpu", "cpu_limit", "memory", "memory_limit"):
            value = getattr(self, name)
            if value is None:
                continue
            if isinstance(value, (int, float)):
                require(math.isfinite(value) and value > 0, o, name, value, "be a number > 0 or a quantity like '500m'")
            else:
                require(bool(_QUANTITY.fullmatch(value)), o, name, value,
                        "be a Kubernetes quantity, e.g. '500m' or '2' (CPU), '512Mi' or '4Gi' (memory)")
        if self.gpus is not None:
            require(self.gpus >= 1, o, "gpus", self.gpus, "be >= 1")
        require(_is_resource_name(self.gpu_resource), o, "gpu_resource", self.gpu_resource,
                "be an extended resource name like 'nvidia.com/gpu'")
        if self.resources is not None:
            for key, values in self.resources.items():
                require(key in ("requests", "limits"), o, "resources", self.resources,
                        "have only the keys 'requests' and 'limits'")
                for resource, quantity in values.items():
                    require(bool(_QUANTITY.fullmatch(quantity)) and _is_resource_name(resource), o, "resources",
                            self.resources, f"map resource names to quantities (bad entry {resource!r}: {quantity!r})")
            given = [n for n in ("cpu", "memory", "cpu_limit", "memory_limit", "gpus") if getattr(self, n) is not None]
            if given:
                raise OptionsError(
                    f"k8s option 'resources' gives the container's resources verbatim and excludes {', '.join(given)}; "
                    f"put them into resources or drop resources"
                )
        self._validate_requests_within_limits()

    def _validate_requests_within_limits(self) -> None:
        """A request above its limit: the API server would refuse every Job (422 Invalid)."""
        o = self.owner
        for request, limit in (("cpu", "cpu_limit"), ("memory", "memory_limit")):
            asked, most = getattr(self, request), getattr(self, limit)
            if asked is not None and most is not None:
                require(_amount(asked) <= _amount(most), o, request, asked,
                        f"be at most {limit}={most!r}: Kubernetes refuses a request above its limit "
                        f"(lower {request} or raise {limit})")
        if self.resources is not None:
            limits = self.resources.get("limits") or {}
            for resource, quantity in (self.resources.get("requests") or {}).items():
                if resource in limits:
                    require(_amount(quantity) <= _amount(limits[resource]), o, "resources", self.resources,
                            f"request at most the limit of each resource: Kubernetes refuses a request above its "
                            f"limit (requests {resource}={quantity!r} > limits {resource}={limits[resource]!r})")

    def _validate_env(self) -> None:
        for key in self.env:
            require(bool(_ENV_NAME.fullmatch(key)), self.owner, "env", self.env,
                    f"have variable names of letters, digits, '_', '-' and '.' (bad name {key!r})")
            if key in (TOKEN_ENV, TLS_CA_ENV, TLS_SERVER_NAME_ENV):
                raise OptionsError(
                    f"k8s option 'env' must not set {key}: pycrew passes it to each worker itself "
                    f"({TOKEN_ENV} through a Secret, {TLS_CA_ENV} and {TLS_SERVER_NAME_ENV} from the "
                    "controller's TLS settings)"
                )

    def _validate_keys(self, name: str, mapping: Mapping[str, str], values_are_labels: bool) -> None:
        o = self.owner
        for key, value in mapping.items():
            require(_is_label_key(key), o, name, mapping,
                    f"have keys like 'team' or 'example.com/team' (bad key {key!r})")
            if name in ("labels", "annotations"):
                require(not key.startswith(PYCREW_PREFIX), o, name, mapping,
                        f"not use keys under {PYCREW_PREFIX!r}: pycrew's monitor relies on them (bad key {key!r})")
            if values_are_labels:
                require(bool(_LABEL_VALUE.fullmatch(value)), o, name, mapping,
                        f"have label values of at most 63 letters, digits, '-', '_', '.' (bad value {value!r})")

    def _validate_extra(self, name: str, extra: Mapping[str, Any], reserved: Mapping[str, str]) -> None:
        for key in extra:
            if key in reserved:
                raise OptionsError(f"k8s option {name!r} must not set {key!r}: {reserved[key]}")

    def resources_manifest(self) -> dict[str, dict[str, str]]:
        """The container's ``resources`` from the resource options (empty if none is set)."""
        if self.resources is not None:
            return {k: dict(v) for k, v in self.resources.items() if v}
        out: dict[str, dict[str, str]] = {}
        for name, section, resource in (
            ("cpu", "requests", "cpu"),
            ("memory", "requests", "memory"),
            ("cpu_limit", "limits", "cpu"),
            ("memory_limit", "limits", "memory"),
        ):
            value = getattr(self, name)
            if value is not None:
                out.setdefault(section, {})[resource] = _quantity(value)
        if self.gpus is not None:
            out.setdefault("limits", {})[self.gpu_resource] = str(self.gpus)
        return out
