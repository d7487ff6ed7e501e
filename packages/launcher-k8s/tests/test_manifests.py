"""The Job and Secret manifests: valid for Kubernetes 1.30 (strict), token only in the Secret."""

from __future__ import annotations

import json
from typing import Any

import pytest

import pycrew
from pycrew_k8s import K8sOptions, manifests

kubernetes_validate = pytest.importorskip("kubernetes_validate")

FULL = K8sOptions(
    image="ghcr.io/me/worker:1.0",
    python="/opt/venv/bin/python",
    namespace="science",
    service_account="pycrew-worker",
    image_pull_policy="IfNotPresent",
    image_pull_secrets=("regcred",),
    cpu=1,
    memory="2Gi",
    cpu_limit="1500m",
    memory_limit="2Gi",
    gpus=1,
    node_selector={"pool": "gpu"},
    tolerations=({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},),
    affinity={"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 1, "podAffinityTerm": {"topologyKey": "kubernetes.io/hostname",
                                          "labelSelector": {"matchLabels": {"app.kubernetes.io/managed-by": "pycrew"}}}}
    ]}},
    env={"OMP_NUM_THREADS": "1"},
    env_from_secrets=("db-credentials",),
    env_from_config_maps=("settings",),
    volumes=({"name": "data", "persistentVolumeClaim": {"claimName": "data"}},),
    volume_mounts=({"name": "data", "mountPath": "/data", "readOnly": True},),
    labels={"team": "ml"},
    annotations={"example.com/owner": "me@example.com"},
    priority_class="batch-low",
    working_dir="/work",
    pod_spec_extra={"securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}}},
    container_extra={"securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}},
    seconds_ttl=120,
)


def make_call(controller: str = "My Controller!", instance: str = "0123456789ab-3", wall: str = "inf", **extra: Any) -> pycrew.WorkerCall:
    command = pycrew.WorkerCommand(url="tcp://10.0.0.5:4000", instance=instance, worker=4, launcher="k8s",
                                   controller=controller, controller_id="fedcba9876543210",
                                   seconds_wall=float(wall), seconds_launch=30.0)
    values: dict[str, Any] = {
        "python": "/usr/bin/python3", "env": {"PYCREW_TLS_CA": "-----BEGIN CERTIFICATE-----"},
        "token": "s3cret-t0ken", "name": "pycrew-x-4",
    }
    values.update(extra)
    return pycrew.WorkerCall.from_command(command, **values)


def test_job_with_every_option_is_valid_for_kubernetes_1_30() -> None:
    job = manifests.job(make_call(), "pycrew-my-controller-x-abcde", "science", "b1", FULL)
    kubernetes_validate.validate(job, "1.30", strict=True)


def test_minimal_job_is_valid_and_never_restarts() -> None:
    job = manifests.job(make_call(), "pycrew-x", "default", "b1", K8sOptions(image="python:3.11"))
    kubernetes_validate.validate(job, "1.30", strict=True)
    spec = job["spec"]
    assert spec["backoffLimit"] == 0 and spec["template"]["spec"]["restartPolicy"] == "Never"
    assert spec["ttlSecondsAfterFinished"] == 300
    assert "activeDeadlineSeconds" not in spec, "no deadline without seconds_wall or seconds_deadline"
    container = spec["template"]["spec"]["containers"][0]
    assert container["command"] == ["python"] and container["args"][:2] == ["-m", "pycrew.worker"]


def test_secret_is_valid_owned_by_the_job_and_holds_the_token() -> None:
    secret = manifests.secret(make_call(), "pycrew-x", "default", "b1", "uid-1", K8sOptions())
    kubernetes_validate.validate(secret, "1.30", strict=True)
    assert secret["stringData"] == {"token": "s3cret-t0ken"}
    assert secret["metadata"]["ownerReferences"] == [
        {"apiVersion": "batch/v1", "kind": "Job", "name": "pycrew-x", "uid": "uid-1"}
    ]
    assert secret["immutable"] is True


def test_token_is_only_a_secret_reference_in_the_job() -> None:
    call = make_call()
    job = manifests.job(call, "pycrew-x", "science", "b1", FULL)
    assert call.token not in json.dumps(job), "the token leaked into the Job manifest"
    env = job["spec"]["template"]["spec"]["containers"][0]["env"]
    token = [e for e in env if e["name"] == pycrew.TOKEN_ENV]
    assert token == [{"name": "PYCREW_TOKEN", "valueFrom": {"secretKeyRef": {"name": "pycrew-x", "key": "token"}}}]
    plain = {e["name"]: e["value"] for e in env if "value" in e}
    assert plain == {"OMP_NUM_THREADS": "1", "PYCREW_TLS_CA": "-----BEGIN CERTIFICATE-----"}


def test_labels_tag_controller_instance_and_slot_and_keep_the_users() -> None:
    job = manifests.job(make_call(), "pycrew-x", "science", "b1", FULL)
    for meta in (job["metadata"], job["spec"]["template"]["metadata"]):
        labels = meta["labels"]
        assert labels["team"] == "ml"
        assert labels["app.kubernetes.io/managed-by"] == "pycrew"
        assert labels["pycrew.io/launcher"] == "k8s"
        assert labels["pycrew.io/controller-id"] == "fedcba9876543210"
        assert labels["pycrew.io/controller"] == "My-Controller"
        assert labels["pycrew.io/instance"] == "0123456789ab-3"
        assert labels["pycrew.io/worker"] == "4"
        assert meta["annotations"]["pycrew.io/controller-name"] == "My Controller!"
        assert meta["annotations"]["example.com/owner"] == "me@example.com"


def test_options_land_where_kubernetes_expects_them() -> None:
    pod = manifests.job(make_call(), "pycrew-x", "science", "b1", FULL)["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "ghcr.io/me/worker:1.0" and container["command"] == ["/opt/venv/bin/python"]
    assert container["resources"] == {"requests": {"cpu": "1", "memory": "2Gi"},
                                      "limits": {"cpu": "1500m", "memory": "2Gi", "nvidia.com/gpu": "1"}}
    assert container["envFrom"] == [{"secretRef": {"name": "db-credentials"}}, {"configMapRef": {"name": "settings"}}]
    assert container["volumeMounts"] == [{"name": "data", "mountPath": "/data", "readOnly": True}]
    assert container["workingDir"] == "/work" and container["imagePullPolicy"] == "IfNotPresent"
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert pod["serviceAccountName"] == "pycrew-worker" and pod["priorityClassName"] == "batch-low"
    assert pod["nodeSelector"] == {"pool": "gpu"} and pod["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert pod["imagePullSecrets"] == [{"name": "regcred"}] and pod["volumes"][0]["name"] == "data"
    assert pod["securityContext"]["runAsNonRoot"] is True and "podAntiAffinity" in pod["affinity"]
    assert pod["enableServiceLinks"] is False


def test_deadline_follows_seconds_wall_or_the_explicit_option() -> None:
    options = K8sOptions(image="i", seconds_deadline_margin=30)
    assert manifests.job(make_call(wall="600.0"), "j", "ns", "b", options)["spec"]["activeDeadlineSeconds"] == 630
    explicit = K8sOptions(image="i", seconds_deadline=3600)
    assert manifests.job(make_call(wall="600.0"), "j", "ns", "b", explicit)["spec"]["activeDeadlineSeconds"] == 3600
    assert "activeDeadlineSeconds" not in manifests.job(make_call(), "j", "ns", "b", options)["spec"]


def test_job_names_are_fresh_short_and_valid() -> None:
    call = make_call(controller="A Very Long Controller Name With Spaces " * 3, instance="f" * 16)
    names = {manifests.job_name(call) for _ in range(20)}
    assert len(names) == 20, "each launch needs a fresh name"
    for name in names:
        assert name.startswith("pycrew-a-very-long-cont") and len(name) <= 52 and name == name.lower()
        kubernetes_validate.validate(
            manifests.job(call, name, "default", "b", K8sOptions(image="i")), "1.30", strict=True
        )


def test_job_needs_an_image() -> None:
    with pytest.raises(ValueError, match="image"):
        manifests.job(make_call(), "j", "ns", "b", K8sOptions())


def test_selector_picks_pycrew_objects_of_one_launcher_or_controller() -> None:
    assert manifests.selector("k8s") == "app.kubernetes.io/managed-by=pycrew,pycrew.io/launcher=k8s"
    assert manifests.selector("k8s", "abc").endswith(",pycrew.io/controller-id=abc")


def test_label_value_makes_any_text_label_safe() -> None:
    assert manifests.label_value("  --ü nice name__ ") == "nice-name"
    assert len(manifests.label_value("x" * 100)) == 63
    assert manifests.label_value("!!!") == ""
