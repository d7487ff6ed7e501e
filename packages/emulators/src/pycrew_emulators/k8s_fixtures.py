"""pytest fixtures for the Kubernetes API emulator (:mod:`pycrew_emulators.k8s`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pycrew_emulators.faults import Faults
from pycrew_emulators.k8s import K8sEmulator
from pycrew_emulators.runner import JobRunner

__all__ = ["k8s_emulator"]


@pytest.fixture
def k8s_emulator(tmp_path: Path) -> Iterator[K8sEmulator]:
    """A started :class:`K8sEmulator` on 127.0.0.1 with a kubeconfig in ``tmp_path``.

    Attributes used by tests: ``host`` (``http://127.0.0.1:PORT``), ``kubeconfig_path``
    (context ``emulator``, namespace ``default``), ``api_client()`` (a configured
    ``kubernetes.client.ApiClient``; close it, or use it as a context manager),
    ``runner`` (its :class:`JobRunner`: ``missing_images``, ``list()``, ``state()``),
    ``faults`` (:class:`Faults`), and the knobs ``unschedulable``, ``stuck`` and
    ``node_labels``. Teardown stops the server and kills every pod process.
    """
    runner = JobRunner(log_dir=tmp_path / "k8s-runner")
    emulator = K8sEmulator(runner=runner, faults=Faults())
    try:
        emulator.start()
        emulator.write_kubeconfig(tmp_path / "kubeconfig")
        yield emulator
    finally:
        emulator.stop()
        runner.close()
