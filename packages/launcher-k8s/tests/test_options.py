"""K8sOptions: types, values, and the resources they turn into."""

from __future__ import annotations

import decimal
from typing import Any

import pytest

import pycrew
from pycrew_k8s import K8sOptions


def test_defaults_need_no_cluster_and_no_image() -> None:
    options = K8sOptions()
    assert options.image is None and options.python == "python" and options.namespace is None


@pytest.mark.parametrize(
    ("values", "named"),
    [
        ({"image": ""}, "image"),
        ({"image": "a b"}, "image"),
        ({"python": " python"}, "python"),
        ({"namespace": "Default"}, "namespace"),
        ({"namespace": "x" * 64}, "namespace"),
        ({"service_account": "Not_OK"}, "service_account"),
        ({"priority_class": "high priority"}, "priority_class"),
        ({"image_pull_secrets": ("regcred", "Bad_Name")}, "image_pull_secrets"),
        ({"env_from_secrets": ("UPPER",)}, "env_from_secrets"),
        ({"cpu": "a lot"}, "cpu"),
        ({"cpu": 0}, "cpu"),
        ({"memory": "4GB"}, "memory"),
        ({"memory_limit": "-1Gi"}, "memory_limit"),
        ({"gpus": 0}, "gpus"),
        ({"gpu_resource": "nvidia.com/"}, "gpu_resource"),
        ({"resources": {"request": {"cpu": "1"}}}, "resources"),
        ({"resources": {"limits": {"cpu": "lots"}}}, "resources"),
        ({"env": {"A=B": "x"}}, "env"),
        ({"env": {"PYCREW_TOKEN": "x"}}, "env"),
        ({"env": {"PYCREW_TLS_CA": "x"}}, "env"),
        ({"env": {"PYCREW_TLS_SERVER_NAME": "x"}}, "env"),
        ({"labels": {"pycrew.io/instance": "x"}}, "labels"),
        ({"labels": {"team": "a b"}}, "labels"),
        ({"annotations": {"bad key!": "x"}}, "annotations"),
        ({"node_selector": {"disk": "x" * 64}}, "node_selector"),
        ({"tolerations": ({"key": "gpu", "operatorr": "Exists"},)}, "tolerations"),
        ({"affinity": {"nodeAffinity": {"required": 1}}}, "affinity"),
        ({"volumes": ({"name": "data", "emptyDirr": {}},)}, "volumes"),
        ({"volume_mounts": ({"mountPath": "/data"},)}, "volume_mounts"),
        ({"pod_spec_extra": {"restartPolicy": "OnFailure"}}, "pod_spec_extra"),
        ({"pod_spec_extra": {"nodeSelector": {"a": "b"}}}, "pod_spec_extra"),
        ({"pod_spec_extra": {"hostNetwork": "yes please"}}, "pod_spec_extra"),
        ({"container_extra": {"env": []}}, "container_extra"),
        ({"working_dir": "relative/dir"}, "working_dir"),
        ({"kubeconfig": ""}, "kubeconfig"),
        ({"seconds_ttl": -1}, "seconds_ttl"),
        ({"seconds_deadline": 0.5}, "seconds_deadline"),
        ({"seconds_launch_check": float("inf")}, "seconds_launch_check"),
        ({"api_attempts_max": 0}, "api_attempts_max"),
        ({"seconds_api_timeout": 0}, "seconds_api_timeout"),
        ({"image_pull_policy": "Sometimes"}, "image_pull_policy"),
    ],
)
def test_bad_values_are_rejected_naming_the_option(values: dict[str, Any], named: str) -> None:
    with pytest.raises(pycrew.OptionsError) as err:
        K8sOptions.from_mapping(values)
    assert named in str(err.value), f"the message should name {named!r}: {err.value}"


def test_resources_exclusive_with_the_single_resource_options() -> None:
    with pytest.raises(pycrew.OptionsError, match=r"resources.*excludes cpu"):
        K8sOptions(resources={"requests": {"cpu": "1"}}, cpu=2)


@pytest.mark.parametrize(
    ("values", "says"),
    [
        ({"cpu": 2, "cpu_limit": 1}, "'cpu' must be at most cpu_limit=1: Kubernetes refuses a request above its limit"),
        ({"cpu": "1500m", "cpu_limit": 1.2}, "'cpu' must be at most cpu_limit=1.2"),
        ({"memory": "2Gi", "memory_limit": "1500Mi"}, "'memory' must be at most memory_limit='1500Mi'"),
        ({"resources": {"requests": {"memory": "2G"}, "limits": {"memory": "1Gi"}}},
         "(requests memory='2G' > limits memory='1Gi')"),
    ],
    ids=["cpu", "cpu quantity", "memory", "resources"],
)
def test_request_above_its_limit_is_refused_when_the_options_are_built(values: dict[str, Any], says: str) -> None:
    """Before, the API server refused every worker's Job (422) only when the controller launched."""
    with pytest.raises(pycrew.OptionsError) as err:
        K8sOptions.from_mapping(values)
    assert says in str(err.value), str(err.value)


def test_requests_up_to_their_limits_are_fine() -> None:
    K8sOptions(cpu="500m", cpu_limit=0.5, memory="1Gi", memory_limit="1024Mi")
    K8sOptions(cpu=4, memory="1e9", memory_limit="1G", resources=None)
    K8sOptions(resources={"requests": {"cpu": "1"}, "limits": {"cpu": "2", "memory": "1Gi"}})


def test_resource_checks_do_not_depend_on_the_callers_decimal_context() -> None:
    """CI: a test earlier in the run left its thread's context trapping inexact results at 7
    digits, and the request-within-limit check raised decimal.Inexact."""
    with decimal.localcontext() as context:
        context.prec = 7
        context.traps[decimal.Inexact] = True
        K8sOptions(cpu="500m", cpu_limit=0.5, memory="1536Mi", memory_limit="2Gi")
        with pytest.raises(pycrew.OptionsError, match="memory_limit"):
            K8sOptions(memory="3Gi", memory_limit="2Gi")


def test_in_cluster_excludes_kubeconfig() -> None:
    with pytest.raises(pycrew.OptionsError, match="in_cluster"):
        K8sOptions(in_cluster=True, kubeconfig="/tmp/kubeconfig")


def test_unknown_option_suggests_the_close_one() -> None:
    with pytest.raises(pycrew.OptionsError, match="did you mean 'node_selector'"):
        K8sOptions.from_mapping({"nodeselector": {"a": "b"}})


def test_resource_options_become_requests_and_limits() -> None:
    options = K8sOptions(cpu=0.5, memory="1Gi", cpu_limit=2, memory_limit="2Gi", gpus=1, gpu_resource="amd.com/gpu")
    assert options.resources_manifest() == {
        "requests": {"cpu": "500m", "memory": "1Gi"},
        "limits": {"cpu": "2", "memory": "2Gi", "amd.com/gpu": "1"},
    }
    assert K8sOptions().resources_manifest() == {}
    verbatim = {"requests": {"cpu": "250m"}, "limits": {"nvidia.com/gpu": "2"}}
    assert K8sOptions(resources=verbatim).resources_manifest() == verbatim


def test_structured_options_in_manifest_form_are_accepted() -> None:
    options = K8sOptions.from_mapping(
        {
            "tolerations": [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "affinity": {
                "nodeAffinity": {
                    "requiredDuringSchedulingIgnoredDuringExecution": {
                        "nodeSelectorTerms": [{"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}]
                    }
                }
            },
            "volumes": [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
            "volume_mounts": [{"name": "data", "mountPath": "/data"}],
            "pod_spec_extra": {"securityContext": {"runAsNonRoot": True}, "runtimeClassName": "gvisor"},
            "container_extra": {"securityContext": {"allowPrivilegeEscalation": False}},
        }
    )
    assert isinstance(options.tolerations, tuple) and options.tolerations[0]["operator"] == "Exists"
