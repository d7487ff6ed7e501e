"""pytest fixtures for the local job runner."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pycrew_emulators.runner import JobRunner

__all__ = ["job_runner"]


@pytest.fixture
def job_runner(tmp_path: Path) -> Iterator[JobRunner]:
    """A :class:`JobRunner` logging under ``tmp_path``; every run is killed at teardown."""
    runner = JobRunner(log_dir=tmp_path / "runner")
    try:
        yield runner
    finally:
        runner.close()
