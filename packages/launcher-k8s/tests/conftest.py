"""Fixtures of pycrew-k8s's tests: launcher options pointing at the Kubernetes API emulator.

The emulator (``k8s_emulator``, from the ``pycrew_emulators`` pytest plugin) serves the
Kubernetes API on 127.0.0.1 and runs each pod's container as a local process; its teardown
kills every pod process. Each test here also drops the cached cluster connections.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("kubernetes")
pytest.importorskip("pycrew_emulators.k8s")

from pycrew_emulators.k8s import K8sEmulator
from pycrew_k8s.cluster import forget_clusters
from pycrew_k8s.launcher import K8sLauncher
from pycrew_k8s.options import K8sOptions

#: An image the emulator "fails to pull" (see ``runner.missing_images``).
MISSING_IMAGE = "registry.example.com/pycrew/no-such-image:0"


@pytest.fixture(autouse=True)
def _fresh_connections() -> Iterator[None]:
    yield
    forget_clusters()


@pytest.fixture
def emulator(k8s_emulator: K8sEmulator) -> K8sEmulator:
    """The emulator, with one image that cannot be pulled (``missing_image``)."""
    k8s_emulator.runner.missing_images.add(MISSING_IMAGE)
    return k8s_emulator


@pytest.fixture
def missing_image() -> str:
    """An image the emulator fails to pull (ErrImagePull, then ImagePullBackOff)."""
    return MISSING_IMAGE


@pytest.fixture
def k8s_options(emulator: K8sEmulator) -> dict[str, Any]:
    """Launcher options that start working workers on the emulator."""
    return {"image": "python:3.11", "kubeconfig": str(emulator.kubeconfig_path), "context": "emulator"}


@pytest.fixture
def k8s(k8s_options: dict[str, Any]) -> K8sLauncher:
    """A :class:`K8sLauncher` on the emulator."""
    return K8sLauncher("k8s", K8sOptions.from_mapping(k8s_options))
