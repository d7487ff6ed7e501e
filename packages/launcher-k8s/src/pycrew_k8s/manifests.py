"""The manifests of one worker: a batch/v1 Job and the Secret holding its token.

Plain dicts in the API's JSON form, built from a :class:`~pycrew.WorkerCall` and the
:class:`~pycrew_k8s.K8sOptions`; nothing here talks to a cluster. Every object carries
pycrew's labels, which is how the monitor finds pycrew's workers (and only them):

- ``app.kubernetes.io/managed-by: pycrew``
- ``pycrew.io/launcher``: the launcher's name (``k8s``)
- ``pycrew.io/controller-id``, ``pycrew.io/controller`` (the name, made label-safe)
- ``pycrew.io/instance``, ``pycrew.io/worker`` (the slot), ``pycrew.io/batch``

and the annotation ``pycrew.io/controller-name`` with the controller's name as given.
"""

from __future__ import annotations

import math
import re
import secrets
from typing import Any

from pycrew import TOKEN_ENV, WorkerCall
from pycrew_k8s.options import K8sOptions

MANAGED_BY = "app.kubernetes.io/managed-by"
LAUNCHER = "pycrew.io/launcher"
CONTROLLER_ID = "pycrew.io/controller-id"
CONTROLLER = "pycrew.io/controller"
INSTANCE = "pycrew.io/instance"
WORKER = "pycrew.io/worker"
BATCH = "pycrew.io/batch"
CONTROLLER_NAME_ANNOTATION = "pycrew.io/controller-name"
#: The key of the token in each worker's Secret.
TOKEN_KEY = "token"
#: The worker container's name.
CONTAINER = "worker"
_SUFFIX_CHARS = "bcdfghjklmnpqrstvwxz2456789"


def label_value(text: str, limit: int = 63) -> str:
    """``text`` as a label value: ``[A-Za-z0-9-_.]``, alphanumeric at both ends, at most ``limit`` long.

    >>> label_value("My controller #1!")
    'My-controller-1'
    """
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "-", text)[:limit]
    return re.sub(r"^[^A-Za-z0-9]+|[^A-Za-z0-9]+$", "", cleaned)


def _name_part(text: str, limit: int) -> str:
    cleaned = re.sub(r"[^a-z0-9]+", "-", text.lower())[:limit]
    return cleaned.strip("-")


def job_name(call: WorkerCall, suffix: str | None = None) -> str:
    """A fresh Job name for ``call``: ``pycrew-<controller>-<instance>-<random>``, at most 52 characters.

    The random suffix makes every launch's name new (an instance id may be launched
    twice, e.g. by a test's impostor), so a create that fails ambiguously can be retried
    and a name that already exists is known to be this launch's own. Pod names add 6
    characters and stay within the 63 that labels allow.
    """
    suffix = suffix or "".join(secrets.choice(_SUFFIX_CHARS) for _ in range(5))
    parts = ["pycrew", _name_part(call.controller, 16), _name_part(call.instance, 22), suffix]
    return "-".join(p for p in parts if p)


def selector(launcher: str, controller_id: str | None = None) -> str:
    """The label selector of pycrew's objects of ``launcher`` (and of one controller)."""
    terms = [f"{MANAGED_BY}=pycrew", f"{LAUNCHER}={label_value(launcher)}"]
    if controller_id is not None:
        terms.append(f"{CONTROLLER_ID}={label_value(controller_id)}")
    return ",".join(terms)


def worker_labels(call: WorkerCall, batch: str, options: K8sOptions) -> dict[str, str]:
    """The labels of a worker's Job, pod template and Secret (the user's, then pycrew's)."""
    out = dict(options.labels)
    out.update(
        {
            MANAGED_BY: "pycrew",
            LAUNCHER: label_value(call.launcher),
            CONTROLLER_ID: label_value(call.controller_id),
            INSTANCE: label_value(call.instance),
            WORKER: str(call.worker),
            BATCH: label_value(batch),
        }
    )
    controller = label_value(call.controller)
    if controller:
        out[CONTROLLER] = controller
    return out


def worker_annotations(call: WorkerCall, options: K8sOptions) -> dict[str, str]:
    """The annotations of a worker's Job and pod template."""
    return {**options.annotations, CONTROLLER_NAME_ANNOTATION: call.controller}


def deadline_seconds(call: WorkerCall, options: K8sOptions) -> int | None:
    """``activeDeadlineSeconds``: ``seconds_deadline``, else ``seconds_wall`` + margin, else none."""
    if options.seconds_deadline is not None:
        return max(1, math.ceil(options.seconds_deadline))
    wall = call.seconds_wall
    if math.isinf(wall):
        return None
    return max(1, math.ceil(wall + options.seconds_deadline_margin))


def container_env(call: WorkerCall, secret_name: str, options: K8sOptions) -> list[dict[str, Any]]:
    """The worker's environment: non-secret values, then the token from its Secret."""
    env: dict[str, str] = {**options.env, **call.env}
    out: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in env.items()]
    out.append({"name": TOKEN_ENV, "valueFrom": {"secretKeyRef": {"name": secret_name, "key": TOKEN_KEY}}})
    return out


def job(call: WorkerCall, name: str, namespace: str, batch: str, options: K8sOptions) -> dict[str, Any]:
    """The Job running ``call``'s worker: one pod, never restarted, the token from Secret ``name``.

    Raises:
        ValueError: ``options.image`` is not set.
    """
    if not options.image:
        raise ValueError("the k8s option 'image' is required to launch workers")
    container: dict[str, Any] = {
        **options.container_extra,
        "name": CONTAINER,
        "image": options.image,
        "command": [options.python],
        "args": list(call.args),
        "env": container_env(call, name, options),
    }
    if options.image_pull_policy is not None:
        container["imagePullPolicy"] = options.image_pull_policy
    env_from = [{"secretRef": {"name": s}} for s in options.env_from_secrets]
    env_from += [{"configMapRef": {"name": c}} for c in options.env_from_config_maps]
    if env_from:
        container["envFrom"] = env_from
    resources = options.resources_manifest()
    if resources:
        container["resources"] = resources
    if options.volume_mounts:
        container["volumeMounts"] = [dict(m) for m in options.volume_mounts]
    if options.working_dir is not None:
        container["workingDir"] = options.working_dir
    pod: dict[str, Any] = {
        **options.pod_spec_extra,
        "restartPolicy": "Never",
        "containers": [container],
    }
    pod.setdefault("enableServiceLinks", False)  # no service variables in the worker's environment
    optional: dict[str, Any] = {
        "serviceAccountName": options.service_account,
        "priorityClassName": options.priority_class,
        "nodeSelector": dict(options.node_selector) or None,
        "tolerations": [dict(t) for t in options.tolerations] or None,
        "affinity": dict(options.affinity) if options.affinity is not None else None,
        "volumes": [dict(v) for v in options.volumes] or None,
        "imagePullSecrets": [{"name": s} for s in options.image_pull_secrets] or None,
    }
    pod.update({k: v for k, v in optional.items() if v is not None})
    meta = {"labels": worker_labels(call, batch, options), "annotations": worker_annotations(call, options)}
    spec: dict[str, Any] = {
        "backoffLimit": 0,
        "ttlSecondsAfterFinished": math.ceil(options.seconds_ttl),
        "template": {"metadata": meta, "spec": pod},
    }
    deadline = deadline_seconds(call, options)
    if deadline is not None:
        spec["activeDeadlineSeconds"] = deadline
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "namespace": namespace, **meta},
        "spec": spec,
    }


def secret(call: WorkerCall, name: str, namespace: str, batch: str, job_uid: str, options: K8sOptions) -> dict[str, Any]:
    """The Secret holding ``call``'s token, owned by its Job (so it is deleted with it)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": worker_labels(call, batch, options),
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": job_uid}],
        },
        "type": "Opaque",
        "immutable": True,
        "stringData": {TOKEN_KEY: call.token},
    }
