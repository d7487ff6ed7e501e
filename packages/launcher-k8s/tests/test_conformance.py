"""The k8s launcher passes pycrew's launcher conformance suite against the Kubernetes API emulator."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client

from pycrew.testing import LauncherConfig, LauncherSuite
from pycrew_emulators.k8s import K8sEmulator
from pycrew_k8s.launcher import JOB_NAME_LABEL, parse_handle


class TestK8sLauncher(LauncherSuite):
    """Workers are Jobs on the emulator, whose pods run as local processes."""

    @pytest.fixture
    def launcher_config(self, emulator: K8sEmulator, k8s_options: dict[str, Any], missing_image: str) -> LauncherConfig:
        def handle_pid(handle: str) -> int | None:
            namespace, job = parse_handle(handle)
            with emulator.api_client() as api:
                pods = client.CoreV1Api(api).list_namespaced_pod(namespace, label_selector=f"{JOB_NAME_LABEL}={job}").items
            return emulator.pod_pid(pods[0].metadata.name, namespace) if pods else None

        return LauncherConfig(
            name="k8s",
            options=k8s_options,
            controller_options={"host": "127.0.0.1"},
            bad_options=[
                {"image": "has space"},
                {"namespace": "Not_A_Namespace"},
                {"cpu": "lots"},
                {"env": {"PYCREW_TOKEN": "x"}},
                {"labels": {"pycrew.io/instance": "x"}},
                {"tolerations": [{"key": "gpu", "operatorr": "Exists"}]},
                {"pod_spec_extra": {"containers": []}},
            ],
            bad_launch_options={"image": missing_image},
            seconds_launch=30.0,
            seconds_timeout=30.0,
            handle_pid=handle_pid,
        )

    @pytest.fixture
    def unrelated_job(self, emulator: K8sEmulator) -> Iterator[str | None]:
        """A Job on the cluster that is not a pycrew worker (it even looks like one by name)."""
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "pycrew-lookalike", "labels": {"app": "other"}},
            "spec": {
                "backoffLimit": 0,
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "main", "image": "python:3.11", "command": ["python", "-c", "import time; time.sleep(120)"]}],
                    }
                },
            },
        }
        with emulator.api_client() as api:
            batch = client.BatchV1Api(api)
            batch.create_namespaced_job("default", job)
            try:
                yield "pycrew-lookalike"
            finally:
                batch.delete_namespaced_job("pycrew-lookalike", "default", propagation_policy="Background")
