"""pytest fixtures for the Cloud Run Admin API v2 emulator (needs ``google-cloud-run``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pycrew_emulators.cloudrun import CloudRunEmulator
from pycrew_emulators.runner import JobRunner

__all__ = ["cloudrun_emulator"]


@pytest.fixture
def cloudrun_emulator(tmp_path: Path) -> Iterator[CloudRunEmulator]:
    """A started :class:`~pycrew_emulators.cloudrun.CloudRunEmulator`.

    Attributes of the yielded object: ``endpoint`` (``http://127.0.0.1:PORT``),
    ``project``, ``region``, ``runner`` (task logs under ``tmp_path``), ``faults``,
    ``log_entries`` (the tasks' output as Cloud Logging entries),
    ``secrets``; helpers ``client_options()``, ``jobs_client()``,
    ``executions_client()``, ``tasks_client()``, ``parent()``, ``run_ids()``,
    ``logs()``, ``wait_execution()``. Teardown stops the server and kills every task
    process, also when the test failed.
    """
    runner = JobRunner(log_dir=tmp_path / "cloudrun-tasks")
    emulator = CloudRunEmulator(runner=runner)
    try:
        emulator.start()
        yield emulator
    finally:
        emulator.close()
        runner.close()
