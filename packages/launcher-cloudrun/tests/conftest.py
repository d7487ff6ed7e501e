# mypy: disable-error-code="no-untyped-call,import-untyped"
"""Fixtures of pycrew-cloudrun's tests: the Cloud Run emulator plus a Secret Manager stand-in.

``cloudrun_emulator`` (from ``pycrew_emulators``) runs each task as a local process with
the ``CLOUD_RUN_*`` environment; ``secret_manager`` serves the Secret Manager REST calls the
launcher makes and writes each version into the emulator's ``secrets``, so a
``secretKeyRef`` in a run resolves the way Cloud Run resolves it.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials

from pycrew_emulators.cloudrun import CloudRunEmulator

sys.path.insert(0, str(Path(__file__).parent))

from fake_secretmanager import FakeSecretManager

#: One credentials object for every test, so equal options share one plugin cache entry.
ANONYMOUS = AnonymousCredentials()


@pytest.fixture
def secret_manager(cloudrun_emulator: CloudRunEmulator) -> Iterator[FakeSecretManager]:
    """A Secret Manager stand-in feeding ``cloudrun_emulator.secrets``; stopped at teardown."""
    fake = FakeSecretManager(cloudrun_emulator.secrets).start()
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
def cloudrun_options(cloudrun_emulator: CloudRunEmulator, secret_manager: FakeSecretManager) -> dict[str, Any]:
    """Launcher options pointing at the emulators (REST, anonymous credentials, no monitor cache)."""
    return {
        "project": cloudrun_emulator.project,
        "region": cloudrun_emulator.region,
        "image": "python:3.11",
        "transport": "rest",
        "api_endpoint": cloudrun_emulator.endpoint,
        "secret_manager_endpoint": secret_manager.endpoint,
        "logging_endpoint": cloudrun_emulator.endpoint,  # the emulator also serves Cloud Logging's entries:list
        "credentials": ANONYMOUS,
        "seconds_poll": 0.0,
        "api_attempts_max": 4,
        "seconds_api_retry_max": 20.0,
    }


@pytest.fixture(autouse=True)
def private_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Controller records go to a fresh directory (orphan checks see only this test's)."""
    monkeypatch.setenv("PYCREW_STATE_DIR", str(tmp_path / "pycrew-state"))
